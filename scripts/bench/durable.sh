#!/usr/bin/env bash
# Durable channels' part of the benchmarks (issue 13): what acknowledging a write only after it is
# committed costs, next to in-memory channels and next to redis with an append-only file, all on
# this machine's disk (the data directories are made under ${TMPDIR:-/tmp}; a note says when that
# is a tmpfs, where an fsync costs nothing).
#   (a) HTTP PUT /channels/d with wrk (scripts/bench/wrk_put.lua, as http.sh: -t1 -c50, 5 s,
#       keep-alive, host on CPU 1 and wrk on CPU 0) on an in-memory broadcast channel, on a durable
#       one with --sync normal and with --sync full (a fresh --data-dir each);
#   (b) the same from Lua in the host: 1 task writing in a loop (each write waits for its commit)
#       and 50 tasks at once (the writes of a loop turn share one commit), on the same three;
#   (c) redis-server with appendonly no, appendonly yes + appendfsync everysec, and always,
#       measured with redis-benchmark SET (-c 50 -P 1 as redis.sh, 16-byte values as the PUT body);
#   (d) the worst loop stall: sssn_loop_turn_max_seconds (and the slow-turn counters) from
#       /metrics before and after each wrk run of (a), with the CPU time the hypervisor stole
#       meanwhile, next to the machine's floor (the longest clock gap a spinning thread sees);
#   and what an fsync of 4 KiB costs on this disk (dd oflag=dsync), the bound under --sync full.
#
#   bash scripts/bench/durable.sh [path/to/sssn-host]      (default ./sssn-host)
#
# stdout: only RESULT {json} lines (group "durable", keys durable_*); progress and tool output go
# to stderr. A figure that cannot be measured is printed with "value": null and a note: when the
# host has no durable channels (no --data-dir, or `durable = true` refused) the durable figures
# say so and the rest is measured. About 60 s. Servers listen on 127.0.0.1 only and are stopped
# by pid. DURABLE_PARTS="http lua redis fsync" (the default) picks parts; STALL_FIFO=1 adds stall
# runs with the loop's thread at SCHED_FIFO (see FIFO below).
set -u

BIN=${1:-./sssn-host}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
WRK_CONNS=50 WRK_SECS=${WRK_SECS:-5}
LUA_SECS=${LUA_SECS:-2}
REDIS_SECS=${REDIS_SECS:-5}
PIN_SERVER=() PIN_CLIENT=()
if [[ ${BENCH_PIN:-1} != 0 ]] && command -v taskset >/dev/null && [[ $(nproc 2>/dev/null || echo 1) -ge 2 ]]; then
  PIN_SERVER=(taskset -c 1) PIN_CLIENT=(taskset -c 0)
fi
PINNED=$([[ ${#PIN_SERVER[@]} -gt 0 ]] && echo "server on CPU 1, client on CPU 0" || echo "not pinned")
MODES=(memory normal full)

log() { printf 'durable.sh: %s\n' "$*" >&2; }
json_str() {
  local s=$1
  s=${s//\\/\\\\}; s=${s//\"/\\\"}; s=${s//$'\n'/ }; s=${s//$'\r'/ }; s=${s//$'\t'/ }
  s=$(printf '%s' "$s" | tr -d '\000-\037')
  printf '"%s"' "$s"
}
is_number() { [[ $1 =~ ^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$ ]]; }
# result KEY NAME VALUE UNIT [P99_US] [NOTE] [EXTRA_JSON_MEMBERS]
result() {
  local key=$1 name=$2 value=$3 unit=$4 p99=${5:-} note=${6:-} extra=${7:-} line
  is_number "$value" || value=null
  line="{\"group\":\"durable\",\"key\":\"$key\",\"name\":$(json_str "$name"),\"value\":$value,\"unit\":$(json_str "$unit")"
  is_number "$p99" && line+=",\"p99_us\":$p99"
  [[ -n $note ]] && line+=",\"note\":$(json_str "$note")"
  [[ -n $extra ]] && line+=",$extra"
  printf 'RESULT %s}\n' "$line"
}
part() { [[ " ${DURABLE_PARTS:-http lua redis fsync} " == *" $1 "* ]]; }
mode_label() { case $1 in memory) echo "in-memory" ;; *) echo "durable, --sync $1" ;; esac; }
host_args() { # the options a mode's host runs with (a fresh data directory under $TMP)
  case $1 in memory) ;; *) printf '%s\n' --data-dir "$TMP/data.$1.$2" --sync "$1" ;; esac
}
http_key() { echo "durable_http_$1"; }
stall_key() { echo "durable_stall_$1"; }

case $BIN in /*) ;; *) BIN=$PWD/$BIN ;; esac
TMP=$(mktemp -d "${TMPDIR:-/tmp}/sssn-bench-durable.XXXXXX")
FSTYPE=$(df --output=fstype "$TMP" 2>/dev/null | tail -n1 | tr -d ' ')
[[ -n $FSTYPE ]] || FSTYPE=$(stat -f -c %T "$TMP" 2>/dev/null || echo unknown)
DISK_NOTE="data on $FSTYPE"
[[ $FSTYPE == tmpfs || $FSTYPE == ramfs ]] && DISK_NOTE="data on $FSTYPE: an fsync costs nothing there, set TMPDIR to a disk"
log "data directories under $TMP ($FSTYPE)"

source "$(dirname "${BASH_SOURCE[0]}")/procs.sh" # PIDS, cleanup at exit, stop_pid, free_port

# --- does this host have durable channels? ----------------------------------------------
# The durable figures need `--data-dir` and `durable = true`; without them they are null with
# the reason (the host's own words), and everything else is measured.
HAVE_HOST=1 DURABLE_WHY=""
# the first line of a host's stderr that says what went wrong (an error, an unknown option)
host_error() { grep -m1 -E ': error: |unknown option|usage:' "$1" 2>/dev/null | cut -c1-300; }

# the fixture: one system owning the broadcast channel "d", durable or not; the step does nothing
fixture() { # fixture MODE -> path of the script
  local f=$TMP/fixture.$1.lua durable=""
  [[ $1 != memory ]] && durable=", durable = true"
  cat >"$f" <<EOF
-- durable.sh fixture ($1): a public broadcast channel "d" (capacity 1000, the default)
local sssn = require "sssn"
local s = sssn.system { id = "bench-durable", name = "Bench Durable", tick_rate = 1 }
function s:setup()
  self:add_channel(sssn.broadcast { id = "d", name = "Bench Durable", visibility = "public"$durable })
end
function s:step() end
return s
EOF
  echo "$f"
}

if [[ ! -x $BIN ]]; then
  HAVE_HOST=0; DURABLE_WHY="no sssn-host binary at $BIN (run make)"
else
  # a host with a durable channel for a moment: does it take --data-dir and durable = true?
  timeout 15 "$BIN" --log-level warn --duration 0.3 --data-dir "$TMP/probe" --sync normal "$(fixture normal)" \
    >"$TMP/probe.out" 2>"$TMP/probe.err"
  why=$(host_error "$TMP/probe.err")
  [[ -n $why ]] && DURABLE_WHY="this sssn-host refuses durable channels: $why"
fi
[[ -n $DURABLE_WHY ]] && log "$DURABLE_WHY"

# --- (a) and (d): HTTP PUT with wrk, the loop's worst turn from /metrics --------------------
if ! command -v wrk >/dev/null; then
  log "installing wrk (apt-get install -y wrk)"
  SUDO=; [[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null && SUDO="sudo -n"
  timeout 120 $SUDO apt-get install -y wrk >&2 ||
    { timeout 120 $SUDO apt-get update >&2 && timeout 120 $SUDO apt-get install -y wrk >&2; }
fi
HAVE_WRK=1; command -v wrk >/dev/null || HAVE_WRK=0

# ctxt_switches PID -> "VOLUNTARY INVOLUNTARY" of its main thread (the loop's): a turn the kernel
# preempted (involuntary) or that waited in a system call (voluntary) is long in wall time too
ctxt_switches() {
  awk '/^voluntary_ctxt_switches/ { v = $2 } /^nonvoluntary_ctxt_switches/ { n = $2 } END { print v + 0, n + 0 }' \
    "/proc/$1/status" 2>/dev/null
}
# steal_ms -> milliseconds the hypervisor took from the host's CPU (CPU 1 when pinned, else all)
# since boot (/proc/stat's steal column): a vCPU not running makes every turn on it longer
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)
steal_ms() {
  local cpu=cpu; [[ ${#PIN_SERVER[@]} -gt 0 ]] && cpu=cpu1
  awk -v c="$cpu" -v t="$CLK_TCK" '$1 == c { printf "%d", $9 * 1000 / t }' /proc/stat
}
# metric TEXT NAME -> the value of the first sample of NAME (with its labels, if given)
metric() { awk -v n="$2" '$1 == n { print $2; exit }' <<<"$1"; }

# STALL_FIFO=1 adds a second stall run per mode with the loop's thread at SCHED_FIFO (root and
# chrt needed; off by default: at saturation the loop thread uses over 95% of CPU 1 and the
# kernel's real-time throttling then stops it for up to 50 ms a second, a stall of its own, so
# those runs showed no less than the plain ones on this VM). The host starts unpinned, then its main thread alone (the loop's) is moved to
# CPU 1 at SCHED_FIFO; its durable channels' writer threads stay at normal priority and free to
# run on either CPU (on CPU 1 they would wait for the loop to block, never preempt it). No other
# task preempts the loop thread then, so a long turn is the host's own: its work, or a system
# call it waited in. Under normal scheduling, with the whole host pinned to CPU 1 (the runs that
# give the req/s), a saturated loop on this 2-core VM is preempted by kernel threads, other
# processes and its own writer threads for up to tens of ms, in memory too.
FIFO=()
if [[ ${STALL_FIFO:-0} != 0 && $(id -u) -eq 0 ]] && command -v chrt >/dev/null; then FIFO=(chrt -f 10); fi

# start_host MODE RUN [PREFIX...] -> sets HOST_PID HOST_URL; false (with HOST_WHY) when it did
# not serve "d". PREFIX: what the host runs under (taskset, chrt).
HOST_PID= HOST_URL= HOST_WHY=
start_host() {
  local mode=$1 run=$2 port try err info args=()
  shift 2
  mapfile -t args < <(host_args "$mode" "$run")
  for try in 1 2 3; do
    port=$(free_port) || { HOST_WHY="no free port"; return 1; }
    HOST_URL=http://127.0.0.1:$port
    err=$TMP/host.$mode.$run.$try.err
    "$@" "$BIN" --listen "127.0.0.1:$port" --log-level warn "${args[@]}" "$(fixture "$mode")" \
      >"$TMP/host.$mode.$run.out" 2>"$err" &
    HOST_PID=$!; PIDS+=("$HOST_PID")
    for _ in $(seq 100); do
      info=$(curl -s --max-time 1 "$HOST_URL/channels/d/info" 2>/dev/null)
      [[ $info == *'"id":"d"'* ]] && break
      kill -0 "$HOST_PID" 2>/dev/null || break
      # a setup error leaves the host running without the channel: no need to wait further
      [[ -n $(host_error "$err") ]] && break
      sleep 0.05
    done
    if [[ $info == *'"id":"d"'* ]]; then
      if [[ $mode != memory && $info != *'"durable":true'* ]]; then
        HOST_WHY="the host serves channel d but its info has no \"durable\": true"
        stop_pid "$HOST_PID"; return 1
      fi
      log "host pid $HOST_PID on $HOST_URL ($(mode_label "$mode"), run $run)"
      return 0
    fi
    HOST_WHY=$(host_error "$err")
    if kill -0 "$HOST_PID" 2>/dev/null && [[ -n $HOST_WHY ]]; then
      stop_pid "$HOST_PID"; return 1 # the channel was refused: trying again changes nothing
    fi
    log "the host ($mode) did not come up on $port (try $try):"; tail -n 5 "$err" >&2
    stop_pid "$HOST_PID"
    [[ -n $HOST_WHY && $HOST_WHY != *"already in use"* ]] && return 1
    HOST_WHY="the host did not start"
  done
  return 1
}

# wrk_put MODE SCHED: PUT /channels/d with wrk on a fresh host of MODE; SCHED normal prints the
# req/s figure and the stall figure, SCHED fifo (the host at SCHED_FIFO) only the stall figure
wrk_put() {
  local mode=$1 sched=$2 key name skey sname out rps p99 p99_us="" non2xx reqs note m0 m1 v prefix=() skip=""
  key=$(http_key "$mode") skey=$(stall_key "$mode")
  name="PUT /channels/{id}, $(mode_label "$mode") (wrk)"
  sname="worst loop turn under PUT load, $(mode_label "$mode")"
  [[ $sched == fifo && ${#FIFO[@]} -eq 0 ]] && return # only with STALL_FIFO=1 (and root and chrt)
  if [[ $sched == fifo ]]; then skey+=_fifo sname+=", loop thread at SCHED_FIFO"; fi
  if [[ $HAVE_HOST != 1 ]]; then skip=$DURABLE_WHY
  elif [[ $mode != memory && -n $DURABLE_WHY ]]; then skip="skipped: $DURABLE_WHY"
  elif [[ $HAVE_WRK != 1 ]]; then skip="wrk is not installed"
  fi
  prefix=("${PIN_SERVER[@]}")
  [[ $sched == fifo ]] && prefix=()
  if [[ -z $skip ]] && ! start_host "$mode" "http-$sched" "${prefix[@]}"; then
    log "$name: $HOST_WHY"; skip="skipped: $HOST_WHY"
  fi
  if [[ -z $skip && $sched == fifo ]]; then # the loop's thread alone (taskset -p and chrt -p: one thread)
    [[ ${#PIN_SERVER[@]} -gt 0 ]] && taskset -p -c 1 "$HOST_PID" >/dev/null
    if ! chrt -f -p 10 "$HOST_PID"; then
      skip="not measured: chrt -f -p 10 $HOST_PID failed"; stop_pid "$HOST_PID"
    else
      log "loop thread $HOST_PID: $(chrt -p "$HOST_PID" | head -1 | sed 's/.*: //'), CPUs $(taskset -cp "$HOST_PID" | sed 's/.*: //'); threads: $(ls /proc/"$HOST_PID"/task | wc -l)"
    fi
  fi
  if [[ -n $skip ]]; then
    [[ $sched == normal ]] && result "$key" "$name" null "req/s" "" "$skip"
    result "$skey" "$sname" null "ms" "" "$skip"; return
  fi
  m0=$(curl -s --max-time 2 "$HOST_URL/metrics")
  local cs0 cs1 st0 st1
  cs0=$(ctxt_switches "$HOST_PID") st0=$(steal_ms)
  out=$TMP/wrk.$mode.$sched
  log "wrk -t1 -c$WRK_CONNS -d${WRK_SECS}s --latency -s wrk_put.lua $HOST_URL/channels/d ($PINNED$([[ $sched == fifo ]] && echo ", only the loop thread pinned, at SCHED_FIFO"))"
  timeout $((WRK_SECS + 15)) "${PIN_CLIENT[@]}" wrk -t1 -c"$WRK_CONNS" -d"${WRK_SECS}s" --latency --timeout 2s \
    -s "$HERE/wrk_put.lua" "$HOST_URL/channels/d" >"$out" 2>&1
  cat "$out" >&2
  m1=$(curl -s --max-time 2 "$HOST_URL/metrics")
  cs1=$(ctxt_switches "$HOST_PID") st1=$(steal_ms)
  log "channel d after the run: $(curl -s --max-time 2 "$HOST_URL/channels/d/info" | cut -c1-400)"
  [[ $mode != memory ]] && log "data directory: $(du -sh "$TMP/data.$mode.http-$sched" 2>/dev/null | cut -f1) ($(ls "$TMP/data.$mode.http-$sched" 2>/dev/null | tr '\n' ' '))"
  rps=$(sed -n 's/^Requests\/sec:[[:space:]]*\([0-9.]*\).*/\1/p' "$out" | head -n1)
  p99=$(sed -n 's/^[[:space:]]*99%[[:space:]]*\([0-9.]*[a-z]*\).*/\1/p' "$out" | head -n1)
  if [[ $p99 =~ ^([0-9.]+)(us|ms|s)$ ]]; then
    case ${BASH_REMATCH[2]} in us) p99_us=${BASH_REMATCH[1]} ;; ms) p99_us=$(awk -v n="${BASH_REMATCH[1]}" 'BEGIN{printf "%.0f", n*1000}') ;;
      s) p99_us=$(awk -v n="${BASH_REMATCH[1]}" 'BEGIN{printf "%.0f", n*1e6}') ;; esac
    p99_us=$(awk -v n="$p99_us" 'BEGIN{printf "%.0f", n}')
  fi
  reqs=$(sed -n 's/^[[:space:]]*\([0-9]*\) requests in.*/\1/p' "$out" | head -n1)
  non2xx=$(sed -n 's/^[[:space:]]*Non-2xx or 3xx responses:[[:space:]]*\([0-9]*\).*/\1/p' "$out" | head -n1)
  note="wrk -t1 -c$WRK_CONNS -d${WRK_SECS}s keep-alive, 16-byte JSON bodies, $PINNED"
  [[ $mode != memory ]] && note+=", $DISK_NOTE"
  [[ -n $non2xx ]] && note="$non2xx of ${reqs:-?} responses were not 2xx; $note"
  kill -0 "$HOST_PID" 2>/dev/null || { note="the sssn-host died during the run; $note"; tail -n 20 "$TMP/host.$mode.http-$sched."*.err >&2; }
  rps=$(awk -v n="${rps:-x}" 'BEGIN{ if (n == "x") print "null"; else printf "%.0f", n }')
  [[ $sched == normal ]] && result "$key" "$name" "$rps" "req/s" "$p99_us" "$note"

  # (d) the loop's turns over the run, from the counters before and after it
  local max0 max1 t0 t1 o1 o5 o20 b0 b1 extra snote vol inv
  max0=$(metric "$m0" sssn_loop_turn_max_seconds) max1=$(metric "$m1" sssn_loop_turn_max_seconds)
  if ! is_number "$max1"; then
    result "$skey" "$sname" null "ms" "" "/metrics has no sssn_loop_turn_max_seconds (a host before issue 13's stall watcher)"
  else
    t0=$(metric "$m0" sssn_loop_turns_total) t1=$(metric "$m1" sssn_loop_turns_total)
    b0=$(metric "$m0" sssn_loop_busy_seconds_total) b1=$(metric "$m1" sssn_loop_busy_seconds_total)
    d() { awk -v a="$(metric "$m1" "$1")" -v b="$(metric "$m0" "$1")" 'BEGIN { printf "%d", a - b }'; }
    o1=$(d 'sssn_loop_slow_turns_total{over="0.001"}') o5=$(d 'sssn_loop_slow_turns_total{over="0.005"}')
    o20=$(d 'sssn_loop_slow_turns_total{over="0.02"}')
    read -r vol inv <<<"$(awk -v a="$cs1" -v b="$cs0" 'BEGIN { split(a, x, " "); split(b, y, " "); print x[1] - y[1], x[2] - y[2] }')"
    v=$(awk -v s="$max1" 'BEGIN { printf "%.3f", s * 1000 }')
    snote="sssn_loop_turn_max_seconds after ${WRK_SECS} s of wrk PUTs ($rps req/s): $((t1 - t0)) turns in it, $o1 over 1 ms, $o5 over 5 ms, $o20 over 20 ms; loop busy $(awk -v a="$b1" -v b="$b0" -v s="$WRK_SECS" 'BEGIN { printf "%.0f", (a - b) / s * 100 }')% of the run; the loop thread was preempted $inv times, waited in the kernel $vol times; the hypervisor stole $((st1 - st0)) ms of $([[ ${#PIN_SERVER[@]} -gt 0 ]] && echo "CPU 1" || echo "the CPUs")"
    [[ $sched == fifo ]] && snote+="; the loop thread alone on CPU 1 at SCHED_FIFO, writer threads free: no other task preempts it, the turns are its own"
    if awk -v a="$max1" -v b="$max0" 'BEGIN { exit !(a <= b) }'; then
      snote+="; the maximum was already reached before the run (start-up, $(awk -v s="$max0" 'BEGIN { printf "%.3f", s * 1000 }') ms): the run's own worst is at most this"
    fi
    extra="\"steal_ms\":$((st1 - st0)),\"req_s\":$rps,\"preempted\":$inv,\"waits\":$vol,\"before_ms\":$(awk -v s="${max0:-0}" 'BEGIN { printf "%.3f", s * 1000 }'),\"turns\":$((t1 - t0)),\"over_1ms\":$o1,\"over_5ms\":$o5,\"over_20ms\":$o20"
    result "$skey" "$sname" "$v" "ms" "" "$snote" "$extra"
  fi
  stop_pid "$HOST_PID"
}

# The machine's floor for (d): a thread that never yields (a Lua loop reading the clock, 4 ms at a
# time with 1 ms of sleep between, so SCHED_FIFO's throttling never applies) on the host's CPU,
# and the longest the clock jumped between two of its reads: what the kernel or the hypervisor
# took from it. A loop turn can look that long without any work of the host in it.
floor_run() { # floor_run fifo|normal
  local sched=$1 key=durable_floor name out prefix=("${PIN_SERVER[@]}") mx o1 o5 o20
  name="the machine's floor: longest clock gap seen by a spinning thread on the host's CPU"
  if [[ $sched == fifo ]]; then
    key+=_fifo name+=", at SCHED_FIFO"
    [[ ${#FIFO[@]} -eq 0 ]] && return # only with STALL_FIFO=1 (and root and chrt)
    prefix=("${FIFO[@]}" "${PIN_SERVER[@]}")
  fi
  [[ $HAVE_HOST == 1 ]] || { result "$key" "$name" null "ms" "" "$DURABLE_WHY"; return; }
  cat >"$TMP/floor.lua" <<'LUA'
-- durable.sh: the clock gaps a thread that never yields sees (see floor_run)
local testing = require "sssn.testing"
local now = testing.walltime
local max, o1, o5, o20, t_end = 0, 0, 0, 0, now() + (tonumber(arg[1]) or 3)
while now() < t_end do
  local prev = now()
  local stop = prev + 0.004
  repeat
    local t = now()
    local g = t - prev
    prev = t
    if g > 0.001 then
      o1 = o1 + 1
      if g > max then max = g end
      if g > 0.005 then o5 = o5 + 1 end
      if g > 0.02 then o20 = o20 + 1 end
    end
  until t > stop
  testing.run_for(0.001)
end
print(("FLOOR %.3f %d %d %d"):format(max * 1000, o1, o5, o20))
LUA
  local st0 st1; st0=$(steal_ms)
  out=$(timeout 20 "${prefix[@]}" "$BIN" run "$TMP/floor.lua" 3 2>&1 | grep '^FLOOR')
  st1=$(steal_ms)
  if read -r _ mx o1 o5 o20 <<<"$out" && is_number "${mx:-x}"; then
    log "floor ($sched): max gap $mx ms, $o1 over 1 ms, $o5 over 5 ms, $o20 over 20 ms"
    result "$key" "$name" "$mx" "ms" "" \
      "3 s of 4 ms spins on $([[ ${#PIN_SERVER[@]} -gt 0 ]] && echo "CPU 1" || echo "any CPU"), nothing else of this script running: $o1 gaps over 1 ms, $o5 over 5 ms, $o20 over 20 ms (0 when none over 1 ms); the hypervisor stole $((st1 - st0)) ms of $([[ ${#PIN_SERVER[@]} -gt 0 ]] && echo "CPU 1" || echo "the CPUs") meanwhile" \
      "\"steal_ms\":$((st1 - st0)),\"over_1ms\":$o1,\"over_5ms\":$o5,\"over_20ms\":$o20"
  else
    result "$key" "$name" null "ms" "" "the spinning script printed nothing"
  fi
}

if part http; then
  floor_run normal
  floor_run fifo
  for mode in "${MODES[@]}"; do wrk_put "$mode" normal; done
  for mode in "${MODES[@]}"; do wrk_put "$mode" fifo; done
fi

# --- (b) the same from Lua, in the host: 1 task, and 50 tasks at once --------------------------
lua_bench() { # lua_bench MODE: the RESULTs of the writer system on a fresh host of MODE
  local mode=$1 f=$TMP/lua.$mode.lua durable="" args=() k name
  [[ $mode != memory ]] && durable=", durable = true"
  for k in 1 50; do
    name="write_channel from Lua, $k task$([[ $k -gt 1 ]] && echo s) at once, $(mode_label "$mode")"
    if [[ $HAVE_HOST != 1 || ( $mode != memory && -n $DURABLE_WHY ) ]]; then
      result "durable_lua_${mode}_c$k" "$name" null "msg/s" "" "skipped: $DURABLE_WHY"
    fi
  done
  [[ $HAVE_HOST != 1 || ( $mode != memory && -n $DURABLE_WHY ) ]] && return
  cat >"$f" <<EOF
-- durable.sh (b), $mode: tasks of one system writing {celsius = 22.4} to its broadcast channel
-- "d" in loops for $LUA_SECS s: 1 task (each write of a durable channel waits for its commit), then
-- 50 at once (the writes of one loop turn share a commit). In memory a task yields every 200
-- writes (sssn.sleep(0)), so that the others run and no step runs long.
local sssn = require "sssn"
local MODE, SECS, DURABLE = "$mode", $LUA_SECS, $([[ $mode != memory ]] && echo true || echo false)
local s = sssn.system { id = "bench-durable-lua", tick_rate = 1 }
local payload = { celsius = 22.4 }
local function emit(r) print("RESULT " .. sssn.json.encode(r)) end
function s:setup()
  self:add_channel(sssn.broadcast { id = "d", name = "Bench Durable"$durable })
end
local started = false
function s:step()
  if started then return end
  started = true
  sssn.spawn(function()
    for _, k in ipairs { 1, 50 } do
      local t0 = sssn.now()
      local t_end, total, done, last, lat = t0 + SECS, 0, 0, t0, {}
      for i = 1, k do
        sssn.spawn(function()
          local n, batch = 0, DURABLE and 1 or 200
          repeat
            for _ = 1, batch do
              local w0 = DURABLE and sssn.now()
              self:write_channel("d", payload)
              if w0 and i == 1 and #lat < 100000 then lat[#lat + 1] = sssn.now() - w0 end
            end
            n = n + batch
            if not DURABLE then sssn.sleep(0) end
          until sssn.now() >= t_end
          total, done = total + n, done + 1
          if sssn.now() > last then last = sssn.now() end
        end)
      end
      while done < k do sssn.sleep(0.005) end
      local r = { group = "durable", key = ("durable_lua_%s_c%d"):format(MODE, k),
        name = ("write_channel from Lua, %d task%s at once, %s"):format(k, k > 1 and "s" or "",
          DURABLE and "durable, --sync " .. MODE or "in-memory"),
        value = math.floor(total / (last - t0)), unit = "msg/s",
        note = ("%d writes in %.2f s by %d task(s) of one system, broadcast capacity 1000%s"):format(total,
          last - t0, k, DURABLE and "; p99 = one task's write_channel until its commit" or "") }
      if #lat > 0 then
        table.sort(lat)
        r.p99_us = math.floor(lat[math.max(1, math.ceil(#lat * 0.99))] * 1e6 + 0.5)
        r.p50_us = math.floor(lat[math.max(1, math.ceil(#lat * 0.5))] * 1e6 + 0.5)
      end
      emit(r)
    end
    self:stop()
  end)
end
return s
EOF
  mapfile -t args < <(host_args "$mode" lua)
  log "Lua writers, $(mode_label "$mode")"
  timeout $((4 * LUA_SECS + 30)) "${PIN_SERVER[@]}" "$BIN" --log-level warn "${args[@]}" "$f" \
    >"$TMP/lua.$mode.out" 2>"$TMP/lua.$mode.err"
  local rc=$? got why
  got=$(grep -c '^RESULT ' "$TMP/lua.$mode.out")
  local line prefix=""
  [[ $mode != memory ]] && prefix="$DISK_NOTE; "
  while IFS= read -r line; do printf '%s\n' "${line/\"note\":\"/\"note\":\"$prefix}"; done < <(grep '^RESULT ' "$TMP/lua.$mode.out")
  [[ -s $TMP/lua.$mode.err ]] && tail -n 10 "$TMP/lua.$mode.err" >&2
  if (( got < 2 )); then
    why=$(host_error "$TMP/lua.$mode.err")
    log "the Lua writers ($mode) gave $got of 2 figures (exit $rc): ${why:-see stderr}"
    for k in 1 50; do
      grep -q "\"durable_lua_${mode}_c$k\"" "$TMP/lua.$mode.out" ||
        result "durable_lua_${mode}_c$k" "write_channel from Lua, $k task(s) at once, $(mode_label "$mode")" null "msg/s" "" \
          "the writer system failed (exit $rc): ${why:-no figure printed}"
    done
  fi
}
if part lua; then
  for mode in "${MODES[@]}"; do lua_bench "$mode"; done
fi

# --- (c) redis with an append-only file ------------------------------------------------------
REDIS_KEYS=(durable_redis_none durable_redis_everysec durable_redis_always)
redis_name() {
  case $1 in
    none) echo "redis SET, appendonly no" ;;
    *) echo "redis SET, appendonly yes, appendfsync $1" ;;
  esac
}
redis_part() {
  local fsync
  if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-benchmark >/dev/null 2>&1; then
    SUDO=""; [[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null && SUDO="sudo -n"
    log "installing redis-server and redis-tools (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    timeout 180 $SUDO apt-get install -y redis-server redis-tools >&2 ||
      { timeout 120 $SUDO apt-get update >&2; timeout 180 $SUDO apt-get install -y redis-server redis-tools >&2; }
  fi
  if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-benchmark >/dev/null 2>&1; then
    for fsync in none everysec always; do result "durable_redis_$fsync" "$(redis_name $fsync)" null "req/s" "" "redis-server or redis-benchmark not installed"; done
    return
  fi
  local ver; ver=$(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p')
  log "redis $ver"
  # redis-benchmark --csv: "test","rps","avg","min","p50","p95","p99","max" (ms); the numbers from the end
  local CSV_RE='^"(.*)","([0-9.]+)","([0-9.]+)","([0-9.]+)","([0-9.]+)","([0-9.]+)","([0-9.]+)","([0-9.]+)"[[:space:]]*$'
  for fsync in none everysec always; do
    local dir=$TMP/redis.$fsync port="" rpid="" p aof=(--appendonly no) line rps p99_us n probe
    [[ $fsync != none ]] && aof=(--appendonly yes --appendfsync "$fsync")
    mkdir -p "$dir"
    for _try in 1 2 3 4 5; do
      p=$(free_port) || break
      "${PIN_SERVER[@]}" redis-server --save '' "${aof[@]}" --port "$p" --bind 127.0.0.1 --daemonize no \
        --dir "$dir" --logfile "$dir/redis.log" &
      rpid=$!; PIDS+=("$rpid")
      for _ in $(seq 50); do
        if redis-cli -h 127.0.0.1 -p "$p" ping 2>/dev/null | grep -q PONG; then port=$p; break; fi
        kill -0 "$rpid" 2>/dev/null || break
        sleep 0.05
      done
      [[ -n $port ]] && break
      log "redis-server did not come up on $p; retrying"; tail -3 "$dir/redis.log" >&2
      stop_pid "$rpid"; rpid=""
    done
    if [[ -z $port ]]; then result "durable_redis_$fsync" "$(redis_name $fsync)" null "req/s" "" "redis-server failed to start"; continue; fi
    log "redis-server pid $rpid on 127.0.0.1:$port ($(redis_name $fsync)): $(redis-cli -h 127.0.0.1 -p "$port" config get appendfsync | tr '\n' ' ')"
    # a short probe sizes the run to about REDIS_SECS seconds
    probe=$(timeout 30 "${PIN_CLIENT[@]}" redis-benchmark -h 127.0.0.1 -p "$port" -q -c 50 -n 10000 -P 1 -d 16 --csv -t set 2>/dev/null |
      grep -v '^"test"' | head -1)
    n=200000
    [[ $probe =~ $CSV_RE ]] && n=$(awk -v r="${BASH_REMATCH[2]}" -v s="$REDIS_SECS" 'BEGIN { n = int(r * s); if (n < 10000) n = 10000; if (n > 1000000) n = 1000000; print n }')
    line=$(timeout $((REDIS_SECS * 4 + 20)) "${PIN_CLIENT[@]}" redis-benchmark -h 127.0.0.1 -p "$port" -q -c 50 -n "$n" -P 1 -d 16 --csv -t set 2>"$dir/bench.err" |
      grep -v '^"test"' | head -1)
    if [[ $line =~ $CSV_RE ]]; then
      rps=$(awk -v v="${BASH_REMATCH[2]}" 'BEGIN { printf "%d", v + 0.5 }')
      p99_us=$(awk -v v="${BASH_REMATCH[7]}" 'BEGIN { printf "%d", v * 1000 + 0.5 }')
      log "$(redis_name $fsync): $rps req/s, p50 ${BASH_REMATCH[5]} ms, p99 ${BASH_REMATCH[7]} ms"
      result "durable_redis_$fsync" "$(redis_name $fsync)" "$rps" "req/s" "$p99_us" \
        "redis-benchmark -t set -d 16 -c 50 -n $n -P 1 on 127.0.0.1, $PINNED, redis $ver$([[ $fsync != none ]] && echo ", $DISK_NOTE")"
    else
      result "durable_redis_$fsync" "$(redis_name $fsync)" null "req/s" "" "redis-benchmark failed: $(tail -1 "$dir/bench.err" 2>/dev/null)"
    fi
    [[ $fsync != none ]] && log "redis append-only data: $(du -sh "$dir" | cut -f1)"
    stop_pid "$rpid"
  done
}
part redis && redis_part

# --- the disk: what one synchronous 4 KiB write (write + fdatasync) costs ----------------------
if part fsync; then
  out=$(dd if=/dev/zero of="$TMP/dsync" bs=4k count=1000 oflag=dsync 2>&1 | tail -1)
  secs=$(sed -n 's/.* copied, \([0-9.,]*\) s.*/\1/p' <<<"$out" | tr , .)
  if is_number "${secs:-x}"; then
    result durable_fsync_4k "synchronous 4 KiB writes (dd oflag=dsync) on the data directory's disk" \
      "$(awk -v s="$secs" 'BEGIN { printf "%.0f", 1000 / s }')" "writes/s" "" \
      "1000 writes in $secs s ($(awk -v s="$secs" 'BEGIN { printf "%.0f", s * 1e6 / 1000 }') us each): one commit of --sync full waits for at least one; $DISK_NOTE"
  else
    result durable_fsync_4k "synchronous 4 KiB writes (dd oflag=dsync)" null "writes/s" "" "dd failed: $out"
  fi
  rm -f "$TMP/dsync"
fi
exit 0
