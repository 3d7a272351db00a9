#!/usr/bin/env python3
# Generates PyTorch 1.13's ONNX exports of the trained zoo ViT for the ONNX
# importer's end-to-end test (test/unit/OnnxVitTest.cpp), in onnx/:
#   vit_opset13.onnx: torch.onnx.export at opset 13 (GELU as Div / Erf /
#     Add / Mul / Mul, LayerNorm as ReduceMean / Sub / Pow / ReduceMean /
#     Add / Sqrt / Div / Mul / Add, class_token.expand(N, -1, -1) as a
#     Shape / ConstantOfShape / Equal / Where computation feeding Expand);
#   vit_opset17.onnx: the same at opset 17 (LayerNormalization);
#     both with input "input" [batch, 1, 28, 28], output "output"
#     [batch, 10] and a dynamic batch axis, weights from
#     models/vit_fashion.safetensors (scripts/vit_fashion.py's model);
#   vit_input.npy: float32 [4, 1, 28, 28], the first 4 Fashion-MNIST test
#     images normalized as qfx does ((x / 255 - 0.5) / 0.5);
#   vit_output.npy: float32 [4, 10], PyTorch's eval-mode float32 logits.
# Needs Debian's python3-torch, python3-onnx and dataset-fashion-mnist; run
# by hand with /usr/bin/python3 from any directory and commit the output;
# re-running reproduces every file byte for byte.
import os
import sys

import numpy as np
import onnx
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts"))
from vit_fashion import load_split, load_vit  # noqa: E402

OUT = os.path.join(HERE, "onnx")
COUNT = 4


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    x, _ = load_split("t10k")
    x = x[:COUNT].contiguous()
    model = load_vit().eval()
    with torch.no_grad():
        logits = model(x)
    for opset in (13, 17):
        path = os.path.join(OUT, f"vit_opset{opset}.onnx")
        torch.onnx.export(model, x, path, opset_version=opset,
                          input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {0: "batch"},
                                        "output": {0: "batch"}},
                          do_constant_folding=True)
        ops = sorted({n.op_type for n in onnx.load(path).graph.node})
        print(f"wrote {path} ({os.path.getsize(path)} bytes): {' '.join(ops)}")
    np.save(os.path.join(OUT, "vit_input.npy"), x.numpy())
    np.save(os.path.join(OUT, "vit_output.npy"), logits.numpy())
    print("predicted", logits.argmax(1).tolist())


if __name__ == "__main__":
    main()
