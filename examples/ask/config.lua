-- Settings of the ask bot: an OpenAI-compatible chat-completions endpoint (OpenAI, DeepSeek,
-- Moonshot, a local Ollama or vLLM, ...). Keep the real key out of version control.
return {
  url = "https://api.openai.com/v1/chat/completions",
  key = "",                 -- sent as "Authorization: Bearer <key>"; empty sends none
  model = "gpt-4o-mini",
  system = "You answer questions from WeChat users briefly, in the language they write in.",
  history = 4,              -- question/answer pairs remembered per user
  history_ttl = 1800,       -- seconds a conversation is remembered after its last message
  timeout = 60,             -- seconds to wait for an answer (wx.http's most)
}
