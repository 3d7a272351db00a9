#!/usr/bin/env python3
"""Trains the seed Net on Fashion-MNIST with PyTorch, for comparison with qfx.

The weights qfx ships (models/net_fashion.safetensors) are trained in C++ by
`build/bin/qfx-train --epochs 5 -o models/net_fashion.safetensors`; this
script trains the same model with PyTorch so the two can be compared. Needs
Debian's python3-torch and dataset-fashion-mnist. Deterministic (fixed seed,
one thread).

    python3 scripts/train_net_pytorch.py [--epochs 4] [--out net_pytorch.safetensors]
"""
import argparse
import gzip
import json
import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

DATA = "/usr/share/datasets/fashion-mnist"


class Net(nn.Module):
    """The seed Net of PyTorch's quantization notes (as qfx::models::Net)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 40, 3, 1)
        self.conv2 = nn.Conv2d(40, 40, 3, 1)
        self.fc = nn.Linear(5 * 5 * 40, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2, 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2, 2)
        x = x.reshape(-1, 5 * 5 * 40)
        return self.fc(x)


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, n = struct.unpack(">II", data[:8])
    if magic == 2051:
        rows, cols = struct.unpack(">II", data[8:16])
        return np.frombuffer(data, np.uint8, offset=16).reshape(n, 1, rows, cols)
    return np.frombuffer(data, np.uint8, offset=8)


def to_input(images):
    # The same normalization the demo applies: x / 255, then (x - 0.5) / 0.5.
    return (torch.from_numpy(images.astype(np.float32)) / 255.0 - 0.5) / 0.5


def save_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        arr = tensors[name].detach().contiguous().numpy().astype("<f4")
        raw = arr.tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--out", default="net_pytorch.safetensors")
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    xtr = to_input(read_idx(f"{DATA}/train-images-idx3-ubyte.gz"))
    ytr = torch.from_numpy(read_idx(f"{DATA}/train-labels-idx1-ubyte.gz").astype(np.int64))
    xte = to_input(read_idx(f"{DATA}/t10k-images-idx3-ubyte.gz"))
    yte = torch.from_numpy(read_idx(f"{DATA}/t10k-labels-idx1-ubyte.gz").astype(np.int64))
    model = Net()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.3)
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(xtr))
        for i in range(0, len(xtr), 64):
            idx = perm[i:i + 64]
            opt.zero_grad()
            loss = F.cross_entropy(model(xtr[idx]), ytr[idx])
            loss.backward()
            opt.step()
        sched.step()
        model.eval()
        with torch.no_grad():
            acc = (model(xte).argmax(1) == yte).float().mean().item()
        print(f"epoch {epoch + 1}: test top-1 {acc * 100:.2f}%", flush=True)
    save_safetensors(args.out, model.state_dict())
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
