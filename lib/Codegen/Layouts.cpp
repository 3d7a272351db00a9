//===- Layouts.cpp - Blocked fp32 conv chains and measuring the plan ------===//
//
// Under the blocked plan (CompileOptions::Layouts) fp32 convs, batch norms,
// same-shape adds, pools and clamps keep their activations in oneDNN's nChw16c
// (Layout::Blocked), which its fp32 jit kernels run fastest on for
// depthwise-heavy models; a producer writes Blocked only when every reader
// takes it (blockedReadersOnly), else it reorders its result to NHWC at
// once, so no other lowering ever sees a Blocked value. Measure lowers the
// module both ways and times them (docs/performance.md, "Layouts").
//
//===----------------------------------------------------------------------===//

#include "Lowerer.h"

#include "qfx/IR/GraphModule.h"

#include "llvm/ADT/STLExtras.h"

#include <algorithm>
#include <chrono>

using namespace qfx;
using namespace qfx::codegen;

/// Whether \p N's type is f32 of rank 4.
static bool isF32Rank4(const Lowerer &L, const Node *N) {
  const TensorType &T = L.typeOf(N);
  return T.Dtype == DType::F32 && T.Dims.size() == 4;
}

/// Whether \p U, a reader of \p N, takes N's value in Blocked layout: as
/// the source of an fp32 conv, batch norm, pool or clamp (relu, relu6,
/// hardtanh), an operand of a same-shape fp32 add, or a conv's residual
/// (sum post-op).
static bool takesBlocked(const Lowerer &L, const Node &N, const Node &U) {
  auto GI = L.GroupOf.find(&U);
  const Group *G = GI == L.GroupOf.end() ? nullptr : &L.Groups[GI->second];
  const Node &A = G ? *G->Anchor : U;
  const LoweringRule *R = G ? G->Rule : lookupLoweringRule(U, L.GM);
  if (!R || !isF32Rank4(L, &A) || !isF32Rank4(L, G ? G->last() : &U))
    return false;
  auto IsArg = [&](size_t I) {
    return A.numArgs() > I && A.arg(I).isNode() && A.arg(I).getNode() == &N;
  };
  bool Source = &U == &A && IsArg(0);
  switch (R->Kind) {
  case LowerKind::Conv:
    // The residual: a fused add's operand, or a ConvAdd kind's second
    // input (a group of its own when nothing else fuses).
    return Source ||
           (G ? G->SumOther == &N : R->BuiltinSum && &U == &A && IsArg(1));
  case LowerKind::BatchNorm:
  case LowerKind::MaxPool:
  case LowerKind::AvgPool:
  case LowerKind::Eltwise:
    return Source;
  case LowerKind::Add: {
    if (&U != &A || A.target() != "add" || A.numArgs() != 2 ||
        !A.arg(0).isNode() || !A.arg(1).isNode() || (G && G->SumOther))
      return false;
    const TensorType &T0 = L.typeOf(A.arg(0).getNode());
    const TensorType &T1 = L.typeOf(A.arg(1).getNode());
    return T0.Dtype == DType::F32 && T1.Dtype == DType::F32 &&
           T0.Dims == T1.Dims;
  }
  default:
    return false;
  }
}

bool Lowerer::blockedReadersOnly(const Node &N) const {
  if (Plan != LayoutChoice::Blocked || !N.hasUsers() || !isF32Rank4(*this, &N))
    return false;
  return llvm::all_of(
      N.users(), [&](const Node *U) { return takesBlocked(*this, N, *U); });
}

void Lowerer::leaveBlocked(const Node &Last) {
  auto It = ValOf.find(&Last);
  if (It == ValOf.end() || Vals[It->second].L != Layout::Blocked ||
      blockedReadersOnly(Last))
    return;
  // Graph outputs are plain; every other reader expects NHWC, as under the
  // channels-last plan.
  bool OutputsOnly = llvm::all_of(
      Last.users(), [](const Node *U) { return U->op() == OpCode::Output; });
  bindNode(&Last,
           inLayout(It->second, OutputsOnly ? Layout::Plain : Layout::NHWC));
}

bool Lowerer::hasFloatConv() const {
  for (const Node &N : GM.graph()) {
    const LoweringRule *R = lookupLoweringRule(N, GM);
    if (R && R->Kind == LowerKind::Conv && N.numArgs() > 0 &&
        N.arg(0).isNode() && isF32Rank4(*this, &N) &&
        isF32Rank4(*this, N.arg(0).getNode()))
      return true;
  }
  return false;
}

/// The median of \p V (not empty).
static double median(std::vector<double> V) {
  std::sort(V.begin(), V.end());
  size_t M = V.size() / 2;
  return V.size() % 2 ? V[M] : (V[M - 1] + V[M]) / 2;
}

/// Lowers the module into a fresh program under plan \p Plan (thread
/// counts at the budget, nothing measured).
static llvm::Expected<std::unique_ptr<Program>>
lowerUnder(const GraphModule &GM, const CompileOptions &Opts, int Budget,
           LayoutChoice Plan) {
  CompileOptions O = Opts;
  O.Layouts = Plan;
  O.NumThreads = Budget;
  O.Threads = ThreadChoice::Budget;
  O.StepThreads.clear();
  O.Profile = false;
  auto P = std::make_unique<Program>();
  Lowerer L(GM, O, *P);
  if (llvm::Error E = L.run())
    return E;
  return P;
}

llvm::Error Lowerer::measureLayouts() {
  Plan = LayoutChoice::ChannelsLast;
  if (!hasFloatConv())
    return llvm::Error::success();
  auto C = lowerUnder(GM, Opts, P.Budget, LayoutChoice::ChannelsLast);
  if (!C)
    return C.takeError();
  std::vector<Tensor> In;
  for (const Program::IOSpec &S : (*C)->Inputs)
    In.emplace_back(S.Dt, S.Dims);
  std::vector<double> TimesC, TimesB;
  auto Time = [&](Program &Q, std::vector<double> *Out) -> bool {
    auto T0 = std::chrono::steady_clock::now();
    auto R = Q.run(In);
    if (!R) {
      llvm::consumeError(R.takeError());
      return false;
    }
    double Ms = std::chrono::duration<double, std::milli>(
                    std::chrono::steady_clock::now() - T0)
                    .count();
    if (Out)
      Out->push_back(Ms);
    return true;
  };
  // One warm-up run each, then interleaved rounds (so that a change in the
  // machine's load hits both) within about MeasureMs.
  constexpr double MeasureMs = 400.0;
  constexpr int MinRounds = 3, MaxRounds = 15;
  // A module running in well under a millisecond keeps channels-last: the
  // plans differ by microseconds there, less than timing them costs (and
  // small test graphs stay deterministic).
  constexpr double MinModuleMs = 1.0;
  std::vector<double> First;
  if (!Time(**C, nullptr) || !Time(**C, &First) || First[0] < MinModuleMs)
    return llvm::Error::success();
  auto B = lowerUnder(GM, Opts, P.Budget, LayoutChoice::Blocked);
  if (!B) {
    // The channels-last plan lowers; keep it.
    llvm::consumeError(B.takeError());
    return llvm::Error::success();
  }
  if (!Time(**B, nullptr))
    return llvm::Error::success();
  // A module running longer than this gets one timed run per plan (its
  // first channels-last run and one blocked run after the warm-ups): at
  // ResNet-18's batch 32, three rounds made compiling take 6-9 s.
  constexpr double LongModuleMs = 100.0;
  bool Long = First[0] > LongModuleMs;
  if (Long)
    TimesC = First;
  auto Start = std::chrono::steady_clock::now();
  for (int R = 0; R < (Long ? 0 : MaxRounds); ++R) {
    if (!Time(**C, &TimesC) || !Time(**B, &TimesB))
      return llvm::Error::success();
    double Elapsed = std::chrono::duration<double, std::milli>(
                         std::chrono::steady_clock::now() - Start)
                         .count();
    if (R + 1 >= MinRounds && Elapsed > MeasureMs)
      break;
  }
  if (Long && !Time(**B, &TimesB))
    return llvm::Error::success();
  double MsC = median(TimesC), MsB = median(TimesB);
  // Blocked only when clearly faster: the channels-last plan is the one
  // int8 shares, and noise should not flip a tie.
  Plan = MsB < 0.97 * MsC ? LayoutChoice::Blocked : LayoutChoice::ChannelsLast;
  P.Layouts.Measured = true;
  P.Layouts.ChannelsLastMs = MsC;
  P.Layouts.BlockedMs = MsB;
  return llvm::Error::success();
}
