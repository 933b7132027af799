"""GPU side of wgmma_attention_variants.py: every cubin of DIR/variants.json launched through cupy on
random inputs, checked against PyTorch's SDPA in float32 (max abs error < 0.05 passes), and for the
main* variants timed with the L2 flushed (median of 40, CUDA events) next to SDPA itself (fp16,
enable_gqa). Needs torch and cupy (the GPU machine has both).

    python3 wgmma_attention_harness.py DIR [name ...]      (NOTIME=1: no timing, e.g. under
                                                            compute-sanitizer)
"""

import json
import os
import sys

import cupy as cp
import torch
import torch.nn.functional as F

D = sys.argv[1]
meta = json.load(open(os.path.join(D, "variants.json")))
flush = torch.empty(256 << 20, dtype=torch.uint8, device="cuda")
failed = 0


def timed(fn, n=40):
    ts = []
    for i in range(n + 5):
        flush.zero_()
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        if i >= 5:
            ts.append(a.elapsed_time(b) * 1000)
    ts.sort()
    return ts[len(ts) // 2]


def heads4(t, n):
    """(B, L, n * hd) -> (B, n, L, hd)"""
    return t.view(t.shape[0], t.shape[1], n, -1).transpose(1, 2)


for name in sys.argv[2:] or list(meta):
    m = meta[name]
    mod = cp.RawModule(path=os.path.join(D, f"{name}.cubin"))
    fn = mod.get_function(m["kernel"])
    fn.max_dynamic_shared_size_bytes = m["smem"]
    dt = getattr(torch, m["dt"])
    torch.manual_seed(0)
    qs, ks, vs = m["shapes"]
    q, k, v = (torch.randn(s, device="cuda", dtype=dt) for s in (qs, ks, vs))
    if len(qs) == 4:
        y = torch.full([qs[0], qs[1], qs[2], vs[3]], float("nan"), device="cuda", dtype=dt)
        q4, k4, v4 = q, k, v
    else:
        qh, kvh = m["heads"]
        y = torch.full([qs[0], qs[1], qh * vs[2] // kvh], float("nan"), device="cuda", dtype=dt)
        q4, k4, v4 = heads4(q, qh), heads4(k, kvh), heads4(v, kvh)
    args = tuple(cp.from_dlpack(t) for t in (q, k, v, y))

    def launch():
        fn((m["grid"],), (m["block"],), args, shared_mem=m["smem"])

    launch()
    torch.cuda.synchronize()
    r = q4.shape[1] // k4.shape[1]
    ref = F.scaled_dot_product_attention(
        q4.float(),
        k4.float().repeat_interleave(r, 1),
        v4.float().repeat_interleave(r, 1),
        is_causal=m["causal"],
        scale=m["scale"],
    )
    y4 = y if len(qs) == 4 else heads4(y, q4.shape[1])
    e = (y4.float() - ref).abs()
    ok = bool(e.max().item() < 0.05)
    failed += not ok
    print(
        f"{name}: {'pass' if ok else 'FAIL'} max abs err {e.max().item():.4g} (mean {e.mean().item():.3g}), "
        f"NaN {torch.isnan(y).sum().item()}, |ref| max {ref.abs().max().item():.3g}",
        flush=True,
    )
    if name.startswith("main") and not os.environ.get("NOTIME"):
        t = timed(launch)
        ts = timed(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True))
        print(f"  time: wgmma kernel {t:.1f} us, SDPA {ts:.1f} us, ratio {t / ts:.3f}", flush=True)
sys.exit(1 if failed else 0)
