"""Planning a one-node ONNX model into a KernelPlan: node loading (load, shapes, safe_load), the Relax
import (relax_import) and TVM's CUDA pipeline with capture points (pipeline), the host-IR interpreter
(interp), plan expressions (expr) and the plan command (plan)."""
