#!/usr/bin/env python3
# Generates the golden files in onnx/ used by the [ort] tests
# (test/unit/OrtTest.cpp) and the ONNX importer's tests: PyTorch 1.13's own
# ONNX exports of the seed Net with the shipped weights
# (models/net_fashion.safetensors), an input batch and PyTorch's outputs.
# Needs Debian's python3-torch and dataset-fashion-mnist; run by hand with
# /usr/bin/python3 from any directory and commit the output. Re-running
# reproduces every file byte for byte.
#   net_opset13.onnx, net_opset17.onnx: torch.onnx.export of Net in eval
#     mode (flatten written as x.reshape(-1, 1000), as in scripts/
#     train_net_pytorch.py), input "input" [batch, 1, 28, 28] and output
#     "output" [batch, 10] with a dynamic batch axis;
#   net_view_opset13.onnx: the same Net with the flatten written as
#     x.view(x.size(0), -1), which exports as the shape subgraph
#     Shape -> Gather -> Unsqueeze -> Concat -> Reshape;
#   net_flatten_opset13.onnx: the flatten written as torch.flatten(x, 1),
#     which exports as one Flatten node;
#   net_input.npy: float32 [4, 1, 28, 28], the first 4 Fashion-MNIST test
#     images normalized as the demo does ((x / 255 - 0.5) / 0.5);
#   net_output.npy: float32 [4, 10], PyTorch's output on net_input.npy (all
#     four variants give it, which is checked).
import json
import os
import struct
import gzip

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "onnx")
WEIGHTS = os.path.join(HERE, "..", "..", "models", "net_fashion.safetensors")
IMAGES = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"


class Net(nn.Module):
    """The seed Net (as qfx::models::Net and scripts/train_net_pytorch.py),
    with a choice of how the [N, 40, 5, 5] -> [N, 1000] flatten is written."""

    def __init__(self, flatten="reshape"):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 40, 3, 1)
        self.conv2 = nn.Conv2d(40, 40, 3, 1)
        self.fc = nn.Linear(5 * 5 * 40, 10)
        self.flatten = flatten

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2, 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2, 2)
        if self.flatten == "reshape":
            x = x.reshape(-1, 5 * 5 * 40)
        elif self.flatten == "view":
            x = x.view(x.size(0), -1)
        else:
            x = torch.flatten(x, 1)
        return self.fc(x)


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    out = {}
    for key, info in header.items():
        if key == "__metadata__":
            continue
        assert info["dtype"] == "F32", key
        lo, hi = info["data_offsets"]
        arr = np.frombuffer(data[lo:hi], dtype=np.float32).copy()
        out[key] = torch.from_numpy(arr.reshape(info["shape"]))
    return out


def first_test_images(n):
    with gzip.open(IMAGES, "rb") as f:
        data = f.read()
    magic, count, rows, cols = struct.unpack(">IIII", data[:16])
    assert magic == 2051 and count >= n and (rows, cols) == (28, 28)
    images = np.frombuffer(data, np.uint8, count=n * 28 * 28, offset=16)
    x = images.reshape(n, 1, 28, 28).astype(np.float32)
    return (x / np.float32(255.0) - np.float32(0.5)) / np.float32(0.5)


def export(model, x, name, opset):
    path = os.path.join(OUT, name)
    torch.onnx.export(model, x, path, opset_version=opset,
                      input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "batch"},
                                    "output": {0: "batch"}},
                      do_constant_folding=True)
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    weights = read_safetensors(WEIGHTS)
    x = torch.from_numpy(first_test_images(4))

    expected = None
    variants = [("reshape", "net_opset13.onnx", 13),
                ("reshape", "net_opset17.onnx", 17),
                ("view", "net_view_opset13.onnx", 13),
                ("flatten", "net_flatten_opset13.onnx", 13)]
    for flatten, name, opset in variants:
        model = Net(flatten)
        model.load_state_dict(weights)
        model.eval()
        with torch.no_grad():
            y = model(x).numpy()
        if expected is None:
            expected = y
        assert np.array_equal(y, expected), name
        export(model, x, name, opset)

    np.save(os.path.join(OUT, "net_input.npy"), x.numpy())
    np.save(os.path.join(OUT, "net_output.npy"), expected)
    print(f"wrote net_input.npy, net_output.npy to {OUT}")


if __name__ == "__main__":
    main()
