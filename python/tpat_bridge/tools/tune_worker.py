"""What `tpat tune`'s builder and runner worker processes run (`python -m tvm.exec.popen_worker`,
which unpickle these functions by reference): kept apart from tune.py so a worker imports only
TVM's builder and TPAT's CUDA prelude, not the planner (every worker pays its imports)."""

from __future__ import annotations

import os
import signal
import sys

from tvm.driver import build as tvm_build
from tvm.s_tir.meta_schedule.builder import local_builder as lb
from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

from ..lowerings import prelude


def init():
    """Runs once in every builder/runner worker process (tvm.exec.popen_worker) before any job."""
    # Ctrl-C belongs to the bridge process (first one: finish the batch), not to the workers,
    # which are in its process group.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The bridge's stdout carries its one JSON answer: worker chatter goes to stderr.
    sys.stdout.flush()
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    # TPAT's lowerings call device helpers that a CUDA postproc hook prepends to TVM's source;
    # the build happens here, so the hook must be registered here too (harmless without them).
    prelude.install_cuda_postproc()


def build(mod, target, params):
    """The builder's f_build: MetaSchedule's default_build without its up-front
    `import tvm.s_tir.tensor_intrin` (~16 s of TVMScript parsing in every new worker process);
    the import is done (once per worker) and the build retried only if a build fails: a
    tensorized candidate can need what it registers (e.g. ldmatrix index maps)."""
    mod = RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod)
    try:
        return tvm_build(mod, target=target)
    except Exception:  # noqa: BLE001
        if "tvm.s_tir.tensor_intrin" in sys.modules:
            raise
        import tvm.s_tir.tensor_intrin  # noqa: F401  lazy on purpose: ~16 s, only when a build needs it

        return tvm_build(mod, target=target)


def build_job(args):
    """One LocalBuilder job in a worker: MetaSchedule's own worker function (build, then export
    the module to a tar file in a new temp dir; RemoveBuildArtifact deletes it after timing)."""
    return lb._worker_func(*args)  # noqa: SLF001 - what LocalBuilder.build sends its workers
