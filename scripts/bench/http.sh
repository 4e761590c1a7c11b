#!/usr/bin/env bash
# HTTP part of `make bench` (issue 5): requests/s and p99 latency of four routes measured with
# wrk on keep-alive connections against one sssn-host on loopback, and the end-to-end latency
# writer -> remote reader (long-poll subscribe) across two hosts.
#
#   bash scripts/bench/http.sh [path/to/sssn-host]      (default ./sssn-host)
#
# stdout carries only the figures, one line each:
#   RESULT {"group":"http","name":"...","key":"http_put",...,"value":N|null,"unit":"...","p99_us":N,"note":"..."}
# (keys http_info, http_read, http_lookup, http_put, as issue 11's report puts them side by side).
#
# Fair against redis.sh in the same `make bench` run: both drive the server from one client thread
# with 50 keep-alive connections and no pipelining (wrk -t1 -c50, redis-benchmark -c 50 -P 1), and
# on a machine with 2 or more cores both pin the server to CPU 1 and the client to CPU 0
# (taskset; BENCH_PIN=0 turns it off), so neither server shares its core with its client.
# everything else (progress, wrk output, host logs on failure) goes to stderr. The script exits 0
# even when a measurement fails: that figure is printed with "value": null and a note saying why.
# Bounded in time: about 35 s (4 wrk runs of 5 s, a two-host run of ~7 s), hard caps on each step.
set -u

BIN=${1:-./sssn-host}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
WRK_THREADS=1 WRK_CONNS=50 WRK_SECS=5
# the same pinning as redis.sh: server on CPU 1, client on CPU 0
PIN_SERVER=() PIN_CLIENT=()
if [[ ${BENCH_PIN:-1} != 0 ]] && command -v taskset >/dev/null && [[ $(nproc 2>/dev/null || echo 1) -ge 2 ]]; then
  PIN_SERVER=(taskset -c 1) PIN_CLIENT=(taskset -c 0)
fi
LP_SAMPLES=100          # messages the remote reader times
LP_PERIOD_HZ=20         # the writer writes every 50 ms

log() { printf '%s\n' "$*" >&2; }

# --- output -------------------------------------------------------------------------------
json_str() { # a JSON string literal for $1 (quotes, backslashes, control characters escaped)
  local s=$1
  s=${s//\\/\\\\}; s=${s//\"/\\\"}
  s=${s//$'\n'/ }; s=${s//$'\r'/ }; s=${s//$'\t'/ }
  s=$(printf '%s' "$s" | tr -d '\000-\037')
  printf '"%s"' "$s"
}
is_number() { [[ $1 =~ ^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$ ]]; }
# result NAME VALUE UNIT [P99_US] [NOTE]; VALUE/P99_US that are not numbers become null / absent
key_of() {
  case $1 in
    *"/info"*) echo http_info ;; *"(read)"*) echo http_read ;; *"(write)"*) echo http_put ;;
    *"(lookup)"*) echo http_lookup ;; *) echo "" ;;
  esac
}
result() {
  local name=$1 value=$2 unit=$3 p99=${4:-} note=${5:-}
  local line key
  is_number "$value" || value=null
  key=$(key_of "$name")
  line="{\"group\":\"http\",\"name\":$(json_str "$name")"
  [[ -n $key ]] && line+=",\"key\":\"$key\""
  line+=",\"value\":$value,\"unit\":$(json_str "$unit")"
  is_number "$p99" && line+=",\"p99_us\":$p99"
  [[ -n $note ]] && line+=",\"note\":$(json_str "$note")"
  printf 'RESULT %s}\n' "$line"
}

# --- setup --------------------------------------------------------------------------------
NAMES=("GET /channels/{id}/info" "GET /channels/{id}?limit=1&after=N (read)"
       "PUT /channels/{id} (write)" "GET /registry/channels/{id} (lookup)")
LP_NAME="two-host writer->remote reader (long-poll)"
fail_all() { # every figure null with the same reason
  local n; for n in "${NAMES[@]}"; do result "$n" null "req/s" "" "$1"; done
  result "$LP_NAME" null "us p50" "" "$1"
  exit 0
}

case $BIN in /*) ;; *) BIN=$PWD/$BIN ;; esac
[[ -x $BIN ]] || { log "http.sh: $BIN is not an executable (run make first)"; fail_all "no sssn-host binary at $BIN"; }
command -v curl >/dev/null || fail_all "curl is not installed"

if ! command -v wrk >/dev/null; then
  log "http.sh: installing wrk (apt-get install -y wrk)"
  SUDO=; [[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null && SUDO="sudo -n"
  timeout 120 $SUDO apt-get install -y wrk >&2 ||
    { timeout 120 $SUDO apt-get update >&2 && timeout 120 $SUDO apt-get install -y wrk >&2; }
fi
HAVE_WRK=1; command -v wrk >/dev/null || HAVE_WRK=0

TMP=$(mktemp -d "${TMPDIR:-/tmp}/sssn-bench-http.XXXXXX")
source "$(dirname "${BASH_SOURCE[0]}")/procs.sh" # PIDS, cleanup at exit, stop_pid, free_port

# wait_http URL SECONDS PID: true once URL answers 2xx; false on timeout or if PID died
wait_http() {
  local url=$1 secs=$2 pid=$3 i
  for ((i = 0; i < secs * 20; i++)); do
    curl -sf -o /dev/null --max-time 1 "$url" && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}

# --- the fixture: one system owning bench-feed, pre-filled and registered ------------------
cat >"$TMP/fixture.lua" <<'EOF'
-- bench fixture: a broadcast channel "bench-feed" holding 100 small messages, registered in
-- the registry with its owner system (service "bench"). The step does nothing.
local sssn = require "sssn"
local s = sssn.system { id = "bench-fixture", name = "Bench Fixture", tick_rate = 1,
  services = { { name = "bench", description = "HTTP benchmark fixture" } } }
function s:setup()
  self.feed = self:add_channel(sssn.broadcast { id = "bench-feed", name = "Bench Feed",
    description = "HTTP benchmark feed", visibility = "public" })
  for _ = 1, 100 do self:write_channel("bench-feed", { celsius = 22.4 }) end
  sssn.registry:register_channel(self.feed.info)
  sssn.registry:register_system(self:descriptor())
end
function s:step() end
return s
EOF

FIX_PID= FIX_PORT= FIX_URL= FIX_STARTS=0
start_fixture() {
  local try
  for try in 1 2 3; do
    FIX_PORT=$(free_port) || return 1
    FIX_URL=http://127.0.0.1:$FIX_PORT
    FIX_STARTS=$((FIX_STARTS + 1))
    "${PIN_SERVER[@]}" "$BIN" --listen "127.0.0.1:$FIX_PORT" --duration 90 --log-level warn "$TMP/fixture.lua" \
      >"$TMP/fixture.$FIX_STARTS.out" 2>"$TMP/fixture.$FIX_STARTS.err" &
    FIX_PID=$!; PIDS+=("$FIX_PID")
    if wait_http "$FIX_URL/health" 5 "$FIX_PID" &&
       wait_http "$FIX_URL/registry/channels/bench-feed" 5 "$FIX_PID" &&
       wait_http "$FIX_URL/channels/bench-feed/info" 5 "$FIX_PID"; then
      log "http.sh: fixture host pid $FIX_PID on $FIX_URL"
      return 0
    fi
    log "http.sh: fixture host on port $FIX_PORT did not come up (try $try); its stderr:"
    tail -n 20 "$TMP/fixture.$FIX_STARTS.err" >&2
    kill "$FIX_PID" 2>/dev/null
  done
  return 1
}

# wrk_bench NAME PATH [wrk args...]: one wrk run, one RESULT line
wrk_bench() {
  local name=$1 path=$2; shift 2
  local out=$TMP/wrk.out rps p99 num unit p99_us non2xx sockerr reqs note="" rc
  if [[ $HAVE_WRK != 1 ]]; then result "$name" null "req/s" "" "wrk is not installed and apt-get install -y wrk failed"; return; fi
  if [[ -z $FIX_PID ]] || ! kill -0 "$FIX_PID" 2>/dev/null; then
    [[ -n $FIX_PID ]] && { log "http.sh: fixture host died before '$name'; its stderr:"; tail -n 20 "$TMP/fixture.$FIX_STARTS.err" >&2; }
    start_fixture || { result "$name" null "req/s" "" "the fixture sssn-host did not start"; return; }
  fi
  log "http.sh: wrk -t$WRK_THREADS -c$WRK_CONNS -d${WRK_SECS}s --latency $* $FIX_URL$path"
  timeout $((WRK_SECS + 15)) "${PIN_CLIENT[@]}" wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d"${WRK_SECS}s" --latency --timeout 2s \
    "$@" "$FIX_URL$path" >"$out" 2>&1
  rc=$?
  cat "$out" >&2
  rps=$(sed -n 's/^Requests\/sec:[[:space:]]*\([0-9.]*\).*/\1/p' "$out" | head -n1)
  p99=$(sed -n 's/^[[:space:]]*99%[[:space:]]*\([0-9.]*[a-z]*\).*/\1/p' "$out" | head -n1)
  p99_us=
  if [[ $p99 =~ ^([0-9.]+)(us|ms|s|m)$ ]]; then
    num=${BASH_REMATCH[1]} unit=${BASH_REMATCH[2]}
    case $unit in us) p99_us=$num ;; ms) p99_us=$(awk -v n="$num" 'BEGIN{printf "%.0f", n*1000}') ;;
      s) p99_us=$(awk -v n="$num" 'BEGIN{printf "%.0f", n*1e6}') ;; m) p99_us=$(awk -v n="$num" 'BEGIN{printf "%.0f", n*6e7}') ;; esac
    p99_us=$(awk -v n="$p99_us" 'BEGIN{printf "%.0f", n}')
  fi
  reqs=$(sed -n 's/^[[:space:]]*\([0-9]*\) requests in.*/\1/p' "$out" | head -n1)
  non2xx=$(sed -n 's/^[[:space:]]*Non-2xx or 3xx responses:[[:space:]]*\([0-9]*\).*/\1/p' "$out" | head -n1)
  sockerr=$(sed -n 's/^[[:space:]]*Socket errors:[[:space:]]*\(.*\)/\1/p' "$out" | head -n1)
  [[ -n $non2xx ]] && note+="${non2xx} of ${reqs:-?} responses were not 2xx; "
  [[ -n $sockerr ]] && note+="socket errors: $sockerr; "
  if ! kill -0 "$FIX_PID" 2>/dev/null; then
    note+="the sssn-host died during the run; "
    log "http.sh: fixture host died during '$name'; its stderr:"; tail -n 20 "$TMP/fixture.$FIX_STARTS.err" >&2
  fi
  if [[ -z $rps ]]; then
    note+="wrk gave no Requests/sec (exit $rc)"
    result "$name" null "req/s" "$p99_us" "${note%; }"
  else
    result "$name" "$(awk -v n="$rps" 'BEGIN{printf "%.0f", n}')" "req/s" "$p99_us" \
      "${note}wrk -t$WRK_THREADS -c$WRK_CONNS -d${WRK_SECS}s keep-alive, $([[ ${#PIN_SERVER[@]} -gt 0 ]] && echo "host on CPU 1, wrk on CPU 0" || echo "wrk and host not pinned")"
  fi
}

if ! start_fixture; then
  for n in "${NAMES[@]}"; do result "$n" null "req/s" "" "the fixture sssn-host did not start"; done
else
  # sanity: the read URL returns exactly one message per request (non-advancing: after= fixed)
  READ_PATH="/channels/bench-feed?limit=1&after=50"
  got=$(curl -s --max-time 2 "$FIX_URL$READ_PATH" | grep -o '"seq":[0-9]*' | tr '\n' ' ')
  [[ $got == '"seq":51 ' ]] || log "http.sh: warning: $READ_PATH returned seqs '$got' (expected one, seq 51)"

  # order matters: the writes last, they rotate the channel past the message the read targets
  wrk_bench "${NAMES[0]}" "/channels/bench-feed/info"
  wrk_bench "${NAMES[1]}" "$READ_PATH"
  wrk_bench "${NAMES[3]}" "/registry/channels/bench-feed"
  wrk_bench "${NAMES[2]}" "/channels/bench-feed" -s "$HERE/wrk_put.lua"

  if kill -0 "$FIX_PID" 2>/dev/null; then
    log "http.sh: fixture host /metrics after the runs (http lines):"
    curl -s --max-time 2 "$FIX_URL/metrics" | grep -i 'http\|channel_writes\|channel_reads\|channel_drops' >&2
    kill "$FIX_PID" 2>/dev/null
  fi
  [[ -s $TMP/fixture.$FIX_STARTS.err ]] && { log "http.sh: fixture host stderr:"; tail -n 20 "$TMP/fixture.$FIX_STARTS.err" >&2; }
fi

# --- two hosts: writer on A, remote reader on B (registry of A, subscribe = long-poll) -----
cat >"$TMP/lp_writer.lua" <<EOF
-- host A: writes {t = sssn.now()} every 1/$LP_PERIOD_HZ s to a public broadcast channel it registers
local sssn = require "sssn"
local w = sssn.system { id = "bench-lp-writer", name = "Bench LP Writer", tick_rate = $LP_PERIOD_HZ,
  services = { { name = "bench-lp", description = "long-poll latency source" } } }
function w:setup()
  self.feed = self:add_channel(sssn.broadcast { id = "bench-lp-feed", name = "Bench LP Feed",
    visibility = "public" })
  sssn.registry:register_channel(self.feed.info)
  sssn.registry:register_system(self:descriptor())
end
function w:step() self:write_channel("bench-lp-feed", { t = sssn.now() }) end
return w
EOF
cat >"$TMP/lp_reader.lua" <<EOF
-- host B (--registry A): finds bench-lp-feed in A's registry, connects (remote channel) and
-- subscribes (long-poll); times sssn.now() - t for $LP_SAMPLES messages written after it subscribed
local sssn = require "sssn"
local N = $LP_SAMPLES
local r = sssn.system { id = "bench-lp-reader", name = "Bench LP Reader", tick_rate = 1 }
local function say(s) print(s); if io and io.stdout then io.stdout:flush() end end
function r:setup()
  local info
  local deadline = sssn.now() + 5
  repeat
    info = sssn.registry:get_channel("bench-lp-feed")
    if not info then sssn.sleep(0.05) end
  until info or sssn.now() > deadline
  if not info then say("BENCH_LP error=bench-lp-feed not found in the registry within 5 s"); return self:stop() end
  self:connect(info)
  local start, samples, done = sssn.now(), {}, false
  self:subscribe_channel(info.id, function(msg)
    local now = sssn.now()
    local t = msg.content.data.t
    if done or type(t) ~= "number" or t < start then return end -- backlog from before subscribing
    samples[#samples + 1] = (now - t) * 1e6
    if #samples >= N then
      done = true
      table.sort(samples)
      local function pct(p) return samples[math.max(1, math.ceil(p * #samples))] end
      say(("BENCH_LP n=%d p50_us=%.0f p99_us=%.0f max_us=%.0f min_us=%.0f endpoint=%s"):format(
        #samples, pct(0.50), pct(0.99), samples[#samples], samples[1], tostring(info.endpoint)))
      self:stop()
    end
  end)
end
function r:step() end
return r
EOF

lp_fail() { result "$LP_NAME" null "us p50" "" "$1"; }
two_host() {
  local pa url a b i line p50 p99 n
  pa=$(free_port) || { lp_fail "no free port"; return; }
  url=http://127.0.0.1:$pa
  "$BIN" --listen "127.0.0.1:$pa" --duration 15 --log-level warn "$TMP/lp_writer.lua" \
    >"$TMP/lpa.out" 2>"$TMP/lpa.err" &
  a=$!; PIDS+=("$a")
  if ! wait_http "$url/health" 5 "$a"; then
    log "http.sh: host A did not come up; its stderr:"; tail -n 20 "$TMP/lpa.err" >&2
    kill "$a" 2>/dev/null; lp_fail "host A (writer) did not start"; return
  fi
  log "http.sh: two-host: A pid $a on $url (writer, ${LP_PERIOD_HZ} Hz), B with --registry $url (reader)"
  "$BIN" --registry "$url" --duration 12 --log-level warn "$TMP/lp_reader.lua" \
    >"$TMP/lpb.out" 2>"$TMP/lpb.err" &
  b=$!; PIDS+=("$b")
  # B stops on its own: its reader stops after N samples (then the host exits) or --duration
  for ((i = 0; i < 300; i++)); do
    grep -q '^BENCH_LP' "$TMP/lpb.out" 2>/dev/null && break
    kill -0 "$b" 2>/dev/null || break
    sleep 0.05
  done
  sleep 0.1
  kill "$b" "$a" 2>/dev/null
  line=$(grep -m1 '^BENCH_LP' "$TMP/lpb.out" 2>/dev/null)
  log "http.sh: reader: ${line:-<no BENCH_LP line>}"
  if [[ -s $TMP/lpb.err ]]; then log "http.sh: host B stderr:"; tail -n 20 "$TMP/lpb.err" >&2; fi
  if [[ -s $TMP/lpa.err ]]; then log "http.sh: host A stderr:"; tail -n 20 "$TMP/lpa.err" >&2; fi
  if [[ $line =~ p50_us=([0-9.]+)\ p99_us=([0-9.]+) ]]; then
    p50=${BASH_REMATCH[1]} p99=${BASH_REMATCH[2]}
    n=$(sed -n 's/.* n=\([0-9]*\).*/\1/p' <<<"$line")
    result "$LP_NAME" "$p50" "us p50" "$p99" \
      "$n messages at ${LP_PERIOD_HZ} Hz, sssn.now() at write vs at the subscriber callback on host B; both hosts on loopback"
  elif [[ $line =~ error=(.*) ]]; then
    lp_fail "reader: ${BASH_REMATCH[1]}"
  else
    lp_fail "the reader printed no latency line (host B exited or timed out; see stderr)"
  fi
}
two_host
exit 0
