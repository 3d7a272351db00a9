//===- ScalarArithGoldenTest.cpp - add / mul by a scalar vs PyTorch FX ----===//
//
// Linears joined by add and mul with a scalar (in range, mirrored, out of
// range, `2 * y` (recorded as `y * 2`), followed by relu), with the weights of
// test/data/make_scalar_arith_golden.py, go through the x86 preset's
// prepare_fx, calibration and convert; the observers' qparams and the int8
// output (reference interpreter and compiled) are compared with PyTorch
// 1.13's prepare_fx -> convert_fx, which shares each scalar op's observer
// with its input and lowers the op to quantized::add / quantized::mul.
//
//===----------------------------------------------------------------------===//

#include "TestUtil.h"

#include "qfx/Codegen/CompiledModule.h"
#include "qfx/Codegen/Lowering.h"
#include "qfx/NN/Functional.h"
#include "qfx/NN/Modules.h"
#include "qfx/Pipeline/QuantizeFx.h"
#include "qfx/Quant/ObserverModule.h"
#include "qfx/Quant/QConfig.h"
#include "qfx/Quant/QConfigMapping.h"
#include "qfx/Runtime/Interpreter.h"
#include "qfx/Support/Npy.h"
#include "qfx/Trace/SymbolicTrace.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

using namespace qfx;
using namespace qfx::nn;
using namespace qfx::testutil;

namespace {

std::string scalarData(const std::string &File) {
  return std::string(QFX_TEST_DATA_DIR) + "/scalar_arith/" + File;
}

/// make_scalar_arith_golden.py's ScalarNet.
struct ScalarNet : Module {
  std::shared_ptr<Linear> fc1, fc2, fc3;
  ScalarNet() : Module("ScalarNet") {
    fc1 = register_module("fc1", std::make_shared<Linear>(8, 8));
    fc2 = register_module("fc2", std::make_shared<Linear>(8, 8));
    fc3 = register_module("fc3", std::make_shared<Linear>(8, 8));
  }
  Value forward(Value X) override {
    Value Y = (*fc1)(X) + 0.3;
    Y = F::relu(Y) * -0.5;
    Y = (*fc2)(Y) + 20.0;
    return 2.0 * (*fc3)(Y);
  }
};

/// The prepared and calibrated ScalarNet.
std::unique_ptr<GraphModule> calibratedNet() {
  ScalarNet M;
  if (llvm::Error E = M.load_safetensors(scalarData("weights.safetensors")))
    FAIL(errorToString(std::move(E)));
  M.eval();
  QConfigMapping Map;
  Map.setGlobal(take(QConfig::preset("x86")));
  auto Obs =
      take(prepare_fx(M, Map, {InputSpec::symbolic("x", DType::F32, {1, 8})}));
  take(runObserved(Obs.graphModule(),
                   {take(readNpy(scalarData("calibration.npy")))}));
  return Obs.release();
}

} // namespace

TEST_CASE("add and mul by a scalar share their input's observer and give "
          "PyTorch's int8 results",
          "[scalar-arith][quant][lowering]") {
  auto Observed = calibratedNet();

  // Every observer call of PyTorch's prepared graph, in order, with its
  // qparams: the input, each linear, and after each scalar op (the fused
  // add + relu observed after the relu) the input's shared observer again.
  std::vector<std::string> Want, Got;
  for (const GoldenQParams &G : readGoldenQParams(scalarData("qparams.txt"))) {
    std::ostringstream O;
    O << G.Observed << " " << float(G.Scale) << " " << G.ZeroPoint;
    Want.push_back(O.str());
  }
  for (const Node &N : Observed->graph()) {
    const ModuleInfo *M = N.op() == OpCode::CallModule
                              ? Observed->lookupModule(N.target())
                              : nullptr;
    if (!M || !isObserverModule(*M))
      continue;
    auto QP = take(take(loadObserver(*M))->calculateQParams());
    std::ostringstream O;
    O << N.arg(0).getNode()->name().str() << " " << float(QP.Scale) << " "
      << QP.ZeroPoint;
    Got.push_back(O.str());
  }
  CHECK(Got == Want);

  auto Q = take(convert_to_reference_fx(*Observed));
  Tensor X = take(readNpy(scalarData("test_input.npy")));
  Tensor Torch = take(readNpy(scalarData("output.npy")));
  Tensor Ref = take(interpret(*Q, {X}));
  auto C = compileStrict(*Q, X.shape()[0]);
  Tensor Compiled = take(C->run({X}))[0];
  // The output is 2 * fc3's int8 result: PyTorch's quantized::mul keeps the
  // codes and doubles the scale, qfx multiplies the dequantized codes. The
  // interpreter gives PyTorch's values exactly. Compiled, a linear followed
  // by a dequantize writes real values without rounding them to its int8
  // grid: fc3's output is within half a step of PyTorch's, except where
  // fc2's unrounded output, after + 20 and requantization, moved one of
  // fc3's input codes (measured: 6 of 128 outputs, at most 0.64 steps).
  double Step = 2.0 * std::stod(Want.back().substr(Want.back().find(' ') + 1));
  REQUIRE(Ref.shape() == Torch.shape());
  REQUIRE(Compiled.shape() == Torch.shape());
  int64_t Differ = 0, Far = 0;
  double MaxSteps = 0;
  for (int64_t I = 0; I < Torch.numElements(); ++I) {
    Differ += Ref.getAsDouble(I) != Torch.getAsDouble(I);
    double Steps =
        std::abs(Compiled.getAsDouble(I) - Torch.getAsDouble(I)) / Step;
    MaxSteps = std::max(MaxSteps, Steps);
    Far += Steps > 0.5 + 1e-4;
  }
  CHECK(Differ == 0);
  CHECK(MaxSteps <= 1.0);
  CHECK(Far <= Torch.numElements() / 10);
}
