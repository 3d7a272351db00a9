#!/usr/bin/env python3
# Generates the QAT golden files in qat/: the straight-through-estimator
# gradient of fake quantization (used by test/unit/FakeQuantGradTest.cpp) and
# one training step of a fused QAT ConvBn2d (for the training tests). Needs
# python3-torch (1.13); run by hand from any directory and commit the output.
# Deterministic: fixed seeds, one thread, AVX2 kernels.
#
# Fake quantization (fq_params.json holds every case's scale, zero point,
# range, axis; per-tensor scales are Python floats, i.e. doubles, that the
# kernel rounds to float):
#   fq_pt_{x,g,y,dx}.npy: f32 [8, 16], quint8 per tensor, scale 0.05, zero
#     point 3, range 0..255: the input x (random values inside and far
#     outside the range, +-inf, nan, exact ties, and the rounding boundaries
#     (quant_min - zp - 0.5) * scale, (quant_max - zp + 0.5) * scale, the
#     exact edges (quant_min - zp) * scale, (quant_max - zp) * scale, each
#     with its float neighbours 1..3 ulps either side), the upstream gradient
#     g, y = torch.fake_quantize_per_tensor_affine(x, ...) and
#     dx = x.grad after y.backward(g) (= g * mask, so -0.0 where g < 0 and
#     the mask is 0);
#   fq_pt8_{x,g,y,dx}.npy: the same for qint8, scale 0.05, zero point 0,
#     range -128..127;
#   fq_pc_{x,g,y,dx}.npy: f32 [4, 6, 12], per channel along axis 0, qint8,
#     range -128..127, through torch.fake_quantize_per_channel_affine;
#   fq_pc_scales.npy: its f32 [4] scales (PyTorch's per-channel fake quant
#     only accepts float32 scales, so these are the exact values used);
#   fq_pc_zps.npy: its i32 [4] zero points (it only accepts int32 ones).
#
# Fused QAT ConvBn2d (torch.nn.intrinsic.qat.ConvBn2d; 1.13 has no
# torch.ao.nn.intrinsic.qat, the class later moved there unchanged). Module:
# in 3, out 4, kernel 3, stride 1, padding 1, bias False, eps 1e-5,
# momentum 0.1, qconfig get_default_qat_qconfig("x86") of which only the
# weight fake quant lives in the module: FusedMovingAvgObsFakeQuantize with
# MovingAveragePerChannelMinMaxObserver (averaging constant 0.01), qint8
# -128..127, per_channel_symmetric, axis 0, reduce_range False.
# Forward (_forward -> _forward_approximate; the slow path is off), with
# W the conv weight, gamma/beta bn.weight/bn.bias, rm/rv bn's running
# mean/var BEFORE the step, b the optional conv bias, per output channel c:
#   running_std = sqrt(rv + eps)                   (buffer: no gradient)
#   sf = gamma / running_std                       (NOT detached: gamma gets
#                                                   gradient through sf)
#   Wq = fq(W * sf[c])                             (per-channel fake quant)
#   conv = conv2d(x, Wq, zero bias)
#   conv_orig = conv / sf[c] (+ b[c] if bias)      (bias added after the
#                                                   division, before bn)
#   y = bn(conv_orig)
# In train() with freeze_bn False, bn is an ordinary BatchNorm2d in training
# mode: it normalises with the BATCH statistics of conv_orig over (N, H, W),
# mean m and biased var v: y = gamma * (conv_orig - m) / sqrt(v + eps) + beta,
# then updates rm <- 0.9 rm + 0.1 m, rv <- 0.9 rv + 0.1 v * n / (n - 1)
# (n = N*H*W = 72). running_var only sets the weight's scale factor (so the
# quantised weight resembles the inference-time folded weight); the batch
# variance does the normalisation. The conv bias cancels in training-mode bn
# (its gradient is zero up to rounding). With freeze_bn (freeze_bn_stats():
# bn.training False) bn uses rm/rv and updates nothing:
# y = gamma * (conv_orig - rm) / sqrt(rv + eps) + beta.
# The weight fake quant (torch.fused_moving_avg_obs_fake_quant, no FBGEMM in
# this build so quant_utils::ChooseQuantizationParams) runs before the fake
# quantisation on the scaled weight w = W * sf: per channel, its running
# min/max start at +-inf, so the first step takes mn/mx = min/max of w[c]
# (later: r + 0.01 (cur - r), in float); then, if mn < 0 < mx,
# s = max(float(|mn| / 128), float(|mx| / 127)) (float division),
# mn' = float(-128 s), mx' = float(127 s), scale = float((double(mx') -
# double(mn')) / 255), zero point = nearbyint(-0.5) = 0; then
# fake_quantize_per_channel_affine(w, scale, zp, 0, -128, 127). Its backward
# is the STE: dw = dWq * mask (no gradient to scale). The fake quant keeps
# observing (and changing its scale) in freeze_bn mode too.
#   cbn_x: f32 [2, 3, 6, 6] input; cbn_r: f32 [2, 4, 6, 6], the loss is
#     (y * r).sum();
#   cbn_conv_weight [4, 3, 3, 3], cbn_bn_weight [4] (uniform 0.5..1.5),
#     cbn_bn_bias [4], cbn_bn_running_mean_before [4],
#     cbn_bn_running_var_before [4] (uniform 0.5..2): the state before;
#   cbn_y [2, 4, 6, 6]: the output; cbn_dx, cbn_dconv_weight, cbn_dbn_weight,
#     cbn_dbn_bias: the gradients of the loss;
#   cbn_bn_running_mean_after, cbn_bn_running_var_after: bn's buffers after;
#   cbn_wfq_scale (f32 [4]), cbn_wfq_zero_point (i32 [4]), cbn_wfq_min_val,
#     cbn_wfq_max_val (f32 [4]): the weight fake quant's state after the step;
#   cbn_wfq_weight [4, 3, 3, 3]: the fake-quantised scaled weight Wq;
#   cbnf_{y,dx,dconv_weight,dbn_weight,dbn_bias}: the same step from the same
#     state (fresh fake quant) after freeze_bn_stats(); bn's buffers stay as
#     cbn_bn_running_*_before;
#   cbnb_*: the unfrozen step with bias=True: every cbn_* file above (same
#     x, r and state) plus cbnb_conv_bias [4] and its gradient
#     cbnb_dconv_bias.
import json
import os

os.environ["ATEN_CPU_CAPABILITY"] = "avx2"

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.intrinsic.qat as nniqat  # noqa: E402
import warnings  # noqa: E402

warnings.filterwarnings("ignore")
torch.set_num_threads(1)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "qat")
F32 = np.float32


def save(name, a):
    np.save(os.path.join(OUT, name + ".npy"), np.ascontiguousarray(a))


def around(v, k=3):
    """v and its k float neighbours on either side."""
    v = F32(v)
    r = [v]
    up = down = v
    for _ in range(k):
        up = np.nextafter(up, F32(np.inf))
        down = np.nextafter(down, F32(-np.inf))
        r += [up, down]
    return r


def edge_values(scale, zp, qmin, qmax):
    """The rounding boundaries just outside the range and the range's own
    edges, each with its neighbours: where the mask flips."""
    r = []
    for q in (qmin - zp - 0.5, qmax - zp + 0.5, qmin - zp, qmax - zp,
              qmin - zp + 0.5, qmax - zp - 0.5):
        r += around(q * scale)
    return r


def values(n, scale, zp, qmin, qmax, rng):
    """n inputs: edges, specials, ties, then random values that reach past
    both ends of the representable range."""
    lo, hi = (qmin - zp) * scale, (qmax - zp) * scale
    span = hi - lo
    v = edge_values(scale, zp, qmin, qmax)
    v += [np.inf, -np.inf, np.nan, 1e30, -1e30, 1e3, -1e3, 0.0, -0.0]
    ks = rng.integers(qmin - zp - 5, qmax - zp + 5, 10)
    v += [F32((k + 0.5) * scale) for k in ks]
    rest = n - len(v)
    assert rest > 0
    v += list(rng.uniform(lo - 0.3 * span, hi + 0.3 * span, rest))
    v = np.array(v, dtype=F32)
    rng.shuffle(v)
    return v


def fq_case(prefix, x, g, fn):
    xt = torch.from_numpy(x).requires_grad_(True)
    y = fn(xt)
    y.backward(torch.from_numpy(g))
    save(prefix + "_x", x)
    save(prefix + "_g", g)
    save(prefix + "_y", y.detach().numpy())
    save(prefix + "_dx", xt.grad.numpy())


def fake_quant_cases(rng):
    params = {}
    for prefix, scale, zp, qmin, qmax, dtype in (
            ("fq_pt", 0.05, 3, 0, 255, "quint8"),
            ("fq_pt8", 0.05, 0, -128, 127, "qint8")):
        x = values(128, scale, zp, qmin, qmax, rng).reshape(8, 16)
        g = rng.standard_normal(x.shape).astype(F32)
        fq_case(prefix, x, g, lambda t: torch.fake_quantize_per_tensor_affine(
            t, scale, zp, qmin, qmax))
        params[prefix] = {"scale": scale, "zero_point": zp, "quant_min": qmin,
                          "quant_max": qmax, "dtype": dtype}
    scales = np.array([0.02, 0.1, 0.0037, 0.5], dtype=F32)
    zps = np.array([0, -7, 15, 100], dtype=np.int32)
    qmin, qmax = -128, 127
    x = np.stack([values(72, float(s), int(z), qmin, qmax, rng)
                  for s, z in zip(scales, zps)]).reshape(4, 6, 12)
    g = rng.standard_normal(x.shape).astype(F32)
    fq_case("fq_pc", x, g, lambda t: torch.fake_quantize_per_channel_affine(
        t, torch.from_numpy(scales), torch.from_numpy(zps), 0, qmin, qmax))
    save("fq_pc_scales", scales)
    save("fq_pc_zps", zps)
    params["fq_pc"] = {"scales": [float(s) for s in scales],
                       "zero_points": [int(z) for z in zps], "axis": 0,
                       "quant_min": qmin, "quant_max": qmax, "dtype": "qint8"}
    with open(os.path.join(OUT, "fq_params.json"), "w") as f:
        json.dump(params, f, indent=1)
        f.write("\n")


def convbn_state(rng, bias):
    s = {
        "conv_weight": (0.3 * rng.standard_normal((4, 3, 3, 3))).astype(F32),
        "bn_weight": rng.uniform(0.5, 1.5, 4).astype(F32),
        "bn_bias": (0.2 * rng.standard_normal(4)).astype(F32),
        "bn_running_mean_before": (0.3 * rng.standard_normal(4)).astype(F32),
        "bn_running_var_before": rng.uniform(0.5, 2.0, 4).astype(F32),
    }
    if bias:
        s["conv_bias"] = (0.2 * rng.standard_normal(4)).astype(F32)
    return s


def convbn_step(state, x, r, bias, freeze):
    qconfig = torch.ao.quantization.get_default_qat_qconfig("x86")
    m = nniqat.ConvBn2d(3, 4, 3, stride=1, padding=1, bias=bias, eps=1e-5,
                        momentum=0.1, freeze_bn=False, qconfig=qconfig)
    m.train()
    with torch.no_grad():
        m.weight.copy_(torch.from_numpy(state["conv_weight"]))
        m.bn.weight.copy_(torch.from_numpy(state["bn_weight"]))
        m.bn.bias.copy_(torch.from_numpy(state["bn_bias"]))
        m.bn.running_mean.copy_(
            torch.from_numpy(state["bn_running_mean_before"]))
        m.bn.running_var.copy_(
            torch.from_numpy(state["bn_running_var_before"]))
        if bias:
            m.bias.copy_(torch.from_numpy(state["conv_bias"]))
    if freeze:
        m.freeze_bn_stats()
    assert not m._enable_slow_path_for_better_numerical_stability
    # Capture the fake-quantised weight the forward actually used.
    # (The hook must return None: a returned value replaces the output.)
    seen = {}

    def keep(mod, inp, out):
        seen["wq"] = out.detach().clone()

    m.weight_fake_quant.register_forward_hook(keep)
    xt = torch.from_numpy(x).requires_grad_(True)
    y = m(xt)
    (y * torch.from_numpy(r)).sum().backward()
    out = {
        "y": y.detach().numpy(),
        "dx": xt.grad.numpy(),
        "dconv_weight": m.weight.grad.numpy(),
        "dbn_weight": m.bn.weight.grad.numpy(),
        "dbn_bias": m.bn.bias.grad.numpy(),
        "bn_running_mean_after": m.bn.running_mean.numpy(),
        "bn_running_var_after": m.bn.running_var.numpy(),
        "wfq_scale": m.weight_fake_quant.scale.numpy().astype(F32),
        "wfq_zero_point": m.weight_fake_quant.zero_point.numpy().astype(
            np.int32),
        "wfq_min_val": m.weight_fake_quant.activation_post_process.min_val
        .numpy(),
        "wfq_max_val": m.weight_fake_quant.activation_post_process.max_val
        .numpy(),
        "wfq_weight": seen["wq"].numpy(),
    }
    if bias:
        out["dconv_bias"] = m.bias.grad.numpy()
    return out


def convbn_cases(rng):
    x = rng.standard_normal((2, 3, 6, 6)).astype(F32)
    r = rng.standard_normal((2, 4, 6, 6)).astype(F32)
    state = convbn_state(rng, bias=True)
    nobias = {k: v for k, v in state.items() if k != "conv_bias"}
    save("cbn_x", x)
    save("cbn_r", r)
    for k, v in nobias.items():
        save("cbn_" + k, v)
    for k, v in convbn_step(nobias, x, r, False, False).items():
        save("cbn_" + k, v)
    frozen = convbn_step(nobias, x, r, False, True)
    assert np.array_equal(frozen["bn_running_mean_after"],
                          state["bn_running_mean_before"])
    for k in ("y", "dx", "dconv_weight", "dbn_weight", "dbn_bias"):
        save("cbnf_" + k, frozen[k])
    for k, v in state.items():
        save("cbnb_" + k, v)
    save("cbnb_x", x)
    save("cbnb_r", r)
    for k, v in convbn_step(state, x, r, True, False).items():
        save("cbnb_" + k, v)


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(1313)
    fake_quant_cases(rng)
    convbn_cases(rng)


if __name__ == "__main__":
    main()
