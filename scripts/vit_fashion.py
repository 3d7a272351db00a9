"""The zoo ViT for Fashion-MNIST in PyTorch: model, data and weights I/O.

The PyTorch twin of qfx's zoo ViT. The architecture and every module and
parameter name are fixed by the zoo (torchvision's VisionTransformer names,
except that attention is written out with q_proj / k_proj / v_proj /
out_proj so FX quantization reaches every Linear and matmul):

  conv_proj                Conv2d(1, 64, 7, stride 7)     -> [N, 64, 4, 4]
  flatten(2).transpose(1, 2)                              -> [N, 16, 64]
  class_token [1, 1, 64], expanded and cat'ed in front    -> [N, 17, 64]
  encoder.pos_embedding [1, 17, 64], added
  encoder.layers.encoder_layer_{0..3}: pre-norm blocks of
      ln_1, self_attention.{q,k,v,out}_proj (4 heads of 16), residual,
      ln_2, mlp.0 Linear(64, 128), mlp.1 GELU (erf), mlp.3 Linear(128, 64),
      residual
  encoder.ln, then the class token x[:, 0]                -> [N, 64]
  heads.head               Linear(64, 10)

Shared by scripts/train_vit_pytorch.py (training), scripts/eval_vit_pytorch.py
(fp32 / FX static int8 / dynamic int8 accuracy), test/data/make_vit_golden.py
(the C++ zoo's golden logits) and tools/qfx-bench/pytorch_fx_bench.py
(the PyTorch latency peer). Needs only torch and numpy.
"""
import gzip
import json
import os
import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

DATA = "/usr/share/datasets/fashion-mnist"

# The repository's models/vit_fashion.safetensors, found from this file.
WEIGHTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                       "models", "vit_fashion.safetensors")

HIDDEN, HEADS, HEAD_DIM, MLP, LAYERS = 64, 4, 16, 128, 4
PATCH, TOKENS = 7, 17  # (28 / 7)^2 patches + the class token
NUM_CLASSES = 10


class SelfAttention(nn.Module):
    """Multi-head self-attention with separate q/k/v projections, computed
    as torchvision's ViT (nn.MultiheadAttention) does: scaled q k^T,
    softmax over keys, times v, output projection."""

    def __init__(self):
        super().__init__()
        self.q_proj = nn.Linear(HIDDEN, HIDDEN)
        self.k_proj = nn.Linear(HIDDEN, HIDDEN)
        self.v_proj = nn.Linear(HIDDEN, HIDDEN)
        self.out_proj = nn.Linear(HIDDEN, HIDDEN)

    def forward(self, x):
        q = self.q_proj(x).reshape(-1, TOKENS, HEADS, HEAD_DIM).permute(0, 2, 1, 3)
        k = self.k_proj(x).reshape(-1, TOKENS, HEADS, HEAD_DIM).permute(0, 2, 1, 3)
        v = self.v_proj(x).reshape(-1, TOKENS, HEADS, HEAD_DIM).permute(0, 2, 1, 3)
        scores = torch.matmul(q, k.transpose(-2, -1)) * 0.25  # 1 / sqrt(16)
        attn = F.softmax(scores, dim=-1)
        ctx = torch.matmul(attn, v).permute(0, 2, 1, 3).reshape(-1, TOKENS, HIDDEN)
        return self.out_proj(ctx)


class EncoderBlock(nn.Module):
    """Pre-norm encoder block (torchvision's EncoderBlock)."""

    def __init__(self):
        super().__init__()
        self.ln_1 = nn.LayerNorm(HIDDEN, eps=1e-6)
        self.self_attention = SelfAttention()
        self.ln_2 = nn.LayerNorm(HIDDEN, eps=1e-6)
        self.mlp = nn.Sequential(
            nn.Linear(HIDDEN, MLP), nn.GELU(), nn.Dropout(0.0),
            nn.Linear(MLP, HIDDEN), nn.Dropout(0.0))

    def forward(self, x):
        x = x + self.self_attention(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.pos_embedding = nn.Parameter(torch.empty(1, TOKENS, HIDDEN))
        self.layers = nn.Sequential()
        for i in range(LAYERS):
            self.layers.add_module(f"encoder_layer_{i}", EncoderBlock())
        self.ln = nn.LayerNorm(HIDDEN, eps=1e-6)

    def forward(self, x):
        return self.ln(self.layers(x + self.pos_embedding))


class Heads(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = nn.Linear(HIDDEN, NUM_CLASSES)

    def forward(self, x):
        return self.head(x)


class ViT(nn.Module):
    """The zoo ViT: [N, 1, 28, 28] normalized images -> [N, 10] logits."""

    def __init__(self):
        super().__init__()
        self.conv_proj = nn.Conv2d(1, HIDDEN, PATCH, stride=PATCH)
        self.class_token = nn.Parameter(torch.zeros(1, 1, HIDDEN))
        self.encoder = Encoder()
        self.heads = Heads()
        self.reset_parameters()

    def reset_parameters(self):
        """torchvision's VisionTransformer initialization."""
        fan_in = self.conv_proj.in_channels * PATCH * PATCH
        nn.init.trunc_normal_(self.conv_proj.weight, std=(1.0 / fan_in) ** 0.5)
        nn.init.zeros_(self.conv_proj.bias)
        nn.init.normal_(self.encoder.pos_embedding, std=0.02)
        for block in self.encoder.layers:
            for m in (block.mlp[0], block.mlp[3]):
                nn.init.xavier_uniform_(m.weight)
                nn.init.normal_(m.bias, std=1e-6)
            attn = block.self_attention
            for m in (attn.q_proj, attn.k_proj, attn.v_proj):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
            nn.init.zeros_(attn.out_proj.bias)
        nn.init.zeros_(self.heads.head.weight)
        nn.init.zeros_(self.heads.head.bias)

    def forward(self, x):
        x = self.conv_proj(x).flatten(2).transpose(1, 2)
        cls = self.class_token.expand(x.shape[0], -1, -1)
        x = self.encoder(torch.cat([cls, x], dim=1))
        return self.heads(x[:, 0])


def read_idx(path):
    """An IDX file (gzipped) as uint8 images [N, 1, H, W] or labels [N]."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, n = struct.unpack(">II", data[:8])
    if magic == 2051:
        rows, cols = struct.unpack(">II", data[8:16])
        return np.frombuffer(data, np.uint8, offset=16).reshape(n, 1, rows, cols)
    return np.frombuffer(data, np.uint8, offset=8)


def to_input(images):
    # qfx's normalization (normalizeImages, used by qfx-train and the demo):
    # x / 255, then (x - 0.5) / 0.5.
    return (torch.from_numpy(images.astype(np.float32)) / 255.0 - 0.5) / 0.5


def load_split(split, data=DATA):
    """Normalized images and int64 labels of "train" or "t10k"."""
    x = to_input(read_idx(f"{data}/{split}-images-idx3-ubyte.gz"))
    y = read_idx(f"{data}/{split}-labels-idx1-ubyte.gz").astype(np.int64)
    return x, torch.from_numpy(y)


def save_safetensors(path, tensors):
    """float32 tensors, sorted by name, as scripts/train_net_pytorch.py
    writes them."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        arr = tensors[name].detach().contiguous().numpy().astype("<f4")
        raw = arr.tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)


def load_safetensors(path):
    """The float32 tensors of a safetensors file, by name."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] != "F32":
            raise ValueError(f"{path}: {name}: expected F32, got {info['dtype']}")
        begin, end = info["data_offsets"]
        arr = np.frombuffer(data[8 + n + begin:8 + n + end], "<f4")
        out[name] = torch.from_numpy(arr.reshape(info["shape"]).copy())
    return out


def load_vit(path=WEIGHTS):
    """The trained ViT in eval mode; every parameter must be in the file."""
    model = ViT()
    model.load_state_dict(load_safetensors(path), strict=True)
    return model.eval()


def quantize_static_fx(model, calib, qconfig="onednn", batch=100):
    """PyTorch FX static int8: prepare_fx with get_default_qconfig_mapping
    (`qconfig`), calibrate on `calib` in batches of `batch` (as qfx-train
    calibrates), convert_fx. Run it under the onednn quantized engine."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx
    import copy
    observed = prepare_fx(copy.deepcopy(model).eval(),
                          get_default_qconfig_mapping(qconfig), (calib[:1],))
    with torch.no_grad():
        for i in range(0, len(calib), batch):
            observed(calib[i:i + batch])
    return convert_fx(observed)


def quantize_dynamic_linear(model):
    """PyTorch's transformer recipe: torch.ao.quantization.quantize_dynamic,
    int8 weights and per-batch activation qparams on every nn.Linear."""
    import copy
    return torch.ao.quantization.quantize_dynamic(
        copy.deepcopy(model).eval(), {nn.Linear}, dtype=torch.qint8)
