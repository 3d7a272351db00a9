#!/usr/bin/env python3
# Generates the golden files in encoder_block/ used by
# test/unit/EncoderBlockGoldenTest.cpp: PyTorch 1.13's prepare_fx (the
# x86 qconfig mapping, get_default_qconfig_mapping("x86")) -> calibration ->
# convert_fx on one encoder block of the zoo ViT (scripts/vit_fashion.py's
# EncoderBlock: ln_1, q/k/v projections, scaled matmul, softmax, out_proj,
# residual, ln_2, GELU MLP, residual) with fixed seeded weights. Needs
# python3-torch; run by hand from any directory and commit the output.
#   weights.safetensors: the block's float32 state dict (torch.manual_seed(0)
#     initialization, LayerNorm affine parameters perturbed so they matter);
#   calibration.npy: float32 [16, 17, 64], the one calibration batch;
#   test_input.npy: float32 [4, 17, 64], the batch the converted models run on;
#   float_output.npy: the float block's output on test_input.npy;
#   <variant>_qparams.txt: one line per activation observer call of the
#     prepared graph after calibration: "<observer module> <observed node>
#     <scale> <zero point>" (node names are FX's, which qfx's tracer follows);
#   <variant>_graph.txt: the converted graph (for reading, not compared);
#   <variant>_output.npy: convert_fx's int8 output on test_input.npy, run by
#     the onednn quantized engine (this torch build has no fbgemm);
#   <variant>_reference_output.npy: convert_to_reference_fx's output.
# <variant> is "x86" (PyTorch as it is). PyTorch 1.13 treats a mul with one
# tensor operand as a general tensor-value op and makes its output share the
# input's observer, so the one HistogramObserver of the scores sees both
# q k^T and q k^T / 4; the lowered quantized::mul with a scalar ignores that
# observer and derives its output qparams from its input's. qfx does both.
# Inputs are seeded normals, like a residual stream.
import copy
import os
import sys

import numpy as np
import torch
from torch.ao.quantization import get_default_qconfig_mapping
from torch.ao.quantization.quantize_fx import (convert_fx,
                                               convert_to_reference_fx,
                                               prepare_fx)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts"))
from vit_fashion import HIDDEN, TOKENS, EncoderBlock, save_safetensors  # noqa: E402

OUT = os.path.join(HERE, "encoder_block")


def block():
    torch.manual_seed(0)
    b = EncoderBlock()
    with torch.no_grad():
        for ln in (b.ln_1, b.ln_2):
            ln.weight.copy_(1.0 + 0.2 * torch.randn(HIDDEN))
            ln.bias.copy_(0.1 * torch.randn(HIDDEN))
    return b.eval()


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
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(1)
    calib = torch.randn(16, TOKENS, HIDDEN, generator=gen)
    test = torch.randn(4, TOKENS, HIDDEN, generator=gen)
    np.save(os.path.join(OUT, "calibration.npy"), calib.numpy())
    np.save(os.path.join(OUT, "test_input.npy"), test.numpy())
    model = block()
    save_safetensors(os.path.join(OUT, "weights.safetensors"),
                     model.state_dict())
    with torch.no_grad():
        np.save(os.path.join(OUT, "float_output.npy"), model(test).numpy())
        for variant in ("x86",):
            p = prepare_fx(copy.deepcopy(model),
                           get_default_qconfig_mapping("x86"), (calib[:1],))
            p(calib)
            with open(os.path.join(OUT, f"{variant}_qparams.txt"), "w") as f:
                f.write("\n".join(observer_lines(p)) + "\n")
            ref = convert_to_reference_fx(copy.deepcopy(p))
            np.save(os.path.join(OUT, f"{variant}_reference_output.npy"),
                    ref(test).numpy())
            q = convert_fx(copy.deepcopy(p))
            with open(os.path.join(OUT, f"{variant}_graph.txt"), "w") as f:
                f.write(str(q.graph) + "\n")
            np.save(os.path.join(OUT, f"{variant}_output.npy"), q(test).numpy())


if __name__ == "__main__":
    main()
