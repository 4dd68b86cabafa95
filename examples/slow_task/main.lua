-- A slow task answered later: WeChat waits only 5 seconds for a reply. This handler takes
-- longer, so the host answers "success" in time, shows the user "typing…", and delivers the
-- reply through the customer-service API when the handler returns.
--   wechat-lua chat --scripts examples/slow_task   (try: report)

wx.on("text", "^report$", function(msg)
  wx.sleep(6)  -- stands in for a slow upstream call
  return "Your report is ready: https://example.com/reports/" .. msg.from
end)

-- If the late reply cannot be delivered (the user has not written for 48 hours: 45015),
-- fall back to a template message.
wx.on("late_reply_failed", function(ev, reply, err)
  wx.log.warn("late reply failed", err.errcode, "falling back to a template message")
  wx.template.send{
    to = ev.openid,
    template_id = "REPORT_READY_TEMPLATE_ID",
    data = { thing1 = "Your report is ready", time2 = os.date("%Y-%m-%d %H:%M") },
  }
end)

wx.on("text", function()
  return 'Send "report" to start a slow task.'
end)
