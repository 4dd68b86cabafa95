-- A welcome flow keyed by QR-code scene: a QR code made with
--   wx.qrcode.create{scene = "store_42"}
-- brings new followers in with EventKey "qrscene_store_42", and existing followers who scan it
-- with a SCAN event whose EventKey is "store_42".
--   wechat-lua chat --scripts examples/welcome  (try: /subscribe store_42, /scan store_42)

local scenes = {
  store_42 = "Welcome from our Nanshan store! Show this message for a free drink.",
  poster = "Thanks for scanning our poster!",
}

local function scene_text(scene)
  return scenes[scene] or ("Welcome! (scene " .. scene .. ")")
end

wx.on("event.subscribe", function(msg)
  local scene = msg.key and msg.key:match("^qrscene_(.+)$")
  if scene then
    wx.store.incr("followers_from:" .. scene)
    return scene_text(scene)
  end
  return "Welcome! Thanks for following."
end)

wx.on("event.scan", function(msg)
  return "Welcome back! " .. scene_text(msg.key)
end)

wx.on("text", "^stats (%S+)$", function(msg, scene)
  return scene .. ": " .. tostring(wx.store.get("followers_from:" .. scene) or 0) .. " followers"
end)
