#!/usr/bin/env python3
# Generates the golden files in transformer/ used by test/unit/TransformerTest.cpp
# (layer_norm, gelu, matmul/bmm and the zoo ViT against PyTorch 1.13). Needs
# python3-torch; run by hand from any directory and commit the output.
#   ln_*.npy, gelu_*.npy, mm_*.npy: op inputs and outputs;
#   vit_input.npy, vit_output.npy: a seeded input and the eval-mode output of
#     the ViT twin below (the architecture of docs/models.md, names as the
#     C++ zoo's vit_fashion) with every state_dict tensor filled by
#     make_zoo_golden.py's hash_fill (the C++ test fills identically);
#   vit_state_dict.txt: "name shape" per state_dict entry, in order;
#   attention_opset17.onnx, attention_input.npy, attention_output.npy:
#     torch.onnx.export (opset 17, dynamic batch) of AttentionHead below
#     (LayerNormalization, MatMul of activations, Softmax, Transpose, Gather
#     of x[:, 0]) and its output on a seeded input;
#   ../zoo/vit_fashion_input.npy: the same input, for ZooTest's loops over
#     the zoo.
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from make_zoo_golden import hash_fill  # noqa: E402

OUT = os.path.join(HERE, "transformer")

HIDDEN, HEADS, HEAD_DIM, MLP, LAYERS, PATCH, TOKENS = 64, 4, 16, 128, 4, 7, 17


class SelfAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.q_proj = nn.Linear(HIDDEN, HIDDEN)
        self.k_proj = nn.Linear(HIDDEN, HIDDEN)
        self.v_proj = nn.Linear(HIDDEN, HIDDEN)
        self.out_proj = nn.Linear(HIDDEN, HIDDEN)

    def forward(self, x):
        def heads(t):
            return t.reshape(-1, TOKENS, HEADS, HEAD_DIM).permute(0, 2, 1, 3)
        q, k, v = heads(self.q_proj(x)), heads(self.k_proj(x)), heads(self.v_proj(x))
        scores = torch.matmul(q, k.transpose(-2, -1)) * 0.25
        attn = F.softmax(scores, dim=-1)
        ctx = torch.matmul(attn, v).permute(0, 2, 1, 3).reshape(-1, TOKENS, HIDDEN)
        return self.out_proj(ctx)


class EncoderBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_1 = nn.LayerNorm(HIDDEN, eps=1e-6)
        self.self_attention = SelfAttention()
        self.ln_2 = nn.LayerNorm(HIDDEN, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(HIDDEN, MLP), nn.GELU(), nn.Dropout(0.0),
                                 nn.Linear(MLP, HIDDEN), nn.Dropout(0.0))

    def forward(self, x):
        x = x + self.self_attention(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.pos_embedding = nn.Parameter(torch.zeros(1, TOKENS, HIDDEN))
        self.layers = nn.Sequential()
        for i in range(LAYERS):
            self.layers.add_module(f"encoder_layer_{i}", EncoderBlock())
        self.ln = nn.LayerNorm(HIDDEN, eps=1e-6)

    def forward(self, x):
        return self.ln(self.layers(x + self.pos_embedding))


class Heads(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = nn.Linear(HIDDEN, 10)

    def forward(self, x):
        return self.head(x)


class ViT(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv_proj = nn.Conv2d(1, HIDDEN, PATCH, stride=PATCH)
        self.class_token = nn.Parameter(torch.zeros(1, 1, HIDDEN))
        self.encoder = Encoder()
        self.heads = Heads()

    def forward(self, x):
        x = self.conv_proj(x).flatten(2).transpose(1, 2)
        cls = self.class_token.expand(x.shape[0], -1, -1)
        x = self.encoder(torch.cat([cls, x], dim=1))
        return self.heads(x[:, 0])


class AttentionHead(nn.Module):
    """ln_1, self-attention and its residual, then the class token: the
    ONNX import test's model (GELU exports as Erf, which qfx lacks)."""

    def __init__(self):
        super().__init__()
        self.ln_1 = nn.LayerNorm(HIDDEN, eps=1e-6)
        self.self_attention = SelfAttention()

    def forward(self, x):
        x = x + self.self_attention(self.ln_1(x))
        return x[:, 0]


def save(name, t):
    np.save(os.path.join(OUT, name), np.ascontiguousarray(
        t.detach().numpy().astype(np.float32)))


def main():
    os.makedirs(OUT, exist_ok=True)
    g = torch.Generator().manual_seed(14)

    def randn(*shape):
        return torch.randn(*shape, generator=g)

    with torch.no_grad():
        x, w, b = randn(2, 5, 8), randn(8), randn(8)
        for n, t in [("ln_x", x), ("ln_w", w), ("ln_b", b),
                     ("ln_out", F.layer_norm(x, [8], w, b, 1e-6)),
                     ("ln2_out", F.layer_norm(x, [5, 8]))]:
            save(n + ".npy", t)
        x = torch.linspace(-6, 6, 97)
        save("gelu_x.npy", x)
        save("gelu_erf.npy", F.gelu(x))
        save("gelu_tanh.npy", F.gelu(x, approximate="tanh"))
        cases = {"4x4": ((2, 3, 4, 5), (2, 3, 5, 6)),
                 "3x2": ((2, 4, 5), (5, 3)),
                 "1x3": ((5,), (2, 5, 3)),
                 "3x1": ((2, 4, 5), (5,)),
                 "bcast": ((2, 1, 4, 5), (3, 5, 2))}
        for name, (sa, sb) in cases.items():
            a, bb = randn(*sa), randn(*sb)
            save(f"mm_{name}_a.npy", a)
            save(f"mm_{name}_b.npy", bb)
            save(f"mm_{name}_out.npy", torch.matmul(a, bb))

        vit = ViT().eval()
        sd = vit.state_dict()
        vit.load_state_dict({name: hash_fill(k, name, tuple(t.shape))
                             for k, (name, t) in enumerate(sd.items())})
        with open(os.path.join(OUT, "vit_state_dict.txt"), "w") as f:
            for name, t in sd.items():
                f.write(f"{name} {','.join(str(d) for d in t.shape)}\n")
        x = torch.from_numpy(np.random.RandomState(0).standard_normal(
            (2, 1, 28, 28)).astype(np.float32))
        save("vit_input.npy", x)
        head = AttentionHead().eval()
        xa = torch.randn(2, TOKENS, HIDDEN, generator=g)
        torch.onnx.export(head, xa, os.path.join(OUT, "attention_opset17.onnx"),
                          opset_version=17, input_names=["x"],
                          output_names=["y"],
                          dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
        save("attention_input.npy", xa)
        save("attention_output.npy", head(xa))
        np.save(os.path.join(HERE, "zoo", "vit_fashion_input.npy"), x.numpy())
        save("vit_output.npy", vit(x))


if __name__ == "__main__":
    main()
