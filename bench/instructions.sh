#!/usr/bin/env bash
# Instructions per request of the in-process path, counted by valgrind's callgrind:
#
#   bash bench/instructions.sh
#
# Runs the `router/plain_text` micro benchmark (server::app driven with oneshot: query,
# signature, replay check, parse, retry cache, Lua, render, response body; no TCP) under
# callgrind for a few seconds and prints the instructions per request of the whole request
# and of its main stages. Instruction counts do not depend on what else the machine is
# doing (the same binary and input count the same within a fraction of a percent), so two
# commits compare on a busy machine where timings spread by 20% or more. They are not time:
# a cache miss or a mispredicted branch counts one instruction, so confirm a change that
# matters with bench/compare.sh. Installs valgrind if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$(mktemp -d /tmp/wechat-lua-instructions.XXXXXX)}

if ! command -v valgrind >/dev/null; then
  echo "installing valgrind" >&2
  if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq valgrind >/dev/null
fi

bench=$(cargo bench --bench micro --no-run --message-format=json 2>/dev/null |
  grep '"kind":\["bench"\]' | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -1)
[ -x "$bench" ] || { echo "no micro bench executable" >&2; exit 1; }
valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.out" "$bench" \
  --bench router/plain_text --profile-time 4 >"$OUT/valgrind.log" 2>&1

callgrind_annotate --inclusive=yes --tree=caller "$OUT/callgrind.out" >"$OUT/callers.txt" 2>/dev/null
callgrind_annotate --inclusive=yes --threshold=100 "$OUT/callgrind.out" >"$OUT/inclusive.txt" 2>/dev/null
# Every request parses one message: the parse's call count is the request count.
requests=$(grep -m1 '< .*InboundMessage::parse_shared (' "$OUT/callers.txt" |
  sed 's/.*(\([0-9,]*\)x).*/\1/' | tr -d ,)
[ -n "$requests" ] || { echo "no request counted; see $OUT" >&2; exit 1; }

# stage LABEL FUNCTION: FUNCTION's inclusive count per request. Callgrind lists a function
# with inlined code once per source file, the outermost entry counting what it calls; the
# largest entry is taken.
stage() {
  awk -v fn="$2" -v n="$requests" -v l="$1" '
    / \(.*%\)  / {
      count = $1; gsub(",", "", count)
      name = $0; sub(/^ *[0-9,]+ \( *[0-9.]+%\)  /, "", name); sub(/ \[[^]]*\]$/, "", name)
      sub(/^[^:]*:/, "", name)
      if (name == fn && count + 0 > total + 0) total = count
    }
    END { printf "%9.0f  %s\n", total / n, l }' "$OUT/inclusive.txt"
}
echo "router/plain_text under callgrind: $requests requests; instructions per request"
stage "whole request (the bench's request loop)" 'tokio::runtime::runtime::Runtime::block_on'
stage "query, signature and replay check" 'wechat_lua::server::verify::check_query::{{closure}}'
stage "XML parse" 'wechat_lua::protocol::message::InboundMessage::parse_shared'
stage "handler task (message table, Lua, reply value)" 'wechat_lua::dispatch::deadline::handle_within::{{closure}}::{{closure}}'
stage "  of which the message table" 'wechat_lua::script::message_table::push_message'
stage "reply render" 'wechat_lua::protocol::reply::Reply::render'
stage "malloc" 'malloc'
stage "free" 'free'
echo "(callgrind output and annotations in $OUT)"
