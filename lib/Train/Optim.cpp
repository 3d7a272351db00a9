//===- Optim.cpp - SGD and learning-rate schedules ------------------------===//
//
// The update follows torch.optim.SGD (1.13, single-tensor path) operation by
// operation in f32, so a run here and one in PyTorch agree to rounding (the
// vectorized PyTorch kernels fuse some multiply-adds, so not bit for bit).
//
//===----------------------------------------------------------------------===//

#include "qfx/Train/Optim.h"

#include "qfx/IR/GraphModule.h"
#include "qfx/Support/Error.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstdio>

using namespace qfx;

/// "%g" keeps messages short (as Tensor.cpp's messages do).
static std::string formatDouble(double V) {
  char Buf[32];
  std::snprintf(Buf, sizeof(Buf), "%g", V);
  return Buf;
}

//===----------------------------------------------------------------------===//
// SGD
//===----------------------------------------------------------------------===//

llvm::Expected<SGD> SGD::create(SGDOptions Opts) {
  // Written as !(x >= 0) so that NaN is rejected too.
  if (!(Opts.LR >= 0) || !std::isfinite(Opts.LR))
    return makeError("invalid learning rate: " + formatDouble(Opts.LR));
  if (!(Opts.Momentum >= 0) || !std::isfinite(Opts.Momentum))
    return makeError("invalid momentum value: " + formatDouble(Opts.Momentum));
  if (!(Opts.WeightDecay >= 0) || !std::isfinite(Opts.WeightDecay))
    return makeError("invalid weight_decay value: " +
                     formatDouble(Opts.WeightDecay));
  if (!std::isfinite(Opts.Dampening))
    return makeError("invalid dampening value: " +
                     formatDouble(Opts.Dampening));
  if (Opts.Nesterov && (Opts.Momentum <= 0 || Opts.Dampening != 0))
    return makeError("nesterov momentum requires a momentum and zero "
                     "dampening");
  return SGD(Opts);
}

/// The parameter \p Name of \p GM (a tensor that is not a buffer), or
/// nullptr; \p IsBuffer tells a buffer of that name from a missing tensor.
static Tensor *findParameter(GraphModule &GM, llvm::StringRef Name,
                             bool &IsBuffer) {
  IsBuffer = false;
  auto [ModPath, Leaf] = splitQualifiedName(Name);
  ModuleInfo *M = GM.lookupModule(ModPath);
  if (!M)
    return nullptr;
  for (const NamedTensor &T : M->tensors())
    if (T.Name == Leaf && T.IsBuffer)
      IsBuffer = true;
  return IsBuffer ? nullptr : M->tensor(Leaf);
}

/// "f32[2,3]".
static std::string describe(const Tensor &T) {
  return dtypeName(T.dtype()).str() + formatShape(T.shape());
}

/// Checks one gradient against its parameter and momentum buffer; returns
/// the parameter.
static llvm::Expected<Tensor *>
checkGradient(GraphModule &GM, const std::string &Name, const Tensor &G,
              const std::map<std::string, Tensor> &Buf) {
  auto Fail = [&](const llvm::Twine &Msg) {
    return makeError("gradient for '" + Name + "': " + Msg);
  };
  bool IsBuffer;
  Tensor *P = findParameter(GM, Name, IsBuffer);
  if (IsBuffer)
    return Fail("'" + Name + "' is a buffer, not a parameter");
  if (!P)
    return Fail("the module has no parameter of that name");
  if (P->dtype() != DType::F32 || !P->hasData())
    return Fail("parameter is " + describe(*P) +
                (P->hasData() ? "" : " without data") +
                ", only f32 parameters with data are trained");
  if (G.dtype() != DType::F32 || G.shape() != P->shape() || !G.hasData())
    return Fail("expected " + describe(*P) + ", got " + describe(G) +
                (G.hasData() ? "" : " without data"));
  auto It = Buf.find(Name);
  if (It != Buf.end() && It->second.shape() != P->shape())
    return Fail("parameter is " + describe(*P) +
                " but its momentum buffer is " + describe(It->second));
  return P;
}

llvm::Error SGD::step(GraphModule &GM, const GradMap &Grads) {
  // Validate everything first so that a bad gradient changes nothing.
  std::vector<Tensor *> Params;
  for (const auto &[Name, G] : Grads) {
    llvm::Expected<Tensor *> P = checkGradient(GM, Name, G, Buf);
    if (!P)
      return P.takeError();
    Params.push_back(*P);
  }

  // PyTorch computes in the parameter's dtype: hyper-parameters are rounded
  // to f32 and every operation rounds to f32.
  const float LR = static_cast<float>(Opts.LR);
  const float WD = static_cast<float>(Opts.WeightDecay);
  const float Mom = static_cast<float>(Opts.Momentum);
  const float OneMinusDamp = static_cast<float>(1.0 - Opts.Dampening);
  size_t I = 0;
  for (const auto &[Name, G] : Grads) {
    float *P = Params[I++]->data<float>();
    const float *Gd = G.data<float>();
    int64_t N = G.numElements();
    float *B = nullptr;
    bool First = false;
    if (Opts.Momentum != 0) {
      auto It = Buf.find(Name);
      First = It == Buf.end();
      if (First)
        It = Buf.emplace(Name, Tensor(DType::F32, G.shape())).first;
      B = It->second.data<float>();
    }
    for (int64_t K = 0; K < N; ++K) {
      float D = Gd[K];
      if (Opts.WeightDecay != 0)
        D = D + WD * P[K];
      if (B) {
        // torch.clone(d_p) on the first step, then mul_ and add_.
        B[K] = First ? D : B[K] * Mom + OneMinusDamp * D;
        D = Opts.Nesterov ? D + Mom * B[K] : B[K];
      }
      P[K] = P[K] + -LR * D;
    }
  }
  return llvm::Error::success();
}

//===----------------------------------------------------------------------===//
// Learning-rate schedules
//===----------------------------------------------------------------------===//

double LRSchedule::at(int64_t Step) const {
  assert(Step >= 0 && "negative optimizer step");
  assert(TotalSteps >= 1 && "schedule without steps");
  // Past the end the rate stays at its value for TotalSteps (for cosine,
  // MinLR).
  Step = std::min(Step, TotalSteps);
  switch (K) {
  case Kind::Constant:
    return Base;
  case Kind::Step:
    assert(StepSize > 0 && "step schedule with a non-positive step size");
    return Base * std::pow(Gamma, static_cast<double>(Step / StepSize));
  case Kind::Cosine: {
    assert(WarmupSteps >= 0 && WarmupSteps < TotalSteps &&
           "warm-up outside the schedule");
    // As transformers' get_cosine_schedule_with_warmup: the rate rises
    // linearly from 0 at step 0 to Base at WarmupSteps, then follows half a
    // cosine down to MinLR at TotalSteps.
    if (Step < WarmupSteps)
      return Base * static_cast<double>(Step) /
             static_cast<double>(WarmupSteps);
    const double Pi = 3.14159265358979323846;
    double Progress = static_cast<double>(Step - WarmupSteps) /
                      static_cast<double>(TotalSteps - WarmupSteps);
    return MinLR + (Base - MinLR) * 0.5 * (1 + std::cos(Pi * Progress));
  }
  }
  assert(false && "unknown schedule kind");
  return Base;
}

namespace {
/// Builds the errors of LRSchedule::parse, all prefixed with the spec.
struct SpecErrors {
  llvm::StringRef Spec;
  llvm::Error operator()(const llvm::Twine &Msg) const {
    return makeError("learning-rate schedule '" + Spec + "': " + Msg);
  }
  llvm::Error syntax() const {
    return (*this)("expected constant, step:<size>:<gamma> or "
                   "cosine[:<warmup>]");
  }
};
} // namespace

/// Parses the fields after the kind of a "step:<size>:<gamma>" spec.
static llvm::Error parseStep(const SpecErrors &Err,
                             llvm::ArrayRef<llvm::StringRef> Fields,
                             LRSchedule &S) {
  if (Fields.size() != 3)
    return Err.syntax();
  if (Fields[1].getAsInteger(10, S.StepSize) || S.StepSize <= 0)
    return Err("step size must be a positive integer, got '" + Fields[1] + "'");
  if (Fields[2].getAsDouble(S.Gamma) || !(S.Gamma > 0) ||
      !std::isfinite(S.Gamma))
    return Err("gamma must be a positive number, got '" + Fields[2] + "'");
  S.K = LRSchedule::Kind::Step;
  return llvm::Error::success();
}

/// Parses the fields after the kind of a "cosine[:<warmup>]" spec.
static llvm::Error parseCosine(const SpecErrors &Err,
                               llvm::ArrayRef<llvm::StringRef> Fields,
                               LRSchedule &S) {
  if (Fields.size() > 2)
    return Err.syntax();
  S.WarmupSteps = 0;
  if (Fields.size() == 2 &&
      (Fields[1].getAsInteger(10, S.WarmupSteps) || S.WarmupSteps < 0))
    return Err("warm-up steps must be a non-negative integer, got '" +
               Fields[1] + "'");
  if (S.WarmupSteps >= S.TotalSteps)
    return Err("warm-up steps (" + llvm::Twine(S.WarmupSteps) +
               ") must be fewer than the total steps (" +
               llvm::Twine(S.TotalSteps) + ")");
  S.K = LRSchedule::Kind::Cosine;
  return llvm::Error::success();
}

llvm::Expected<LRSchedule> LRSchedule::parse(llvm::StringRef Spec, double Base,
                                             int64_t TotalSteps) {
  SpecErrors Err{Spec};
  if (!(Base >= 0) || !std::isfinite(Base))
    return Err("invalid base learning rate: " + formatDouble(Base));
  if (TotalSteps < 1)
    return Err("the number of steps must be positive, got " +
               llvm::Twine(TotalSteps));
  LRSchedule S;
  S.Base = Base;
  S.TotalSteps = TotalSteps;
  llvm::SmallVector<llvm::StringRef, 3> Fields;
  Spec.split(Fields, ':');
  if (Fields[0] == "constant" && Fields.size() == 1) {
    S.K = Kind::Constant;
    return S;
  }
  llvm::Error E = Fields[0] == "step"     ? parseStep(Err, Fields, S)
                  : Fields[0] == "cosine" ? parseCosine(Err, Fields, S)
                                          : Err.syntax();
  if (E)
    return E;
  return S;
}
