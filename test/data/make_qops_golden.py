#!/usr/bin/env python3
# Generates qops/golden.safetensors, the PyTorch reference outputs used by
# test/unit/QuantOpsTest.cpp. Needs python3-torch (1.13) and numpy; run by
# hand from any directory and commit the output. Quantized kernels run with
# torch.backends.quantized.engine = "onednn".
#
# Each case <name> stores its operands and PyTorch's result as tensors
# <name>.<role> (int8/uint8 integer representations, or float32). The
# quantization parameters of a quantized tensor are in the file's metadata
# under the tensor's name: "scale=<s>;zero_point=<z>" (per tensor) or
# "axis=<a>;scales=<s0> <s1> ...;zero_points=<z0> <z1> ..." (per channel),
# scales printed so that they read back as the same double. The test repeats
# each case's hyper-parameters, so keep both in sync.
import json
import os
import struct

import numpy as np
import torch
import torch.ao.nn.quantized as nnq
import torch.ao.nn.quantized.dynamic as nnqd
import torch.nn.functional as F
import torch.nn.intrinsic.quantized as nniq

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "qops")

TENSORS = {}
METADATA = {"engine": "onednn", "torch": torch.__version__}


def put(name, t):
    """Stores tensor t (float or quantized) as name."""
    if t.is_quantized:
        if t.qscheme() in (torch.per_tensor_affine, torch.per_tensor_symmetric):
            METADATA[name] = "scale=%r;zero_point=%d" % (t.q_scale(),
                                                         t.q_zero_point())
        else:
            scales = " ".join(repr(float(s)) for s in t.q_per_channel_scales())
            zps = " ".join(str(int(z)) for z in t.q_per_channel_zero_points())
            METADATA[name] = "axis=%d;scales=%s;zero_points=%s" % (
                t.q_per_channel_axis(), scales, zps)
        t = t.int_repr()
    TENSORS[name] = np.ascontiguousarray(t.detach().numpy())


def save(case, **tensors):
    for role, t in tensors.items():
        put("%s.%s" % (case, role), t)


def randn(seed, *shape):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float32)


def qu8(x, zero_point=37, levels=200.0):
    """x as quint8 with a data-dependent scale and a nonzero zero point."""
    scale = float(x.abs().max()) / levels
    return torch.quantize_per_tensor(x, scale, zero_point, torch.quint8)


def every_u8(scale, zero_point, repeat=2):
    """All 256 quint8 values, repeated."""
    q = torch.arange(256, dtype=torch.uint8).repeat(repeat)
    return torch._make_per_tensor_quantized_tensor(q, scale, zero_point)


def weight_per_channel(w):
    scales = (w.abs().reshape(w.shape[0], -1).max(1).values / 127).double()
    zps = torch.zeros(w.shape[0], dtype=torch.long)
    return torch.quantize_per_channel(w, scales, zps, 0, torch.qint8)


def weight_per_tensor(w):
    return torch.quantize_per_tensor(w, float(w.abs().max()) / 127, 0,
                                     torch.qint8)


def quantize_cases():
    scale = 0.0173
    ties = (torch.arange(-40, 40, dtype=torch.float64) + 0.5) * scale
    x = torch.cat([ties.float(), randn(1, 48) * 3,
                   torch.tensor([0.0, -0.0, 1e4, -1e4, 2.2, -2.2])])
    save("quant_u8", x=x, y=torch.quantize_per_tensor(x, scale, 100,
                                                       torch.quint8))
    save("quant_s8", x=x, y=torch.quantize_per_tensor(x, scale, -3,
                                                       torch.qint8))
    # Ties of an exactly representable scale.
    xt = torch.arange(-64, 64, dtype=torch.float32) * 0.25
    save("quant_ties", x=xt, y=torch.quantize_per_tensor(xt, 0.5, 7,
                                                         torch.quint8))
    q = every_u8(0.0123, 131, 1)
    save("dequant_u8", q=q, y=q.dequantize())
    w = randn(2, 5, 3, 2, 2)
    qw = torch.quantize_per_channel(
        w, torch.tensor([0.0071, 0.013, 0.021, 0.0077, 0.011],
                        dtype=torch.float64),
        torch.tensor([0, 3, -5, 0, 1]), 0, torch.qint8)
    save("dequant_pc", q=qw, y=qw.dequantize())


def conv_module(cls, x, w, b, out_scale, out_zp, **kw):
    m = cls(w.shape[1] * kw.get("groups", 1), w.shape[0], tuple(w.shape[2:]),
            bias=b is not None, **kw)
    m.set_weight_bias(w, b)
    m.scale, m.zero_point = out_scale, out_zp
    return m(x)


def conv_cases():
    x = qu8(randn(10, 2, 4, 7, 7) + 0.5)
    w = weight_per_channel(randn(11, 6, 4, 3, 3) * 0.3)
    b = randn(12, 6)
    save("conv_basic", x=x, w=w, b=b,
         y=conv_module(nnq.Conv2d, x, w, b, 0.05, 64, padding=1))
    save("conv_s2d2", x=x, w=w, b=b,
         y=conv_module(nnq.Conv2d, x, w, b, 0.04, 128, stride=2, padding=2,
                       dilation=2))
    wg = weight_per_channel(randn(13, 6, 2, 3, 2) * 0.3)
    save("conv_g2", x=x, w=wg, b=b,
         y=conv_module(nnq.Conv2d, x, wg, b, 0.03, 100, stride=(2, 1),
                       padding=(1, 0), groups=2))
    wd = weight_per_channel(randn(14, 4, 1, 3, 3) * 0.5)
    bd = randn(15, 4)
    save("conv_dw", x=x, w=wd, b=bd,
         y=conv_module(nnq.Conv2d, x, wd, bd, 0.02, 90, padding=1, groups=4))
    wt = weight_per_tensor(randn(16, 6, 4, 1, 1) * 0.3)
    save("conv_pt_nobias", x=x, w=wt,
         y=conv_module(nnq.Conv2d, x, wt, None, 0.05, 64))
    save("conv_relu", x=x, w=w, b=b,
         y=conv_module(nniq.ConvReLU2d, x, w, b, 0.03, 0, padding=1))
    # PyTorch 1.13 has no quantized conv+add: the reference is the float
    # pattern convert stands for, dequantize -> conv2d -> add -> quantize.
    other = qu8(randn(17, 2, 6, 7, 7), zero_point=120)
    ref = F.conv2d(x.dequantize(), w.dequantize(), b, padding=1) + \
        other.dequantize()
    save("conv_add", x=x, other=other, w=w, b=b,
         y=torch.quantize_per_tensor(ref, 0.06, 110, torch.quint8))
    save("conv_add_relu", x=x, other=other, w=w, b=b,
         y=torch.quantize_per_tensor(F.relu(ref), 0.04, 0, torch.quint8))


def linear_module(cls, x, w, b, out_scale, out_zp):
    m = cls(w.shape[1], w.shape[0], b is not None)
    m.set_weight_bias(w, b)
    m.scale, m.zero_point = out_scale, out_zp
    return m(x)


def linear_cases():
    x = qu8(randn(20, 3, 24) + 0.3, zero_point=60)
    w = weight_per_channel(randn(21, 10, 24) * 0.3)
    b = randn(22, 10)
    save("linear", x=x, w=w, b=b, y=linear_module(nnq.Linear, x, w, b, 0.05,
                                                  70))
    x3 = qu8(randn(23, 2, 3, 24), zero_point=128)
    wt = weight_per_tensor(randn(24, 7, 24) * 0.3)
    save("linear_pt_3d", x=x3, w=wt,
         y=linear_module(nnq.Linear, x3, wt, None, 0.08, 120))
    save("linear_relu", x=x, w=w, b=b,
         y=linear_module(nniq.LinearReLU, x, w, b, 0.04, 0))
    xf = randn(25, 5, 24) * 2 + 0.7
    wf = weight_per_channel(randn(26, 9, 24) * 0.3)
    bf = randn(27, 9)
    m = nnqd.Linear(24, 9)
    m.set_weight_bias(wf, bf)
    # The module quantizes its input with reduce_range=True.
    save("linear_dyn", x=xf, w=wf, b=bf, y=m(xf))
    packed = m._packed_params._packed_params
    save("linear_dyn_full", x=xf, w=wf, b=bf,
         y=torch.ops.quantized.linear_dynamic(xf, packed, False))
    # An all-positive input: zero is added to the range.
    xp = randn(28, 3, 24).abs() + 1.0
    wpt = weight_per_tensor(randn(29, 4, 24) * 0.3)
    m2 = nnqd.Linear(24, 4, bias_=False)
    m2.set_weight_bias(wpt, None)
    save("linear_dyn_pos", x=xp, w=wpt, y=m2(xp))


def batch_norm_cases():
    x = qu8(randn(30, 2, 3, 5, 4) * 2, zero_point=90)
    mean = randn(31, 3)
    var = randn(32, 3).abs() + 0.5
    weight = randn(33, 3)
    bias = randn(34, 3)
    save("bn", x=x, mean=mean, var=var, weight=weight, bias=bias,
         y=torch.ops.quantized.batch_norm2d(x, weight, bias, mean, var, 1e-5,
                                            0.03, 100))
    save("bn_relu", x=x, mean=mean, var=var, weight=weight, bias=bias,
         y=torch.ops.quantized.batch_norm2d_relu(x, weight, bias, mean, var,
                                                 1e-3, 0.02, 0))


def binary_cases():
    a = every_u8(0.031, 100, 4).reshape(4, 2, 16, 8)
    g = torch.Generator().manual_seed(40)
    perm = torch.randperm(1024, generator=g)
    bq = torch.arange(256, dtype=torch.uint8).repeat(4)[perm]
    b = torch._make_per_tensor_quantized_tensor(bq, 0.027, 140)
    b = b.reshape(4, 2, 16, 8)
    save("add", a=a, b=b, y=torch.ops.quantized.add(a, b, 0.045, 120))
    save("add_relu", a=a, b=b,
         y=torch.ops.quantized.add_relu(a, b, 0.03, 10))
    save("mul", a=a, b=b, y=torch.ops.quantized.mul(a, b, 0.6, 128))
    c = qu8(randn(41, 4, 3, 16, 8), zero_point=100)
    ca = torch.quantize_per_tensor(a.dequantize(), c.q_scale(), 100,
                                   torch.quint8)
    save("cat", a=ca, c=c,
         y=torch.ops.quantized.cat([ca, c], 1, c.q_scale(), 100))
    # Inputs with their own qparams are requantized.
    save("cat_requant", a=a, c=c,
         y=torch.ops.quantized.cat([a, c], 1, 0.05, 128))


def unary_cases():
    x = every_u8(0.047, 130, 4).reshape(8, 128)
    save("sigmoid", x=x, y=torch.sigmoid(x))
    save("hardsigmoid", x=x, y=F.hardsigmoid(x))
    save("tanh", x=x, y=torch.tanh(x))
    save("softmax", x=x, y=torch.ops.quantized.softmax(x, 1, 1.0 / 256, 0))
    xs = every_u8(0.11, 120, 1).reshape(4, 8, 8)
    save("softmax_d0", x=xs,
         y=torch.ops.quantized.softmax(xs, 0, 1.0 / 256, 0))
    save("hardswish", x=x, y=torch.ops.quantized.hardswish(x, 0.02, 30))
    save("leaky_relu", x=x,
         y=torch.ops.quantized.leaky_relu(x, 0.1, False, 0.03, 80))
    save("relu", x=x, y=F.relu(x))
    save("relu6", x=x, y=F.relu6(x))
    save("hardtanh", x=x, y=F.hardtanh(x, -0.5, 0.75))
    x8 = torch.quantize_per_tensor(randn(42, 4, 64) * 4, 0.05, -10,
                                   torch.qint8)
    save("sigmoid_s8", x=x8, y=torch.sigmoid(x8))
    save("tanh_s8", x=x8, y=torch.tanh(x8))
    save("relu_s8", x=x8, y=F.relu(x8))


def pool_cases():
    x = qu8(randn(50, 2, 3, 9, 10), zero_point=77)
    save("maxpool_k3s2p1", x=x, y=F.max_pool2d(x, 3, 2, 1))
    save("maxpool_d2_ceil", x=x, y=F.max_pool2d(x, 3, 2, 1, dilation=2,
                                                ceil_mode=True))
    save("avgpool_k2s2", x=x, y=F.avg_pool2d(x, 2, 2))
    save("avgpool_k2s1", x=x, y=F.avg_pool2d(x, 2, 1))
    save("avgpool_k3s2p1", x=x, y=F.avg_pool2d(x, 3, 2, 1))
    save("avgpool_nocount", x=x,
         y=F.avg_pool2d(x, 3, 2, 1, count_include_pad=False))
    save("avgpool_ceil", x=x, y=F.avg_pool2d(x, 2, 2, 1, ceil_mode=True))
    save("avgpool_div", x=x, y=F.avg_pool2d(x, 2, 2, 1, divisor_override=3))
    save("adaptive_2x3", x=x, y=F.adaptive_avg_pool2d(x, (2, 3)))
    save("adaptive_1", x=x, y=F.adaptive_avg_pool2d(x, 1))
    save("adaptive_4", x=x, y=F.adaptive_avg_pool2d(x, 4))
    save("mean_hw", x=x, y=x.mean((2, 3), keepdim=True))
    save("mean_w", x=x, y=x.mean(-1))
    x8 = torch.quantize_per_tensor(randn(51, 1, 2, 8, 8) * 3, 0.04, 5,
                                   torch.qint8)
    save("maxpool_s8", x=x8, y=F.max_pool2d(x8, 2, 2))
    save("avgpool_s8", x=x8, y=F.avg_pool2d(x8, 2, 2))
    save("adaptive_s8", x=x8, y=F.adaptive_avg_pool2d(x8, 3))


# Cases chosen where plausible formulas round differently, so that the test
# pins the one PyTorch uses. The searches are seeded, hence deterministic.
F32 = np.float32


def fma_dequant(q, scale, zp):
    """fma(scale, q, scale * -zp) in float, as the vectorized kernels do."""
    s = F32(scale)
    return (np.float64(s) * q + np.float64(s * -F32(zp))).astype(F32)


def mul_dequant(q, scale, zp):
    return (q.astype(F32) - F32(zp)) * F32(scale)


def quantize_np(v, scale, zp):
    return np.clip(np.rint(v * (F32(1) / F32(scale))) + zp, 0, 255)


def requant_search(x, x_scale, out_scale, out_zp, count, seed):
    """Linear weights whose output differs between acc * (x_scale * w_scale)
    + bias requantized in float and oneDNN's order."""
    rng = np.random.default_rng(seed)
    found = []
    while len(found) < count:
        w = rng.integers(-127, 128, (4096, x.shape[1]))
        ws = rng.uniform(0.001, 0.02, 4096)
        b = rng.standard_normal(4096).astype(F32)
        acc = (x @ w.T).astype(F32)
        naive = np.rint((acc * (F32(x_scale) * ws.astype(F32)) + b) *
                        (F32(1) / F32(out_scale)))
        bsc = F32(1.0 / x_scale) * (1.0 / ws).astype(F32)
        onednn = np.rint((acc + b * bsc) * (F32(1.0 / out_scale) / bsc) +
                         F32(out_zp)) - out_zp
        for i in np.nonzero((naive != onednn).any(0))[0][:count - len(found)]:
            found.append((w[i], ws[i], b[i]))
    w = torch.tensor(np.stack([f[0] for f in found]), dtype=torch.float32)
    ws = torch.tensor([f[1] for f in found], dtype=torch.float64)
    qw = torch._make_per_channel_quantized_tensor(
        w.to(torch.int8), ws, torch.zeros(count, dtype=torch.long), 0)
    return qw, torch.tensor([f[2] for f in found])


def pair_search(a_q, b_q, differs, count):
    """Up to count (a, b) pairs of all 256 x 256 where differs(a, b) holds,
    padded with ordinary pairs to a multiple of 64 elements."""
    a, b = np.meshgrid(np.arange(256), np.arange(256))
    a, b = a.ravel(), b.ravel()
    hit = np.nonzero(differs(a, b))[0][:count]
    rest = np.setdiff1d(np.arange(a.size), hit)[:(-hit.size) % 64 + 64]
    idx = np.concatenate([hit, rest])
    mk = lambda v, q: torch._make_per_tensor_quantized_tensor(
        torch.tensor(v[idx], dtype=torch.uint8), q[0], q[1])
    return mk(a, a_q), mk(b, b_q)


def adversarial_cases():
    q = torch.arange(256, dtype=torch.uint8)
    xq = torch.stack([q, q.flip(0)], 1)
    x = torch._make_per_tensor_quantized_tensor(xq, 0.0123, 131)
    w, b = requant_search(xq.numpy().astype(np.int64) - 131, 0.0123, 0.05, 64,
                          16, 1234)
    save("linear_requant", x=x, w=w, b=b,
         y=linear_module(nnq.Linear, x, w, b, 0.05, 64))
    aq, bq, out = (0.031, 100), (0.027, 140), (0.05, 120)
    fma = lambda a, b_: quantize_np(
        fma_dequant(a, *aq) + fma_dequant(b_, *bq), *out)
    plain = lambda a, b_: quantize_np(
        mul_dequant(a, *aq) + mul_dequant(b_, *bq), *out)
    a, b_ = pair_search(aq, bq, lambda a, b_: fma(a, b_) != plain(a, b_), 64)
    save("add_adv", a=a, b=b_, y=torch.ops.quantized.add(a, b_, *out))
    mq, nq, mout = (0.05, 128), (0.05, 128), (0.15, 128)
    as_int = lambda a, b_: np.clip(np.rint(
        ((a - mq[1]) * (b_ - nq[1])).astype(F32) *
        (F32(mq[0]) * F32(nq[0]) * (F32(1) / F32(mout[0])))) + mout[1], 0, 255)
    as_float = lambda a, b_: quantize_np(
        mul_dequant(a, *mq) * mul_dequant(b_, *nq), *mout)
    a, b_ = pair_search(mq, nq, lambda a, b_: as_int(a, b_) != as_float(a, b_),
                        128)
    save("mul_adv", a=a, b=b_, y=torch.ops.quantized.mul(a, b_, *mout))


def write(path):
    names = sorted(TENSORS)
    dtypes = {np.dtype("float32"): "F32", np.dtype("int8"): "I8",
              np.dtype("uint8"): "U8"}
    header, buf = {}, b""
    for name in names:
        a = TENSORS[name]
        data = a.astype(a.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dtypes[a.dtype], "shape": list(a.shape),
                        "data_offsets": [len(buf), len(buf) + len(data)]}
        buf += data
    header["__metadata__"] = METADATA
    text = json.dumps(header, separators=(",", ":"), sort_keys=True)
    text += " " * (-len(text) % 8)
    raw = text.encode("utf-8")
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw + buf)


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(1)
    torch.backends.quantized.engine = "onednn"
    with torch.no_grad():
        quantize_cases()
        conv_cases()
        linear_cases()
        batch_norm_cases()
        binary_cases()
        unary_cases()
        pool_cases()
        adversarial_cases()
    write(os.path.join(OUT, "golden.safetensors"))


if __name__ == "__main__":
    main()
