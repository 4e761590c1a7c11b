# procs.sh - sourced by the bench scripts that start servers (http.sh, etcd.sh, durable.sh):
# the processes they start (PIDS, stopped at exit with the script's TMP directory removed),
# stop_pid, and free_port. The script sets TMP before it sources this.
PIDS=()
# stop_pid PID: SIGTERM, up to 3 s, then SIGKILL
stop_pid() {
  local p=$1
  kill "$p" 2>/dev/null
  for _ in $(seq 30); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$p" 2>/dev/null
  wait "$p" 2>/dev/null
}
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do stop_pid "$p"; done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A free loopback port, probed from a random base, skipping any port in LISTEN state and any
# handed out before. Below the ephemeral range: wrk's and redis-benchmark's client sockets
# take ports from it, and a listener cannot bind a port a client socket holds.
USED_PORTS=" "
EPHEMERAL_LOW=$(awk '{ print $1 }' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null)
[[ ${EPHEMERAL_LOW:-0} -gt 21000 ]] || EPHEMERAL_LOW=50500
free_port() {
  local base=$((20000 + RANDOM % (EPHEMERAL_LOW - 20500))) i p
  for ((i = 0; i < 500; i++)); do
    p=$((base + i))
    [[ $USED_PORTS == *" $p "* ]] && continue
    if command -v ss >/dev/null; then
      ss -ltnH "sport = :$p" 2>/dev/null | grep -q . && continue
    elif (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      continue
    fi
    USED_PORTS+="$p "; echo "$p"; return 0
  done
  return 1
}
