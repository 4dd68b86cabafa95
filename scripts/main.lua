-- The default bot: a small tour of what a handler can do. Edit this file while
-- `wechat-lua serve` runs and the next message uses your change.
--
-- Handlers are tried in the order they are registered; the first that matches answers.
-- A handler returns nil (no reply), a string (a text reply) or a wx.reply.* table.

local replies = require("replies")

-- Someone followed the account. A QR code with a scene arrives as EventKey "qrscene_<scene>".
wx.on("event.subscribe", function(msg)
  local scene = msg.key and msg.key:match("^qrscene_(.+)")
  if scene then
    wx.log.info("new follower from QR scene", scene)
  end
  return replies.welcome
end)

-- Menu clicks, by the key set in the menu.
wx.on("event.click", "HELP", function()
  return replies.help
end)

wx.on("event.click", function(msg)
  return "You clicked " .. msg.key
end)

-- A Lua pattern on the text; captures arrive as extra arguments.
wx.on("text", "^weather%s+(%S+)", function(msg, city)
  return "Weather for " .. city .. ": ask a real weather API with wx.api.get in your own bot."
end)

wx.on("text", "^news$", function()
  return wx.reply.news{
    {
      title = "wechat-lua",
      description = "Bots for WeChat Official Accounts, written in Lua.",
      pic_url = "https://example.com/cover.png",
      url = "https://example.com/wechat-lua",
    },
  }
end)

wx.on("text", "^help$", function()
  return replies.help
end)

-- Keyword replies from a table.
wx.on("text", function(msg)
  local answer = replies.keywords[msg.content:lower()]
  if answer then
    return answer
  end
  return "You said: " .. msg.content .. "\n\n" .. replies.hint
end)

wx.on("image", function(msg)
  return wx.reply.image(msg.media_id)
end)

wx.on("location", function(msg)
  return string.format("You are at %s, %s (%s)", msg.location_x, msg.location_y, msg.label or "?")
end)
