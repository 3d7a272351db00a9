"""PyTorch FX int8 (onednn engine) baseline for qfx-bench: same models.

qfx-bench runs it with --worker: a persistent process that reads one JSON
command per line on stdin and prints one JSON reply per line on stdout, so
that its runs interleave with qfx's and ONNX Runtime's in one run:
  {"cmd": "load", "model": M}  prepares and converts M once; the reply
      lists what can be timed: {"variants": ["fp32", "int8", ...]}
  {"cmd": "run", "model": M, "variant": V, "batch": B, "threads": T,
   "n": N, "warmup": W, "max_ms": L}  W untimed then N timed runs (fewer
      once L ms have passed, if L is not 0) on a fixed random input of
      batch B with T threads: {"runs_ms": [...]}
  {"cmd": "quit"}
A failed command replies {"error": "<reason>"} and the worker goes on.

Without --worker it measures every configuration by itself and prints one
line per configuration:
  RESULT <model> <batch> <threads> <fp32 ms> <int8 ms>
  ERROR <model> <batch> <threads> <reason>
A configuration that fails (oneDNN refusing a primitive on some CPUs, say)
is reported and the others still run.

For the ViT (vit_fashion) int8 is PyTorch's best int8: the faster of FX
static int8 and quantize_dynamic (int8 Linear, PyTorch's transformer
recipe); both are also printed, on a line qfx-bench does not parse:
  DETAIL <model> <batch> <threads> fp32=<ms> static=<ms> dynamic=<ms>
"""

import argparse
import os
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.ao.quantization import get_default_qconfig_mapping
from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx


class Net(nn.Module):
    """The seed Net, with functional relu / max_pool2d as in qfx's zoo."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 40, 3)
        self.conv2 = nn.Conv2d(40, 40, 3)
        self.fc = nn.Linear(1000, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2, 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2, 2)
        return self.fc(x.reshape(-1, 1000))


def conv_bn(cin, cout, k, stride=1, groups=1, act=None):
    """torchvision's Conv2dNormActivation with MobileNetV3's batch norm."""
    from torchvision.ops.misc import Conv2dNormActivation
    return Conv2dNormActivation(
        cin, cout, k, stride, groups=groups, activation_layer=act,
        norm_layer=lambda c: nn.BatchNorm2d(c, eps=0.001, momentum=0.01))


class MobileNetV3CNN(nn.Module):
    """qfx's mobilenet_v3_cnn (lib/Models/Zoo.cpp), module for module."""

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


def torchvision_model(name):
    """A torchvision constructor, imported only when used: the net needs
    nothing beyond torch."""
    def ctor():
        import torchvision
        return getattr(torchvision.models, name)()
    return ctor


# ViT (Fashion-MNIST): defined once, in scripts/vit_fashion.py.
def vit_fashion():
    """The zoo ViT, with the trained weights of models/vit_fashion.safetensors
    when present (latency does not depend on them)."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                    "..", "..", "scripts"))
    import vit_fashion as vf
    return vf.load_vit() if os.path.exists(vf.WEIGHTS) else vf.ViT()


# Models whose int8 column is the best of FX static and quantize_dynamic.
DYNAMIC_TOO = {"vit_fashion"}

MODELS = {
    "net": (Net, (1, 28, 28)),
    "resnet18": (torchvision_model("resnet18"), (3, 224, 224)),
    "mobilenet_v2": (torchvision_model("mobilenet_v2"), (3, 224, 224)),
    "vit_fashion": (vit_fashion, (1, 28, 28)),
    "mobilenet_v3_small": (torchvision_model("mobilenet_v3_small"),
                           (3, 224, 224)),
    "mobilenet_v3_cnn": (MobileNetV3CNN, (1, 28, 28)),
}


def reason(exc):
    """One line naming the exception: the report is line-based."""
    text = " ".join(str(exc).split()) or "no message"
    return f"{type(exc).__name__}: {text}"


def quantize(name, shape):
    """The float model and its FX int8 conversion, calibrated on noise."""
    ctor, _ = MODELS[name]
    fp32 = ctor().eval()
    example = (torch.randn(1, *shape),)
    observed = prepare_fx(fp32, get_default_qconfig_mapping("onednn"),
                          example)
    with torch.no_grad():
        for _ in range(4):
            observed(torch.randn(2, *shape))
    return fp32, convert_fx(observed)


def quantize_dynamic(fp32):
    """torch.ao.quantization.quantize_dynamic on every nn.Linear (int8)."""
    import copy
    return torch.ao.quantization.quantize_dynamic(
        copy.deepcopy(fp32), {nn.Linear}, dtype=torch.qint8)


def median_ms(model, x, iterations, budget):
    """Median latency; adaptive (20 runs or the time budget) when
    iterations is 0, as qfx-bench does."""
    for _ in range(2):  # warm-up: oneDNN creates primitives on first runs
        model(x)
    times, start = [], time.perf_counter()
    while True:
        t0 = time.perf_counter()
        model(x)
        times.append((time.perf_counter() - t0) * 1e3)
        if iterations and len(times) >= iterations:
            break
        if not iterations and (len(times) >= 20 or (
                time.perf_counter() - start >= budget and len(times) >= 3)):
            break
    return statistics.median(times)


def timed_runs(model, x, n, warmup, max_ms):
    """warmup untimed, then n timed calls of model(x), in ms; fewer when
    max_ms (if not 0) have passed after one."""
    with torch.no_grad():
        for _ in range(warmup):
            model(x)
        times, start = [], time.perf_counter()
        for _ in range(n):
            t0 = time.perf_counter()
            model(x)
            times.append((time.perf_counter() - t0) * 1e3)
            if max_ms and (time.perf_counter() - start) * 1e3 >= max_ms:
                break
    return times


class Worker:
    """The --worker mode's state: converted models and inputs, kept."""

    def __init__(self, fail):
        self.fail = set(fail)
        self.models = {}  # name -> {variant: module}
        self.inputs = {}  # (name, batch) -> tensor

    def load(self, cmd):
        name = cmd["model"]
        if name not in MODELS:
            raise KeyError(f"unknown model '{name}'")
        if name not in self.models:
            fp32, int8 = quantize(name, MODELS[name][1])
            variants = {"fp32": fp32, "int8": int8}
            if name in DYNAMIC_TOO:
                variants["int8_dynamic"] = quantize_dynamic(fp32)
            self.models[name] = variants
        return {"variants": list(self.models[name])}

    def run(self, cmd):
        name, batch, threads = cmd["model"], cmd["batch"], cmd["threads"]
        if f"{name}:{batch}:{threads}" in self.fail:
            raise RuntimeError("forced failure (--fail)")
        if name not in self.models:
            raise KeyError(f"model '{name}' is not loaded")
        model = self.models[name][cmd["variant"]]
        if (name, batch) not in self.inputs:
            self.inputs[(name, batch)] = torch.randn(batch, *MODELS[name][1])
        torch.set_num_threads(threads)
        x = self.inputs[(name, batch)]
        return {"runs_ms": [round(t, 4) for t in timed_runs(
            model, x, cmd["n"], cmd.get("warmup", 1), cmd.get("max_ms", 0))]}


def serve(fail):
    """The --worker loop: one JSON command per stdin line, one reply per
    stdout line, until "quit" or the end of stdin."""
    import json
    worker = Worker(fail)
    while True:
        line = sys.stdin.readline()
        if not line:
            return 0
        try:
            cmd = json.loads(line)
            if cmd.get("cmd") == "quit":
                return 0
            handler = {"load": worker.load, "run": worker.run}.get(
                cmd.get("cmd"))
            if handler is None:
                raise ValueError(f"unknown command '{cmd.get('cmd')}'")
            reply = handler(cmd)
        except Exception as exc:
            reply = {"error": reason(exc)}
        print(json.dumps(reply), flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--models", default="net,resnet18,mobilenet_v2,"
                   "mobilenet_v3_small,mobilenet_v3_cnn")
    p.add_argument("--batches", default="1,32")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--iterations", type=int, default=0)
    p.add_argument("--budget", type=float, default=2.0)
    p.add_argument("--heavy-budget", type=float, default=0.5)
    p.add_argument("--fail", action="append", default=[],
                   metavar="MODEL:BATCH:THREADS",
                   help="make this configuration fail (tests the reporting)")
    p.add_argument("--worker", action="store_true",
                   help="serve JSON commands on stdin (see above)")
    a = p.parse_args()
    torch.backends.quantized.engine = "onednn"
    torch.manual_seed(0)
    if a.worker:
        return serve(a.fail)
    batches = list(map(int, a.batches.split(",")))
    threads_list = list(map(int, a.threads.split(",")))
    for name in a.models.split(","):
        shape = MODELS[name][1] if name in MODELS else None
        try:
            if shape is None:
                raise KeyError(f"unknown model '{name}'")
            fp32, int8 = quantize(name, shape)
            dyn = quantize_dynamic(fp32) if name in DYNAMIC_TOO else None
        except Exception as exc:  # every configuration of the model fails
            for batch in batches:
                for threads in threads_list:
                    print(f"ERROR {name} {batch} {threads} {reason(exc)}",
                          flush=True)
            continue
        for batch in batches:
            x = torch.randn(batch, *shape)
            heavy = batch > 8 and name != "net"
            budget = a.heavy_budget if heavy else a.budget
            for threads in threads_list:
                torch.set_num_threads(threads)
                try:
                    if f"{name}:{batch}:{threads}" in a.fail:
                        raise RuntimeError("forced failure (--fail)")
                    with torch.no_grad():
                        f = median_ms(fp32, x, a.iterations, budget)
                        q = median_ms(int8, x, a.iterations, budget)
                        d = (median_ms(dyn, x, a.iterations, budget)
                             if dyn is not None else None)
                except Exception as exc:
                    print(f"ERROR {name} {batch} {threads} {reason(exc)}",
                          flush=True)
                    continue
                if d is not None:
                    print(f"DETAIL {name} {batch} {threads} fp32={f:.4f} "
                          f"static={q:.4f} dynamic={d:.4f}", flush=True)
                    q = min(q, d)
                print(f"RESULT {name} {batch} {threads} {f:.4f} {q:.4f}",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
