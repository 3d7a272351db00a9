#!/usr/bin/env python3
# Generates the golden files in nn/ used by test/unit/ModuleTest.cpp and
# test/unit/ModulesTest.cpp. Needs python3-torch; run by hand from any
# directory and commit the output.
#   <model>.keys: named_modules (with class names), named_parameters,
#     named_buffers and state_dict of models the tests rebuild in C++, one
#     "<section>\t<name>\t<kind or shape>" line each, in PyTorch's order;
#   small.safetensors, small_io.safetensors: a trained-looking state_dict of
#     a Conv2d+BatchNorm2d+Linear model and its eval-mode output on an input;
#   builtin.safetensors: one input and the output of each built-in module
#     configuration the tests construct.
# The .safetensors files are written from the format's specification (u64
# little-endian header length, JSON header, data buffer) so that no package
# beyond torch is needed.
import json
import os
import struct

import torch
import torch.nn as nn
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "nn")

DTYPES = {torch.float32: "F32", torch.int64: "I64"}


def write_safetensors(name, tensors):
    header, buf = {}, b""
    for key in sorted(tensors):
        t = tensors[key].detach().contiguous()
        data = t.numpy().tobytes()
        header[key] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape),
                       "data_offsets": [len(buf), len(buf) + len(data)]}
        buf += data
    text = json.dumps(header, separators=(",", ":"), sort_keys=True)
    text += " " * (-len(text) % 8)
    raw = text.encode("utf-8")
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw + buf)


def shape(t):
    return "[" + ",".join(str(d) for d in t.shape) + "]"


def write_keys(name, model):
    lines = []
    for n, m in model.named_modules():
        lines.append(f"module\t{n}\t{type(m).__name__}")
    for n, p in model.named_parameters():
        lines.append(f"parameter\t{n}\t{shape(p)}")
    for n, b in model.named_buffers():
        lines.append(f"buffer\t{n}\t{shape(b)}")
    for n, t in model.state_dict().items():
        lines.append(f"state\t{n}\t{shape(t)}")
    with open(os.path.join(OUT, name + ".keys"), "w") as f:
        f.write("\n".join(lines) + "\n")


# A ResNet-like model: nested Sequentials of blocks, one with a downsample.
class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False),
                nn.BatchNorm2d(cout))


class ResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(4)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(2)
        self.layer1 = nn.Sequential(BasicBlock(4, 4, 1), BasicBlock(4, 4, 1))
        self.layer2 = nn.Sequential(BasicBlock(4, 8, 2))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 10)


# Children registered before tensors, buffers interleaved with parameters,
# an absent parameter and a module registered under two names: the cases
# where PyTorch's orders are not registration order.
class Odd(nn.Module):
    def __init__(self):
        super().__init__()
        self.child = nn.Linear(2, 3)
        self.register_buffer("b", torch.zeros(2))
        self.register_parameter("a", nn.Parameter(torch.ones(3)))
        self.register_buffer("c", torch.zeros(1, 2))
        self.register_parameter("d", nn.Parameter(torch.ones(4)))
        self.register_parameter("absent", None)
        self.tail = nn.BatchNorm2d(2)
        self.alias = self.child


# The model whose trained state and output the tests reproduce.
class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(4 * 3 * 3, 5))

    def forward(self, x):
        return self.head(self.pool(self.relu(self.bn(self.conv(x)))))


def small():
    model = Small()
    # A few training-mode passes give non-trivial running statistics and
    # num_batches_tracked = 3.
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(4, 2, 6, 6) * 2 + 0.5)
        model.bn.weight.uniform_(0.5, 1.5)
        model.bn.bias.uniform_(-0.5, 0.5)
    model.eval()
    x = torch.randn(2, 2, 6, 6)
    with torch.no_grad():
        y = model(x)
    write_safetensors("small.safetensors", model.state_dict())
    write_safetensors("small_io.safetensors", {"input": x, "output": y})


# Name -> module; ModulesTest.cpp builds the same configurations.
def builtins():
    return {
        "relu": nn.ReLU(),
        "relu6": nn.ReLU6(),
        "hardtanh": nn.Hardtanh(-0.5, 0.25),
        "hardswish": nn.Hardswish(),
        "hardsigmoid": nn.Hardsigmoid(),
        "sigmoid": nn.Sigmoid(),
        "tanh": nn.Tanh(),
        "leaky_relu": nn.LeakyReLU(0.2),
        "max_pool": nn.MaxPool2d(3, 2, 1),
        "max_pool_ceil": nn.MaxPool2d(2, 2, 0, 2, ceil_mode=True),
        "avg_pool": nn.AvgPool2d(3, 2, 1, True, False),
        "avg_pool_divisor": nn.AvgPool2d(2, 1, 0, False, True, 3),
        "adaptive_avg_pool": nn.AdaptiveAvgPool2d((2, 3)),
        "flatten": nn.Flatten(1, 2),
        "identity": nn.Identity(),
        "softmax": nn.Softmax(1),
        "dropout_eval": nn.Dropout(0.3).eval(),
        "conv": nn.Conv2d(2, 4, 3, stride=2, padding=1, groups=2),
        "conv_nobias": nn.Conv2d(2, 3, (3, 2), padding=(1, 0), dilation=2,
                                 bias=False),
        "linear": nn.Linear(5, 3),
        "batch_norm": nn.BatchNorm2d(2, eps=0.1),
        "silu": nn.SiLU(),
    }


def builtin_outputs():
    x = torch.randn(1, 2, 5, 5) * 3
    out = {"input": x}
    with torch.no_grad():
        for name, m in builtins().items():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-1, 1)
                m.eval()
            for k, t in m.state_dict().items():
                out[f"{name}.{k}"] = t
            out[f"{name}.output"] = m(x)
    write_safetensors("builtin.safetensors", out)


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    write_keys("resnet", ResNet())
    write_keys("odd", Odd())
    small()
    builtin_outputs()


if __name__ == "__main__":
    main()
