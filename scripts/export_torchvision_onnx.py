#!/usr/bin/env python3
"""Exports torchvision models to ONNX the way a PyTorch user would.

    python3 scripts/export_torchvision_onnx.py OUT_DIR [--opset 13]
        [--models resnet18,mobilenet_v2,mobilenet_v3_small] [--size 224]

Needs Debian's python3-torch and python3-torchvision (not a build or test
dependency: the benchmarks of docs/onnx.md use it). The weights are the
seeded random initialization, which is all a latency comparison needs; the
batch dimension is symbolic ("batch"). Writes OUT_DIR/<model>.onnx.
"""
import argparse
import os
import sys

import torch
import torchvision


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out_dir")
    p.add_argument("--opset", type=int, default=13)
    p.add_argument("--models", default="resnet18,mobilenet_v2,mobilenet_v3_small")
    p.add_argument("--size", type=int, default=224)
    a = p.parse_args()
    os.makedirs(a.out_dir, exist_ok=True)
    for name in a.models.split(","):
        ctor = getattr(torchvision.models, name, None)
        if ctor is None:
            sys.exit(f"export_torchvision_onnx: error: unknown model '{name}'")
        torch.manual_seed(0)
        model = ctor().eval()
        x = torch.randn(1, 3, a.size, a.size)
        path = os.path.join(a.out_dir, f"{name}.onnx")
        torch.onnx.export(model, x, path, opset_version=a.opset,
                          input_names=["x"], output_names=["logits"],
                          dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
                          do_constant_folding=True)
        print(f"export_torchvision_onnx: wrote {path}")


if __name__ == "__main__":
    main()
