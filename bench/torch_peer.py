"""Times the bench shapes with PyTorch on the same card (run by scripts/gpu-check.sh on a lent GPU).

Prints one JSON object: {name: {"ms": median, "gflops": ...}} for matmul (TF32 off and on), conv2d,
scaled_dot_product_attention and group_norm, so every ratio in the device report is one card, one run.
"""
import json, sys, time
import torch
import torch.nn.functional as F

dev = "cuda"
res = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__}

def bench(fn, flops=0.0, nbytes=0.0, reps=30):
    for _ in range(5):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        s = torch.cuda.Event(enable_timing=True); e = torch.cuda.Event(enable_timing=True)
        s.record(); fn(); e.record(); torch.cuda.synchronize()
        ts.append(s.elapsed_time(e))
    ts.sort(); ms = ts[len(ts) // 2]
    out = {"ms": ms}
    if flops: out["gflops"] = flops / ms / 1e6
    if nbytes: out["gbps"] = nbytes / ms / 1e6
    return out

for tf32 in (False, True):
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    tag = "tf32" if tf32 else "fp32"
    for (m, k, n) in [(256, 256, 256), (512, 512, 512), (1024, 1024, 1024), (2048, 2048, 2048), (4096, 320, 320), (4096, 320, 1280), (77, 768, 768)]:
        a = torch.randn(m, k, device=dev); b = torch.randn(k, n, device=dev)
        res[f"matmul.{m}x{k}x{n}.{tag}"] = bench(lambda: torch.mm(a, b), 2.0 * m * n * k)
    for (c, hw) in [(320, 64), (640, 32)]:
        x = torch.randn(1, c, hw, hw, device=dev); w = torch.randn(c, c, 3, 3, device=dev)
        res[f"conv3x3.{hw}x{hw}x{c}.{tag}"] = bench(lambda: F.conv2d(x, w, padding=1), 2.0 * c * c * 9 * hw * hw)
        w1 = torch.randn(c, c, 1, 1, device=dev)
        res[f"conv1x1.{hw}x{hw}x{c}.{tag}"] = bench(lambda: F.conv2d(x, w1), 2.0 * c * c * hw * hw)
torch.backends.cuda.matmul.allow_tf32 = False
for (lq, lk) in [(4096, 4096), (4096, 77)]:
    q = torch.randn(1, 8, lq, 40, device=dev); k = torch.randn(1, 8, lk, 40, device=dev); v = torch.randn(1, 8, lk, 40, device=dev)
    res[f"attention.{lq}x{lk}.d40h8"] = bench(lambda: F.scaled_dot_product_attention(q, k, v), 4.0 * 8 * lq * lk * 40)
x = torch.randn(2, 320, 64, 64, device=dev)
res["groupnorm.2x320x64x64.g32"] = bench(lambda: F.group_norm(x, 32), nbytes=2 * x.numel() * 4)
print(json.dumps(res))
