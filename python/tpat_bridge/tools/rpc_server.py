"""`python -m tpat_bridge.tools.rpc_server [tvm.exec.rpc_server's arguments]`: TVM's RPC server for
`tpat tune --rpc-tracker`, started so that its sessions can use CUDA.

Why not `python -m tvm.exec.rpc_server` as it is: the server serves every session in a child that
it *forks* (multiprocessing's default start method on Linux), and a forked child cannot use CUDA
once its parent has initialised the driver (every CUDA call in the child then fails with
cudaErrorInitializationError). On a machine with PyTorch installed, `import tvm` does exactly that
in the serving process: tvm_ffi imports torch and calls `torch.cuda.is_available()`
(`tvm_ffi._optional_torch_c_dlpack`), which calls cudaGetDeviceCount, i.e. cuInit. That is what
made every candidate and the default schedule fail on the H200 x2 run of 2026-11-28.

This launcher sets, before anything imports TVM (the serving process, a `tvm.exec.popen_worker`
child, inherits the environment):
  TVM_FFI_DISABLE_TORCH_C_DLPACK=1  tvm_ffi skips its torch DLPack add-on and the is_available() call
  PYTORCH_NVML_BASED_CUDA_CHECK=1    should anything else ask torch, it asks NVML (no cuInit)
and then runs tvm.exec.rpc_server unchanged. Nothing here imports TVM or TPAT's bridge.
"""

from __future__ import annotations

import os
import runpy
import sys

# The environment under which importing TVM leaves the CUDA driver uninitialised.
FORK_SAFE_ENV = {"TVM_FFI_DISABLE_TORCH_C_DLPACK": "1", "PYTORCH_NVML_BASED_CUDA_CHECK": "1"}


def main() -> None:
    os.environ.update(FORK_SAFE_ENV)
    sys.argv[0] = "tvm.exec.rpc_server"
    runpy.run_module("tvm.exec.rpc_server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
