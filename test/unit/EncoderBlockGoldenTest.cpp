//===- EncoderBlockGoldenTest.cpp - One ViT encoder block vs PyTorch FX ---===//
//
// The zoo ViT's encoder block (models::vit_encoder_block) with the weights
// of test/data/make_encoder_block_golden.py goes through the x86 preset's
// prepare_fx, calibration on PyTorch's calibration batch and convert; the
// observers' qparams and the int8 outputs (reference interpreter and
// compiled oneDNN code) are compared with PyTorch 1.13's
// get_default_qconfig_mapping("x86") -> prepare_fx -> convert_fx.
//
//===----------------------------------------------------------------------===//

#include "TestUtil.h"

#include "qfx/Codegen/CompiledModule.h"
#include "qfx/Codegen/Lowering.h"
#include "qfx/Models/Zoo.h"
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
#include <map>
#include <sstream>
#include <string>

using namespace qfx;
using namespace qfx::testutil;

namespace {

std::string blockData(const std::string &File) {
  return std::string(QFX_TEST_DATA_DIR) + "/encoder_block/" + File;
}

Tensor blockGolden(const std::string &File) {
  return take(readNpy(blockData(File)));
}

/// make_encoder_block_golden.py's <variant>_qparams.txt: scale and zero
/// point by observed node name.
std::map<std::string, std::pair<double, int64_t>>
goldenQParams(const std::string &Variant) {
  std::map<std::string, std::pair<double, int64_t>> R;
  for (const GoldenQParams &G :
       readGoldenQParams(blockData(Variant + "_qparams.txt")))
    R[G.Observed] = {G.Scale, G.ZeroPoint};
  return R;
}

/// The block with the golden weights, prepared with the x86 preset and
/// calibrated on PyTorch's calibration batch in one call (as PyTorch ran
/// it: histograms depend on the batching).
std::unique_ptr<GraphModule> calibratedBlock() {
  auto M = models::vit_encoder_block();
  if (llvm::Error E = M->load_safetensors(blockData("weights.safetensors")))
    FAIL(errorToString(std::move(E)));
  M->eval();
  QConfigMapping Map;
  Map.setGlobal(take(QConfig::preset("x86")));
  auto Obs = take(
      prepare_fx(*M, Map, {InputSpec::symbolic("x", DType::F32, {1, 17, 64})}));
  take(runObserved(Obs.graphModule(), {blockGolden("calibration.npy")}));
  return Obs.release();
}

/// qfx's observers after calibration: scale and zero point by observed
/// node name.
std::map<std::string, std::pair<double, int64_t>>
observedQParams(const GraphModule &GM) {
  std::map<std::string, std::pair<double, int64_t>> R;
  for (const Node &N : GM.graph()) {
    if (N.op() != OpCode::CallModule)
      continue;
    const ModuleInfo *M = GM.lookupModule(N.target());
    if (!M || !isObserverModule(*M))
      continue;
    auto O = take(loadObserver(*M));
    auto QP = take(O->calculateQParams());
    REQUIRE(QP.isPerTensor());
    R[N.arg(0).getNode()->name().str()] = {QP.Scale, QP.ZeroPoint};
  }
  return R;
}

/// The largest |A - B| in units of \p Step.
double maxStepsApart(const Tensor &A, const Tensor &B, double Step) {
  REQUIRE(A.shape() == B.shape());
  double Max = 0;
  for (int64_t I = 0; I < A.numElements(); ++I)
    Max = std::max(Max, std::abs(A.getAsDouble(I) - B.getAsDouble(I)) / Step);
  return Max;
}

} // namespace

TEST_CASE("the encoder block's observers get PyTorch's x86 qparams",
          "[encoder-block][quant]") {
  auto Got = observedQParams(*calibratedBlock());
  auto Want = goldenQParams("x86");
  int Compared = 0;
  for (const auto &[Name, QP] : Want) {
    INFO("observed node " << Name);
    // PyTorch observes the GELU's output as the dropout's input, qfx the
    // dropout's output (mlp_2, the same values, compared below).
    if (Name == "mlp_1") {
      CHECK(Got.count(Name) == 0);
      continue;
    }
    auto It = Got.find(Name);
    REQUIRE(It != Got.end());
    CHECK(std::abs(It->second.first - QP.first) <= 1e-6 * QP.first);
    CHECK(It->second.second == QP.second);
    ++Compared;
  }
  CHECK(Want.at("mlp_1") == Want.at("mlp_2"));
  // Every other value PyTorch observes (the input, LayerNorms, the four
  // projections and their reshapes / permutes, both matmuls, the scaled
  // scores, the softmax as matmul's input, the MLP, both residual adds),
  // and no more.
  CHECK(Compared == 26);
  CHECK(Got.size() == 26);
  // q k^T and q k^T * 0.25 share one histogram, as in PyTorch 1.13 (a mul
  // with a scalar shares its input's observer): both calls feed it, so its
  // qparams are neither's alone.
  CHECK(Got.at("matmul") == Got.at("mul"));
}

TEST_CASE("the int8 encoder block matches PyTorch's convert_fx, in the "
          "interpreter and compiled",
          "[encoder-block][quant][lowering]") {
  auto Observed = calibratedBlock();
  auto Q = take(convert_to_reference_fx(*Observed));
  Tensor X = blockGolden("test_input.npy");
  Tensor Ref = take(interpret(*Q, {X}));
  auto C = compileStrict(*Q, X.shape()[0]);
  Tensor Compiled = take(C->run({X}))[0];

  // The output's quantization step (the last residual add's qparams).
  double Step = goldenQParams("x86").at("add_1").first;
  Tensor Float = blockGolden("float_output.npy");
  INFO("int8 from float: PyTorch "
       << maxStepsApart(blockGolden("x86_output.npy"), Float, Step)
       << " steps, qfx " << maxStepsApart(Ref, Float, Step) << " steps");

  // qfx's int8 block is PyTorch's convert_fx output bit for bit,
  // interpreted and compiled: same qparams, same integer kernels' results.
  Tensor Torch = blockGolden("x86_output.npy");
  CHECK(maxStepsApart(Ref, Torch, Step) == 0);
  CHECK(maxStepsApart(Compiled, Torch, Step) == 0);

  // PyTorch's own convert_to_reference_fx is up to 2 steps from its
  // convert_fx: the reference graph requantizes `* 0.25` with the shared
  // observer's qparams, the lowered quantized::mul keeps the integers and
  // scales the scale by 0.25 -- what qfx computes.
  Tensor TorchRef = blockGolden("x86_reference_output.npy");
  CHECK(maxStepsApart(Ref, TorchRef, Step) <= 2 + 1e-5);
  CHECK(maxStepsApart(Ref, TorchRef, Step) > 0);
}
