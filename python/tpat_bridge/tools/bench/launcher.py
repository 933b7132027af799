"""A plugin's launcher (OUT/plugins/build/libtpat_kernels.so) through ctypes: the six C functions
of plugin-runtime/include/tpat_launcher.h, with prebuilt argument arrays for cheap calls."""

from __future__ import annotations

import ctypes
import os

from tpat_bridge.errors import BridgeError

TPAT_MAX_DIMS = 8


class TpatDims(ctypes.Structure):
    _fields_ = [("nb_dims", ctypes.c_int32), ("d", ctypes.c_int64 * TPAT_MAX_DIMS)]


def _dims_array(shapes):
    arr = (TpatDims * max(1, len(shapes)))()
    for i, s in enumerate(shapes):
        if len(s) > TPAT_MAX_DIMS:
            raise BridgeError("input", f"rank {len(s)} > {TPAT_MAX_DIMS}")
        arr[i].nb_dims = len(s)
        for k, d in enumerate(s):
            arr[i].d[k] = int(d)
    return arr


_LIBS = {}


class Launcher:
    """The six C functions of one plugin, with prebuilt argument arrays for cheap calls."""

    def __init__(self, lib_path, prefix):
        lib_path = os.path.abspath(lib_path)
        if lib_path not in _LIBS:
            if not os.path.isfile(lib_path):
                raise BridgeError("input", f"bench: no {lib_path} (run tpat build)")
            _LIBS[lib_path] = ctypes.CDLL(lib_path)
        lib = _LIBS[lib_path]
        P = ctypes.POINTER

        def fn(name, res, args):
            try:
                f = getattr(lib, f"{prefix}_{name}")
            except AttributeError:
                raise BridgeError("input", f"bench: {lib_path} lacks {prefix}_{name}")
            f.restype = res
            f.argtypes = args
            return f

        self.output_dims = fn("output_dims", ctypes.c_int, [P(TpatDims), P(TpatDims)])
        self.workspace_size = fn("workspace_size", ctypes.c_int, [P(TpatDims), P(ctypes.c_size_t)])
        self.initialize = fn("initialize", ctypes.c_int, [])
        self.enqueue_fn = fn(
            "enqueue",
            ctypes.c_int,
            [P(TpatDims), P(ctypes.c_void_p), P(ctypes.c_void_p), ctypes.c_void_p, ctypes.c_int32, ctypes.c_void_p],
        )
        self.terminate = fn("terminate", None, [])
        self.num_tactics = fn("num_tactics", ctypes.c_int, [])

    def bind(self, in_shapes, in_ptrs, out_ptrs, workspace_ptr):
        self._dims = _dims_array(in_shapes)
        self._ins = (ctypes.c_void_p * max(1, len(in_ptrs)))(*in_ptrs)
        self._outs = (ctypes.c_void_p * max(1, len(out_ptrs)))(*out_ptrs)
        self._ws = ctypes.c_void_p(workspace_ptr or None)

    def enqueue(self, tactic, stream):
        return self.enqueue_fn(self._dims, self._ins, self._outs, self._ws, tactic, ctypes.c_void_p(stream or None))
