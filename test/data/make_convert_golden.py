#!/usr/bin/env python3
# Generates the golden files in convert/ used by test/unit/ConvertTest.cpp:
# PyTorch 1.13's prepare_fx / convert_fx on the seed Net with the weights of
# zoo/net.safetensors. Needs python3-torch; run by hand from any directory
# and commit the output.
#   calibration.npy: 16 images [16,1,28,28] (blobs and strokes on noise,
#     normalized as MNIST), the one calibration batch;
#   test_input.npy: 4 more images, the batch the converted models run on;
#   net_<mapping>_qparams.txt: one line per activation observer call of the
#     prepared graph: "<observer module> <observed node> <scale> <zero point>"
#     after calibration (shared observers appear once per call);
#   net_<mapping>_output.npy: convert_fx's int8 output on test_input.npy,
#     run by the onednn quantized engine (this torch build has no fbgemm);
#   net_<mapping>_reference_output.npy: convert_to_reference_fx's output.
# <mapping> is "x86" (get_default_qconfig("x86") as the global qconfig, what
# qfx's "x86" preset is; for this Net it gives the same model as
# get_default_qconfig_mapping("x86"), which is checked) or "minmax"
# (MinMaxObserver quint8 reduce_range=True activations, per-channel
# symmetric qint8 MinMax weights).
import copy
import json
import os
import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.ao.quantization import (MinMaxObserver, PerChannelMinMaxObserver,
                                   QConfig, QConfigMapping,
                                   get_default_qconfig,
                                   get_default_qconfig_mapping)
from torch.ao.quantization.quantize_fx import (convert_fx,
                                               convert_to_reference_fx,
                                               prepare_fx)

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "convert")


class Net(nn.Module):
    """The seed Net, as in make_zoo_golden.py."""

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


def images(rng, n):
    """Digit-like inputs: a few bright blobs and strokes on faint noise."""
    yy, xx = np.mgrid[0:28, 0:28].astype(np.float64)
    batch = np.zeros((n, 1, 28, 28))
    for i in range(n):
        img = 0.1 * rng.random_sample((28, 28))
        for _ in range(rng.randint(1, 4)):
            cy, cx = rng.uniform(6, 22, size=2)
            sigma = rng.uniform(1.5, 4.0)
            img += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2))
        y0, x0, y1, x1 = rng.randint(3, 25, size=4)
        for t in np.linspace(0.0, 1.0, 40):
            y, x = int(round(y0 + t * (y1 - y0))), int(round(x0 + t * (x1 - x0)))
            img[max(y - 1, 0):y + 1, max(x - 1, 0):x + 1] = 1.0
        batch[i, 0] = np.clip(img, 0.0, 1.0)
    return ((batch - 0.1307) / 0.3081).astype(np.float32)


def mappings():
    minmax = QConfig(
        activation=MinMaxObserver.with_args(dtype=torch.quint8,
                                            reduce_range=True),
        weight=PerChannelMinMaxObserver.with_args(
            dtype=torch.qint8, qscheme=torch.per_channel_symmetric))
    return {
        "x86": QConfigMapping().set_global(get_default_qconfig("x86")),
        "minmax": QConfigMapping().set_global(minmax),
    }


def prepared(model, mapping, calib):
    p = prepare_fx(copy.deepcopy(model), mapping, (calib[:1],))
    p(calib)
    return p


def observer_lines(p):
    lines = []
    for node in p.graph.nodes:
        if node.op == "call_module" and "activation_post_process" in node.target:
            scale, zp = getattr(p, node.target).calculate_qparams()
            lines.append(f"{node.target} {node.args[0].name} "
                         f"{float(scale)!r} {int(zp)}")
    return lines


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.backends.quantized.engine = "onednn"
    rng = np.random.RandomState(0)
    calib = torch.from_numpy(images(rng, 16))
    test = torch.from_numpy(images(rng, 4))
    np.save(os.path.join(OUT, "calibration.npy"), calib.numpy())
    np.save(os.path.join(OUT, "test_input.npy"), test.numpy())

    model = Net().eval()
    model.load_state_dict(
        read_safetensors(os.path.join(HERE, "zoo", "net.safetensors")))
    with torch.no_grad():
        for name, mapping in mappings().items():
            p = prepared(model, mapping, calib)
            with open(os.path.join(OUT, f"net_{name}_qparams.txt"), "w") as f:
                f.write("\n".join(observer_lines(p)) + "\n")
            ref = convert_to_reference_fx(copy.deepcopy(p))
            np.save(os.path.join(OUT, f"net_{name}_reference_output.npy"),
                    ref(test).numpy())
            lowered = convert_fx(copy.deepcopy(p))
            out = lowered(test).numpy()
            np.save(os.path.join(OUT, f"net_{name}_output.npy"), out)
            if name == "x86":
                # The full default mapping makes the same model here.
                full = convert_fx(prepared(
                    model, get_default_qconfig_mapping("x86"), calib))
                assert np.array_equal(full(test).numpy(), out)


if __name__ == "__main__":
    main()
