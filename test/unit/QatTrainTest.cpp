//===- QatTrainTest.cpp - QAT ConvBn2d training step against PyTorch -----===//
//
// One training step of a QAT ConvBn2d (weight fake-quantized after scaling
// by gamma / sqrt(running_var + eps), batch-statistics BatchNorm, running
// statistics updated) compared with torch.nn.intrinsic.qat.ConvBn2d on the
// golden data of test/data/make_qat_golden.py: output, input gradient and
// every parameter gradient, with and without a conv bias and with frozen
// BatchNorm.
//
//===----------------------------------------------------------------------===//

#include "GradCheck.h"

#include "qfx/IR/GraphModule.h"
#include "qfx/IR/Parser.h"
#include "qfx/Quant/ObserverModule.h"
#include "qfx/Quant/QConfig.h"
#include "qfx/Support/Error.h"
#include "qfx/Support/Npy.h"
#include "qfx/Train/Tape.h"

#include <catch2/catch.hpp>

#include <cmath>

using namespace qfx;

namespace {

Tensor golden(llvm::StringRef Name) {
  auto T =
      readNpy(std::string(QFX_TEST_DATA_DIR) + "/qat/" + Name.str() + ".npy");
  if (!T)
    FAIL(errorToString(T.takeError()));
  return *T;
}

/// Largest |a - b| relative to the largest |b|.
double relDiff(const Tensor &A, const Tensor &B) {
  REQUIRE(A.numElements() == B.numElements());
  double Diff = 0, Scale = 1e-12;
  for (int64_t I = 0; I < A.numElements(); ++I) {
    Diff = std::max(Diff, std::fabs(A.getAsDouble(I) - B.getAsDouble(I)));
    Scale = std::max(Scale, std::fabs(B.getAsDouble(I)));
  }
  return Diff / Scale;
}

std::unique_ptr<GraphModule> convBn(bool Bias) {
  std::string Text = R"(graph_module M {
  module cbn : ConvBn2d
  module cbn.0 : Conv2d {dilation = [1, 1], groups = 1, in_channels = 3, kernel_size = [3, 3], out_channels = 4, padding = [1, 1], stride = [1, 1]} {
    param weight : f32[4,3,3,3]
)" + std::string(Bias ? "    param bias : f32[4]\n" : "") +
                     R"(  }
  module cbn.1 : BatchNorm2d {eps = 1e-05, momentum = 0.1} {
    param weight : f32[4]
    param bias : f32[4]
    buffer running_mean : f32[4]
    buffer running_var : f32[4]
  }
  graph {
    %x : f32[2,3,6,6] = placeholder[x]
    %cbn : f32[2,4,6,6] = call_module[cbn](%x)
    %output = output[output](%cbn)
  }
})";
  auto GM = parseGraphModule(Text, "test");
  if (!GM)
    FAIL(errorToString(GM.takeError()));
  return std::move(*GM);
}

/// Loads the golden state with prefix \p P into a fresh ConvBn2d whose
/// weight_fake_quant holds PyTorch's qparams of that step, observer off.
///
/// PyTorch's x86 QAT qconfig trains with FusedMovingAvgObsFakeQuantize,
/// whose C++ kernel derives the symmetric scale as max(-min / 128,
/// max / 127), while its observer (and therefore convert) uses
/// max(-min, max) / 127.5. qfx uses the observer's formula throughout, so
/// training and conversion agree; to compare one step bit for bit the test
/// pins PyTorch's training scale.
std::unique_ptr<GraphModule> loadState(llvm::StringRef P, bool Bias) {
  auto GM = convBn(Bias);
  std::string S = P.str();
  cantFail(GM->setTensor("cbn.0.weight", golden(S + "_conv_weight")));
  if (Bias)
    cantFail(GM->setTensor("cbn.0.bias", golden(S + "_conv_bias")));
  cantFail(GM->setTensor("cbn.1.weight", golden(S + "_bn_weight")));
  cantFail(GM->setTensor("cbn.1.bias", golden(S + "_bn_bias")));
  cantFail(GM->setTensor("cbn.1.running_mean",
                         golden(S + "_bn_running_mean_before"), true));
  cantFail(GM->setTensor("cbn.1.running_var",
                         golden(S + "_bn_running_var_before"), true));
  QConfig Q = cantFail(QConfig::preset("qat_x86"));
  initFakeQuantizeModule(GM->addModule("cbn.weight_fake_quant", "FakeQuantize"),
                         Q.Weight);
  cantFail(GM->setTensor("cbn.weight_fake_quant.scale",
                         golden(S + "_wfq_scale"), true));
  cantFail(GM->setTensor("cbn.weight_fake_quant.zero_point",
                         golden(S + "_wfq_zero_point"), true));
  setObserverEnabled(*GM, false);
  return GM;
}

struct StepResult {
  Tensor Y, DX;
  GradMap Grads;
};

StepResult step(GraphModule &GM, llvm::StringRef P, bool Freeze) {
  TapeOptions Opts;
  Opts.InputGradients = true;
  Opts.FreezeBatchNorm = Freeze;
  Tape T(GM, Opts);
  auto Out = T.forward({golden(P.str() + "_x")});
  REQUIRE(bool(Out));
  REQUIRE(!T.backward({golden(P.str() + "_r")}));
  return {(*Out)[0], T.inputGrad(0), T.grads()};
}

} // namespace

TEST_CASE("qat: ConvBn2d training step matches PyTorch", "[train][qat]") {
  for (bool Bias : {false, true}) {
    const char *P = Bias ? "cbnb" : "cbn";
    INFO(P);
    auto GM = loadState(P, Bias);
    StepResult R = step(*GM, P, /*Freeze=*/false);
    std::string S = P;
    CHECK(relDiff(R.Y, golden(S + "_y")) < 1e-5);
    CHECK(relDiff(R.DX, golden(S + "_dx")) < 1e-5);
    CHECK(relDiff(R.Grads["cbn.0.weight"], golden(S + "_dconv_weight")) < 1e-5);
    CHECK(relDiff(R.Grads["cbn.1.weight"], golden(S + "_dbn_weight")) < 1e-5);
    CHECK(relDiff(R.Grads["cbn.1.bias"], golden(S + "_dbn_bias")) < 1e-5);
    if (Bias) {
      // BatchNorm cancels the conv bias: PyTorch's gradient is rounding
      // noise around 0, and so must ours be.
      Tensor DB = R.Grads["cbn.0.bias"];
      for (int64_t I = 0; I < DB.numElements(); ++I)
        CHECK(std::fabs(DB.getAsDouble(I)) < 1e-5);
    }
    CHECK(relDiff(*GM->lookupTensor("cbn.1.running_mean"),
                  golden(S + "_bn_running_mean_after")) < 1e-6);
    CHECK(relDiff(*GM->lookupTensor("cbn.1.running_var"),
                  golden(S + "_bn_running_var_after")) < 1e-6);
  }
}

TEST_CASE("qat: ConvBn2d with frozen BatchNorm matches PyTorch",
          "[train][qat]") {
  auto GM = loadState("cbn", false);
  StepResult R = step(*GM, "cbn", /*Freeze=*/true);
  CHECK(relDiff(R.Y, golden("cbnf_y")) < 1e-5);
  CHECK(relDiff(R.DX, golden("cbnf_dx")) < 1e-5);
  CHECK(relDiff(R.Grads["cbn.0.weight"], golden("cbnf_dconv_weight")) < 1e-5);
  CHECK(relDiff(R.Grads["cbn.1.weight"], golden("cbnf_dbn_weight")) < 1e-5);
  CHECK(relDiff(R.Grads["cbn.1.bias"], golden("cbnf_dbn_bias")) < 1e-5);
  // Frozen: the running statistics do not move.
  CHECK(GM->lookupTensor("cbn.1.running_mean")
            ->identical(golden("cbn_bn_running_mean_before")));
}

TEST_CASE("qat: the weight observer sees the BatchNorm-scaled weight",
          "[train][qat]") {
  auto GM = loadState("cbn", false);
  setObserverEnabled(*GM, true);
  step(*GM, "cbn", /*Freeze=*/false);
  // The first observation of a moving-average observer is the min / max of
  // w * gamma / sqrt(running_var + eps), per output channel.
  CHECK(relDiff(*GM->lookupTensor("cbn.weight_fake_quant.min_val"),
                golden("cbn_wfq_min_val")) == 0);
  CHECK(relDiff(*GM->lookupTensor("cbn.weight_fake_quant.max_val"),
                golden("cbn_wfq_max_val")) == 0);
}

namespace {

/// QAT LinearBn1d (4 -> 3) with an x86 QAT weight fake-quant.
std::unique_ptr<GraphModule> linearBn() {
  auto GM = parseGraphModule(R"(graph_module M {
  module lbn : LinearBn1d
  module lbn.0 : Linear {in_features = 4, out_features = 3} {
    param weight : f32[3,4]
    param bias : f32[3]
  }
  module lbn.1 : BatchNorm1d {eps = 1e-05, momentum = 0.1} {
    param weight : f32[3]
    param bias : f32[3]
    buffer running_mean : f32[3]
    buffer running_var : f32[3]
  }
  graph {
    %x : f32[5,4] = placeholder[x]
    %lbn : f32[5,3] = call_module[lbn](%x)
    %output = output[output](%lbn)
  }
})",
                             "test");
  if (!GM)
    FAIL(errorToString(GM.takeError()));
  QConfig Q = cantFail(QConfig::preset("qat_x86"));
  initFakeQuantizeModule(
      (*GM)->addModule("lbn.weight_fake_quant", "FakeQuantize"), Q.Weight);
  for (auto &[Name, T] : (*GM)->namedTensors())
    if (!T->hasData() && T->dtype() == DType::F32) {
      bool Positive = llvm::StringRef(Name).endswith("running_var") ||
                      Name == "lbn.1.weight";
      cantFail((*GM)->setTensor(
          Name, gradcheck::randomTensor(T->shape(), Name.size(),
                                        Positive ? 0.5f : -1.0f,
                                        Positive ? 1.5f : 1.0f)));
    }
  return std::move(*GM);
}

} // namespace

TEST_CASE("qat: LinearBn1d trains through gamma's scale factor",
          "[train][qat]") {
  // With fake quantization off, the QAT formula is exactly linear followed
  // by batch norm, so every gradient, gamma's path through
  // sf = gamma / sqrt(running_var + eps) included, must match finite
  // differences.
  auto GM = linearBn();
  setFakeQuantEnabled(*GM, false);
  Tensor X = gradcheck::randomTensor({5, 4}, 1);
  Tensor R = gradcheck::randomTensor({5, 3}, 2);
  TapeOptions Opts;
  Opts.InputGradients = true;
  Opts.FreezeBatchNorm = true; // keeps running_var, hence sf, fixed
  Tape T(*GM, Opts);
  REQUIRE(bool(T.forward({X})));
  REQUIRE(!T.backward({R}));
  auto Fwd = [&](const Tensor &XP) {
    Tape U(*GM, Opts);
    auto Out = U.forward({XP});
    REQUIRE(bool(Out));
    return (*Out)[0];
  };
  CHECK(gradcheck::compareWithFiniteDifferences(Fwd, X, R, T.inputGrad(0),
                                                1e-3) == "");
  for (const char *P :
       {"lbn.0.weight", "lbn.0.bias", "lbn.1.weight", "lbn.1.bias"}) {
    INFO(P);
    Tensor Orig = GM->lookupTensor(P)->clone();
    auto F = [&](const Tensor &V) {
      cantFail(GM->setTensor(P, V));
      Tensor Y = Fwd(X);
      cantFail(GM->setTensor(P, Orig));
      return Y;
    };
    CHECK(gradcheck::compareWithFiniteDifferences(F, Orig, R, T.grads().at(P),
                                                  1e-3) == "");
  }
}

TEST_CASE("qat: ConvBn2d with batch statistics matches finite differences",
          "[train][qat]") {
  auto GM = loadState("cbnb", /*Bias=*/true);
  setFakeQuantEnabled(*GM, false);
  Tensor X = golden("cbnb_x"), R = golden("cbnb_r");
  TapeOptions Opts;
  Opts.InputGradients = true;
  Tape T(*GM, Opts);
  REQUIRE(bool(T.forward({X})));
  REQUIRE(!T.backward({R}));
  // Batch statistics do not depend on running_var; sf does, and the
  // forward updates running_var, so each evaluation restores it.
  Tensor RV = GM->lookupTensor("cbn.1.running_var")->clone();
  auto Fwd = [&]() {
    cantFail(GM->setTensor("cbn.1.running_var", RV.clone(), true));
    Tape U(*GM);
    auto Out = U.forward({X});
    REQUIRE(bool(Out));
    return (*Out)[0];
  };
  for (const char *P : {"cbn.0.weight", "cbn.1.weight", "cbn.1.bias"}) {
    INFO(P);
    Tensor Orig = GM->lookupTensor(P)->clone();
    auto F = [&](const Tensor &V) {
      cantFail(GM->setTensor(P, V));
      Tensor Y = Fwd();
      cantFail(GM->setTensor(P, Orig));
      return Y;
    };
    CHECK(gradcheck::compareWithFiniteDifferences(F, Orig, R, T.grads().at(P),
                                                  1e-3) == "");
  }
}
