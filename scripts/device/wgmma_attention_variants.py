"""Plans TPAT's Hopper (wgmma) Attention kernel for a few shapes (target sm_90a), compiles each to a
cubin with nvcc -arch=sm_90a and writes DIR/variants.json for wgmma_attention_harness.py, which
runs them on the GPU (through cupy) against PyTorch. Development machine, from the repository root:

    .venv/bin/python scripts/device/wgmma_attention_variants.py DIR [name ...]

Names: main (the suite's GQA prefill), edge (partial row and key tiles, batch 2), bf16 (head 64,
GQA 1, not causal, scale 0.2), r3 (3-D, head 64, causal), main_k32 / main_k128 (other key tiles).
"""

import json
import os
import subprocess
import sys

sys.path.insert(0, "python")
sys.path.insert(0, "tests/python")
import onnx  # noqa: E402
import tpat_bridge.lowerings.attention as att  # noqa: E402
from attention_cases import attention_model as A  # noqa: E402
from tpat_bridge.planning.plan import handle_plan  # noqa: E402

NVCC = os.environ.get("NVCC", ".venv/lib/python3.11/site-packages/nvidia/cu13/bin/nvcc")
MAIN = ([1, 32, 1024, 128], [1, 8, 1024, 128], [1, 8, 1024, 128])
V = {
    "main": dict(m=A(*MAIN, "float16", is_causal=1), causal=True),
    "main_k32": dict(m=A(*MAIN, "float16", is_causal=1), causal=True, keys=32),
    "main_k128": dict(m=A(*MAIN, "float16", is_causal=1), causal=True, keys=128),
    "edge": dict(m=A([2, 8, 200, 128], [2, 2, 200, 128], [2, 2, 200, 128], "float16", is_causal=1), causal=True),
    "bf16": dict(
        m=A([1, 4, 300, 64], [1, 4, 300, 64], [1, 4, 300, 64], "bfloat16", scale=0.2), causal=False, scale=0.2
    ),
    "r3": dict(
        m=A([1, 130, 512], [1, 130, 128], [1, 130, 128], "float16", is_causal=1, q_num_heads=8, kv_num_heads=2),
        causal=True,
        heads=(8, 2),
    ),
}


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    meta_path = os.path.join(out, "variants.json")
    meta = json.load(open(meta_path)) if os.path.exists(meta_path) else {}
    keys0 = att.WG_KEYS
    for name in sys.argv[2:] or list(V):
        d = V[name]
        att.WG_KEYS = d.get("keys", keys0)
        path = os.path.join(out, f"{name}.onnx")
        onnx.save(d["m"], path)
        ans = handle_plan({"model_path": path, "target": "sm_90a", "lowering": "tpat"})
        assert ans["ok"], ans
        p = ans["plan"]
        assert "wgmma" in p["lowering_detail"], p["lowering_detail"]
        cu = os.path.join(out, f"{name}.cu")
        open(cu, "w").write(p["cuda_source"])
        cmd = [NVCC, *p["compile_flags"], "-arch=sm_90a", "-cubin", "-Xptxas", "-v", "-o", cu[:-3] + ".cubin", cu]
        r = subprocess.run(cmd, capture_output=True, text=True)
        print(
            name,
            r.returncode,
            [ln for ln in r.stderr.splitlines() if "registers" in ln or "C7514" in ln or "error" in ln],
        )
        st = p["steps"][0]
        shapes = [[x.dim_value for x in i.type.tensor_type.shape.dim] for i in d["m"].graph.input]
        meta[name] = dict(
            kernel=st["kernel"],
            grid=st["grid"][0]["int"],
            block=st["block"][0]["int"],
            smem=st["dynamic_shared_memory_bytes"]["int"],
            shapes=shapes,
            heads=d.get("heads"),
            causal=d["causal"],
            scale=d.get("scale"),
            dt=p["inputs"][0]["dtype"],
        )
    att.WG_KEYS = keys0
    json.dump(meta, open(meta_path, "w"), indent=1)


if __name__ == "__main__":
    main()
