"""The comparison rule of `tpat_check` (the generated check program), shared by the cross-check and
`tpat verify --model`: |got - want| <= atol + rtol * |want|, NaN matches NaN, infinities match
exactly, integers and bool exactly; and `actual_outputs`, which cuts data-dependent outputs to their
actual shape. numpy only: it runs on GPU machines without TVM."""

from __future__ import annotations

import numpy as np


def error(got: np.ndarray, want: np.ndarray, atol: float, rtol: float) -> tuple[float, bool]:
    """(max |got - want|, within tolerance) by tpat_check's rule."""
    if got.shape != want.shape:
        return float("inf"), False
    if want.size == 0:
        return 0.0, True
    if want.dtype.kind in "iub":
        ok = bool(np.array_equal(got.astype(want.dtype), want))
        return (0.0 if ok else float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64))))), ok
    g, w = got.astype(np.float64), want.astype(np.float64)
    nan_ok = np.array_equal(np.isnan(g), np.isnan(w))
    inf_w = np.isinf(w)
    inf_ok = np.array_equal(g[inf_w], w[inf_w]) and not np.isinf(g[~inf_w]).any()
    fin = np.isfinite(w) & np.isfinite(g)
    diff = np.abs(g[fin] - w[fin])
    err = float(diff.max()) if diff.size else 0.0
    ok = nan_ok and inf_ok and bool(np.all(diff <= atol + rtol * np.abs(w[fin])))
    return (err if nan_ok and inf_ok else float("inf")), ok


def actual_outputs(outs: list, wants: list, data_dependent: list) -> list:
    """A data-dependent output (docs/kernel-plan.md) is allocated for its upper bound and holds
    its actual shape's elements first (row-major): the first volume(actual) elements, reshaped to
    the shape whose dim `dim` is the value of its size output. Size outputs are dropped. A count
    that differs from the reference gives the unreshaped buffer (a shape mismatch)."""
    if not data_dependent:
        return outs
    fixed = list(outs[: len(wants)])
    for dd in data_dependent:
        k, d, j = dd["output"], dd["dim"], dd["size_output"]
        if k >= len(fixed) or j >= len(outs):
            continue
        count = int(np.asarray(outs[j]).reshape(-1)[0])
        shape = list(fixed[k].shape)
        if not 0 <= count <= shape[d]:
            continue
        shape[d] = count
        fixed[k] = fixed[k].reshape(-1)[: int(np.prod(shape))].reshape(shape)
    return fixed
