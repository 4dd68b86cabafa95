-- wrk script for the ceiling's and the floor's runs at many connections in bench/e2e.sh:
-- one request, sent again and again, with no Lua per request, so wrk takes its cheapest path
-- (a static request, no response callback) and the server, not wrk, is what saturates. (At
-- one connection they get the host's client, bench/signed_text.lua, instead.)
--
--   WRK_REQUEST=FILE wrk -t1 -c50 -d10s -s bench/static_request.lua http://127.0.0.1:PORT
--
-- FILE's first line is "PATH<TAB>BODY", as `payloads plain` prints them: the ceiling answers
-- a constant and checks nothing, so repeating one signed message costs it what distinct ones
-- would. Answers are not read by Lua: wrk counts non-2xx statuses (summary.errors.status),
-- which RESULT reports as bad. done() prints the same RESULT line as signed_text.lua.

local file = assert(io.open(assert(os.getenv("WRK_REQUEST"), "WRK_REQUEST is not set"), "r"))
local line = file:read("*l")
file:close()
local path, body = line:match("^([^\t]+)\t(.+)$")
assert(path, "the request line is PATH<TAB>BODY")
wrk.method = "POST"
wrk.path = path
wrk.body = body
wrk.headers["Content-Type"] = "text/xml"

function done(summary, latency, requests)
  local errors = summary.errors
  local socket_errors = errors.connect + errors.read + errors.write + errors.timeout
  io.write(string.format(
    "RESULT requests=%d seconds=%.3f rps=%.1f p50_us=%d p99_us=%d max_us=%d good=%d bad=%d socket_errors=%d exhausted=0\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99), latency.max,
    summary.requests - errors.status, errors.status, socket_errors))
end
