"""TPAT's own TVM lowering of ONNX NonZero: a data-dependent output through a size tensor.

TVM 0.27 lowers NonZero to a runtime builtin (no kernel, no static launch plan). TensorRT's
IPluginV3 allows a data-dependent output: its dim is a size tensor (a 0-D int64 output of the
plugin, written on the device), and the output buffer is allocated for an upper bound. So the
Relax module here returns two tensors:

  out0  [rank, N] int64 (N = the input's element count, the upper bound), of which the first
        rank * count elements hold the ONNX result [rank, count] in row-major order;
  size  []        int64 count (the plan's size output, docs/kernel-plan.md "Data-dependent outputs").

Three kernels, no host synchronisation, no serial loop over the input (block-wide scans):

  1. count:   one block per tile of T x E elements (thread t owns E consecutive elements);
              a block-wide tree reduction gives the tile's count -> counts[b];
  2. scan:    one block scans counts[] (exclusive) tile by tile (Hillis-Steele over the threads'
              partial sums, a running carry between tiles) -> offsets[b], size = the total;
  3. scatter: one block per tile again: the threads' counts are scanned block-wide, and each
              thread writes the coordinates of its non-zero elements at
              out[i * size + offsets[b] + prefix + j] (unravelled over the input's dims).

Order is the input's row-major order, as ONNX (and numpy.nonzero) define it. NaN is non-zero,
-0.0 is zero. Any rank >= 1 (rank 0: ONNX gives [0, count] with count 0 or 1; refused here),
any dtype incl. bool, symbolic dims. `mode="cpu"` runs the same IR with serial loops for the LLVM
tests and the generate-time cross-check.
"""

from __future__ import annotations

from dataclasses import dataclass

from tvm import relax, te, tirx
from tvm.script.ir_builder import IRBuilder
from tvm.script.ir_builder import tirx as T

from .ir import Threads, unravel
from .protocol import Decline, Lowering, NodeView, Selection

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
THREADS = 256
PER_THREAD = 4  # E: consecutive elements per thread and tile
SCAN_PER_THREAD = 4


@dataclass(frozen=True)
class NonZeroSelection(Selection):
    dtype: str  # the input's (the count / scatter kernels' predicate reads it)
    rank: int
    x_index: int
    threads: int = THREADS  # T
    per: int = PER_THREAD  # E

    @property
    def data_dependent(self) -> list:
        # output 0's dim 1 is the value of output 1 (a 0-D int64 size tensor)
        return [{"output": 0, "dim": 1, "size_output": 1}]

    def describe(self) -> str:
        return (
            f"nonzero (rank {self.rank}, {self.threads} threads x {self.per} per block, "
            "count / scan / scatter, size tensor)"
        )


def select(node: NodeView) -> NonZeroSelection | Decline:
    ops = node.operands
    if len(ops) != 1 or not ops[0].is_param:
        return Decline("NonZero needs a runtime input")
    xshape, dtype = ops[0].shape, ops[0].dtype
    if dtype not in DTYPES:
        return Decline(f"dtype {dtype}")
    if len(xshape) == 0:
        return Decline("scalar input")
    if node.outputs[0]["dtype"] != "int64":
        return Decline("output dtype")
    return NonZeroSelection(dtype=dtype, rank=len(xshape), x_index=ops[0].index)


def _i64(v):
    return tirx.const(v, "int64")


def _numel(shape):
    static, n = 1, None
    for d in shape:
        if isinstance(d, int) or isinstance(d, tirx.IntImm):
            static *= int(d)
        else:
            d = d if str(d.ty.dtype) == "int64" else tirx.Cast("int64", d)
            n = d if n is None else n * d
    return _i64(static) if n is None else (n if static == 1 else n * static)


def _is_nonzero(v, dtype):
    if dtype == "bool":
        return v
    if dtype.startswith("float") or dtype == "bfloat16":
        # on the bits, sign cleared: NaN is non-zero and -0.0 zero whatever the compiler's float
        # compare does (LLVM's `!=` is ordered: NaN != 0 is false there; fast math on CUDA)
        bits = {"float16": "uint16", "bfloat16": "uint16", "float32": "uint32", "float64": "uint64"}[dtype]
        width = int(bits[4:])
        mag = tirx.reinterpret(bits, v) & tirx.const((1 << (width - 1)) - 1, bits)
        return mag != tirx.const(0, bits)
    return v != tirx.const(0, dtype)


def block_scan(th, tot, tb, steps):
    """Inclusive Hillis-Steele scan of tot[0, :tb] (one value per thread) into tot[steps % 2, :]."""
    for s_ in range(steps):
        src, dst, d = s_ % 2, (s_ + 1) % 2, 1 << s_

        def step(tx, src=src, dst=dst, d=d):
            t = tirx.Cast("int32", tx)
            with T.If(t >= d):
                with T.Then():
                    T.buffer_store(tot, tot[src, t] + tot[src, t - d], [dst, t])
                with T.Else():
                    T.buffer_store(tot, tot[src, t], [dst, t])

        th.each_thread(step)
        th.barrier()


def _local(mode, tb):
    """A per-thread scalar: a register on the GPU, a [tb] array indexed by the thread on the CPU."""
    gpu = mode == "gpu"
    buf = T.decl_buffer([1] if gpu else [tb], "int64", scope="local" if gpu else "global")
    return buf, (lambda tx: [0] if gpu else [tirx.Cast("int32", tx)])


def _thread_count(pred, base, t, per, n):
    """Number of positions p < n with pred(p) among thread t's `per` consecutive ones of the tile."""
    c = _i64(0)
    for e in range(per):
        p = base + tirx.Cast("int64", t) * per + e
        nz = tirx.And(p < n, pred(tirx.min(p, n - 1)))
        c = c + tirx.Cast("int64", nz)
    return c


def _count_ir(det, n, x, counts, nblocks, mode, pred=None):
    """Per block of T x E positions: how many satisfy pred (default: x non-zero) -> counts[b]."""
    tb, per = det.threads, det.per
    tile = tb * per
    gpu = mode == "gpu"
    with IRBuilder() as ib:
        th = Threads(mode, nblocks, tb)
        with th as bx:
            if pred is None:
                xf = T.decl_buffer([n], det.dtype, data=x.data)
                pred = lambda p: _is_nonzero(xf[p], det.dtype)  # noqa: E731
            b = tirx.Cast("int64", bx)
            red = T.decl_buffer([tb], "int64", scope="shared" if gpu else "global")
            with T.If(b * tile < n):  # a grid of 0 blocks is launched as 1 (n == 0)
                with T.Then():
                    base = b * tile
                    th.each_thread(
                        lambda tx: T.buffer_store(red, _thread_count(pred, base, tx, per, n), [tirx.Cast("int32", tx)])
                    )
                    th.barrier()
                    s = tb // 2
                    while s >= 1:

                        def add(tx, s=s):
                            t = tirx.Cast("int32", tx)
                            with T.If(t < s):
                                with T.Then():
                                    T.buffer_store(red, red[t] + red[t + s], [t])

                        th.each_thread(add)
                        th.barrier()
                        s //= 2

                    def store(tx):
                        with T.If(tirx.Cast("int32", tx) == 0):
                            with T.Then():
                                T.buffer_store(counts, red[0], [b])

                    th.each_thread(store)
    return ib.get()


def _scan_ir(det, counts, offsets, size, nblocks, mode):
    """One block: exclusive scan of counts[nblocks] into offsets, the total into size[]."""
    tb, per = det.threads, SCAN_PER_THREAD
    tile = tb * per
    steps = tb.bit_length() - 1
    fin = steps % 2
    gpu = mode == "gpu"
    with IRBuilder() as ib:
        th = Threads(mode, 1, tb)
        with th:
            tot = T.decl_buffer([2, tb], "int64", scope="shared" if gpu else "global")
            carry = T.decl_buffer([1], "int64", scope="shared" if gpu else "global")
            run, R = _local(mode, tb)

            def init(tx):
                with T.If(tirx.Cast("int32", tx) == 0):
                    with T.Then():
                        T.buffer_store(carry, _i64(0), [0])

            th.each_thread(init)
            th.barrier()
            ntiles = (nblocks + (tile - 1)) // tile
            with T.serial(_i64(0), ntiles) as it:
                base = it * tile

                def local(tx):
                    T.buffer_store(run, _i64(0), R(tx))
                    for e in range(per):
                        p = base + tirx.Cast("int64", tx) * per + e
                        with T.If(p < nblocks):
                            with T.Then():
                                T.buffer_store(run, run[tuple(R(tx))] + counts[p], R(tx))
                    T.buffer_store(tot, run[tuple(R(tx))], [0, tirx.Cast("int32", tx)])

                th.each_thread(local)
                th.barrier()
                block_scan(th, tot, tb, steps)

                def write(tx):
                    t = tirx.Cast("int32", tx)
                    before = tirx.Select(t > 0, tot[fin, tirx.max(t - 1, 0)], _i64(0)) + carry[0]
                    T.buffer_store(run, before, R(tx))
                    for e in range(per):
                        p = base + tirx.Cast("int64", tx) * per + e
                        with T.If(p < nblocks):
                            with T.Then():
                                T.buffer_store(offsets, run[tuple(R(tx))], [p])
                                T.buffer_store(run, run[tuple(R(tx))] + counts[p], R(tx))

                th.each_thread(write)
                th.barrier()

                def advance(tx):
                    with T.If(tirx.Cast("int32", tx) == 0):
                        with T.Then():
                            T.buffer_store(carry, carry[0] + tot[fin, tb - 1], [0])

                th.each_thread(advance)
                th.barrier()

            def total(tx):
                with T.If(tirx.Cast("int32", tx) == 0):
                    with T.Then():
                        T.buffer_store(size, carry[0], [])

            th.each_thread(total)
    return ib.get()


def _scatter_ir(det, shape, n, x, offsets, size, out, nblocks, mode):
    tb, per, dtype, rank = det.threads, det.per, det.dtype, det.rank
    tile = tb * per
    steps = tb.bit_length() - 1
    fin = steps % 2
    gpu = mode == "gpu"
    with IRBuilder() as ib:
        th = Threads(mode, nblocks, tb)
        with th as bx:
            xf = T.decl_buffer([n], dtype, data=x.data)
            of = T.decl_buffer([rank * n], "int64", data=out.data)
            b = tirx.Cast("int64", bx)
            tot = T.decl_buffer([2, tb], "int64", scope="shared" if gpu else "global")
            run, R = _local(mode, tb)
            with T.If(b * tile < n):  # a grid of 0 blocks is launched as 1 (n == 0)
                with T.Then():
                    base = b * tile
                    th.each_thread(
                        lambda tx: T.buffer_store(
                            tot,
                            _thread_count(lambda q: _is_nonzero(xf[q], dtype), base, tx, per, n),
                            [0, tirx.Cast("int32", tx)],
                        )
                    )
                    th.barrier()
                    block_scan(th, tot, tb, steps)

                    def write(tx):
                        t = tirx.Cast("int32", tx)
                        count = size[()]
                        start = offsets[b] + tirx.Select(t > 0, tot[fin, tirx.max(t - 1, 0)], _i64(0))
                        T.buffer_store(run, start, R(tx))
                        for e in range(per):
                            p = base + tirx.Cast("int64", tx) * per + e
                            with T.If(p < n):
                                with T.Then():
                                    with T.If(_is_nonzero(xf[p], dtype)):
                                        with T.Then():
                                            pos = run[tuple(R(tx))]
                                            idx = unravel(p, list(shape))
                                            for i in range(rank):
                                                T.buffer_store(of, tirx.Cast("int64", idx[i]), [count * i + pos])
                                            T.buffer_store(run, pos + 1, R(tx))

                    th.each_thread(write)
    return ib.get()


def emit(bb, params, det: NonZeroSelection, mode="gpu"):
    """count -> scan -> scatter; returns the Relax tuple (out [rank, N], size [])."""
    x = params[det.x_index]
    tile = det.threads * det.per

    def count_stage(xt):
        n = _numel(xt.shape)
        nb = (n + (tile - 1)) // tile
        return te.extern(
            [(nb,)],
            [xt],
            lambda ins, outs: _count_ir(det, n, ins[0], outs[0], nb, mode),
            dtype="int64",
            name="tpat_nonzero_count",
        )

    counts = bb.emit_te(count_stage, x, primfunc_name_hint="tpat_nonzero_count")

    def scan_stage(ct):
        nb = ct.shape[0]
        return te.extern(
            [(nb,), ()],
            [ct],
            lambda ins, outs: _scan_ir(det, ins[0], outs[0], outs[1], tirx_i64(nb), mode),
            dtype=["int64", "int64"],
            name="tpat_nonzero_scan",
        )

    scanned = bb.emit_te(scan_stage, counts, primfunc_name_hint="tpat_nonzero_scan")
    offsets = bb.emit(relax.TupleGetItem(scanned, 0))
    size = bb.emit(relax.TupleGetItem(scanned, 1))

    def scatter_stage(xt, ot, st):
        n = _numel(xt.shape)
        nb = (n + (tile - 1)) // tile
        return te.extern(
            [(det.rank, n)],
            [xt, ot, st],
            lambda ins, outs: _scatter_ir(det, xt.shape, n, ins[0], ins[1], ins[2], outs[0], nb, mode),
            dtype="int64",
            name="tpat_nonzero_scatter",
        )

    out = bb.emit_te(scatter_stage, x, offsets, size, primfunc_name_hint="tpat_nonzero_scatter")
    return bb.emit(relax.Tuple([out, size]))


def tirx_i64(v):
    return v if not isinstance(v, int) else tirx.const(v, "int64")


class NonZeroLowering(Lowering):
    name = "nonzero"
    ops = ("NonZero",)

    def select(self, node):
        return select(node)

    def emit(self, bb, params, sel, mode="gpu"):
        return emit(bb, params, sel, mode)


NONZERO = NonZeroLowering()
