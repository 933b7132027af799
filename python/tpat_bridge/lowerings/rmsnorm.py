"""TPAT's own TVM lowering of ONNX RMSNormalization (opset 23): one warp per row.

TVM 0.27's Relax frontend has no RMSNormalization converter (the plan answers `tvm_error`), and
TensorRT 10 rejects the op. The kernel is LayerNormalization's (layernorm.py) with the
mean left out: the tensor is seen as (rows, N) with N = prod(X.shape[axis:]), a warp (2-8 warps for
long rows) keeps a row in registers (up to 16-byte vector loads), sums x^2 in float32 by warp shuffles and writes
y = x * rsqrt(sum / N + epsilon) * scale, rounded once to Y's type. X, Scale and Y of different
types are declined (the schema allows Scale of another type V, but its function body multiplies
X's type by V and ONNX Runtime refuses such a model). Scale has N elements (vector loads) or
broadcasts to X.shape[axis:]. Lowered when: any axis (negative too), N static and at most
lowering_layernorm.MAX_N, stash_type 1, float32 / float16 / bfloat16.
"""

from __future__ import annotations

from .layernorm import NormLowering

RMS_NORM = NormLowering("rms_norm", "RMSNormalization", rms=True)
