#!/usr/bin/env python3
# Generates the PyTorch references in fuse/ used by test/unit/FuseTest.cpp:
# BatchNorm folded into conv / linear by torch.nn.utils.fusion's
# fuse_conv_bn_eval and fuse_linear_bn_eval. Needs python3-torch (1.13) and
# numpy; run by hand from any directory and commit the output. Each case
# <name> is stored as <name>.<role>.npy: w, b (absent without bias) of the
# conv/linear; mean, var, weight, bias (absent without affine) of the
# BatchNorm; fused_w, fused_b of the result. The test repeats each case's
# hyper-parameters (eps, groups), so keep both in sync.
import os

import numpy as np
import torch
import torch.nn as nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fuse")


def save(case, **arrays):
    for role, t in arrays.items():
        a = np.ascontiguousarray(t.detach().numpy().astype(np.float32))
        np.save(os.path.join(OUT, "%s.%s.npy" % (case, role)), a)


def randn(seed, *shape):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float32)


def set_bn(bn, seed, affine=True):
    c = bn.num_features
    bn.running_mean = randn(seed, c) * 2
    # Variances over several orders of magnitude exercise the rsqrt.
    bn.running_var = torch.exp(randn(seed + 1, c) * 3)
    if affine:
        bn.weight.data = randn(seed + 2, c)
        bn.bias.data = randn(seed + 3, c)
    bn.eval()


def save_fused(case, lin, bn, fused):
    arrays = dict(w=lin.weight, mean=bn.running_mean, var=bn.running_var,
                  fused_w=fused.weight, fused_b=fused.bias)
    if lin.bias is not None:
        arrays["b"] = lin.bias
    if bn.affine:
        arrays["weight"] = bn.weight
        arrays["bias"] = bn.bias
    save(case, **arrays)


def conv_cases():
    # 3 -> 16 channels, 3x3, with bias; default eps. Enough channels that
    # computing the bias in another order changes some of its bits.
    conv = nn.Conv2d(3, 16, 3).eval()
    conv.weight.data = randn(1, 16, 3, 3, 3)
    conv.bias.data = randn(2, 16)
    bn = nn.BatchNorm2d(16)
    set_bn(bn, 10)
    save_fused("conv_bn", conv, bn, fuse_conv_bn_eval(conv, bn))
    # Grouped conv without bias, BatchNorm without affine, eps 1e-3.
    conv = nn.Conv2d(4, 6, 1, groups=2, bias=False).eval()
    conv.weight.data = randn(3, 6, 2, 1, 1)
    bn = nn.BatchNorm2d(6, eps=1e-3, affine=False)
    set_bn(bn, 20, affine=False)
    save_fused("conv_nobias_bn_noaffine", conv, bn,
               fuse_conv_bn_eval(conv, bn))


def linear_cases():
    lin = nn.Linear(5, 16).eval()
    lin.weight.data = randn(30, 16, 5)
    lin.bias.data = randn(31, 16)
    bn = nn.BatchNorm1d(16)
    set_bn(bn, 40)
    save_fused("linear_bn", lin, bn, fuse_linear_bn_eval(lin, bn))
    # Without bias, eps 1e-4.
    lin = nn.Linear(4, 6, bias=False).eval()
    lin.weight.data = randn(50, 6, 4)
    bn = nn.BatchNorm1d(6, eps=1e-4)
    set_bn(bn, 60)
    save_fused("linear_nobias_bn", lin, bn, fuse_linear_bn_eval(lin, bn))


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(1)
    with torch.no_grad():
        conv_cases()
        linear_cases()


if __name__ == "__main__":
    main()
