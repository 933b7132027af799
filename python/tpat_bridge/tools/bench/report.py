"""The bench report from one run's results JSON: summary against the targets, the kernel-only
table (TPAT / best of eager and torch.compile, % of the copy bandwidth), host-inclusive times,
misses, errors and unplanned cases, the cases; and the chart (chart.py) beside it."""

from __future__ import annotations

import json
import math
import os

from . import chart, shortfall

# Targets of issue 15 (H100, kernel-only, L2 flushed)
GEO_MEAN_TARGET = 0.80
WORST_TARGET = 1.25
COPY_PCT_TARGET = shortfall.COPY_PCT_TARGET
NOT_RUN = ("error", "skipped", "not_planned")


def _fmt_us(x):
    if x is None:
        return "n/a"
    if x >= 1000:
        return f"{x / 1000:.3f} ms"
    if x >= 100:
        return f"{x:.0f} µs"
    return f"{x:.1f} µs"


def _sec(r, k):
    s = r.get(k)
    return s if isinstance(s, dict) and s.get("kernel_us") else None


def label(r):
    return r.get("case") or r.get("plugin") or os.path.basename(r.get("out") or "?")


def _ratio(r):
    return r.get("ratio_tpat_over_best")


def _memory_bound(r):
    return r.get("bound", "memory") == "memory"


def one_line(r):
    """One progress line for stderr."""
    f = lambda s: f"{s['kernel_us']:.1f}us" if isinstance(s, dict) and s.get("kernel_us") else "n/a"
    if r.get("status") in ("error", "skipped"):
        return f"{r.get('status')}: {r.get('error')}"
    if r.get("status") == "not_planned":
        return f"not planned ({r.get('error')}): eager={f(r.get('eager'))} compiled={f(r.get('compiled'))}"
    ratio = _ratio(r)
    head = (
        f"check={'pass' if r['check']['pass'] else r['check']['pass']} tpat={f(r['tpat'])} "
        f"eager={f(r['eager'])} compiled={f(r['compiled'])}"
    )
    return head + (f" ratio={ratio:.2f}" if ratio else "")


def render_report(results_json_path, report_dir, stem=None):
    """Writes <stem>.md and <stem>.png (chart; None without matplotlib) into report_dir."""
    with open(results_json_path) as f:
        doc = json.load(f)
    stem = stem or os.path.splitext(os.path.basename(results_json_path))[0]
    os.makedirs(report_dir, exist_ok=True)
    md_path = os.path.join(report_dir, f"{stem}.md")
    png = chart.write_chart(doc, os.path.join(report_dir, f"{stem}.png"))
    with open(md_path, "w") as f:
        f.write(render_markdown(doc, os.path.basename(png) if png else None, stem))
    return {"report": os.path.abspath(md_path), "chart": os.path.abspath(png) if png else None}


def render_markdown(doc, chart_name=None, stem="bench"):
    rows = doc.get("results", [])
    parts = [
        _header(doc),
        _summary(rows),
        _kernel_table(rows),
        _copy_table(rows),
        _host_table(rows),
        _chart_section(chart_name, stem),
        _slower(rows),
        _problems(rows),
        _cases_table(rows),
    ]
    return "\n".join(line for part in parts for line in part + [""])


# --------------------------------------------------------------------------------------------
# sections
# --------------------------------------------------------------------------------------------


def _header(doc):
    d, s, c = doc.get("device", {}), doc.get("settings", {}), doc.get("copy", {})
    L = [
        f"# TPAT benchmark: {d.get('name', '?')}",
        "",
        f"- device: {d.get('name')} ({d.get('capability')}, {d.get('sms')} SMs, {d.get('memory_gib')} GiB"
        + (f", L2 {d.get('l2_mib')} MiB" if d.get("l2_mib") else "")
        + ")",
        f"- driver: {d.get('driver')}; torch {d.get('torch')} (CUDA {d.get('torch_cuda')}); python {d.get('python')}",
        f"- date: {doc.get('date')}; runs per measurement: {s.get('runs')} (median), warm-up {s.get('warmup')}",
        "- L2 flush: "
        + (
            f"on ({s.get('flush_bytes', 0) / 2**20:.0f} MiB buffer read+written before every timed run, "
            "outside the timed region)"
            if s.get("flush_l2")
            else "off (inputs may stay in the 50 MB L2 between runs: small cases can exceed DRAM bandwidth)"
        ),
    ]
    if c.get("gbps"):
        L.append(
            f"- copy bandwidth: **{c['gbps']:.0f} GB/s** (device-to-device copy of "
            f"{c.get('bytes_copied', 0) / 2**30:.0f} GiB, bytes read + written / median time)"
        )
    L.append(f"- timing: {s.get('timing', '')}")
    return L


def summary(rows):
    """The run against the targets: geo-mean, worst ratio, cases over WORST_TARGET, memory-bound
    cases under COPY_PCT_TARGET of the copy bandwidth, unplanned and failed cases."""
    timed = [
        r for r in rows if r.get("status") == "ok" and _ratio(r)
    ]  # a mismatching kernel's speed counts for nothing
    ratios = [_ratio(r) for r in timed]
    geo = math.exp(sum(math.log(x) for x in ratios) / len(ratios)) if ratios else None
    worst = max(timed, key=_ratio) if timed else None
    over = [r for r in timed if _ratio(r) > WORST_TARGET]
    mem = [r for r in timed if _memory_bound(r) and (r.get("pct_copy") or {}).get("tpat") is not None]
    under = [r for r in mem if r["pct_copy"]["tpat"] < COPY_PCT_TARGET]
    return {
        "geo_mean": geo,
        "worst": worst,
        "over": over,
        "memory": mem,
        "under_copy": under,
        "copy": shortfall.copy_summary(mem, COPY_PCT_TARGET),
        "timed": timed,
        "not_planned": [r for r in rows if r.get("status") == "not_planned"],
        "failed": [r for r in rows if r.get("status") in ("error", "mismatch")],
    }


def _summary(rows):
    s = summary(rows)
    L = ["## Summary against the targets", ""]
    n = len(rows)
    L.append(
        f"- cases: {n}; timed with TPAT and matching PyTorch: {len(s['timed'])}; not planned: "
        f"{len(s['not_planned'])}; errors or mismatches (left out of the ratios): {len(s['failed'])}"
    )
    if s["geo_mean"] is None:
        L.append("- geo-mean TPAT / best PyTorch: n/a (no case timed on both sides)")
        return L
    miss = s["geo_mean"] - GEO_MEAN_TARGET
    verdict = "met" if miss <= 0 else f"missed by {miss:.2f}"
    L.append(
        f"- geo-mean TPAT / best PyTorch over the timed cases: **{s['geo_mean']:.2f}x** (target <= "
        f"{GEO_MEAN_TARGET:.2f}: {verdict})"
    )
    w = s["worst"]
    L.append(
        f"- worst case: {label(w)} at {_ratio(w):.2f}x; cases above {WORST_TARGET:.2f}x: "
        + (", ".join(f"{label(r)} {_ratio(r):.2f}x (+{_ratio(r) - WORST_TARGET:.2f})" for r in s["over"]) or "none")
    )
    L.append(
        f"- memory-bound cases at >= {COPY_PCT_TARGET:.0f}% of the copy bandwidth: "
        f"{len(s['memory']) - len(s['under_copy'])} of {len(s['memory'])}"
        + (
            "; under: "
            + ", ".join(
                f"{label(r)} {r['pct_copy']['tpat']:.0f}% (-{COPY_PCT_TARGET - r['pct_copy']['tpat']:.0f} points)"
                for r in s["under_copy"]
            )
            if s["under_copy"]
            else ""
        )
    )
    if s["under_copy"]:
        L += _copy_verdicts(s["copy"])
    if s["not_planned"]:
        L.append("- every case planned: missed (" + ", ".join(label(r) for r in s["not_planned"]) + ")")
    checked = [r for r in rows if isinstance(r.get("baseline"), dict)]
    if checked:
        wrong = [label(r) for r in checked if not r["baseline"].get("pass")]
        L.append(
            f"- PyTorch baselines checked against ONNX Runtime at small shapes: {len(checked) - len(wrong)} of "
            f"{len(checked)} match" + (f"; differ: {', '.join(wrong)}" if wrong else "")
        )
    L.append("")
    L.append(
        "Cases that are not memory-bound (the bound column: latency, compute, gather) have no "
        "copy-bandwidth target; the cases table says why for each."
    )
    return L


def _pcts(items, with_copy=True):
    f = lambda x: "n/a" if x is None else f"{x:.0f}%"
    return ", ".join(
        f"{i['case']} {f(i['tpat_pct'])} ("
        + (f"copy {f(i['size_copy_pct'])}, " if with_copy else "")
        + f"PyTorch {f(i['best_torch_pct'])})"
        for i in items
    )


def _copy_verdicts(c):
    """The summary's lines on the memory-bound cases under the target: size-bound (with the
    size-matched copy's %), under for an op reason (grouped by reason), no reason recorded."""
    t = f"{c['target_pct']:.0f}%"
    L = [
        f"  - size-bound (a copy of the same minimal traffic, timed the same way, is under {t} too): "
        f"{len(c['size-bound'])}" + (f": {_pcts(c['size-bound'])}" if c["size-bound"] else "")
    ]
    beyond = [i for i in c["size-bound"] if i.get("beyond_size")]
    if beyond:
        L.append(f"    - of these, TPAT under {t} of its size-matched copy too (more than the size):")
        for i in beyond:
            rel = i["tpat_pct_of_size_copy"]
            L.append(f"      - {i['case']} at {rel:.0f}% of its copy: " + (i.get("reason") or "no reason recorded"))
    L.append(f"  - under for an op reason (the size-matched copy reaches {t}): {len(c['op'])}")
    groups = {}
    for i in c["op"]:
        groups.setdefault(i["reason"], []).append(i)
    for reason, items in groups.items():
        L.append(f"    - {_pcts(items)}: {reason}")
    L.append(
        f"  - no reason recorded (the size-matched copy reaches {t}): {len(c['no reason'])}"
        + (f": {_pcts(c['no reason'])}" if c["no reason"] else "")
    )
    if c["not measured"]:
        L.append(
            f"  - size-matched copy not measured (results from before it was): {len(c['not measured'])}: "
            + _pcts(c["not measured"], with_copy=False)
        )
    return L


def _copy_table(rows):
    """Per memory-bound case: TPAT, best PyTorch and the size-matched copy as % of the copy
    bandwidth, TPAT as % of the size-matched copy, and the verdict."""
    mem = summary(rows)["memory"]
    L = ["## Memory-bound cases against the copy bandwidth", ""]
    if not mem:
        return L + ["- no memory-bound case timed with TPAT"]
    L += [
        "| case | op | min traffic | TPAT % copy | best PyTorch % copy | size-matched copy % copy | "
        "TPAT % of size-matched copy | verdict |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    f = lambda x: "not measured" if x is None else f"{x:.0f}%"
    for r in mem:
        v = shortfall.verdict(r, COPY_PCT_TARGET)
        best = v["best_torch_pct"]
        L.append(
            f"| {label(r)} | {r.get('op')} | {r['traffic']['bytes'] / 1e6:.2f} MB | {v['tpat_pct']:.0f}% | "
            f"{'n/a' if best is None else f'{best:.0f}%'} | {f(v['size_copy_pct'])} | "
            f"{f(v['tpat_pct_of_size_copy'])} | {shortfall.verdict_text(r, v, COPY_PCT_TARGET).replace('|', '/')} |"
        )
    L += [
        "",
        "Size-matched copy: a device-to-device `copy_` of a uint8 buffer of the case's minimal traffic / 2 "
        "bytes (read + written = the minimal traffic), timed like the case (CUDA graph, L2 flushed): the "
        "ceiling a kernel moving those bytes reaches at that size. size-bound: that copy is under "
        f"{COPY_PCT_TARGET:.0f}% itself. op: what the op needs beyond its minimal traffic (one table, "
        "`tools/bench/shortfall.py`); best PyTorch under the target too is the measured evidence.",
    ]
    return L


def _bw(r, k):
    g, p = (r.get("gbps") or {}).get(k), (r.get("pct_copy") or {}).get(k)
    return "n/a" if g is None else (f"{g:.0f} ({p:.0f}%)" if p is not None else f"{g:.0f}")


def _ratio_cell(r):
    ratio = _ratio(r)
    if ratio is None:
        return "n/a"
    if ratio > WORST_TARGET:
        return f"**{ratio:.2f}x SLOWER**"
    return f"{ratio:.2f}x" + (" (slower)" if ratio > 1.0 else "")


def _kernel_table(rows):
    L = [
        "## Kernel-only medians",
        "",
        "| case | op | check | TPAT | eager | compiled | TPAT / best PyTorch | min traffic | "
        "TPAT GB/s (% copy) | best PyTorch GB/s (% copy) | bound |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        status = r.get("status")
        if status in ("error", "skipped"):
            L.append(f"| {label(r)} | {r.get('op') or '?'} | {status.upper()} | — | — | — | — | — | — | — | — |")
            continue
        chk = (r.get("check") or {}).get("pass")
        chk_s = (
            "not planned" if status == "not_planned" else ("pass" if chk else ("**FAIL**" if chk is False else "n/a"))
        )
        comp = r.get("compiled")
        comp_s = (
            _fmt_us(comp["kernel_us"])
            if _sec(r, "compiled")
            else ("error" if isinstance(comp, dict) and comp.get("error") else "n/a")
        )
        best_k = None
        if r.get("best_torch_us") is not None:
            best_k = "eager" if _sec(r, "eager") and r["best_torch_us"] == r["eager"]["kernel_us"] else "compiled"
        traffic = f"{r['traffic']['bytes'] / 1e6:.2f} MB" if r.get("traffic") else "n/a"
        L.append(
            f"| {label(r)} | {r.get('op')} | {chk_s} | "
            f"{_fmt_us(r['tpat']['kernel_us']) if _sec(r, 'tpat') else '—'} | "
            f"{_fmt_us(_sec(r, 'eager')['kernel_us']) if _sec(r, 'eager') else 'n/a'} | {comp_s} | "
            f"{_ratio_cell(r)} | {traffic} | {_bw(r, 'tpat')} | {_bw(r, best_k) if best_k else 'n/a'} | "
            f"{r.get('bound', 'memory')} |"
        )
    L += [
        "",
        f"TPAT / best PyTorch = TPAT kernel-only median / min(eager, compiled) of the same run; above 1 "
        f"TPAT is slower, above {WORST_TARGET:.2f} in bold. % copy = effective bandwidth (minimal traffic / "
        "median) / the copy bandwidth of the same run.",
    ]
    return L


def _host_table(rows):
    L = [
        "## Host-inclusive medians (Python call until the GPU is done)",
        "",
        "| case | TPAT (ctypes enqueue + sync) | eager (call + sync) | compiled (call + sync) | compile time |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        if r.get("status") in ("error", "skipped"):
            continue
        e, cp, t = _sec(r, "eager"), _sec(r, "compiled"), _sec(r, "tpat")
        cs = r.get("compiled") or {}
        ctime = f"{cs['compile_s']:.1f} s" if cs.get("compile_s") else "n/a"
        L.append(
            f"| {label(r)} | {_fmt_us(t.get('host_us')) if t else '—'} | "
            f"{_fmt_us(e.get('host_us')) if e else 'n/a'} | {_fmt_us(cp.get('host_us')) if cp else 'n/a'} | {ctime} |"
        )
    return L


def _chart_section(chart_name, stem):
    if chart_name:
        return [f"![kernel-only medians and TPAT / best PyTorch]({chart_name})"]
    return [
        f"(No chart: matplotlib is not importable where this report was written; re-render it with "
        f"`python -m tpat_bridge.tools.bench report {stem}.json` where it is.)"
    ]


def _slower(rows):
    L = ["## Where TPAT is slower", ""]
    slower = [r for r in rows if r.get("status") not in NOT_RUN and (_ratio(r) or 0) > 1.0]
    for r in slower:
        best = "eager" if _sec(r, "eager") and r["best_torch_us"] == r["eager"]["kernel_us"] else "torch.compile"
        L.append(
            f"- **{label(r)}** ({r['op']}): TPAT {_fmt_us(r['tpat']['kernel_us'])} vs {best} "
            f"{_fmt_us(r['best_torch_us'])}: {_ratio(r):.2f}x slower"
        )
    if not slower:
        L.append("- none among the cases that ran")
    return L


def _mismatch_words(r):
    bad = []
    for t in r["check"]["tactics"]:
        for j, o in enumerate(t["outputs"] or []):
            if not o["pass"]:
                bad.append(
                    f"tactic {t['tactic']} out{j}: {o.get('bad')}/{o.get('n')} bad, max_abs {o.get('max_abs')}"
                    + (f" ({o['reason']})" if o.get("reason") else "")
                )
    return "; ".join(bad)


def _problems(rows):
    L = ["## Errors, mismatches, skipped and unplanned cases", ""]
    errs = [r for r in rows if r.get("status") in ("error", "skipped", "mismatch", "not_planned")]
    for r in errs:
        if r.get("status") == "mismatch":
            L.append(f"- {label(r)} ({r.get('op')}): output differs from PyTorch eager: {_mismatch_words(r)}")
        elif r.get("status") == "not_planned":
            L.append(f"- {label(r)} ({r.get('op')}): {r.get('error')} (PyTorch timed alone)")
        else:
            L.append(f"- {label(r)} ({r.get('op')}): {r.get('status')}: {r.get('error')}")
    if not errs:
        L.append("- none")
    return L


def _row_notes(r):
    notes = list(r.get("notes", []))
    b = r.get("baseline")
    if isinstance(b, dict) and not b.get("pass"):
        notes.insert(
            0,
            "**PyTorch baseline differs from ONNX Runtime**: "
            + (b.get("reason") or str([o for o in b.get("outputs", []) if not o.get("pass")])[:300]),
        )
    if r.get("bound_why"):
        notes.insert(0, f"{r.get('bound')}: {r['bound_why']}")
    for k in ("eager", "compiled"):
        sec = r.get(k)
        if isinstance(sec, dict) and sec.get("notes"):
            notes.append(f"{k}: {sec['notes']}")
        if isinstance(sec, dict) and sec.get("error"):
            notes.append(f"{k}: {sec['error']}")
        if isinstance(sec, dict) and sec.get("check_vs_eager") is False:
            notes.append(f"{k}: output differs from eager")
    return "; ".join(n.replace("|", "/") for n in notes)


def _cases_table(rows):
    L = [
        "## Cases",
        "",
        "| case | variant | plugin | inputs | outputs | PyTorch implementation | minimal traffic (formula) | tactics | notes |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    io = lambda ts: ", ".join(f"{t['dtype']}{t['shape']}" for t in ts)
    for r in rows:
        if r.get("status") in ("error", "skipped"):
            continue
        tr = r.get("traffic")
        tr_s = f"{tr['words']}: `{tr['code']}` = {tr['bytes']:,} B" if tr else "n/a"
        tact = f"{r.get('num_tactics')} (best {r['tpat']['tactic']})" if _sec(r, "tpat") else "—"
        L.append(
            f"| {label(r)} | {r.get('variant', '')} | {r.get('plugin') or '—'} | {io(r.get('inputs', []))} | "
            f"{io(r.get('outputs', []))} | `{r.get('torch_impl')}` | {tr_s} | {tact} | {_row_notes(r)} |"
        )
    L += [
        "",
        "B(t) = bytes of tensor t; in<i> are the plugin's non-constant inputs in node order, out<j> its "
        "outputs. Effective GB/s = minimal traffic / kernel-only median; % copy = that / measured copy bandwidth.",
    ]
    return L
