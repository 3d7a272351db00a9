#!/usr/bin/env python3
# Generates the golden files in quant/ used by test/unit/QuantizeTest.cpp and
# test/unit/ObserverTest.cpp. Needs python3-torch (1.13); run by hand from
# any directory and commit the output. Deterministic: fixed seeds, one
# thread, AVX2 kernels.
#   data_<name>.npy: the f32 batches of a dataset ([3, 4, 8, 5, 5], or
#     [8, 2, 8, 5, 5] for "grow"), fed to an observer one batch at a time;
#   (dataset "big" is not stored: the test regenerates it, see big_dataset)
#   observers.tsv: one observer run per line: its constructor arguments, the
#     dataset, and what PyTorch computed: scales, zero points, min_val,
#     max_val (per-channel: comma-separated), and for HistogramObserver a
#     checksum of the histogram (sum of (i + 1) * h[i] in float64, in order);
#   hist_<case>.npy: the full histogram of a few HistogramObserver runs;
#   presets.tsv: the observers PyTorch's default qconfigs construct (class,
#     dtype, qscheme, range, reduce_range, averaging constant, channel axis,
#     whether fake-quantized; "-" where the class has no such field);
#   quantize.tsv and qt_<name>_{x,q,dq,fq,mask}.npy: quantize_per_tensor /
#     quantize_per_channel (q), dequantize (dq), fake_quantize_* (fq) and the
#     fake-quantize mask of inputs with random values, exact ties and
#     special values (inf, nan, huge).
# Floats are written with repr(), which round-trips exactly.
import os

os.environ["ATEN_CPU_CAPABILITY"] = "avx2"

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.ao.quantization.observer import (  # noqa: E402
    HistogramObserver,
    MinMaxObserver,
    MovingAverageMinMaxObserver,
    MovingAveragePerChannelMinMaxObserver,
    PerChannelMinMaxObserver,
)
import warnings  # noqa: E402

warnings.filterwarnings("ignore")
torch.set_num_threads(1)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "quant")
SHAPE = (4, 8, 5, 5)


def datasets():
    rng = np.random.default_rng(2024)
    n = lambda *s: rng.standard_normal(s)  # noqa: E731
    d = {}
    d["normal"] = n(3, *SHAPE)
    d["uniform"] = rng.uniform(-2, 3, (3, *SHAPE))
    sk = rng.lognormal(0, 0.8, (3, *SHAPE)) - 0.3
    for b in range(3):
        idx = rng.choice(sk[b].size, 3, replace=False)
        sk[b].flat[idx] = rng.uniform(8, 12, 3)
    d["skewed"] = sk
    d["relu"] = np.maximum(0, 0.2 + 1.5 * n(3, *SHAPE))
    d["drift"] = np.stack([n(*SHAPE) * (1 + 0.7 * b) + 0.3 * b
                           for b in range(3)])
    d["tiny"] = np.clip(0.25 * n(3, *SHAPE), -0.9, 0.9)
    d["shrink"] = np.stack([n(*SHAPE) * s for s in (3.0, 1.0, 0.5)])
    d["negative"] = -(np.abs(n(3, *SHAPE)) + 0.5)
    const = n(3, *SHAPE)
    const[0] = 0.5
    d["constant"] = const
    d["wide"] = 40 * n(3, *SHAPE)
    return {k: v.astype(np.float32) for k, v in d.items()}


def splitmix_uniform(n, seed):
    """n floats in [0, 1) from SplitMix64 of seed + i: exactly what the C++
    test computes, so large datasets need not be stored."""
    z = (np.arange(n, dtype=np.uint64) + np.uint64(seed)) * \
        np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(40)).astype(np.float32) * np.float32(2.0 ** -24)


def big_dataset():
    """24 batches of 25088 values (an Irwin-Hall bell) whose range grows
    with every batch: after many re-interpolations of the histogram, its
    running sums round, which the replica must reproduce. Float32 ops
    only, in a fixed order, so C++ recomputes it bit for bit."""
    f = np.float32
    n = 25088
    batches = []
    for b in range(24):
        u = [splitmix_uniform(n, 1000003 * (4 * b + k)) for k in range(4)]
        x = ((u[0] + u[1]) + (u[2] + u[3]) - f(2)) * f(1 + 0.05 * b) + \
            f(0.125 * b)
        batches.append(x.astype(f))
    return np.stack(batches)


def r(v):
    return repr(float(v))


def joined(t):
    return ",".join(r(v) for v in torch.as_tensor(t).flatten().tolist())


def ints(t):
    return ",".join(str(int(v)) for v in torch.as_tensor(t).flatten().tolist())


# name: (dtype, qscheme, reduce_range, quant_min, quant_max); None = default.
PER_TENSOR = {
    "u8": (torch.quint8, torch.per_tensor_affine, False, None, None),
    "u8rr": (torch.quint8, torch.per_tensor_affine, True, None, None),
    "s8": (torch.qint8, torch.per_tensor_affine, False, None, None),
    "s8sym": (torch.qint8, torch.per_tensor_symmetric, False, None, None),
    "u8sym": (torch.quint8, torch.per_tensor_symmetric, False, None, None),
    "s8symrr": (torch.qint8, torch.per_tensor_symmetric, True, None, None),
    "u4": (torch.quint8, torch.per_tensor_affine, False, 0, 15),
    "s4sym": (torch.qint8, torch.per_tensor_symmetric, False, -8, 7),
    "u4sym": (torch.quint8, torch.per_tensor_symmetric, False, 0, 15),
}
PER_CHANNEL = {
    "s8sym_c0": (torch.qint8, torch.per_channel_symmetric, False, None, None,
                 0),
    "s8sym_c1": (torch.qint8, torch.per_channel_symmetric, False, None, None,
                 1),
    "u8_c1": (torch.quint8, torch.per_channel_affine, False, None, None, 1),
    "s8rr_c0": (torch.qint8, torch.per_channel_affine, True, None, None, 0),
    "u8sym_c1": (torch.quint8, torch.per_channel_symmetric, False, None, None,
                 1),
    "u4_c1": (torch.quint8, torch.per_channel_affine, False, 0, 15, 1),
}
DTYPE = {torch.quint8: "quint8", torch.qint8: "qint8"}
SCHEME = {torch.per_tensor_affine: "per_tensor_affine",
          torch.per_tensor_symmetric: "per_tensor_symmetric",
          torch.per_channel_affine: "per_channel_affine",
          torch.per_channel_symmetric: "per_channel_symmetric"}
AVG_DATASETS = {"normal", "drift"}
HIST_STATES = {"Histogram_u8_drift", "Histogram_u8_constant"}


def run(obs, batches):
    for b in batches:
        obs(torch.from_numpy(b.copy()))
    return obs.calculate_qparams()


def observer_line(name, kind, obs, args, avg, ch_axis, bins, up, dataset,
                  qparams):
    dtype, scheme = args[0], args[1]
    scale, zp = qparams
    cols = [name, kind, DTYPE[dtype], SCHEME[scheme], str(obs.quant_min),
            str(obs.quant_max), str(int(args[2])), r(avg), str(ch_axis),
            str(bins), str(up), dataset, joined(scale), ints(zp),
            joined(obs.min_val), joined(obs.max_val)]
    if kind == "HistogramObserver":
        h = obs.histogram.numpy().astype(np.float64)
        check = 0.0
        for i, v in enumerate(h):
            check += (i + 1) * v
        cols.append(r(check))
        if name in HIST_STATES:
            np.save(os.path.join(OUT, "hist_%s.npy" % name),
                    obs.histogram.numpy())
    else:
        cols.append("-")
    return "\t".join(cols)


def kwargs(args):
    kw = dict(dtype=args[0], qscheme=args[1], reduce_range=args[2])
    if args[3] is not None:
        kw.update(quant_min=args[3], quant_max=args[4])
    return kw


def per_tensor_lines(data):
    lines = []
    for ds, batches in data.items():
        for cname, args in PER_TENSOR.items():
            kw = kwargs(args)
            if not (args[1] == torch.per_tensor_symmetric and args[2]
                    and args[0] == torch.quint8):
                o = MinMaxObserver(**kw)
                lines.append(observer_line(
                    "MinMax_%s_%s" % (cname, ds), "MinMaxObserver", o, args,
                    0.01, 0, 2048, 128, ds, run(o, batches)))
                for avg in (0.01, 0.5) if ds in AVG_DATASETS else (0.01,):
                    o = MovingAverageMinMaxObserver(averaging_constant=avg,
                                                    **kw)
                    lines.append(observer_line(
                        "MovingAverage%g_%s_%s" % (avg, cname, ds),
                        "MovingAverageMinMaxObserver", o, args, avg, 0, 2048,
                        128, ds, run(o, batches)))
            o = HistogramObserver(**kw)
            lines.append(observer_line(
                "Histogram_%s_%s" % (cname, ds), "HistogramObserver", o, args,
                0.01, 0, 2048, 128, ds, run(o, batches)))
    big = big_dataset()
    for cname in ("u8", "u8rr", "s8sym"):
        args = PER_TENSOR[cname]
        o = HistogramObserver(**kwargs(args))
        lines.append(observer_line(
            "Histogram_%s_big" % cname, "HistogramObserver", o, args, 0.01, 0,
            2048, 128, "big", run(o, big)))
    # Other bin counts and upsample rates.
    for ds in ("drift", "skewed", "normal"):
        for bins, up in ((256, 16), (1000, 7)):
            args = PER_TENSOR["u8"]
            o = HistogramObserver(bins=bins, upsample_rate=up, **kwargs(args))
            lines.append(observer_line(
                "Histogram%d_%d_u8_%s" % (bins, up, ds), "HistogramObserver",
                o, args, 0.01, 0, bins, up, ds, run(o, data[ds])))
    return lines


def per_channel_lines(data):
    lines = []
    for ds in ("normal", "skewed", "drift", "relu"):
        for cname, args in PER_CHANNEL.items():
            kw = kwargs(args)
            ch = args[5]
            o = PerChannelMinMaxObserver(ch_axis=ch, **kw)
            lines.append(observer_line(
                "PerChannel_%s_%s" % (cname, ds), "PerChannelMinMaxObserver",
                o, args, 0.01, ch, 2048, 128, ds, run(o, data[ds])))
            for avg in (0.01, 0.5):
                o = MovingAveragePerChannelMinMaxObserver(
                    averaging_constant=avg, ch_axis=ch, **kw)
                lines.append(observer_line(
                    "MovingAveragePerChannel%g_%s_%s" % (avg, cname, ds),
                    "MovingAveragePerChannelMinMaxObserver", o, args, avg, ch,
                    2048, 128, ds, run(o, data[ds])))
    return lines


def tie_values(scale, rng):
    f = np.float32
    ks = np.arange(-150, 151)
    ties = ((ks + 0.5) * scale).astype(f)
    # Values whose product with the float inverse scale is exactly k + 0.5.
    inv = f(1) / f(scale)
    exact = np.array([f((k + 0.5) / inv) for k in range(-20, 21)], f)
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e10, -1e10, 3e9,
                        1e-45, 0.273939937], f)
    rand = (3 * rng.standard_normal(256)).astype(f)
    return np.concatenate([rand, ties, exact, special]).astype(f)


def channel_values(scale, n, rng):
    """n values for one channel: specials and ties first, then random."""
    v = tie_values(scale, rng)
    special, exact, ties, rand = v[-10:], v[-51:-10], v[256:-51], v[:256]
    return np.concatenate([special, exact, ties[::3], rand])[:n]


PER_TENSOR_Q = [
    # name, dtype, scale, zero_point, fake-quant range
    ("t_u8", torch.quint8, 0.0123, 3, 0, 255),
    ("t_s8", torch.qint8, 0.0517, 0, -128, 127),
    ("t_u8rr", torch.quint8, 0.00214854861, 64, 0, 127),
    ("t_s32", torch.qint32, 1e-3, 5, 0, 15),
    ("t_s8b4", torch.qint8, 1 / 3, -5, -8, 7),
]
NP_INT = {torch.quint8: np.uint8, torch.qint8: np.int8, torch.qint32: np.int32}
QDTYPE = {torch.quint8: "quint8", torch.qint8: "qint8", torch.qint32: "qint32"}


def save(name, suffix, a):
    np.save(os.path.join(OUT, "qt_%s_%s.npy" % (name, suffix)), a)


def quantize_lines():
    rng = np.random.default_rng(7)
    lines = []
    for name, dtype, scale, zp, qmin, qmax in PER_TENSOR_Q:
        x = tie_values(scale, rng)
        xt = torch.from_numpy(x)
        q = torch.quantize_per_tensor(xt, scale, zp, dtype)
        fq, mask = torch.ops.aten.fake_quantize_per_tensor_affine_cachemask(
            xt, scale, zp, qmin, qmax)
        save(name, "x", x)
        save(name, "q", q.int_repr().numpy().astype(NP_INT[dtype]))
        save(name, "dq", q.dequantize().numpy())
        save(name, "fq", fq.numpy())
        save(name, "mask", mask.numpy().astype(np.uint8))
        lines.append("\t".join([name, "per_tensor", QDTYPE[dtype], r(scale),
                                str(zp), "0", str(qmin), str(qmax)]))
    channel_cases = [
        ("c_u8", torch.quint8, [0.1, 0.0123, 1 / 3, 0.00214854861],
         [3, 200, 0, 100], 0, (4, 150), 0, 255),
        ("c_s8", torch.qint8, [0.05, 0.02, 0.3], [0, -3, 5], 1, (2, 3, 40),
         -128, 127),
    ]
    for name, dtype, scales, zps, axis, shape, qmin, qmax in channel_cases:
        rest = [s for i, s in enumerate(shape) if i != axis]
        n = int(np.prod(rest))
        rows = np.stack([channel_values(s, n, rng) for s in scales])
        x = np.ascontiguousarray(
            np.moveaxis(rows.reshape(len(scales), *rest), 0, axis))
        xt = torch.from_numpy(x)
        q = torch.quantize_per_channel(
            xt, torch.tensor(scales, dtype=torch.double), torch.tensor(zps),
            axis, dtype)
        fq = torch.fake_quantize_per_channel_affine(
            xt, torch.tensor(scales, dtype=torch.float32),
            torch.tensor(zps, dtype=torch.int32), axis, qmin, qmax)
        save(name, "x", x)
        save(name, "q", q.int_repr().numpy().astype(NP_INT[dtype]))
        save(name, "dq", q.dequantize().numpy())
        save(name, "fq", fq.numpy())
        lines.append("\t".join([name, "per_channel", QDTYPE[dtype],
                                ",".join(r(s) for s in scales),
                                ",".join(str(z) for z in zps), str(axis),
                                str(qmin), str(qmax)]))
    return lines


def preset_lines():
    """The observers PyTorch 1.13's qconfigs build, one per role."""
    from torch.ao.quantization import qconfig as qc
    presets = {
        "x86": qc.get_default_qconfig("x86"),
        "onednn": qc.get_default_qconfig("onednn"),
        "qat_x86": qc.get_default_qat_qconfig("x86"),
        "dynamic": qc.per_channel_dynamic_qconfig,
        "weight_only": qc.float_qparams_weight_only_qconfig,
    }
    names = dict(SCHEME)
    names[torch.per_channel_affine_float_qparams] = \
        "per_channel_affine_float_qparams"
    dtypes = dict(DTYPE)
    dtypes[torch.float32] = "float32"
    lines = []
    for name, q in presets.items():
        for role in ("activation", "weight"):
            m = getattr(q, role)()
            fake = hasattr(m, "activation_post_process")
            o = m.activation_post_process if fake else m
            get = lambda a: getattr(o, a, None)  # noqa: E731
            cols = [name, role, type(o).__name__, dtypes[o.dtype],
                    names.get(get("qscheme"), "-"),
                    str(get("quant_min")) if get("quant_min") is not None
                    else "-",
                    str(get("quant_max")) if get("quant_max") is not None
                    else "-",
                    str(int(get("reduce_range"))) if get("reduce_range")
                    is not None else "-",
                    r(get("averaging_constant")) if get("averaging_constant")
                    is not None else "-",
                    str(get("ch_axis")) if get("ch_axis") is not None
                    else "-",
                    str(int(fake))]
            lines.append("\t".join(cols))
    return lines


def main():
    os.makedirs(OUT, exist_ok=True)
    data = datasets()
    for k, v in data.items():
        np.save(os.path.join(OUT, "data_%s.npy" % k), v)
    lines = per_tensor_lines(data) + per_channel_lines(data)
    with open(os.path.join(OUT, "observers.tsv"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(OUT, "presets.tsv"), "w") as f:
        f.write("\n".join(preset_lines()) + "\n")
    with open(os.path.join(OUT, "quantize.tsv"), "w") as f:
        f.write("\n".join(quantize_lines()) + "\n")


if __name__ == "__main__":
    main()
