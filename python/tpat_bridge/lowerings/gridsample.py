"""TPAT's own TVM lowering of GridSample (opset 16 and 20): one kernel, the grid read in place.

TVM 0.27's frontend transposes the ONNX grid ((N, H, W, 2) -> (N, 2, H, W), 5-D alike) with a
separate `permute_dims` before TOPI's grid_sample: two kernels, the grid written and read once
more. On small, latency-bound cases the second launch costs as much as the work (H200:
gridsample_nearest_reflection 7.9 us against 5.7 us for torch.compile). Here the transpose is a TE
compute inside the same PrimFunc as TOPI's grid_sample, so dlight inlines it: one kernel reading
the grid in ONNX's layout, with TOPI's sampling arithmetic (the same as TVM's own path: every mode,
padding mode and align_corners the frontend maps). The function is left unscheduled: dlight
schedules it, the int32 narrowing applies to static shapes, `tpat tune` can search it.
"""

from __future__ import annotations

from dataclasses import dataclass

from tvm import te, topi

from .ir import relax_arg
from .protocol import Decline, FunctionLowering, NodeView, Operand, Selection

DTYPES = ("float32", "float16")
MODES = {"bilinear": "bilinear", "linear": "bilinear", "nearest": "nearest", "bicubic": "bicubic", "cubic": "bicubic"}
PADDINGS = ("zeros", "border", "reflection")


@dataclass(frozen=True)
class GridSampleSelection(Selection):
    data: Operand
    grid: Operand
    method: str  # TOPI's name: bilinear, nearest, bicubic
    padding: str
    align_corners: bool
    ndim: int
    dtype: str
    out_shape: tuple = ()

    def describe(self) -> str:
        return (
            f"grid_sample ({self.method}, {self.padding}, align_corners={int(self.align_corners)}, "
            f"{self.ndim}-D, grid read in ONNX layout, one kernel)"
        )


def select(n: NodeView) -> GridSampleSelection | Decline:
    ops = n.operands
    if len(ops) != 2 or ops[0].is_absent or ops[1].is_absent:
        return Decline("GridSample arity")
    data, grid = ops
    if data.dtype not in DTYPES or grid.dtype not in DTYPES:
        return Decline(f"dtypes {data.dtype}, {grid.dtype}")
    if n.outputs[0]["dtype"] != data.dtype:
        return Decline("output dtype")
    nd = len(data.shape)
    if nd not in (4, 5) or len(grid.shape) != nd or grid.shape[-1] != nd - 2:
        return Decline(f"GridSample ranks ({nd}-D data, grid {grid.shape})")
    mode = n.attr("mode", "linear" if n.opset(20) >= 20 else "bilinear")
    if mode not in MODES:
        return Decline(f"mode {mode}")
    method = MODES[mode]
    if nd == 5 and method == "bicubic":
        return Decline("5-D cubic (TOPI's 3-D grid_sample has bilinear and nearest only)")
    padding = n.attr("padding_mode", "zeros")
    if padding not in PADDINGS:
        return Decline(f"padding_mode {padding}")
    align = int(n.attr("align_corners", 0))
    out_shape = tuple(data.shape[:2]) + tuple(grid.shape[1:-1])
    return GridSampleSelection(
        data=data,
        grid=grid,
        method=method,
        padding=padding,
        align_corners=align != 0,
        ndim=nd,
        dtype=data.dtype,
        out_shape=out_shape,
    )


def grid_sample_te(data, grid, sel: GridSampleSelection):
    nd = sel.ndim
    perm = [0, nd - 1] + list(range(1, nd - 1))  # ONNX (N, *spatial, k) -> TOPI (N, k, *spatial)
    gshape = [grid.shape[p] for p in perm]

    def g(*i):
        src = [0] * nd
        for k, p in enumerate(perm):
            src[p] = i[k]
        return grid[tuple(src)]

    gt = te.compute(gshape, g, name="tpat_grid_nchw")
    if grid.dtype != data.dtype:
        gt = te.compute(gshape, lambda *i: gt(*i).astype(data.dtype), name="tpat_grid_cast")
    out = topi.image.grid_sample(
        data,
        gt,
        method=sel.method,
        layout="NCHW" if nd == 4 else "NCDHW",
        padding_mode=sel.padding,
        align_corners=sel.align_corners,
    )
    # the block `schedule` binds; TOPI samples float16 in float32 and returns float32: cast back
    return te.compute(out.shape, lambda *i: out(*i).astype(sel.dtype), name=PRIMFUNC)


PRIMFUNC = "tpat_grid_sample"
THREADS = 256
MIN_THREADS = 64
TARGET_BLOCKS = 264  # two per SM of an H100 / H200


def schedule(sch, blk, sel):
    """Every other block (the grid transpose, TOPI's sampling) inlined into the output block, whose
    loops are fused and split into (blocks, T threads): T = 256, down to 64 while a static output
    would give fewer than 264 blocks (dlight's default is 1024 threads: 72 blocks on a small
    case, half the SMs idle)."""
    for b in sch.get_child_blocks(sch.get_sblock("root")) if _has_root(sch) else []:
        if sch.get(b).name_hint != PRIMFUNC:
            sch.compute_inline(b)
    loops = list(sch.get_loops(blk))
    fused = sch.fuse(*loops) if len(loops) > 1 else loops[0]
    total = 1
    for ext in sel.out_shape:
        total = total * ext if isinstance(ext, int) and isinstance(total, int) else None
    t = THREADS
    while total is not None and t > MIN_THREADS and total < TARGET_BLOCKS * t:
        t //= 2
    bo, tx = sch.split(fused, [None, t])
    sch.bind(bo, "blockIdx.x")
    sch.bind(tx, "threadIdx.x")
    return True


def _has_root(sch):
    try:
        sch.get_sblock("root")
        return True
    except Exception:  # noqa: BLE001 (TVM raises its own error type for a missing block)
        return False


def emit(bb, params, sel: GridSampleSelection, mode="gpu"):
    args = [relax_arg(params, o) for o in (sel.data, sel.grid)]
    return bb.emit_te(lambda d, g: grid_sample_te(d, g, sel), *args, primfunc_name_hint=PRIMFUNC)


GRID_SAMPLE = FunctionLowering("grid_sample", ["GridSample"], select, emit, schedule, PRIMFUNC)
