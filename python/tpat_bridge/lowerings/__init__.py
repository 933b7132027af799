"""TPAT's own TVM lowerings: one module per op family, one registry table (registry.py), the IR
helpers (ir.py), the operands a lowering sees (operands.py), the CUDA prelude of device helpers
(prelude.py) and the refusal table (refusals.py). docs/lowerings.md."""
