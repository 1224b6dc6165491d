"""What every benchmark script shares: isolated cases, peak memory, statistics, tables, machine.

Isolation. Each measured case runs in a child forked from a parent that has
imported torch, fairseq and the plugin but run no op (so no OpenMP pool
exists to be broken by the fork): the child has its own memory, so one
case's allocations and freed-but-kept pages cannot bias another's time or
peak, and it starts in milliseconds instead of the 10-20 s that importing
fairseq takes in a fresh interpreter on a loaded two-core machine.

Peak memory is the kernel's high-water mark of resident memory (VmHWM),
reset to the current size just before the measured calls (``clear_refs``
5), minus the resident size at that moment: what the case added on top of
its parameters and inputs.
"""

from __future__ import annotations

import csv
import json
import math
import os
import platform
import select
import signal
import socket
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def threads() -> int:
    """torch threads of every case: the machine's cores (``os.cpu_count()``) unless ``--threads`` said."""
    return int(os.environ.get("BENCH_THREADS") or os.cpu_count() or 1)


def add_threads_arg(parser):
    parser.add_argument("--threads", type=int, help=f"torch threads (default: the {os.cpu_count()} cores)")


def apply_threads_arg(args):
    if args.threads:
        os.environ["BENCH_THREADS"] = str(args.threads)


# ------------------------------------------------------------------ isolation
def isolated(fn, *args, timeout: float = 900.0) -> dict:
    """``fn(*args)`` (a dict of plain data) in a forked child; ``{"error": why}`` if it failed.

    A child that runs past ``timeout`` seconds is killed (by its own pid).
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns into the caller's code
        os.close(read_end)
        status = 0
        try:
            result = fn(*args)
        except BaseException as exc:  # noqa: BLE001  (reported to the parent, who goes on)
            result, status = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}, 1
        try:
            data = json.dumps(result).encode()
            while data:  # a pipe may take a long message in pieces
                data = data[os.write(write_end, data):]
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(status)
    os.close(write_end)
    data, deadline = b"", time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([read_end], [], [], left)[0]:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(read_end)
            return {"error": f"killed after the {timeout:.0f} s time limit"}
        chunk = os.read(read_end, 1 << 16)
        if not chunk:
            break
        data += chunk
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    if data:
        return json.loads(data)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        why = "killed by SIGKILL (out of memory?)" if sig == signal.SIGKILL else f"killed by signal {sig}"
        return {"error": why}
    return {"error": f"exited with status {os.WEXITSTATUS(status)} and no result"}


# --------------------------------------------------------------------- memory
def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def reset_peak() -> float:
    """Start a new high-water mark at the current resident size; returns that size in MB."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _status_kb("VmRSS") / 1024


def peak_mb(since: float) -> float:
    """Resident memory added at the peak since :func:`reset_peak` returned ``since``."""
    return _status_kb("VmHWM") / 1024 - since


# ----------------------------------------------------------------- statistics
def quantile(values, q: float) -> float:
    v = sorted(values)
    pos = (len(v) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def summarize(values) -> dict:
    """median, quartiles and range of repeated measurements, and how many there were."""
    return {"median": statistics.median(values), "q1": quantile(values, 0.25), "q3": quantile(values, 0.75),
            "min": min(values), "max": max(values), "n": len(values)}


def repeat_timed(fn, budget_s: float, min_reps: int = 3, max_reps: int = 15, before=None):
    """Times of ``fn()`` after one warm-up call: as many calls as fit in ``budget_s``, within bounds.

    ``before``, if given, runs untimed before every call (e.g. :func:`cache_flusher`'s flush)."""
    before = before or (lambda: None)
    before()
    t0 = time.perf_counter()
    fn()
    warm = time.perf_counter() - t0
    reps = max(min_reps, min(max_reps, int(budget_s / max(warm, 1e-9))))
    times = []
    for _ in range(reps):
        before()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def last_level_cache_bytes(default: int = 32 << 20) -> int:
    """Size of the CPU's largest cache, from sysfs (Linux), else ``default``."""
    sizes = []
    for f in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        text = f.read_text().strip().upper()
        scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
        try:
            sizes.append(int(text.rstrip("KMG")) * scale)
        except ValueError:
            continue
    return max(sizes, default=default)


def cache_flusher():
    """A function that evicts the CPU caches: it writes a buffer of twice the last-level cache.

    Repeated calls on the same inputs otherwise find them in cache when they fit (x at B = 4,
    T = 2048, C = 512 is 16 MB: half of a 32 MB L3) and stream them from DRAM when they do not
    (64 MB at T = 8192), so that time(8192) / time(2048) measured the cache, not the op, and rose
    with the DRAM traffic of the machine's other tenants. Triton's do_bench flushes the GPU's L2
    before each run for the same reason."""
    import torch

    buf = torch.empty(2 * last_level_cache_bytes() // 4, dtype=torch.float32)

    def flush():
        buf.add_(1.0)

    return flush


# --------------------------------------------------------------------- output
def write_csv(path: Path, rows: list, columns: list):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({c: _cell(r.get(c, "")) for c in columns})


def read_csv(path: Path) -> list:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _cell(v):
    return f"{v:.6g}" if isinstance(v, float) else v


def markdown_table(header, rows) -> str:
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    return "\n".join(lines)


def fmt(v, digits: int = 3) -> str:
    """A number with ``digits`` significant digits, or the cell as it is."""
    if isinstance(v, str):
        try:
            v = float(v)
        except ValueError:
            return v
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.{digits}g}" if abs(v) < 10 ** digits else f"{v:.0f}"


def profile_summary(prof, rows: int = 15) -> dict:
    """torch.profiler's table (top ops by self CPU time) and every op's self CPU ms, as plain data."""
    events = prof.key_averages()
    return {"table": events.table(sort_by="self_cpu_time_total", row_limit=rows),
            "self_ms": {e.key: e.self_cpu_time_total / 1e3 for e in events}}


def contention_check() -> dict:
    """ms of one fixed workload of many small ops with 1 thread and with ``threads()``, each in a fresh child.

    Many small parallel regions are what a machine shared with other jobs
    slows down most: each waits for every thread to be scheduled. More
    threads slower than one means every figure of the run is inflated.
    """

    def work(n):
        import torch

        torch.set_num_threads(n)
        a, b = torch.randn(64, 512), torch.randn(512, 512)
        for _ in range(20):
            torch.relu(a @ b)
        t0 = time.perf_counter()
        for _ in range(300):
            torch.relu(a @ b)
        return {"ms": 1e3 * (time.perf_counter() - t0)}

    return {n: isolated(work, n).get("ms") for n in sorted({1, threads()})}


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# -------------------------------------------------------------------- machine
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    """Where and with what a run measured; import-free except for version lookups."""
    from importlib import metadata

    def version(pkg):
        for name in (pkg, f"{pkg}-fixed"):
            try:
                return metadata.version(name)
            except metadata.PackageNotFoundError:
                continue
        return "not installed"

    info = {"host": socket.gethostname(), "cpu": cpu_model(), "cores": os.cpu_count(),
            "threads": threads(), "python": platform.python_version(),
            "torch": version("torch"), "triton": version("triton"), "fairseq": version("fairseq"),
            "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg())}
    try:
        with open("/proc/meminfo") as f:
            info["memory_gib"] = round(int(f.readline().split()[1]) / 2**20, 1)
    except OSError:
        pass
    return info


def log(msg: str):
    print(msg, file=sys.stderr, flush=True)
