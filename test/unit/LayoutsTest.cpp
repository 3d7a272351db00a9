//===- LayoutsTest.cpp - The blocked and channels-last fp32 layout plans --===//

#include "LoweringTestUtil.h"
#include "TestUtil.h"
#include "qfx/Codegen/Lowering.h"
#include "qfx/Models/Zoo.h"
#include "qfx/NN/Module.h"
#include "qfx/Trace/SymbolicTrace.h"
#include "qfx/Transforms/Fuse.h"
#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <map>
#include <string>
#include <vector>

using namespace qfx;
using namespace qfx::lowering_test;
using namespace qfx::testutil;

namespace {

/// \p Opts with layout plan \p Plan, one thread, no thread measuring.
CompileOptions planOptions(LayoutChoice Plan, int Threads = 1) {
  CompileOptions Opts;
  Opts.NumThreads = Threads;
  Opts.Threads = ThreadChoice::Budget;
  Opts.Layouts = Plan;
  return Opts;
}

size_t countBlockedConvs(const CompiledModule &M) {
  size_t N = 0;
  for (const StepInfo &S : M.steps())
    N += S.Kind == "conv" && llvm::StringRef(S.Detail).contains("blocked");
  return N;
}

/// The step kinds of \p M in order.
std::vector<std::string> kinds(const CompiledModule &M) {
  std::vector<std::string> K;
  for (const StepInfo &S : M.steps())
    K.push_back(S.Kind);
  return K;
}

/// A traced float zoo model, with batch norms folded into the convs
/// (fuse_fx) when \p Fold.
std::unique_ptr<GraphModule> floatZoo(const models::ZooEntry &E, const Shape &S,
                                      bool Fold) {
  auto Model = E.Create();
  Model->eval();
  auto GM =
      take(symbolicTrace(*Model, {InputSpec::symbolic("x", DType::F32, S)}));
  if (Fold) {
    PassContext Ctx;
    Fuse F;
    if (llvm::Error Err = F.run(*GM, Ctx))
      FAIL(errorToString(std::move(Err)));
  }
  return GM;
}

} // namespace

TEST_CASE("every zoo model compiled fp32 under the blocked plan equals the "
          "channels-last plan and the interpreter",
          "[layouts]") {
  for (const models::ZooEntry &E : models::zoo()) {
    for (bool Fold : {false, true}) {
      INFO(E.Name << (Fold ? " with batch norms folded" : ""));
      Shape S = smallZooInput(E);
      auto GM = floatZoo(E, S, Fold);
      std::vector<Tensor> In = {randomF32(S, 91)};
      Tensor Want = interpretAll(*GM, In)[0];
      auto Channels =
          compileOrFail(*GM, planOptions(LayoutChoice::ChannelsLast));
      auto Blocked = compileOrFail(*GM, planOptions(LayoutChoice::Blocked));
      Tensor GotC = runOrFail(*Channels, In)[0];
      Tensor GotB = runOrFail(*Blocked, In)[0];
      CHECK(relToLargest(GotB, GotC) < 1e-5);
      CHECK(relToLargest(GotB, Want) < 1e-4);
      CHECK(countBlockedConvs(*Channels) == 0);
      CHECK(Channels->layouts().Plan == "channels-last");
      CHECK(Blocked->layouts().Plan == "blocked");
      CHECK_FALSE(Blocked->layouts().Measured);
      CHECK(countKind(*Blocked, "fallback") ==
            countKind(*Channels, "fallback"));
      for (const StepInfo &Step : Blocked->steps()) {
        INFO(Step.Name << " " << Step.Impl);
        CHECK(!llvm::StringRef(Step.Impl).startswith("ref"));
      }
      if (E.Name == "resnet18" || E.Name == "mobilenet_v2")
        CHECK(countBlockedConvs(*Blocked) > 0);
    }
  }
}

TEST_CASE("a float conv chain under the blocked plan reorders only at its "
          "input and output",
          "[layouts]") {
  Builder B;
  ConvSpec S;
  S.In = S.Out = 32;
  Node *X = B.input("x", {2, 32, 9, 9});
  Node *C1 = fconv(B, "c1", "ConvReLU2d", X, nullptr, S);
  Node *C2 = fconv(B, "c2", "ConvReLU2d", C1, nullptr, S);
  // A residual: c3(c2) + c1 as the sum post-op of c3.
  Node *C3 = fconv(B, "c3", "Conv2d", C2, nullptr, S);
  Node *Sum = B.fn("relu", {B.fn("add", {C3, C1})});
  ConvSpec D = S;
  D.Groups = 32; // depthwise
  Node *C4 = fconv(B, "c4", "Conv2d", Sum, nullptr, D);
  Node *C5 =
      fconv(B, "c5", "ConvReLU2d",
            B.fn("hardtanh", {C4, Argument::real(0.0), Argument::real(6.0)}),
            nullptr, S);
  B.output(C5);
  std::vector<Tensor> In = {randomF32({2, 32, 9, 9}, 5)};
  Tensor Want = interpretAll(*B.GM, In)[0];
  auto M = compileOrFail(*B.GM, planOptions(LayoutChoice::Blocked));
  CHECK(closeF32(runOrFail(*M, In)[0], Want));
  INFO(M->summary());
  CHECK(kinds(*M) == std::vector<std::string>{"reorder", "conv", "conv", "conv",
                                              "conv", "conv", "reorder"});
  CHECK(countBlockedConvs(*M) == 5);
  const StepInfo *C3Step = findStep(*M, "conv", "c3");
  REQUIRE(C3Step);
  CHECK(C3Step->Sum == SumMode::InPlace);
  // The channels-last plan has no reorder at all (nhwc in, plain out).
  auto CL = compileOrFail(*B.GM, planOptions(LayoutChoice::ChannelsLast));
  CHECK(countBlockedConvs(*CL) == 0);
  CHECK(closeF32(runOrFail(*CL, In)[0], Want));
  // The same chain with the residual built into a fused module.
  Builder BA;
  Node *A1 =
      fconv(BA, "c1", "ConvReLU2d", BA.input("x", {2, 32, 9, 9}), nullptr, S);
  Node *A2 = fconv(BA, "c2", "ConvReLU2d", A1, nullptr, S);
  Node *A3 = fconv(BA, "c3", "ConvAddReLU2d", A2, A1, S);
  BA.output(fconv(BA, "c4", "Conv2d", A3, nullptr, S));
  Want = interpretAll(*BA.GM, In)[0];
  auto MA = compileOrFail(*BA.GM, planOptions(LayoutChoice::Blocked));
  CHECK(closeF32(runOrFail(*MA, In)[0], Want));
  INFO(MA->summary());
  CHECK(kinds(*MA) == std::vector<std::string>{"reorder", "conv", "conv",
                                               "conv", "conv", "reorder"});
  CHECK(countBlockedConvs(*MA) == 4);
}

TEST_CASE("the blocked plan keeps a conv whose reader needs NHWC "
          "channels-last, and reorders before a reader that needs it",
          "[layouts]") {
  Builder B;
  ConvSpec S;
  S.In = S.Out = 16;
  Node *X = B.input("x", {1, 16, 6, 6});
  // c1 is read by c2 and by a flatten (a view): no blocked conv for it.
  Node *C1 = fconv(B, "c1", "ConvReLU2d", X, nullptr, S);
  Node *C2 = fconv(B, "c2", "ConvReLU2d", C1, nullptr, S);
  Node *C3 = fconv(B, "c3", "Conv2d", C2, nullptr, S);
  Node *Flat = B.fn("flatten", {C1, Argument::integer(1)});
  Node *FC = flinear(B, "fc", Flat, 16 * 6 * 6, 4);
  // c3 is read by a sigmoid: c2 -> c3 is a blocked chain, reordered after.
  Node *Sig = B.fn("sigmoid", {C3});
  B.output({FC, Sig});
  std::vector<Tensor> In = {randomF32({1, 16, 6, 6}, 6)};
  std::vector<Tensor> Want = interpretAll(*B.GM, In);
  auto M = compileOrFail(*B.GM, planOptions(LayoutChoice::Blocked));
  std::vector<Tensor> Got = runOrFail(*M, In);
  REQUIRE(Got.size() == 2);
  CHECK(closeF32(Got[0], Want[0]));
  CHECK(closeF32(Got[1], Want[1]));
  INFO(M->summary());
  const StepInfo *C1Step = findStep(*M, "conv", "c1");
  const StepInfo *C3Step = findStep(*M, "conv", "c3");
  REQUIRE(C1Step);
  REQUIRE(C3Step);
  CHECK_FALSE(llvm::StringRef(C1Step->Detail).contains("blocked"));
  CHECK(llvm::StringRef(C3Step->Detail).contains("blocked"));
  CHECK(countBlockedConvs(*M) == 2);
}

TEST_CASE("a blocked value of a 1x1 image leaves the chain through a "
          "reorder, not a view",
          "[layouts]") {
  // Plain and nhwc order a 1x1 image's bytes alike, nChw16c (24 channels
  // padded to 32) does not.
  Builder B;
  ConvSpec S;
  S.In = S.Out = 24;
  S.Pad = 0;
  Node *X = B.input("x", {2, 24, 3, 3});
  Node *C1 = fconv(B, "c1", "ConvReLU2d", X, nullptr, S);
  ConvSpec P = S;
  P.K = 1;
  Node *C2 = fconv(B, "c2", "Conv2d", C1, nullptr, P);
  Node *Flat = B.fn("flatten", {C2, Argument::integer(1)});
  B.output(flinear(B, "fc", Flat, 24, 5));
  std::vector<Tensor> In = {randomF32({2, 24, 3, 3}, 8)};
  Tensor Want = interpretAll(*B.GM, In)[0];
  auto M = compileOrFail(*B.GM, planOptions(LayoutChoice::Blocked));
  INFO(M->summary());
  CHECK(countBlockedConvs(*M) == 2);
  CHECK(closeF32(runOrFail(*M, In)[0], Want));
}

TEST_CASE("measuring the layouts reports both plans' times and the choice",
          "[layouts]") {
  Builder B;
  ConvSpec S;
  S.In = S.Out = 32;
  // Big enough (a few ms a run) to be measured.
  Node *V = B.input("x", {1, 32, 64, 64});
  for (int I = 0; I < 4; ++I)
    V = fconv(B, "c" + std::to_string(I), "ConvReLU2d", V, nullptr, S);
  B.output(V);
  CompileOptions Opts = planOptions(LayoutChoice::Measure);
  auto M = compileOrFail(*B.GM, Opts);
  LayoutReport L = M->layouts();
  CHECK(L.Measured);
  CHECK(L.ChannelsLastMs > 0.0);
  CHECK(L.BlockedMs > 0.0);
  CHECK(L.Plan ==
        (L.BlockedMs < 0.97 * L.ChannelsLastMs ? "blocked" : "channels-last"));
  CHECK(countBlockedConvs(*M) == (L.Plan == "blocked" ? 4u : 0u));
  CHECK(llvm::StringRef(M->summary())
            .contains("fp32 conv layouts: " + L.Plan +
                      " (measured: channels-last "));
  // Nothing to measure without float convs, nor in a module this small.
  Builder B2;
  B2.output(flinear(B2, "fc", B2.input("x", {2, 8}), 8, 4));
  Builder B3;
  B3.output(fconv(B3, "c", "Conv2d", B3.input("x", {1, 8, 4, 4}), nullptr,
                  ConvSpec()));
  for (Builder *Small : {&B2, &B3}) {
    auto M = compileOrFail(*Small->GM, Opts);
    CHECK_FALSE(M->layouts().Measured);
    CHECK(M->layouts().Plan == "channels-last");
    CHECK_FALSE(llvm::StringRef(M->summary()).contains("layouts"));
  }
}

/// Not a check: the fp32 ratios of docs/performance.md ("Layouts"). Times
/// ResNet-18 and MobileNetV2 (batch norms folded, 224x224) under both plans,
/// interleaved; QFX_LAYOUT_BATCH / QFX_LAYOUT_THREADS / QFX_LAYOUT_ROUNDS
/// choose the runs (default batch 1, 1 thread, 15 rounds).
TEST_CASE("layout plans timed on the zoo's 224x224 models", "[.][bench]") {
  auto EnvInt = [](const char *Name, int Default) {
    const char *V = std::getenv(Name);
    return V ? std::atoi(V) : Default;
  };
  int Batch = EnvInt("QFX_LAYOUT_BATCH", 1);
  int Threads = EnvInt("QFX_LAYOUT_THREADS", 1);
  int Rounds = EnvInt("QFX_LAYOUT_ROUNDS", 15);
  for (const models::ZooEntry &E : models::zoo()) {
    if (E.Name != "resnet18" && E.Name != "mobilenet_v2")
      continue;
    Shape S(E.InputShape.begin(), E.InputShape.end());
    S[0] = Batch;
    auto GM = floatZoo(E, S, /*Fold=*/true);
    auto C =
        compileOrFail(*GM, planOptions(LayoutChoice::ChannelsLast, Threads));
    auto Bl = compileOrFail(*GM, planOptions(LayoutChoice::Blocked, Threads));
    std::vector<Tensor> In = {randomF32(S, 7)};
    std::vector<double> TC, TB;
    auto Time = [&](CompiledModule &M, std::vector<double> &T) {
      auto T0 = std::chrono::steady_clock::now();
      runOrFail(M, In);
      T.push_back(std::chrono::duration<double, std::milli>(
                      std::chrono::steady_clock::now() - T0)
                      .count());
    };
    Time(*C, TC);
    Time(*Bl, TB);
    TC.clear();
    TB.clear();
    for (int R = 0; R < Rounds; ++R) {
      Time(*C, TC);
      Time(*Bl, TB);
    }
    std::sort(TC.begin(), TC.end());
    std::sort(TB.begin(), TB.end());
    double MC = TC[TC.size() / 2], MB = TB[TB.size() / 2];
    std::cout << E.Name << " batch " << Batch << " threads " << Threads
              << ": channels-last " << MC << " ms, blocked " << MB
              << " ms, channels-last / blocked " << MC / MB << "\n";
    if (std::getenv("QFX_LAYOUT_SUMMARY"))
      std::cout << C->summary() << Bl->summary();
    if (!std::getenv("QFX_LAYOUT_PROFILE"))
      continue;
    // Where the time goes: median ms per kind of step under each plan.
    for (CompiledModule *M : {C.get(), Bl.get()}) {
      M->setProfiling(true);
      for (int R = 0; R < 5; ++R)
        runOrFail(*M, In);
      std::map<std::string, double> Sum;
      std::vector<StepTime> Prof = M->profile();
      std::vector<StepInfo> Steps = M->steps();
      for (size_t I = 0; I < Prof.size() && I < Steps.size(); ++I)
        Sum[Prof[I].Kind + " " + Steps[I].Impl] += Prof[I].MedianMs;
      for (auto &[K, Ms] : Sum)
        std::cout << "  " << M->layouts().Plan << " " << K << " " << Ms << "\n";
    }
  }
}
