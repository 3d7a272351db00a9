#!/usr/bin/env python3
# Generates the PyTorch reference outputs in kernels/ used by
# test/unit/KernelsTest.cpp. Needs python3-torch (1.13) and numpy; run by hand
# from any directory and commit the output. Each case <name> is stored as
# <name>.<operand>.npy (x, w, b, ... inputs and y, the torch output); the
# test repeats each case's hyper-parameters, so keep both in sync.
import os

import numpy as np
import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kernels")


def save(case, **arrays):
    for role, t in arrays.items():
        a = np.ascontiguousarray(t.detach().numpy().astype(np.float32))
        np.save(os.path.join(OUT, "%s.%s.npy" % (case, role)), a)


def randn(seed, *shape):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float32)


def conv_cases():
    x = randn(1, 1, 3, 7, 7)
    w = randn(2, 4, 3, 3, 3)
    b = randn(3, 4)
    save("conv_basic", x=x, w=w, b=b, y=F.conv2d(x, w, b))
    save("conv_s2p1", x=x, w=w, b=b, y=F.conv2d(x, w, b, stride=2, padding=1))
    # Dilation 2 without bias.
    save("conv_d2", x=x, w=w, y=F.conv2d(x, w, None, padding=2, dilation=2))
    # Groups 3: 6 input channels, 2 per group; asymmetric stride and padding.
    x6 = randn(4, 1, 6, 7, 7)
    w6 = randn(5, 6, 2, 3, 3)
    b6 = randn(6, 6)
    save("conv_g3", x=x6, w=w6, b=b6,
         y=F.conv2d(x6, w6, b6, stride=(2, 1), padding=(1, 0), groups=3))
    # Depthwise with a batch of two.
    xd = randn(7, 2, 4, 6, 6)
    wd = randn(8, 4, 1, 3, 3)
    bd = randn(9, 4)
    save("conv_dw", x=xd, w=wd, b=bd, y=F.conv2d(xd, wd, bd, padding=1,
                                                 groups=4))
    # Non-square kernel, stride, padding and dilation.
    xr = randn(10, 1, 2, 8, 6)
    wr = randn(11, 3, 2, 2, 3)
    br = randn(12, 3)
    save("conv_rect", x=xr, w=wr, b=br,
         y=F.conv2d(xr, wr, br, stride=(1, 2), padding=(0, 1),
                    dilation=(2, 1)))


def linear_bn_cases():
    x = randn(20, 2, 3, 10)
    w = randn(21, 5, 10)
    b = randn(22, 5)
    save("linear", x=x, w=w, b=b, y=F.linear(x, w, b))
    x2 = randn(23, 4, 7)
    w2 = randn(24, 3, 7)
    save("linear_nobias", x=x2, w=w2, y=F.linear(x2, w2))
    xb = randn(25, 2, 3, 4, 5)
    mean = randn(26, 3)
    var = randn(27, 3).abs() + 0.5
    weight = randn(28, 3)
    bias = randn(29, 3)
    save("bn", x=xb, mean=mean, var=var, weight=weight, bias=bias,
         y=F.batch_norm(xb, mean, var, weight, bias, False, 0.1, 1e-5))
    x3 = randn(30, 2, 3, 4)
    save("bn_noaffine", x=x3, mean=mean, var=var,
         y=F.batch_norm(x3, mean, var, None, None, False, 0.1, 1e-3))


def activation_cases():
    # A sweep over [-8, 8] plus the breakpoints of the piecewise functions.
    x = torch.cat([torch.linspace(-8, 8, 57),
                   torch.tensor([-6.0, -3.0, -2.0, 0.0, 1.5, 3.0, 6.0]),
                   randn(40, 16) * 4])
    save("act", x=x, relu=F.relu(x), relu6=F.relu6(x),
         hardtanh=F.hardtanh(x, -2.0, 1.5), hardswish=F.hardswish(x),
         hardsigmoid=F.hardsigmoid(x), sigmoid=torch.sigmoid(x),
         tanh=torch.tanh(x), leaky_relu=F.leaky_relu(x, 0.1), silu=F.silu(x))


def pool_cases():
    x = randn(50, 1, 2, 7, 7)
    save("maxpool_k2s2", x=x, y=F.max_pool2d(x, 2, 2))
    save("maxpool_k3s2p1_ceil", x=x,
         y=F.max_pool2d(x, 3, 2, 1, ceil_mode=True))
    save("maxpool_d2", x=x, y=F.max_pool2d(x, 3, 1, 1, dilation=2))
    save("maxpool_rect", x=x, y=F.max_pool2d(x, (2, 3), (1, 2), (1, 1),
                                             dilation=(1, 2)))
    save("avgpool_rect", x=x, y=F.avg_pool2d(x, (3, 2), (2, 1), (1, 0)))
    # 5 wide, kernel 2, stride 2, padding 1, ceil mode: the last window would
    # start in the right padding, so PyTorch drops it (3 outputs, not 4).
    x5 = randn(51, 1, 2, 5, 5)
    save("maxpool_ceil_drop", x=x5, y=F.max_pool2d(x5, 2, 2, 1,
                                                   ceil_mode=True))
    save("avgpool_k3s2p1", x=x, y=F.avg_pool2d(x, 3, 2, 1))
    save("avgpool_nocount", x=x,
         y=F.avg_pool2d(x, 3, 2, 1, count_include_pad=False))
    # 6 wide, kernel 3, stride 2, padding 1, ceil mode: the last window
    # [5, 8) is cut at 6 + 1 for the padded count and at 6 for the sum.
    x6 = randn(54, 1, 2, 6, 6)
    save("avgpool_ceil", x=x6, y=F.avg_pool2d(x6, 3, 2, 1, ceil_mode=True))
    save("avgpool_ceil_nocount", x=x6,
         y=F.avg_pool2d(x6, 3, 2, 1, ceil_mode=True, count_include_pad=False))
    save("avgpool_div", x=x, y=F.avg_pool2d(x, 2, 1, 1, divisor_override=3))
    save("adaptive_7to3", x=x, y=F.adaptive_avg_pool2d(x, 3))
    x55 = randn(52, 1, 3, 5, 5)
    save("adaptive_5to2", x=x55, y=F.adaptive_avg_pool2d(x55, 2))
    xr = randn(53, 2, 2, 5, 7)
    save("adaptive_rect", x=xr, y=F.adaptive_avg_pool2d(xr, (2, 3)))


def elementwise_cases():
    a = randn(60, 2, 3, 4)
    b = randn(61, 3, 1)
    save("add_bcast", a=a, b=b, y=torch.add(a, b))
    a2 = randn(62, 2, 1, 4)
    save("add_alpha", a=a2, b=b, y=torch.add(a2, b, alpha=0.5))
    a3 = randn(63, 2, 3, 1, 5)
    b3 = randn(64, 4, 1)
    save("mul_bcast", a=a3, b=b3, y=torch.mul(a3, b3))


def reduction_cases():
    x = randn(70, 2, 4, 3) * 3
    save("softmax_d1", x=x, y=F.softmax(x, dim=1))
    save("softmax_dlast", x=x, y=F.softmax(x, dim=-1))
    xm = randn(71, 2, 3, 4, 5)
    save("mean_hw_keep", x=xm, y=xm.mean(dim=(2, 3), keepdim=True))
    save("mean_d1", x=xm, y=xm.mean(dim=1))
    save("mean_neg", x=xm, y=xm.mean(dim=(-1, 0)))


def movement_cases():
    a = randn(80, 2, 3, 4)
    b = randn(81, 2, 1, 4)
    c = randn(82, 2, 2, 4)
    save("cat_d1", a=a, b=b, c=c, y=torch.cat([a, b, c], dim=1))
    d = randn(83, 2, 3, 2)
    save("cat_neg", a=a, d=d, y=torch.cat([a, d], dim=-1))
    save("permute", x=a, y=a.permute(2, 0, 1).contiguous())
    save("transpose", x=a, y=a.transpose(0, 2).contiguous())


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(1)
    with torch.no_grad():
        conv_cases()
        linear_bn_cases()
        activation_cases()
        pool_cases()
        elementwise_cases()
        reduction_cases()
        movement_cases()


if __name__ == "__main__":
    main()
