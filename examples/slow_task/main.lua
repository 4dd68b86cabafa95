-- A slow task answered later: WeChat waits only 5 seconds for a reply. This handler waits on
-- an upstream service that takes longer (config.lua), so the host answers "success" in time,
-- shows the user "typing…", and delivers the reply through the customer-service API when the
-- handler returns. Waiting on wx.http holds up no other message.
--   wechat-lua chat --scripts examples/slow_task   (try: report)

local config = require("config")

wx.on("text", "^report$", function(msg)
  local resp, err = wx.http.post(config.report_url, { user = msg.from }, { timeout = 30 })
  if not resp then
    wx.log.warn("report service unreachable:", err.kind, err.message)
    return "The report service cannot be reached (" .. err.kind .. "); try again later."
  end
  if resp.status < 200 or resp.status > 299 then
    return "The report service failed (HTTP " .. resp.status .. "); try again later."
  end
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
