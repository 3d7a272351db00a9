// Per-step OpenMP thread counts of compiled modules (docs/performance.md,
// "Threads"): choice, forcing, reports, outputs and which threads work.

#include "LoweringTestUtil.h"
#include "TestUtil.h"

#include "qfx/Codegen/Lowering.h"
#include "qfx/Codegen/ThreadGovernor.h"
#include "qfx/Models/Zoo.h"
#include "qfx/NN/Module.h"
#include "qfx/Pipeline/QuantizeFx.h"
#include "qfx/Quant/QConfigMapping.h"
#include "qfx/Trace/SymbolicTrace.h"

#include <catch2/catch.hpp>

#include <omp.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

using namespace qfx;
using namespace qfx::lowering_test;
using namespace qfx::testutil;

namespace {

/// The zoo's seed Net (or \p Name), quantized with the x86 preset for input
/// shape \p S and converted to its reference graph.
std::unique_ptr<GraphModule> quantizedZoo(const std::string &Name,
                                          const Shape &S) {
  for (const models::ZooEntry &E : models::zoo()) {
    if (E.Name != Name)
      continue;
    auto Model = E.Create();
    Model->eval();
    QConfigMapping Map;
    Map.setGlobal(take(QConfig::preset("x86")));
    auto Obs = take(
        prepare_fx(*Model, Map, {InputSpec::symbolic("x", DType::F32, S)}));
    for (uint32_t I = 0; I < 2; ++I)
      take(Obs({randomF32(S, 70 + I)}));
    return take(convert_to_reference_fx(Obs.graphModule()));
  }
  FAIL("no zoo model " << Name);
  return nullptr;
}

/// Restores OpenMP's thread count on scope exit.
struct OmpCount {
  int Previous = omp_get_max_threads();
  ~OmpCount() { omp_set_num_threads(Previous); }
};

/// CPU time in ns of every thread of this process but the calling one
/// (the first field of /proc/self/task/<tid>/schedstat), summed.
uint64_t otherThreadsCpuNs() {
  std::string Self = std::to_string(syscall(SYS_gettid));
  uint64_t Sum = 0;
  for (const auto &Task :
       std::filesystem::directory_iterator("/proc/self/task")) {
    if (Task.path().filename() == Self)
      continue;
    std::ifstream In(Task.path() / "schedstat");
    uint64_t Ns = 0;
    if (In >> Ns)
      Sum += Ns;
  }
  return Sum;
}

std::vector<int> counts(const CompiledModule &M) {
  std::vector<int> R;
  for (const StepInfo &S : M.steps())
    R.push_back(S.Threads);
  return R;
}

} // namespace

TEST_CASE("steps run on the thread counts forced for them, with the same "
          "outputs",
          "[threads]") {
  for (const char *Name : {"net", "mobilenet_v2"}) {
    INFO(Name);
    Shape S =
        std::string(Name) == "net" ? Shape{2, 1, 28, 28} : Shape{2, 3, 32, 32};
    auto GM = quantizedZoo(Name, S);
    std::vector<Tensor> In = {randomF32(S, 80)};
    CompileOptions Opts;
    Opts.NumThreads = 2;
    Opts.Threads = ThreadChoice::Budget;
    auto Whole = compileOrFail(*GM, Opts);
    size_t N = Whole->steps().size();
    CHECK(counts(*Whole) == std::vector<int>(N, 2));
    Tensor Want = runOrFail(*Whole, In)[0];

    Opts.StepThreads.assign(N, 1);
    auto One = compileOrFail(*GM, Opts);
    CHECK(counts(*One) == std::vector<int>(N, 1));
    CHECK(runOrFail(*One, In)[0].identical(Want));
    CHECK(One->summary().find(
              "threads: 2 (steps per thread count: 1:" + std::to_string(N) +
              " 2:0)") != std::string::npos);

    // Alternating counts: every switch between steps keeps the outputs.
    for (size_t I = 0; I < N; ++I)
      Opts.StepThreads[I] = 1 + I % 2;
    auto Mixed = compileOrFail(*GM, Opts);
    CHECK(counts(*Mixed) == Opts.StepThreads);
    for (int Run = 0; Run < 2; ++Run)
      CHECK(runOrFail(*Mixed, In)[0].identical(Want));
    CHECK(Mixed->summary().find("threads=1") != std::string::npos);
    CHECK(Mixed->summary().find("threads=2") != std::string::npos);
  }
}

TEST_CASE("measured thread counts stay within the budget and keep the "
          "outputs",
          "[threads]") {
  Shape S{3, 1, 28, 28};
  auto GM = quantizedZoo("net", S);
  std::vector<Tensor> In = {randomF32(S, 81)};
  OmpCount Restore;
  CompileOptions Opts;
  Opts.NumThreads = 2;
  Opts.Profile = true;
  auto Measured = compileOrFail(*GM, Opts);
  for (int T : counts(*Measured))
    CHECK((T == 1 || T == 2));
  Opts.Threads = ThreadChoice::Budget;
  auto Whole = compileOrFail(*GM, Opts);
  CHECK(runOrFail(*Measured, In)[0].identical(runOrFail(*Whole, In)[0]));
  // Compiling (and measuring) leaves the process's count alone.
  CHECK(omp_get_max_threads() == Restore.Previous);
  // The profile reports each step's count.
  std::vector<StepTime> P = Measured->profile();
  REQUIRE(P.size() == Measured->steps().size());
  for (size_t I = 0; I < P.size(); ++I)
    CHECK(P[I].Threads == Measured->steps()[I].Threads);
  // A budget of one thread has nothing to choose.
  Opts.NumThreads = 1;
  Opts.Threads = ThreadChoice::Measure;
  auto Single = compileOrFail(*GM, Opts);
  CHECK(counts(*Single) == std::vector<int>(Single->steps().size(), 1));
}

TEST_CASE("steps on one thread wake no OpenMP worker", "[threads]") {
  // Large enough for oneDNN to split the 2-thread steps.
  Shape S{32, 1, 28, 28};
  auto GM = quantizedZoo("net", S);
  std::vector<Tensor> In = {randomF32(S, 82)};
  OmpCount Restore;
  CompileOptions Opts;
  Opts.NumThreads = 2;
  Opts.Threads = ThreadChoice::Budget;
  auto Whole = compileOrFail(*GM, Opts);
  Opts.StepThreads.assign(Whole->steps().size(), 1);
  auto One = compileOrFail(*GM, Opts);
  // A module following the process's count (compiled on 2), run while the
  // process has 1.
  omp_set_num_threads(2);
  CompileOptions Follow;
  Follow.Threads = ThreadChoice::Budget;
  auto Following = compileOrFail(*GM, Follow);
  CHECK(counts(*Following) == std::vector<int>(Following->steps().size(), 2));

  auto Quiet = [] {
    // Workers spin for a while after a parallel region, then sleep; on a
    // busy machine the spinning takes longer to run out.
    for (int Try = 0; Try < 50; ++Try) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      uint64_t A = otherThreadsCpuNs();
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      if (A == otherThreadsCpuNs())
        return true;
    }
    return false;
  };
  for (int Run = 0; Run < 20; ++Run)
    runOrFail(*Whole, In);
  if (!Quiet()) {
    WARN("OpenMP workers never sleep here (OMP_WAIT_POLICY=active?)");
    return;
  }
  // The observer sees workers' work: 2-thread steps wake them.
  uint64_t Before = otherThreadsCpuNs();
  for (int Run = 0; Run < 20; ++Run)
    runOrFail(*Whole, In);
  CHECK(otherThreadsCpuNs() > Before);

  // Primitives created for 1 thread run on the calling thread alone.
  REQUIRE(Quiet());
  Before = otherThreadsCpuNs();
  for (int Run = 0; Run < 200; ++Run)
    runOrFail(*One, In);
  CHECK(otherThreadsCpuNs() == Before);

  // The process's count caps a following module's steps at run time.
  omp_set_num_threads(1);
  REQUIRE(Quiet());
  Before = otherThreadsCpuNs();
  for (int Run = 0; Run < 200; ++Run)
    runOrFail(*Following, In);
  CHECK(otherThreadsCpuNs() == Before);
  CHECK(omp_get_max_threads() == 1);
}

TEST_CASE("forced step thread counts outside the budget are errors",
          "[threads]") {
  auto GM = quantizedZoo("net", {1, 1, 28, 28});
  struct Case {
    int NumThreads;
    std::vector<int> Forced;
    const char *Message;
  };
  const Case Cases[] = {
      {2, {1, 0}, "compile: step thread count: must be between 1 and 2, got 0"},
      {2, {3}, "compile: step thread count: must be between 1 and 2, got 3"},
      {1, {2}, "compile: step thread count: must be between 1 and 1, got 2"},
  };
  for (const Case &C : Cases) {
    CompileOptions Opts;
    Opts.NumThreads = C.NumThreads;
    Opts.StepThreads = C.Forced;
    CHECK(errorOf(compile(*GM, Opts)) == C.Message);
  }
}

/// Runs on one thread the governor asks for before the chosen counts again,
/// each recorded at \p Ms.
static int singleRunsUntilChosen(ThreadGovernor &G, double Ms) {
  int N = 0;
  for (; !G.useChosen() && N < 1000; ++N)
    G.record(false, Ms);
  return N;
}

TEST_CASE("the thread governor falls back to one thread while multi-thread "
          "runs are slow",
          "[threads]") {
  ThreadGovernor Off;
  Off.record(true, 1e6);
  CHECK(Off.useChosen());

  ThreadGovernor G(10.0);
  // Within the slack of the one-thread time: keep the chosen counts.
  G.record(true, 11.9);
  CHECK(G.useChosen());
  // Slow probes back off 4, 8, 16, ... runs, up to 256.
  std::vector<int> Backoffs;
  for (int I = 0; I < 8; ++I) {
    G.record(true, 500.0);
    Backoffs.push_back(singleRunsUntilChosen(G, 10.0));
  }
  CHECK(Backoffs == std::vector<int>{4, 8, 16, 32, 64, 128, 256, 256});
  CHECK(G.singleRuns() == 764);
  // A fast probe resets the back-off.
  G.record(true, 9.0);
  CHECK(G.useChosen());
  G.record(true, 13.0);
  CHECK(singleRunsUntilChosen(G, 10.0) == 4);
  // One-thread runs refine the one-thread time.
  G.record(true, 13.0);
  singleRunsUntilChosen(G, 8.0);
  CHECK(G.singleMs() == 8.0);
  G.record(true, 9.5);
  CHECK(G.useChosen());
  G.record(true, 9.7); // above 1.2 x 8
  CHECK(!G.useChosen());
}

TEST_CASE("modules with forced or budget thread counts never fall back",
          "[threads]") {
  Shape S{1, 1, 28, 28};
  auto GM = quantizedZoo("net", S);
  std::vector<Tensor> In = {randomF32(S, 83)};
  CompileOptions Opts;
  Opts.NumThreads = 2;
  Opts.Threads = ThreadChoice::Budget;
  auto M = compileOrFail(*GM, Opts);
  for (int Run = 0; Run < 5; ++Run)
    runOrFail(*M, In);
  CHECK(M->singleThreadRuns() == 0);
}

TEST_CASE("every step of every zoo model can run on one thread, none on a "
          "reference kernel",
          "[threads]") {
  for (const models::ZooEntry &E : models::zoo()) {
    INFO(E.Name);
    Shape S = smallZooInput(E);
    auto Model = E.Create();
    Model->eval();
    auto Float =
        take(symbolicTrace(*Model, {InputSpec::symbolic("x", DType::F32, S)}));
    auto Int8 = quantizedZoo(E.Name, S);
    std::vector<Tensor> In = {randomF32(S, 84)};
    // Each fp32 layout plan (measuring could give the two compiles below
    // different plans, and so different steps).
    for (auto [GM, Layouts] :
         {std::pair(Float.get(), LayoutChoice::ChannelsLast),
          std::pair(Float.get(), LayoutChoice::Blocked),
          std::pair(Int8.get(), LayoutChoice::Measure)}) {
      CompileOptions Opts;
      Opts.NumThreads = 2;
      Opts.Threads = ThreadChoice::Budget;
      Opts.Layouts = Layouts;
      auto Whole = compileOrFail(*GM, Opts);
      // brgconv on AMX takes one thread's weight layout only on one
      // thread, and a reference kernel is no alternative.
      for (const StepInfo &Step : Whole->steps()) {
        INFO(Step.Name << " " << Step.Impl);
        CHECK((Step.Threads == 2 ||
               llvm::StringRef(Step.Impl).startswith("brgconv")));
        CHECK(!llvm::StringRef(Step.Impl).startswith("ref"));
      }
      Opts.StepThreads.assign(Whole->steps().size(), 1);
      auto One = compileOrFail(*GM, Opts);
      CHECK(counts(*One) == std::vector<int>(One->steps().size(), 1));
      Tensor Want = runOrFail(*Whole, In)[0], Got = runOrFail(*One, In)[0];
      if (GM == Int8.get())
        CHECK(Got.identical(Want));
      else
        CHECK(closeF32(Got, Want));
    }
  }
}
