//===- HistogramObserver.cpp - PyTorch 1.13's HistogramObserver ----------===//
//
// A replica of torch.ao.quantization.HistogramObserver that gives the same
// histogram and the same scale and zero point bit for bit. PyTorch evaluates
// it with float32 tensor ops, float64 Python scalars and a few float64
// reductions; every expression below keeps the precision and the operation
// order of the PyTorch code (quoted in the comments), including:
//  * torch.histc gets int(min_val) and int(max_val): 1.13 truncates the
//    range to integers, and values outside it are not counted;
//  * torch.sum is ATen's cascade sum with 8-wide float accumulators;
//  * torch.cumsum accumulates in double and stores float.
// A tensor with NaN, infinities or magnitudes from 2^63 on, where PyTorch
// raises (int() of the range fails), is refused (see Observer::problem).
// Only the search in calculateQParams is expensive; observe reads the data
// once (twice when the range grows) and re-interpolates the histogram in
// O(bins).
//
//===----------------------------------------------------------------------===//

#include "ObserverImpl.h"

#include "qfx/Support/Error.h"

#include <algorithm>
#include <array>
#include <cassert>
#include <cmath>
#include <cstring>

using namespace qfx;
using namespace qfx::quant_detail;

namespace {

int64_t ceilLog2(int64_t X) {
  if (X <= 2)
    return 1;
  int64_t R = 0;
  for (uint64_t V = static_cast<uint64_t>(X) - 1; V; V >>= 1)
    ++R;
  return R;
}

/// ATen's multi_row_sum + row_sum over \p Rows units of \p W floats (a unit
/// is one Vectorized<float> or one scalar), 4 units per row: the partial
/// sums of the first unit column after folding in the others.
template <int W> std::array<float, W> rowSum(const float *X, int64_t Units) {
  constexpr int64_t ILP = 4, Levels = 4;
  using Unit = std::array<float, W>;
  Unit Acc[Levels][ILP] = {};
  auto AddRow = [&](int64_t Row) {
    for (int64_t K = 0; K < ILP; ++K)
      for (int V = 0; V < W; ++V)
        Acc[0][K][V] += X[(Row * ILP + K) * W + V];
  };
  int64_t Rows = Units / ILP;
  int64_t LevelPower = std::max<int64_t>(4, ceilLog2(Rows) / Levels);
  int64_t LevelStep = int64_t(1) << LevelPower;
  int64_t LevelMask = LevelStep - 1;
  int64_t I = 0;
  while (I + LevelStep <= Rows) {
    for (int64_t J = 0; J < LevelStep; ++J, ++I)
      AddRow(I);
    for (int64_t J = 1; J < Levels; ++J) {
      for (int64_t K = 0; K < ILP; ++K)
        for (int V = 0; V < W; ++V) {
          Acc[J][K][V] += Acc[J - 1][K][V];
          Acc[J - 1][K][V] = 0;
        }
      if ((I & (LevelMask << (J * LevelPower))) != 0)
        break;
    }
  }
  for (; I < Rows; ++I)
    AddRow(I);
  for (int64_t J = 1; J < Levels; ++J)
    for (int64_t K = 0; K < ILP; ++K)
      for (int V = 0; V < W; ++V)
        Acc[0][K][V] += Acc[J][K][V];
  // row_sum: leftover units go to the first column, then the columns fold.
  for (int64_t U = Rows * ILP; U < Units; ++U)
    for (int V = 0; V < W; ++V)
      Acc[0][0][V] += X[U * W + V];
  for (int64_t K = 1; K < ILP; ++K)
    for (int V = 0; V < W; ++V)
      Acc[0][0][V] += Acc[0][K][V];
  return Acc[0][0];
}

/// torch.sum of a contiguous float32 vector on an AVX2 CPU build (single
/// threaded below ATen's grain size of 32768).
float cascadeSum(const float *X, int64_t N) {
  constexpr int W = 8;
  if (N < W)
    return 0.0f + rowSum<1>(X, N)[0];
  int64_t Units = N / W;
  std::array<float, W> Partial = rowSum<W>(X, Units);
  float Final = 0;
  for (int64_t K = Units * W; K < N; ++K)
    Final += X[K];
  for (int V = 0; V < W; ++V)
    Final += Partial[V];
  return 0.0f + Final;
}

/// The histogram kernel's bin of each of \p M values: int64((v - Left) /
/// Width * Bins) in float (1.13's CPU kernel divides first, so no finite
/// value overflows), -1 outside [Left, Right] (and for NaN). A NaN quotient
/// (Width 0: edges too large for float to tell apart) gives bin 0, where
/// PyTorch's x86 build lands; the clamp to Bins only guards rounding.
void binIndices(const float *X, int64_t M, int64_t Bins, float Left,
                float Right, float Width, int32_t *Idx) {
  float FBins = static_cast<float>(Bins);
  int64_t I = 0;
#ifdef QFX_QUANT_VECTOR_EXT
  for (; I + 4 <= M; I += 4) {
    Float4 V = load4(X + I);
    Float4 Q = (V - Left) / Width * FBins;
    Q = Q >= 0.0f ? Q : splat4(0.0f); // Also NaN.
    Q = Q <= FBins ? Q : splat4(FBins);
    Int4 In = (V >= Left) & (V <= Right);
    store4(Idx + I, __builtin_convertvector(In ? Q : splat4(-1.0f), Int4));
  }
#endif
  for (; I < M; ++I) {
    float V = X[I];
    float Q = (V - Left) / Width * FBins;
    Q = Q >= 0.0f ? std::min(Q, FBins) : 0.0f; // Also NaN.
    bool In = V >= Left && V <= Right;
    Idx[I] = In ? static_cast<int32_t>(Q) : -1;
  }
}

/// torch.histc's outer edges for min=MinArg, max=MaxArg
/// (histc_select_outer_bin_edges); \p Data, the finite min/max of the
/// input, is used when the arguments are equal. The kernel reads the edges
/// back from a float linspace.
std::pair<float, float> histcEdges(double MinArg, double MaxArg,
                                   const MinMax &Data) {
  double Left = MinArg, Right = MaxArg;
  if (Left == Right) {
    Left = Data.Min;
    Right = Data.Max;
  }
  if (Left == Right) {
    Left -= 1;
    Right += 1;
  }
  return {static_cast<float>(Left), static_cast<float>(Right)};
}

/// torch.histc's linear-interpolation kernel with outer edges \p Edges. If
/// \p Seen is given, also the min/max of \p X (NaN skipped, setting \p
/// SawNaN), in the same pass, stopping early (with a partial histogram) once
/// they leave \p Bounds or a NaN shows up.
std::vector<float> countBins(const float *X, int64_t N, int64_t Bins,
                             std::pair<float, float> Edges,
                             MinMax *Seen = nullptr, MinMax Bounds = {},
                             bool *SawNaN = nullptr) {
  auto [Left, Right] = Edges;
  float Width = Right - Left;
  // Bin indices a chunk at a time, then the counting; index -1 collects the
  // skipped values, index Bins the values on the right edge.
  std::vector<uint64_t> Counts(Bins + 2, 0);
  constexpr int64_t Chunk = 1024;
  int32_t Idx[Chunk];
  for (int64_t Base = 0; Base < N; Base += Chunk) {
    int64_t M = std::min(Chunk, N - Base);
    if (Seen) {
      bool NaN = false;
      MinMax Part = aminmaxSkippingNaN(X + Base, M, NaN);
      Seen->Min = std::min(Seen->Min, Part.Min);
      Seen->Max = std::max(Seen->Max, Part.Max);
      if (NaN || Seen->Min < Bounds.Min || Seen->Max > Bounds.Max) {
        // The caller starts over; complete the min/max for it.
        bool RestNaN = false;
        Part = aminmaxSkippingNaN(X + Base + M, N - Base - M, RestNaN);
        Seen->Min = std::min(Seen->Min, Part.Min);
        Seen->Max = std::max(Seen->Max, Part.Max);
        *SawNaN = NaN || RestNaN;
        break;
      }
    }
    binIndices(X + Base, M, Bins, Left, Right, Width, Idx);
    for (int64_t I = 0; I < M; ++I)
      ++Counts[Idx[I] + 1];
  }
  // The rightmost bin includes its right edge.
  Counts[Bins] += Counts[Bins + 1];
  return std::vector<float>(Counts.begin() + 1, Counts.end() - 1);
}

/// Beyond this PyTorch's combined histogram (bins * rate floats) would not
/// fit in memory anyway.
constexpr float MaxDownsampleRate = 0x1p30f;

/// Python's int() of a float: truncation toward zero.
double pyInt(float V) { return std::trunc(static_cast<double>(V)); }

/// torch.div(a, b, rounding_mode='floor') for float32 with b > 0. ATen's
/// fmod-based formula yields the floor of the exact quotient while that is
/// below 2^22 in magnitude, which is computed faster; beyond, the formula
/// itself. (The sign of a zero result may differ; no caller can tell.)
float floorDiv(float A, float B) {
  float F = std::floor(A / B);
  if (std::fabs(F) < 0x1p21f) {
    double FD = F, AD = A, BD = B; // F * B is exact in double.
    if (FD * BD > AD)
      return F - 1;
    if ((FD + 1) * BD <= AD)
      return F + 1;
    return F;
  }
  float Mod = std::fmod(A, B);
  float Div = (A - Mod) / B;
  if (Mod != 0 && Mod < 0)
    Div -= 1;
  float Floor = std::floor(Div);
  return Div - Floor > 0.5f ? Floor + 1 : Floor;
}

/// floor(log2(|V|)) of a normal double from its exponent bits; -1023 for
/// zero and subnormals.
int binadeOf(double V) {
  uint64_t Bits;
  std::memcpy(&Bits, &V, sizeof(Bits));
  return static_cast<int>((Bits >> 52) & 0x7ff) - 1023;
}

/// 2^E for a normal exponent E.
double powerOfTwo(int E) {
  uint64_t Bits = static_cast<uint64_t>(E + 1023) << 52;
  double V;
  std::memcpy(&V, &Bits, sizeof(V));
  return V;
}

/// The double \p R after adding \p H to it \p K times, one rounded addition
/// at a time (the running sum torch.cumsum computes over a repeated value),
/// in O(binade changes) instead of O(K). While |R| stays inside its binade
/// [Bottom, 2 * Bottom), where doubles are U apart, R + H rounds to R plus H
/// rounded to a multiple of U; the closed form takes the steps that provably
/// keep the exact sum inside, the others are taken one by one. Interpolated
/// histograms hold small negative values too, so both directions occur.
double addRepeatedly(double R, double H, int64_t K) {
  while (K > 0 && H != 0) {
    int Exp = binadeOf(R); // |R| in [2^Exp, 2^(Exp+1))
    if (Exp < -960 || Exp > 960) {
      R = R + H; // Zero, tiny or huge (U not normal): step for real.
      --K;
      continue;
    }
    double U = powerOfTwo(Exp - 52), Bottom = powerOfTwo(Exp);
    double Ratio = std::fabs(H) / U; // Exact: U is a power of two.
    double Whole = std::floor(Ratio);
    double Units = Ratio - Whole < 0.5 ? Whole : Whole + 1;
    double MaxUnits = Units; // Bounds |H| / U for the room check.
    if (Ratio - Whole == 0.5) {
      // Halfway: the sum rounds to the even neighbour, so after one real
      // step R is a multiple of 2U and every later step adds the even one
      // of Whole and Whole + 1 units.
      R = R + H;
      --K;
      if (K == 0 || binadeOf(R) != Exp)
        continue;
      Units = std::fmod(Whole, 2.0) == 0 ? Whole : Whole + 1;
      MaxUnits = Whole + 1;
    }
    double Mag = std::fabs(R);
    bool Grows = (R > 0) == (H > 0);
    // Less than half a unit: R never moves, except just above a power of
    // two when shrinking (the spacing halves below it).
    if (Units == 0 && (Grows || Mag > Bottom))
      return R;
    // Distance to the edge the sum moves toward, in units of U (an exact
    // integer below 2^53).
    double Room = Grows ? (2 * Bottom - Mag) / U : (Mag - Bottom) / U;
    int64_t Steps = 0;
    if (MaxUnits > 0 && MaxUnits < Room)
      Steps = std::min(K, (static_cast<int64_t>(Room) - 1) /
                              static_cast<int64_t>(MaxUnits));
    R += std::copysign(static_cast<double>(Steps) * (Units * U), H);
    K -= Steps;
    if (K > 0) {
      R = R + H; // Toward the next binade, rounded for real.
      --K;
    }
  }
  return R;
}

/// HistogramObserver._get_norm: density * (end^3 - begin^3) / 3.
float getNorm(float Begin, float End, float Density) {
  return Density * ((End * End * End - Begin * Begin * Begin) / 3.0f);
}

} // namespace

HistogramObserver::HistogramObserver(ObserverSpec S)
    : Observer(std::move(S)), Histogram(Spec.Bins, 0.0f) {}

bool HistogramObserver::hasObserved() const {
  return !(MinVal == Inf && MaxVal == -Inf);
}

/// _adjust_min_max for the combined range [\p Min, \p Max]: false if the
/// downsample rate is absurd (PyTorch would allocate bins * rate floats, or
/// fail on an infinite rate from a denormal range).
bool HistogramObserver::adjust(float Min, float Max, Adjusted &A) const {
  // hist_bin_width = (max_val - min_val) / (bins * upsample_rate)
  int64_t Bins = Spec.Bins;
  float HistBinWidth =
      (MaxVal - MinVal) / static_cast<float>(Bins * Spec.UpsampleRate);
  float Span = static_cast<float>(Bins) * HistBinWidth;
  float Rate = std::ceil((Max - Min) / Span);
  if (!(Rate >= 1 && Rate <= MaxDownsampleRate))
    return false;
  A.DownsampleRate = static_cast<int64_t>(Rate);
  A.Min = Min;
  A.Max = Max + (static_cast<float>(A.DownsampleRate) * Span - (Max - Min));
  A.StartIdx =
      static_cast<int64_t>(std::nearbyint((MinVal - Min) / HistBinWidth));
  return true;
}

/// Folds the new batch's histogram \p New (binned over \p A) into the
/// state.
void HistogramObserver::merge(std::vector<float> &New, const Adjusted &A) {
  if (A.Min == MinVal && A.Max == MaxVal) {
    for (size_t I = 0; I < New.size(); ++I)
      New[I] += Histogram[I];
  } else {
    combine(New, A.DownsampleRate, A.StartIdx);
  }
  Histogram = std::move(New);
  MinVal = A.Min;
  MaxVal = A.Max;
}

void HistogramObserver::observe(const Tensor &X) {
  assert(X.dtype() == DType::F32 && "observers watch f32 tensors");
  if (!Problem.empty())
    return;
  const float *In = X.data<float>();
  int64_t N = X.numElements();
  int64_t Bins = Spec.Bins;
  MinMax Cur;
  bool SawNaN = false;
  // same_values = min_val.item() == max_val.item()
  bool Fresh = !hasObserved() || MinVal == MaxVal;
  Adjusted A;
  // Usually the batch lies inside the range seen so far; then the histc
  // range is known before reading the data, and one pass both bins it and
  // confirms the guess. (Not when the truncated edges coincide: histc then
  // uses the data's own range.)
  if (!Fresh && adjust(MinVal, MaxVal, A) && pyInt(A.Min) != pyInt(A.Max)) {
    std::vector<float> New =
        countBins(In, N, Bins, histcEdges(pyInt(A.Min), pyInt(A.Max), Cur),
                  &Cur, MinMax{MinVal, MaxVal}, &SawNaN);
    if (Cur.Min > Cur.Max && !SawNaN)
      return; // Empty.
    if (!SawNaN && Cur.Min >= MinVal && Cur.Max <= MaxVal)
      return merge(New, A);
  } else {
    Cur = aminmaxSkippingNaN(In, N, SawNaN);
    if (Cur.Min > Cur.Max && !SawNaN)
      return;
  }
  Problem = histogramProblem(observerKindName(Spec.Kind), Cur, SawNaN,
                             /*Int64Range=*/true);
  if (!Problem.empty())
    return;
  if (Fresh) {
    MinVal = Cur.Min;
    MaxVal = Cur.Max;
    Histogram =
        countBins(In, N, Bins, histcEdges(pyInt(Cur.Min), pyInt(Cur.Max), Cur));
    return;
  }
  if (!adjust(std::min(Cur.Min, MinVal), std::max(Cur.Max, MaxVal), A)) {
    MinVal = Inf; // Start over from this batch instead.
    MaxVal = -Inf;
    return observe(X);
  }
  std::vector<float> New =
      countBins(In, N, Bins, histcEdges(pyInt(A.Min), pyInt(A.Max), Cur));
  merge(New, A);
}

/// _combine_histograms(New, Histogram, upsample_rate, DownsampleRate,
/// StartIdx, bins): the old histogram upsampled, shifted by StartIdx into a
/// zero array of bins * DownsampleRate, integrated in double, sampled every
/// DownsampleRate elements and differenced. The integral is computed per
/// source bin with addRepeatedly, without materializing the array.
void HistogramObserver::combine(std::vector<float> &New, int64_t DownsampleRate,
                                int64_t StartIdx) const {
  int64_t Bins = Spec.Bins, Up = Spec.UpsampleRate;
  // PyTorch raises when the slice does not fit; it is clipped here.
  int64_t End = std::min(StartIdx + Bins * Up, Bins * DownsampleRate);
  auto SampleAt = [&](int64_t J) { return (J + 1) * DownsampleRate - 1; };
  std::vector<double> Integral(Bins, 0.0);
  int64_t J = 0;
  while (J < Bins && SampleAt(J) < StartIdx)
    ++J; // Before the old histogram: 0.
  double Running = 0;
  for (int64_t Src = 0; Src < Bins && J < Bins; ++Src) {
    // Source bin Src occupies positions [Lo, Hi), each adding its value.
    int64_t Lo = StartIdx + Src * Up, Hi = std::min(Lo + Up, End);
    if (Lo >= Hi)
      break;
    double H = Histogram[Src];
    int64_t Done = 0;
    for (; J < Bins && SampleAt(J) < Hi; ++J) {
      int64_t Upto = SampleAt(J) - Lo + 1;
      Running = addRepeatedly(Running, H, Upto - Done);
      Done = Upto;
      Integral[J] = Running;
    }
    Running = addRepeatedly(Running, H, (Hi - Lo) - Done);
  }
  for (; J < Bins; ++J)
    Integral[J] = Running;
  for (J = 0; J < Bins; ++J) {
    // shifted_integral_histogram is a float32 tensor.
    double Shifted = J == 0 ? 0.0 : static_cast<float>(Integral[J - 1]);
    double Interpolated = (Integral[J] - Shifted) / static_cast<double>(Up);
    New[J] = New[J] + static_cast<float>(Interpolated);
  }
}

/// _compute_quantization_error(StartBin, EndBin); \p Norm is scratch space.
double HistogramObserver::quantizationError(int64_t StartBin, int64_t EndBin,
                                            std::vector<float> &Norm) const {
  int64_t Bins = Spec.Bins;
  // Python floats: bin_width = (max_val.item() - min_val.item()) / bins and
  // dst_bin_width = bin_width * (end - start + 1) / dst_nbins.
  constexpr int64_t DstNBins = 256; // 2 ** torch.iinfo(dtype).bits
  double BinWidth =
      (static_cast<double>(MaxVal) - static_cast<double>(MinVal)) / Bins;
  double DstBinWidth = BinWidth * (EndBin - StartBin + 1) / DstNBins;
  if (DstBinWidth == 0.0)
    return 0.0;
  // Python scalars enter float32 tensor ops rounded to float.
  float BW = static_cast<float>(BinWidth);
  float DW = static_cast<float>(DstBinWidth);
  float Half = static_cast<float>(DstBinWidth / 2);
  float NegHalf = static_cast<float>(-DstBinWidth / 2);
  float LastDst = static_cast<float>(DstNBins - 1);
  // _get_norm(tensor(-dst/2), tensor(dst/2), density) without the density.
  float FullBinNorm = (Half * Half * Half - NegHalf * NegHalf * NegHalf) / 3.0f;
  // Below this range every term is finite, so an empty bin adds exactly 0.
  bool SkipEmpty = static_cast<double>(MaxVal) - MinVal < 1e12;
  for (int64_t I = 0; I < Bins; ++I) {
    float Density = Histogram[I] / BW;
    if (Density == 0.0f && SkipEmpty) {
      Norm[I] = 0.0f;
      continue;
    }
    float SrcBegin = static_cast<float>(I - StartBin) * BW;
    float SrcEnd = SrcBegin + BW;
    float DstBegin = std::clamp(floorDiv(SrcBegin, DW), 0.0f, LastDst);
    float DstBeginCenter = (DstBegin + 0.5f) * DW;
    float DstEnd = std::clamp(floorDiv(SrcEnd, DW), 0.0f, LastDst);
    float N = 0.0f + getNorm(SrcBegin - DstBeginCenter, Half, Density);
    N += (DstEnd - DstBegin - 1.0f) * (Density * FullBinNorm);
    float DstEndCenter = DstEnd * DW + Half;
    N += getNorm(NegHalf, SrcEnd - DstEndCenter, Density);
    Norm[I] = N;
  }
  return cascadeSum(Norm.data(), Bins);
}

/// _non_linear_param_search: shrink [start_bin, end_bin] one quantile step
/// at a time while the L2 quantization error decreases.
void HistogramObserver::nonLinearParamSearch(float &NewMin,
                                             float &NewMax) const {
  int64_t Bins = Spec.Bins;
  float BinWidthT = (MaxVal - MinVal) / static_cast<float>(Bins);
  double Total = cascadeSum(Histogram.data(), Bins);
  std::vector<float> CSum(Bins);
  double Acc = 0;
  for (int64_t I = 0; I < Bins; ++I)
    CSum[I] = static_cast<float>(Acc += Histogram[I]);

  const double StepSize = 1e-5;
  double Alpha = 0.0, Beta = 1.0;
  int64_t StartBin = 0, EndBin = Bins - 1;
  double NormMin = std::numeric_limits<double>::infinity();
  std::vector<float> Norm(Bins);
  while (Alpha < Beta) {
    double NextAlpha = Alpha + StepSize;
    double NextBeta = Beta - StepSize;
    // cSum[l] < next_alpha * total compares in float32.
    float AlphaBound = static_cast<float>(NextAlpha * Total);
    float BetaBound = static_cast<float>(NextBeta * Total);
    int64_t L = StartBin, R = EndBin;
    while (L < EndBin && CSum[L] < AlphaBound)
      ++L;
    while (R > StartBin && CSum[R] > BetaBound)
      --R;
    int64_t NextStart = StartBin, NextEnd = EndBin;
    if ((L - StartBin) > (EndBin - R)) {
      NextStart = L;
      Alpha = NextAlpha;
    } else {
      NextEnd = R;
      Beta = NextBeta;
    }
    if (NextStart == StartBin && NextEnd == EndBin)
      continue;
    double N = quantizationError(NextStart, NextEnd, Norm);
    if (N > NormMin)
      break;
    NormMin = N;
    StartBin = NextStart;
    EndBin = NextEnd;
  }
  NewMin = MinVal + BinWidthT * static_cast<float>(StartBin);
  NewMax = MinVal + BinWidthT * static_cast<float>(EndBin + 1);
}

llvm::Expected<QuantParams> HistogramObserver::calculateQParams() const {
  if (!Problem.empty())
    return problemError(Problem);
  if (!hasObserved())
    return notObservedError(Spec);
  if (llvm::Error E = checkRange(MinVal, MaxVal))
    return E;
  float NewMin, NewMax;
  nonLinearParamSearch(NewMin, NewMax);
  float Scale;
  int64_t ZeroPoint;
  qparamsFromRange(NewMin, NewMax, Spec, Scale, ZeroPoint);
  if (llvm::Error E = checkScale(Scale, MinVal, MaxVal))
    return E;
  return QuantParams::perTensor(Scale, ZeroPoint);
}

std::vector<NamedTensor> HistogramObserver::state() const {
  // PyTorch's buffer order.
  return {vectorBuffer("histogram", Histogram), scalarBuffer("min_val", MinVal),
          scalarBuffer("max_val", MaxVal)};
}

llvm::Error HistogramObserver::loadState(const ModuleInfo &M) {
  std::vector<float> Hist;
  float Min, Max;
  if (llvm::Error E = readVectorBuffer(M, "histogram", Spec.Bins, Hist))
    return E;
  if (llvm::Error E = checkCounts("histogram", Hist, /*AllowNegative=*/true))
    return E;
  if (llvm::Error E = readScalarBuffer(M, "min_val", Min))
    return E;
  if (llvm::Error E = readScalarBuffer(M, "max_val", Max))
    return E;
  Histogram = std::move(Hist);
  MinVal = Min;
  MaxVal = Max;
  return llvm::Error::success();
}
