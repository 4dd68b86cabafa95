-- An admin broadcast: only listed admins may send to every follower, and only after a
-- preview to themselves.
--   wechat-lua chat --scripts examples/broadcast --as o_admin_1
--   (try: /as o_admin_1, then "broadcast Hello all", then "confirm")

local ADMINS = { o_admin_1 = true }

wx.on("text", "^broadcast%s+(.+)$", function(msg, text)
  if not ADMINS[msg.from] then
    return "Only admins can broadcast."
  end
  local ok, err = wx.mass.preview(msg.from, text)
  if not ok then
    return "Preview failed: " .. err.errmsg
  end
  wx.store.set("broadcast:pending:" .. msg.from, text, 600)
  return "Preview sent to you. Reply \"confirm\" within 10 minutes to send it to everyone."
end)

wx.on("text", "^confirm$", function(msg)
  if not ADMINS[msg.from] then
    return nil
  end
  local text = wx.store.get("broadcast:pending:" .. msg.from)
  if not text then
    return "Nothing to confirm."
  end
  local sent, err = wx.mass.send{ to = { all = true }, message = text }
  if not sent then
    return "Broadcast failed: " .. err.errcode .. " " .. err.errmsg
  end
  wx.store.del("broadcast:pending:" .. msg.from)
  return "Broadcast sent (msg_id " .. tostring(sent.msg_id) .. ")."
end)
