-- A template notification: "ship ORDER" marks an order shipped and sends the customer an
-- order-shipped notice (a template message works outside the 48-hour window).
--   wechat-lua chat --scripts examples/notify   (try: ship A1001)

-- 订单发货提醒 in the template library; adding it gives this account's own template_id.
local TEMPLATE_SHORT_ID = "OPENTM200565259"

-- The account's template_id, added from the library once (with the keywords this notice
-- shows, in order) and remembered in the store.
local function template_id()
  local id = wx.store.get("notify:template_id")
  if id then
    return id
  end
  local added, err = wx.template.add(TEMPLATE_SHORT_ID, { "订单编号", "发货时间" })
  if not added then
    return nil, err
  end
  wx.store.set("notify:template_id", added)
  return added
end

wx.on("text", "^ship%s+(%S+)$", function(msg, order)
  local id, err = template_id()
  if not id then
    return "Could not set up the notice template (" .. err.errcode .. ")."
  end
  local msgid
  msgid, err = wx.template.send{
    to = msg.from,
    template_id = id,
    url = "https://example.com/orders/" .. order,
    -- One value per keyword, under the keys the template's content names (since 2023-05
    -- WeChat shows no "first"/"remark" lines and no colours).
    data = {
      keyword1 = order,
      keyword2 = os.date("%Y-%m-%d %H:%M"),
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
