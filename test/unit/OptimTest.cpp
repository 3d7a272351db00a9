//===- OptimTest.cpp - SGD against PyTorch's update, LR schedules ---------===//

#include "TestUtil.h"

#include "qfx/Train/Optim.h"

#include "qfx/IR/GraphModule.h"
#include "qfx/Support/Error.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <vector>

using namespace qfx;
using Catch::Contains;
using testutil::take;

namespace {

std::string errorText(llvm::Error E) {
  return E ? errorToString(std::move(E)) : std::string();
}

/// fc.weight = [1, -2] and fc.bias = [0.5] (parameters), bn.running_mean (a
/// buffer) and fc.scale (an s32 parameter).
std::unique_ptr<GraphModule> smallModel() {
  auto GM = std::make_unique<GraphModule>();
  GM->addModule("fc", "Linear");
  GM->addModule("bn", "BatchNorm1d");
  REQUIRE(errorText(GM->setTensor("fc.weight",
                                  Tensor::fromFloats({2}, {1, -2}))) == "");
  REQUIRE(errorText(GM->setTensor("fc.bias", Tensor::fromFloats({1}, {0.5}))) ==
          "");
  REQUIRE(errorText(GM->setTensor(
              "fc.scale", Tensor::fromValues<int>(DType::S32, {1}, {3}))) ==
          "");
  REQUIRE(errorText(GM->setTensor("bn.running_mean",
                                  Tensor::fromFloats({2}, {0, 0}),
                                  /*IsBuffer=*/true)) == "");
  return GM;
}

std::vector<double> values(const Tensor &T) {
  std::vector<double> R;
  for (int64_t I = 0; I < T.numElements(); ++I)
    R.push_back(T.getAsDouble(I));
  return R;
}

void checkClose(const Tensor &T, std::vector<double> Want) {
  std::vector<double> Got = values(T);
  REQUIRE(Got.size() == Want.size());
  for (size_t I = 0; I < Got.size(); ++I)
    CHECK(Got[I] == Approx(Want[I]).epsilon(1e-6));
}

/// The gradients of the three steps below, for fc.weight.
const std::vector<std::vector<float>> Grads = {
    {0.5f, 0.25f}, {-1.0f, 0.5f}, {0.25f, -0.75f}};

/// Runs three steps of \p Opts on fc.weight and checks the parameter and
/// momentum buffer after each against \p WantP and \p WantBuf (PyTorch's
/// values, computed by hand from the update in Optim.h).
void checkSteps(SGDOptions Opts, std::vector<std::vector<double>> WantP,
                std::vector<std::vector<double>> WantBuf) {
  auto GM = smallModel();
  SGD Opt = take(SGD::create(Opts));
  for (size_t S = 0; S < Grads.size(); ++S) {
    INFO("step " << S);
    GradMap G{{"fc.weight", Tensor::fromFloats({2}, Grads[S])}};
    REQUIRE(errorText(Opt.step(*GM, G)) == "");
    checkClose(*GM->lookupTensor("fc.weight"), WantP[S]);
    if (WantBuf.empty()) {
      CHECK(Opt.momentumBuffers().empty());
      continue;
    }
    REQUIRE(Opt.momentumBuffers().count("fc.weight"));
    checkClose(Opt.momentumBuffers().at("fc.weight"), WantBuf[S]);
  }
  // Parameters without a gradient are left alone.
  CHECK(values(*GM->lookupTensor("fc.bias")) == std::vector<double>{0.5});
}

} // namespace

TEST_CASE("train: SGD without momentum", "[train][optim]") {
  SGDOptions O;
  O.LR = 0.1;
  checkSteps(O, {{0.95, -2.025}, {1.05, -2.075}, {1.025, -2}}, {});
}

TEST_CASE("train: SGD with momentum and weight decay", "[train][optim]") {
  SGDOptions O;
  O.LR = 0.1;
  O.Momentum = 0.9;
  O.WeightDecay = 1e-4;
  // Step 1: d = g + 1e-4 p = [0.5001, 0.2498]; buf = d (no dampening on
  // the first step); p = [1, -2] - 0.1 d.
  // Step 2: d = [-1 + 1e-4 * 0.94999, ...]; buf = 0.9 buf + d.
  checkSteps(
      O,
      {{0.94999, -2.02498}, {1.0049715, -2.09744175}, {1.0294448, -2.08763635}},
      {{0.5001, 0.2498},
       {-0.549815001, 0.724617502},
       {-0.244733004, -0.0980539924}});
}

TEST_CASE("train: SGD with dampening", "[train][optim]") {
  SGDOptions O;
  O.LR = 0.1;
  O.Momentum = 0.9;
  O.Dampening = 0.1;
  // The first step copies d into the buffer undamped, as PyTorch does;
  // then buf = 0.9 buf + 0.9 d.
  checkSteps(O, {{0.95, -2.025}, {0.995, -2.0925}, {1.013, -2.08575}},
             {{0.5, 0.25}, {-0.45, 0.675}, {-0.18, -0.0675}});
}

TEST_CASE("train: SGD with nesterov momentum", "[train][optim]") {
  SGDOptions O;
  O.LR = 0.1;
  O.Momentum = 0.9;
  O.WeightDecay = 1e-4;
  O.Nesterov = true;
  // p -= lr * (d + 0.9 buf).
  checkSteps(O,
             {{0.904981, -2.047462},
              {1.05445571, -2.1626569},
              {1.05147105, -2.07880964}},
             {{0.5001, 0.2498},
              {-0.549819502, 0.724615254},
              {-0.244732106, -0.0980625373}});
}

TEST_CASE("train: SGD updates several parameters and follows setLR",
          "[train][optim]") {
  auto GM = smallModel();
  SGDOptions O;
  O.LR = 1;
  SGD Opt = take(SGD::create(O));
  Opt.setLR(0.5);
  CHECK(Opt.lr() == 0.5);
  GradMap G{{"fc.weight", Tensor::fromFloats({2}, {1, 1})},
            {"fc.bias", Tensor::fromFloats({1}, {-1})}};
  REQUIRE(errorText(Opt.step(*GM, G)) == "");
  CHECK(values(*GM->lookupTensor("fc.weight")) ==
        std::vector<double>{0.5, -2.5});
  CHECK(values(*GM->lookupTensor("fc.bias")) == std::vector<double>{1});
}

TEST_CASE("train: SGD rejects bad gradients and changes nothing",
          "[train][optim]") {
  auto GM = smallModel();
  SGDOptions O;
  O.LR = 0.1;
  O.Momentum = 0.9;
  SGD Opt = take(SGD::create(O));
  // "fc.bias" sorts before the bad entries, so it would be updated first
  // if step did not validate everything up front.
  Tensor Ok = Tensor::fromFloats({1}, {1});
  auto Check = [&](GradMap G, const std::string &Want) {
    G.emplace("fc.bias", Ok);
    CHECK_THAT(errorText(Opt.step(*GM, G)), Contains(Want));
    CHECK(values(*GM->lookupTensor("fc.bias")) == std::vector<double>{0.5});
    CHECK(values(*GM->lookupTensor("fc.weight")) == std::vector<double>{1, -2});
    CHECK(Opt.momentumBuffers().empty());
  };
  Check({{"fc.weight", Tensor::fromFloats({3}, {1, 2, 3})}},
        "gradient for 'fc.weight': expected f32[2], got f32[3]");
  Check({{"fc.weight", Tensor::fromValues<int>(DType::S32, {2}, {1, 2})}},
        "gradient for 'fc.weight': expected f32[2], got s32[2]");
  Check({{"fc.weight", Tensor::declared(DType::F32, {2})}},
        "gradient for 'fc.weight': expected f32[2], got f32[2] without data");
  Check({{"fc.nope", Tensor::fromFloats({1}, {1})}},
        "gradient for 'fc.nope': the module has no parameter of that name");
  Check({{"zz.weight", Tensor::fromFloats({1}, {1})}},
        "gradient for 'zz.weight': the module has no parameter");
  Check({{"bn.running_mean", Tensor::fromFloats({2}, {1, 1})}},
        "gradient for 'bn.running_mean': 'bn.running_mean' is a buffer, not "
        "a parameter");
  Check({{"fc.scale", Tensor::fromFloats({1}, {1})}},
        "gradient for 'fc.scale': parameter is s32[1], only f32 parameters");
}

TEST_CASE("train: SGD options are validated as PyTorch does",
          "[train][optim]") {
  auto Err = [](SGDOptions O) {
    llvm::Expected<SGD> S = SGD::create(O);
    return S ? std::string() : errorToString(S.takeError());
  };
  SGDOptions O;
  CHECK(Err(O) == "");
  O.LR = -0.1;
  CHECK(Err(O) == "invalid learning rate: -0.1");
  O = {};
  O.LR = std::nan("");
  CHECK_THAT(Err(O), Contains("invalid learning rate"));
  O = {};
  O.Momentum = -1;
  CHECK(Err(O) == "invalid momentum value: -1");
  O = {};
  O.WeightDecay = -1e-4;
  CHECK(Err(O) == "invalid weight_decay value: -0.0001");
  O = {};
  O.Nesterov = true;
  CHECK(Err(O) == "nesterov momentum requires a momentum and zero dampening");
  O.Momentum = 0.9;
  CHECK(Err(O) == "");
  O.Dampening = 0.1;
  CHECK(Err(O) == "nesterov momentum requires a momentum and zero dampening");
}

TEST_CASE("train: learning-rate schedules", "[train][optim]") {
  LRSchedule C = take(LRSchedule::parse("constant", 0.1, 30));
  CHECK(C.K == LRSchedule::Kind::Constant);
  CHECK(C.at(0) == 0.1);
  CHECK(C.at(1000) == 0.1);

  LRSchedule S = take(LRSchedule::parse("step:10:0.5", 0.1, 30));
  CHECK(S.K == LRSchedule::Kind::Step);
  CHECK(S.StepSize == 10);
  CHECK(S.Gamma == 0.5);
  CHECK(S.at(0) == Approx(0.1));
  CHECK(S.at(9) == Approx(0.1));
  CHECK(S.at(10) == Approx(0.05));
  CHECK(S.at(25) == Approx(0.025));
  CHECK(S.at(30) == Approx(0.0125));
  CHECK(S.at(1000) == Approx(0.0125)); // Past the end: the rate at the end.

  LRSchedule Cos = take(LRSchedule::parse("cosine", 0.1, 100));
  CHECK(Cos.K == LRSchedule::Kind::Cosine);
  CHECK(Cos.WarmupSteps == 0);
  CHECK(Cos.at(0) == Approx(0.1));
  CHECK(Cos.at(25) == Approx(0.05 * (1 + std::sqrt(0.5))));
  CHECK(Cos.at(50) == Approx(0.05));
  CHECK(Cos.at(100) == Approx(0).margin(1e-12));
  CHECK(Cos.at(500) == Approx(0).margin(1e-12));
  Cos.MinLR = 0.01;
  CHECK(Cos.at(50) == Approx(0.055));
  CHECK(Cos.at(100) == Approx(0.01));

  LRSchedule W = take(LRSchedule::parse("cosine:10", 0.1, 110));
  CHECK(W.WarmupSteps == 10);
  CHECK(W.at(0) == 0);
  CHECK(W.at(5) == Approx(0.05));
  CHECK(W.at(10) == Approx(0.1));
  CHECK(W.at(60) == Approx(0.05));
  CHECK(W.at(110) == Approx(0).margin(1e-12));
}

TEST_CASE("train: learning-rate schedule errors", "[train][optim]") {
  auto Err = [](llvm::StringRef Spec, int64_t Total = 100, double Base = 0.1) {
    llvm::Expected<LRSchedule> S = LRSchedule::parse(Spec, Base, Total);
    return S ? std::string() : errorToString(S.takeError());
  };
  const std::string Syntax =
      "': expected constant, step:<size>:<gamma> or cosine[:<warmup>]";
  for (const char *Bad : {"foo", "", "constant:1", "step", "step:10",
                          "step:1:2:3", "cosine:1:2", "Cosine"})
    CHECK(Err(Bad) == "learning-rate schedule '" + std::string(Bad) + Syntax);
  CHECK(Err("step:0:0.5") == "learning-rate schedule 'step:0:0.5': step size "
                             "must be a positive integer, got '0'");
  CHECK(Err("step:x:0.5") == "learning-rate schedule 'step:x:0.5': step size "
                             "must be a positive integer, got 'x'");
  CHECK(Err("step:10:abc") == "learning-rate schedule 'step:10:abc': gamma "
                              "must be a positive number, got 'abc'");
  CHECK(Err("step:10:-1") == "learning-rate schedule 'step:10:-1': gamma "
                             "must be a positive number, got '-1'");
  CHECK(Err("cosine:-1") == "learning-rate schedule 'cosine:-1': warm-up "
                            "steps must be a non-negative integer, got '-1'");
  CHECK(Err("cosine:100") ==
        "learning-rate schedule 'cosine:100': warm-up steps (100) must be "
        "fewer than the total steps (100)");
  CHECK(Err("constant", 0) == "learning-rate schedule 'constant': the number "
                              "of steps must be positive, got 0");
  CHECK(Err("constant", 10, -1) == "learning-rate schedule 'constant': "
                                   "invalid base learning rate: -1");
}
