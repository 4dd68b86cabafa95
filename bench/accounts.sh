#!/usr/bin/env bash
# Many accounts in one process: start-up time, memory and throughput with N `[[accounts]]`
# sharing the scripts, against the same host with none.
#
#   bash bench/accounts.sh            # N=1000
#   N=10 DURATION=2s bash bench/accounts.sh   # a smoke run
#
# Builds the release binary and the `payloads` tool if missing, then, for a host with no
# [[accounts]] and one with N (each with an appid, appsecret and token; all share
# examples/echo.lua and the token, so one signed query serves any of them, each once):
#   - start-up: from exec until /readyz answers 200 (polled every 10 ms);
#   - RSS after start-up (VmRSS), and per account: (RSS with N - RSS with none) / N;
#   - req/s with `wrk -t1 -c$CONNS` for DURATION: all requests to one account
#     (/wechat/acc0), then spread over all N (/wechat/acc<k mod N>), in the same run, and
#     RSS after both (each account's retry cache and window tracker hold entries by then).
# The server is pinned to SERVER_CPU and wrk to WRK_CPU. Prints a Markdown table; keeps the
# logs, configs and payloads in OUT.
#
# Settings (environment): N (1000), DURATION (10s), WARMUP (2s), CONNS (50), SERVER_CPU (0),
# WRK_CPU (1), PORT (18191), OUT (a new /tmp/wechat-lua-accounts.* directory), BIN and
# PAYLOADS (other builds of wechat-lua and of the payloads tool, e.g. debug ones for a smoke
# run), MAX_RPS (150000: payloads made per second of DURATION; raise it if wrk reports
# exhausted=1).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
N=${N:-1000}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
CONNS=${CONNS:-50}
SERVER_CPU=${SERVER_CPU:-0}
WRK_CPU=${WRK_CPU:-1}
PORT=${PORT:-18191}
MAX_RPS=${MAX_RPS:-150000}
OUT=${OUT:-$(mktemp -d /tmp/wechat-lua-accounts.XXXXXX)}
mkdir -p "$OUT"
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$(realpath -m "${BIN:-$TARGET/release/wechat-lua}")
PAYLOADS=$(realpath -m "${PAYLOADS:-$TARGET/release/examples/payloads}")

# Benchmark-only credentials: one token for every account (so a signed query is good at any
# path); the API base is a closed port (the echo bot calls no API).
export WECHAT_TOKEN=benchtoken
export RUST_LOG=${RUST_LOG:-warn}
unset WECHAT_AES_KEY WECHAT_APPID WECHAT_APPSECRET WECHAT_MODE WECHAT_STORE || true

log() { printf '== %s\n' "$*" >&2; }

if [ ! -x "$BIN" ] || [ ! -x "$PAYLOADS" ]; then
  log "building release (wechat-lua, payloads)"
  # The binary on its own, last, so it is built without the dev-dependencies' features.
  cargo build --release --example payloads
  cargo build --release --bin wechat-lua
fi
command -v wrk >/dev/null || { echo "wrk is needed (apt-get install -y wrk)" >&2; exit 1; }
command -v curl >/dev/null || { echo "curl is needed" >&2; exit 1; }

secs=${DURATION%s}
NEXT_NONCE=1
# payloads COUNT: a file of COUNT signed /wechat queries, nonces never reused in this run.
payloads() {
  local file
  file=$(mktemp "$OUT/payloads.XXXXXX")
  "$PAYLOADS" plain "$1" "$NEXT_NONCE" >"$file"
  NEXT_NONCE=$((NEXT_NONCE + $1))
  echo "$file"
}

# config COUNT DIR: wechat-lua.toml with COUNT [[accounts]] sharing the scripts.
config() {
  local count=$1 dir=$2 i
  mkdir -p "$dir/data"
  {
    echo "scripts = \"$ROOT/examples/echo.lua\""
    echo "data = \"$dir/data\""
    echo "api_base = \"http://127.0.0.1:9\""
    for ((i = 0; i < count; i++)); do
      printf '\n[[accounts]]\nname = "acc%d"\nappid = "wxbench%06d"\nappsecret = "benchsecret%021d"\ntoken = "%s"\n' \
        "$i" "$i" "$i" "$WECHAT_TOKEN"
    done
  } >"$dir/wechat-lua.toml"
}

rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }
now_ms() { date +%s%3N; }

# wrk_rps PAYLOADS ACCOUNTS: req/s of one wrk run (0 for /wechat); fails on bad answers.
wrk_rps() {
  local file=$1 accounts=$2 out line
  out=$(taskset -c "$WRK_CPU" wrk -t1 -c"$CONNS" -d"$DURATION" -s "$ROOT/bench/signed_text.lua" \
    "http://127.0.0.1:$PORT" -- "$file" "accounts=$accounts" 2>&1)
  echo "$out" >>"$OUT/wrk.txt"
  line=$(grep '^RESULT ' <<<"$out") || { echo "wrk printed no RESULT: $out" >&2; exit 1; }
  case $line in *exhausted=1*) echo "ran out of payloads: raise MAX_RPS" >&2; exit 1 ;; esac
  case $line in *" bad=0 "*) ;; *) echo "bad answers: $line" >&2; exit 1 ;; esac
  sed -n 's/.* rps=\([0-9.]*\).*/\1/p' <<<"$line"
}

# measure NAME COUNT: starts a host with COUNT accounts; sets START_MS, RSS_START and, with
# COUNT > 0, RPS_ONE, RPS_ALL and RSS_LOADED.
measure() {
  local name=$1 count=$2 dir="$OUT/$1" started pid ready=""
  config "$count" "$dir"
  started=$(now_ms)
  (cd "$dir" && exec taskset -c "$SERVER_CPU" "$BIN" serve --config "$dir/wechat-lua.toml" \
    --listen "127.0.0.1:$PORT") >"$dir/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 6000); do
    if curl -fsS -o /dev/null "http://127.0.0.1:$PORT/readyz" 2>/dev/null; then ready=1; break; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.01
  done
  [ -n "$ready" ] || { echo "$name did not become ready; see $dir/server.log" >&2; kill "$pid" 2>/dev/null; exit 1; }
  START_MS=$(($(now_ms) - started))
  RSS_START=$(rss_kib "$pid")
  curl -fsS "http://127.0.0.1:$PORT/healthz" >"$dir/healthz.json"
  if [ "$count" -gt 0 ]; then
    local listed
    listed=$(grep -o '"scripts":"shared"' "$dir/healthz.json" | wc -l)
    [ "$listed" -eq $((count + 1)) ] || { echo "/healthz lists $listed shared accounts, not $((count + 1))" >&2; exit 1; }
    log "$name: warm-up $WARMUP"
    DURATION=$WARMUP wrk_rps "$(payloads $((MAX_RPS * ${WARMUP%s})))" "$count" >/dev/null
    log "$name: one account, $DURATION"
    RPS_ONE=$(wrk_rps "$(payloads $((MAX_RPS * secs)))" 1)
    log "$name: spread over $count accounts, $DURATION"
    RPS_ALL=$(wrk_rps "$(payloads $((MAX_RPS * secs)))" "$count")
    RSS_LOADED=$(rss_kib "$pid")
  fi
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

log "host without [[accounts]]"
measure base 0
BASE_START_MS=$START_MS BASE_RSS=$RSS_START
log "host with $N [[accounts]]"
measure many "$N"

per_account=$(awk -v a="$RSS_START" -v b="$BASE_RSS" -v n="$N" 'BEGIN { printf "%.1f", (a - b) / n }')
ratio=$(awk -v a="$RPS_ALL" -v b="$RPS_ONE" 'BEGIN { printf "%.2f", a / b }')
{
  echo "| $N accounts sharing examples/echo.lua ($(nproc) cores, wrk -t1 -c$CONNS, $DURATION) | figure |"
  echo "|---|---|"
  echo "| start-up until /readyz, no accounts | ${BASE_START_MS} ms |"
  echo "| start-up until /readyz, $N accounts | ${START_MS} ms |"
  echo "| RSS after start-up, no accounts | $((BASE_RSS / 1024)) MiB |"
  echo "| RSS after start-up, $N accounts | $((RSS_START / 1024)) MiB (${per_account} KiB per account) |"
  echo "| req/s, all to one account | ${RPS_ONE} |"
  echo "| req/s, spread over $N accounts | ${RPS_ALL} (×${ratio}) |"
  echo "| RSS after both runs | $((RSS_LOADED / 1024)) MiB |"
} | tee "$OUT/results.md"
log "logs, configs and payloads in $OUT"
