#!/usr/bin/env bash
# `make bench`: runs every benchmark on this machine and prints one table, also written to
# bench-results.json. Groups: in-process (scripts/bench/local_*.lua), start-up, HTTP with wrk
# (http.sh), the etcd registry (etcd.sh), durable channels beside in-memory ones and redis with an
# append-only file (durable.sh), and the peers: redis-benchmark (redis.sh), the Python sssn v0.0.1 itself when
# SSSN_PY_SRC names its source tree (python_sssn.py), and a plain dict-and-list Python baseline.
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
# subscribe_channel deliveries (issue 11); skipped where that script does not exist yet
if [ -f scripts/bench/local_subscribe.lua ]; then
  "$exe" run scripts/bench/local_subscribe.lua | grep '^RESULT ' >> "$raw"
else
  echo "scripts/bench/local_subscribe.lua not found: no subscribe figures" >&2
fi

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

section "etcd registry (scripts/bench/etcd.sh)"
bash scripts/bench/etcd.sh "$exe" | grep '^RESULT ' >> "$raw"

section "durable channels (scripts/bench/durable.sh)"
bash scripts/bench/durable.sh "$exe" | grep '^RESULT ' >> "$raw"

section "peer: Python sssn v0.0.1 (SSSN_PY_SRC)"
# The Python sssn needs pydantic 2: take the first python3 that has it (Debian 12's own
# python3-pydantic is 1.x). Its only other import at load time, PyJWT, python_sssn.py takes
# from Debian's python3-jwt when that interpreter lacks it.
command -v python3 >/dev/null || apt-get install -y -qq python3 >/dev/null
if [ -n "${SSSN_PY_SRC:-}" ]; then
  if [ ! -f "$SSSN_PY_SRC/sssn/__init__.py" ]; then
    echo "SSSN_PY_SRC=$SSSN_PY_SRC is not a Python sssn source tree (no sssn/__init__.py in it): no Python sssn figures" >&2
    echo "  e.g. git -C MIRROR archive 8fb4409 | tar -x -C /tmp/sssn-py; SSSN_PY_SRC=/tmp/sssn-py make bench" >&2
  else
    pyd=""
    for cand in ${SSSN_PYTHON:-} python3 /usr/bin/python3; do
      if "$cand" -c 'import pydantic, sys; sys.exit(not pydantic.VERSION.startswith("2."))' 2>/dev/null; then
        pyd=$cand; break
      fi
    done
    if [ -z "$pyd" ]; then
      echo "no python3 with pydantic 2 found (set SSSN_PYTHON=...): no Python sssn figures" >&2
    else
      "$pyd" -c 'import jwt' 2>/dev/null || [ -d /usr/lib/python3/dist-packages/jwt ] ||
        apt-get install -y -qq python3-jwt >/dev/null
      SSSN_PY_SRC="$SSSN_PY_SRC" timeout 150 "$pyd" scripts/bench/python_sssn.py | grep '^RESULT ' >> "$raw"
    fi
  fi
else
  echo "SSSN_PY_SRC not set: no Python sssn figures (SSSN_PY_SRC=DIR make bench compares with it)" >&2
fi

section "baseline: plain Python dicts and lists (not the Python sssn)"
py=/usr/bin/python3
[ -x "$py" ] || py=python3
timeout 120 "$py" scripts/bench/python_baseline.py | grep '^RESULT ' >> "$raw"

"$exe" run scripts/bench/report.lua "$raw" bench-results.json
