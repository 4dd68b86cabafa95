#!/usr/bin/env bash
# Two builds of wechat-lua compared in alternating pairs, on server CPU per request:
#
#   bash bench/compare.sh OLD_BIN NEW_BIN [plain|safe] [PAIRS]
#
# Two samples per side were too few on a shared machine (one side alone spread 40%), so
# each pair runs the old then the new build, same payload sizes, same pinning: the server
# on SERVER_CPU (0), `wrk -t1 -c50` on WRK_CPU (1) for DURATION (8s) after a 2 s warm-up,
# with precomputed payloads (each request a new message and a new signed query). Server CPU
# is read from /proc/PID/stat over the run. Prints one line per run and the medians.
# Needs the release `payloads` tool (`cargo build --release --example payloads`) and wrk.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OLD=$(realpath "$1") NEW=$(realpath "$2") MODE=${3:-plain} PAIRS=${4:-5}
DURATION=${DURATION:-8s}
SERVER_CPU=${SERVER_CPU:-0}
WRK_CPU=${WRK_CPU:-1}
PORT=${PORT:-18181}
OUT=${OUT:-$(mktemp -d /dev/shm/wechat-lua-compare.XXXXXX)}
PAYLOADS=${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/payloads
export WECHAT_TOKEN=benchtoken WECHAT_AES_KEY=abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG
export WECHAT_APPID=wx0123456789abcdef RUST_LOG=warn
NEXT=1

# run NAME BIN: one warm-up and one measured run; prints "NAME µs-per-request requests/s".
run() {
  local name=$1 bin=$2 dir="$OUT/$1" secs=${DURATION%s}
  rm -rf "$dir" && mkdir -p "$dir/bot" "$dir/data"
  cp "$ROOT/examples/echo.lua" "$dir/bot/"
  if [ "$MODE" = plain ]; then
    "$PAYLOADS" plain 300000 "$NEXT" 150000 >"$dir/warm"; NEXT=$((NEXT + 300000))
    "$PAYLOADS" plain $((150000 * secs)) "$NEXT" 150000 >"$dir/run"; NEXT=$((NEXT + 150000 * secs))
  else
    "$PAYLOADS" safe 100000 $((9000000000 + NEXT)) 50000 >"$dir/warm"; NEXT=$((NEXT + 100000))
    "$PAYLOADS" safe $((50000 * secs)) $((9000000000 + NEXT)) 50000 >"$dir/run"; NEXT=$((NEXT + 50000 * secs))
  fi
  (cd "$dir" && WECHAT_MODE=$MODE exec taskset -c "$SERVER_CPU" "$bin" serve \
    --listen "127.0.0.1:$PORT" --scripts "$dir/bot/echo.lua" --data "$dir/data") >"$dir/server.log" 2>&1 &
  local pid=$!
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
  taskset -c "$WRK_CPU" wrk -t1 -c50 -d2s -s "$ROOT/bench/signed_text.lua" "http://127.0.0.1:$PORT" -- "$dir/warm" >/dev/null 2>&1
  local before after
  before=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
  taskset -c "$WRK_CPU" wrk -t1 -c50 -d"$DURATION" -s "$ROOT/bench/signed_text.lua" "http://127.0.0.1:$PORT" -- "$dir/run" >"$dir/wrk.txt" 2>&1
  after=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  # Gigabytes per run, and OUT is in /dev/shm (memory) by default.
  rm -f "$dir/warm" "$dir/run"
  local line; line=$(grep '^RESULT ' "$dir/wrk.txt") || { echo "$name: wrk printed no RESULT" >&2; exit 1; }
  case $line in *exhausted=1*) echo "$name ran out of payloads" >&2; exit 1 ;; esac
  awk -v n="$name" -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v l="$line" 'BEGIN {
    split(l, f, " "); for (i in f) { split(f[i], kv, "="); r[kv[1]] = kv[2] }
    printf "%s %.1f %s\n", n, t / hz * 1e6 / r["requests"], r["rps"] }'
}

for i in $(seq "$PAIRS"); do
  run "old-$i" "$OLD"
  run "new-$i" "$NEW"
done | tee "$OUT/results.txt"
for side in old new; do
  grep "^$side-" "$OUT/results.txt" | awk '{ print $2 }' | sort -n |
    awk -v s="$side" '{ v[NR] = $1 } END { printf "%s median: %.1f µs server CPU per request (%d runs)\n", s, (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2), NR }'
done
