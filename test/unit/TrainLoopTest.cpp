//===- TrainLoopTest.cpp - Training runs: determinism, QAT end to end ----===//

#include "qfx/IR/GraphModule.h"
#include "qfx/Models/Zoo.h"
#include "qfx/NN/Module.h"
#include "qfx/Pipeline/QuantizeFx.h"
#include "qfx/Quant/ObserverModule.h"
#include "qfx/Quant/QConfigMapping.h"
#include "qfx/Runtime/Interpreter.h"
#include "qfx/Support/Error.h"
#include "qfx/Trace/SymbolicTrace.h"
#include "qfx/Train/Trainer.h"

#include <catch2/catch.hpp>

#include <random>

using namespace qfx;

namespace {

/// A learnable synthetic task of Net's input shape: class k's images are
/// a fixed random prototype k plus noise.
Dataset syntheticDataset(int64_t N, uint64_t Seed) {
  std::mt19937_64 Rng(Seed);
  std::normal_distribution<float> Noise(0.0f, 0.5f);
  std::vector<Tensor> Protos;
  std::mt19937_64 ProtoRng(99);
  std::uniform_real_distribution<float> U(-1.0f, 1.0f);
  for (int K = 0; K < 10; ++K) {
    Tensor P(DType::F32, {784});
    for (int64_t I = 0; I < 784; ++I)
      P.data<float>()[I] = U(ProtoRng);
    Protos.push_back(P);
  }
  Tensor X(DType::F32, {N, 1, 28, 28});
  std::vector<int64_t> Labels;
  for (int64_t R = 0; R < N; ++R) {
    int64_t K = R % 10;
    Labels.push_back(K);
    for (int64_t I = 0; I < 784; ++I)
      X.data<float>()[R * 784 + I] = Protos[K].data<float>()[I] + Noise(Rng);
  }
  return cantFail(makeDataset(X, Labels, 10));
}

std::unique_ptr<GraphModule> tracedNet(uint64_t Seed) {
  nn::manual_seed(Seed);
  models::Net Net;
  auto GM = symbolicTrace(
      Net, {InputSpec::symbolic("x", DType::F32, {16, 1, 28, 28})});
  REQUIRE(bool(GM));
  return std::move(*GM);
}

/// Trains \p GM for \p Epochs on \p D; returns the mean loss per epoch.
std::vector<double> train(GraphModule &GM, const Dataset &D, int Epochs,
                          double LR) {
  Tape T(GM);
  auto Opt = SGD::create({LR, 0.9, 0, 1e-4, false});
  REQUIRE(bool(Opt));
  BatchLoader Loader(D, 16, /*Shuffle=*/true, /*Seed=*/5);
  auto Sched = LRSchedule::parse("cosine", LR, Epochs * Loader.numBatches());
  REQUIRE(bool(Sched));
  int64_t Step = 0;
  std::vector<double> Losses;
  for (int E = 0; E < Epochs; ++E) {
    auto S = trainEpoch(T, *Opt, Loader, *Sched, Step);
    REQUIRE(bool(S));
    Losses.push_back(S->MeanLoss);
  }
  return Losses;
}

} // namespace

TEST_CASE("train: a short run decreases the loss, deterministically",
          "[train]") {
  Dataset D = syntheticDataset(160, 1);
  auto A = tracedNet(3), B = tracedNet(3);
  std::vector<double> LA = train(*A, D, 3, 0.02);
  std::vector<double> LB = train(*B, D, 3, 0.02);
  INFO("losses " << LA[0] << " " << LA[1] << " " << LA[2]);
  CHECK(LA[1] < LA[0]);
  CHECK(LA[2] < LA[1]);
  CHECK(LA[2] < 0.9 * LA[0]);
  // Same seed, same batches, same kernels: bit-identical runs.
  CHECK(LA == LB);
  for (auto &[Name, T] : A->namedTensors())
    CHECK(T->identical(*B->lookupTensor(Name)));
  Tape Eval(*A);
  auto Acc = evaluateAccuracy(Eval, D, 40);
  REQUIRE(bool(Acc));
  CHECK(*Acc > 0.9);
}

TEST_CASE("train: prepare_qat_fx, train, convert_fx end to end",
          "[train][qat]") {
  Dataset D = syntheticDataset(160, 2);
  auto GM = tracedNet(4);
  train(*GM, D, 2, 0.02);
  Tape FloatEval(*GM);
  double FloatAcc = cantFail(evaluateAccuracy(FloatEval, D, 40));

  std::unique_ptr<GraphModule> Q = GM->clone();
  auto Mapping =
      QConfigMapping().setGlobal(cantFail(QConfig::preset("qat_x86")));
  REQUIRE(!prepareGraph(*Q, Mapping, /*QAT=*/true));
  std::vector<double> Losses = train(*Q, D, 2, 0.005);
  CHECK(std::isfinite(Losses.back()));
  // Observers learned ranges; freezing them keeps scales fixed.
  setObserverEnabled(*Q, false);
  Tensor Scale = Q->lookupTensor("activation_post_process_0.scale")->clone();
  CHECK(Scale.getAsDouble(0) != 1.0);
  train(*Q, D, 1, 0.001);
  CHECK(Q->lookupTensor("activation_post_process_0.scale")->identical(Scale));

  auto Int8 = convert_fx(*Q);
  REQUIRE(bool(Int8));
  auto Out = (*Int8)({sliceRows(D.Inputs, 0, 40)});
  REQUIRE(bool(Out));
  int64_t Correct = 0;
  for (int64_t I = 0; I < 40; ++I)
    Correct += argmaxRow((*Out)[0], I) == D.Labels[I];
  INFO("float " << FloatAcc << ", int8 after QAT " << Correct / 40.0);
  CHECK(Correct / 40.0 >= FloatAcc - 0.05);
}
