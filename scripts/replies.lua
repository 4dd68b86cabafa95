-- Texts of the default bot, kept apart from the handlers in main.lua (loaded with require).
local M = {}

M.welcome = "Welcome! Send \"help\" to see what I can do."

M.help = table.concat({
  "I answer:",
  "  help          this text",
  "  weather CITY  a weather reply",
  "  news          a news card",
  "  hello / ping  keyword replies",
  "Send a picture and I send it back.",
}, "\n")

M.hint = "Send \"help\" for the list of commands."

M.keywords = {
  hello = "Hello! 你好!",
  ping = "pong",
}

return M
