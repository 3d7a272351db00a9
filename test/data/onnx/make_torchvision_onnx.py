#!/usr/bin/env python3
"""Exports torchvision's ResNet-18, MobileNetV2 and MobileNetV3-Small as
torch.onnx.export writes them (opsets 13 and 17, dynamic batch "N") with a
random input and PyTorch's output, for the "[onnx-models]" import test:

    /usr/bin/python3 test/data/onnx/make_torchvision_onnx.py OUT_DIR
    QFX_ONNX_MODELS=OUT_DIR build/bin/qfx-unit-tests "[onnx-models]"

Weights are torchvision's random initialization under a fixed seed (no
download); the files are ~140 MB and are not committed. Needs torch 1.13 and
torchvision 0.14 (Debian: python3-torch, python3-torchvision).
"""
import os
import sys

import numpy as np
import torch
import torchvision

MODELS = [
    ("resnet18", torchvision.models.resnet18),
    ("mobilenet_v2", torchvision.models.mobilenet_v2),
    ("mobilenet_v3_small", torchvision.models.mobilenet_v3_small),
]


def main(out):
    os.makedirs(out, exist_ok=True)
    for name, ctor in MODELS:
        torch.manual_seed(0)
        model = ctor().eval()
        x = torch.randn(2, 3, 224, 224)
        for opset in (13, 17):
            torch.onnx.export(
                model, x[:1], os.path.join(out, "%s_%d.onnx" % (name, opset)),
                opset_version=opset, input_names=["x"], output_names=["y"],
                dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})
        with torch.no_grad():
            y = model(x)
        np.save(os.path.join(out, name + "_in.npy"), x.numpy())
        np.save(os.path.join(out, name + "_out.npy"), y.numpy())


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: make_torchvision_onnx.py OUT_DIR")
    main(sys.argv[1])
