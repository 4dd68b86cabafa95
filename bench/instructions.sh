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
# matters with bench/compare.sh.
#
#   bash bench/instructions.sh serve [plain|safe|ceiling|floor] [N]
#
# counts the real server instead: the release `wechat-lua serve` (examples/echo.lua) under
# callgrind, sent N (4000) distinct signed messages over TCP by `wrk -c10` after as many to
# warm up, every thread of the process counted from the first measured request to the last:
# TCP, hyper, axum, the host and Lua, all the user-space work of a message. Two runs of one
# build agree within about 0.1%. Valgrind hides the CPU's SHA instructions from the
# program, so SHA-1 runs its portable code: safe-mode counts overstate
# what they cost on the machine. `serve ceiling` and `serve floor` count bench/e2e.sh's
# ceiling and floor the same way (one request, repeated, as e2e.sh sends it): the baselines
# the host's counts compare with.
#
#   CACHE_SIM=1 bash bench/instructions.sh serve [plain|safe|ceiling|floor] [N]
#
# adds callgrind's cache simulation (the machine's level-1 instruction and data caches, 32
# KiB each here): the misses per request beside the instructions. A message's path through
# tokio, hyper, axum, the host and Lua is longer than the instruction cache, so its code is
# fetched again for every burst of requests; the misses are what a change to code size or
# layout moves.
#
#   LL=1048576,16,64 CACHE_SIM=1 bash bench/instructions.sh serve plain
#
# sets the simulated last-level cache (bytes,ways,line) and prints its misses too: 1 MiB
# stands for the level-2 cache, which the level-1 figures do not see. The counts are of a
# host with nearly empty tables. A steady state cannot be counted this way: under valgrind
# the server answers a few hundred messages a second, so by the time a warm-up has filled
# the retry cache (30,000 answers) its oldest expire by age, about ten a counted message,
# where a host at full speed evicts one (docs/benchmarks.md, 2026-12-01 evening).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$(mktemp -d /tmp/wechat-lua-instructions.XXXXXX)}
mkdir -p "$OUT"

# Installs what it needs when missing: valgrind, and wrk for `serve`.
for tool in valgrind wrk; do
  [ "$tool" = wrk ] && [ "${1:-}" != serve ] && continue
  if ! command -v "$tool" >/dev/null; then
    echo "installing $tool" >&2
    if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq "$tool" >/dev/null
  fi
done

if [ "${1:-}" = serve ]; then
  MODE=${2:-plain} N=${3:-4000} PORT=${PORT:-18390}
  # The binary last and on its own, so it has the features `cargo run --release` gives it.
  cargo build --release --quiet --example payloads --example ceiling --example floor
  cargo build --release --quiet --bin wechat-lua
  TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
  export WECHAT_TOKEN=benchtoken WECHAT_AES_KEY=abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG
  export WECHAT_APPID=wx0123456789abcdef RUST_LOG=warn
  if [ "$MODE" = ceiling ] || [ "$MODE" = floor ]; then
    # The ceiling or floor of bench/e2e.sh, sent one request over and over as there at many
    # connections.
    "$TARGET_DIR/release/examples/payloads" plain 1 1 >"$OUT/request"
    export WRK_REQUEST=$OUT/request
    server_command=("$TARGET_DIR/release/examples/$MODE" --listen "127.0.0.1:$PORT")
    script=bench/static_request.lua warm= run=
  else
    mkdir -p "$OUT/bot" "$OUT/data" && cp examples/echo.lua "$OUT/bot/"
    first=1; [ "$MODE" = safe ] && first=9000000001
    "$TARGET_DIR/release/examples/payloads" "$MODE" "$N" "$first" 2000 >"$OUT/warm"
    "$TARGET_DIR/release/examples/payloads" "$MODE" "$N" $((first + 5000000)) 2000 >"$OUT/run"
    server_command=("$TARGET_DIR/release/wechat-lua" serve --listen "127.0.0.1:$PORT"
      --scripts "$OUT/bot/echo.lua" --data "$OUT/data")
    script=bench/signed_text.lua warm=$OUT/warm run=$OUT/run
  fi
  cache_sim=no; [ "${CACHE_SIM:-0}" = 1 ] && cache_sim=yes
  options=(--cache-sim=$cache_sim)
  [ -n "${LL:-}" ] && options+=(--LL="$LL")
  (cd "$OUT" && WECHAT_MODE=$MODE exec valgrind --tool=callgrind "${options[@]}" \
    --compress-strings=no --compress-pos=no --callgrind-out-file="$OUT/callgrind.out" \
    "${server_command[@]}") >"$OUT/server.log" 2>&1 &
  server=$!
  trap 'kill $server 2>/dev/null || true' EXIT
  for _ in $(seq 300); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.2; done
  # Under callgrind the server answers some hundreds a second; wrk stops sending when a
  # file runs out and the duration leaves room for that. The ceiling and the floor, sent
  # one request over and over, answer faster for as long.
  seconds=$((N / 300 + 5))
  wrk -t1 -c10 -d"${seconds}s" -s "$script" "http://127.0.0.1:$PORT" -- $warm >"$OUT/warm.txt" 2>&1
  callgrind_control -z "$server" >/dev/null 2>&1
  wrk -t1 -c10 -d"${seconds}s" -s "$script" "http://127.0.0.1:$PORT" -- $run >"$OUT/run.txt" 2>&1
  callgrind_control -d "$server" >/dev/null 2>&1
  sleep 1
  kill "$server"; wait "$server" 2>/dev/null || true
  rm -f "$OUT/warm" "$OUT/run"
  line=$(grep '^RESULT ' "$OUT/run.txt") || { echo "wrk printed no RESULT; see $OUT" >&2; exit 1; }
  case $line in *" bad=0 "*) ;; *) echo "bad answers: $line" >&2; exit 1 ;; esac
  requests=$(sed 's/.*requests=\([0-9]*\).*/\1/' <<<"$line")
  # The dump after the zeroing: callgrind.out.1 (the first part, at start, is callgrind.out).
  dump=$(ls "$OUT"/callgrind.out.* | head -1)
  # The first event is the instructions (Ir); with the cache simulation, the misses follow.
  total=$(sed -n 's/^summary: //p' "$dump" | cut -d' ' -f1)
  what="wechat-lua serve ($MODE)"
  case $MODE in ceiling | floor) what="the $MODE" ;; esac
  echo "$what under callgrind: $requests requests over TCP; instructions per request"
  echo "$((total / requests))  all user-space work of the process"
  if [ "$cache_sim" = yes ]; then
    # Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw: level-1 misses (instruction, data read, data
    # write), per request, and with LL the last level's.
    paste -d' ' <(sed -n 's/^events: //p' "$dump" | tr ' ' '\n') <(sed -n 's/^summary: //p' "$dump" | tr ' ' '\n') |
      awk -v n="$requests" '$1 ~ /^(I1mr|D1mr|D1mw|ILmr|DLmr|DLmw)$/ && ($1 !~ /^.L/ || ll) {
        printf "%9.0f  %s per request\n", $2 / n, $1 }' ll="${LL:+1}"
  fi
  # The largest functions by their own instructions (no callees), per request.
  awk -v n="$requests" '/^fn=/ { fn = substr($0, 4) } /^calls=/ { getline; next }
    /^[0-9+*-]/ { split($0, a, " "); if (a[2] != "") self[fn] += a[2] }
    END { for (f in self) printf "%9.0f  %s\n", self[f] / n, f }' "$dump" | sort -rn | head -${TOP:-15}
  echo "(callgrind output in $OUT)"
  exit 0
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
