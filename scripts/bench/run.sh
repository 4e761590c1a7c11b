#!/usr/bin/env bash
# `make bench`: runs every benchmark on this machine and prints one table, also written to
# bench-results.json. Groups: in-process (scripts/bench/local_*.lua), start-up, HTTP with wrk
# (http.sh), and the peers: redis-benchmark (redis.sh) and a plain-Python baseline.
# Every part is bounded in time; servers it starts listen on 127.0.0.1 only and are stopped.
set -uo pipefail
cd "$(dirname "$0")/../.."
exe=${1:-./sssn-host}
raw=$(mktemp)
trap 'rm -f "$raw"' EXIT

section() { echo "== $*" >&2; }

section "in-process: channels, registry, ticks"
# one process per group: the registry group leaves a million entries behind
for group in channels registry ticks; do
  "$exe" run "scripts/bench/local_$group.lua" | grep '^RESULT ' >> "$raw"
done

section "start-up to first tick"
tmp=$(mktemp -d)
cat > "$tmp/first.lua" <<'LUA'
local sssn = require "sssn"
local core = require "sssn.core"
function step(self)
  print(("%.6f %.3f"):format(sssn.now(), (sssn.now() - core.host_stats().started_at) * 1000))
  self:stop()
end
LUA
inproc=() exec=() base=()
for i in $(seq 20); do
  t0=$(date +%s.%N)
  read -r t1 ms < <("$exe" --log-level error "$tmp/first.lua")
  inproc+=("$ms")
  exec+=("$(echo "($t1 - $t0) * 1000" | bc -l)")
  t0=$(date +%s.%N); /bin/true; t1=$(date +%s.%N)
  base+=("$(echo "($t1 - $t0) * 1000" | bc -l)")
done
rm -rf "$tmp"
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "RESULT {\"group\":\"local\",\"name\":\"start-up to first tick\",\"value\":$(median "${inproc[@]}"),\"unit\":\"ms\",\"note\":\"median of 20: from main() to the first step\"}" >> "$raw"
echo "RESULT {\"group\":\"local\",\"name\":\"exec to first tick\",\"value\":$(median "${exec[@]}"),\"unit\":\"ms\",\"note\":\"median of 20, with process creation; /bin/true takes $(median "${base[@]}") ms the same way\"}" >> "$raw"

section "HTTP (wrk)"
bash scripts/bench/http.sh "$exe" | grep '^RESULT ' >> "$raw"

section "peer: redis"
bash scripts/bench/redis.sh | grep '^RESULT ' >> "$raw"

section "peer: Python"
command -v python3 >/dev/null || apt-get install -y -qq python3 >/dev/null
py=/usr/bin/python3
[ -x "$py" ] || py=python3
"$py" scripts/bench/python_baseline.py | grep '^RESULT ' >> "$raw"

"$exe" run scripts/bench/report.lua "$raw" bench-results.json
