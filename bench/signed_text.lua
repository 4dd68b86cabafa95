-- wrk script for bench/e2e.sh: sends correctly signed WeChat text messages and counts the
-- answers that are not a reply.
--
--   wrk -t1 -c50 -d10s -s bench/signed_text.lua http://127.0.0.1:PORT -- PAYLOADS [timeline]
--
-- PAYLOADS is what `payloads` printed (benches/tools/payloads.rs): lines "PATH<TAB>BODY",
-- formatted into requests once, at start-up, so that a request costs wrk a table lookup
-- (building bodies here per request made wrk, not the ceiling server, the bottleneck).
--   * plaintext: each path signed with its own nonce and each body with its own MsgId (the
--     host refuses a signed query it has seen, and answers a repeated MsgId from its retry
--     cache, which would measure the cache, not the path).
--   * safe mode: pre-encrypted messages, each with its own msg_signature.
-- Each is sent once. When they run out the thread stops early and RESULT says exhausted=1:
-- wrk still divides by the whole duration, so e2e.sh then fails the run (make more payloads).
-- A good answer is a 200 whose body has <Content> (plaintext) or <Encrypt> (safe mode).
-- With "timeline", answers are also counted per wall-clock second, to show a dip (reload).
-- With "accounts=N" (plaintext only; bench/accounts.sh), request k goes to /wechat/acc<k mod N>
-- instead of /wechat: every account is signed with the same token, so one signed query
-- serves any of them (still each once).
-- done() prints one line "RESULT key=value ..." that e2e.sh parses.
-- (The ceiling and the floor at many connections are driven by bench/static_request.lua
-- instead: it checks nothing per request. At one connection they get this script too.)

local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

local pool, expect, timeline
local sent = 0

function init(args)
  local accounts = 0
  timeline = false
  for i = 2, #args do
    if args[i] == "timeline" then
      timeline = true
    end
    accounts = tonumber(args[i]:match("^accounts=(%d+)$")) or accounts
  end
  local file = assert(io.open(args[1], "r"), "cannot open payloads file " .. tostring(args[1]))
  pool = {}
  for line in file:lines() do
    local p, body = line:match("^([^\t]+)\t(.+)$")
    assert(p or line == "", "payload lines are PATH<TAB>BODY")
    if p then
      if accounts > 0 then
        p = "/wechat/acc" .. (#pool % accounts) .. p:sub(#"/wechat" + 1)
      end
      table.insert(pool, wrk.format("POST", p, { ["Content-Type"] = "text/xml" }, body))
    end
  end
  file:close()
  assert(#pool > 0, "payloads file is empty")
  expect = pool[1]:find("<Encrypt>", 1, true) and "<Encrypt>" or "<Content>"
  bad, good, buckets, exhausted = 0, 0, {}, 0
end

function request()
  sent = sent + 1
  if sent > #pool then
    exhausted = 1
    wrk.thread:stop()
    sent = #pool
  end
  return pool[sent]
end

function response(status, headers, body)
  if status == 200 and body:find(expect, 1, true) then
    good = good + 1
  else
    bad = bad + 1
    if bad <= 3 then
      io.stderr:write("bad answer: " .. status .. " " .. body:sub(1, 200) .. "\n")
    end
  end
  if timeline then
    local second = os.time()
    buckets[second] = (buckets[second] or 0) + 1
  end
end

function done(summary, latency, requests)
  local bad_total, good_total, merged, exhausted_any = 0, 0, {}, 0
  for _, thread in ipairs(threads) do
    exhausted_any = math.max(exhausted_any, thread:get("exhausted") or 0)
    bad_total = bad_total + thread:get("bad")
    good_total = good_total + thread:get("good")
    for second, n in pairs(thread:get("buckets") or {}) do
      merged[second] = (merged[second] or 0) + n
    end
  end
  local errors = summary.errors
  local socket_errors = errors.connect + errors.read + errors.write + errors.timeout
  io.write(string.format(
    "RESULT requests=%d seconds=%.3f rps=%.1f p50_us=%d p99_us=%d max_us=%d good=%d bad=%d socket_errors=%d exhausted=%d\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99), latency.max,
    good_total, bad_total, socket_errors, exhausted_any))
  local seconds = {}
  for second in pairs(merged) do
    table.insert(seconds, second)
  end
  table.sort(seconds)
  if #seconds > 0 then
    local counts = {}
    for _, second in ipairs(seconds) do
      table.insert(counts, tostring(merged[second]))
    end
    -- The first and last seconds are partial; e2e.sh drops them.
    io.write("TIMELINE " .. table.concat(counts, " ") .. "\n")
  end
end
