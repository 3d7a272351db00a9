#!/usr/bin/env python3
"""Fashion-MNIST test accuracy of the zoo ViT in PyTorch: fp32, FX static
int8 and quantize_dynamic int8 -- the PyTorch side of docs/performance.md's
"ViT (Fashion-MNIST)" figures.

    python3 scripts/eval_vit_pytorch.py [--weights models/vit_fashion.safetensors]

FX static int8: prepare_fx with get_default_qconfig_mapping(<qconfig>)
(default: onednn, as tools/qfx-bench/pytorch_fx_bench.py; --qconfig x86 also
runs, with reduce_range activations), calibrated on the first 1,000 training
images in batches of 100 (as qfx-train calibrates), convert_fx, run on the
onednn quantized engine (the fbgemm / x86 engine is not in Debian's build).
Dynamic int8: torch.ao.quantization.quantize_dynamic on every nn.Linear.
All 10,000 test images (--test-images); one thread.
"""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vit_fashion import (WEIGHTS, load_split, load_vit,  # noqa: E402
                         quantize_dynamic_linear, quantize_static_fx)


def accuracy(model, x, y, batch=500):
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            correct += (model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum().item()
    return 100.0 * correct / len(x)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", default=WEIGHTS)
    ap.add_argument("--qconfig", default="onednn",
                    help="comma-separated get_default_qconfig_mapping backends")
    ap.add_argument("--calibration-images", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--test-images", type=int, default=10000,
                    help="evaluate on the first N test images (smoke tests)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.backends.quantized.engine = "onednn"
    xtr, _ = load_split("train")
    xte, yte = load_split("t10k")
    xte, yte = xte[:args.test_images], yte[:args.test_images]
    calib = xtr[:args.calibration_images]
    fp32 = load_vit(args.weights)
    rows = []

    def run(label, model):
        t = time.time()
        acc = accuracy(model, xte, yte)
        rows.append((label, acc))
        print(f"{label:<44} top-1 {acc:6.2f}%  ({time.time() - t:.0f} s)", flush=True)

    run("fp32", fp32)
    for qc in args.qconfig.split(","):
        run(f"FX static int8 ({qc} qconfig, {len(calib)} calib)",
            quantize_static_fx(fp32, calib, qc))
    run("dynamic int8 (quantize_dynamic, Linear)", quantize_dynamic_linear(fp32))
    base = rows[0][1]
    print("\n| PyTorch 1.13 | top-1 | vs fp32 |\n|---|---|---|")
    for label, acc in rows:
        print(f"| {label} | {acc:.2f}% | {acc - base:+.2f} pt |")


if __name__ == "__main__":
    main()
