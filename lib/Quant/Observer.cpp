//===- Observer.cpp - Calibration observers -------------------------------===//
//
// The observer factory, PyTorch's qparams arithmetic, state-buffer helpers,
// and the min/max observers. Histogram observers live in
// HistogramObserver.cpp and Calibrators.cpp.
//
//===----------------------------------------------------------------------===//

#include "ObserverImpl.h"

#include "qfx/Support/Error.h"

#include "llvm/ADT/Twine.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstdio>
#include <limits>

using namespace qfx;
using namespace qfx::quant_detail;
using llvm::Twine;

//===----------------------------------------------------------------------===//
// Shared helpers
//===----------------------------------------------------------------------===//

/// torch.finfo(torch.float32).eps, the lower bound of every scale.
static constexpr float Eps = 0x1p-23f;

/// Whether the range is a customized one in PyTorch's sense (the
/// constructor got quant_min/quant_max): anything but the dtype's default
/// range, reduce_range applied.
static bool hasCustomRange(const ObserverSpec &Spec) {
  ObserverSpec Default =
      ObserverSpec::make(Spec.Kind, Spec.Dtype, Spec.Scheme, Spec.ReduceRange);
  return Spec.QuantMin != Default.QuantMin || Spec.QuantMax != Default.QuantMax;
}

void quant_detail::qparamsFromRange(float MinVal, float MaxVal,
                                    const ObserverSpec &Spec, float &Scale,
                                    int64_t &ZeroPoint) {
  float MinNeg = std::min(MinVal, 0.0f);
  float MaxPos = std::max(MaxVal, 0.0f);
  int64_t QMin = Spec.QuantMin, QMax = Spec.QuantMax;
  if (isSymmetric(Spec.Scheme)) {
    MaxPos = std::max(-MinNeg, MaxPos);
    // max_val_pos / (float(quant_max - quant_min) / 2), divisor in double
    // then rounded to float by the tensor division.
    float Divisor = static_cast<float>(static_cast<double>(QMax - QMin) / 2);
    Scale = std::max(MaxPos / Divisor, Eps);
    ZeroPoint = 0;
    if (Spec.Dtype == DType::U8) {
      // Python's floor division; both bounds are non-negative here.
      ZeroPoint = hasCustomRange(Spec) ? (QMin + QMax) / 2 : 128;
    }
    return;
  }
  Scale = std::max((MaxPos - MinNeg) / static_cast<float>(QMax - QMin), Eps);
  // quant_min - round(min_val_neg / scale).to(int), then clamped. The
  // conversion follows x86 for non-finite ratios (from infinite ranges).
  float Ratio = std::nearbyint(MinNeg / Scale);
  int64_t Rounded = std::isfinite(Ratio) && std::fabs(Ratio) < 0x1p31f
                        ? static_cast<int64_t>(Ratio)
                        : std::numeric_limits<int32_t>::min();
  ZeroPoint = std::clamp(QMin - Rounded, QMin, QMax);
}

QuantParams qfx::calculateQParams(double MinVal, double MaxVal,
                                  const ObserverSpec &Spec) {
  float Scale;
  int64_t ZeroPoint;
  qparamsFromRange(static_cast<float>(MinVal), static_cast<float>(MaxVal), Spec,
                   Scale, ZeroPoint);
  return QuantParams::perTensor(Scale, ZeroPoint);
}

MinMax quant_detail::aminmaxSkippingNaN(const float *X, int64_t N,
                                        bool &SawNaN) {
  MinMax R;
  bool NaN = false;
  int64_t I = 0;
#ifdef QFX_QUANT_VECTOR_EXT
  // Two accumulators per bound hide the latency of the compare-selects; a
  // NaN compares false and is skipped.
  Float4 Mn0 = splat4(Inf), Mn1 = Mn0, Mx0 = splat4(-Inf), Mx1 = Mx0;
  Int4 Bad = splat4(0);
  for (; I + 8 <= N; I += 8) {
    Float4 A = load4(X + I), B = load4(X + I + 4);
    Mn0 = A < Mn0 ? A : Mn0;
    Mx0 = A > Mx0 ? A : Mx0;
    Mn1 = B < Mn1 ? B : Mn1;
    Mx1 = B > Mx1 ? B : Mx1;
    Bad |= (A != A) | (B != B);
  }
  for (int L = 0; L < 4; ++L) {
    R.Min = std::min({R.Min, Mn0[L], Mn1[L]});
    R.Max = std::max({R.Max, Mx0[L], Mx1[L]});
    NaN |= Bad[L] != 0;
  }
#endif
  for (; I < N; ++I) {
    float V = X[I];
    if (V != V) {
      NaN = true;
      continue;
    }
    R.Min = std::min(R.Min, V);
    R.Max = std::max(R.Max, V);
  }
  SawNaN = NaN;
  return R;
}

MinMax quant_detail::aminmax(const float *X, int64_t N) {
  bool SawNaN;
  MinMax R = aminmaxSkippingNaN(X, N, SawNaN);
  if (SawNaN)
    R.Min = R.Max = std::nanf("");
  return R;
}

std::string quant_detail::histogramProblem(llvm::StringRef Kind, MinMax Seen,
                                           bool SawNaN, bool Int64Range) {
  std::string Value;
  if (SawNaN)
    Value = "nan";
  else if (Seen.Max == Inf)
    Value = "inf";
  else if (Seen.Min == -Inf)
    Value = "-inf";
  if (!Value.empty())
    return (Kind + " saw a non-finite value (" + Value +
            ") during calibration; histogram observers need finite values")
        .str();
  // int(v) of a float fits int64 iff |v| < 2^63.
  constexpr float Limit = 0x1p63f;
  if (!Int64Range || (Seen.Min > -Limit && Seen.Max < Limit))
    return "";
  float Big = Seen.Max >= Limit ? Seen.Max : Seen.Min;
  return (Kind + " saw " + formatNumber(Big) +
          " during calibration; it needs magnitudes below 2^63 (PyTorch's "
          "int() of the histogram range overflows there)")
      .str();
}

/// torch.min / torch.max of two floats: NaN wins.
static float minPropagate(float A, float B) {
  return std::isnan(A) || std::isnan(B) ? std::nanf("") : std::min(A, B);
}
static float maxPropagate(float A, float B) {
  return std::isnan(A) || std::isnan(B) ? std::nanf("") : std::max(A, B);
}

NamedTensor quant_detail::scalarBuffer(llvm::StringRef Name, float V) {
  Tensor T(DType::F32, {});
  T.data<float>()[0] = V;
  return {Name.str(), /*IsBuffer=*/true, T};
}

NamedTensor quant_detail::vectorBuffer(llvm::StringRef Name,
                                       llvm::ArrayRef<float> V) {
  Tensor T(DType::F32, {static_cast<int64_t>(V.size())});
  std::copy(V.begin(), V.end(), T.data<float>());
  return {Name.str(), /*IsBuffer=*/true, T};
}

llvm::Error quant_detail::stateError(const Twine &Msg) {
  return makeError("observer module: " + Msg);
}

/// The buffer \p Name, or an error if it is missing or has no data.
static llvm::Expected<const Tensor *> findBuffer(const ModuleInfo &M,
                                                 llvm::StringRef Name) {
  const Tensor *T = M.tensor(Name);
  if (!T)
    return stateError("missing buffer '" + Name + "'");
  if (!T->hasData())
    return stateError("buffer '" + Name + "' has no data");
  return T;
}

static std::string describe(const Tensor &T) {
  return dtypeName(T.dtype()).str() + formatShape(T.shape());
}

llvm::Error quant_detail::readScalarBuffer(const ModuleInfo &M,
                                           llvm::StringRef Name, float &Out) {
  llvm::Expected<const Tensor *> T = findBuffer(M, Name);
  if (!T)
    return T.takeError();
  if ((*T)->dtype() != DType::F32 || (*T)->rank() != 0)
    return stateError("buffer '" + Name + "' must be f32[], got " +
                      describe(**T));
  Out = (*T)->data<float>()[0];
  return llvm::Error::success();
}

llvm::Error quant_detail::readVectorBuffer(const ModuleInfo &M,
                                           llvm::StringRef Name, int64_t Length,
                                           std::vector<float> &Out) {
  llvm::Expected<const Tensor *> T = findBuffer(M, Name);
  if (!T)
    return T.takeError();
  const Tensor &V = **T;
  if (V.dtype() != DType::F32 || V.rank() != 1 ||
      (Length >= 0 && V.dim(0) != Length))
    return stateError("buffer '" + Name + "' must be f32[" +
                      (Length >= 0 ? Twine(Length) : Twine("N")) + "], got " +
                      describe(V));
  Out.assign(V.data<float>(), V.data<float>() + V.dim(0));
  return llvm::Error::success();
}

llvm::Error quant_detail::checkCounts(llvm::StringRef Name,
                                      llvm::ArrayRef<float> Counts,
                                      bool AllowNegative) {
  for (float C : Counts) {
    if (!std::isfinite(C))
      return stateError("buffer '" + Name + "' has a non-finite count");
    if (C < 0 && !AllowNegative)
      return stateError("buffer '" + Name + "' has a negative count");
  }
  return llvm::Error::success();
}

llvm::Error quant_detail::notObservedError(const ObserverSpec &Spec) {
  return makeError(observerKindName(Spec.Kind) + " has not observed any data");
}

std::string quant_detail::formatNumber(double V) {
  char Buf[32];
  std::snprintf(Buf, sizeof(Buf), "%.9g", V);
  return Buf;
}

llvm::Error quant_detail::checkRange(float MinVal, float MaxVal) {
  if (std::isnan(MinVal) || std::isnan(MaxVal))
    return makeError("observed values include nan");
  if (std::isinf(MinVal) || std::isinf(MaxVal))
    return makeError("observed range [" + formatNumber(MinVal) + ", " +
                     formatNumber(MaxVal) + "] is not finite");
  if (MinVal > MaxVal)
    return makeError("min_val " + formatNumber(MinVal) +
                     " is greater than max_val " + formatNumber(MaxVal));
  return llvm::Error::success();
}

llvm::Error quant_detail::checkScale(float Scale, float MinVal, float MaxVal) {
  if (std::isfinite(Scale))
    return llvm::Error::success();
  return makeError("observed range [" + formatNumber(MinVal) + ", " +
                   formatNumber(MaxVal) + "] gives a non-finite scale (" +
                   formatNumber(Scale) +
                   "); quantization needs a range narrower than float's");
}

llvm::Error quant_detail::problemError(const std::string &Problem) {
  return makeError(Problem);
}

//===----------------------------------------------------------------------===//
// Observer
//===----------------------------------------------------------------------===//

Observer::~Observer() = default;

std::unique_ptr<Observer> Observer::create(const ObserverSpec &Spec) {
  assert(Spec.validate().empty() && "invalid observer spec");
  switch (Spec.Kind) {
  case ObserverKind::MinMax:
  case ObserverKind::MovingAverageMinMax:
    return std::make_unique<MinMaxObserver>(Spec);
  case ObserverKind::PerChannelMinMax:
  case ObserverKind::MovingAveragePerChannelMinMax:
    return std::make_unique<PerChannelMinMaxObserver>(Spec);
  case ObserverKind::Histogram:
    return std::make_unique<HistogramObserver>(Spec);
  case ObserverKind::Percentile:
  case ObserverKind::Entropy:
  case ObserverKind::MSE:
    return std::make_unique<HistogramCalibrator>(Spec);
  case ObserverKind::Placeholder:
    return std::make_unique<PlaceholderObserver>(Spec);
  case ObserverKind::FixedQParams:
    return std::make_unique<FixedQParamsObserver>(Spec);
  }
  return nullptr;
}

llvm::Expected<std::unique_ptr<Observer>>
Observer::fromModule(const ModuleInfo &M) {
  llvm::Expected<ObserverSpec> Spec = ObserverSpec::fromModule(M);
  if (!Spec)
    return Spec.takeError();
  std::unique_ptr<Observer> Obs = create(*Spec);
  if (llvm::Error E = Obs->loadState(M))
    return E;
  return Obs;
}

void Observer::toModule(ModuleInfo &M) const {
  Spec.toModule(M);
  for (NamedTensor &T : state())
    M.setTensor(T.Name, T.Value, /*IsBuffer=*/true);
}

//===----------------------------------------------------------------------===//
// MinMaxObserver, MovingAverageMinMaxObserver
//===----------------------------------------------------------------------===//

void MinMaxObserver::observe(const Tensor &X) {
  assert(X.dtype() == DType::F32 && "observers watch f32 tensors");
  if (X.numElements() == 0)
    return;
  MinMax Cur = aminmax(X.data<float>(), X.numElements());
  bool Moving = Spec.Kind == ObserverKind::MovingAverageMinMax;
  if (!Moving) {
    MinVal = minPropagate(Cur.Min, MinVal);
    MaxVal = maxPropagate(Cur.Max, MaxVal);
    return;
  }
  if (!hasObserved()) {
    MinVal = Cur.Min;
    MaxVal = Cur.Max;
    return;
  }
  // min_val + averaging_constant * (min_val_cur - min_val), in float.
  float C = static_cast<float>(Spec.AveragingConstant);
  MinVal = MinVal + C * (Cur.Min - MinVal);
  MaxVal = MaxVal + C * (Cur.Max - MaxVal);
}

bool MinMaxObserver::hasObserved() const {
  return !(MinVal == Inf && MaxVal == -Inf);
}

llvm::Expected<QuantParams> MinMaxObserver::calculateQParams() const {
  if (!hasObserved())
    return notObservedError(Spec);
  if (llvm::Error E = checkRange(MinVal, MaxVal))
    return E;
  QuantParams QP = qfx::calculateQParams(MinVal, MaxVal, Spec);
  if (llvm::Error E = checkScale(static_cast<float>(QP.Scale), MinVal, MaxVal))
    return E;
  return QP;
}

std::vector<NamedTensor> MinMaxObserver::state() const {
  return {scalarBuffer("min_val", MinVal), scalarBuffer("max_val", MaxVal)};
}

llvm::Error MinMaxObserver::loadState(const ModuleInfo &M) {
  float Min, Max;
  if (llvm::Error E = readScalarBuffer(M, "min_val", Min))
    return E;
  if (llvm::Error E = readScalarBuffer(M, "max_val", Max))
    return E;
  MinVal = Min;
  MaxVal = Max;
  return llvm::Error::success();
}

//===----------------------------------------------------------------------===//
// PerChannelMinMaxObserver, MovingAveragePerChannelMinMaxObserver
//===----------------------------------------------------------------------===//

void PerChannelMinMaxObserver::observe(const Tensor &X) {
  assert(X.dtype() == DType::F32 && "observers watch f32 tensors");
  if (X.numElements() == 0 || !Problem.empty())
    return;
  if (Spec.ChAxis >= X.rank()) {
    Problem = (observerKindName(Spec.Kind) + ": ch_axis " + Twine(Spec.ChAxis) +
               " is out of range for a " + formatShape(X.shape()) + " tensor")
                  .str();
    return;
  }
  int64_t Outer = 1, C = X.dim(Spec.ChAxis), Inner = 1;
  for (int64_t I = 0; I < Spec.ChAxis; ++I)
    Outer *= X.dim(I);
  for (int64_t I = Spec.ChAxis + 1; I < X.rank(); ++I)
    Inner *= X.dim(I);
  if (!MinVals.empty() && static_cast<int64_t>(MinVals.size()) != C) {
    Problem = (observerKindName(Spec.Kind) + ": observed " + Twine(C) +
               " channels after " + Twine(MinVals.size()))
                  .str();
    return;
  }
  std::vector<MinMax> Cur(C);
  const float *In = X.data<float>();
  for (int64_t O = 0; O < Outer; ++O)
    for (int64_t Ch = 0; Ch < C; ++Ch) {
      MinMax Part = aminmax(In + (O * C + Ch) * Inner, Inner);
      Cur[Ch].Min = minPropagate(Cur[Ch].Min, Part.Min);
      Cur[Ch].Max = maxPropagate(Cur[Ch].Max, Part.Max);
    }
  bool Moving = Spec.Kind == ObserverKind::MovingAveragePerChannelMinMax;
  if (MinVals.empty()) {
    MinVals.resize(C);
    MaxVals.resize(C);
    for (int64_t Ch = 0; Ch < C; ++Ch) {
      MinVals[Ch] = Cur[Ch].Min;
      MaxVals[Ch] = Cur[Ch].Max;
    }
    return;
  }
  float Avg = static_cast<float>(Spec.AveragingConstant);
  for (int64_t Ch = 0; Ch < C; ++Ch) {
    if (Moving) {
      MinVals[Ch] = MinVals[Ch] + Avg * (Cur[Ch].Min - MinVals[Ch]);
      MaxVals[Ch] = MaxVals[Ch] + Avg * (Cur[Ch].Max - MaxVals[Ch]);
    } else {
      MinVals[Ch] = minPropagate(Cur[Ch].Min, MinVals[Ch]);
      MaxVals[Ch] = maxPropagate(Cur[Ch].Max, MaxVals[Ch]);
    }
  }
}

llvm::Expected<QuantParams> PerChannelMinMaxObserver::calculateQParams() const {
  if (!Problem.empty())
    return problemError(Problem);
  if (!hasObserved())
    return notObservedError(Spec);
  std::vector<double> Scales(MinVals.size());
  std::vector<int64_t> ZeroPoints(MinVals.size());
  for (size_t Ch = 0; Ch < MinVals.size(); ++Ch) {
    if (llvm::Error E = checkRange(MinVals[Ch], MaxVals[Ch]))
      return prefixError(std::move(E), ("channel " + Twine(Ch)).str());
    float Scale;
    qparamsFromRange(MinVals[Ch], MaxVals[Ch], Spec, Scale, ZeroPoints[Ch]);
    if (llvm::Error E = checkScale(Scale, MinVals[Ch], MaxVals[Ch]))
      return prefixError(std::move(E), ("channel " + Twine(Ch)).str());
    Scales[Ch] = Scale;
  }
  return QuantParams::perChannel(std::move(Scales), std::move(ZeroPoints),
                                 Spec.ChAxis);
}

std::vector<NamedTensor> PerChannelMinMaxObserver::state() const {
  return {vectorBuffer("min_val", MinVals), vectorBuffer("max_val", MaxVals)};
}

llvm::Error PerChannelMinMaxObserver::loadState(const ModuleInfo &M) {
  std::vector<float> Min, Max;
  if (llvm::Error E = readVectorBuffer(M, "min_val", -1, Min))
    return E;
  if (llvm::Error E =
          readVectorBuffer(M, "max_val", static_cast<int64_t>(Min.size()), Max))
    return E;
  MinVals = std::move(Min);
  MaxVals = std::move(Max);
  Problem.clear();
  return llvm::Error::success();
}

//===----------------------------------------------------------------------===//
// PlaceholderObserver
//===----------------------------------------------------------------------===//

llvm::Expected<QuantParams> PlaceholderObserver::calculateQParams() const {
  return makeError("placeholder observer has no qparams (dynamic quantization "
                   "computes them at run time)");
}

//===----------------------------------------------------------------------===//
// FixedQParamsObserver
//===----------------------------------------------------------------------===//

llvm::Expected<QuantParams> FixedQParamsObserver::calculateQParams() const {
  return QuantParams::perTensor(Spec.FixedScale, Spec.FixedZeroPoint);
}
