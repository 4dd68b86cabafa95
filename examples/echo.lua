-- The echo bot: answers every message with itself. Other projects' tests rely on exactly
-- this behaviour, so change it only together with them.
--   wechat-lua serve --scripts examples/echo.lua

wx.on("text", function(msg)
  return msg.content
end)

wx.on("image", function(msg)
  return wx.reply.image(msg.media_id)
end)

wx.on("voice", function(msg)
  return wx.reply.voice(msg.media_id)
end)

wx.on("video", function(msg)
  return wx.reply.video{ media_id = msg.media_id }
end)

wx.on("location", function(msg)
  return msg.location_x .. "," .. msg.location_y
end)

wx.on("link", function(msg)
  return wx.reply.news{
    { title = msg.title, description = msg.description, url = msg.url },
  }
end)

wx.on("event.subscribe", function()
  return "welcome"
end)

wx.on("event.click", function(msg)
  return "click:" .. msg.key
end)

wx.on("event.scan", function(msg)
  return "scan:" .. msg.key
end)
