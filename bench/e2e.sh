#!/usr/bin/env bash
# End-to-end benchmark of wechat-lua on loopback, in one command from a clean clone:
#
#   bash bench/e2e.sh
#
# Builds release, installs wrk if missing, then drives with wrk:
#   1. the ceiling (benches/tools/ceiling.rs: axum answering a constant reply), at 50
#      connections with one static request (bench/static_request.lua: no Lua per request, so
#      wrk stays cheaper than the server it drives), at 1 connection with the host's client
#      (the round trip there includes wrk's work a request, which must be the same),
#   2. the floor (benches/tools/floor.rs: signature, quick-xml, one Lua call, a rendered
#      reply: the least a Lua bot host must do with a message), the same way,
#   3. `wechat-lua serve` with examples/echo.lua in plaintext mode, at 1 and 50 connections,
#      then again at 50 while the script is rewritten 20 times (reload under load),
#   4. the same bot in safe mode (encrypted messages), at 1 and 50 connections.
#   (the echo runs send pre-built, distinct signed messages: bench/signed_text.lua).
# The server is pinned to one core and wrk to another. Targets are judged on server CPU per
# request (user + system time of the server process over the run ÷ requests): the cost ratio
# is the ceiling's µs per request ÷ the host's. Throughput is reported beside it. When the
# ceiling's run at $CONNS connections kept its server below 90% CPU, the load generator, not
# the ceiling, was the limit and no target against the ceiling gets a verdict. The host's
# plaintext cost minus the floor's is what its own layers (retry cache, replay memory,
# deadline, metrics, the full message table) cost a message, less what its allocator saves:
# the host links jemalloc, the ceiling and the floor the system's. Takes about four minutes
# after the build.
#
# Settings (environment): DURATION (10s), WARMUP (2s), SERVER_CPU (0), WRK_CPU (1),
# CONNS (50), OUT (a new /tmp/wechat-lua-e2e.* directory: logs and results.md; the payloads are deleted at the end), BIN
# (another wechat-lua build to measure with the same harness, e.g. an older commit's).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
SERVER_CPU=${SERVER_CPU:-0}
WRK_CPU=${WRK_CPU:-1}
CONNS=${CONNS:-50}
OUT=${OUT:-$(mktemp -d /tmp/wechat-lua-e2e.XXXXXX)}
mkdir -p "$OUT"
PORT_CEILING=${PORT_CEILING:-18080}
PORT_ECHO=${PORT_ECHO:-18081}
PORT_FLOOR=${PORT_FLOOR:-18082}
RELOADS=20
# Safe-mode payloads are precomputed and each is sent once (a repeated FromUserName + MsgId
# is answered from the host's retry cache, not by Lua), so each run gets at least its
# duration times these rates; raise them if a run reports exhausted=1.
SAFE_MAX_RPS_C1=${SAFE_MAX_RPS_C1:-30000}
SAFE_MAX_RPS=${SAFE_MAX_RPS:-120000}
# Plaintext paths are signed once each too (the host refuses a signed query it has seen):
# each run gets its duration times these rates.
PLAIN_MAX_RPS_C1=${PLAIN_MAX_RPS_C1:-40000}
PLAIN_MAX_RPS=${PLAIN_MAX_RPS:-150000}

# Benchmark-only credentials; the key is WeChat's documented sample EncodingAESKey.
export WECHAT_TOKEN=benchtoken
export WECHAT_AES_KEY=abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG
export WECHAT_APPID=wx0123456789abcdef
export RUST_LOG=${RUST_LOG:-warn}

log() { printf '== %s\n' "$*" >&2; }

# --- tools -------------------------------------------------------------------------------
if ! command -v wrk >/dev/null; then
  log "installing wrk"
  if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq wrk >/dev/null
fi
if [ "$(nproc)" -lt 2 ]; then
  log "warning: $(nproc) CPU: server and wrk share it, the figures mean little"
  WRK_CPU=$SERVER_CPU
fi

log "building release (wechat-lua, ceiling, floor, payloads)"
# Two builds, the binary last: built beside the examples, the binary would get the
# dev-dependencies' features too (tokio's test-util among them) and differ from the one
# `cargo run --release -- serve` runs. The examples do not use the binary, so it stays.
cargo build --release --quiet --example ceiling --example floor --example payloads
cargo build --release --quiet --bin wechat-lua
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
# BIN=path/to/wechat-lua compares another build (say, an older commit) with the same harness.
BIN=${BIN:-$TARGET_DIR/release/wechat-lua}
CEILING=$TARGET_DIR/release/examples/ceiling
FLOOR=$TARGET_DIR/release/examples/floor
PAYLOADS=$TARGET_DIR/release/examples/payloads

# --- helpers -----------------------------------------------------------------------------
SERVER_PID=
cleanup() {
  if [ -n "${RELOADER_PID:-}" ]; then kill "$RELOADER_PID" 2>/dev/null || true; fi
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; fi
  # The payloads are gigabytes (and OUT may be /dev/shm, i.e. memory): results and logs stay.
  rm -f "$OUT"/*.payloads
}
trap cleanup EXIT

wait_for_port() {
  local port=$1
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      log "server exited; its log:"; cat "$OUT/$SERVER_NAME.log" >&2; exit 1
    fi
    sleep 0.1
  done
  log "nothing listens on $port after 10 s"; exit 1
}

# start_server NAME PORT COMMAND...: runs COMMAND pinned to SERVER_CPU, in $OUT (so no
# wechat-lua.toml of the checkout is picked up).
start_server() {
  SERVER_NAME=$1; local port=$2; shift 2
  (cd "$OUT" && exec taskset -c "$SERVER_CPU" "$@") >"$OUT/$SERVER_NAME.out" 2>"$OUT/$SERVER_NAME.log" &
  SERVER_PID=$!
  wait_for_port "$port"
}

stop_server() {
  kill "$SERVER_PID"
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
}

# Peak resident set of the running server, in KiB.
peak_rss_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$SERVER_PID/status"; }

# CPU seconds (user + system) the server has used so far.
server_cpu_seconds() {
  awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$SERVER_PID/stat"
}

declare -A R  # R[run.key] = value, from wrk's RESULT line and the CPU accounting

# seconds DURATION: wrk's 10s / 2m as whole seconds.
seconds() {
  case $1 in
    *m) echo $((${1%m} * 60)) ;;
    *s) echo "${1%s}" ;;
    *) echo "$1" ;;
  esac
}

# wrk_run RUN PORT CONNS PAYLOADS [timeline]: PAYLOADS "static:FILE" sends FILE's first
# request over and over (bench/static_request.lua), for the ceiling and the floor at $CONNS
# connections.
wrk_run() {
  local run=$1 port=$2 conns=$3 payloads=$4 extra=${5:-}
  local cpu_before cpu_after script=$ROOT/bench/signed_text.lua request=
  if [ "${payloads#static:}" != "$payloads" ]; then
    script=$ROOT/bench/static_request.lua request=${payloads#static:} payloads=
  fi
  cpu_before=$(server_cpu_seconds)
  WRK_REQUEST=$request taskset -c "$WRK_CPU" wrk -t1 -c"$conns" -d"$DURATION" --timeout 5s \
    -s "$script" "http://127.0.0.1:$port" -- $payloads $extra \
    >"$OUT/wrk-$run.txt" 2>"$OUT/wrk-$run.err"
  cpu_after=$(server_cpu_seconds)
  local line
  line=$(grep '^RESULT ' "$OUT/wrk-$run.txt") || { log "wrk printed no RESULT:"; cat "$OUT/wrk-$run.txt" "$OUT/wrk-$run.err" >&2; exit 1; }
  for kv in ${line#RESULT }; do R[$run.${kv%%=*}]=${kv#*=}; done
  if [ "${R[$run.exhausted]:-0}" != 0 ]; then
    log "$run ran out of distinct payloads: its rate is understated; raise SAFE_MAX_RPS or PLAIN_MAX_RPS"
    exit 1
  fi
  # Over wrk's own measured seconds, not the wall time: wrk first loads its payloads (seconds
  # for the safe-mode files) while the server idles, which would dilute the share.
  R[$run.server_cpu]=$(awk -v a="$cpu_before" -v b="$cpu_after" -v d="${R[$run.seconds]}" \
    'BEGIN { printf "%.0f", 100 * (b - a) / d }')
  # What the server spent per request, whatever limited the rate.
  R[$run.cpu_us]=$(awk -v a="$cpu_before" -v b="$cpu_after" -v n="${R[$run.requests]}" \
    'BEGIN { if (n > 0) printf "%.2f", 1e6 * (b - a) / n; else print 0 }')
  R[$run.timeline]=$(grep '^TIMELINE ' "$OUT/wrk-$run.txt" | cut -d' ' -f2- || true)
  log "$run: ${R[$run.rps]} req/s, p50 ${R[$run.p50_us]} µs, p99 ${R[$run.p99_us]} µs, bad ${R[$run.bad]}, server CPU ${R[$run.server_cpu]}%, ${R[$run.cpu_us]} µs CPU per request"
}

warm_up() {
  local port=$1 payloads=$2 script=$ROOT/bench/signed_text.lua request=
  if [ "${payloads#static:}" != "$payloads" ]; then
    script=$ROOT/bench/static_request.lua request=${payloads#static:} payloads=
  fi
  WRK_REQUEST=$request taskset -c "$WRK_CPU" wrk -t1 -c"$CONNS" -d"$WARMUP" -s "$script" \
    "http://127.0.0.1:$port" -- $payloads >/dev/null 2>&1
}

# plain_payloads FILE RPS SECONDS: signed requests for one run, in a nonce range of their own,
# timestamped as traffic at RPS a second (so the replay memory holds them in groups of one
# second's messages, as real traffic fills it, not all in one).
NEXT_NONCE=1
plain_payloads() {
  local count=$(($2 * $3))
  "$PAYLOADS" plain "$count" "$NEXT_NONCE" "$2" >"$1"
  NEXT_NONCE=$((NEXT_NONCE + count))
}
# make_plain PREFIX: the four plaintext payload files of one server (warm-up, 1 connection,
# $CONNS connections, the reload run).
make_plain() {
  plain_payloads "$OUT/$1-warmup.payloads" "$PLAIN_MAX_RPS" "$(seconds "$WARMUP")"
  plain_payloads "$OUT/$1-c1.payloads" "$PLAIN_MAX_RPS_C1" "$(seconds "$DURATION")"
  plain_payloads "$OUT/$1-c$CONNS.payloads" "$PLAIN_MAX_RPS" "$(seconds "$DURATION")"
  plain_payloads "$OUT/$1-reload.payloads" "$PLAIN_MAX_RPS" "$(seconds "$DURATION")"
}

healthz() { curl -fsS "http://127.0.0.1:$PORT_ECHO/healthz" 2>/dev/null || echo '{}'; }

LOAD_AT_START=$(cut -d' ' -f1-3 /proc/loadavg)

# --- 1. the ceiling and 2. the floor ----------------------------------------------------
# Payloads are made just before each server's runs: their timestamp must stay within the
# server's 10-minute replay window.
# At $CONNS connections they are sent one signed message over and over: neither keeps state
# (no replay memory, no retry cache), so it is the same work to them as distinct ones, and
# the cheapest load for wrk, which with the per-answer checks of the host's runs could not
# keep their core busy. A status other than 200 (the floor refusing a signature or a body)
# counts as bad.
"$PAYLOADS" plain 1 1 >"$OUT/ceiling.request"

# At one connection the rate is the round trip's, and wrk's own work a request is part of
# it: there the ceiling and the floor get the host's client (distinct signed messages, each
# answer checked by signed_text.lua), so the three differ only in the server. That client
# alone makes a round trip about a fifth slower (docs/benchmarks.md, 2026-12-01, late
# night): sent the one static request instead, the ceiling set the host a bar its client
# could not clear.
#
# stateless_runs NAME PORT COMMAND...: starts COMMAND --listen on PORT, sends it distinct
# signed messages at 1 connection and the one request at $CONNS connections.
stateless_runs() {
  local name=$1 port=$2; shift 2
  log "$name"
  plain_payloads "$OUT/$name-c1.payloads" "$PLAIN_MAX_RPS_C1" "$(seconds "$DURATION")"
  start_server "$name" "$port" "$@" --listen "127.0.0.1:$port"
  warm_up "$port" "static:$OUT/ceiling.request"
  wrk_run "${name}_c1" "$port" 1 "$OUT/$name-c1.payloads"
  wrk_run "${name}_c$CONNS" "$port" "$CONNS" "static:$OUT/ceiling.request"
  R[$name.rss_kib]=$(peak_rss_kib)
  stop_server
}
stateless_runs ceiling "$PORT_CEILING" "$CEILING"
stateless_runs floor "$PORT_FLOOR" "$FLOOR"

# --- 3. echo bot, plaintext, then reload under load --------------------------------------
mkdir -p "$OUT/bot" "$OUT/data-plain"
cp examples/echo.lua "$OUT/bot/echo.lua"
# The second version differs in what the text handler answers; both are valid.
sed 's/return msg.content$/return "v2 " .. msg.content/' examples/echo.lua >"$OUT/echo-v2.lua"
cmp -s examples/echo.lua "$OUT/echo-v2.lua" && { log "echo.lua changed shape: no v2"; exit 1; }
make_plain plain
log "echo, plaintext"
start_server echo-plain "$PORT_ECHO" "$BIN" serve --listen "127.0.0.1:$PORT_ECHO" \
  --scripts "$OUT/bot/echo.lua" --data "$OUT/data-plain"
warm_up "$PORT_ECHO" "$OUT/plain-warmup.payloads"
wrk_run plain_c1 "$PORT_ECHO" 1 "$OUT/plain-c1.payloads"
wrk_run plain_c$CONNS "$PORT_ECHO" "$CONNS" "$OUT/plain-c$CONNS.payloads"
R[plain.rss_kib]=$(peak_rss_kib)

log "echo, plaintext, $RELOADS script rewrites during the run"
duration_s=${DURATION%s}
interval=$(awk -v d="$duration_s" -v n="$RELOADS" 'BEGIN { printf "%.2f", (d - 1) / (n + 1) }')
(
  sleep "$interval"
  for i in $(seq "$RELOADS"); do
    # Rewritten in place, as editors do: the watcher may see a half-written file.
    if [ $((i % 2)) = 1 ]; then cat "$OUT/echo-v2.lua"; else cat "$ROOT/examples/echo.lua"; fi >"$OUT/bot/echo.lua"
    sleep "$interval"
  done
) &
RELOADER_PID=$!
wrk_run reload_c$CONNS "$PORT_ECHO" "$CONNS" "$OUT/plain-reload.payloads" timeline
wait "$RELOADER_PID"; RELOADER_PID=
sleep 1.5  # the last rewrite settles and reloads
healthz >"$OUT/healthz-after-reload.json"
R[reload.rss_kib]=$(peak_rss_kib)
R[reload.generation]=$(sed -n 's/.*"generation":\([0-9]*\).*/\1/p' "$OUT/healthz-after-reload.json")
R[reload.failed]=$(sed -n 's/.*"reloads_failed":\([0-9]*\).*/\1/p' "$OUT/healthz-after-reload.json")
stop_server

# --- 4. echo bot, safe mode --------------------------------------------------------------
mkdir -p "$OUT/data-safe"
cp examples/echo.lua "$OUT/bot/echo.lua"
# Three disjoint MsgId ranges: warm-up, 1 connection, $CONNS connections.
"$PAYLOADS" safe $((SAFE_MAX_RPS * $(seconds "$WARMUP"))) 9000000000 "$SAFE_MAX_RPS" >"$OUT/safe-warmup.payloads"
"$PAYLOADS" safe $((SAFE_MAX_RPS_C1 * $(seconds "$DURATION"))) 9100000000 "$SAFE_MAX_RPS_C1" >"$OUT/safe-c1.payloads"
"$PAYLOADS" safe $((SAFE_MAX_RPS * $(seconds "$DURATION"))) 9200000000 "$SAFE_MAX_RPS" >"$OUT/safe-c$CONNS.payloads"
log "echo, safe mode"
WECHAT_MODE=safe start_server echo-safe "$PORT_ECHO" "$BIN" serve --listen "127.0.0.1:$PORT_ECHO" \
  --scripts "$OUT/bot/echo.lua" --data "$OUT/data-safe"
warm_up "$PORT_ECHO" "$OUT/safe-warmup.payloads"
wrk_run safe_c1 "$PORT_ECHO" 1 "$OUT/safe-c1.payloads"
wrk_run safe_c$CONNS "$PORT_ECHO" "$CONNS" "$OUT/safe-c$CONNS.payloads"
R[safe.rss_kib]=$(peak_rss_kib)
stop_server

# --- report ------------------------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
ms() { awk -v us="$1" 'BEGIN { printf "%.3f", us / 1000 }'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

{
  echo "Run $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)), server on CPU $SERVER_CPU, wrk on CPU $WRK_CPU, $DURATION per run, commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), load average at the start $LOAD_AT_START (other work on the machine shares the cores)."
  echo
  echo "| run | conns | server CPU µs/req | cost ratio (ceiling ÷ run) | req/s | × ceiling | p50 ms | × ceiling | p99 ms | × ceiling | server CPU | bad |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
  for c in 1 "$CONNS"; do
    for kind in ceiling floor plain safe; do
      run=${kind}_c$c; base=ceiling_c$c
      printf '| %s | %s | %s | %s | %.0f | %s | %s | %s | %s | %s | %s%% | %s |\n' "$kind" "$c" \
        "${R[$run.cpu_us]}" "$(ratio "${R[$base.cpu_us]}" "${R[$run.cpu_us]}")" "${R[$run.rps]}" \
        "$(ratio "${R[$run.rps]}" "${R[$base.rps]}")" \
        "$(ms "${R[$run.p50_us]}")" "$(ratio "${R[$run.p50_us]}" "${R[$base.p50_us]}")" \
        "$(ms "${R[$run.p99_us]}")" "$(ratio "${R[$run.p99_us]}" "${R[$base.p99_us]}")" \
        "${R[$run.server_cpu]}" "${R[$run.bad]}"
    done
  done
  run=reload_c$CONNS; base=ceiling_c$CONNS
  printf '| plain + %d reloads | %s | %s | %s | %.0f | %s | %s | %s | %s | %s | %s%% | %s |\n' "$RELOADS" "$CONNS" \
    "${R[$run.cpu_us]}" "$(ratio "${R[$base.cpu_us]}" "${R[$run.cpu_us]}")" "${R[$run.rps]}" \
    "$(ratio "${R[$run.rps]}" "${R[$base.rps]}")" \
    "$(ms "${R[$run.p50_us]}")" "$(ratio "${R[$run.p50_us]}" "${R[$base.p50_us]}")" \
    "$(ms "${R[$run.p99_us]}")" "$(ratio "${R[$run.p99_us]}" "${R[$base.p99_us]}")" \
    "${R[$run.server_cpu]}" "${R[$run.bad]}"
  echo
  echo "| server | peak RSS (VmHWM) MiB | × ceiling |"
  echo "|---|---|---|"
  for kind in ceiling floor plain reload safe; do
    label=$kind; [ "$kind" = reload ] && label="plain, after the reloads"
    echo "| $label | $(mib "${R[$kind.rss_kib]}") | $(ratio "${R[$kind.rss_kib]}" "${R[ceiling.rss_kib]}") |"
  done
  echo
  # The first and last seconds of the timeline are partial.
  timeline=$(echo "${R[reload_c$CONNS.timeline]}" | awk '{ for (i = 2; i < NF; i++) printf "%s%s", $i, (i < NF - 1 ? " " : "") }')
  echo "Reload under load: $RELOADS rewrites (alternating two valid versions), script generation ${R[reload.generation]:-?} after the run (${R[reload.failed]:-?} reloads rejected), ${R[reload_c$CONNS.bad]} non-200 or wrong replies, ${R[reload_c$CONNS.socket_errors]} socket errors."
  echo "Answers per whole second during the reload run: $timeline (steady run: $(printf '%.0f' "${R[plain_c$CONNS.rps]}")/s)."
  echo
  # What the host adds to the floor: its own layers, in µs of server CPU a message.
  echo "The host's own layers (plain − floor, server CPU a message): $(awk -v a="${R[plain_c$CONNS.cpu_us]}" -v b="${R[floor_c$CONNS.cpu_us]}" 'BEGIN { printf "%.2f", a - b }') µs at $CONNS connections, $(awk -v a="${R[plain_c1.cpu_us]}" -v b="${R[floor_c1.cpu_us]}" 'BEGIN { printf "%.2f", a - b }') µs at 1; the floor's cost ratio at $CONNS connections $(ratio "${R[ceiling_c$CONNS.cpu_us]}" "${R[floor_c$CONNS.cpu_us]}"), its req/s at 1 connection $(ratio "${R[floor_c1.rps]}" "${R[ceiling_c1.rps]}") × the ceiling's."
  echo
  # A host run that kept its server below 90% CPU with $CONNS requests outstanding was held
  # back by wrk: its req/s understate the server's, and with fewer messages to each wake-up
  # its µs a message may overstate the server's cost at full load.
  for run in plain_c$CONNS safe_c$CONNS reload_c$CONNS; do
    if [ "${R[$run.server_cpu]}" -lt 90 ]; then
      echo "Note: $run kept the server at ${R[$run.server_cpu]}% CPU: wrk, not the server, set its rate (its req/s understate the server's; its µs a message may overstate its cost at full load)."
      echo
    fi
  done
  echo "Targets:"
  verdict() { if awk "BEGIN { exit !($1) }"; then echo "met"; else echo "MISSED"; fi; }
  # A ratio to a ceiling that did not saturate its core measures the load generator.
  ceiling_cpu=${R[ceiling_c$CONNS.server_cpu]}
  judged() {
    if [ "$ceiling_cpu" -ge 90 ]; then verdict "$1"; else echo "no verdict: ceiling at $ceiling_cpu% server CPU"; fi
  }
  plain_cost=$(ratio "${R[ceiling_c$CONNS.cpu_us]}" "${R[plain_c$CONNS.cpu_us]}")
  safe_cost=$(ratio "${R[ceiling_c$CONNS.cpu_us]}" "${R[safe_c$CONNS.cpu_us]}")
  p99_ratio=$(ratio "${R[plain_c$CONNS.p99_us]}" "${R[ceiling_c$CONNS.p99_us]}")
  c1_ratio=$(ratio "${R[plain_c1.rps]}" "${R[ceiling_c1.rps]}")
  max_rss=$(printf '%s\n' "${R[plain.rss_kib]}" "${R[reload.rss_kib]}" "${R[safe.rss_kib]}" | sort -n | tail -1)
  echo "- echo plaintext at $CONNS connections, cost ratio ≥ 0.50 (${R[ceiling_c$CONNS.cpu_us]} ÷ ${R[plain_c$CONNS.cpu_us]} µs): $plain_cost, $(judged "$plain_cost >= 0.50")"
  echo "- echo plaintext p99 ≤ 1.5 × the ceiling's at $CONNS connections: $p99_ratio ($(ms "${R[plain_c$CONNS.p99_us]}") ms), $(judged "$p99_ratio <= 1.5")"
  echo "- echo safe mode at $CONNS connections, cost ratio ≥ 0.40 (${R[ceiling_c$CONNS.cpu_us]} ÷ ${R[safe_c$CONNS.cpu_us]} µs): $safe_cost, $(judged "$safe_cost >= 0.40")"
  echo "- echo plaintext at 1 connection ≥ 0.85 × the ceiling's req/s: $c1_ratio, $(judged "$c1_ratio >= 0.85")"
  echo "- peak RSS ≤ 48 MiB over the run: $(mib "$max_rss") MiB, $(verdict "$max_rss <= 48 * 1024")"
  echo "- no bad replies while reloading: ${R[reload_c$CONNS.bad]}, $(verdict "${R[reload_c$CONNS.bad]} + ${R[reload_c$CONNS.socket_errors]} == 0")"
} | tee "$OUT/results.md"

log "logs and results.md in $OUT"
bad_total=0
for run in ceiling_c1 ceiling_c$CONNS floor_c1 floor_c$CONNS plain_c1 plain_c$CONNS safe_c1 safe_c$CONNS; do
  bad_total=$((bad_total + R[$run.bad] + R[$run.socket_errors]))
done
if [ "$bad_total" != 0 ]; then
  log "some steady-state requests failed (see $OUT/wrk-*.err): the figures above are not valid"
  exit 1
fi
