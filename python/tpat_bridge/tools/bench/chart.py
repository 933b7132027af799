"""The bench chart (matplotlib, pinned in python/requirements.txt): per case, left the kernel-only
medians of TPAT, eager and torch.compile (log scale), right TPAT / best PyTorch with the 1.0 and
1.25 lines. Without matplotlib (e.g. on a GPU machine without it) no chart is written and the
report says how to draw it from the results JSON."""

from __future__ import annotations

SERIES = (("tpat", "TPAT", "#d62728"), ("eager", "PyTorch eager", "#1f77b4"), ("compiled", "torch.compile", "#2ca02c"))


def chart_data(doc):
    """[(label, [TPAT, eager, compiled kernel µs or None], TPAT / best or None, status)] of the rows that
    have at least one timing, in the results' order."""
    out = []
    for r in doc.get("results", []):
        if r.get("status") in ("error", "skipped"):
            continue
        vals = [(r.get(k) or {}).get("kernel_us") if isinstance(r.get(k), dict) else None for k, _, _ in SERIES]
        if not any(vals):
            continue
        out.append((r.get("case") or r.get("plugin") or "?", vals, r.get("ratio_tpat_over_best"), r.get("status")))
    return out


def _pyplot():
    try:
        import matplotlib  # lazy: the chart is optional where matplotlib is missing

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # lazy: after the Agg backend is chosen
    except ImportError:
        return None
    return plt


def write_chart(doc, png_path, worst_target=1.25):
    data = chart_data(doc)
    plt = _pyplot()
    if not data or plt is None:
        return None
    flushed = "L2 flushed" if doc.get("settings", {}).get("flush_l2") else "L2 not flushed"
    n = len(data)
    fig, (ax_t, ax_r) = plt.subplots(
        1, 2, figsize=(13, 1.5 + 0.32 * n), sharey=True, gridspec_kw={"width_ratios": [3, 2]}
    )
    y = list(range(n))
    h = 0.27
    for i, (_, name, color) in enumerate(SERIES):
        vals = [row[1][i] or 0 for row in data]
        ax_t.barh([v + (i - 1) * h for v in y], vals, h, label=name, color=color)
    ax_t.set_xscale("log")
    ax_t.set_xlabel("kernel-only median, µs (log scale, lower is better)")
    ax_t.set_yticks(y)
    ax_t.set_yticklabels([row[0] for row in data], fontsize=8)
    ax_t.invert_yaxis()
    ax_t.legend(loc="lower right", fontsize=8)
    ax_t.grid(axis="x", which="major", alpha=0.3)
    ratios = [row[2] for row in data]
    timed = [x for x in ratios if x]
    lo = min([0.5] + [x / 1.2 for x in timed])
    colors = ["#d62728" if (x or 0) > worst_target else "#ff7f0e" if (x or 0) > 1.0 else "#2ca02c" for x in ratios]
    ax_r.barh(y, [(x - lo) if x else float("nan") for x in ratios], 0.6, color=colors, left=lo)
    for v, x, row in zip(y, ratios, data):
        words = " not planned" if row[3] == "not_planned" else " not timed"
        ax_r.text(x or lo, v, f" {x:.2f}" if x else words, va="center", fontsize=7)
    ax_r.set_xscale("log", base=2)
    ax_r.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:g}"))
    ax_r.set_xlim(left=lo)
    ax_r.axvline(1.0, color="black", lw=0.8)
    ax_r.axvline(worst_target, color="#d62728", lw=0.8, ls="--")
    ax_r.set_xlabel("TPAT / best of eager and torch.compile (log scale, lower is better)")
    ax_r.grid(axis="x", alpha=0.3)
    fig.suptitle(f"TPAT bench, {doc.get('device', {}).get('name', '')}, {flushed}", fontsize=10)
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)
    plt.close(fig)
    return png_path
