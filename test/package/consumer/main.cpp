//===- main.cpp - An application built against an installed qfx ----------===//
//
// The package test's consumer (test/package/run-package-test.cmake): only
// <qfx/qfx.h> and the installed libraries. It quantizes the zoo's Net with
// the x86 preset, compiles the int8 graph to oneDNN and checks the compiled
// module against the reference interpreter, so a missing header, library or
// dependency in the install fails to build, link or run.
//
// Usage: qfx-package-consumer [net.safetensors]
//   (without weights, Net keeps its deterministic initialization)
//
//===----------------------------------------------------------------------===//

#include <qfx/qfx.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

namespace {

/// \p N deterministic images of Net's input shape in the range of normalized
/// Fashion-MNIST pixels.
qfx::Tensor images(int64_t N, unsigned Seed) {
  std::mt19937 Gen(Seed);
  std::uniform_real_distribution<float> Pixel(-0.8f, 2.0f);
  std::vector<float> V(static_cast<size_t>(N) * 28 * 28);
  for (float &X : V)
    X = Pixel(Gen);
  return qfx::Tensor::fromFloats({N, 1, 28, 28}, V);
}

/// Prints \p E and returns the process's exit code for it.
int fail(const char *What, llvm::Error E) {
  std::fprintf(stderr, "qfx-package-consumer: error: %s: %s\n", What,
               qfx::errorToString(std::move(E)).c_str());
  return 1;
}

} // namespace

int main(int argc, char **argv) {
  qfx::models::Net Net;
  if (argc > 1)
    if (llvm::Error E = Net.load_safetensors(argv[1]))
      return fail("loading weights", std::move(E));
  Net.eval();

  // prepare_fx, calibrate, convert: the README's flow.
  auto Preset = qfx::QConfig::preset("x86");
  if (!Preset)
    return fail("qconfig preset", Preset.takeError());
  auto Mapping = qfx::QConfigMapping().setGlobal(*Preset);
  auto Observed = qfx::prepare_fx(
      Net, Mapping,
      {qfx::InputSpec::symbolic("x", qfx::DType::F32, {1, 1, 28, 28})});
  if (!Observed)
    return fail("prepare_fx", Observed.takeError());
  if (llvm::Error E = Observed->calibrate(images(64, 1), /*BatchSize=*/32))
    return fail("calibration", std::move(E));
  auto Int8 = qfx::convert_to_reference_fx(Observed->graphModule());
  if (!Int8)
    return fail("convert_to_reference_fx", Int8.takeError());

  // Compile for a batch of 8 and compare with the reference interpreter.
  const int64_t Batch = 8;
  qfx::CompileOptions Opts;
  Opts.BatchSize = Batch;
  auto Compiled = qfx::compile(**Int8, Opts);
  if (!Compiled)
    return fail("compile", Compiled.takeError());
  qfx::Tensor Input = images(Batch, 2);
  auto Got = (*Compiled)->run({Input});
  if (!Got)
    return fail("running the compiled module", Got.takeError());
  auto Want = qfx::Interpreter(**Int8).run({Input});
  if (!Want)
    return fail("running the interpreter", Want.takeError());

  // The output is a dequantized int8 tensor: oneDNN and the reference may
  // round differently, by at most one step of its scale.
  const qfx::Node *Deq = (*Int8)->graph().outputNode()->arg(0).getNode();
  double Lsb = Deq->arg(0).getNode()->type()->Quant.Scale;
  const qfx::Tensor &G = (*Got)[0], &W = (*Want)[0];
  if (G.shape() != W.shape() || W.numElements() != Batch * 10) {
    std::fprintf(stderr, "qfx-package-consumer: error: output shape\n");
    return 1;
  }
  double MaxLsb = 0;
  for (int64_t I = 0; I < W.numElements(); ++I)
    MaxLsb =
        std::max(MaxLsb, std::fabs(G.getAsDouble(I) - W.getAsDouble(I)) / Lsb);
  if (!(MaxLsb <= 1.0)) {
    std::fprintf(stderr,
                 "qfx-package-consumer: error: compiled output differs from "
                 "the interpreter by %.2f LSB\n",
                 MaxLsb);
    return 1;
  }
  std::printf("qfx package consumer: int8 Net compiled, %lld outputs within "
              "%.2f LSB of the interpreter\n",
              static_cast<long long>(W.numElements()), MaxLsb);
  return 0;
}
