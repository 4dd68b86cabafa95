-- Your bot. `wechat-lua serve` runs this file and reloads it when you save, so the next
-- message already uses your change. `wechat-lua check` reports mistakes with file:line.
--
-- wx.on(kind, [filter], handler) registers a handler; the first one that matches a message
-- answers it. A handler returns nil (no reply), a string (a text reply) or a wx.reply.* table.
-- Kinds: "text", "image", "voice", "video", "location", "link", ..., "event.subscribe",
-- "event.click", ..., "event" (every event) and "*" (everything). Your editor completes them
-- from types/wx.lua.

-- A new follower.
wx.on("event.subscribe", function(msg)
  wx.log.info("new follower", msg.from)
  return "Welcome! Send \"help\" to see what I can do."
end)

-- A menu button, by the key set in the menu.
wx.on("event.click", "HELP", function()
  return "Send any text and I repeat it. Send a picture and I send it back."
end)

-- A Lua pattern on the text: its captures arrive as extra arguments.
wx.on("text", "^hello%s*(.*)$", function(msg, name)
  if name == "" then
    name = "stranger"
  end
  return "Hello, " .. name .. "!"
end)

wx.on("text", "^help$", function()
  return "Send any text and I repeat it. Send a picture and I send it back."
end)

-- Every other text. wx.session(msg) is this user's own table, kept between messages.
wx.on("text", function(msg)
  local session = wx.session(msg)
  session.messages = (session.messages or 0) + 1
  return "You said: " .. msg.content .. " (message " .. session.messages .. ")"
end)

wx.on("image", function(msg)
  return wx.reply.image(msg.media_id)
end)

-- The top level runs while the scripts load and may not wait: wx.store, the WeChat API,
-- wx.http and wx.sleep belong in handlers, or in wx.on_start for start-up work, e.g.
-- (with appid and appsecret in wechat-lua.toml):
-- wx.on_start(function()
--   wx.menu.create{button = {{type = "click", name = "Help", key = "HELP"}}}
-- end)
