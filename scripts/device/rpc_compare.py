"""Side by side, per tuned task, two `tpat tune` logs (scripts/device/rpc_tune.sh: one GPU, then
two): candidates measured and failed, the default schedule's time and the best candidate's, both
timed by that run's runner (and recorded in its database), and whether the tuned schedule was kept.
  python3 scripts/device/rpc_compare.py LOG_1GPU LOG_2GPU
The last line: the geometric mean over tasks of best(2 GPUs) / best(1 GPU) (1.00: the same quality)."""

from __future__ import annotations

import math
import re
import sys

PLUGIN = re.compile(r"^== tuning (\S+)")
PROGRESS = re.compile(r"task \d+/\d+ (\S+): trials (\d+), best")
DEFAULT = re.compile(r"^tune: (\S+): default schedule ([0-9.]+) us \(runner")
DEFAULT_FAILED = re.compile(r"^tune: (\S+): default schedule did not (?:run|build): (.*)")
BEST = re.compile(r"^tune: (\S+): best ([0-9.]+) us vs default (\S+) us -> (kept|dropped)")
FAILED = re.compile(r"^tune: (\S+): (\d+) of \d+ candidate\(s\) failed")


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


def fmt(v) -> str:
    return "-" if v is None else (f"{v:.2f}" if isinstance(v, float) else str(v))


def main(argv: list[str]) -> int:
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
