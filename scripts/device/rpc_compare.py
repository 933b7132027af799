"""Side by side, per tuned task, two `tpat tune` logs (scripts/device/rpc_tune.sh: one GPU, then
two): candidates measured and failed, the default schedule's time and the best candidate's, both
timed by that run's runner (and recorded in its database), and whether the tuned schedule was kept.
  python3 scripts/device/rpc_compare.py LOG_1GPU LOG_2GPU [--servers SERVER_LOG_1GPU SERVER_LOG_2GPU,...]
The last line: the geometric mean over tasks of best(2 GPUs) / best(1 GPU) (1.00: the same quality).
With --servers, also the RPC servers' side (their logs): how many modules each run's servers timed
and how long the measurement bursts lasted (timestamps of `load_module` lines; a gap of more than
GAP_S seconds ends a burst: between bursts the tuning host searches and builds, the GPUs idle).
That is the part of the wall time more GPUs can shorten, read even when a run was cut."""

from __future__ import annotations

import math
import re
import sys
from datetime import datetime

PLUGIN = re.compile(r"^== tuning (\S+)")
PROGRESS = re.compile(r"task \d+/\d+ (\S+): trials (\d+), best")
DEFAULT = re.compile(r"^tune: (\S+): default schedule ([0-9.]+) us \(runner")
DEFAULT_FAILED = re.compile(r"^tune: (\S+): default schedule did not (?:run|build): (.*)")
BEST = re.compile(r"^tune: (\S+): best ([0-9.]+) us vs default (\S+) us -> (kept|dropped)")
FAILED = re.compile(r"^tune: (\S+): (\d+) of \d+ candidate\(s\) failed")
LOADED = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+) INFO load_module ")
GAP_S = 15.0


def read(path: str) -> dict:
    """{(plugin, task): {"trials", "failed", "default", "best", "kept"}} from one log."""
    out: dict = {}
    plugin = "?"
    try:
        lines = open(path, errors="replace").read().splitlines()
    except OSError:
        return out
    for line in lines:
        m = PLUGIN.match(line)
        if m:
            plugin = m.group(1)
            continue

        def entry(task):
            return out.setdefault(
                (plugin, task), {"trials": 0, "failed": 0, "default": None, "best": None, "kept": "-"}
            )

        if m := PROGRESS.search(line):
            entry(m.group(1))["trials"] = int(m.group(2))
        elif m := DEFAULT.match(line):
            entry(m.group(1))["default"] = float(m.group(2))
        elif m := DEFAULT_FAILED.match(line):
            entry(m.group(1))["default"] = "failed"
        elif m := BEST.match(line):
            e = entry(m.group(1))
            e["best"], e["kept"] = float(m.group(2)), m.group(4)
        elif m := FAILED.match(line):
            entry(m.group(1))["failed"] = int(m.group(2))
    return out


def bursts(paths: list[str], gap_s: float = GAP_S) -> list[tuple[float, float, int]]:
    """(start, end, modules) of each measurement burst over the given server logs, in seconds."""
    stamps = []
    for path in paths:
        try:
            lines = open(path, errors="replace").read().splitlines()
        except OSError:
            continue
        for line in lines:
            if m := LOADED.match(line):
                stamps.append(datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp())
    out: list[tuple[float, float, int]] = []
    for t in sorted(stamps):
        if out and t - out[-1][1] <= gap_s:
            out[-1] = (out[-1][0], t, out[-1][2] + 1)
        else:
            out.append((t, t, 1))
    return out


def servers(label: str, paths: list[str]) -> tuple[int, float]:
    """Prints one run's server side; returns (modules timed, seconds in bursts)."""
    bs = bursts(paths)
    n, busy = sum(b[2] for b in bs), sum(b[1] - b[0] for b in bs)
    parts = ", ".join(f"{b[2]} in {b[1] - b[0]:.0f} s" for b in bs) or "none"
    print(
        f"{label}: {len(paths)} server(s) timed {n} module(s) in {len(bs)} burst(s) ({parts}): {busy:.0f} s measuring"
    )
    return n, busy


def fmt(v) -> str:
    return "-" if v is None else (f"{v:.2f}" if isinstance(v, float) else str(v))


def main(argv: list[str]) -> int:
    if "--servers" in argv:
        i = argv.index("--servers")
        one, two = argv[i + 1].split(","), argv[i + 2].split(",")
        argv = argv[:i] + argv[i + 3 :]
        n1, t1 = servers("1 GPU", one)
        n2, t2 = servers(f"{len(two)} GPUs", two)
        if n1 and n2 and t1 > 0 and t2 > 0:
            print(
                f"seconds measuring per module: 1 GPU {t1 / n1:.2f}, {len(two)} GPUs {t2 / n2:.2f} ({(t2 / n2) / (t1 / n1):.2f}x)"
            )
    a, b = read(argv[0]), read(argv[1])
    head = [
        "plugin / task",
        "trials 1,2",
        "failed 1,2",
        "default 1",
        "default 2",
        "best 1 GPU",
        "best 2 GPU",
        "2/1",
        "kept 1,2",
    ]
    rows = [head]
    ratios = []
    empty = {"trials": 0, "failed": 0, "default": None, "best": None, "kept": "-"}
    for key in sorted(set(a) | set(b)):
        ra, rb = a.get(key, empty), b.get(key, empty)
        ratio = "-"
        if isinstance(ra["best"], float) and isinstance(rb["best"], float) and ra["best"] > 0:
            ratios.append(rb["best"] / ra["best"])
            ratio = f"{ratios[-1]:.2f}"
        rows.append(
            [
                f"{key[0]} / {key[1]}",
                f"{ra['trials']},{rb['trials']}",
                f"{ra['failed']},{rb['failed']}",
                fmt(ra["default"]),
                fmt(rb["default"]),
                fmt(ra["best"]),
                fmt(rb["best"]),
                ratio,
                f"{ra['kept']},{rb['kept']}",
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    for r in rows:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    if ratios:
        g = math.exp(sum(math.log(x) for x in ratios) / len(ratios))
        print(f"best 2 GPUs / best 1 GPU, geometric mean over {len(ratios)} task(s): {g:.3f} (times in us)")
    else:
        print("no task has a best candidate in both runs")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
