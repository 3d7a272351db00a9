//===- TapeTest.cpp - Gradients through whole graphs, training modes -----===//

#include "GradCheck.h"

#include "qfx/IR/GraphModule.h"
#include "qfx/IR/Parser.h"
#include "qfx/Quant/ObserverModule.h"
#include "qfx/Quant/QConfig.h"
#include "qfx/Runtime/Interpreter.h"
#include "qfx/Support/Error.h"
#include "qfx/Train/Tape.h"

#include <catch2/catch.hpp>

using namespace qfx;
using gradcheck::compareWithFiniteDifferences;
using gradcheck::randomTensor;

namespace {

std::unique_ptr<GraphModule> parse(llvm::StringRef Text) {
  auto GM = parseGraphModule(Text, "test");
  if (!GM)
    FAIL(errorToString(GM.takeError()));
  return std::move(*GM);
}

/// Gives every tensor without data random values. Variances and BatchNorm
/// scales are kept away from 0: a scale near 0 lets a finite-difference
/// step reorder a whole channel under max pooling.
void fillTensors(GraphModule &GM, uint64_t Seed) {
  for (auto &[Name, T] : GM.namedTensors()) {
    if (T->hasData() || T->dtype() != DType::F32)
      continue;
    bool Positive = llvm::StringRef(Name).endswith("running_var") ||
                    llvm::StringRef(Name).startswith("bn.weight");
    Tensor V = randomTensor(T->shape(), Seed++, Positive ? 0.5f : -0.5f,
                            Positive ? 1.5f : 0.5f);
    cantFail(GM.setTensor(Name, V));
  }
}

// conv -> batch norm (training) -> relu -> max pool -> add a scaled branch
// -> reshape -> linear, plus functional sigmoid / mul / cat / softmax.
const char *const MixedGraph = R"(graph_module M {
  module conv : Conv2d {in_channels = 2, kernel_size = [3, 3], out_channels = 3, padding = [1, 1], stride = [1, 1], dilation = [1, 1], groups = 1} {
    param weight : f32[3,2,3,3]
    param bias : f32[3]
  }
  module bn : BatchNorm2d {eps = 1e-05, momentum = 0.1} {
    param weight : f32[3]
    param bias : f32[3]
    buffer running_mean : f32[3]
    buffer running_var : f32[3]
  }
  module fc : Linear {in_features = 54, out_features = 4} {
    param weight : f32[4,54]
    param bias : f32[4]
  }
  graph {
    %x : f32[2,2,6,6] = placeholder[x]
    %conv : f32[2,3,6,6] = call_module[conv](%x)
    %bn : f32[2,3,6,6] = call_module[bn](%conv)
    %relu : f32[2,3,6,6] = call_function[relu](%bn)
    %pool : f32[2,3,3,3] = call_function[max_pool2d](%relu, 2)
    %sig : f32[2,3,3,3] = call_function[sigmoid](%pool)
    %prod : f32[2,3,3,3] = call_function[mul](%sig, %pool)
    %sum : f32[2,3,3,3] = call_function[add](%prod, %pool)
    %both : f32[2,6,3,3] = call_function[cat]([%sum, %pool], 1)
    %flat : f32[2,54] = call_method[reshape](%both, [-1, 54])
    %fc : f32[2,4] = call_module[fc](%flat)
    %soft : f32[2,4] = call_function[softmax](%fc, 1)
    %output = output[output](%soft)
  }
})";

/// The output of a training-mode forward.
Tensor trainForward(GraphModule &GM, const Tensor &X, TapeOptions Opts = {}) {
  Tape T(GM, Opts);
  auto Out = T.forward({X});
  REQUIRE(bool(Out));
  return (*Out)[0];
}

} // namespace

TEST_CASE("tape: gradients of a mixed graph match finite differences",
          "[train]") {
  auto GM = parse(MixedGraph);
  fillTensors(*GM, 7);
  Tensor X = randomTensor({2, 2, 6, 6}, 1);
  Tensor R = randomTensor({2, 4}, 2);
  TapeOptions Opts;
  Opts.InputGradients = true;
  Tape T(*GM, Opts);
  auto Out = T.forward({X});
  REQUIRE(bool(Out));
  REQUIRE(!T.backward({R}));

  CHECK(compareWithFiniteDifferences(
            [&](const Tensor &XP) { return trainForward(*GM, XP); }, X, R,
            T.inputGrad(0), 1e-3) == "");
  for (const char *P : {"conv.weight", "conv.bias", "bn.weight", "bn.bias",
                        "fc.weight", "fc.bias"}) {
    INFO(P);
    auto It = T.grads().find(P);
    REQUIRE(It != T.grads().end());
    Tensor Orig = GM->lookupTensor(P)->clone();
    auto F = [&](const Tensor &V) {
      cantFail(GM->setTensor(P, V));
      Tensor Y = trainForward(*GM, X);
      cantFail(GM->setTensor(P, Orig));
      return Y;
    };
    CHECK(compareWithFiniteDifferences(F, Orig, R, It->second, 1e-3) == "");
  }
}

TEST_CASE("tape: parameter list excludes buffers and observers", "[train]") {
  auto GM = parse(MixedGraph);
  fillTensors(*GM, 3);
  Tape T(*GM);
  CHECK(T.parameterNames() ==
        std::vector<std::string>{"conv.weight", "conv.bias", "bn.weight",
                                 "bn.bias", "fc.weight", "fc.bias"});
}

TEST_CASE("tape: eval forward equals the interpreter bit for bit", "[train]") {
  auto GM = parse(MixedGraph);
  fillTensors(*GM, 11);
  Tensor X = randomTensor({2, 2, 6, 6}, 4);
  auto Ref = interpret(*GM, {X});
  REQUIRE(bool(Ref));
  TapeOptions Opts;
  Opts.Training = false;
  Tape T(*GM, Opts);
  auto Out = T.forward({X});
  REQUIRE(bool(Out));
  CHECK((*Out)[0].identical(*Ref));
  // Eval mode records nothing to differentiate.
  llvm::Error E = T.backward({randomTensor({2, 4}, 5)});
  REQUIRE(bool(E));
  CHECK(errorToString(std::move(E)).find("training-mode forward") !=
        std::string::npos);
}

TEST_CASE("tape: batch norm updates running statistics unless frozen",
          "[train]") {
  auto GM = parse(MixedGraph);
  fillTensors(*GM, 13);
  Tensor X = randomTensor({2, 2, 6, 6}, 6);
  Tensor Mean0 = GM->lookupTensor("bn.running_mean")->clone();
  Tensor Var0 = GM->lookupTensor("bn.running_var")->clone();

  TapeOptions Frozen;
  Frozen.FreezeBatchNorm = true;
  Tensor YFrozen = trainForward(*GM, X, Frozen);
  CHECK(GM->lookupTensor("bn.running_mean")->identical(Mean0));
  CHECK(GM->lookupTensor("bn.running_var")->identical(Var0));
  // Frozen batch norm computes what eval mode computes.
  auto Ref = interpret(*GM, {X});
  REQUIRE(bool(Ref));
  CHECK(YFrozen.identical(*Ref));

  trainForward(*GM, X);
  // running = 0.9 * running + 0.1 * batch statistic, per channel: the mean
  // moved towards the batch mean of conv's output.
  auto Conv = interpret(*GM, {X});
  REQUIRE(bool(Conv));
  const Tensor &M1 = *GM->lookupTensor("bn.running_mean");
  CHECK_FALSE(M1.identical(Mean0));
  CHECK_FALSE(GM->lookupTensor("bn.running_var")->identical(Var0));
}

TEST_CASE("tape: errors name the problem", "[train]") {
  auto GM = parse(MixedGraph);
  fillTensors(*GM, 17);
  Tape T(*GM);
  llvm::Error NoForward = T.backward({randomTensor({2, 4}, 1)});
  REQUIRE(bool(NoForward));
  consumeError(std::move(NoForward));

  auto Out = T.forward({randomTensor({2, 2, 6, 6}, 1)});
  REQUIRE(bool(Out));
  llvm::Error BadShape = T.backward({randomTensor({2, 5}, 1)});
  REQUIRE(bool(BadShape));
  CHECK(errorToString(std::move(BadShape)).find("f32[2,4]") !=
        std::string::npos);

  auto Wrong =
      T.forward({randomTensor({2, 2, 6, 6}, 1), randomTensor({2, 2, 6, 6}, 1)});
  REQUIRE_FALSE(bool(Wrong));
  CHECK(errorToString(Wrong.takeError()) == "expected 1 inputs, got 2");
}

TEST_CASE("tape: a node without a gradient rule is reported by name",
          "[train]") {
  auto GM = parse(R"(graph_module M {
  graph {
    %x : f32[2,3] = placeholder[x]
    %q : f32[2,3] = call_function[mean](%x, [1], true)
    %y : f32[2,3] = call_function[quantize_per_tensor](%x, 0.1, 0, "quint8")
    %d : f32[2,3] = call_method[dequantize](%y)
    %output = output[output](%d)
  }
})");
  TapeOptions Opts;
  Opts.InputGradients = true;
  Tape T(*GM, Opts);
  auto Out = T.forward({randomTensor({2, 3}, 1)});
  REQUIRE(bool(Out));
  llvm::Error E = T.backward({randomTensor((*Out)[0].shape(), 2)});
  REQUIRE(bool(E));
  std::string Msg = errorToString(std::move(E));
  CHECK(Msg.find("node 'd'") != std::string::npos);
  CHECK(Msg.find("no gradient rule") != std::string::npos);
}

TEST_CASE("tape: fake-quant activations pass gradients straight through "
          "inside the range only",
          "[train]") {
  auto GM = parse(R"(graph_module M {
  graph {
    %x : f32[1,8] = placeholder[x]
    %fq : f32[1,8] = call_module[fq](%x)
    %output = output[output](%fq)
  }
})");
  ObserverSpec Spec = ObserverSpec::make(ObserverKind::MovingAverageMinMax,
                                         DType::U8, QScheme::PerTensorAffine);
  initFakeQuantizeModule(GM->addModule("fq", "FakeQuantize"), Spec);
  // Fixed qparams: scale 0.1, zero point 10 -> representable [-1.0, 24.5].
  cantFail(GM->setTensor("fq.scale", Tensor::fromFloats({1}, {0.1f}), true));
  Tensor Zp(DType::S32, {1});
  Zp.setFromDouble(0, 10);
  cantFail(GM->setTensor("fq.zero_point", Zp, true));
  setObserverEnabled(*GM, false);

  TapeOptions Opts;
  Opts.InputGradients = true;
  Tape T(*GM, Opts);
  Tensor X = Tensor::fromFloats(
      {1, 8}, {-2.0f, -1.04f, -1.06f, 0.0f, 3.33f, 24.54f, 24.56f, 30.0f});
  auto Out = T.forward({X});
  REQUIRE(bool(Out));
  CHECK((*Out)[0].data<float>()[4] == Approx(3.3f));
  REQUIRE(!T.backward({Tensor::fromFloats({1, 8}, {1, 2, 3, 4, 5, 6, 7, 8})}));
  std::vector<float> G(T.inputGrad(0).data<float>(),
                       T.inputGrad(0).data<float>() + 8);
  // -1.04 rounds to -1.0 (q = 0, inside); -1.06 rounds to q = -1 (outside);
  // 24.54 rounds to q = 255 (inside), 24.56 to 256 (outside).
  CHECK(G == std::vector<float>{0, 2, 0, 4, 5, 6, 0, 0});
}

TEST_CASE("tape: fake-quantized weights get the straight-through gradient",
          "[train]") {
  const char *Text = R"(graph_module M {
  module fc : Linear {in_features = 4, out_features = 2} {
    param weight : f32[2,4]
    param bias : f32[2]
  }
  graph {
    %x : f32[3,4] = placeholder[x]
    %fc : f32[3,2] = call_module[fc](%x)
    %output = output[output](%fc)
  }
})";
  auto GM = parse(Text);
  Tensor W = Tensor::fromFloats({2, 4}, {0.1f, -0.2f, 0.3f, 0.9f, //
                                         -0.9f, 0.05f, 0.2f, -0.1f});
  cantFail(GM->setTensor("fc.weight", W));
  cantFail(GM->setTensor("fc.bias", Tensor::fromFloats({2}, {0.1f, -0.1f})));
  // Per-tensor qint8 weights with scale 0.005: |w| > 0.64 is clamped.
  ObserverSpec Spec = ObserverSpec::make(ObserverKind::MinMax, DType::S8,
                                         QScheme::PerTensorSymmetric);
  initFakeQuantizeModule(GM->addModule("fc.weight_fake_quant", "FakeQuantize"),
                         Spec);
  cantFail(GM->setTensor("fc.weight_fake_quant.scale",
                         Tensor::fromFloats({1}, {0.005f}), true));
  setObserverEnabled(*GM, false);

  Tensor X = randomTensor({3, 4}, 1), R = randomTensor({3, 2}, 2);
  Tape T(*GM);
  REQUIRE(bool(T.forward({X})));
  REQUIRE(!T.backward({R}));
  const Tensor &G = T.grads().at("fc.weight");
  // d/dW of sum(R * (X Wq^T + b)) is R^T X, masked where w is clamped.
  for (int64_t O = 0; O < 2; ++O)
    for (int64_t I = 0; I < 4; ++I) {
      double Full = 0;
      for (int64_t N = 0; N < 3; ++N)
        Full += double(R.data<float>()[N * 2 + O]) * X.data<float>()[N * 4 + I];
      bool Clamped = std::fabs(W.data<float>()[O * 4 + I]) > 0.64f;
      CHECK(G.data<float>()[O * 4 + I] ==
            Approx(Clamped ? 0.0 : Full).margin(1e-6));
    }
  // The float weight itself is untouched by the forward.
  CHECK(GM->lookupTensor("fc.weight")->identical(W));
}
