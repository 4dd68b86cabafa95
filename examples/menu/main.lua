-- A menu bot. Push the menu once with
--   wechat-lua menu push examples/menu/menu.json
-- then every tap arrives as a CLICK event with the button's key.
--   wechat-lua chat --scripts examples/menu --menu examples/menu/menu.toml
--   (try: /menu, then /click MENU_TODAY)

wx.on("event.click", "MENU_TODAY", function()
  return "Today's special: " .. os.date("%A") .. " noodles"
end)

wx.on("event.click", "MENU_CONTACT", function()
  return wx.reply.news{
    { title = "Contact us", description = "Phone, address and opening hours", url = "https://example.com/contact" },
  }
end)

wx.on("event.click", function(msg)
  return "That button (" .. msg.key .. ") is not wired up yet."
end)

-- A VIEW tap opens a link; WeChat only tells us about it.
wx.on("event.view", function(msg)
  wx.log.info("menu link opened", msg.key)
end)

wx.on("text", function()
  return "Use the menu below, or type anything."
end)
