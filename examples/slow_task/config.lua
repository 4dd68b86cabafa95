-- The service that builds reports. httpbin's /delay/6 answers after 6 seconds, longer than
-- WeChat waits for a reply; point it at your own service.
return {
  report_url = "https://httpbin.org/delay/6",
}
