//===- QuantizedModuleTest.cpp - convert_fx's module: shapes, threads -----===//

#include "TestUtil.h"

#include "qfx/Codegen/Lowering.h"
#include "qfx/IR/GraphModule.h"
#include "qfx/IR/Printer.h"
#include "qfx/IR/Serialization.h"
#include "qfx/Models/Zoo.h"
#include "qfx/Pipeline/QuantizeFx.h"
#include "qfx/Quant/QConfigMapping.h"
#include "qfx/Trace/SymbolicTrace.h"

#include "llvm/ADT/StringRef.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <random>
#include <thread>
#include <vector>

using namespace qfx;
using namespace qfx::testutil;

namespace {

/// Uniform floats in [-1, 1) of shape \p S.
Tensor randomImages(llvm::ArrayRef<int64_t> S, uint32_t Seed) {
  std::mt19937 Gen(Seed);
  Tensor T(DType::F32, S);
  for (int64_t I = 0; I < T.numElements(); ++I)
    T.data<float>()[I] = -1.0f + 2.0f * float(Gen() >> 8) / 16777216.0f;
  return T;
}

Shape images(int64_t Batch) { return {Batch, 1, 28, 28}; }

/// Fails the test with \p E's message if it is an error.
void requireOk(llvm::Error E) {
  if (E)
    FAIL(errorToString(std::move(E)));
}

/// The zoo's Net (random weights), prepared for batch 1 with the x86
/// preset, calibrated on random images and converted by convert_fx.
QuantizedModule convertedNet(const CompileOptions &Opts = {}) {
  models::Net Net;
  Net.eval();
  QConfigMapping Map;
  Map.setGlobal(take(QConfig::preset("x86")));
  auto Obs = take(
      prepare_fx(Net, Map, {InputSpec::symbolic("x", DType::F32, images(1))}));
  requireOk(Obs.calibrate(randomImages(images(64), 1), 16));
  return take(convert_fx(Obs.graphModule(), Opts));
}

/// The scale of the quantized value the output dequantizes: compiled code
/// may differ from the reference interpreter by one step of it where the
/// last linear writes f32 itself (CompileOptions::FuseDequantize).
double outputLsb(const QuantizedModule &Q) {
  const Node *Out = Q.graphModule().graph().outputNode();
  const Node *Deq = Out->arg(0).getNode();
  REQUIRE(Deq->numArgs() >= 1);
  return Deq->arg(0).getNode()->type()->Quant.Scale;
}

double maxDiff(const Tensor &A, const Tensor &B) {
  REQUIRE(A.shape() == B.shape());
  double M = 0;
  for (int64_t I = 0; I < A.numElements(); ++I)
    M = std::max(M, std::fabs(A.getAsDouble(I) - B.getAsDouble(I)));
  return M;
}

Tensor runOne(const QuantizedModule &Q, const Tensor &X) {
  std::vector<Tensor> Out = take(Q({X}));
  REQUIRE(Out.size() == 1);
  return Out[0];
}

} // namespace

TEST_CASE("quantized module: one module matches the reference interpreter "
          "at batch 1, 3 and 64",
          "[quantized-module]") {
  QuantizedModule Q = convertedNet();
  double Lsb = outputLsb(Q);
  REQUIRE(Lsb > 0);
  for (int64_t Batch : {1, 3, 64}) {
    INFO("batch " << Batch);
    Tensor X = randomImages(images(Batch), 100 + Batch);
    Tensor Got = runOne(Q, X);
    std::vector<Tensor> Want = take(Q.runReference({X}));
    REQUIRE(Want.size() == 1);
    CHECK(Got.shape() == llvm::ArrayRef<int64_t>({Batch, 10}));
    CHECK(maxDiff(Got, Want[0]) <= Lsb * (1 + 1e-6));
  }
  CHECK(Q.numCompiledShapes() == 3);
  CHECK(Q.numCompiledPrograms() == 3);
}

TEST_CASE("quantized module: a cached shape runs without compiling again",
          "[quantized-module]") {
  QuantizedModule Q = convertedNet();
  CHECK(Q.numCompiledPrograms() == 0); // compilation is lazy
  Tensor X3 = randomImages(images(3), 7);
  Tensor First = runOne(Q, X3);
  CHECK(Q.numCompiledPrograms() == 1);
  for (int I = 0; I < 3; ++I)
    CHECK(runOne(Q, X3).identical(First));
  CHECK(Q.numCompiledPrograms() == 1);
  runOne(Q, randomImages(images(5), 8));
  CHECK(Q.numCompiledPrograms() == 2);
  CHECK(Q.numCompiledShapes() == 2);
  // Reports and precompile use the same cache.
  requireOk(Q.precompile({images(3)}));
  std::string Report;
  llvm::raw_string_ostream OS(Report);
  requireOk(Q.printCompiled({images(5)}, OS));
  CHECK(OS.str().find("primitives:") != std::string::npos);
  CHECK(Q.numCompiledPrograms() == 2);
}

TEST_CASE("quantized module: a busy program makes the pool compile another",
          "[quantized-module]") {
  QuantizedModule Q = convertedNet();
  {
    auto A = take(Q.acquire({images(2)}));
    auto B = take(Q.acquire({images(2)}));
    CHECK(&*A != &*B);
    CHECK(Q.numCompiledPrograms() == 2);
    CHECK(Q.numCompiledShapes() == 1);
  }
  // Both went back to the pool: runs reuse them.
  Tensor X = randomImages(images(2), 3);
  runOne(Q, X);
  runOne(Q, X);
  CHECK(Q.numCompiledPrograms() == 2);
}

TEST_CASE("quantized module: concurrent runs give the sequential results",
          "[quantized-module]") {
  CompileOptions Opts;
  Opts.NumThreads = 1; // four callers share a small machine
  QuantizedModule Q = convertedNet(Opts);
  // Two callers share batch 3, so its pool must grow to two programs.
  const std::vector<int64_t> Batches = {1, 3, 64, 3};
  const int Rounds = 6;
  std::vector<std::vector<Tensor>> Inputs(Batches.size()), Want(Batches.size());
  for (size_t T = 0; T < Batches.size(); ++T)
    for (int R = 0; R < Rounds; ++R) {
      Inputs[T].push_back(randomImages(images(Batches[T]), 1000 * T + R));
      Want[T].push_back(runOne(Q, Inputs[T][R]));
    }
  size_t Sequential = Q.numCompiledPrograms();
  CHECK(Sequential == 3);

  std::vector<std::vector<Tensor>> Got(Batches.size());
  std::vector<std::string> Errors(Batches.size());
  std::vector<std::thread> Threads;
  for (size_t T = 0; T < Batches.size(); ++T)
    Threads.emplace_back([&, T] {
      for (int R = 0; R < Rounds; ++R) {
        auto Out = Q({Inputs[T][R]});
        if (!Out) {
          Errors[T] = errorToString(Out.takeError());
          return;
        }
        Got[T].push_back((*Out)[0]);
      }
    });
  for (std::thread &T : Threads)
    T.join();
  for (size_t T = 0; T < Batches.size(); ++T) {
    INFO("caller " << T << ", batch " << Batches[T]);
    CHECK(Errors[T].empty());
    REQUIRE(Got[T].size() == size_t(Rounds));
    for (int R = 0; R < Rounds; ++R)
      CHECK(Got[T][R].identical(Want[T][R]));
  }
  // At most one extra program per caller beyond the sequential ones.
  CHECK(Q.numCompiledPrograms() >= Sequential);
  CHECK(Q.numCompiledPrograms() <= Sequential + Batches.size());
  CHECK(Q.numCompiledShapes() == 3);
}

TEST_CASE("quantized module: a wrong input is an error naming the placeholder",
          "[quantized-module]") {
  QuantizedModule Q = convertedNet();
  struct Case {
    const char *What;
    Tensor In;
    const char *Says;
  };
  std::vector<Case> Cases = {
      {"rank", randomImages({2, 28, 28}, 1), "[2,28,28]"},
      {"dtype", Tensor(DType::U8, {2, 1, 28, 28}), "u8"},
      {"channels", randomImages({2, 3, 28, 28}, 1), "[2,3,28,28]"},
      {"width", randomImages({2, 1, 28, 27}, 1), "[2,1,28,27]"},
      {"no data", Tensor::declared(DType::F32, {2, 1, 28, 28}), "no data"}};
  for (const Case &C : Cases) {
    INFO(C.What);
    std::string E = errorOf(Q({C.In}));
    INFO(E);
    CHECK(llvm::StringRef(E).contains("input 'x'"));
    CHECK(llvm::StringRef(E).contains(C.Says));
  }
  std::string Count =
      errorOf(Q({randomImages(images(1), 1), randomImages(images(1), 2)}));
  CHECK(llvm::StringRef(Count).contains("expected 1 inputs, got 2"));
  std::string Shapes = errorOf(Q.acquire({Shape{0, 1, 28, 28}}));
  CHECK(llvm::StringRef(Shapes).contains("input 'x'"));
  CHECK(llvm::StringRef(Shapes).contains("batch size must be positive"));
  CHECK(Q.numCompiledPrograms() == 0);
}

TEST_CASE("quantized module: options reach every program and the graph prints, "
          "saves and reloads",
          "[quantized-module]") {
  CompileOptions Opts;
  Opts.NumThreads = 1;
  Opts.BatchSize = 7; // ignored: each program takes its inputs' shapes
  QuantizedModule Q = convertedNet(Opts);
  CHECK(Q.options().NumThreads == 1);
  CHECK(Q.options().BatchSize == 0);
  std::string Report;
  llvm::raw_string_ostream ROS(Report);
  requireOk(Q.printCompiled({images(2)}, ROS));
  CHECK(ROS.str().find("threads: 1") != std::string::npos);
  auto L = take(Q.acquire({images(2)}));
  CHECK(L->inputShapes() == std::vector<Shape>{images(2)});

  std::string Text;
  llvm::raw_string_ostream OS(Text);
  Q.print(OS);
  CHECK(OS.str() == printToString(Q.graphModule()));
  CHECK(OS.str().find("quantize_per_tensor") != std::string::npos);

  TempDir Dir;
  requireOk(Q.save(Dir.file("net.int8.json")));
  QuantizedModule Loaded(take(loadGraphModule(Dir.file("net.int8.json"))));
  Tensor X = randomImages(images(4), 9);
  CHECK(runOne(Loaded, X).identical(runOne(Q, X)));
}

TEST_CASE("quantized module: convert_to_reference_fx still returns the graph",
          "[quantized-module]") {
  models::Net Net;
  Net.eval();
  QConfigMapping Map;
  Map.setGlobal(take(QConfig::preset("x86")));
  auto Obs = take(
      prepare_fx(Net, Map, {InputSpec::symbolic("x", DType::F32, images(1))}));
  requireOk(Obs.calibrate(randomImages(images(8), 1), 4));
  std::unique_ptr<GraphModule> Ref =
      take(convert_to_reference_fx(Obs.graphModule()));
  QuantizedModule Q = take(convert_fx(Obs)); // the ObservedModule overload
  CHECK(printToString(*Ref) == printToString(Q.graphModule()));
}

TEST_CASE("quantized module: compile takes every placeholder's shape from "
          "the options",
          "[quantized-module][lowering]") {
  QuantizedModule Q = convertedNet();
  const GraphModule &GM = Q.graphModule();
  CompileOptions Opts;
  Opts.BatchSize = 9; // InputShapes take precedence
  Opts.InputShapes = {images(5)};
  std::unique_ptr<CompiledModule> M = take(compile(GM, Opts));
  CHECK(M->inputShapes() == std::vector<Shape>{images(5)});
  Tensor X = randomImages(images(5), 4);
  CHECK(take(M->run({X}))[0].identical(runOne(Q, X)));

  Opts.InputShapes = {images(5), images(5)};
  std::string Count = errorOf(compile(GM, Opts));
  CHECK(llvm::StringRef(Count).contains("2 input shapes for 1 placeholders"));
  Opts.InputShapes = {Shape{5, 784}};
  std::string Rank = errorOf(compile(GM, Opts));
  INFO(Rank);
  CHECK(llvm::StringRef(Rank).contains("node 'x'"));
  CHECK(llvm::StringRef(Rank).contains("has rank 2 but the placeholder has "
                                       "rank 4"));
}
