"""`tpat bench`: kernel-only timing of TPAT plugins against PyTorch eager and torch.compile.

Parts: cases.py (bench/cases.json, minimal-traffic formulas, OUT folders), torch_refs.py (the
PyTorch baselines, one table entry per op), check.py (inputs by the reference data's rules,
comparison), launcher.py (the plugin's C launcher through ctypes), timer.py (CUDA events around
CUDA-graph replays, L2 flush, copy bandwidth, size-matched copies), runner.py (the bridge command),
report.py (summary against the targets and tables), shortfall.py (why a memory-bound case is under
the copy target: size-bound or the op's reason, one table), chart.py (matplotlib). Method and formulas: bench/README.md.

Public entries:
  run_bench(request) -> {"report", "chart", "results", "results_json", "device", "copy_gbps"}
  render_report(results_json_path, report_dir, stem=None) -> {"report", "chart"}

Nothing here needs TVM or Swift; torch is imported only by run_bench (the GPU machine has it).
"""

from .cases import default_traffic_code, discover_plugins, load_cases, match_case, traffic_bytes
from .report import render_report
from .runner import run_bench

__all__ = [
    "default_traffic_code",
    "discover_plugins",
    "load_cases",
    "match_case",
    "traffic_bytes",
    "render_report",
    "run_bench",
]
