#!/usr/bin/env bash
# The etcd registry's part of the benchmarks (issue 12): one etcd 3.4 member on 127.0.0.1 (free
# ports, data in a temporary directory, always killed), and
#   (a) register_channel rates through etcd from one host: sequential awaited calls (new ids,
#       the same id) and 16 concurrent tasks (scripts/bench/etcd_registry.lua);
#   (b) get_channel lookups on the etcd-backed host (answered from its cache);
#   (c) the same workloads on the in-process registry, in the same run;
#   (d) etcd's own gateway: wrk POSTing /v3/kv/range of one key, and /v3/kv/put of an
#       entry-sized value with a lease (one connection, 50); and GET /registry/channels/{id}
#       of an etcd-backed host with the same wrk, for the HTTP route next to the gateway;
#   (e) how long a kill -9'd host's entry takes to vanish: from the kill to when GET
#       /registry/channels/{id} on a second host answers 404, and to when the etcd key is gone
#       (TTL 2 s and 5 s; scripts/bench/etcd_vanish.lua is the killed host).
#
#   bash scripts/bench/etcd.sh [path/to/sssn-host]      (default ./sssn-host)
#
# stdout: only RESULT {json} lines (group "etcd"); progress and tool output on stderr. A figure
# that cannot be measured is printed with "value": null and a note. About 90 s.
# ETCD_BENCH_PARTS="registry gateway vanish" (the default) picks parts; VANISH_TRIALS=3 kills a TTL.
set -u
BIN=${1:-./sssn-host}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ETCD=${ETCD:-$(command -v etcd || echo /usr/bin/etcd)}
WRK_SECS=${WRK_SECS:-5}
VANISH_TRIALS=${VANISH_TRIALS:-3}
PIN_SERVER=() PIN_CLIENT=()
if [[ ${BENCH_PIN:-1} != 0 ]] && command -v taskset >/dev/null && [[ $(nproc 2>/dev/null || echo 1) -ge 2 ]]; then
  PIN_SERVER=(taskset -c 1) PIN_CLIENT=(taskset -c 0)
fi

log() { printf 'etcd.sh: %s\n' "$*" >&2; }
json_str() {
  local s=$1
  s=${s//\\/\\\\}; s=${s//\"/\\\"}; s=${s//$'\n'/ }; s=${s//$'\t'/ }
  printf '"%s"' "$s"
}
is_number() { [[ $1 =~ ^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$ ]]; }
# result KEY NAME VALUE UNIT [P99_US] [NOTE] [EXTRA_JSON_MEMBERS]
result() {
  local key=$1 name=$2 value=$3 unit=$4 p99=${5:-} note=${6:-} extra=${7:-} line
  is_number "$value" || value=null
  line="{\"group\":\"etcd\",\"key\":\"$key\",\"name\":$(json_str "$name"),\"value\":$value,\"unit\":$(json_str "$unit")"
  is_number "$p99" && line+=",\"p99_us\":$p99"
  [[ -n $note ]] && line+=",\"note\":$(json_str "$note")"
  [[ -n $extra ]] && line+=",$extra"
  printf 'RESULT %s}\n' "$line"
}
ALL_KEYS=(etcd_register etcd_register_upsert etcd_register_c16 etcd_get etcd_get1000 etcd_gateway_range
  etcd_gateway_put_c1 etcd_gateway_put_c50 etcd_http_lookup etcd_vanish_ttl2 etcd_vanish_ttl2_etcd
  etcd_vanish_ttl5 etcd_vanish_ttl5_etcd)
fail_all() { local k; for k in "${ALL_KEYS[@]}"; do result "$k" "$k" null "" "" "$1"; done; exit 0; }

case $BIN in /*) ;; *) BIN=$PWD/$BIN ;; esac
[[ -x $BIN ]] || fail_all "no sssn-host binary at $BIN (run make)"
[[ -x $ETCD ]] || fail_all "etcd is not installed ($ETCD; scripts/deps.sh installs etcd-server)"
command -v curl >/dev/null || fail_all "curl is not installed"
if ! command -v wrk >/dev/null; then
  log "installing wrk (apt-get install -y wrk)"
  SUDO=; [[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null && SUDO="sudo -n"
  timeout 120 $SUDO apt-get install -y wrk >&2 ||
    { timeout 120 $SUDO apt-get update >&2 && timeout 120 $SUDO apt-get install -y wrk >&2; }
fi
HAVE_WRK=1; command -v wrk >/dev/null || { HAVE_WRK=0; log "wrk is missing and could not be installed: no gateway figures"; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/sssn-bench-etcd.XXXXXX")
source "$(dirname "${BASH_SOURCE[0]}")/procs.sh" # PIDS, cleanup at exit, stop_pid, free_port
now() { date +%s.%N; }
b64() { printf '%s' "$1" | base64 -w0; }
sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a - b }'; }

# --- etcd: one member; it must be ours (another etcd may hold a port we probed as free) -----
EP= ETCD_PID=
start_etcd() {
  local try cp pp
  for try in 1 2 3; do
    cp=$(free_port) && pp=$(free_port) || return 1
    "$ETCD" --name sssn-bench --data-dir "$TMP/etcd.$try" \
      --listen-client-urls "http://127.0.0.1:$cp" --advertise-client-urls "http://127.0.0.1:$cp" \
      --listen-peer-urls "http://127.0.0.1:$pp" --initial-advertise-peer-urls "http://127.0.0.1:$pp" \
      --initial-cluster "sssn-bench=http://127.0.0.1:$pp" --initial-cluster-state new \
      --initial-cluster-token "sssn-bench-$$" --logger zap --log-level error >"$TMP/etcd.$try.log" 2>&1 &
    ETCD_PID=$!; PIDS+=("$ETCD_PID")
    for _ in $(seq 100); do
      kill -0 "$ETCD_PID" 2>/dev/null || break
      if curl -s --max-time 1 -X POST "http://127.0.0.1:$cp/v3/cluster/member/list" -d '{}' 2>/dev/null |
         grep -q "\"peerURLs\":\[\"http://127.0.0.1:$pp\"\]" &&
         curl -s --max-time 1 -X POST "http://127.0.0.1:$cp/v3/maintenance/status" -d '{}' | grep -q '"leader"'; then
        EP=127.0.0.1:$cp; log "etcd pid $ETCD_PID at $EP (data in $TMP/etcd.$try)"; return 0
      fi
      sleep 0.1
    done
    log "etcd on $cp/$pp did not come up (try $try):"; tail -n 5 "$TMP/etcd.$try.log" >&2
    kill -9 "$ETCD_PID" 2>/dev/null
  done
  return 1
}
start_etcd || fail_all "etcd did not start"
etcd_cpu() { awk '{ print $14 + $15 }' "/proc/$ETCD_PID/stat" 2>/dev/null; }  # clock ticks
TCK=$(getconf CLK_TCK)
etcd_puts() { curl -s --max-time 2 "http://$EP/metrics" | awk '/^grpc_server_handled_total.*grpc_method="(Put|Txn)"/ { s += $2 } END { print s + 0 }'; }

part() { [[ " ${ETCD_BENCH_PARTS:-registry gateway vanish} " == *" $1 "* ]]; }

# --- (a) (b) (c): the registry rates on both backends -------------------------------------
if part registry; then
log "registry rates through etcd"
c0=$(etcd_cpu); p0=$(etcd_puts)
BENCH_BACKEND=etcd timeout 90 "$BIN" --registry "etcd://$EP" --log-level error "$HERE/etcd_registry.lua" \
  >"$TMP/reg_etcd.out" 2>"$TMP/reg_etcd.err"
c1=$(etcd_cpu); p1=$(etcd_puts)
grep '^RESULT ' "$TMP/reg_etcd.out" || { log "etcd_registry.lua failed:"; tail -n 20 "$TMP/reg_etcd.err" >&2; }
[[ -s $TMP/reg_etcd.err ]] && tail -n 10 "$TMP/reg_etcd.err" >&2
if (( p1 > p0 )); then
  log "etcd CPU over that run (its registrations and the removals at stop): $(awk -v c=$((c1 - c0)) -v t="$TCK" -v n=$((p1 - p0)) 'BEGIN { printf "%.3f ms per put or txn (%d)", c / t * 1000 / n, n }')"
fi
log "the same on the in-process registry"
BENCH_BACKEND=inproc timeout 90 "$BIN" --log-level error "$HERE/etcd_registry.lua" >"$TMP/reg_inproc.out" 2>"$TMP/reg_inproc.err"
grep '^RESULT ' "$TMP/reg_inproc.out" || { log "etcd_registry.lua (in-process) failed:"; tail -n 20 "$TMP/reg_inproc.err" >&2; }
fi

# --- (d) the gateway with wrk -----------------------------------------------------------
if part gateway; then
KEY64=$(b64 /sssn-bench/one-key)
VAL64=$(b64 '{"info":{"id":"bench-ch","description":"d","name":"Bench","visibility":"public"},"name":"Bench","public":true,"caps":[],"registrant":"0123456789abcdef/bench","subject":null,"endpoint":"http://127.0.0.1:7400","ttl":60,"expires_at":1800000000.000001}')
curl -s --max-time 2 -X POST "http://$EP/v3/kv/put" -d "{\"key\":\"$KEY64\",\"value\":\"$VAL64\"}" >/dev/null
LEASE=$(curl -s --max-time 2 -X POST "http://$EP/v3/lease/grant" -d '{"TTL":600}' | sed -n 's/.*"ID":"\([0-9]*\)".*/\1/p')
cat >"$TMP/range.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"key":"$KEY64"}'
LUA
cat >"$TMP/put.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"key":"$(b64 /sssn-bench/put-key)","value":"$VAL64","lease":"$LEASE"}'
LUA
# wrk_run KEY NAME CONNS PINNED(1|0) URL [wrk args]
wrk_run() {
  local key=$1 name=$2 conns=$3 pinned=$4 url=$5; shift 5
  local out=$TMP/wrk.$key rps p99 p99_us="" non2xx note
  if [[ $HAVE_WRK != 1 ]]; then result "$key" "$name" null "req/s" "" "wrk is not installed"; return; fi
  local client=() how="not pinned"
  [[ $pinned == 1 && ${#PIN_CLIENT[@]} -gt 0 ]] && client=("${PIN_CLIENT[@]}") how="server on CPU 1, wrk on CPU 0"
  log "wrk -t1 -c$conns -d${WRK_SECS}s --latency $* $url ($how)"
  timeout $((WRK_SECS + 15)) "${client[@]}" wrk -t1 -c"$conns" -d"${WRK_SECS}s" --latency --timeout 2s "$@" "$url" >"$out" 2>&1
  cat "$out" >&2
  rps=$(sed -n 's/^Requests\/sec:[[:space:]]*\([0-9.]*\).*/\1/p' "$out" | head -n1)
  p99=$(sed -n 's/^[[:space:]]*99%[[:space:]]*\([0-9.]*[a-z]*\).*/\1/p' "$out" | head -n1)
  if [[ $p99 =~ ^([0-9.]+)(us|ms|s)$ ]]; then
    case ${BASH_REMATCH[2]} in us) p99_us=${BASH_REMATCH[1]} ;; ms) p99_us=$(awk -v n="${BASH_REMATCH[1]}" 'BEGIN{printf "%.0f", n*1000}') ;;
      s) p99_us=$(awk -v n="${BASH_REMATCH[1]}" 'BEGIN{printf "%.0f", n*1e6}') ;; esac
  fi
  non2xx=$(sed -n 's/^[[:space:]]*Non-2xx or 3xx responses:[[:space:]]*\([0-9]*\).*/\1/p' "$out" | head -n1)
  note="wrk -t1 -c$conns -d${WRK_SECS}s keep-alive, $how"
  [[ -n $non2xx ]] && note="$non2xx responses were not 2xx; $note"
  result "$key" "$name" "$(awk -v n="${rps:-x}" 'BEGIN{ if (n == "x") print "null"; else printf "%.0f", n }')" "req/s" "$p99_us" "$note"
}
if [[ ${#PIN_SERVER[@]} -gt 0 ]]; then taskset -a -p -c 1 "$ETCD_PID" >/dev/null; fi
wrk_run etcd_gateway_range "etcd gateway POST /v3/kv/range, one key" 50 1 "http://$EP/v3/kv/range" -s "$TMP/range.lua"
# the puts: etcd on both cores, as when the host registers through it
taskset -a -p -c 0-$(($(nproc) - 1)) "$ETCD_PID" >/dev/null 2>&1
wrk_run etcd_gateway_put_c1 "etcd gateway POST /v3/kv/put with a lease, 1 connection" 1 0 "http://$EP/v3/kv/put" -s "$TMP/put.lua"
wrk_run etcd_gateway_put_c50 "etcd gateway POST /v3/kv/put with a lease, 50 connections" 50 0 "http://$EP/v3/kv/put" -s "$TMP/put.lua"

# an etcd-backed host's HTTP lookup (from its cache), the same wrk, pinned the same way
cat >"$TMP/fixture.lua" <<'LUA'
local sssn = require "sssn"
local s = sssn.system { id = "bench-etcd-fixture", tick_rate = 1 }
function s:setup()
  sssn.registry:register_channel({ id = "bench-etcd-ch", name = "Bench", description = "d", visibility = "public" }, 60)
end
function s:step() end
return s
LUA
HP=$(free_port)
"${PIN_SERVER[@]}" "$BIN" --registry "etcd://$EP" --listen "127.0.0.1:$HP" --duration 60 --log-level warn "$TMP/fixture.lua" \
  >"$TMP/fixture.out" 2>"$TMP/fixture.err" &
FPID=$!; PIDS+=("$FPID")
for _ in $(seq 100); do curl -sf -o /dev/null --max-time 1 "http://127.0.0.1:$HP/registry/channels/bench-etcd-ch" && break; sleep 0.05; done
if curl -sf -o /dev/null --max-time 1 "http://127.0.0.1:$HP/registry/channels/bench-etcd-ch"; then
  wrk_run etcd_http_lookup "GET /registry/channels/{id} of an etcd-backed host" 50 1 "http://127.0.0.1:$HP/registry/channels/bench-etcd-ch"
else
  result etcd_http_lookup "GET /registry/channels/{id} of an etcd-backed host" null "req/s" "" "the etcd-backed host did not answer"
  tail -n 20 "$TMP/fixture.err" >&2
fi
kill "$FPID" 2>/dev/null
fi

# --- (e) a kill -9'd host's entry: how long until the others stop seeing it ----------------
part vanish || exit 0
BP=$(free_port)
"$BIN" --registry "etcd://$EP" --listen "127.0.0.1:$BP" --duration 300 --log-level warn >"$TMP/b.out" 2>"$TMP/b.err" &
BPID=$!; PIDS+=("$BPID")
for _ in $(seq 100); do curl -sf -o /dev/null --max-time 1 "http://127.0.0.1:$BP/health" && break; sleep 0.05; done
# vanish TTL TRIAL: prints "kill_to_404 kill_to_etcd_gone expires_minus_kill 404_minus_expires" or "fail WHY"
vanish() {
  local ttl=$1 trial=$2 id="vanish-$1-$2-$$" ap apid i code body exp="" tk t404="" tgone="" t deadline k64
  ap=$(free_port)
  BENCH_ID=$id BENCH_TTL=$ttl "$BIN" --registry "etcd://$EP" --listen "127.0.0.1:$ap" --log-level warn \
    "$HERE/etcd_vanish.lua" >"$TMP/a.$id.out" 2>"$TMP/a.$id.err" &
  apid=$!; PIDS+=("$apid")
  for i in $(seq 200); do
    [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$BP/registry/channels/$id") == 200 ]] && break
    sleep 0.025
  done
  (( i >= 200 )) && { echo "fail host B never saw $id"; kill -9 "$apid"; return; }
  # kill at a random point of the refresh cycle (the host refreshes at 2/3 of the TTL)
  sleep "$(awk -v t="$ttl" -v r=$RANDOM 'BEGIN { printf "%.3f", t * r / 32768 }')"
  body=$(curl -s --max-time 1 "http://127.0.0.1:$BP/registry/channels/$id")
  tk=$(now); kill -9 "$apid"; wait "$apid" 2>/dev/null
  exp=$(sed -n 's/.*"expires_at":\([0-9.]*\).*/\1/p' <<<"$body")
  k64=$(b64 "/sssn/channels/$id")
  deadline=$(awk -v t="$tk" -v l="$ttl" 'BEGIN { printf "%.3f", t + 2 * l + 5 }')
  while :; do
    t=$(now)
    awk -v a="$t" -v b="$deadline" 'BEGIN { exit !(a > b) }' && break
    if [[ -z $t404 ]]; then
      body=$(curl -s -w '\n%{http_code}' --max-time 1 "http://127.0.0.1:$BP/registry/channels/$id")
      code=${body##*$'\n'}
      if [[ $code == 404 ]]; then t404=$(now)
      elif [[ $code == 200 ]]; then
        e=$(sed -n 's/.*"expires_at":\([0-9.]*\).*/\1/p' <<<"${body%$'\n'*}"); [[ -n $e ]] && exp=$e
      fi
    fi
    if [[ -z $tgone ]] && ! curl -s --max-time 1 -X POST "http://$EP/v3/kv/range" -d "{\"key\":\"$k64\"}" | grep -q '"kvs"'; then
      tgone=$(now)
    fi
    [[ -n $t404 && -n $tgone ]] && break
    sleep 0.01
  done
  [[ -n $t404 && -n $tgone ]] || { echo "fail not gone within $((2 * ttl + 5)) s (404: ${t404:-no}, etcd: ${tgone:-no})"; return; }
  echo "$(sub "$t404" "$tk") $(sub "$tgone" "$tk") $(sub "${exp:-$tk}" "$tk") $(sub "$t404" "${exp:-$t404}")"
}
for ttl in 2 5; do
  rows=()
  for trial in $(seq "$VANISH_TRIALS"); do
    r=$(vanish "$ttl" "$trial"); log "vanish TTL $ttl trial $trial: $r (kill->404 s, kill->etcd key gone s, expires_at-kill s, 404-expires_at s)"
    rows+=("$r")
  done
  ok=$(printf '%s\n' "${rows[@]}" | grep -v '^fail' || true)
  if [[ -z $ok ]]; then
    result "etcd_vanish_ttl$ttl" "kill -9'd host's entry gone from another host, TTL $ttl s" null "s" "" "${rows[0]}"
    result "etcd_vanish_ttl${ttl}_etcd" "kill -9'd host's etcd key gone, TTL $ttl s" null "s" "" "${rows[0]}"
    continue
  fi
  stats() { awk -v c="$1" '{ v = $c; if (n == 0 || v < mn) mn = v; if (n == 0 || v > mx) mx = v; s += v; n++ } END { printf "%.3f %.3f %.3f %d", mx, mn, s / n, n }'; }
  read -r mx mn mean n <<<"$(stats 1 <<<"$ok")"
  read -r lmx lmn _ _ <<<"$(stats 4 <<<"$ok")"
  result "etcd_vanish_ttl$ttl" "kill -9'd host's entry gone from another host's GET /registry/channels/{id}, TTL $ttl s" "$mx" "s" "" \
    "worst of $n kills at random points of the refresh cycle; min $mn, mean $mean; 404 came $lmn..$lmx s after the entry's expires_at (polled every ~20 ms)" \
    "\"min_s\":$mn,\"mean_s\":$mean,\"trials\":$n,\"after_expiry_max_s\":$lmx"
  read -r mx mn mean n <<<"$(stats 2 <<<"$ok")"
  result "etcd_vanish_ttl${ttl}_etcd" "kill -9'd host's etcd key gone (its lease lapsed), TTL $ttl s" "$mx" "s" "" \
    "worst of $n; min $mn, mean $mean; one member, no election" "\"min_s\":$mn,\"mean_s\":$mean,\"trials\":$n"
done
kill "$BPID" 2>/dev/null
exit 0
