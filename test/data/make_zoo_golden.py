#!/usr/bin/env python3
# Generates the golden files in zoo/ used by test/unit/ZooTest.cpp. Needs
# python3-torch and python3-torchvision; run by hand from any directory and
# commit the output.
#   <model>.state_dict.txt: "name shape" per state_dict entry, in order
#     (shape as 64,3,7,7; empty for scalars);
#   <model>.modules.txt: "name class" per named_modules entry ("" is the root,
#     written as "-");
#   <model>.fx.txt: "name op target inputs" per node of torch.fx's
#     symbolic_trace, inputs as comma-separated node names ("-" if none);
#   <model>_input.npy, <model>_output.npy: a seeded input and the eval-mode
#     output with every state_dict tensor filled by hash_fill below (the real
#     weights are too large to commit; the C++ test fills identically);
#   net.safetensors, net_trained_output.npy: the Net's default-initialized
#     state_dict under torch.manual_seed(0), and its output on net_input.npy.
# The .safetensors file is written from the format's specification (u64
# little-endian header length, JSON header, data buffer) so that no package
# beyond torch is needed.
import json
import os
import struct

import numpy as np
import torch
import torch.fx
import torch.nn as nn
import torch.nn.functional as F
import torchvision

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "zoo")


class Net(nn.Module):
    """The seed Net of PyTorch's quantization notes, functional as there."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 40, 3)
        self.conv2 = nn.Conv2d(40, 40, 3)
        self.fc = nn.Linear(5 * 5 * 40, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2, 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2, 2)
        x = x.reshape(-1, 5 * 5 * 40)
        return self.fc(x)


def conv_bn(cin, cout, k, stride=1, groups=1, act=None):
    """torchvision's Conv2dNormActivation with MobileNetV3's batch norm."""
    from torchvision.ops.misc import Conv2dNormActivation
    return Conv2dNormActivation(
        cin, cout, k, stride, groups=groups, activation_layer=act,
        norm_layer=lambda c: nn.BatchNorm2d(c, eps=0.001, momentum=0.01))


class MobileNetV3CNN(nn.Module):
    """qfx's mobilenet_v3_cnn: a MobileNetV3-style CNN for 28x28 inputs
    (hardswish, x * sigmoid(x), depthwise convs, squeeze-excitation). Kept
    identical to tools/qfx-bench/pytorch_fx_bench.py's copy."""

    def __init__(self, num_classes=10):
        super().__init__()
        from torchvision.ops.misc import SqueezeExcitation
        se = lambda c, s: SqueezeExcitation(c, s,
                                            scale_activation=nn.Hardsigmoid)
        self.stem = conv_bn(1, 16, 3, 2)
        self.dw1 = conv_bn(16, 16, 3, 1, 16)
        self.se1 = se(16, 8)
        self.pw1 = conv_bn(16, 24, 1)
        self.expand2 = conv_bn(24, 72, 1, act=nn.Hardswish)
        self.dw2 = conv_bn(72, 72, 3, 2, 72, act=nn.Hardswish)
        self.se2 = se(72, 24)
        self.pw2 = conv_bn(72, 40, 1)
        self.head = conv_bn(40, 128, 1, act=nn.Hardswish)
        self.fc = nn.Linear(128, num_classes)

    def forward(self, x):
        x = F.hardswish(self.stem(x))
        x = self.dw1(x)
        x = x * torch.sigmoid(x)
        x = self.pw1(self.se1(x))
        x = self.pw2(self.se2(self.dw2(self.expand2(x))))
        x = F.adaptive_avg_pool2d(self.head(x), (1, 1))
        return self.fc(torch.flatten(x, 1))


def hash_fill(k, name, shape):
    """Deterministic values for the k-th state_dict entry; ZooTest.cpp's
    hashFill computes the same float64 expressions and rounds alike. Weights
    get Kaiming-uniform bounds, sqrt(6 / fan_in): with 1 / sqrt(fan_in) the
    signal of MobileNetV2's 52 convolutions vanishes and its output no
    longer depends on the input, which would make the comparison vacuous."""
    n = int(np.prod(shape, dtype=np.int64))
    i = np.arange(n, dtype=np.uint64)
    h = (i * np.uint64(2654435761) + np.uint64(k * 40503 + 12345)) & np.uint64(
        0xFFFFFFFF)
    u = h.astype(np.float64) / 4294967296.0
    if name.endswith("num_batches_tracked"):
        return torch.zeros(shape, dtype=torch.int64)
    if len(shape) >= 2:
        v = (2.0 * u - 1.0) * np.sqrt(6.0 / float(n // shape[0]))
    elif name.endswith("running_var") or name.endswith("weight"):
        v = 0.5 + u
    else:
        v = (2.0 * u - 1.0) * 0.1
    return torch.from_numpy(v.astype(np.float32).reshape(shape))


def fill_state_dict(model):
    sd = model.state_dict()
    filled = {name: hash_fill(k, name, tuple(t.shape))
              for k, (name, t) in enumerate(sd.items())}
    model.load_state_dict(filled)


def write_lines(name, lines):
    with open(os.path.join(OUT, name), "w") as f:
        f.write("\n".join(lines) + "\n")


def write_structure(name, model):
    write_lines(name + ".state_dict.txt",
                [f"{n} {','.join(str(d) for d in t.shape)}".rstrip()
                 for n, t in model.state_dict().items()])
    write_lines(name + ".modules.txt",
                [f"{n or '-'} {type(m).__name__}"
                 for n, m in model.named_modules()])
    lines = []
    for node in torch.fx.symbolic_trace(model).graph.nodes:
        target = node.target
        if not isinstance(target, str):
            target = target.__name__
        inputs = []
        torch.fx.node.map_arg(node.args, lambda a: inputs.append(a.name))
        lines.append(f"{node.name} {node.op} {target} "
                     f"{','.join(inputs) or '-'}")
    write_lines(name + ".fx.txt", lines)


def save_npy(name, t):
    np.save(os.path.join(OUT, name), t.detach().numpy().astype(np.float32))


def write_safetensors(name, tensors):
    header, buf = {}, b""
    for key in sorted(tensors):
        data = tensors[key].detach().contiguous().numpy().tobytes()
        header[key] = {"dtype": "F32", "shape": list(tensors[key].shape),
                       "data_offsets": [len(buf), len(buf) + len(data)]}
        buf += data
    text = json.dumps(header, separators=(",", ":"), sort_keys=True)
    text += " " * (-len(text) % 8)
    raw = text.encode("utf-8")
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw + buf)


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.RandomState(0)
    inputs = {
        "net": rng.standard_normal((2, 1, 28, 28)),
        "resnet18": rng.standard_normal((1, 3, 64, 64)),
        "mobilenet_v2": rng.standard_normal((1, 3, 64, 64)),
        "mobilenet_v3_small": rng.standard_normal((1, 3, 64, 64)),
        "mobilenet_v3_cnn": rng.standard_normal((2, 1, 28, 28)),
    }
    models = {
        "net": Net(),
        "resnet18": torchvision.models.resnet18(),
        "mobilenet_v2": torchvision.models.mobilenet_v2(),
        "mobilenet_v3_small": torchvision.models.mobilenet_v3_small(),
        "mobilenet_v3_cnn": MobileNetV3CNN(),
    }
    with torch.no_grad():
        for name, model in models.items():
            model.eval()
            write_structure(name, model)
            fill_state_dict(model)
            x = torch.from_numpy(inputs[name].astype(np.float32))
            save_npy(name + "_input.npy", x)
            save_npy(name + "_output.npy", model(x))

        torch.manual_seed(0)
        net = Net().eval()
        write_safetensors("net.safetensors", net.state_dict())
        x = torch.from_numpy(inputs["net"].astype(np.float32))
        save_npy("net_trained_output.npy", net(x))


if __name__ == "__main__":
    main()
