#!/usr/bin/env bash
# Peer baseline for `make bench`: redis-server (Debian) on loopback, measured with
# redis-benchmark: PUBLISH, SET with EX, GET (and plain SET), 50 clients, no pipelining,
# one benchmark thread (the default).
#
# Fair against http.sh in the same `make bench` run: one client thread, 50 connections, no
# pipelining on both sides (redis-benchmark -c 50 -P 1, wrk -t1 -c50), and on 2 or more cores
# both pin the server to CPU 1 and the client to CPU 0 (taskset; BENCH_PIN=0 turns it off).
# GET and plain SET carry the keys redis_get and redis_set (issue 11's HTTP read and PUT peers).
#
# Output contract: one line per figure on stdout,
#   RESULT {"group":"peer-redis","name":"GET","value":<req/s>,"unit":"req/s","p99_us":<us>}
# everything else goes to stderr. Exits 0 even when a measurement fails (value null + note).
#
# Environment: REDIS_BENCH_N (requests per test, default 200000),
#              REDIS_BENCH_C (clients, default 50),
#              REDIS_BENCH_BUDGET (seconds for all the measurements, default 50).
set -u

N=${REDIS_BENCH_N:-200000}
C=${REDIS_BENCH_C:-50}
BUDGET=${REDIS_BENCH_BUDGET:-50}
GROUP=peer-redis
PIN_SERVER=() PIN_CLIENT=()
if [ "${BENCH_PIN:-1}" != 0 ] && command -v taskset >/dev/null && [ "$(nproc 2>/dev/null || echo 1)" -ge 2 ]; then
  PIN_SERVER=(taskset -c 1) PIN_CLIENT=(taskset -c 0)
fi

log() { printf '[redis.sh] %s\n' "$*" >&2; }

json_str() {  # minimal JSON string escaping (backslash, quote, control chars)
  local s=$1
  s=${s//\\/\\\\}; s=${s//\"/\\\"}; s=${s//$'\n'/ }; s=${s//$'\t'/ }; s=${s//$'\r'/ }
  printf '"%s"' "$s"
}

# result NAME VALUE UNIT [P99_US] [NOTE]; VALUE/P99_US may be empty (-> null / omitted)
result() {
  local name=$1 value=$2 unit=$3 p99=${4:-} note=${5:-}
  local line
  local key=""
  case $name in GET) key=redis_get ;; SET) key=redis_set ;; esac
  line="{\"group\":\"$GROUP\",\"name\":$(json_str "$name")"
  [ -n "$key" ] && line+=",\"key\":\"$key\""
  line+=",\"value\":${value:-null},\"unit\":$(json_str "$unit")"
  [ -n "$p99" ] && line+=",\"p99_us\":$p99"
  [ -n "$note" ] && line+=",\"note\":$(json_str "$note")"
  line+="}"
  printf 'RESULT %s\n' "$line"
}

fail_all() {  # every figure null, with the reason
  local why=$1
  for name in PUBLISH "SET EX" GET SET; do result "$name" "" "req/s" "" "$why"; done
  exit 0
}

# --- install (not counted in the time budget) ---------------------------------------
if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-benchmark >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null 2>&1; then
    log "redis-server/redis-benchmark missing and not root: cannot install"
    fail_all "redis-server or redis-benchmark not installed"
  fi
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  log "installing redis-server and redis-tools (apt-get)"
  if ! $SUDO apt-get install -y redis-server redis-tools >&2; then
    log "install failed; running apt-get update and trying again"
    $SUDO apt-get update >&2 || true
    $SUDO apt-get install -y redis-server redis-tools >&2 || true
  fi
  if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-benchmark >/dev/null 2>&1; then
    fail_all "could not install redis-server/redis-tools"
  fi
fi
log "$(redis-server --version 2>/dev/null)"

START=$(date +%s)
remaining() { echo $(( BUDGET - ($(date +%s) - START) )); }

# --- start a private server on a free loopback port --------------------------------
TMPD=$(mktemp -d "${TMPDIR:-/tmp}/sssn-bench-redis.XXXXXX")
RPID=""
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
  if [ -n "$RPID" ] && kill -0 "$RPID" 2>/dev/null; then
    kill "$RPID" 2>/dev/null
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$RPID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$RPID" 2>/dev/null
    wait "$RPID" 2>/dev/null
  fi
  rm -rf "$TMPD"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port_free() {  # nothing accepts on 127.0.0.1:$1
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

PORT=""
for _try in 1 2 3 4 5; do
  p=$(( 20000 + (RANDOM * 32768 + RANDOM) % 40000 ))
  port_free "$p" || continue
  # started directly (not in a subshell) so $! is the server's own pid
  "${PIN_SERVER[@]}" redis-server --save '' --appendonly no --port "$p" --bind 127.0.0.1 --daemonize no \
    --dir "$TMPD" --logfile "$TMPD/redis.log" &
  RPID=$!
  for _ in $(seq 1 50); do
    if redis-cli -h 127.0.0.1 -p "$p" ping 2>/dev/null | grep -q PONG; then PORT=$p; break; fi
    kill -0 "$RPID" 2>/dev/null || break
    sleep 0.05
  done
  [ -n "$PORT" ] && break
  log "redis-server did not come up on port $p; retrying"
  tail -3 "$TMPD/redis.log" >&2 2>/dev/null
  kill "$RPID" 2>/dev/null; wait "$RPID" 2>/dev/null; RPID=""
done
[ -n "$PORT" ] || fail_all "redis-server failed to start"
log "redis-server pid $RPID on 127.0.0.1:$PORT; $N requests, $C clients, -P 1"

# --- measurements -----------------------------------------------------------------
# redis-benchmark --csv (Debian 12, redis 7.0) prints
#   "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
# The test name of a custom command may itself hold quotes, so the 7 numbers are taken
# from the end of the line.
CSV_RE='^"(.*)","([0-9.]+)","([0-9.]+)","([0-9.]+)","([0-9.]+)","([0-9.]+)","([0-9.]+)","([0-9.]+)"[[:space:]]*$'

# bench OUTFILE ARGS... : runs redis-benchmark within what is left of the budget
bench() {
  local out=$1; shift
  local left; left=$(remaining)
  if [ "$left" -le 1 ]; then echo "time budget exhausted" >"$out.err"; return 1; fi
  [ "$left" -gt 25 ] && left=25
  timeout -k 2 "$left" "${PIN_CLIENT[@]}" redis-benchmark -h 127.0.0.1 -p "$PORT" -q -c "$C" -n "$N" -P 1 --csv "$@" \
    >"$out" 2>"$out.err"
  local rc=$?
  [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] && echo "timed out after ${left}s (budget ${BUDGET}s)" >>"$out.err"
  return "$rc"
}

# emit NAME FILE TESTNAME-PREFIX : parse one row of a csv output and print its RESULT
emit() {
  local name=$1 file=$2 want=$3 line rps p99_ms p99_us
  line=$(grep -v '^"test"' "$file" 2>/dev/null | grep -F "\"$want" | head -1)
  if [[ $line =~ $CSV_RE ]]; then
    rps=${BASH_REMATCH[2]}; p99_ms=${BASH_REMATCH[7]}
    p99_us=$(awk -v v="$p99_ms" 'BEGIN { printf "%d", v * 1000 + 0.5 }')
    rps=$(awk -v v="$rps" 'BEGIN { printf "%d", v + 0.5 }')
    log "$name: $rps req/s, p50 ${BASH_REMATCH[5]} ms, p99 $p99_ms ms"
    result "$name" "$rps" "req/s" "$p99_us" \
      "redis-benchmark -c $C -n $N -P 1 on 127.0.0.1, $([ ${#PIN_SERVER[@]} -gt 0 ] && echo "server on CPU 1, client on CPU 0" || echo "not pinned"), redis $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p')"
  else
    local why
    why=$(tr -d '\r' <"$file.err" 2>/dev/null | tail -1)
    log "$name: no result (${why:-no csv row})"
    result "$name" "" "req/s" "" "redis-benchmark failed: ${why:-no csv row}"
  fi
}

bench "$TMPD/publish.csv" PUBLISH chan '{"celsius":22.4}' || true
emit "PUBLISH" "$TMPD/publish.csv" "PUBLISH"

bench "$TMPD/setex.csv" SET key value EX 300 || true
emit "SET EX" "$TMPD/setex.csv" "SET key value EX"

bench "$TMPD/setget.csv" -t set,get || true
emit "GET" "$TMPD/setget.csv" "GET"
emit "SET" "$TMPD/setget.csv" "SET"

log "done in $(( $(date +%s) - START )) s"
exit 0
