"""Kernel-only and host-inclusive timing on one GPU (CUDA events around CUDA-graph replays, a
spin kernel ahead, optional L2 flush), the copy bandwidth of the same run, and the device's
description."""

from __future__ import annotations

import ctypes
import math
import platform
import statistics
import subprocess
import time

SPIN_US_BASE = 40  # spin kernel ahead of every timed run (host enqueue hidden)
SPIN_US_PER_REPLAY = 12
TARGET_RUN_US = 100.0  # without flush, back-to-back replays per event pair reach this
MAX_INNER = 20
HOST_RUNS_MAX = 50
MAX_MEASURE_US = 3e6  # timed work per measurement; slow kernels get fewer runs
MIN_RUNS = 10
COPY_BYTES = 1 << 30
FLUSH_BYTES = 256 << 20  # > 5x the H100's 50 MB L2


class Timer:
    """Times a callable: `kernel_times` (CUDA events around graph replays or direct calls) and
    `host_times` (Python call until torch.cuda.synchronize returns)."""

    def __init__(self, torch, runs, warmup, flush_bytes):
        self.torch = torch
        self.runs = runs
        self.warmup = warmup
        self.flush = torch.empty(flush_bytes, dtype=torch.uint8, device="cuda") if flush_bytes else None

    def _spin(self, us):
        self.torch.cuda._sleep(int(us * 2000))  # ~2 GHz: never shorter than wanted on an H100

    def capture(self, fn):
        """A CUDA graph of fn() (warm-up on a side stream first, as torch.cuda.graph wants)."""
        torch = self.torch
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(2):
                fn()
        torch.cuda.current_stream().wait_stream(s)
        torch.cuda.synchronize()
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            out = fn()
        torch.cuda.synchronize()
        return g, out

    def kernel_times(self, launch):
        """Per-run microseconds of `launch` (a graph replay or a direct call), between events."""
        torch = self.torch
        for _ in range(max(1, self.warmup)):
            launch()
        torch.cuda.synchronize()
        # estimate, to pick the replays per event pair
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        self._spin(SPIN_US_BASE)
        e0.record()
        launch()
        e1.record()
        torch.cuda.synchronize()
        est = max(e0.elapsed_time(e1) * 1000.0, 0.5)
        inner = 1 if self.flush is not None else int(min(MAX_INNER, max(1, math.ceil(TARGET_RUN_US / est))))
        # a slow kernel gets fewer runs (about MAX_MEASURE_US of timed work, at least MIN_RUNS)
        runs = int(max(MIN_RUNS, min(self.runs, MAX_MEASURE_US // (est * inner))))
        self.last_runs = runs
        starts = [torch.cuda.Event(enable_timing=True) for _ in range(runs)]
        ends = [torch.cuda.Event(enable_timing=True) for _ in range(runs)]
        for i in range(runs):
            if self.flush is not None:
                self.flush.add_(1)  # read + write 256 MiB: the L2 holds nothing useful afterwards
            self._spin(SPIN_US_BASE + SPIN_US_PER_REPLAY * inner)
            starts[i].record()
            for _ in range(inner):
                launch()
            ends[i].record()
            if (i + 1) % 50 == 0:
                torch.cuda.synchronize()
        torch.cuda.synchronize()
        return [s.elapsed_time(e) * 1000.0 / inner for s, e in zip(starts, ends)], inner

    def host_times(self, call):
        """Per-call microseconds from the Python call until the GPU is done (synchronize)."""
        torch = self.torch
        n = min(self.runs, HOST_RUNS_MAX, getattr(self, "last_runs", self.runs))
        call()
        torch.cuda.synchronize()
        ts = []
        for _ in range(n):
            if self.flush is not None:
                self.flush.add_(1)
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            call()
            torch.cuda.synchronize()
            ts.append((time.perf_counter() - t0) * 1e6)
        return ts


def stats(ts):
    ts = sorted(ts)
    n = len(ts)
    q = lambda p: ts[min(n - 1, max(0, int(round(p * (n - 1)))))]
    return {"median_us": statistics.median(ts), "p10_us": q(0.1), "p90_us": q(0.9), "min_us": ts[0], "n": n}


def copy_bandwidth(torch, nbytes=COPY_BYTES, runs=20):
    src = torch.empty(nbytes, dtype=torch.uint8, device="cuda")
    src.fill_(1)
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    torch.cuda.synchronize()
    ts = []
    for _ in range(runs):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        dst.copy_(src)
        b.record()
        b.synchronize()
        ts.append(a.elapsed_time(b) * 1e-3)
    t = statistics.median(ts)
    del src, dst
    torch.cuda.empty_cache()
    return {
        "bytes_copied": nbytes,
        "bytes_moved": 2 * nbytes,
        "median_s": t,
        "gbps": 2 * nbytes / t / 1e9,
        "method": "device-to-device copy_ of 1 GiB, read + written bytes / median time",
    }


def device_info(torch):
    p = torch.cuda.get_device_properties(0)
    info = {
        "name": p.name,
        "capability": f"sm_{p.major}{p.minor}",
        "sms": p.multi_processor_count,
        "memory_gib": round(p.total_memory / 2**30, 1),
        "l2_mib": round(getattr(p, "L2_cache_size", 0) / 2**20, 1) or None,
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "python": platform.python_version(),
        "host": platform.node(),
    }
    drv = None
    try:
        r = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version,clocks.max.sm,clocks.max.mem", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        if r.returncode == 0 and r.stdout.strip():
            parts = [x.strip() for x in r.stdout.strip().splitlines()[0].split(",")]
            drv = parts[0]
            if len(parts) >= 3:
                info["max_sm_clock"] = parts[1]
                info["max_mem_clock"] = parts[2]
    except (OSError, subprocess.SubprocessError):
        pass
    if drv is None:
        try:
            v = ctypes.c_int()
            ctypes.CDLL("libcuda.so.1").cuDriverGetVersion(ctypes.byref(v))
            drv = f"CUDA driver API {v.value // 1000}.{(v.value % 1000) // 10}"
        except OSError:
            drv = "unknown"
    info["driver"] = drv
    return info


def short_error(e):
    """The first line of an exception, with its type, at most 500 characters."""
    s = f"{type(e).__name__}: {e}".strip().splitlines()
    return (s[0] if s else type(e).__name__)[:500]


def measure(timer, call):
    """Kernel-only and host-inclusive medians of `call()`: captured in a CUDA graph and timed by
    replays, or, when it cannot be captured, timed as direct calls (said in "notes")."""
    torch = timer.torch
    sec = {}
    try:
        g, _ = timer.capture(call)
        kt, inner = timer.kernel_times(g.replay)
        sec["graph"] = True
        del g
    except Exception as e:  # noqa: BLE001 - not capturable: time direct calls, say so
        torch.cuda.synchronize()
        sec["graph"] = False
        sec["notes"] = f"CUDA graph capture failed ({short_error(e)}): timed direct calls (includes launch gaps)"
        kt, inner = timer.kernel_times(call)
    sec["kernel"] = stats(kt)
    sec["kernel_us"] = sec["kernel"]["median_us"]
    sec["inner"] = inner
    sec["host"] = stats(timer.host_times(call))
    sec["host_us"] = sec["host"]["median_us"]
    return sec


def _time_copy(timer, src):
    dst = timer.torch.empty_like(src)
    return measure(timer, lambda: dst.copy_(src))


def sized_copy(timer, nbytes):
    """The ceiling of a kernel moving 2 * nbytes at that size, timed like a case (`measure`: CUDA
    graph, the timer's L2 flush): the faster of two copies of nbytes, a device-to-device `copy_`
    (cudaMemcpy) of a uint8 buffer and an elementwise kernel (`bitwise_not` of an int32 view, the
    same bytes read and written by a vectorised grid-stride kernel). The two disagree at some sizes
    (on the H200, copy_ of 54 MB was slower than copy_ of 34 MB): the faster one is the ceiling."""
    torch = timer.torch
    n = max(1, int(nbytes))
    src = torch.ones(n, dtype=torch.uint8, device="cuda")
    sec = _time_copy(timer, src)
    methods = {"copy_": sec["kernel_us"]}
    best = ("copy_", sec)
    if n >= 4096:  # an int32 view of the first n // 4 * 4 bytes; tiny sizes keep copy_ alone
        ints = src[: n // 4 * 4].view(torch.int32)
        out32 = torch.empty_like(ints)
        ew = measure(timer, lambda: torch.bitwise_not(ints, out=out32))
        # per byte moved: scale to n bytes (the view drops at most 3)
        ew_us = ew["kernel_us"] * n / (n // 4 * 4)
        methods["elementwise"] = ew_us
        if ew_us < sec["kernel_us"]:
            best = ("elementwise", {**ew, "kernel_us": ew_us})
        del ints, out32
    del src
    torch.cuda.empty_cache()
    name, sec = best
    out = {
        "bytes_copied": n,
        "bytes_moved": 2 * n,
        "kernel_us": sec["kernel_us"],
        "kernel": sec["kernel"],
        "graph": sec["graph"],
        "method": name,
        "methods_us": methods,
        "how": "the faster of copy_ (uint8) and an elementwise kernel (int32 bitwise_not) over minimal traffic / 2 bytes, timed like the case",
    }
    if sec.get("notes"):
        out["notes"] = sec["notes"]
    return out
