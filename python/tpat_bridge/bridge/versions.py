"""Versions of the engines the bridge can reach (used in cache keys and reports)."""

import importlib.metadata as md
import sys


def _dist(name):
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


def versions(_request: dict | None = None) -> dict:
    return {
        "python": sys.version.split()[0],
        "onnx": _dist("onnx"),
        "onnxruntime": _dist("onnxruntime"),
        "tvm": _dist("apache-tvm"),
        "tvm_ffi": _dist("apache-tvm-ffi"),
        "tensorrt": _dist("tensorrt") or _dist("tensorrt-cu13") or _dist("tensorrt-cu12"),
        "tensorrt_rtx": _dist("tensorrt-rtx-cu13-bindings"),
    }
