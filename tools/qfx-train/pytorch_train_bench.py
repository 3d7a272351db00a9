"""PyTorch training throughput of Net for qfx-train --bench (same recipe)."""

import argparse
import os
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

# The model and the IDX reader are the training script's, so that both
# measure the same Net.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "scripts"))
from train_net_pytorch import Net, read_idx  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps-per-rep", type=int, default=50)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    a = p.parse_args()
    if min(a.threads, a.batch_size, a.steps_per_rep, a.reps) <= 0 \
            or a.warmup < 0:
        p.error("sizes must be positive (--warmup not negative)")
    torch.manual_seed(0)
    torch.set_num_threads(a.threads)
    images = read_idx(f"{a.data_dir}/train-images-idx3-ubyte.gz")
    labels = read_idx(f"{a.data_dir}/train-labels-idx1-ubyte.gz")
    # Normalized once up front, as qfx's loader does, so the timed loop
    # measures training only.
    x = (torch.from_numpy(images.astype(np.float32)) / 255.0 - 0.5) / 0.5
    y = torch.from_numpy(labels.astype(np.int64))
    batches = len(y) // a.batch_size
    if batches == 0:
        p.error("fewer training images than one batch")

    model = Net().train()
    opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=a.momentum,
                          weight_decay=a.weight_decay)
    cursor = 0

    def step():
        # Consecutive full batches, wrapping around at the end of the set.
        nonlocal cursor
        i = (cursor % batches) * a.batch_size
        cursor += 1
        # set_to_none: qfx's zeroGrad drops the gradients too (and it is
        # PyTorch 2's default), so neither side pays for zero-filling.
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x[i:i + a.batch_size]),
                               y[i:i + a.batch_size])
        loss.backward()
        opt.step()

    for _ in range(a.warmup):
        step()
    step_ms = []
    for _ in range(a.reps):
        t0 = time.perf_counter()
        for _ in range(a.steps_per_rep):
            step()
        step_ms.append((time.perf_counter() - t0) * 1e3 / a.steps_per_rep)
    ms = statistics.median(step_ms)
    print(f"pytorch_train images_per_s_median={a.batch_size * 1e3 / ms:.1f} "
          f"step_ms_median={ms:.4f} threads={a.threads} "
          f"batch={a.batch_size} torch={torch.__version__}", flush=True)


if __name__ == "__main__":
    main()
