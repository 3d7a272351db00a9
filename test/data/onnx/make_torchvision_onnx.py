#!/usr/bin/env python3
"""Exports torchvision's ResNet-18, MobileNetV2 and MobileNetV3-Small as
torch.onnx.export writes them (opsets 13 and 17, dynamic batch "N") with a
random input and PyTorch's output, for the "[onnx-models]" import test:

    /usr/bin/python3 test/data/onnx/make_torchvision_onnx.py OUT_DIR
    QFX_ONNX_MODELS=OUT_DIR build/bin/qfx-unit-tests "[onnx-models]"

Weights are torchvision's random initialization under a fixed seed (no
download), also saved as NAME.safetensors (the state_dict, for the C++ zoo
model); the files are ~200 MB and are not committed. Needs torch 1.13 and
torchvision 0.14 (Debian: python3-torch, python3-torchvision).
"""
import json
import os
import struct
import sys

import numpy as np
import torch
import torchvision

MODELS = [
    ("resnet18", torchvision.models.resnet18),
    ("mobilenet_v2", torchvision.models.mobilenet_v2),
    ("mobilenet_v3_small", torchvision.models.mobilenet_v3_small),
]


def save_safetensors(state, path):
    """A state_dict in the safetensors format (F32 and I64 tensors)."""
    header, blobs, offset = {}, [], 0
    for key, t in state.items():
        a = t.detach().contiguous().numpy()
        dtype = {"float32": "F32", "int64": "I64"}[str(a.dtype)]
        raw = a.tobytes()
        header[key] = {"dtype": dtype, "shape": list(a.shape),
                       "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    head = json.dumps(header).encode()
    head += b" " * (-len(head) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)) + head + b"".join(blobs))


def randomize_batchnorm(model):
    """Gives every BatchNorm random statistics and affine parameters: with
    torchvision's fresh ones (mean 0, var 1, weight 1, bias 0) MobileNet's
    activations shrink to ~1e-9 and the int8 comparison says nothing."""
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            with torch.no_grad():
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)


def main(out):
    os.makedirs(out, exist_ok=True)
    for name, ctor in MODELS:
        torch.manual_seed(0)
        model = ctor().eval()
        randomize_batchnorm(model)
        x = torch.randn(2, 3, 224, 224)
        for opset in (13, 17):
            torch.onnx.export(
                model, x[:1], os.path.join(out, "%s_%d.onnx" % (name, opset)),
                opset_version=opset, input_names=["x"], output_names=["y"],
                dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})
        with torch.no_grad():
            y = model(x)
        save_safetensors(model.state_dict(),
                         os.path.join(out, name + ".safetensors"))
        np.save(os.path.join(out, name + "_in.npy"), x.numpy())
        np.save(os.path.join(out, name + "_out.npy"), y.numpy())


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: make_torchvision_onnx.py OUT_DIR")
    main(sys.argv[1])
