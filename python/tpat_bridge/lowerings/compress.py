"""TPAT's own TVM lowering of ONNX Compress: a data-dependent output through a size tensor.

Compress(input, condition[, axis]) keeps the slices (with `axis`) or the elements of the
flattened input (without) whose condition is true. Only the first L = min(len(condition),
input.shape[axis] or input.size) condition values count (ONNX Runtime ignores the rest). The
output's `axis` dim (or its only dim) is data-dependent: its value is the size output (0-D int64),
its upper bound L (docs/kernel-plan.md "Data-dependent outputs").

Kernels, no host synchronisation: the condition's selected positions come from NonZero's three
block-wide kernels (nonzero.py: count, scan, scatter over the first L values) into a
workspace list `sel` plus the count; then one gather kernel, one thread per element of the
upper-bound output: element (o, p, i) with p < count reads input (o, sel[p], i) and is written
row-major for the actual shape [outer, count, inner]. `mode="cpu"` runs the same IR with serial
loops for the LLVM tests and the cross-check.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from tvm import relax, te, tirx
from tvm.script.ir_builder import IRBuilder
from tvm.script.ir_builder import tirx as T

from .ir import Threads, relax_arg
from .nonzero import PER_THREAD, THREADS, _count_ir, _i64, _numel, _scan_ir, _scatter_ir
from .protocol import Decline, Lowering, NodeView, Operand, Selection

DTYPES = (
    "float32",
    "float16",
    "bfloat16",
    "float64",
    "int8",
    "uint8",
    "int16",
    "uint16",
    "int32",
    "uint32",
    "int64",
    "uint64",
    "bool",
)
GATHER_THREADS = 256


@dataclass(frozen=True)
class CompressSelection(Selection):
    dtype: str
    axis: int | None  # None: the flattened input
    rank: int
    x_index: int
    cond: Operand  # the condition (a graph input or a constant)
    threads: int = THREADS  # NonZero's kernels on the condition
    per: int = PER_THREAD

    @property
    def data_dependent(self) -> list:
        return [{"output": 0, "dim": 0 if self.axis is None else self.axis, "size_output": 1}]

    def describe(self) -> str:
        return (
            f"compress ({'axis ' + str(self.axis) if self.axis is not None else 'flattened'}, "
            "NonZero's count / scan / scatter on the condition, one gather, size tensor)"
        )


def select(node: NodeView) -> CompressSelection | Decline:
    ops = node.operands
    if len(ops) != 2 or not ops[0].is_param or ops[1].is_absent:
        return Decline("Compress needs a runtime input and a condition")
    xshape, dtype = ops[0].shape, ops[0].dtype
    cshape, cdtype = ops[1].shape, ops[1].dtype
    if dtype not in DTYPES or node.outputs[0]["dtype"] != dtype:
        return Decline(f"dtype {dtype}")
    if cdtype != "bool" or len(cshape) != 1:
        return Decline("condition must be a 1-D bool tensor")
    # The int default makes attr() check the value (BadValue on a float or a string axis).
    axis = node.attr("axis", 0) if any(a.name == "axis" for a in node.node.attribute) else None
    r = len(xshape)
    if axis is not None:
        if r == 0 or not -r <= axis < r:
            return Decline(f"axis {axis} for rank {r}")
        axis %= r
    return CompressSelection(dtype=dtype, axis=axis, rank=r, x_index=ops[0].index, cond=ops[1])


def _min64(a, b):
    if isinstance(a, tirx.IntImm) and isinstance(b, tirx.IntImm):
        return _i64(min(int(a), int(b)))
    return tirx.min(a, b)


def _split(axis, shape):
    """(outer, dim, inner) of the input around the compressed axis (flattened: 1, size, 1)."""
    if axis is None:
        return _i64(1), _numel(shape), _i64(1)
    a = axis
    return _numel(shape[:a]), _numel(shape[a : a + 1]), _numel(shape[a + 1 :])


def _gather_ir(axis, dtype, shape, limit, x, sel, size, out, mode):
    """out (row-major for [outer, count, inner]) = x's slices sel[0 .. count) along `axis`."""
    outer, dim, inner = _split(axis, shape)
    total = outer * limit * inner  # the upper bound
    tb = GATHER_THREADS
    nblocks = (total + (tb - 1)) // tb
    with IRBuilder() as ib:
        th = Threads(mode, nblocks, tb)
        with th as bx:
            xf = T.decl_buffer([outer * dim * inner], dtype, data=x.data)
            of = T.decl_buffer([total], dtype, data=out.data)

            def body(tx):
                q = tirx.Cast("int64", bx) * tb + tirx.Cast("int64", tx)
                count = size[()]
                with T.If(q < outer * count * inner):
                    with T.Then():
                        ci = count * inner
                        o = q // ci
                        p = (q % ci) // inner
                        i = q % inner
                        T.buffer_store(of, xf[(o * dim + sel[p]) * inner + i], [q])

            th.each_thread(body)
    return ib.get()


def emit(bb, params, det: CompressSelection, mode="gpu"):
    """Selected positions of the condition (NonZero's kernels), then the gather; returns the
    Relax tuple (out [upper bound], size [])."""
    x = params[det.x_index]
    cond = relax_arg(params, det.cond)
    tile = det.threads * det.per
    sub = replace(det, dtype="bool", rank=1)  # NonZero's kernels read the bool condition

    def limit_of(ct, xt):
        return _min64(_numel(ct.shape), _split(det.axis, xt.shape)[1])

    def count_stage(ct, xt):
        n = limit_of(ct, xt)
        nb = (n + (tile - 1)) // tile
        return te.extern(
            [(nb,)],
            [ct],
            lambda ins, outs: _count_ir(sub, n, ins[0], outs[0], nb, mode),
            dtype="int64",
            name="tpat_compress_count",
        )

    counts = bb.emit_te(count_stage, cond, x, primfunc_name_hint="tpat_compress_count")

    def scan_stage(ct):
        nb = ct.shape[0]
        return te.extern(
            [(nb,), ()],
            [ct],
            lambda ins, outs: _scan_ir(sub, ins[0], outs[0], outs[1], nb, mode),
            dtype=["int64", "int64"],
            name="tpat_compress_scan",
        )

    scanned = bb.emit_te(scan_stage, counts, primfunc_name_hint="tpat_compress_scan")
    offsets = bb.emit(relax.TupleGetItem(scanned, 0))
    size = bb.emit(relax.TupleGetItem(scanned, 1))

    def scatter_stage(ct, xt, ot, st):
        n = limit_of(ct, xt)
        nb = (n + (tile - 1)) // tile
        return te.extern(
            [(n,)],
            [ct, ot, st],
            lambda ins, outs: _scatter_ir(sub, [n], n, ins[0], ins[1], ins[2], outs[0], nb, mode),
            dtype="int64",
            name="tpat_compress_select",
        )

    sel = bb.emit_te(scatter_stage, cond, x, offsets, size, primfunc_name_hint="tpat_compress_select")

    def gather_stage(xt, ct, selt, st):
        limit = limit_of(ct, xt)
        if det.axis is None:
            oshape = [limit]
        else:
            a = det.axis
            oshape = list(xt.shape[:a]) + [limit] + list(xt.shape[a + 1 :])
        return te.extern(
            [oshape],
            [xt, selt, st],
            lambda ins, outs: _gather_ir(det.axis, det.dtype, xt.shape, limit, ins[0], ins[1], ins[2], outs[0], mode),
            dtype=det.dtype,
            name="tpat_compress_gather",
        )

    out = bb.emit_te(gather_stage, x, cond, sel, size, primfunc_name_hint="tpat_compress_gather")
    return bb.emit(relax.Tuple([out, size]))


class CompressLowering(Lowering):
    name = "compress"
    ops = ("Compress",)

    def select(self, node):
        return select(node)

    def emit(self, bb, params, sel, mode="gpu"):
        return emit(bb, params, sel, mode)


COMPRESS = CompressLowering()
