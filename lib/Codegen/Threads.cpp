//===- Threads.cpp - Per-step OpenMP thread counts of a compiled module ---===//
//
// Every step of a Program runs with its own OpenMP thread count, chosen at
// compile time from 1, 2, 4, ... up to the module's budget. oneDNN's jit
// primitives fix their thread count when they are created (from
// omp_get_max_threads()), so a primitive step holds one primitive per
// count it may use; host kernels take the count at run time. Measuring
// runs the whole program on zero inputs, interleaving the candidate
// counts, and keeps the fewest threads unless more are clearly faster.
// docs/performance.md, "Threads", says why.
//
//===----------------------------------------------------------------------===//

#include "Program.h"

#include "llvm/ADT/STLExtras.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>

using namespace qfx;
using namespace qfx::codegen;

std::vector<int> codegen::threadLadder(int Budget) {
  std::vector<int> R;
  for (int T = 1; T < Budget; T *= 2)
    R.push_back(T);
  R.push_back(std::max(Budget, 1));
  return R;
}

int codegen::pickCandidate(llvm::ArrayRef<int> Candidates, int N) {
  int Best = Candidates.front();
  for (int C : Candidates)
    if (C <= N)
      Best = C;
  return Best;
}

//===----------------------------------------------------------------------===//
// Primitives for another thread count
//===----------------------------------------------------------------------===//

/// The concat dimension of a concat primitive: where its destination is
/// larger than its first source (0 when they agree everywhere).
static int concatDim(const dnnl::memory::desc &Dst,
                     const dnnl::memory::desc &Src) {
  dnnl::memory::dims D = Dst.dims(), S = Src.dims();
  for (size_t I = 0; I < D.size() && I < S.size(); ++I)
    if (D[I] != S[I])
      return static_cast<int>(I);
  return 0;
}

/// The first of \p OpD's implementations, in oneDNN's order of preference,
/// that \p Ok accepts.
static std::optional<dnnl::primitive_desc_base>
firstMatching(const_dnnl_op_desc_t OpD, const dnnl::primitive_attr &Attr,
              const dnnl::engine &E,
              llvm::function_ref<bool(const dnnl::primitive_desc_base &)> Ok) {
  dnnl::primitive_desc It(OpD, &Attr, E, nullptr, /*allow_empty=*/true);
  if (!It)
    return std::nullopt;
  do {
    if (Ok(It))
      return It;
  } while (It.next_impl());
  return std::nullopt;
}

/// Replaces the (possibly "any") layouts of an operation descriptor with
/// those \p PD chose.
template <typename Desc>
static void pinLayouts(Desc &D, const dnnl::primitive_desc_base &PD) {
  D.src_desc = PD.src_desc().data;
  D.weights_desc = PD.weights_desc(0).data;
  D.bias_desc = PD.weights_desc(1).data;
  D.dst_desc = PD.dst_desc().data;
}

/// \p PD's primitive descriptor made again under the current thread count.
/// Reorder and concat descriptors have no op descriptor to iterate from.
static std::optional<dnnl::primitive_desc_base>
describeAgain(const dnnl::primitive_desc_base &PD, const dnnl::engine &E,
              llvm::ArrayRef<MemArg> Args,
              llvm::function_ref<bool(const dnnl::primitive_desc_base &)> Ok) {
  dnnl::primitive_attr Attr = PD.get_primitive_attr();
  switch (PD.get_kind()) {
  case dnnl::primitive::kind::reorder: {
    dnnl::reorder::primitive_desc R(E, PD.src_desc(), E, PD.dst_desc(), Attr,
                                    /*allow_empty=*/true);
    if (R && Ok(R))
      return R;
    return std::nullopt;
  }
  case dnnl::primitive::kind::concat: {
    std::vector<dnnl::memory::desc> Srcs;
    for (const MemArg &A : Args)
      if (A.Arg >= DNNL_ARG_MULTIPLE_SRC && A.Arg < DNNL_ARG_MULTIPLE_DST)
        Srcs.push_back(PD.src_desc(A.Arg - DNNL_ARG_MULTIPLE_SRC));
    if (Srcs.empty())
      return std::nullopt;
    dnnl::concat::primitive_desc C(
        PD.dst_desc(), concatDim(PD.dst_desc(), Srcs[0]), Srcs, E, Attr);
    if (Ok(C))
      return C;
    return std::nullopt;
  }
  default:
    break;
  }
  const_dnnl_op_desc_t OpD = nullptr;
  if (dnnl_primitive_desc_query(PD.get(), dnnl_query_op_d, 0, &OpD) !=
          dnnl_success ||
      !OpD)
    return std::nullopt;
  if (auto New = firstMatching(OpD, Attr, E, Ok))
    return New;
  // The implementations may prefer other weight layouts for this count
  // (brgconv does): ask again for the layouts the budget's primitive has.
  switch (PD.get_kind()) {
  case dnnl::primitive::kind::convolution:
  case dnnl::primitive::kind::deconvolution: {
    dnnl_convolution_desc_t D =
        *static_cast<const dnnl_convolution_desc_t *>(OpD);
    pinLayouts(D, PD);
    return firstMatching(&D, Attr, E, Ok);
  }
  case dnnl::primitive::kind::matmul: {
    dnnl_matmul_desc_t D = *static_cast<const dnnl_matmul_desc_t *>(OpD);
    pinLayouts(D, PD);
    return firstMatching(&D, Attr, E, Ok);
  }
  default:
    return std::nullopt;
  }
}

std::optional<PrimitiveVariant>
codegen::recreatePrimitive(const dnnl::primitive_desc_base &PD, int Threads,
                           llvm::ArrayRef<MemArg> Args,
                           const dnnl::engine &Engine) {
  // The same kernel, too: another one over the same layouts (oneDNN's AMX
  // one where compile() measured and kept VNNI, say) may round differently,
  // and results must not depend on the thread count.
  std::string Impl = PD.impl_info_str();
  auto SameArgs = [&](const dnnl::primitive_desc_base &New) {
    if (New.impl_info_str() != Impl)
      return false;
    return llvm::all_of(Args, [&](const MemArg &A) {
      return New.query_md(dnnl::query::exec_arg_md, A.Arg) ==
             PD.query_md(dnnl::query::exec_arg_md, A.Arg);
    });
  };
  ThreadScope Scope(Threads);
  try {
    std::optional<dnnl::primitive_desc_base> New =
        describeAgain(PD, Engine, Args, SameArgs);
    if (!New)
      return std::nullopt;
    PrimitiveVariant V;
    V.Threads = Threads;
    V.Prim = dnnl::primitive(New->get());
    V.Scratch = New->scratchpad_desc();
    V.Impl = New->impl_info_str();
    return V;
  } catch (const dnnl::error &) {
    // No implementation for this count: the step keeps the others.
    return std::nullopt;
  }
}

//===----------------------------------------------------------------------===//
// Choosing the counts
//===----------------------------------------------------------------------===//

/// More threads must beat fewer by this factor to be chosen: a tie goes to
/// fewer threads, which wake no worker and leave the other cores alone.
static constexpr double ClearlyFaster = 0.9;

/// Whole runs: a configuration with more threads must be faster than this
/// share of the best one with fewer (a margin for noise, not a preference).
static constexpr double WholeRunMargin = 0.97;

/// A configuration with a run slower than this many times the fastest
/// one-thread run is measured no further.
static constexpr double Collapsed = 2.0;
/// The same for a short module's first run, which also starts OpenMP's
/// workers and initializes the primitives: only a collapse is cut short.
static constexpr double WarmUpCollapsed = 10.0;

/// A one-thread run longer than this (ms) is measured once per count.
static constexpr double LongRunMs = 100.0;

/// Time spent measuring, roughly: enough repetitions to fill it, at least
/// one and at most MaxReps.
static constexpr double MeasureBudgetMs = 300.0;
static constexpr int MaxReps = 9;

static double medianOf(std::vector<double> V) {
  if (V.empty())
    return 0.0;
  std::sort(V.begin(), V.end());
  size_t N = V.size();
  return N % 2 ? V[N / 2] : 0.5 * (V[N / 2 - 1] + V[N / 2]);
}

std::vector<int> Program::runCounts(int Cap) const {
  std::vector<int> R;
  for (const auto &S : Steps)
    R.push_back(S->Threads <= Cap ? S->Threads
                                  : pickCandidate(S->Candidates, Cap));
  return R;
}

void Program::chooseThreads(bool Measure, llvm::ArrayRef<int> Forced) {
  bool AnyChoice = false;
  for (auto &S : Steps) {
    S->Threads = S->Candidates.back();
    AnyChoice |= S->Candidates.size() > 1;
  }
  if (Measure && AnyChoice && Forced.size() < Steps.size())
    measureThreads();
  for (size_t I = 0; I < Steps.size() && I < Forced.size(); ++I)
    Steps[I]->Threads = pickCandidate(Steps[I]->Candidates, Forced[I]);
  for (auto &S : Steps) {
    S->Info.Threads = S->Threads;
    S->select(S->Threads);
    if (S->isPrimitive())
      for (const PrimitiveVariant &V :
           static_cast<PrimitiveStep &>(*S).Variants)
        if (V.Threads == S->Threads)
          S->Info.Impl = V.Impl;
  }
}

namespace qfx {
namespace codegen {

/// The runs measureThreads makes: configurations of per-step counts, the
/// whole-run times of each, and which were dropped.
class Measurement {
public:
  Measurement(Program &P, std::vector<std::vector<int>> Configs)
      : P(P), Configs(std::move(Configs)), Totals(this->Configs.size()),
        Dropped(this->Configs.size(), false) {}

  /// Runs configuration \p C once (appending step times to \p Times when
  /// given); false when a step failed.
  bool run(size_t C, std::vector<std::vector<double>> *Times);
  /// Adds a configuration.
  size_t add(std::vector<int> Counts) {
    Configs.push_back(std::move(Counts));
    Totals.emplace_back();
    Dropped.push_back(false);
    return Configs.size() - 1;
  }
  /// The one of \p Order (fewest threads first) with the lowest time, more
  /// threads winning only by WholeRunMargin.
  size_t best(llvm::ArrayRef<size_t> Order,
              double (*Time)(const std::vector<double> &)) const {
    size_t Best = Order[0];
    for (size_t C : Order)
      if (!Dropped[C] && Time(Totals[C]) < WholeRunMargin * Time(Totals[Best]))
        Best = C;
    return Best;
  }

  Program &P;
  std::vector<std::vector<int>> Configs;
  std::vector<std::vector<double>> Totals;
  /// Configurations with a run far slower than one thread's: on a busy
  /// machine a multi-thread run can take 100x longer, and measuring it
  /// further would only make compiling slow.
  std::vector<bool> Dropped;
  /// Dropping threshold, in fastest one-thread runs.
  double Factor = WarmUpCollapsed;
};

} // namespace codegen
} // namespace qfx

bool Measurement::run(size_t C, std::vector<std::vector<double>> *Times) {
  if (Dropped[C])
    return true;
  // A configuration is dropped as soon as a run of it has collapsed,
  // without finishing that run.
  double Limit =
      C == 0 || Totals[0].empty()
          ? 0.0
          : Factor * *std::min_element(Totals[0].begin(), Totals[0].end());
  using Clock = std::chrono::steady_clock;
  auto T0 = Clock::now();
  llvm::Error E = P.runSteps(Configs[C], Times, Limit);
  double Ms =
      std::chrono::duration<double, std::milli>(Clock::now() - T0).count();
  Totals[C].push_back(Ms);
  if (Limit > 0 && Ms > Limit)
    Dropped[C] = true;
  if (!E)
    return true;
  llvm::consumeError(std::move(E));
  return false;
}

static double lastOf(const std::vector<double> &V) { return V.back(); }
static double medianRef(const std::vector<double> &V) { return medianOf(V); }

void Program::measureThreads() {
  std::vector<Tensor> In;
  for (const IOSpec &S : Inputs)
    In.emplace_back(S.Dt, S.Dims);
  auto Out = bindIO(In);
  if (!Out) {
    llvm::consumeError(Out.takeError());
    return;
  }
  // Configuration C runs every step on the largest count it has not above
  // Ladder[C]. A step failing on zero inputs ends measuring: every step
  // keeps the largest count it has.
  std::vector<std::vector<int>> Configs;
  for (int T : threadLadder(Budget))
    Configs.push_back(runCounts(T));
  size_t NumConfigs = Configs.size();
  Measurement M(*this, std::move(Configs));
  std::vector<size_t> Uniform;
  for (size_t C = 0; C < NumConfigs; ++C)
    Uniform.push_back(C);
  // Warm-up (oneDNN's lazy state, starting OpenMP's workers).
  for (size_t C = 0; C < NumConfigs; ++C) {
    if (!M.run(C, nullptr))
      return;
    // Starting workers is nothing next to a long run.
    if (C == 0 && M.Totals[0].back() > LongRunMs)
      M.Factor = Collapsed;
  }
  // Long runs: waking workers costs nothing next to their steps, and more
  // rounds would cost seconds; one run per count decides.
  if (M.Totals[0].back() > LongRunMs) {
    choose(M.Configs[M.best(Uniform, lastOf)], M.Totals[0].back());
    return;
  }
  double Round = 0.0;
  for (size_t C = 0; C < NumConfigs; ++C)
    Round += M.Dropped[C] ? 0.0 : M.Totals[C].back();
  int Reps = static_cast<int>(
      std::clamp(std::floor(MeasureBudgetMs / std::max(Round, 1e-3) / 2), 1.0,
                 double(MaxReps)));
  M.Factor = Collapsed;
  std::optional<std::vector<int>> Mixed = perStepChoice(M, Reps);
  if (!Mixed)
    return;
  // Whole runs decide last: switching counts between steps has costs of
  // its own (a worker woken after sleeping), so the per-step choice must
  // beat running everything on fewer threads as a whole too.
  size_t MixedC = M.add(*Mixed);
  M.Dropped[MixedC] = *Mixed == M.Configs[0];
  for (auto &T : M.Totals)
    T.clear();
  for (int R = 0; R < Reps; ++R)
    for (size_t C = 0; C <= MixedC; ++C)
      if (!M.run(C, nullptr))
        return;
  // From fewest threads up: all on 1, the per-step choice, then all on 2,
  // 4, ...
  std::vector<size_t> Order = {0, MixedC};
  Order.insert(Order.end(), Uniform.begin() + 1, Uniform.end());
  choose(M.Configs[M.best(Order, medianRef)], medianOf(M.Totals[0]));
}

std::optional<std::vector<int>> Program::perStepChoice(Measurement &M,
                                                       int Reps) {
  // Per step and configuration, interleaved so that a change of load
  // touches every configuration alike.
  size_t NumConfigs = M.Configs.size();
  std::vector<std::vector<std::vector<double>>> Times(
      NumConfigs, std::vector<std::vector<double>>(Steps.size()));
  for (int R = 0; R < Reps; ++R)
    for (size_t C = 0; C < NumConfigs; ++C)
      if (!M.run(C, &Times[C]))
        return std::nullopt;
  std::vector<int> Mixed;
  for (size_t I = 0; I < Steps.size(); ++I) {
    size_t Best = 0;
    for (size_t C = 1; C < NumConfigs; ++C)
      if (!M.Dropped[C] && M.Configs[C][I] != M.Configs[Best][I] &&
          medianOf(Times[C][I]) < ClearlyFaster * medianOf(Times[Best][I]))
        Best = C;
    Mixed.push_back(M.Configs[Best][I]);
  }
  return Mixed;
}

void Program::choose(llvm::ArrayRef<int> Counts, double SingleMs) {
  bool Multi = false;
  for (size_t I = 0; I < Steps.size(); ++I) {
    Steps[I]->Threads = Counts[I];
    Multi |= Counts[I] > Steps[I]->Candidates.front();
  }
  // Runs on more threads than one are then watched against the one-thread
  // time.
  if (Multi)
    Governor = ThreadGovernor(SingleMs);
}
