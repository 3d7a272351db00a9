#!/usr/bin/env python3
"""Trains the zoo ViT (scripts/vit_fashion.py) on Fashion-MNIST with PyTorch.

models/vit_fashion.safetensors is produced by exactly

    python3 scripts/train_vit_pytorch.py --out models/vit_fashion.safetensors

(defaults: 12 epochs, batch 128, AdamW lr 2e-3 with weight decay 0.05, one
epoch of linear warmup then cosine decay, random horizontal flips and shifts
of up to 2 pixels, seed 0, one thread; 88.28% test top-1). Needs Debian's
python3-torch and dataset-fashion-mnist. Deterministic for a given torch
build, BLAS and CPU: the seed is fixed and the run uses one thread.

Debian's torch links the reference (netlib) BLAS, about 7x slower here than
OpenBLAS on the Linear layers (~0.9 s instead of ~0.13 s of CPU per step);
the shipped weights were trained with OpenBLAS, taken from the extracted
libopenblas0-pthread package without installing it:
LD_LIBRARY_PATH=<dir>/usr/lib/x86_64-linux-gnu/openblas-pthread
OPENBLAS_NUM_THREADS=1 (31 minutes of wall time on a shared, loaded 2-vCPU
host). The model must stay FX-traceable and its names must match the C++
zoo's; see scripts/vit_fashion.py. Figures: docs/performance.md, "ViT
(Fashion-MNIST)".
"""
import argparse
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vit_fashion import ViT, load_split, save_safetensors  # noqa: E402


def augment(x, gen, shift=2):
    """Random horizontal flip and a random shift of up to `shift` pixels
    (zero padding in normalized units, i.e. black), per image."""
    n = x.shape[0]
    flip = torch.rand(n, generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    if shift == 0:
        return x
    pad = F.pad(x, (shift,) * 4, value=-1.0)
    dy = torch.randint(0, 2 * shift + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * shift + 1, (n,), generator=gen)
    ar = torch.arange(28)
    rows = (dy[:, None] + ar)[:, :, None]  # [n, 28, 1]
    cols = (dx[:, None] + ar)[:, None, :]  # [n, 1, 28]
    return pad[torch.arange(n)[:, None, None], 0, rows, cols].unsqueeze(1)


def evaluate(model, x, y, batch=1000):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            correct += (model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum().item()
    return correct / len(x)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--weight-decay", type=float, default=0.05)
    ap.add_argument("--warmup-epochs", type=float, default=1.0)
    ap.add_argument("--shift", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--limit", type=int, default=0,
                    help="train on the first N images only (smoke tests)")
    ap.add_argument("--out", default="vit_fashion.safetensors")
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(args.seed)
    xtr, ytr = load_split("train")
    xte, yte = load_split("t10k")
    if args.limit:
        xtr, ytr = xtr[:args.limit], ytr[:args.limit]
    model = ViT()
    print(f"parameters: {sum(p.numel() for p in model.parameters())}", flush=True)
    # No weight decay on biases, LayerNorm, class token and position embedding.
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "embedding" not in n
             and "class_token" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (
        p.dim() >= 2 and "embedding" not in n and "class_token" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr)
    steps_per_epoch = math.ceil(len(xtr) / args.batch)
    total = args.epochs * steps_per_epoch
    warmup = int(args.warmup_epochs * steps_per_epoch)

    def lr_at(step):
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    start = time.time()
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(xtr), generator=gen)
        running, seen = 0.0, 0
        for i in range(0, len(xtr), args.batch):
            idx = perm[i:i + args.batch]
            xb = augment(xtr[idx], gen, args.shift)
            loss = F.cross_entropy(model(xb), ytr[idx])
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            running += loss.item() * len(idx)
            seen += len(idx)
        acc = evaluate(model, xte, yte)
        print(f"epoch {epoch + 1}: train loss {running / seen:.4f}, "
              f"test top-1 {acc * 100:.2f}%, {time.time() - start:.0f} s", flush=True)
    save_safetensors(args.out, model.state_dict())
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes) after "
          f"{time.time() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
