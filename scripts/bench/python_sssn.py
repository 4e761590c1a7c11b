#!/usr/bin/env python3
"""The Python sssn v0.0.1 itself, as a peer in `make bench` (SSSN_PY_SRC=DIR make bench).

Imports `sssn` from the source tree in $SSSN_PY_SRC (commit 8fb4409 of
github:Productive-Superintelligence/sssn; never copied into this project) and runs, through its
public API, the workloads of the host's in-process benchmarks (scripts/bench/local_*.lua), one
`RESULT {json}` line per figure with "group": "python-sssn" and the figure's key (see
/work/notes/i11-contract.md and BENCHMARKS.md's Method). Everything else goes to stderr.

How each workload maps to v0.0.1 (all through BaseSystem / the channel classes / DiscoveryChannel,
inside one asyncio loop started with asyncio.run, as its docs and tests do):

  bcast_l20, bcast_l1000  a writer BaseSystem owns a BroadcastChannel (add_channel), a reader is
        its subsystem connected to it (add_subsystem(channels=[...])); per round 1,000 calls of
        `await writer.write_channel(id, data=payload)`, then `await reader.read_channel(id,
        limit=20 | 1000)` until the 1,000 are read. msg/s end to end.
  bcast_reads  1,000-message reads alone (limit 1000) over 20,000 messages written beforehand;
        each pass is a fresh reader system (its cursor starts at 0).
  fanout10  per round 100 writes, then each of 10 reader systems reads them (limit 100).
        deliveries/s.
  subscribe10  10 systems `subscribe_channel(id, async callback)`; every write_channel awaits
        the 10 callbacks (v0.0.1 runs them inside write() with asyncio.gather). deliveries/s.
  wq  a WorkQueueChannel; per round 500 write_channel, one claim_channel(limit=500), one
        acknowledge_channel of their ids. msg/s.
  reg_upsert  `await disc.register_channel(info, ttl=300)` of the same ChannelInfo (op/s).
  get1000  `await disc.get_channel(id)` cycling over 1,000 registered ids (op/s).
  find_vis  `await disc.find_channels(visibility=Visibility.PUBLIC)` over FIND_VIS_ENTRIES
        channels of which FIND_VIS_PUBLIC are public (p99 us per call).
  find_sys_10k/100k/1M  `await disc.find_systems(capability="rare")`, held by 10 systems among
        10k / 100k / 1M registered with register_system(ServiceDescriptor) (p99 us per call).
  purge100k  100,000 channel registrations (ttl 1 s), past their expiry; `await
        disc.on_maintain()` timed (ms).
  tick10k_steps, tick10k_p99, tick_cpu_us  10,000 BaseSystem subclasses with a trivial step,
        each `run(tick_rate=10)` (gathered, as docs/examples/discovery.md runs systems);
        lateness = a step's start minus the start the loop aimed at (previous start + 0.1 s).
  heap_idle  tracemalloc bytes per idle system (the object, its client and descriptor, and its
        sleeping run() task), over 1,000 systems.

Where v0.0.1 lacks an operation nothing is printed for its key (see the comments below): it has
no HTTP benchmark here (http_*: its server needs fastapi/uvicorn, not installed, and the figure
is the host's own), no bounded ring, no registry events.

Every loop is bounded by wall time; the whole run is kept under PY_SSSN_BUDGET seconds
(default 90): find_systems at 1M, the most expensive part, runs last and only if its projected
time fits in what is left (and enough memory is free). Exits 0 when a figure fails (it prints a
RESULT with value null and a note), 2 when sssn cannot be imported.
"""

import asyncio
import gc
import importlib.util
import json
import os
import sys
import time
import traceback
import tracemalloc

GROUP = "python-sssn"
perf = time.perf_counter
PAYLOAD = {"celsius": 22.4}

SECONDS = float(os.environ.get("PY_SSSN_SECONDS", "1.0"))   # per throughput sample
REPS = int(os.environ.get("PY_SSSN_REPS", "3"))              # best of REPS where cheap
BUDGET = float(os.environ.get("PY_SSSN_BUDGET", "90"))       # the whole run, seconds
FIND_VIS_ENTRIES = 10_000
FIND_VIS_PUBLIC = 10
T_START = perf()


def log(*args):
    print("[python_sssn]", *args, file=sys.stderr, flush=True)


def result(key, name, value, unit, note=None, **extra):
    obj = {"group": GROUP, "key": key, "name": name, "value": value, "unit": unit}
    obj.update({k: v for k, v in extra.items() if v is not None})
    if note:
        obj["note"] = note
    print("RESULT " + json.dumps(obj, separators=(",", ":")), flush=True)
    log(f"{key}: {value} {unit}" + (f" -- {note}" if note else ""))


def left():
    return BUDGET - (perf() - T_START)


# --------------------------------------------------------------------------------------
# Importing v0.0.1 from its source tree
# --------------------------------------------------------------------------------------

def import_sssn(src):
    if not src or not os.path.isfile(os.path.join(src, "sssn", "__init__.py")):
        log(f"SSSN_PY_SRC={src!r} is not a Python sssn source tree (no sssn/__init__.py in it)")
        sys.exit(2)
    try:
        import pydantic
    except ImportError:
        log(f"{sys.executable} has no pydantic; the Python sssn needs pydantic 2")
        sys.exit(2)
    if not pydantic.VERSION.startswith("2."):
        log(f"{sys.executable} has pydantic {pydantic.VERSION}; the Python sssn needs pydantic 2")
        sys.exit(2)
    # sssn/core/security.py imports PyJWT at module level (only JWTChannelSecurity uses it).
    # When this interpreter lacks it, load Debian's pure-Python package python3-jwt, and only it
    # (not the rest of dist-packages, whose pydantic is 1.x).
    try:
        import jwt  # noqa: F401
    except ImportError:
        pkg = "/usr/lib/python3/dist-packages/jwt"
        if not os.path.isfile(os.path.join(pkg, "__init__.py")):
            log("the Python sssn imports jwt (PyJWT): apt-get install python3-jwt")
            sys.exit(2)
        spec = importlib.util.spec_from_file_location(
            "jwt", os.path.join(pkg, "__init__.py"), submodule_search_locations=[pkg])
        mod = importlib.util.module_from_spec(spec)
        sys.modules["jwt"] = mod
        spec.loader.exec_module(mod)
        log(f"jwt loaded from Debian's python3-jwt ({pkg})")
    sys.path.insert(0, os.path.abspath(src))
    import sssn
    if not os.path.abspath(sssn.__file__).startswith(os.path.abspath(src)):
        log(f"imported sssn from {sssn.__file__}, not from {src}")
        sys.exit(2)
    return sssn


SRC = os.environ.get("SSSN_PY_SRC", sys.argv[1] if len(sys.argv) > 1 else "")
sssn = import_sssn(SRC)
from sssn import (BaseSystem, BroadcastChannel, ChannelInfo, DiscoveryChannel,  # noqa: E402
                  ServiceDescriptor, ServiceMethod, Visibility, WorkQueueChannel)

IMPL = f"CPython {sys.version.split()[0]}, pydantic {__import__('pydantic').VERSION}"


def version_of_src():
    try:
        with open(os.path.join(SRC, "pyproject.toml")) as f:
            for line in f:
                if line.startswith("version"):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "?"


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------

async def rate(seconds, round_fn):
    """Awaits round_fn() (returns the units it did) until `seconds` passed: units per second."""
    units, t0 = 0, perf()
    while True:
        units += await round_fn()
        t = perf()
        if t - t0 >= seconds:
            return units / (t - t0)


async def best_of(make, reps=REPS, seconds=SECONDS):
    """make() -> a fresh round function (fresh channels, so one rep's history does not slow the
    next); returns the best rate and all of them."""
    rates = []
    for _ in range(reps):
        round_fn = await make()
        gc.collect()
        rates.append(await rate(seconds, round_fn))
        if left() < 30:
            break
    return max(rates), rates


def percentile(samples, p):
    s = sorted(samples)
    return s[max(0, min(len(s) - 1, int(round(p / 100 * (len(s) - 1)))))]


def spread(rates):
    return "runs " + " / ".join(f"{r:,.0f}" for r in rates)


async def measure(key, fn):
    try:
        await fn()
    except Exception as exc:  # one failed figure must not end the run
        traceback.print_exc(file=sys.stderr)
        result(key, key, None, "", f"failed: {type(exc).__name__}: {exc}")


class Bench:
    """Owns the systems of one workload: the writer with its channels, and connected readers."""

    def __init__(self, name):
        self.writer = BaseSystem(id=f"{name}-writer", name=f"{name} writer")

    async def channel(self, ch):
        self.writer.add_channel(ch)
        await ch.start()
        return ch

    def reader(self, rid, ch_id):
        r = BaseSystem(id=rid, name=rid)
        self.writer.add_subsystem(r, channels=[ch_id])
        return r


# --------------------------------------------------------------------------------------
# Channels
# --------------------------------------------------------------------------------------

BATCH = 1000   # messages per round, 1 -> 1 (as the host's loop)


async def bench_bcast(limit):
    async def make():
        b = Bench("bcast")
        await b.channel(BroadcastChannel(id="bench-b", name="bench-b"))
        r = b.reader("bench-reader", "bench-b")
        w = b.writer

        async def one_round():
            for _ in range(BATCH):
                await w.write_channel("bench-b", data=PAYLOAD)
            got = 0
            while got < BATCH:
                msgs = await r.read_channel("bench-b", limit=limit)
                if not msgs:
                    raise AssertionError("reader fell behind")
                got += len(msgs)
            if msgs[-1].content.data["celsius"] != 22.4:
                raise AssertionError("bad payload")
            return got
        return one_round

    best, rates = await best_of(make)
    result(f"bcast_l{limit}", f"broadcast 1 writer -> 1 reader, read limit {limit}", round(best), "msg/s",
           f"{IMPL}; best of {len(rates)} ({spread(rates)}); {BATCH} write_channel calls, then "
           f"read_channel(limit={limit}) until read")


async def bench_reads():
    b = Bench("reads")
    await b.channel(BroadcastChannel(id="bench-r", name="bench-r"))
    n = 20_000
    gc.disable()
    for _ in range(n):
        await b.writer.write_channel("bench-r", data=PAYLOAD)
    gc.enable()
    readers = iter(range(1_000_000))
    rates = []
    for _ in range(REPS):
        done, spent = 0, 0.0
        while spent < SECONDS:
            r = b.reader(f"bench-reads-{next(readers)}", "bench-r")   # a fresh cursor at 0
            t0 = perf()
            got = 0
            while True:
                msgs = await r.read_channel("bench-r", limit=1000)
                if not msgs:
                    break
                got += len(msgs)
            spent += perf() - t0
            if got != n:
                raise AssertionError(f"read {got} of {n}")
            done += got
        rates.append(done / spent)
    result("bcast_reads", "broadcast reads alone (limit 1000)", round(max(rates)), "msg/s",
           f"{IMPL}; best of {len(rates)} ({spread(rates)}); read_channel(limit=1000) over {n:,} "
           "messages written before; v0.0.1 returns its stored message objects, no copy")


async def bench_fanout(readers=10, per_round=100):
    async def make():
        b = Bench("fan")
        await b.channel(BroadcastChannel(id="bench-fan", name="bench-fan"))
        rs = [b.reader(f"bench-fan-r{i}", "bench-fan") for i in range(readers)]
        w = b.writer

        async def one_round():
            for _ in range(per_round):
                await w.write_channel("bench-fan", data=PAYLOAD)
            for r in rs:
                if len(await r.read_channel("bench-fan", limit=per_round)) != per_round:
                    raise AssertionError("reader fell behind")
            return per_round * readers
        return one_round

    best, rates = await best_of(make)
    result(f"fanout{readers}", f"fan-out {readers} readers", round(best), "deliveries/s",
           f"{IMPL}; best of {len(rates)} ({spread(rates)}); {per_round} write_channel, then each "
           f"reader read_channel(limit={per_round})")


async def bench_subscribe(subs=10, per_round=100):
    async def make():
        b = Bench("sub")
        await b.channel(BroadcastChannel(id="bench-sub", name="bench-sub"))
        count = [0]

        async def on_message(msg):
            if msg.content.data["celsius"] == 22.4:
                count[0] += 1

        for i in range(subs):
            await b.reader(f"bench-sub-r{i}", "bench-sub").subscribe_channel("bench-sub", on_message)
        w = b.writer

        async def one_round():
            before = count[0]
            for _ in range(per_round):
                await w.write_channel("bench-sub", data=PAYLOAD)
            if count[0] - before != per_round * subs:
                raise AssertionError(f"delivered {count[0] - before} of {per_round * subs}")
            return per_round * subs
        return one_round

    best, rates = await best_of(make)
    result(f"subscribe{subs}", f"subscribe_channel, {subs} subscribers", round(best), "deliveries/s",
           f"{IMPL}; best of {len(rates)} ({spread(rates)}); each write_channel awaits the {subs} "
           "callbacks (asyncio.gather inside write())")


async def bench_wq(per_round=500):
    first = []

    async def make():
        b = Bench("wq")
        await b.channel(WorkQueueChannel(id="bench-q", name="bench-q"))
        worker = b.reader("bench-worker", "bench-q")
        w = b.writer

        async def one_round():
            t0 = perf()
            for _ in range(per_round):
                await w.write_channel("bench-q", data=PAYLOAD)
            got = await worker.claim_channel("bench-q", limit=per_round)
            if len(got) != per_round:
                raise AssertionError(f"claimed {len(got)} of {per_round}")
            await worker.acknowledge_channel("bench-q", [m.id for m in got])
            if len(first) < 1:
                first.append(per_round / (perf() - t0))
            return per_round
        return one_round

    best, rates = await best_of(make)
    # v0.0.1 keeps acknowledged messages in the store (and their ids in a set) and every claim
    # scans the store from the start: the rate falls as the queue's history grows.
    result("wq", "work queue write + claim + ack", round(best), "msg/s",
           f"{IMPL}; best of {len(rates)} ({spread(rates)}) of {SECONDS:g} s each; per round "
           f"{per_round} write_channel, claim_channel(limit={per_round}), acknowledge_channel; the "
           f"first round ran at {first[0]:,.0f} msg/s (each claim rescans every message ever "
           "written, acknowledged ones too)")


# --------------------------------------------------------------------------------------
# Registry (DiscoveryChannel)
# --------------------------------------------------------------------------------------

def channel_info(cid, public=True, name=None, description=""):
    return ChannelInfo(id=cid, name=name or cid, description=description,
                       visibility=Visibility.PUBLIC if public else Visibility.PRIVATE, period=60.0)


async def discovery(name="registry"):
    d = DiscoveryChannel(id=name, name="Service Registry", registration_ttl=3600.0)
    BaseSystem(id=f"{name}-owner", name="owner").add_channel(d)
    await d.start()
    return d


async def bench_upsert():
    info = channel_info("bench-ch", name="Bench Channel", description="d")

    async def make():
        d = await discovery()

        async def one_round():
            for _ in range(1000):
                await d.register_channel(info, ttl=300)
            return 1000
        return one_round

    best, rates = await best_of(make)
    # v0.0.1 has no upsert: each register_channel appends a new registration message (uuid,
    # pydantic models) and the old ones stay until they expire; nothing is validated beyond the
    # models, no event is emitted.
    result("reg_upsert", "registry register (same entry, TTL)", round(best), "op/s",
           f"{IMPL}; best of {len(rates)} ({spread(rates)}); register_channel(info, ttl=300) of one "
           "ChannelInfo; v0.0.1 appends a registration each time (no replace), no event")


async def bench_get():
    d = await discovery()
    ids = [f"chan-{i}" for i in range(1000)]
    for c in ids:
        await d.register_channel(channel_info(c), ttl=300)
    state = {"i": 0}

    async def make():
        async def one_round():
            i = state["i"]
            for _ in range(100):
                if await d.get_channel(ids[i]) is None:
                    raise AssertionError("missing " + ids[i])
                i = (i + 1) % 1000
            state["i"] = i
            return 100
        return one_round

    best, rates = await best_of(make)
    result("get1000", "registry get_channel over 1,000 ids", round(best), "op/s",
           f"{IMPL}; best of {len(rates)} ({spread(rates)}); get_channel cycling over 1,000 "
           "registered ids: v0.0.1 scans the live registrations, validating each into a "
           "ChannelInfo until the id matches")


async def bench_find_vis():
    d = await discovery()
    step = FIND_VIS_ENTRIES // FIND_VIS_PUBLIC
    gc.disable()
    for i in range(FIND_VIS_ENTRIES):
        await d.register_channel(channel_info(f"vis-{i}", public=(i % step == 0)), ttl=3600)
    gc.enable()
    gc.collect()
    samples, deadline = [], perf() + 2 * SECONDS
    while len(samples) < 2000 and (perf() < deadline or len(samples) < 5):
        t0 = perf()
        found = await d.find_channels(visibility=Visibility.PUBLIC)
        samples.append((perf() - t0) * 1e6)
        if len(found) != FIND_VIS_PUBLIC:
            raise AssertionError(f"found {len(found)}")
    result("find_vis", f"find_channels by visibility, {FIND_VIS_PUBLIC} public of "
           f"{FIND_VIS_ENTRIES:,}", round(percentile(samples, 99), 1), "us",
           f"{IMPL}; {len(samples)} calls of find_channels(visibility=PUBLIC); v0.0.1 validates "
           "every live registration into a ChannelInfo, then filters",
           p50_us=round(percentile(samples, 50), 1), p99_us=round(percentile(samples, 99), 1))


async def bench_purge(n=100_000):
    times = []
    for _ in range(REPS):
        if times and left() < 45:
            break
        d = await discovery("purge-registry")
        gc.disable()
        for i in range(n):
            await d.register_channel(channel_info(f"exp-{i}"), ttl=1.0)
        expiry = time.time() + 1.0
        gc.enable()
        await asyncio.sleep(max(0.0, expiry - time.time() + 0.01))   # all of them expired
        gc.collect()
        t0 = perf()
        await d.on_maintain()
        times.append((perf() - t0) * 1e3)
        if await d.find_channels() or await d.get_channel("exp-0") is not None:
            raise AssertionError("registrations left after the purge")
        del d
        gc.collect()
    # v0.0.1 only purges when on_maintain() is called: a DiscoveryChannel is a
    # PassthroughChannel, whose start() runs no loop, so nothing calls it on its own; expired
    # entries are otherwise only filtered out on every read. No 'expired' events exist.
    result("purge100k", "purge 100k expired", round(min(times), 2), "ms",
           f"{IMPL}; best of {len(times)} (" + " / ".join(f"{t:.1f}" for t in times) + " ms): "
           "100,000 channel registrations past their TTL, on_maintain() timed; v0.0.1 emits no "
           "expired events and never schedules on_maintain for a DiscoveryChannel")


class SysFill:
    """One DiscoveryChannel filled with systems step by step: 10 hold "rare", the rest one
    capability each (as local_registry.lua does)."""

    def __init__(self, d):
        self.d, self.n, self.rate = d, 0, None

    async def fill(self, n):
        gc.disable()   # set-up, not measured: the cyclic GC would rescan the growing heap
        t0 = perf()
        register = self.d.register_system
        for i in range(self.n + 1, n + 1):
            await register(ServiceDescriptor(
                system_id=f"s{i}", system_name=f"S{i}", description="",
                services=[ServiceMethod(name=f"cap{i}", description="")],
                channels_read=[], channels_write=[]), ttl=3600)
        dt = perf() - t0
        gc.enable()
        if n > self.n:
            self.rate = (n - self.n) / dt
        self.n = n
        return dt


def mem_available():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


async def bench_find_sys():
    d = await discovery("find-registry")
    for i in range(10):
        await d.register_system(ServiceDescriptor(
            system_id=f"rare{i}", system_name=f"Rare {i}", description="",
            services=[ServiceMethod(name="rare", description="")],
            channels_read=[], channels_write=[]), ttl=3600)
    filler = SysFill(d)
    last_call = None
    for n, label in ((10_000, "10k"), (100_000, "100k"), (1_000_000, "1M")):
        if n == 1_000_000:
            # projected: the fill at the rate measured for 100k, plus 5 calls at 10x the 100k one
            projected = (n - filler.n) / filler.rate + 5 * 10 * last_call
            avail, need = mem_available(), 4 * 1024 ** 3
            if avail is not None and avail < need:
                log(f"find_sys_1M skipped: {avail >> 20} MiB available, ~4 GiB needed")
                return
            if projected > left():
                log(f"find_sys_1M skipped: it would take ~{projected:.0f} s, {left():.0f} s of the "
                    f"{BUDGET:g} s budget left (PY_SSSN_BUDGET raises it)")
                return
        fill_s = await filler.fill(n)
        gc.collect()
        samples, deadline = [], perf() + 1.5 * SECONDS
        while len(samples) < 2000 and (perf() < deadline or len(samples) < 5):
            t0 = perf()
            found = await d.find_systems(capability="rare")
            samples.append((perf() - t0) * 1e6)
            if len(found) != 10:
                raise AssertionError(f"found {len(found)}")
        last_call = percentile(samples, 50) / 1e6
        result(f"find_sys_{label}", f"find_systems p99 @{label}", round(percentile(samples, 99), 1), "us",
               f"{IMPL}; {len(samples)} calls of find_systems(capability='rare'), held by 10 of "
               f"{n + 10:,} systems (register_system took {fill_s:.1f} s to add them); v0.0.1 "
               "scans every registration", p50_us=round(percentile(samples, 50), 1),
               p99_us=round(percentile(samples, 99), 1))


# --------------------------------------------------------------------------------------
# Ticks
# --------------------------------------------------------------------------------------

class Ticker(BaseSystem):
    """A trivial step that records when it started (the only work it does)."""

    period = 0.1
    lateness = None   # a list while measuring
    steps = 0

    def __init__(self, i):
        super().__init__(id=f"tick{i:05d}", name=f"tick {i}")
        self.last = None

    async def step(self):
        t = time.monotonic()
        lat = Ticker.lateness
        if lat is not None:
            Ticker.steps += 1
            if self.last is not None:
                lat.append(t - self.last - 0.1)
        self.last = t


async def bench_ticks(n=10_000, settle=1.0, window=4.0):
    systems = [Ticker(i) for i in range(n)]
    runner = asyncio.gather(*(s.run(tick_rate=10) for s in systems))
    await asyncio.sleep(settle)
    Ticker.lateness, Ticker.steps = [], 0
    for s in systems:
        s.last = None   # lateness only between steps inside the window
    cpu0, t0 = time.process_time(), perf()
    await asyncio.sleep(window)
    cpu, wall, steps, lat = time.process_time() - cpu0, perf() - t0, Ticker.steps, Ticker.lateness
    Ticker.lateness = None
    for s in systems:
        s.stop()
    await runner
    lat_us = [x * 1e6 for x in lat]
    p50, p99 = percentile(lat_us, 50), percentile(lat_us, 99)
    note = (f"{IMPL}; {n:,} BaseSystem.run(tick_rate=10) in one asyncio loop, {wall:.1f} s window; "
            f"{n * 10:,} steps/s wanted; lateness = step start - (previous start + 0.1 s)")
    result("tick10k_steps", f"{n:,} systems at 10 Hz: steps", round(steps / wall), "steps/s", note)
    result("tick10k_p99", f"{n:,} systems at 10 Hz: tick lateness p99", round(p99), "us", note,
           p50_us=round(p50), p99_us=round(p99))
    result("tick_cpu_us", "CPU per trivial step", round(cpu / max(steps, 1) * 1e6, 2), "us",
           f"{IMPL}; process CPU time over the {n:,}-system window / steps run ({cpu / wall * 100:.0f} "
           "% of one core)")


async def bench_heap(n=1000):
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    systems = [Ticker(100_000 + i) for i in range(n)]
    runner = asyncio.gather(*(s.run(tick_rate=10) for s in systems))
    await asyncio.sleep(0.3)   # every run() task started and sleeping
    per = (tracemalloc.get_traced_memory()[0] - base) / n / 1024
    tracemalloc.stop()
    for s in systems:
        s.stop()
    await runner
    # not comparable with the host's figure (a Lua state per system): listed, no ratio drawn
    result("heap_idle", "heap per idle system", round(per, 2), "KiB", comparable=False, note=
           f"{IMPL}; tracemalloc growth per BaseSystem (with its client, descriptor and sleeping "
           f"run() task), over {n:,}; all systems share one interpreter (no isolation)")


# --------------------------------------------------------------------------------------

async def main():
    log(f"sssn {version_of_src()} from {SRC}; {IMPL} at {sys.executable}; "
        f"{SECONDS:g} s per sample, best of {REPS}, budget {BUDGET:g} s")
    # Not measured: HTTP (http_*: v0.0.1's ChannelServer needs fastapi and uvicorn, which are
    # not installed here, and the HTTP peer is redis), nor anything v0.0.1 lacks.
    for key, fn in (
        ("bcast_l20", lambda: bench_bcast(20)),
        ("bcast_l1000", lambda: bench_bcast(1000)),
        ("bcast_reads", bench_reads),
        ("fanout10", bench_fanout),
        ("subscribe10", bench_subscribe),
        ("wq", bench_wq),
        ("reg_upsert", bench_upsert),
        ("get1000", bench_get),
        ("find_vis", bench_find_vis),
        ("purge100k", bench_purge),
        ("tick10k", bench_ticks),
        ("heap_idle", bench_heap),
        ("find_sys", bench_find_sys),    # last: 1M runs only in what is left of the budget
    ):
        await measure(key, fn)
        gc.collect()
    log(f"done in {perf() - T_START:.1f} s")


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except Exception:
        traceback.print_exc(file=sys.stderr)
    sys.exit(0)
