//===- Calibrators.cpp - Percentile, Entropy and MSE observers -----------===//
//
// Calibrators PyTorch lacks. All three keep the same state:
//  * min_val, max_val: the signed extremes of the finite values seen;
//  * histogram: counts of |x| in Bins bins over [0, R), R the smallest power
//    of two strictly above max |x|; negative_histogram: the same for the
//    negative values only.
// When R grows, 2^k old bins merge exactly into one, so the histogram is the
// one binning all data at the final R would give, whatever the batch order
// or split. A tensor with NaN or infinities is refused, as by
// HistogramObserver (see Observer::problem).
//
// Each calibrator chooses a threshold T on |x|; the range is then
// [max(min_val, -T), min(max_val, T)] and its qparams follow PyTorch's
// _calculate_qparams for the spec's dtype, scheme and range:
//  * Percentile: T is the upper edge of the first bin at which the
//    cumulative count of |x| reaches percentile% of all values.
//  * Entropy (TensorRT's calibration): for every candidate i (bins kept),
//    P = the first i bins with the count of the clipped bins added to the
//    last one, Q = the first i bins merged into L levels and spread back
//    evenly over the bins non-empty in P; T = i * width for the i of least
//    KL(P || Q) (the first on ties). L = quant_max - quant_min + 1, halved
//    when the scheme is symmetric or the data has both signs (128 for int8,
//    as TensorRT). Bins empty in P are left out of the divergence; a bin
//    non-empty in P but empty in Q gets 1e-4 counts in Q.
//  * MSE: T = i * width for the i whose range gives the least squared
//    error of fake-quantizing every bin's centre (clamped to the observed
//    extremes), weighted by its count, over the positive and negative
//    histograms.
//
//===----------------------------------------------------------------------===//

#include "ObserverImpl.h"

#include "qfx/Support/Error.h"

#include <algorithm>
#include <cassert>
#include <cmath>

using namespace qfx;
using namespace qfx::quant_detail;

namespace {

/// The histogram range for a maximum magnitude: the smallest power of two
/// strictly above it, or 0 when every value seen was zero.
double rangeFor(double AbsMax) {
  if (AbsMax <= 0)
    return 0;
  int Exp;
  std::frexp(AbsMax, &Exp); // AbsMax = m * 2^Exp with m in [0.5, 1).
  return std::ldexp(1.0, Exp);
}

double absMax(float Min, float Max) {
  return std::max(std::fabs(static_cast<double>(Min)),
                  std::fabs(static_cast<double>(Max)));
}

/// Merges every 2^Shift adjacent bins into one (bin i goes to i >> Shift).
void mergeBins(std::vector<double> &Counts, int Shift) {
  std::vector<double> Merged(Counts.size(), 0.0);
  for (size_t I = 0; I < Counts.size(); ++I)
    Merged[Shift >= 63 ? 0 : I >> Shift] += Counts[I];
  Counts = std::move(Merged);
}

/// The bin of |x| for each of \p M values (see the file comment), plus Bins
/// for negative values, 2 * Bins for non-finite ones. All finite values are
/// below \p Range in magnitude.
void magnitudeBins(const float *X, int64_t M, int64_t Bins, double Range,
                   int32_t *Idx) {
  int32_t B = static_cast<int32_t>(Bins), Skip = 2 * B;
  // |x| * (Bins / Range) is exact: Range is a power of two and, with Bins a
  // power of two that fits the float range, so is the factor.
  double Factor = Range > 0 ? static_cast<double>(Bins) / Range : 0.0;
  float FactorF = static_cast<float>(Factor);
  bool Exact = (Bins & (Bins - 1)) == 0 && std::isnormal(FactorF);
  int64_t I = 0;
#ifdef QFX_QUANT_VECTOR_EXT
  if (Exact) {
    Float4 Max = splat4(std::numeric_limits<float>::max());
    for (; I + 4 <= M; I += 4) {
      Float4 V = load4(X + I);
      Float4 A = V < 0 ? -V : V;
      Int4 Finite = A <= Max;
      Int4 K =
          __builtin_convertvector(Finite ? A * FactorF : splat4(0.0f), Int4);
      K = K < B ? K : splat4(B - 1);
      K += (V < 0) & B;
      store4(Idx + I, Finite ? K : splat4(Skip));
    }
  }
#endif
  for (; I < M; ++I) {
    float V = X[I];
    if (!std::isfinite(V)) {
      Idx[I] = Skip;
      continue;
    }
    double A = std::fabs(static_cast<double>(V));
    int32_t K = std::min(static_cast<int32_t>(A * Factor), B - 1);
    Idx[I] = K + (V < 0 ? B : 0);
  }
}

/// KL(P || Q) of the normalized distributions over the bins where P > 0.
/// Such a bin may have Q = 0 (the last kept bin, when it is empty but holds
/// the clipped values in P); it gets eps counts instead, which keeps the
/// divergence finite without perturbing any other bin.
double klDivergence(const std::vector<double> &P, std::vector<double> &Q) {
  constexpr double Eps = 1e-4;
  double SumP = 0, SumQ = 0;
  for (size_t J = 0; J < P.size(); ++J) {
    if (P[J] > 0 && Q[J] == 0)
      Q[J] = Eps;
    SumP += P[J];
    SumQ += Q[J];
  }
  double KL = 0;
  for (size_t J = 0; J < P.size(); ++J) {
    if (P[J] == 0)
      continue;
    double PN = P[J] / SumP, QN = Q[J] / SumQ;
    KL += PN * std::log(PN / QN);
  }
  return KL;
}

/// Squared error of fake-quantizing \p V with \p Scale / \p ZeroPoint.
double quantError(double V, double Scale, double InvScale, int64_t ZeroPoint,
                  int64_t QMin, int64_t QMax) {
  double Q = std::clamp(std::nearbyint(V * InvScale) + ZeroPoint,
                        static_cast<double>(QMin), static_cast<double>(QMax));
  double D = (Q - ZeroPoint) * Scale - V;
  return D * D;
}

} // namespace

HistogramCalibrator::HistogramCalibrator(ObserverSpec S)
    : Observer(std::move(S)), Counts(Spec.Bins, 0.0),
      NegCounts(Spec.Bins, 0.0) {}

bool HistogramCalibrator::hasObserved() const {
  return !(MinVal == Inf && MaxVal == -Inf);
}

double HistogramCalibrator::binWidth() const {
  return rangeFor(absMax(MinVal, MaxVal)) / static_cast<double>(Spec.Bins);
}

void HistogramCalibrator::observe(const Tensor &X) {
  assert(X.dtype() == DType::F32 && "observers watch f32 tensors");
  if (!Problem.empty())
    return;
  const float *In = X.data<float>();
  int64_t N = X.numElements();
  bool SawNaN = false;
  MinMax Cur = aminmaxSkippingNaN(In, N, SawNaN);
  if (Cur.Min > Cur.Max && !SawNaN)
    return; // Empty.
  Problem = histogramProblem(observerKindName(Spec.Kind), Cur, SawNaN,
                             /*Int64Range=*/false);
  if (!Problem.empty())
    return;
  double OldRange = hasObserved() ? rangeFor(absMax(MinVal, MaxVal)) : 0;
  MinVal = std::min(MinVal, Cur.Min);
  MaxVal = std::max(MaxVal, Cur.Max);
  double Range = rangeFor(absMax(MinVal, MaxVal));
  if (OldRange > 0 && Range > OldRange) {
    int Shift = static_cast<int>(std::lround(std::log2(Range / OldRange)));
    mergeBins(Counts, Shift);
    mergeBins(NegCounts, Shift);
  }
  int64_t Bins = Spec.Bins;
  // Per batch, negative values count at index Bins + bin; 2 * Bins collects
  // non-finite ones.
  std::vector<uint64_t> Batch(2 * Bins + 1, 0);
  constexpr int64_t Chunk = 1024;
  int32_t Idx[Chunk];
  for (int64_t Base = 0; Base < N; Base += Chunk) {
    int64_t M = std::min(Chunk, N - Base);
    magnitudeBins(In + Base, M, Bins, Range, Idx);
    for (int64_t I = 0; I < M; ++I)
      ++Batch[Idx[I]];
  }
  for (int64_t B = 0; B < Bins; ++B) {
    Counts[B] += static_cast<double>(Batch[B] + Batch[Bins + B]);
    NegCounts[B] += static_cast<double>(Batch[Bins + B]);
  }
}

double HistogramCalibrator::percentileThreshold() const {
  double Total = 0;
  for (double C : Counts)
    Total += C;
  double Target = Spec.Percentile / 100.0 * Total;
  double Cum = 0;
  int64_t Bins = Spec.Bins;
  for (int64_t B = 0; B < Bins; ++B) {
    Cum += Counts[B];
    if (Cum >= Target && Counts[B] > 0)
      return static_cast<double>(B + 1) * binWidth();
  }
  return static_cast<double>(Bins) * binWidth();
}

/// The number of non-empty leading bins: candidates past it clip nothing.
static int64_t occupiedBins(const std::vector<double> &Counts) {
  int64_t Top = static_cast<int64_t>(Counts.size());
  while (Top > 1 && Counts[Top - 1] == 0)
    --Top;
  return Top;
}

double HistogramCalibrator::entropyThreshold() const {
  int64_t Levels = Spec.QuantMax - Spec.QuantMin + 1;
  if (isSymmetric(Spec.Scheme) || (MinVal < 0 && MaxVal > 0))
    Levels /= 2;
  int64_t Top = occupiedBins(Counts);
  if (Top <= Levels)
    return static_cast<double>(Top) * binWidth();
  std::vector<double> Suffix(Top + 1, 0.0); // Suffix[i] = sum of bins >= i.
  for (int64_t B = Top - 1; B >= 0; --B)
    Suffix[B] = Suffix[B + 1] + Counts[B];
  double BestKL = std::numeric_limits<double>::infinity();
  int64_t BestI = Top;
  std::vector<double> P, Q;
  for (int64_t I = Levels; I <= Top; ++I) {
    P.assign(Counts.begin(), Counts.begin() + I);
    P[I - 1] += Suffix[I];
    Q.assign(I, 0.0);
    int64_t Merged = I / Levels;
    for (int64_t G = 0; G < Levels; ++G) {
      int64_t Begin = G * Merged, End = G == Levels - 1 ? I : Begin + Merged;
      double Sum = 0;
      int64_t NonZero = 0;
      for (int64_t J = Begin; J < End; ++J) {
        Sum += Counts[J];
        NonZero += P[J] != 0;
      }
      for (int64_t J = Begin; J < End && NonZero; ++J)
        Q[J] = P[J] != 0 ? Sum / static_cast<double>(NonZero) : 0.0;
    }
    double KL = klDivergence(P, Q);
    if (KL < BestKL) {
      BestKL = KL;
      BestI = I;
    }
  }
  return static_cast<double>(BestI) * binWidth();
}

double HistogramCalibrator::mseThreshold() const {
  int64_t Top = occupiedBins(Counts);
  double Width = binWidth();
  // Bin representatives: centres, clamped to the observed extremes.
  std::vector<std::pair<double, double>> Points; // (value, count)
  for (int64_t B = 0; B < Top; ++B) {
    double Centre = (static_cast<double>(B) + 0.5) * Width;
    double Pos = Counts[B] - NegCounts[B];
    if (Pos > 0)
      Points.push_back({std::min(Centre, static_cast<double>(MaxVal)), Pos});
    if (NegCounts[B] > 0)
      Points.push_back(
          {std::max(-Centre, static_cast<double>(MinVal)), NegCounts[B]});
  }
  double BestErr = std::numeric_limits<double>::infinity();
  int64_t BestI = Top;
  for (int64_t I = 1; I <= Top; ++I) {
    float T = static_cast<float>(static_cast<double>(I) * Width);
    float Scale;
    int64_t ZeroPoint;
    qparamsFromRange(std::max(MinVal, -T), std::min(MaxVal, T), Spec, Scale,
                     ZeroPoint);
    double S = Scale, InvS = 1.0 / S, Err = 0;
    for (const auto &[V, C] : Points)
      Err +=
          C * quantError(V, S, InvS, ZeroPoint, Spec.QuantMin, Spec.QuantMax);
    if (Err < BestErr) {
      BestErr = Err;
      BestI = I;
    }
  }
  return static_cast<double>(BestI) * Width;
}

double HistogramCalibrator::threshold() const {
  if (!hasObserved())
    return 0;
  switch (Spec.Kind) {
  case ObserverKind::Percentile:
    return percentileThreshold();
  case ObserverKind::Entropy:
    return entropyThreshold();
  default:
    return mseThreshold();
  }
}

llvm::Expected<QuantParams> HistogramCalibrator::calculateQParams() const {
  if (!Problem.empty())
    return problemError(Problem);
  if (!hasObserved())
    return notObservedError(Spec);
  if (llvm::Error E = checkRange(MinVal, MaxVal))
    return E;
  float T = static_cast<float>(threshold());
  float Scale;
  int64_t ZeroPoint;
  qparamsFromRange(std::max(MinVal, -T), std::min(MaxVal, T), Spec, Scale,
                   ZeroPoint);
  if (llvm::Error E = checkScale(Scale, MinVal, MaxVal))
    return E;
  return QuantParams::perTensor(Scale, ZeroPoint);
}

std::vector<NamedTensor> HistogramCalibrator::state() const {
  std::vector<float> All(Counts.begin(), Counts.end());
  std::vector<float> Neg(NegCounts.begin(), NegCounts.end());
  return {vectorBuffer("histogram", All),
          vectorBuffer("negative_histogram", Neg),
          scalarBuffer("min_val", MinVal), scalarBuffer("max_val", MaxVal)};
}

llvm::Error HistogramCalibrator::loadState(const ModuleInfo &M) {
  std::vector<float> All, Neg;
  float Min, Max;
  if (llvm::Error E = readVectorBuffer(M, "histogram", Spec.Bins, All))
    return E;
  if (llvm::Error E = checkCounts("histogram", All, /*AllowNegative=*/false))
    return E;
  if (llvm::Error E = readVectorBuffer(M, "negative_histogram", Spec.Bins, Neg))
    return E;
  if (llvm::Error E =
          checkCounts("negative_histogram", Neg, /*AllowNegative=*/false))
    return E;
  for (int64_t B = 0; B < Spec.Bins; ++B)
    if (Neg[B] > All[B])
      return stateError("buffer 'negative_histogram' exceeds 'histogram' in "
                        "bin " +
                        llvm::Twine(B));
  if (llvm::Error E = readScalarBuffer(M, "min_val", Min))
    return E;
  if (llvm::Error E = readScalarBuffer(M, "max_val", Max))
    return E;
  Counts.assign(All.begin(), All.end());
  NegCounts.assign(Neg.begin(), Neg.end());
  MinVal = Min;
  MaxVal = Max;
  return llvm::Error::success();
}
