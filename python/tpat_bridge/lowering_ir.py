"""IR-builder helpers shared by TPAT's `te.extern` lowerings (TopK, CumSum, LayerNormalization).

Kernels written with TVM's IR builder (the way topi.gpu.sort is written): `Threads` opens a block
of threads on the GPU (thread_extent scopes) or, for the LLVM tests, serial loops where the
thread loop is reopened for every phase between barriers; `unravel` and `lead_rows` handle the
leading (row) dimensions of last-axis ops, symbolic ones included.
"""
from __future__ import annotations


def unravel(row, lead):
    """Row number -> index expressions over the leading dims (last fastest)."""
    from tvm import tirx

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
    import tvm

    from tvm.script.ir_builder import tirx as T

    T.evaluate(tvm.ir.Call("tirx.tvm_storage_sync", [tvm.ir.StringImm("shared")], ret_ty="void"))


class Threads:
    """GPU: thread_extent scopes (one block, its threads). CPU (mode "cpu", for the LLVM tests):
    serial loops, the thread loop opened anew inside every phase between barriers."""

    def __init__(self, mode, nblocks, nthreads):
        self.mode, self.nblocks, self.nthreads = mode, nblocks, nthreads

    def __enter__(self):
        from tvm import te
        from tvm.script.ir_builder import tirx as T

        if self.mode == "gpu":
            bx, self.tx = te.thread_axis("blockIdx.x"), te.thread_axis("threadIdx.x")
            self._f = T.frame_scope([T.attr(bx, "thread_extent", self.nblocks),
                                     T.attr(self.tx, "thread_extent", self.nthreads)])
            self._f.__enter__()
            return bx
        self._f = T.serial(0, self.nblocks)
        return self._f.__enter__()

    def __exit__(self, *a):
        return self._f.__exit__(*a)

    def each_thread(self, body):
        """Run body(tx) for every thread of the block (then a barrier on the GPU)."""
        from tvm.script.ir_builder import tirx as T

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
    from tvm import tirx

    lead = list(t.shape[:-1])
    rows = tirx.const(1, "int64")
    for d in lead:
        rows = rows * d
    return lead, rows
