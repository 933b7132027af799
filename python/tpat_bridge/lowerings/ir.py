"""IR helpers shared by TPAT's lowerings: the Relax `main` signature of a node (`main_params`), a
lowering's own GPU schedule applied to its PrimFunc (`apply_schedule`), and the IR-builder helpers of
the `te.extern` lowerings (TopK, CumSum, LayerNormalization).

Kernels written with TVM's IR builder (the way topi.gpu.sort is written): `Threads` opens a block
of threads on the GPU (thread_extent scopes) or, for the LLVM tests, serial loops where the
thread loop is reopened for every phase between barriers; `unravel` and `lead_rows` handle the
leading (row) dimensions of last-axis ops, symbolic ones included; `shuffle_down`, `assign` and the
constant helpers (`i64`, `i32`, `ceil_div`, `dtype_of`) are shared by the block kernels.
"""

from __future__ import annotations

import numpy as np
import tvm
from tvm import relax, s_tir, te, tirx
from tvm.script.ir_builder import tirx as T


def unravel(row, lead):
    """Row number -> index expressions over the leading dims (last fastest)."""
    out = []
    rem = row
    for d in reversed(lead[1:]):
        dd = tirx.Cast("int64", d) if not isinstance(d, int) else tirx.const(d, "int64")
        out.append(rem % dd)
        rem = rem // dd
    out.append(rem)
    return list(reversed(out)) if lead else []


def sync():
    """__syncthreads() (a shared-memory barrier)."""
    T.evaluate(tvm.ir.Call("tirx.tvm_storage_sync", [tvm.ir.StringImm("shared")], ret_ty="void"))


def dtype_of(e) -> str:
    """The dtype of a TIR expression, as a string."""
    return str(e.ty)


def i64(v):
    return tirx.const(v, "int64")


def i32(v):
    return tirx.const(v, "int32")


def ceil_div(a, b: int):
    """ceil(a / b) for an int64 expression a and a positive int b."""
    return (a + i64(b - 1)) // i64(b)


def shuffle_down(v, delta, width=32):
    """__shfl_down_sync with the full mask: every lane of the warp reaches each shuffle (they are
    outside any lane-dependent branch), and the full mask makes the warp converge first."""
    mask = tirx.const(0xFFFFFFFF, "uint32")
    return tvm.ir.Call(
        "tirx.tvm_warp_shuffle_down",
        [mask, v, tirx.const(delta, "int32"), tirx.const(width, "int32"), tirx.const(32, "int32")],
        ret_ty=dtype_of(v),
    )


def assign(buf, new, idx, gpu):
    """buf[idx(k)] = new[k] for every k, all right-hand sides read before any store (a parallel
    assignment of a multi-value state, e.g. ReduceLogSumExp's (max, sum))."""
    if len(new) == 1:
        T.buffer_store(buf, new[0], idx(0))
        return
    tmp = T.decl_buffer([len(new)], dtype_of(new[0]), scope="local" if gpu else "global")
    for k, v in enumerate(new):
        T.buffer_store(tmp, v, [k])
    for k in range(len(new)):
        T.buffer_store(buf, tmp[k], idx(k))


class Threads:
    """GPU: thread_extent scopes (one block, its threads). CPU (mode "cpu", for the LLVM tests):
    serial loops, the thread loop opened anew inside every phase between barriers."""

    def __init__(self, mode, nblocks, nthreads, min_blocks=None):
        self.mode, self.nblocks, self.nthreads = mode, nblocks, nthreads
        self.min_blocks = min_blocks  # GPU: __launch_bounds__(nthreads, min_blocks) (registers capped)

    def __enter__(self):
        if self.mode == "gpu":
            bx, self.tx = te.thread_axis("blockIdx.x"), te.thread_axis("threadIdx.x")
            scopes = [T.attr(bx, "thread_extent", self.nblocks), T.attr(self.tx, "thread_extent", self.nthreads)]
            if self.min_blocks:
                scopes.append(T.attr(self.tx, "tirx.launch_bounds_min_blocks_per_sm", self.min_blocks))
            self._f = T.frame_scope(scopes)
            self._f.__enter__()
            return bx
        self._f = T.serial(0, self.nblocks)
        return self._f.__enter__()

    def __exit__(self, *a):
        return self._f.__exit__(*a)

    def each_thread(self, body):
        """Run body(tx) for every thread of the block (then a barrier on the GPU)."""
        if self.mode == "gpu":
            body(self.tx)
            return
        with T.serial(0, self.nthreads) as tx:
            body(tx)

    def barrier(self):
        if self.mode == "gpu":
            sync()


def lead_rows(t):
    """(leading dims, their product as int64) of a TE tensor: the rows of a last-axis op. Taken
    from the stage's own placeholder so symbolic dims are the PrimFunc's variables."""
    lead = list(t.shape[:-1])
    rows = tirx.const(1, "int64")
    for d in lead:
        rows = rows * d
    return lead, rows


def relax_arg(params, op):
    """The Relax argument for an operand: main's parameter, or the constant."""
    return params[op.index] if op.is_param else relax.const(np.ascontiguousarray(op.value), op.dtype)


def main_dims(params):
    """dim(x) of `main_params` for the parameters already made: the same shape variables."""
    syms = {}
    for p in params:
        for v in p.ty.shape.values:
            if isinstance(v, tirx.Var):
                syms.setdefault(str(v.name), v)
    return lambda x: x if isinstance(x, int) else syms[x]


def main_params(info):
    """(Relax parameters of `main`, one per graph input, symbolic dims as shared int64 vars; dim())."""
    syms = {}

    def dim(x):
        if isinstance(x, int):
            return x
        if x not in syms:
            syms[x] = tirx.Var(x, "int64")
        return syms[x]

    params = [relax.Var(x["name"], relax.TensorType([dim(s) for s in x["shape"]], x["dtype"])) for x in info.inputs]
    return params, dim


def apply_schedule(built, low, sel, narrow):
    """Apply a lowering's GPU schedule to its PrimFunc `low.primfunc`: indices narrowed to int32
    first when `narrow` (the planner's narrowing skips scheduled functions), then
    `low.schedule(sch, block, sel)`; the result is marked tirx.is_scheduled. Unchanged when the
    lowering declines (schedule returns False): dlight schedules it then."""
    gv = next((g for g in built.get_global_vars() if g.name_hint == low.primfunc), None)
    if gv is None:  # the lowering emitted another form (a kernel of its own: nothing to schedule)
        return built
    func = built[gv]
    if narrow:
        try:
            func = tirx.transform.ForceNarrowIndexToInt32()(tvm.IRModule({gv: func}))[gv]
        except tvm.error.InternalError:  # the pass refuses int64 data buffers: their indices stay int64
            pass
    sch = s_tir.Schedule(func)
    if not low.schedule(sch, sch.get_sblock(low.primfunc), sel):
        return built
    built[gv] = sch.mod["main"].with_attr("tirx.is_scheduled", True)
    return built
