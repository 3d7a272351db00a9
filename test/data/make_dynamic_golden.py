#!/usr/bin/env python3
# Generates the golden files in dynamic/ used by test/unit/DynamicTest.cpp:
# PyTorch 1.13's dynamic and weight-only quantization of a Linear-heavy MLP
# (Linear(64,128)-ReLU-Linear(128,128)-ReLU-Linear(128,10)). Needs
# python3-torch; run by hand from any directory and commit the output.
#   mlp.safetensors: the MLP's state_dict after torch.manual_seed(0);
#   x_<case>.npy: the inputs, <case> one of b1 [1,64], b4 [4,64], b32 [32,64]
#     and outlier [8,64] (one element set to 40, far outside the rest);
#   float_<case>.npy: the float model's output;
#   dynamic_<case>.npy: torch.ao.quantization.quantize_dynamic with
#     {nn.Linear: per_channel_dynamic_qconfig} (qfx's "dynamic" preset):
#     DynamicQuantizedLinear modules, quint8 activations quantized per batch
#     with reduce_range=True, per-channel symmetric qint8 weights. This torch
#     build has no fbgemm, so the quantized engine is onednn; the qparams
#     (quant_utils::ChooseQuantizationParams) are the same as fbgemm's;
#   weight_only_<case>.npy: prepare_fx / convert_to_reference_fx with a
#     weight-only qconfig equal to qfx's "weight_only" preset (float32
#     PlaceholderObserver activations, PerChannelMinMaxObserver quint8
#     per_channel_affine weights) and a BackendConfig whose Linear accepts
#     float activations with quint8 weights (and nothing else, so nothing
#     fuses): reference Linear modules that dequantize their weights on the
#     fly. PyTorch's native BackendConfig has no weight-only Linear or Conv
#     (only Embedding / EmbeddingBag), so with it they stay float;
#   weight_only_fq_<case>.npy: the same with PyTorch's own
#     float_qparams_weight_only_qconfig (per_channel_affine_float_qparams,
#     float zero points), which qfx approximates with integer zero points.
import copy
import json
import os
import struct

import numpy as np
import torch
import torch.ao.nn.quantized.reference as nnqr
import torch.nn as nn
import torch.nn.functional as F
from torch.ao.quantization import (PerChannelMinMaxObserver,
                                   PlaceholderObserver, QConfig,
                                   QConfigMapping,
                                   float_qparams_weight_only_qconfig,
                                   per_channel_dynamic_qconfig,
                                   quantize_dynamic)
from torch.ao.quantization.backend_config import (BackendConfig,
                                                  BackendPatternConfig,
                                                  DTypeConfig,
                                                  ObservationType)
from torch.ao.quantization.quantize_fx import (convert_to_reference_fx,
                                               prepare_fx)

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dynamic")


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(64, 128)
        self.fc2 = nn.Linear(128, 128)
        self.fc3 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


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


def save_npy(name, t):
    np.save(os.path.join(OUT, name), t.detach().numpy().astype(np.float32))


def weight_only_reference(model, qconfig, weight_dtype, example):
    """prepare_fx / convert_to_reference_fx with a weight-only Linear."""
    wo = DTypeConfig(input_dtype=torch.float, output_dtype=torch.float,
                     weight_dtype=weight_dtype, bias_dtype=torch.float)
    # Only Linear: a config with fusion patterns would fuse Linear and relu.
    bc = BackendConfig("weight_only").set_backend_pattern_config(
        BackendPatternConfig(nn.Linear)
        .set_observation_type(
            ObservationType.OUTPUT_USE_DIFFERENT_OBSERVER_AS_INPUT)
        .add_dtype_config(wo)
        .set_root_module(nn.Linear)
        .set_reference_quantized_module(nnqr.Linear))
    mapping = QConfigMapping().set_global(qconfig)
    prepared = prepare_fx(copy.deepcopy(model), mapping, example,
                          backend_config=bc)
    ref = convert_to_reference_fx(prepared, backend_config=bc)
    for name in ("fc1", "fc2", "fc3"):
        mod = getattr(ref, name)
        assert isinstance(mod, nnqr.Linear), (name, type(mod))
        assert mod.get_quantized_weight().dtype == weight_dtype
    return ref


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    model = MLP().eval()
    write_safetensors("mlp.safetensors", model.state_dict())

    rng = np.random.RandomState(0)
    inputs = {
        "b1": rng.standard_normal((1, 64)),
        "b4": rng.standard_normal((4, 64)),
        "b32": rng.standard_normal((32, 64)),
        "outlier": rng.standard_normal((8, 64)),
    }
    inputs["outlier"][3, 17] = 40.0
    inputs = {k: torch.from_numpy(v.astype(np.float32))
              for k, v in inputs.items()}

    dynamic = quantize_dynamic(copy.deepcopy(model),
                               {nn.Linear: per_channel_dynamic_qconfig})
    for name in ("fc1", "fc2", "fc3"):
        mod = getattr(dynamic, name)
        assert type(mod).__name__ == "Linear" and "dynamic" in \
            type(mod).__module__, type(mod)
    example = (inputs["b4"],)
    wo_qconfig = QConfig(
        activation=PlaceholderObserver.with_args(dtype=torch.float),
        weight=PerChannelMinMaxObserver.with_args(
            dtype=torch.quint8, qscheme=torch.per_channel_affine))
    weight_only = weight_only_reference(model, wo_qconfig, torch.quint8,
                                        example)
    weight_only_fq = weight_only_reference(
        model, float_qparams_weight_only_qconfig, torch.quint8, example)

    with torch.no_grad():
        for case, x in inputs.items():
            save_npy(f"x_{case}.npy", x)
            ref = model(x)
            save_npy(f"float_{case}.npy", ref)
            dyn = dynamic(x)
            save_npy(f"dynamic_{case}.npy", dyn)
            wo = weight_only(x)
            save_npy(f"weight_only_{case}.npy", wo)
            fq = weight_only_fq(x)
            save_npy(f"weight_only_fq_{case}.npy", fq)
            scale = ref.abs().max().item()
            print(f"{case}: |dynamic - float| {(dyn - ref).abs().max():.3g}, "
                  f"|weight_only - float| {(wo - ref).abs().max():.3g}, "
                  f"|weight_only - float_qparams| {(wo - fq).abs().max():.3g}"
                  f" (max |float| {scale:.3g})")


if __name__ == "__main__":
    main()
