"""Writes bench/results/h100-summary.md: the whole suite on the H100 across the three runs.

    python bench/summary.py

Columns (kernel-only medians, L2 flushed, each from one run with its own PyTorch timings):
  - TVM default: TVM 0.27's frontend lowering scheduled by dlight (h100-untuned-flush.json);
  - TVM tuned: the same after `tpat tune` (MetaSchedule, 64 trials / 1.5 min per case,
    h100-tuned-suite.json; tuning times from h100-tuned-suite-tune-times.txt);
  - TPAT: this session's planner (TPAT's own lowerings + int32 index narrowing), untuned; best
    tactic (h100-tpat-lowerings-suite.json);
  - eager / compiled: PyTorch, from the TPAT run.
Ratios are TPAT / min(eager, compiled) of the same run.
"""

import json
import math
from pathlib import Path

R = Path(__file__).resolve().parent / "results"


def load(name):
    return {r["case"]: r for r in json.load(open(R / f"{name}.json"))["results"]}


def tune_times():
    out = {}
    for line in open(R / "h100-tuned-suite-tune-times.txt"):
        p = line.split()
        if p and p[0] == "tune_time":
            out[p[1]] = (int(p[2]), p[3])
    return out


def us(x):
    return f"{x:.1f} µs" if x < 100 else f"{x:.0f} µs"


def main():
    base, tuned, tpat = load("h100-untuned-flush"), load("h100-tuned-suite"), load("h100-tpat-lowerings-suite")
    tt = tune_times()
    rows, logs = [], []
    for case, r in tpat.items():
        best = r["best_torch_us"]
        t = r["tpat"]["kernel_us"]
        ratio = t / best
        logs.append(math.log(ratio))
        b = base.get(case, {}).get("tpat", {}).get("kernel_us")
        tu = tuned.get(case, {}).get("tpat", {}).get("kernel_us")
        tuning = tt.get(case)
        lowering = "TPAT" if r["num_tactics"] > 1 else "TVM"
        tact = ", ".join(f"{x['tactic']}: {us(x['kernel']['median_us'])}" for x in r["tactics"])
        rows.append(
            f"| {case} | {r['op']} | {us(b) if b else '-'} | {us(tu) if tu else '-'} | "
            f"{f'{tuning[0]} s' + (' (' + tuning[1] + ')' if tuning[1] != 'rc=0' else '') if tuning else 'not tuned (TPAT lowering)'} | "
            f"**{us(t)}** ({lowering}) | {us(r['eager']['kernel_us'])} | {us(r['compiled']['kernel_us'])} | "
            f"{ratio:.2f}x | {r['pct_copy']['tpat']:.0f}% | {tact} |"
        )
    geo = math.exp(sum(logs) / len(logs))
    worst = max(tpat.values(), key=lambda r: r["tpat"]["kernel_us"] / r["best_torch_us"])
    text = [
        "# TPAT on the H100: the whole suite, three planners",
        "",
        "Kernel-only medians, L2 flushed before every run, NVIDIA H100 80GB HBM3 (see each run's report",
        "for settings). `bench/summary.py` writes this file from the three JSON results.",
        "",
        "| case | op | TVM default | TVM tuned | tuning time | TPAT (tactic 0) | eager | compiled | TPAT / best PyTorch | TPAT % copy BW | every tactic |",
        "|---|---|---:|---:|---|---:|---:|---:|---:|---:|---|",
        *rows,
        "",
        f"Geometric mean of TPAT / best PyTorch: **{geo:.2f}x** (target <= 1.0, aim 0.75). Worst case: "
        f"{worst['case']} at {worst['tpat']['kernel_us'] / worst['best_torch_us']:.2f}x (target: none above 1.5x).",
        "",
        "TPAT (tactic 0) is TPAT's own lowering where there is one (the TVM default stays as tactic 1;",
        "TensorRT times both); GridSample and ReduceMax have no TPAT lowering and run TVM's with int32",
        "index narrowing. \"TVM tuned\" is the previous planner after `tpat tune` (its scatter rows already",
        "used TPAT's scatter lowerings, which are hand-scheduled and not tuned; rc=2: the search crashed,",
        "rc=124: stopped by the call's time limit). This session's TPAT column was not tuned.",
        "",
        "## Targets",
        "",
        f"- Geo-mean <= 1.0: met ({geo:.2f}x). The aim of 0.75x is not met.",
        f"- No case above 1.5x: met (worst {worst['case']}, "
        f"{worst['tpat']['kernel_us'] / worst['best_torch_us']:.2f}x).",
        "- Memory-bound cases at >= 70% of the copy bandwidth (cases whose minimal traffic is over",
        "  30 MB and streamed, i.e. not GridSample's random gathers):",
        *[
            f"  - {c}: {tpat[c]['pct_copy']['tpat']:.1f}% ({'met' if tpat[c]['pct_copy']['tpat'] >= 70 else 'missed'})"
            for c in ("scatternd", "scatternd_add", "gelu", "resize", "layernorm")
            if c in tpat
        ],
        "",
        "Why the misses:",
        "- layernorm (62%, 1.05x): one warp per 1024-element fp16 row keeps the row in registers, but the",
        "  two warp reductions (mean, then variance) are serialized shuffle chains per row; torch.compile's",
        "  Triton kernel reaches 65%. Tuning cannot help: the lowering is hand-scheduled.",
        "- cumsum (1.25x): 64 rows of 16384; four blocks per row each re-read the row prefix before their",
        "  tile (2.5x the input reads), and a 1024-thread Hillis-Steele block scan costs 10 barriers per",
        "  tile. torch.compile's single-pass scan takes 9.8 us.",
        "- gathernd, onehot (1.09x): 6 us kernels that move about 1 MB: at this size the launch inside the",
        "  graph (~2 us) dominates; TPAT's lowerings are one kernel like torch.compile's.",
        "- resize (69.6%, 0.85x): just under; each output reads 4 input pixels through the L1 (the x",
        "  taps are loaded once per thread and reused over 4 rows) and writes 4 bytes; no tuning was run.",
        "- scatternd, scatternd_add (1.01-1.03x): at 95-96% of the copy bandwidth (copying data into the",
        "  output is most of the traffic); torch.compile is 1-3% faster.",
    ]
    (R / "h100-summary.md").write_text("\n".join(text) + "\n")
    print(R / "h100-summary.md")
    print(f"geo-mean {geo:.3f}")


if __name__ == "__main__":
    main()
