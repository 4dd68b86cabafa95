-- Ask: forwards a user's question to a language model over HTTP and replies with its answer.
-- A fast answer is the reply itself; a slow one (past the reply deadline, 5 s on WeChat) is
-- sent later through customer service by the host, with "typing…" shown meanwhile. Each
-- user's last few exchanges are kept in wx.store, so follow-up questions have context.
--   Set url, key and model in config.lua, then:
--   wechat-lua chat --scripts examples/ask   (try: what is a haiku?  then: write one)
-- The endpoint's host must be public, or listed in the config's [http] allow.

local config = require("config")

local function history_key(openid)
  return "ask:history:" .. openid
end

-- At most `max` bytes, cut at a character boundary: WeChat refuses longer text replies.
local function clip(text, max)
  if #text <= max then
    return text
  end
  local cut = max
  while cut > 0 and (text:byte(cut + 1) & 0xC0) == 0x80 do
    cut = cut - 1
  end
  return text:sub(1, cut) .. "…"
end

-- The model's answer, or nil and what to tell the user instead.
local function ask(history, question)
  local messages = { { role = "system", content = config.system } }
  for _, m in ipairs(history) do
    messages[#messages + 1] = m
  end
  messages[#messages + 1] = { role = "user", content = question }
  local headers = {}
  if config.key ~= "" then
    headers.authorization = "Bearer " .. config.key
  end
  local resp, err = wx.http.post(config.url, { model = config.model, messages = messages },
    { headers = headers, timeout = config.timeout })
  if not resp then
    wx.log.warn("ask: the model cannot be reached:", err.kind, err.message)
    return nil, "Sorry, the assistant cannot be reached right now (" .. err.kind .. ")."
  end
  if resp.status ~= 200 then
    wx.log.warn("ask: the model answered HTTP", resp.status, clip(resp.body, 300))
    return nil, "Sorry, the assistant is having trouble (HTTP " .. resp.status .. "). Please try again later."
  end
  -- Anything but {choices = {{message = {content = "..."}}}} is a broken answer.
  local ok, answer = pcall(function()
    return resp:json().choices[1].message.content
  end)
  if not ok or type(answer) ~= "string" then
    wx.log.warn("ask: the model's answer is not a chat completion:", clip(resp.body, 300))
    return nil, "Sorry, the assistant's answer could not be read."
  end
  return answer
end

wx.on("text", "^/?reset$", function(msg)
  wx.store.del(history_key(msg.from))
  return "Conversation cleared."
end)

wx.on("text", function(msg)
  local history = wx.store.get(history_key(msg.from)) or {}
  local answer, sorry = ask(history, msg.content)
  if not answer then
    return sorry
  end
  history[#history + 1] = { role = "user", content = msg.content }
  history[#history + 1] = { role = "assistant", content = answer }
  while #history > 2 * config.history do
    table.remove(history, 1)
  end
  wx.store.set(history_key(msg.from), history, config.history_ttl)
  return clip(answer, 2000)
end)
