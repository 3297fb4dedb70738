"""PyTorch peers of bench/f16-suite.ts on the same card (run by `scripts/gpu-check.sh run f16`).

Prints one JSON object {key: {"ms": median, "tflops": ...}} with the suite's keys: torch.mm on fp16
tensors, cuDNN conv2d 3x3 (fp16, TF32, and FP32 with TF32 off) at SD1.5's levels batch 2, and
scaled_dot_product_attention on fp16 (forward, forward + backward) at 4096 tokens, d 40, 8 heads.
"""
import json
import torch
import torch.nn.functional as F

dev = "cuda"
res = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "cudnn": torch.backends.cudnn.version()}
torch.backends.cudnn.benchmark = True


def bench(fn, flops, reps=30):
    for _ in range(5):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        s = torch.cuda.Event(enable_timing=True)
        e = torch.cuda.Event(enable_timing=True)
        s.record()
        fn()
        e.record()
        torch.cuda.synchronize()
        ts.append(s.elapsed_time(e))
    ts.sort()
    ms = ts[len(ts) // 2]
    return {"ms": ms, "tflops": flops / ms / 1e9}


h16 = dict(device=dev, dtype=torch.float16)
for (m, k, n) in [(4096, 320, 1280), (4096, 1280, 320), (1024, 768, 3072), (2048, 2048, 2048)]:
    a = torch.randn(m, k, **h16)
    b = torch.randn(k, n, **h16)
    res[f"mm.{m}x{k}x{n}.f16"] = bench(lambda: torch.mm(a, b), 2.0 * m * n * k)

for (hw, c) in [(64, 320), (32, 640), (16, 1280), (8, 1280)]:
    flops = 2.0 * 2 * c * c * 9 * hw * hw
    key = f"conv3x3.{hw}x{hw}x{c}.b2"
    x = torch.randn(2, c, hw, hw, **h16)
    w = torch.randn(c, c, 3, 3, **h16) * 0.05
    res[f"{key}.f16"] = bench(lambda: F.conv2d(x, w, padding=1), flops)
    x.requires_grad_(True)
    dy = torch.randn(2, c, hw, hw, **h16)
    # dgrad alone (as bench/f16-suite.ts times ours): one forward, its graph kept, the backward timed.
    y = F.conv2d(x, w, padding=1)
    res[f"{key}.f16.dx"] = bench(lambda: torch.autograd.grad(y, x, dy, retain_graph=True), flops)
    del y
    x32 = x.detach().float()
    w32 = w.float()
    for tf32 in (True, False):
        torch.backends.cudnn.allow_tf32 = tf32
        res[f"{key}.{'tf32' if tf32 else 'f32'}"] = bench(lambda: F.conv2d(x32, w32, padding=1), flops)
    torch.backends.cudnn.allow_tf32 = False

L, H, D = 4096, 8, 40
q, k, v = (torch.randn(1, H, L, D, **h16, requires_grad=True) for _ in range(3))
do = torch.randn(1, H, L, D, **h16)
aflops = 4.0 * H * L * L * D
res[f"sdpa.{L}.d40h{H}.f16.fwd"] = bench(lambda: F.scaled_dot_product_attention(q, k, v), aflops)
res[f"sdpa.{L}.d40h{H}.f16.fwdbwd"] = bench(lambda: torch.autograd.grad(F.scaled_dot_product_attention(q, k, v), (q, k, v), do), 3.5 * aflops)
print(json.dumps(res))
