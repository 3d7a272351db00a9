#!/usr/bin/env python3
# Generates the trained-ViT goldens in zoo/, so the C++ zoo ViT
# (models::vitFashion with models/vit_fashion.safetensors) can be checked
# against its PyTorch twin (scripts/vit_fashion.py) with the real weights.
# Needs python3-torch and dataset-fashion-mnist; run by hand from any
# directory after retraining and commit the output.
#   vit_fashion_trained_input.npy:  float32 [8, 1, 28, 28], the first 8
#     Fashion-MNIST test images normalized as qfx does ((x/255 - 0.5) / 0.5);
#   vit_fashion_trained_labels.npy: int64 [8], their labels;
#   vit_fashion_trained_output.npy: float32 [8, 10], the eval-mode fp32
#     logits of the model in models/vit_fashion.safetensors.
# Computed in float64 from the float32 weights and rounded at the end, so the
# golden does not depend on PyTorch's BLAS (a float32 C++ result should agree
# to ~1e-5). With --check, writes nothing and exits 1 unless the committed
# files match what the weights give now (after retraining, say).
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts"))
from vit_fashion import load_split, load_vit  # noqa: E402

OUT = os.path.join(HERE, "zoo")
COUNT = 8


def main():
    torch.set_num_threads(1)
    x, y = load_split("t10k")
    x, y = x[:COUNT].contiguous(), y[:COUNT].contiguous()
    model = load_vit().double()
    with torch.no_grad():
        logits = model(x.double()).float()
    files = {"vit_fashion_trained_input.npy": x.numpy(),
             "vit_fashion_trained_labels.npy": y.numpy(),
             "vit_fashion_trained_output.npy": logits.numpy()}
    if "--check" in sys.argv[1:]:
        stale = [name for name, arr in files.items()
                 if not np.array_equal(np.load(os.path.join(OUT, name)), arr)]
        print("stale: " + ", ".join(stale) if stale else "goldens up to date")
        return 1 if stale else 0
    for name, arr in files.items():
        np.save(os.path.join(OUT, name), arr)
    with torch.no_grad():
        f32 = load_vit()(x)
    print("labels   ", y.tolist())
    print("predicted", logits.argmax(1).tolist())
    print(f"max |float32 - float64 logits| = {(f32 - logits).abs().max().item():.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
