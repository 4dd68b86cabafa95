-- A template notification: "ship ORDER" marks an order shipped and sends the customer an
-- order-shipped notice (a template message works outside the 48-hour window).
--   wechat-lua chat --scripts examples/notify   (try: ship A1001)

local TEMPLATE_ID = "ORDER_SHIPPED_TEMPLATE_ID"  -- from 模板消息 in the console

wx.on("text", "^ship%s+(%S+)$", function(msg, order)
  local msgid, err = wx.template.send{
    to = msg.from,
    template_id = TEMPLATE_ID,
    url = "https://example.com/orders/" .. order,
    data = {
      first = { value = "Your order has shipped", color = "#173177" },
      keyword1 = { value = order },
      keyword2 = { value = os.date("%Y-%m-%d %H:%M") },
      remark = { value = "Thanks for shopping with us." },
    },
  }
  if not msgid then
    wx.log.warn("template send failed", err.errcode, err.errmsg)
    return "Could not send the notice (" .. err.errcode .. ")."
  end
  return "Order " .. order .. " marked shipped; notice sent."
end)

wx.on("text", function()
  return "Send: ship <order number>"
end)
