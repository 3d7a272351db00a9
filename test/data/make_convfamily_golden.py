#!/usr/bin/env python3
# Generates the golden files in convfamily/ used by
# test/unit/ConvFamilyTest.cpp: PyTorch 1.13's Conv1d / BatchNorm1d forward
# and FX quantization of a tiny 1-d conv model. Needs python3-torch; run by
# hand from any directory and commit the output.
#   ops.safetensors: for each case <c> the operands "<c>.x", "<c>.weight",
#     "<c>.bias" (when used), "<c>.running_mean", "<c>.running_var" (batch
#     norm) and PyTorch's result "<c>.y"; the parameters of each case are in
#     CASES below and repeated by the test;
#   tiny.safetensors: state_dict of Tiny (trained-looking batch norms);
#   calibration.npy [16,4,32], test_input.npy [4,4,32];
#   tiny_float_output.npy: Tiny's eval output on test_input.npy;
#   tiny_qparams.txt: "<observer> <observed node> <scale> <zero point>" per
#     activation observer call after prepare_fx(x86) and calibration;
#   tiny_output.npy: convert_fx's int8 model on test_input.npy (onednn
#     engine), tiny_reference_output.npy: convert_to_reference_fx's;
#   tiny_opset13.onnx, tiny_opset17.onnx: torch.onnx.export of Tiny in eval
#     mode (Conv with 1-d kernels; BatchNormalization on 3-d input stays
#     where no conv precedes it), input "input" [batch, 4, 32], output
#     "output" [batch, 10], dynamic batch axis;
#   up_*: the same for Up (ConvTranspose2d+BatchNorm2d+ReLU) with input
#     [4, 3, 6, 6], quantized with get_default_qconfig_mapping("x86").
import copy
import json
import os
import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.ao.quantization import get_default_qconfig_mapping
from torch.ao.quantization.quantize_fx import (convert_fx,
                                               convert_to_reference_fx,
                                               prepare_fx)

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "convfamily")


def write_safetensors(name, tensors):
    header, buf = {}, b""
    for key in sorted(tensors):
        data = tensors[key].detach().contiguous().numpy().tobytes()
        header[key] = {"dtype": "F32", "shape": list(tensors[key].shape),
                       "data_offsets": [len(buf), len(buf) + len(data)]}
        buf += data
    text = json.dumps(header, separators=(",", ":"), sort_keys=True)
    text += " " * (-len(text) % 8)
    raw = text.encode("utf-8")
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw + buf)


# conv1d cases: (name, input shape, out channels, kernel, bias, stride,
# padding, dilation, groups).
CONV1D = [
    ("conv1d_basic", (2, 3, 10), 4, 3, True, 1, 0, 1, 1),
    ("conv1d_stride_pad", (2, 4, 11), 6, 3, True, 2, 1, 1, 1),
    ("conv1d_dil_groups", (1, 4, 12), 6, 3, False, 1, 2, 2, 2),
    ("conv1d_depthwise", (3, 5, 9), 5, 5, True, 1, 2, 1, 5),
]
# conv_transpose2d cases: (name, input shape, out channels, kernel, bias,
# stride, padding, output_padding, groups, dilation).
CONVT = [
    ("convt_basic", (2, 3, 5, 4), 4, 3, True, 1, 0, 0, 1, 1),
    ("convt_stride_outpad", (2, 4, 5, 5), 6, 3, True, 2, 1, 1, 1, 1),
    ("convt_groups_dil", (1, 4, 4, 6), 6, 2, False, 2, 0, 1, 2, 2),
]
# batch_norm cases: (name, input shape, eps).
BATCHNORM = [("bn1d_2d", (5, 6), 1e-5), ("bn1d_3d", (3, 6, 7), 1e-3)]


def op_cases(g):
    out = {}
    for name, xs, o, k, bias, s, p, d, gr in CONV1D:
        x = torch.randn(xs, generator=g)
        w = torch.randn(o, xs[1] // gr, k, generator=g) * 0.3
        b = torch.randn(o, generator=g) if bias else None
        out[name + ".x"], out[name + ".weight"] = x, w
        if bias:
            out[name + ".bias"] = b
        out[name + ".y"] = F.conv1d(x, w, b, s, p, d, gr)
    for name, xs, o, k, bias, s, p, op, gr, d in CONVT:
        x = torch.randn(xs, generator=g)
        w = torch.randn(xs[1], o // gr, k, k, generator=g) * 0.3
        b = torch.randn(o, generator=g) if bias else None
        out[name + ".x"], out[name + ".weight"] = x, w
        if bias:
            out[name + ".bias"] = b
        out[name + ".y"] = F.conv_transpose2d(x, w, b, s, p, op, gr, d)
    for name, xs, eps in BATCHNORM:
        c = xs[1]
        bn = nn.BatchNorm1d(c, eps=eps).eval()
        with torch.no_grad():
            bn.weight.copy_(torch.rand(c, generator=g) + 0.5)
            bn.bias.copy_(torch.randn(c, generator=g))
            bn.running_mean.copy_(torch.randn(c, generator=g))
            bn.running_var.copy_(torch.rand(c, generator=g) + 0.2)
        x = torch.randn(xs, generator=g)
        out[name + ".x"] = x
        for key in ("weight", "bias", "running_mean", "running_var"):
            out[name + "." + key] = getattr(bn, key).detach().clone()
        out[name + ".y"] = bn(x)
    return out


class Tiny(nn.Module):
    """Conv1d+BatchNorm1d+ReLU twice, Conv1d+relu, a standalone BatchNorm1d
    (float under the x86 config) and a Linear."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv1d(4, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm1d(8)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv1d(8, 8, 3, stride=2, padding=2, dilation=2,
                               groups=2)
        self.bn2 = nn.BatchNorm1d(8)
        self.conv3 = nn.Conv1d(8, 8, 1)
        self.bn3 = nn.BatchNorm1d(8)
        self.fc = nn.Linear(8 * 16, 10)

    def forward(self, x):
        x = self.relu1(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = F.relu(self.conv3(x))
        x = self.bn3(x)
        x = torch.flatten(x, 1)
        return self.fc(x)


class Up(nn.Module):
    """ConvTranspose2d+BatchNorm2d+ReLU (PyTorch 1.13 fuses the batch norm
    with the relu there, BNReLU2d, not with the transposed conv), then
    ConvTranspose2d+BatchNorm2d (folded), then a conv. No output_padding:
    PyTorch's onednn engine refuses it."""

    def __init__(self):
        super().__init__()
        self.up1 = nn.ConvTranspose2d(3, 8, 3, stride=2, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.up2 = nn.ConvTranspose2d(8, 4, 2, stride=2, bias=False)
        self.bn2 = nn.BatchNorm2d(4)
        self.conv = nn.Conv2d(4, 2, 3, padding=1)

    def forward(self, x):
        x = F.relu(self.bn1(self.up1(x)))
        x = self.bn2(self.up2(x))
        return self.conv(x)


def trained_looking(model, g):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                c = m.num_features
                m.weight.copy_(torch.rand(c, generator=g) + 0.5)
                m.bias.copy_(torch.randn(c, generator=g) * 0.2)
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.3)
                m.running_var.copy_(torch.rand(c, generator=g) + 0.5)


def observer_lines(p):
    lines = []
    for node in p.graph.nodes:
        if node.op == "call_module" and "activation_post_process" in node.target:
            scale, zp = getattr(p, node.target).calculate_qparams()
            lines.append(f"{node.target} {node.args[0].name} "
                         f"{float(scale)!r} {int(zp)}")
    return lines


def up_quantize(g):
    """Up through prepare_fx with get_default_qconfig_mapping("x86"), which
    gives ConvTranspose2d per-tensor weights (PyTorch asserts on per-channel
    ones), and the same files as for Tiny with prefix up_."""
    torch.manual_seed(15)
    model = Up().eval()
    trained_looking(model, g)
    state = {k: v for k, v in model.state_dict().items()
             if not k.endswith("num_batches_tracked")}
    write_safetensors("up.safetensors", state)
    calib = torch.randn(16, 3, 6, 6, generator=g)
    test = torch.randn(4, 3, 6, 6, generator=g)
    np.save(os.path.join(OUT, "up_calibration.npy"), calib.numpy())
    np.save(os.path.join(OUT, "up_test_input.npy"), test.numpy())
    with torch.no_grad():
        np.save(os.path.join(OUT, "up_float_output.npy"), model(test).numpy())
        p = prepare_fx(copy.deepcopy(model), get_default_qconfig_mapping("x86"),
                       (calib[:1],))
        p(calib)
        with open(os.path.join(OUT, "up_qparams.txt"), "w") as f:
            f.write("\n".join(observer_lines(p)) + "\n")
        ref = convert_to_reference_fx(copy.deepcopy(p))
        np.save(os.path.join(OUT, "up_reference_output.npy"),
                ref(test).numpy())
        q = convert_fx(copy.deepcopy(p))
        np.save(os.path.join(OUT, "up_output.npy"), q(test).numpy())
    for opset in (13, 17):
        torch.onnx.export(model, test, os.path.join(OUT,
                                                    f"up_opset{opset}.onnx"),
                          opset_version=opset, input_names=["input"],
                          output_names=["output"],
                          dynamic_axes={"input": {0: "batch"},
                                        "output": {0: "batch"}},
                          do_constant_folding=True)


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.backends.quantized.engine = "onednn"
    g = torch.Generator().manual_seed(14)
    write_safetensors("ops.safetensors", op_cases(g))

    torch.manual_seed(14)
    model = Tiny().eval()
    trained_looking(model, g)
    state = {k: v for k, v in model.state_dict().items()
             if not k.endswith("num_batches_tracked")}
    write_safetensors("tiny.safetensors", state)
    calib = torch.randn(16, 4, 32, generator=g)
    test = torch.randn(4, 4, 32, generator=g)
    np.save(os.path.join(OUT, "calibration.npy"), calib.numpy())
    np.save(os.path.join(OUT, "test_input.npy"), test.numpy())
    with torch.no_grad():
        np.save(os.path.join(OUT, "tiny_float_output.npy"),
                model(test).numpy())
        p = prepare_fx(copy.deepcopy(model), get_default_qconfig_mapping("x86"),
                       (calib[:1],))
        p(calib)
        with open(os.path.join(OUT, "tiny_qparams.txt"), "w") as f:
            f.write("\n".join(observer_lines(p)) + "\n")
        ref = convert_to_reference_fx(copy.deepcopy(p))
        np.save(os.path.join(OUT, "tiny_reference_output.npy"),
                ref(test).numpy())
        q = convert_fx(copy.deepcopy(p))
        np.save(os.path.join(OUT, "tiny_output.npy"), q(test).numpy())
    up_quantize(g)
    for opset in (13, 17):
        torch.onnx.export(model, test, os.path.join(OUT,
                                                    f"tiny_opset{opset}.onnx"),
                          opset_version=opset, input_names=["input"],
                          output_names=["output"],
                          dynamic_axes={"input": {0: "batch"},
                                        "output": {0: "batch"}},
                          do_constant_folding=True)


if __name__ == "__main__":
    main()
