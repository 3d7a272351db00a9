#!/usr/bin/env python3
# Generates the golden files in arith/ used by test/unit/ArithOpsTest.cpp:
# PyTorch 1.13's results for sub, div, neg, interpolate, embedding, split and
# chunk. Needs Debian's python3-torch (and numpy); run by hand with
# /usr/bin/python3 from any directory and commit the output. Re-running
# reproduces every file byte for byte.
#   golden.safetensors: case "<name>.<role>" tensors (operands x, b, w, idx
#     and result y; split pieces y0, y1, ...). Quantized tensors are stored
#     as their integer representation with "scale=<s>;zero_point=<z>" in the
#     metadata under the tensor's name. The test repeats each case's
#     hyper-parameters, so keep both in sync.
#   arith_opset13.onnx, arith_opset17.onnx: torch.onnx.export of ArithNet
#     (sub, div, rsub-style and reciprocal-style scalars, nearest and
#     bilinear interpolate, split, chunk); arith_io.safetensors: its input x
#     and output y.
#   embed_opset13.onnx: torch.onnx.export of EmbedNet (nn.Embedding; the
#     indices input is int64), with embed_io.safetensors (idx, y).
#   fx_float.safetensors: conv -> sub, div, nn.Upsample, split -> conv, the
#     middle ops float in PyTorch's x86 config (dequantize before, quantize
#     after), converted the same way as fx_interp below.
#   fx_interp.safetensors: a conv -> F.interpolate -> conv model quantized
#     with prepare_fx / convert_fx (default x86 qconfig mapping, run by the
#     onednn engine: this torch build has no fbgemm), its float
#     weights, calibration input and the converted model's output.
import json
import os
import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "arith")

DTYPES = {np.dtype("float32"): "F32", np.dtype("int64"): "I64",
          np.dtype("uint8"): "U8", np.dtype("int8"): "I8"}


def write_safetensors(name, tensors, metadata=None):
    header, buf = {}, b""
    if metadata:
        header["__metadata__"] = metadata
    for key in sorted(tensors):
        a = tensors[key]
        data = a.tobytes()
        header[key] = {"dtype": DTYPES[a.dtype], "shape": list(a.shape),
                       "data_offsets": [len(buf), len(buf) + len(data)]}
        buf += data
    text = json.dumps(header, separators=(",", ":"), sort_keys=True)
    text += " " * (-len(text) % 8)
    raw = text.encode("utf-8")
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw + buf)


TENSORS = {}
METADATA = {"torch": torch.__version__}


def put(store, meta, name, t):
    if t.is_quantized:
        meta[name] = "scale=%r;zero_point=%d" % (t.q_scale(), t.q_zero_point())
        t = t.int_repr()
    store[name] = np.ascontiguousarray(t.detach().numpy())


def save(case, **tensors):
    for role, t in tensors.items():
        put(TENSORS, METADATA, "%s.%s" % (case, role), t)


def randn(seed, *shape):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float32)


def away_from_zero(t):
    return torch.where(t >= 0, t + 0.5, t - 0.5)


def arithmetic_cases():
    a, b = randn(1, 2, 3, 4, 5), randn(2, 3, 1, 5)
    save("sub_bcast", x=a, b=b, y=a - b)
    c = randn(3, 2, 3, 4, 5)
    save("sub_alpha", x=a, b=c, y=torch.sub(a, c, alpha=2))
    save("sub_scalar", x=a, y=a - 1.7)
    save("rsub_scalar", x=a, y=1.7 - a)
    d = away_from_zero(b)
    save("div_bcast", x=a, b=d, y=a / d)
    save("div_scalar", x=a, y=a / 3.3)
    save("div_floor", x=a * 4, b=d, y=torch.div(a * 4, d, rounding_mode="floor"))
    save("div_trunc", x=a * 4, b=d, y=torch.div(a * 4, d, rounding_mode="trunc"))
    e = away_from_zero(a)
    save("rdiv_scalar", x=e, y=2.5 / e)
    save("neg", x=a, y=-a)


# (name, kwargs) of F.interpolate on a [2, 3, 5, 7] input; the test lists
# the same cases.
INTERP = [
    ("near_size", dict(size=(9, 11))),
    ("near_x2", dict(scale_factor=2)),
    ("near_x1_7", dict(scale_factor=1.7)),
    ("near_down", dict(scale_factor=(0.6, 0.5))),
    ("near_size_down", dict(size=(3, 4))),
    ("bil_x2", dict(scale_factor=2, mode="bilinear", align_corners=False)),
    ("bil_size_ac", dict(size=(9, 11), mode="bilinear", align_corners=True)),
    ("bil_size", dict(size=(9, 11), mode="bilinear", align_corners=False)),
    ("bil_x1_5", dict(scale_factor=1.5, mode="bilinear", align_corners=False)),
    ("bil_down", dict(size=(3, 4), mode="bilinear", align_corners=False)),
    ("bil_x1_7_rec", dict(scale_factor=1.7, mode="bilinear",
                          align_corners=False, recompute_scale_factor=True)),
    ("bil_same", dict(size=(5, 7), mode="bilinear", align_corners=False)),
]


def interpolate_cases():
    x = randn(4, 2, 3, 5, 7)
    for name, kw in INTERP:
        save("interp_" + name, x=x, y=F.interpolate(x, **kw))
    # Quantized: the output keeps the input's qparams.
    q = torch.quantize_per_tensor(x, 0.02, 71, torch.quint8)
    for name, kw in INTERP:
        save("qinterp_" + name, x=q, y=F.interpolate(q, **kw))


def embedding_cases():
    w = randn(5, 10, 4)
    idx = torch.tensor([[1, 3, 9], [0, 3, 3]], dtype=torch.int64)
    save("embedding", w=w, idx=idx, y=F.embedding(idx, w))


def split_cases():
    x = randn(6, 2, 7, 3)
    for case, pieces in [("split3", torch.split(x, 3, dim=1)),
                         ("split_sizes", torch.split(x, [2, 5], dim=1)),
                         ("chunk3", torch.chunk(x, 3, dim=1)),
                         ("chunk4_last", torch.chunk(x, 4, dim=-1))]:
        save(case, x=x, **{"y%d" % i: p for i, p in enumerate(pieces)})


class ArithNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode="nearest")

    def forward(self, x):
        a, b = torch.split(x, [1, 2], dim=1)
        c, d = torch.chunk(b, 2, dim=1)
        y = (a - c) / (d * d + 1.0)
        y = 1.0 - y / 2.0
        y = self.up(y)
        z = F.interpolate(y, size=(7, 9), mode="bilinear",
                          align_corners=False)
        return z - F.interpolate(x, size=(7, 9), mode="nearest")[:, :1]


class EmbedNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 4)

    def forward(self, idx):
        return self.emb(idx)


def onnx_cases():
    torch.manual_seed(0)
    model = ArithNet().eval()
    x = randn(7, 2, 3, 4, 5)
    for opset in (13, 17):
        torch.onnx.export(model, x, os.path.join(OUT, "arith_opset%d.onnx"
                                                  % opset),
                          opset_version=opset, input_names=["x"],
                          output_names=["y"])
    write_safetensors("arith_io.safetensors",
                      {"x": x.numpy(), "y": model(x).detach().numpy()})
    emb = EmbedNet().eval()
    with torch.no_grad():
        emb.emb.weight.copy_(randn(8, 10, 4))
    idx = torch.tensor([[1, 3, 9], [0, 3, 3]], dtype=torch.int64)
    torch.onnx.export(emb, idx, os.path.join(OUT, "embed_opset13.onnx"),
                      opset_version=13, input_names=["idx"],
                      output_names=["y"])
    write_safetensors("embed_io.safetensors",
                      {"idx": idx.numpy(), "y": emb(idx).detach().numpy()})


class InterpNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 3, 3, padding=1)
        self.conv2 = nn.Conv2d(3, 2, 3, padding=1)

    def forward(self, x):
        x = self.conv1(x)
        x = F.interpolate(x, scale_factor=2, mode="bilinear",
                          align_corners=False)
        x = F.interpolate(x, size=(9, 11), mode="nearest")
        return self.conv2(x)


def fx_case():
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx
    torch.backends.quantized.engine = "onednn"
    torch.manual_seed(0)
    model = InterpNet().eval()
    x = randn(9, 2, 2, 5, 6)
    mapping = get_default_qconfig_mapping("x86")
    prepared = prepare_fx(model, mapping, example_inputs=(x,))
    prepared(x)
    converted = convert_fx(prepared)
    tensors = {k: v.numpy() for k, v in model.state_dict().items()}
    tensors["x"] = x.numpy()
    tensors["y"] = converted(x).numpy()
    tensors["y_float"] = model(x).detach().numpy()
    write_safetensors("fx_interp.safetensors", tensors,
                      {"graph": str(converted.graph), "torch": torch.__version__})


class FloatIslandNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 3, 3, padding=1)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.conv2 = nn.Conv2d(2, 2, 3, padding=1)

    def forward(self, x):
        x = self.conv1(x)
        x = (x - 0.25) / 1.5
        x = self.up(x)
        return self.conv2(torch.split(x, [1, 2], dim=1)[1])


def convert_case(model, name, seed):
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx
    torch.backends.quantized.engine = "onednn"
    model = model.eval()
    x = randn(seed, 2, 2, 5, 6)
    prepared = prepare_fx(model, get_default_qconfig_mapping("x86"),
                          example_inputs=(x,))
    prepared(x)
    converted = convert_fx(prepared)
    tensors = {k: v.numpy() for k, v in model.state_dict().items()}
    tensors["x"] = x.numpy()
    tensors["y"] = converted(x).numpy()
    tensors["y_float"] = model(x).detach().numpy()
    write_safetensors(name, tensors,
                      {"graph": str(converted.graph), "torch": torch.__version__})


def main():
    os.makedirs(OUT, exist_ok=True)
    arithmetic_cases()
    interpolate_cases()
    embedding_cases()
    split_cases()
    write_safetensors("golden.safetensors", TENSORS, METADATA)
    onnx_cases()
    fx_case()
    torch.manual_seed(1)
    convert_case(FloatIslandNet(), "fx_float.safetensors", 10)


if __name__ == "__main__":
    main()
