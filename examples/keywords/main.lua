-- Keyword auto-reply driven by a table: edit the table, save, and the bot answers anew.
--   wechat-lua chat --scripts examples/keywords

local exact = {
  ["hours"] = "We are open 9:00–18:00, Monday to Friday.",
  ["address"] = "No. 1 Example Road, Shenzhen.",
  ["营业时间"] = "周一至周五 9:00–18:00",
}

-- Patterns are tried in order; the first that matches answers.
local patterns = {
  { "^price%s+(%S+)", function(item) return "Ask us about the price of " .. item .. "!" end },
  { "hello", function() return "Hello! Try: hours, address, price <item>" end },
}

wx.on("text", function(msg)
  local text = msg.content:lower():match("^%s*(.-)%s*$")
  local answer = exact[text]
  if answer then
    return answer
  end
  for _, rule in ipairs(patterns) do
    local captures = { text:match(rule[1]) }
    if #captures > 0 then
      return rule[2](table.unpack(captures))
    end
  end
  return "Sorry, I don't know that one. Try: hours, address, price <item>"
end)
