-- A quiz that remembers where each user is, in wx.store (shared by every worker and
-- instance, kept across reloads and restarts).
--   wechat-lua chat --scripts examples/quiz     (send "quiz", then answers)

local questions = {
  { q = "What is 2 + 3?", a = "5" },
  { q = "Capital of France?", a = "paris" },
  { q = "How many days in a week?", a = "7" },
}

local function key(msg, what)
  return "quiz:" .. msg.from .. ":" .. what
end

local function ask(i)
  return string.format("Question %d/%d: %s", i, #questions, questions[i].q)
end

wx.on("text", "^quiz$", function(msg)
  wx.store.set(key(msg, "at"), 1)
  wx.store.set(key(msg, "score"), 0)
  return ask(1)
end)

wx.on("text", function(msg)
  local at = wx.store.get(key(msg, "at"))
  if not at then
    return 'Send "quiz" to start.'
  end
  local right = msg.content:lower():match("^%s*(.-)%s*$") == questions[at].a
  local score = wx.store.get(key(msg, "score")) or 0
  if right then
    score = wx.store.incr(key(msg, "score"))
  end
  local verdict = right and "Right!" or ("No — it was " .. questions[at].a .. ".")
  if at == #questions then
    wx.store.del(key(msg, "at"))
    return string.format("%s Final score: %d/%d", verdict, score, #questions)
  end
  wx.store.set(key(msg, "at"), at + 1)
  return verdict .. "\n" .. ask(at + 1)
end)
