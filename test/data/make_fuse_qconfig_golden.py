#!/usr/bin/env python3
# Generates fuse_qconfig/golden.json, used by test/unit/FuseQConfigTest.cpp:
# what PyTorch 1.13's prepare_fx / convert_fx decide when a qconfig mapping
# gives the ops of a fusable chain different qconfigs. Needs python3-torch
# (1.13); run by hand from any directory and commit the output. Each case
# holds the mapping (in qfx's qconfig JSON form, so the test uses the same
# one) and either "error" (the exception PyTorch raises) or "fused" (module
# path -> kind after prepare), "qconfig" (node -> qconfig name from the
# prepared model's qconfig map, "none" for float) and "converted" (node ->
# "quantized" when convert_fx turned it into a quantized module or op,
# "float" when it stayed a float op). The test repeats the three models
# (residual, linear_relu, conv_bn_relu) in qfx's text form, so keep them in
# sync.
import json
import operator
import os

import torch
import torch.nn as nn
from torch.ao.quantization import (QConfigMapping, get_default_qat_qconfig,
                                   get_default_qconfig)
from torch.ao.quantization.quantize_fx import (convert_fx, prepare_fx,
                                               prepare_qat_fx)

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fuse_qconfig")

QCONFIGS = {"x86": get_default_qconfig("x86"),
            "onednn": get_default_qconfig("onednn"),
            "qat_x86": get_default_qat_qconfig("x86"),
            None: None}


class Residual(nn.Module):
    """conv -> add (-> relu), twice: qfx would fuse conv1 + add + relu into
    a ConvAddReLU2d; PyTorch never fuses conv with add."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 2, 1)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(2, 2, 1)

    def forward(self, x):
        y = self.conv1(x) + x
        y = self.relu(y)
        return self.conv2(y) + y


class LinearReLU(nn.Module):
    """linear -> relu, which both PyTorch and qfx fuse into LinearReLU."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.fc(x))


class ConvBnReLU(nn.Module):
    """conv -> bn -> relu: ConvReLU2d with BN folded in eval, ConvBnReLU2d
    with QAT."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 2, 1)
        self.bn = nn.BatchNorm2d(2)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.bn(self.conv1(x)))


MODELS = {"residual": (Residual, (1, 2, 4, 4)),
          "linear_relu": (LinearReLU, (2, 4)),
          "conv_bn_relu": (ConvBnReLU, (1, 2, 4, 4))}

# Object types by their names in qfx's mapping JSON.
TYPES = {"add": operator.add, "Linear": nn.Linear, "ReLU": nn.ReLU,
         "Conv2d": nn.Conv2d, "BatchNorm2d": nn.BatchNorm2d}

# (name, model, mapping in qfx JSON form). Qconfigs are preset names; a
# case whose name ends in "_qat" runs prepare_qat_fx.
CASES = [
    ("residual_global", "residual", {"": "x86"}),
    ("residual_add_none_by_object_type", "residual",
     {"": "x86", "object_type": [["add", None]]}),
    ("residual_add0_none_by_order", "residual",
     {"": "x86", "module_name_object_type_order": [["", "add", 0, None]]}),
    ("residual_add1_none_by_order", "residual",
     {"": "x86", "module_name_object_type_order": [["", "add", 1, None]]}),
    ("linear_rule_without_relu_rule", "linear_relu",
     {"": "x86", "object_type": [["Linear", "onednn"]]}),
    ("linear_and_relu_rules_agree", "linear_relu",
     {"": "x86", "object_type": [["Linear", "onednn"], ["ReLU", "onednn"]]}),
    ("linear_none_without_relu_rule", "linear_relu",
     {"": "x86", "object_type": [["Linear", None]]}),
    ("linear_and_relu_none", "linear_relu",
     {"": "onednn", "object_type": [["Linear", None], ["ReLU", None]]}),
    ("relu_module_name_none", "linear_relu",
     {"": "x86", "module_name": [["relu", None]]}),
    ("fc_module_name_none", "linear_relu",
     {"": "x86", "module_name": [["fc", None]]}),
    ("conv_bn_relu_bn_rule_folded_away", "conv_bn_relu",
     {"": "x86", "object_type": [["Conv2d", "onednn"], ["ReLU", "onednn"],
                                 ["BatchNorm2d", None]]}),
    ("conv_bn_relu_without_bn_rule_qat", "conv_bn_relu",
     {"": "qat_x86", "object_type": [["Conv2d", "qat_x86"],
                                     ["ReLU", "qat_x86"]]}),
]


def torch_mapping(doc):
    m = QConfigMapping().set_global(QCONFIGS[doc[""]])
    for t, qc in doc.get("object_type", []):
        m.set_object_type(TYPES[t], QCONFIGS[qc])
    for name, qc in doc.get("module_name", []):
        m.set_module_name(name, QCONFIGS[qc])
    for name, t, i, qc in doc.get("module_name_object_type_order", []):
        m.set_module_name_object_type_order(name, TYPES[t], i, QCONFIGS[qc])
    return m


def qconfig_name(qc):
    if qc is None:
        return "none"
    for name, preset in QCONFIGS.items():
        if preset is not None and torch.ao.quantization.qconfig_equals(
                qc, preset):
            return name
    raise ValueError("unknown qconfig %r" % (qc,))


def converted_kind(gm, node):
    if node.op == "call_module":
        mod = gm.get_submodule(node.target)
        quantized = type(mod).__module__.startswith(
            ("torch.ao.nn.quantized.modules", "torch.nn.intrinsic.quantized",
             "torch.ao.nn.intrinsic.quantized"))
        return "quantized" if quantized else "float"
    if node.op == "call_function":
        return ("quantized" if str(node.target).startswith("quantized.")
                else "float")
    return "float"


def run(name, model_name, doc):
    cls, shape = MODELS[model_name]
    torch.manual_seed(0)
    qat = name.endswith("_qat")
    model = cls().train(qat)
    example = (torch.randn(*shape),)
    case = {"model": model_name, "mapping": doc, "qat": qat}
    try:
        prepare = prepare_qat_fx if qat else prepare_fx
        prepared = prepare(model, torch_mapping(doc), example)
    except LookupError as e:
        case["error"] = "LookupError: %s" % e
        return case
    case["fused"] = {
        path: type(m).__name__
        for path, m in prepared.named_modules()
        if isinstance(m, torch.nn.intrinsic._FusedModule)}
    # The qconfig map also holds the placeholder and the output (None).
    ops = {n.name for n in prepared.graph.nodes
           if n.op in ("call_module", "call_function", "call_method")}
    case["qconfig"] = {
        n: qconfig_name(qc) for n, qc in prepared._qconfig_map.items()
        if n in ops}
    prepared(*example)
    converted = convert_fx(prepared)
    # An op pattern (add + relu) becomes one node named after its last op.
    case["converted"] = {
        node.name: converted_kind(converted, node)
        for node in converted.graph.nodes
        if node.op in ("call_module", "call_function")
        and node.target not in (torch.quantize_per_tensor,)}
    return case


def main():
    os.makedirs(OUT, exist_ok=True)
    out = {name: run(name, model, doc) for name, model, doc in CASES}
    with open(os.path.join(OUT, "golden.json"), "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
