#!/usr/bin/env python3
# Generates the golden files in scalar_arith/ used by
# test/unit/ScalarArithGoldenTest.cpp: PyTorch 1.13's prepare_fx (the x86
# qconfig mapping) -> calibration -> convert_fx on a small model whose
# linears are joined by add and mul with a scalar, each with one tensor
# operand: in range (+ 0.3), mirrored (* -0.5), out of range (+ 20.0),
# scalar first (2 * y) and followed by relu. PyTorch makes such an op's
# output share its input's observer and lowers it to quantized::add /
# quantized::mul with a scalar, which derive their output qparams from the
# input's. Needs python3-torch; run by hand from any directory and commit
# the output.
#   weights.safetensors: the float32 state dict (torch.manual_seed(0));
#   calibration.npy: float32 [64, 8], the one calibration batch;
#   test_input.npy: float32 [16, 8], the batch the converted model runs on;
#   qparams.txt: one line per activation observer call of the prepared
#     graph after calibration: "<observer module> <observed node> <scale>
#     <zero point>";
#   graph.txt: the converted graph (for reading, not compared);
#   output.npy: convert_fx's output on test_input.npy (onednn engine).
import copy
import os
import sys

import numpy as np
import torch
from torch.ao.quantization import get_default_qconfig_mapping
from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts"))
from vit_fashion import save_safetensors  # noqa: E402

sys.path.insert(0, HERE)
from make_encoder_block_golden import observer_lines  # noqa: E402

OUT = os.path.join(HERE, "scalar_arith")


class ScalarNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(8, 8)
        self.fc2 = torch.nn.Linear(8, 8)
        self.fc3 = torch.nn.Linear(8, 8)

    def forward(self, x):
        y = self.fc1(x) + 0.3
        y = torch.relu(y) * -0.5
        y = self.fc2(y) + 20.0
        return 2 * self.fc3(y)


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.backends.quantized.engine = "onednn"
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = ScalarNet().eval()
    gen = torch.Generator().manual_seed(1)
    calib = torch.randn(64, 8, generator=gen)
    test = torch.randn(16, 8, generator=gen)
    np.save(os.path.join(OUT, "calibration.npy"), calib.numpy())
    np.save(os.path.join(OUT, "test_input.npy"), test.numpy())
    save_safetensors(os.path.join(OUT, "weights.safetensors"),
                     model.state_dict())
    with torch.no_grad():
        p = prepare_fx(copy.deepcopy(model), get_default_qconfig_mapping("x86"),
                       (calib[:1],))
        p(calib)
        with open(os.path.join(OUT, "qparams.txt"), "w") as f:
            f.write("\n".join(observer_lines(p)) + "\n")
        q = convert_fx(p)
        with open(os.path.join(OUT, "graph.txt"), "w") as f:
            f.write(str(q.graph) + "\n")
        np.save(os.path.join(OUT, "output.npy"), q(test).numpy())


if __name__ == "__main__":
    main()
