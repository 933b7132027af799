"""The tensor element types TPAT handles: one table (name, numpy type, ONNX enum, size, C type).

Every dtype question in the package (the planner's supported types and byte sizes, the ONNX element
type of a graph input, the numpy type reference data is read with, a lowering's vector width) is
answered from `DTYPES`. ONNX enums are TensorProto.DataType values (tests/python/test_dtypes.py
checks them against onnx); C types are the ones of TVM's CUDA source.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import PlanError


@dataclass(frozen=True)
class DType:
    name: str  # TVM / plan spelling
    numpy: str  # numpy dtype name (bfloat16 has none: its bits as uint16)
    onnx: int  # onnx.TensorProto.DataType
    size: int  # bytes per element
    ctype: str  # C / CUDA type


DTYPES = {
    d.name: d
    for d in (
        DType("float32", "float32", 1, 4, "float"),
        DType("float16", "float16", 10, 2, "half"),
        DType("bfloat16", "uint16", 16, 2, "nv_bfloat16"),
        DType("float64", "float64", 11, 8, "double"),
        DType("int8", "int8", 3, 1, "int8_t"),
        DType("uint8", "uint8", 2, 1, "uint8_t"),
        DType("int16", "int16", 5, 2, "int16_t"),
        DType("uint16", "uint16", 4, 2, "uint16_t"),
        DType("int32", "int32", 6, 4, "int32_t"),
        DType("uint32", "uint32", 12, 4, "uint32_t"),
        DType("int64", "int64", 7, 8, "int64_t"),
        DType("uint64", "uint64", 13, 8, "uint64_t"),
        DType("bool", "bool", 9, 1, "bool"),
    )
}

BY_ONNX = {d.onnx: d for d in DTYPES.values()}
FLOATS = ("float32", "float16", "bfloat16")  # the types the float kernels compute in float32


def size(name: str) -> int:
    """Bytes per element of a supported dtype (KeyError otherwise)."""
    return DTYPES[name].size


def sizes(*names: str) -> dict:
    """{name: bytes} for the given dtypes: a lowering's supported set with its element sizes."""
    return {n: DTYPES[n].size for n in names}


def from_onnx(elem_type: int):
    """The dtype name of an ONNX element type, or None when TPAT does not handle it."""
    d = BY_ONNX.get(elem_type)
    return d.name if d else None


def onnx_dtype(elem_type: int) -> str:
    """The dtype name of an ONNX element type; PlanError(unsupported_dtype) when TPAT has none."""
    d = from_onnx(elem_type)
    if d is None:
        raise PlanError("unsupported_dtype", f"ONNX element type {elem_type} is not supported")
    return d


def numpy_dtype(name: str) -> np.dtype:
    return np.dtype(DTYPES[name].numpy)
