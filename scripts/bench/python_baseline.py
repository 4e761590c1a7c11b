#!/usr/bin/env python3
"""A plain dict-and-list Python BASELINE for `make bench` (not the Python sssn: that is
python_sssn.py, run when SSSN_PY_SRC is set).

The same in-process loops the host measures, written the way the Python sssn keeps its
state: plain dicts and lists, JSON encoded once by the writer with json.dumps and decoded
by each reader with json.loads. Standard library only. This is the *best case* for an
interpreted implementation: no pydantic models, no asyncio, no locks, no HTTP.

  broadcast   one writer appends JSON-encoded envelopes to a bounded list (capacity 1000,
              oldest dropped); each reader keeps an integer cursor and json.loads what it
              reads. 1 reader: messages/s end to end; 10 and 100 readers: deliveries/s.
  work queue  write, claim (exclusive read of up to 100 unclaimed messages), json.loads,
              acknowledge; per message.
  registry    register = upsert {info, expires_at} into a dict; get_channel = dict lookup
              checking expires_at; find_systems = scan of every entry checking expires_at
              and the services' names (as the Python sssn's DiscoveryChannel does), with a
              capability held by 10 systems; purge = scan for expired entries + delete.

Output contract: one line per figure on stdout,
    RESULT {"group":"python-baseline","key":...,"name":...,"value":...,"unit":...,"p99_us":...,"note":...}
everything else on stderr. Exits 0 even when a measurement fails (value null + note).
"""

import argparse
import gc
import json
import os
import sys
import time
import traceback
import uuid

GROUP = "python-baseline"
PAYLOAD = {"celsius": 22.4}
# Batch sizes and capacities as the host's own loops (scripts/bench/local_*.lua) use them.
CAPACITY = 100000
BATCH_1TO1 = 1000       # 1 writer -> 1 reader: messages written, then read, per round
BATCH_FANOUT = 100      # fan-out: messages written per round, then read by every reader
BATCH_QUEUE = 500       # work queue: write, claim, acknowledge this many per round
FILL_TIMES = {}   # entries -> seconds taken to fill the registry

perf = time.perf_counter


def log(*args):
    print("[python_baseline]", *args, file=sys.stderr, flush=True)


# the contract's figure keys, so report.lua can list the baseline next to the host's figures
KEYS = {
    "broadcast 1 writer -> 1 reader": "bcast_l1000",
    "fan-out 10 readers": "fanout10",
    "work queue claim+ack": "wq",
    "registry register (upsert, TTL)": "reg_upsert",
    "registry get_channel": "get1000",
    "find_systems p99 @10k": "find_sys_10k",
    "find_systems p99 @100k": "find_sys_100k",
    "find_systems p99 @1M": "find_sys_1M",
    "purge 100k expired": "purge100k",
}


def result(name, value, unit, p99_us=None, note=None, p50_us=None):
    obj = {"group": GROUP, "name": name, "value": value, "unit": unit}
    if name in KEYS:
        obj["key"] = KEYS[name]
    if p99_us is not None:
        obj["p99_us"] = p99_us
    if p50_us is not None:
        obj["p50_us"] = p50_us
    if note:
        obj["note"] = note
    print("RESULT " + json.dumps(obj, separators=(",", ":")), flush=True)


def measure(name, unit, fn):
    """Runs fn() -> (value, p99_us or None, note or None) and prints its RESULT."""
    try:
        out = fn()
        value, p99, note = out[:3]
        p50 = out[3] if len(out) > 3 else None
        log(f"{name}: {value} {unit}" + (f" (p99 {p99} us)" if p99 is not None else "")
            + (f" -- {note}" if note else ""))
        result(name, value, unit, p99, note, p50)
    except Exception as exc:  # a failed figure must not end the run
        traceback.print_exc(file=sys.stderr)
        result(name, None, unit, None, f"failed: {type(exc).__name__}: {exc}")


def percentile(sorted_vals, q):
    if not sorted_vals:
        return None
    k = min(len(sorted_vals) - 1, max(0, int(round(q * (len(sorted_vals) - 1)))))
    return sorted_vals[k]


def run_for(seconds, round_fn):
    """Calls round_fn() (which returns the work units it did) until `seconds` have passed;
    returns units per second. A short warm-up round is not counted."""
    round_fn()
    units = 0
    t0 = perf()
    deadline = t0 + seconds
    while True:
        units += round_fn()
        t = perf()
        if t >= deadline:
            return units / (t - t0)


# --------------------------------------------------------------------------------------
# Channels
# --------------------------------------------------------------------------------------

def envelope(seq, sender, data):
    return {
        "id": str(uuid.uuid4()),
        "seq": seq,
        "timestamp": time.time(),
        "sender_id": sender,
        "content": {"data": data},
        "metadata": {},
        "correlation_id": None,
        "reply_to": None,
        "recipient_id": None,
    }


class Broadcast:
    """Bounded store of encoded messages keyed by seq (a plain dict, so dropping the oldest
    is O(1) at any capacity); readers keep integer cursors (next seq to read)."""

    def __init__(self, capacity=CAPACITY):
        self.capacity = capacity
        self.messages = {}      # seq -> encoded JSON string
        self.first_seq = 1      # oldest seq held
        self.next_seq = 1
        self.cursors = {}       # reader id -> next seq to read

    def write(self, sender, data):
        seq = self.next_seq
        self.next_seq = seq + 1
        self.messages[seq] = json.dumps(envelope(seq, sender, data))
        if len(self.messages) > self.capacity:
            del self.messages[self.first_seq]
            self.first_seq += 1
        return seq

    def read(self, reader, limit=100):
        cursor = self.cursors.get(reader, self.first_seq)
        start = cursor if cursor > self.first_seq else self.first_seq
        missed = start - cursor
        end = min(start + limit, self.next_seq)
        msgs = self.messages
        self.cursors[reader] = end
        return [json.loads(msgs[i]) for i in range(start, end)], missed


class WorkQueue:
    """Messages by id (insertion ordered), unclaimed ids in a list, claims in a dict."""

    def __init__(self, capacity=CAPACITY, claim_timeout=30.0):
        self.capacity = capacity
        self.claim_timeout = claim_timeout
        self.messages = {}      # id -> encoded JSON
        self.pending = []       # unclaimed ids, oldest first
        self.claims = {}        # id -> (reader, claimed_at)
        self.next_seq = 1

    def write(self, sender, data):
        if len(self.messages) >= self.capacity:
            raise RuntimeError("work queue full")
        seq = self.next_seq
        self.next_seq = seq + 1
        env = envelope(seq, sender, data)
        self.messages[env["id"]] = json.dumps(env)
        self.pending.append(env["id"])
        return env["id"]

    def claim(self, reader, limit=100):
        now = time.time()
        if self.claims:  # lazy reclaim of expired claims, as the Python sssn does on read
            timeout = self.claim_timeout
            expired = [i for i, (_, t) in self.claims.items() if now - t > timeout]
            for i in expired:
                del self.claims[i]
                self.pending.append(i)
        ids = self.pending[:limit]
        del self.pending[:limit]
        claims = self.claims
        out = []
        for i in ids:
            claims[i] = (reader, now)
            out.append(json.loads(self.messages[i]))
        return out

    def acknowledge(self, reader, ids):
        n = 0
        for i in ids:
            c = self.claims.get(i)
            if c is not None and c[0] == reader:
                del self.claims[i]
                del self.messages[i]
                n += 1
        return n


def bench_broadcast(readers, seconds):
    BATCH = BATCH_1TO1 if readers == 1 else BATCH_FANOUT
    ch = Broadcast()
    names = [f"reader-{i}" for i in range(readers)]
    for n in names:
        ch.cursors[n] = ch.first_seq

    def one_round():
        for _ in range(BATCH):
            ch.write("writer", PAYLOAD)
        got = 0
        for n in names:
            msgs, missed = ch.read(n, BATCH)
            for m in msgs:
                if m["content"]["data"]["celsius"] != 22.4:
                    raise AssertionError("bad payload")
            got += len(msgs)
            if missed:
                raise AssertionError(f"reader missed {missed}")
        if got != BATCH * readers:
            raise AssertionError(f"delivered {got}, expected {BATCH * readers}")
        return got

    rate = run_for(seconds, one_round)
    return rate


def bench_work_queue(seconds):
    BATCH = BATCH_QUEUE
    q = WorkQueue()

    def one_round():
        for _ in range(BATCH):
            q.write("producer", PAYLOAD)
        msgs = q.claim("worker", BATCH)
        n = q.acknowledge("worker", [m["id"] for m in msgs])
        if n != BATCH:
            raise AssertionError(f"acknowledged {n}, expected {BATCH}")
        return n

    return run_for(seconds, one_round)


# --------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------

class Registry:
    def __init__(self):
        self.channels = {}   # id -> {"info": ..., "expires_at": ...}
        self.systems = {}    # id -> {"descriptor": ..., "expires_at": ...}

    def register_channel(self, info, ttl=300.0):
        c = {
            "id": info["id"],
            "name": info.get("name") or info["id"],
            "description": info.get("description") or "",
            "visibility": info.get("visibility") or "public",
        }
        self.channels[c["id"]] = {"info": c, "expires_at": time.time() + ttl}

    def register_system(self, desc, ttl=300.0):
        self.systems[desc["system_id"]] = {"descriptor": desc, "expires_at": time.time() + ttl}

    def get_channel(self, cid):
        e = self.channels.get(cid)
        if e is not None and e["expires_at"] > time.time():
            return e["info"]
        return None

    def find_systems(self, capability):
        now = time.time()
        return [
            e["descriptor"] for e in self.systems.values()
            if e["expires_at"] > now
            and any(s["name"] == capability for s in e["descriptor"]["services"])
        ]

    def purge(self):
        now = time.time()
        expired = [k for k, e in self.systems.items() if e["expires_at"] <= now]
        for k in expired:
            del self.systems[k]
        expired_c = [k for k, e in self.channels.items() if e["expires_at"] <= now]
        for k in expired_c:
            del self.channels[k]
        return len(expired) + len(expired_c)


def descriptor(i, services):
    return {
        "system_id": f"sys-{i}",
        "system_name": f"System {i}",
        "description": "",
        "services": [{"name": s, "description": "", "parameters": None} for s in services],
        "channels_read": [],
        "channels_write": [f"feed-{i}"],
    }


def fill_systems(reg, n, holders=10, ttl=300.0):
    """n systems with one or two services each; `holders` of them spread over the id space
    also offer the capability "target"."""
    step = max(1, n // holders)
    targets = set(range(0, step * holders, step))
    # The cyclic GC would rescan the growing heap again and again while a million
    # descriptors are made; it is off only while filling, not while measuring.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for i in range(n):
            services = [f"svc-{i % 100}"]
            if i in targets:
                services.append("target")
            reg.register_system(descriptor(i, services), ttl)
    finally:
        if was_enabled:
            gc.enable()
    return len(targets)


def bench_register(seconds):
    reg = Registry()
    ids = [f"chan-{i}" for i in range(10000)]
    infos = [{"id": c, "name": c, "description": "", "visibility": "public"} for c in ids]

    def one_round():
        r = reg.register_channel
        for info in infos:
            r(info, 300.0)
        return len(infos)

    return run_for(seconds, one_round)


def bench_get(seconds):
    reg = Registry()
    ids = [f"chan-{i}" for i in range(1000)]
    for c in ids:
        reg.register_channel({"id": c}, 300.0)

    def one_round():
        g = reg.get_channel
        for c in ids:
            if g(c) is None:
                raise AssertionError("missing " + c)
        return len(ids)

    return run_for(seconds, one_round)


def bench_find(n, seconds, max_samples=2000):
    reg = Registry()
    t0 = perf()
    holders = fill_systems(reg, n)
    build_s = perf() - t0
    FILL_TIMES[n] = build_s
    if len(reg.find_systems("target")) != holders:
        raise AssertionError("wrong find_systems result")
    samples = []
    deadline = perf() + seconds
    while len(samples) < max_samples:
        t = perf()
        out = reg.find_systems("target")
        samples.append(perf() - t)
        if len(out) != holders:
            raise AssertionError("wrong find_systems result")
        if perf() >= deadline and len(samples) >= 5:
            break
    samples.sort()
    p50 = percentile(samples, 0.50) * 1e6
    p99 = percentile(samples, 0.99) * 1e6
    del reg
    gc.collect()
    return p50, p99, len(samples), build_s


def bench_purge(n=100000, runs=5):
    times = []
    for _ in range(runs):
        reg = Registry()
        gc.disable()
        try:
            for i in range(n):
                reg.register_channel({"id": f"exp-{i}"}, 300.0)
        finally:
            gc.enable()
        past = time.time() - 1.0
        for e in reg.channels.values():   # all of them expire at once
            e["expires_at"] = past
        gc.collect()
        t = perf()
        purged = reg.purge()
        dt = perf() - t
        if purged != n or reg.channels:
            raise AssertionError(f"purged {purged} of {n}")
        times.append(dt * 1e3)
        del reg
    times.sort()
    return times


def mem_available_bytes():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=float(os.environ.get("PY_BENCH_SECONDS", "1.0")),
                    help="work per throughput measurement (default 1.0 s)")
    ap.add_argument("--with-1m", dest="with_1m", action="store_true",
                    default=os.environ.get("PY_BENCH_1M", "1") != "0",
                    help="also measure find_systems at 1M entries (default on; PY_BENCH_1M=0 skips)")
    ap.add_argument("--no-1m", dest="with_1m", action="store_false")
    args = ap.parse_args()
    secs = max(0.1, args.seconds)

    impl = f"CPython {sys.version.split()[0]}"
    log(f"{impl} at {sys.executable}; {secs:g} s per throughput figure")
    t_start = perf()

    def msg_rate(readers):
        def f():
            rate = bench_broadcast(readers, secs)
            batch = BATCH_1TO1 if readers == 1 else BATCH_FANOUT
            note = (f"{impl}; write (envelope, uuid4, json.dumps once) + read (json.loads per "
                    f"reader), batches of {batch}, capacity {CAPACITY}")
            return int(round(rate)), None, note
        return f

    measure("broadcast 1 writer -> 1 reader", "msg/s", msg_rate(1))
    measure("fan-out 10 readers", "deliveries/s", msg_rate(10))
    measure("fan-out 100 readers", "deliveries/s", msg_rate(100))
    measure("work queue claim+ack", "msg/s",
            lambda: (int(round(bench_work_queue(secs))), None,
                     f"{impl}; per message: write, claim (batches of {BATCH_QUEUE}), json.loads, acknowledge"))
    measure("registry register (upsert, TTL)", "op/s",
            lambda: (int(round(bench_register(secs))), None,
                     f"{impl}; dict upsert of a normalized ChannelInfo copy with expires_at, 10k ids"))
    measure("registry get_channel", "op/s",
            lambda: (int(round(bench_get(secs))), None,
                     f"{impl}; dict lookup + expiry check, cycling over 1,000 entries (the Python sssn's "
                     "DiscoveryChannel scans its whole store instead: this is its best case)"))

    def find(n, label):
        def f():
            p50, p99, count, build_s = bench_find(n, secs * 1.5)
            note = (f"{impl}; p50 {p50:.1f} us, {count} samples; full scan of {label} "
                    f"systems checking expires_at and service names, capability held by 10 "
                    f"(fill took {build_s:.1f} s)")
            return round(p99, 1), round(p99, 1), note, round(p50, 1)
        return f

    measure("find_systems p99 @10k", "us", find(10_000, "10k"))
    measure("find_systems p99 @100k", "us", find(100_000, "100k"))

    # 1M entries: about 1.2 GiB of descriptors and a scan of ~0.5 s per call. Skipped when
    # memory is short or when filling 100k took so long that 1M would not be "a few seconds".
    avail = mem_available_bytes()
    need = 3 * 1024 ** 3
    fill_100k = FILL_TIMES.get(100_000)
    if not args.with_1m:
        result("find_systems p99 @1M", None, "us", None, "skipped (--no-1m / PY_BENCH_1M=0)")
    elif avail is not None and avail < need:
        result("find_systems p99 @1M", None, "us", None,
               f"skipped: {avail // 2**20} MiB available, about 3 GiB needed for 1M descriptors")
    elif fill_100k is None or fill_100k > 1.5:
        result("find_systems p99 @1M", None, "us", None,
               "skipped: filling 100k entries took "
               + (f"{fill_100k:.1f} s" if fill_100k is not None else "too long / failed")
               + ", so 1M would take too long")
    else:
        measure("find_systems p99 @1M", "us", find(1_000_000, "1M"))

    def purge():
        times = bench_purge()
        med = times[len(times) // 2]
        note = (f"{impl}; median of {len(times)} runs (min {times[0]:.1f}, max {times[-1]:.1f} ms): "
                "100k channel entries; scan the dict for expires_at <= now, then delete each")
        return round(med, 2), None, note

    measure("purge 100k expired", "ms", purge)
    log(f"done in {perf() - t_start:.1f} s")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:
        traceback.print_exc(file=sys.stderr)
        sys.exit(0)
