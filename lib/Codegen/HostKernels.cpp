//===- HostKernels.cpp - Int8 element-wise kernels, dynamic quantization --===//

#include "HostKernels.h"

#include "qfx/Backend/OneDNN/CpuIsa.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <limits>
#include <tuple>
#include <type_traits>
#include <vector>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

using namespace qfx;
using namespace qfx::codegen;

namespace {

/// Below this many elements a parallel region costs more than it saves.
constexpr size_t ParallelGrain = 1 << 15;

/// Whether the AVX-512 (BW, VL) loops below run: the CPU has them and the
/// instruction-set cap admits them.
bool hasAvx512() { return hostMayUseAvx512(); }

template <typename T>
void clampT(const T *In, T *Out, size_t N, int Lo, int Hi) {
  T L = static_cast<T>(Lo), H = static_cast<T>(Hi);
#pragma omp parallel for schedule(static) if (N > ParallelGrain)
  for (size_t I = 0; I < N; ++I)
    Out[I] = std::min(std::max(In[I], L), H);
}

/// PyTorch's vectorized dequantize, fma(scale, q, scale * -zp) with one
/// rounding: the product of a float and an 8-bit integer is exact in
/// double, and so is its sum with the premultiplied zero point whenever
/// the two are of similar magnitude, as they are here.
struct FmaDequant {
  FmaDequant(float Scale, int32_t ZeroPoint)
      : Scale(Scale), Premul(Scale * -static_cast<float>(ZeroPoint)) {}
  float operator()(int V) const {
    return static_cast<float>(static_cast<double>(Scale) * V +
                              static_cast<double>(Premul));
  }
  float Scale, Premul;
};

/// Whether a float fma reproduces \p D for every 8-bit value of \p T: then
/// the vector loop's fma(scale, q, premul) is the reference's dequantize.
template <typename T> bool fmaIsExact(const FmaDequant &D) {
  for (int V = std::numeric_limits<T>::min();
       V <= std::numeric_limits<T>::max(); ++V)
    if (std::fma(D.Scale, static_cast<float>(V), D.Premul) != D(V))
      return false;
  return true;
}

#if defined(__x86_64__) && defined(__GNUC__)
#define QFX_HAVE_AVX512 1
// GCC 12's AVX-512 conversion intrinsics start from _mm512_undefined_*,
// which -Wmaybe-uninitialized reports once per use.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

template <typename T>
__attribute__((target("avx512f,avx512bw,avx512vl"))) __m512
loadDequant(const T *P, __mmask16 M, __m512 Scale, __m512 Premul) {
  __m128i B = _mm_maskz_loadu_epi8(M, P);
  __m512i I = std::is_signed<T>::value ? _mm512_cvtepi8_epi32(B)
                                       : _mm512_cvtepu8_epi32(B);
  return _mm512_fmadd_ps(Scale, _mm512_cvtepi32_ps(I), Premul);
}

/// 16 elements a step, the same float operations as addT's scalar loop in
/// the same order (round to nearest even is the default rounding mode).
template <typename TA, typename TB, typename TO>
__attribute__((target("avx512f,avx512bw,avx512vl"))) void
addAvx512(const TA *X, const TB *Y, TO *Out, const FmaDequant &DA,
          const FmaDequant &DB, float Inv, float L, float H, int32_t ZeroPoint,
          size_t N) {
  const __m512 SA = _mm512_set1_ps(DA.Scale), PA = _mm512_set1_ps(DA.Premul);
  const __m512 SB = _mm512_set1_ps(DB.Scale), PB = _mm512_set1_ps(DB.Premul);
  const __m512 VInv = _mm512_set1_ps(Inv), VL = _mm512_set1_ps(L),
               VH = _mm512_set1_ps(H);
  const __m512i Zp = _mm512_set1_epi32(ZeroPoint);
  for (size_t I = 0; I < N; I += 16) {
    __mmask16 M =
        N - I >= 16 ? __mmask16(0xffff) : __mmask16((1u << (N - I)) - 1);
    __m512 V = _mm512_mul_ps(_mm512_add_ps(loadDequant(X + I, M, SA, PA),
                                           loadDequant(Y + I, M, SB, PB)),
                             VInv);
    V = _mm512_roundscale_ps(V, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    V = _mm512_min_ps(_mm512_max_ps(V, VL), VH);
    __m512i R = _mm512_add_epi32(_mm512_cvtps_epi32(V), Zp);
    // R is within the output type's range: the narrowing cannot saturate.
    _mm_mask_storeu_epi8(Out + I, M, _mm512_cvtepi32_epi8(R));
  }
}
#pragma GCC diagnostic pop
#endif

template <typename TA, typename TB, typename TO>
void addT(const Int8Operand &A, const Int8Operand &B, TO *Out, float Scale,
          int32_t ZeroPoint, int Lo, int Hi, size_t N) {
  const TA *X = static_cast<const TA *>(A.Data);
  const TB *Y = static_cast<const TB *>(B.Data);
  const FmaDequant DA(A.Scale, A.ZeroPoint), DB(B.Scale, B.ZeroPoint);
  const float Inv = 1.0f / Scale;
  const float L = static_cast<float>(Lo - ZeroPoint);
  const float H = static_cast<float>(Hi - ZeroPoint);
#ifdef QFX_HAVE_AVX512
  // Residual adds of transformers run once per block on every token: the
  // scalar loop cost as much as the block's matmuls.
  if (hasAvx512() && fmaIsExact<TA>(DA) && fmaIsExact<TB>(DB)) {
    size_t Chunks = (N + ParallelGrain - 1) / ParallelGrain;
#pragma omp parallel for schedule(static) if (Chunks > 1)
    for (size_t C = 0; C < Chunks; ++C) {
      size_t Begin = C * ParallelGrain;
      addAvx512(X + Begin, Y + Begin, Out + Begin, DA, DB, Inv, L, H, ZeroPoint,
                std::min(N - Begin, ParallelGrain));
    }
    return;
  }
#endif
  // The reference's formulas: dequantize both, add, quantize_val.
#pragma omp parallel for schedule(static) if (N > ParallelGrain)
  for (size_t I = 0; I < N; ++I) {
    float V = (DA(X[I]) + DB(Y[I])) * Inv;
    V = std::min(std::max(V, L - 1.0f), H + 1.0f);
    V = std::min(std::max(roundHalfEven(V), L), H);
    Out[I] = static_cast<TO>(static_cast<int>(V) + ZeroPoint);
  }
}

template <typename TA, typename TB>
void addDispatchOut(const Int8Operand &A, const Int8Operand &B, void *Out,
                    DType Dt, float Scale, int32_t Zp, int Lo, int Hi,
                    size_t N) {
  if (Dt == DType::U8)
    addT<TA, TB>(A, B, static_cast<uint8_t *>(Out), Scale, Zp, Lo, Hi, N);
  else
    addT<TA, TB>(A, B, static_cast<int8_t *>(Out), Scale, Zp, Lo, Hi, N);
}

template <typename TA>
void addDispatchB(const Int8Operand &A, const Int8Operand &B, void *Out,
                  DType Dt, float Scale, int32_t Zp, int Lo, int Hi, size_t N) {
  if (B.Dt == DType::U8)
    addDispatchOut<TA, uint8_t>(A, B, Out, Dt, Scale, Zp, Lo, Hi, N);
  else
    addDispatchOut<TA, int8_t>(A, B, Out, Dt, Scale, Zp, Lo, Hi, N);
}

//===----------------------------------------------------------------------===//
// Layer norm
//===----------------------------------------------------------------------===//

/// One row's statistics and affine output, the reference's order of
/// operations; \p X holds the dequantized row.
template <typename TO>
void layerNormRowScalar(const LayerNormInt8 &P, const float *X, TO *Out,
                        size_t M) {
  double Sum = 0.0, Sq = 0.0;
  for (size_t I = 0; I < M; ++I)
    Sum += X[I];
  double Mu = Sum / double(M);
  for (size_t I = 0; I < M; ++I)
    Sq += (X[I] - Mu) * (X[I] - Mu);
  double RS = 1.0 / std::sqrt(Sq / double(M) + P.Eps);
  const float Inv = 1.0f / P.OutScale;
  const float Lo = std::numeric_limits<TO>::min();
  const float Hi = std::numeric_limits<TO>::max();
  for (size_t I = 0; I < M; ++I) {
    double V = (X[I] - Mu) * RS;
    if (P.W)
      V *= P.W[I];
    if (P.B)
      V += P.B[I];
    float R = static_cast<float>(P.OutZeroPoint) +
              std::nearbyint(static_cast<float>(V) * Inv);
    Out[I] = static_cast<TO>(std::min(std::max(R, Lo), Hi));
  }
}

#ifdef QFX_HAVE_AVX512
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

/// Lanes [0, N) of 16, the rest 0.
inline __mmask16 firstLanes(size_t N) {
  return N >= 16 ? __mmask16(0xffff) : __mmask16((1u << N) - 1);
}

/// Lanes \p K of \p V (in output steps) as quantize_val stores them:
/// rounded half to even, the zero point added, clamped to TO's range.
template <typename TO>
__attribute__((target("avx512f,avx512vl,avx512bw"))) inline void
storeQuantized(TO *Out, __mmask16 K, __m512 V, __m512 Zp) {
  const __m512 Lo = _mm512_set1_ps(std::numeric_limits<TO>::min());
  const __m512 Hi = _mm512_set1_ps(std::numeric_limits<TO>::max());
  V = _mm512_roundscale_ps(V, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  V = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(V, Zp), Lo), Hi);
  _mm_mask_storeu_epi8(Out, K, _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(V)));
}

/// One row from the int8 input: the reference's dequantize, affine and
/// quantize_val, 16 floats a step. The statistics come from the codes'
/// exact integer sums (sum q, sum q^2) instead of a double sum of the
/// dequantized floats: the mean and variance agree to double rounding, so
/// the result moves only where it lies within float rounding of a tie.
template <typename TI, typename TO>
__attribute__((target("avx512f,avx512vl,avx512bw"))) void
layerNormRowAvx512(const TI *In, TO *Out, size_t M, float InScale, float InZp,
                   const float *W, const float *B, double Eps, float Inv,
                   float OutZp) {
  __m512i Sum = _mm512_setzero_si512(), Sq = _mm512_setzero_si512();
  const __m512i Ones = _mm512_set1_epi16(1);
  for (size_t I = 0; I < M; I += 32) {
    __mmask32 K = M - I >= 32 ? ~__mmask32(0) : (__mmask32(1) << (M - I)) - 1;
    __m256i Q = _mm256_maskz_loadu_epi8(K, In + I);
    __m512i Q16 = std::is_signed<TI>::value ? _mm512_cvtepi8_epi16(Q)
                                            : _mm512_cvtepu8_epi16(Q);
    Sum = _mm512_add_epi32(Sum, _mm512_madd_epi16(Q16, Ones));
    Sq = _mm512_add_epi32(Sq, _mm512_madd_epi16(Q16, Q16));
  }
  double MuQ = double(_mm512_reduce_add_epi32(Sum)) / double(M);
  double VarQ = double(_mm512_reduce_add_epi32(Sq)) / double(M) - MuQ * MuQ;
  double Mu = (MuQ - double(InZp)) * double(InScale);
  double Var = std::max(VarQ, 0.0) * double(InScale) * double(InScale);
  const __m512 VMu = _mm512_set1_ps(static_cast<float>(Mu));
  const __m512 RS =
      _mm512_set1_ps(static_cast<float>(1.0 / std::sqrt(Var + Eps)));
  const __m512 S = _mm512_set1_ps(InScale), Z = _mm512_set1_ps(InZp);
  const __m512 VInv = _mm512_set1_ps(Inv), VZp = _mm512_set1_ps(OutZp);
  for (size_t I = 0; I < M; I += 16) {
    __mmask16 K = firstLanes(M - I);
    __m128i Q = _mm_maskz_loadu_epi8(K, In + I);
    __m512i QI = std::is_signed<TI>::value ? _mm512_cvtepi8_epi32(Q)
                                           : _mm512_cvtepu8_epi32(Q);
    __m512 X = _mm512_mul_ps(_mm512_sub_ps(_mm512_cvtepi32_ps(QI), Z), S);
    __m512 V = _mm512_mul_ps(_mm512_sub_ps(X, VMu), RS);
    if (W)
      V = _mm512_mul_ps(V, _mm512_maskz_loadu_ps(K, W + I));
    if (B)
      V = _mm512_add_ps(V, _mm512_maskz_loadu_ps(K, B + I));
    storeQuantized(Out + I, K, _mm512_mul_ps(V, VInv), VZp);
  }
}

#pragma GCC diagnostic pop
#endif

template <typename TI, typename TO>
void layerNormT(const LayerNormInt8 &P, const TI *In, TO *Out, size_t Rows,
                size_t M) {
  // The reference's per-tensor dequantize: (float(q) - zp) * scale.
  const float Z = static_cast<float>(P.InZeroPoint), S = P.InScale;
  const bool Avx512 = hasAvx512();
#pragma omp parallel if (Rows * M > ParallelGrain)
  {
    // The dequantized row, for the scalar loop only.
    std::vector<float> X(Avx512 ? 0 : M);
#pragma omp for schedule(static)
    for (size_t R = 0; R < Rows; ++R) {
#ifdef QFX_HAVE_AVX512
      if (Avx512) {
        layerNormRowAvx512(In + R * M, Out + R * M, M, S, Z, P.W, P.B, P.Eps,
                           1.0f / P.OutScale,
                           static_cast<float>(P.OutZeroPoint));
        continue;
      }
#endif
      for (size_t I = 0; I < M; ++I)
        X[I] = (static_cast<float>(In[R * M + I]) - Z) * S;
      layerNormRowScalar(P, X.data(), Out + R * M, M);
    }
  }
}

template <typename TI>
void layerNormOut(const LayerNormInt8 &P, const TI *In, void *Out, size_t Rows,
                  size_t M) {
  if (P.OutDt == DType::U8)
    layerNormT(P, In, static_cast<uint8_t *>(Out), Rows, M);
  else
    layerNormT(P, In, static_cast<int8_t *>(Out), Rows, M);
}

//===----------------------------------------------------------------------===//
// Softmax
//===----------------------------------------------------------------------===//

/// One row: the reference's exp(x - max) / sum, quantize_val.
template <typename TI, typename TO>
void softmaxRowScalar(const SoftmaxInt8 &P, const TI *In, TO *Out, size_t Len) {
  // Codes, or float integers (exact in an int).
  auto Code = [In](size_t I) { return static_cast<int>(In[I]); };
  int Max = static_cast<int>(*std::max_element(In, In + Len));
  float Sum = 0.0f;
  for (size_t I = 0; I < Len; ++I)
    Sum += P.Exp[Max - Code(I)];
  const float Inv = 1.0f / P.OutScale;
  const float Lo = std::numeric_limits<TO>::min();
  const float Hi = std::numeric_limits<TO>::max();
  for (size_t I = 0; I < Len; ++I) {
    float R = static_cast<float>(P.OutZeroPoint) +
              std::nearbyint(P.Exp[Max - Code(I)] / Sum * Inv);
    Out[I] = static_cast<TO>(std::min(std::max(R, Lo), Hi));
  }
}

#ifdef QFX_HAVE_AVX512
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
/// Lanes \p K of 16 int8 codes, widened; or of 16 float integers.
template <typename TI>
__attribute__((target("avx512f,avx512vl,avx512bw"))) inline __m512i
loadCodes(const TI *X, __mmask16 K) {
  if constexpr (std::is_same<TI, float>::value) {
    return _mm512_cvtps_epi32(_mm512_maskz_loadu_ps(K, X));
  } else {
    __m128i B = _mm_maskz_loadu_epi8(K, X);
    return std::is_signed<TI>::value ? _mm512_cvtepi8_epi32(B)
                                     : _mm512_cvtepu8_epi32(B);
  }
}

/// Rows of at most 32: two vectors of 16, the exponentials gathered from
/// the table.
template <typename TI, typename TO>
__attribute__((target("avx512f,avx512vl,avx512bw"))) void
softmaxRowsAvx512(const SoftmaxInt8 &P, const TI *In, TO *Out, size_t Rows,
                  size_t Len) {
  const __mmask16 K0 = firstLanes(Len);
  const __mmask16 K1 = Len > 16 ? firstLanes(Len - 16) : __mmask16(0);
  const __m512 Inv = _mm512_set1_ps(1.0f / P.OutScale);
  const __m512 Zp = _mm512_set1_ps(static_cast<float>(P.OutZeroPoint));
  for (size_t R = 0; R < Rows; ++R) {
    const TI *X = In + R * Len;
    TO *Y = Out + R * Len;
    __m512i Q0 = loadCodes(X, K0), Q1 = loadCodes(X + 16, K1);
    const __m512i Floor = _mm512_set1_epi32(-1000);
    int Max = _mm512_reduce_max_epi32(
        _mm512_max_epi32(_mm512_mask_blend_epi32(K0, Floor, Q0),
                         _mm512_mask_blend_epi32(K1, Floor, Q1)));
    __m512i M = _mm512_set1_epi32(Max);
    __m512 E0 = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), K0,
                                         _mm512_sub_epi32(M, Q0), P.Exp, 4);
    __m512 E1 = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), K1,
                                         _mm512_sub_epi32(M, Q1), P.Exp, 4);
    __m512 Sum = _mm512_set1_ps(_mm512_reduce_add_ps(_mm512_add_ps(E0, E1)));
    for (auto [E, K, Off] : {std::make_tuple(E0, K0, size_t(0)),
                             std::make_tuple(E1, K1, size_t(16))}) {
      if (!K)
        continue;
      storeQuantized(Y + Off, K, _mm512_mul_ps(_mm512_div_ps(E, Sum), Inv), Zp);
    }
  }
}
#pragma GCC diagnostic pop
#endif

template <typename TI, typename TO>
void softmaxT(const SoftmaxInt8 &P, const TI *In, TO *Out, size_t Rows,
              size_t Len) {
#ifdef QFX_HAVE_AVX512
  if (hasAvx512() && Len <= 32) {
    size_t Chunk = std::max<size_t>(1, ParallelGrain / Len);
    size_t Chunks = (Rows + Chunk - 1) / Chunk;
#pragma omp parallel for schedule(static) if (Chunks > 1)
    for (size_t C = 0; C < Chunks; ++C) {
      size_t Begin = C * Chunk;
      softmaxRowsAvx512(P, In + Begin * Len, Out + Begin * Len,
                        std::min(Chunk, Rows - Begin), Len);
    }
    return;
  }
#endif
#pragma omp parallel for schedule(static) if (Rows * Len > ParallelGrain)
  for (size_t R = 0; R < Rows; ++R)
    softmaxRowScalar(P, In + R * Len, Out + R * Len, Len);
}

template <typename TI>
void softmaxOut(const SoftmaxInt8 &P, const TI *In, void *Out, size_t Rows,
                size_t Len) {
  if (P.OutDt == DType::U8)
    softmaxT(P, In, static_cast<uint8_t *>(Out), Rows, Len);
  else
    softmaxT(P, In, static_cast<int8_t *>(Out), Rows, Len);
}

} // namespace

void codegen::softmaxInt8(const SoftmaxInt8 &P, const void *In, void *Out,
                          size_t Rows, size_t Len) {
  if (P.InDt == DType::U8)
    softmaxOut(P, static_cast<const uint8_t *>(In), Out, Rows, Len);
  else if (P.InDt == DType::S8)
    softmaxOut(P, static_cast<const int8_t *>(In), Out, Rows, Len);
  else
    softmaxOut(P, static_cast<const float *>(In), Out, Rows, Len);
}

namespace {} // namespace

void codegen::layerNormInt8(const LayerNormInt8 &P, const void *In, void *Out,
                            size_t Rows, size_t M) {
  if (P.InDt == DType::U8)
    layerNormOut(P, static_cast<const uint8_t *>(In), Out, Rows, M);
  else
    layerNormOut(P, static_cast<const int8_t *>(In), Out, Rows, M);
}

void codegen::clampInt8(DType Dt, const void *In, void *Out, size_t N, int Lo,
                        int Hi) {
  assert((Dt == DType::U8 || Dt == DType::S8) && "int8 clamp on other data");
  if (Dt == DType::U8)
    clampT(static_cast<const uint8_t *>(In), static_cast<uint8_t *>(Out), N, Lo,
           Hi);
  else
    clampT(static_cast<const int8_t *>(In), static_cast<int8_t *>(Out), N, Lo,
           Hi);
}

void codegen::addInt8(const Int8Operand &A, const Int8Operand &B, void *Out,
                      DType Dt, float Scale, int32_t ZeroPoint, int Lo, int Hi,
                      size_t N) {
  if (A.Dt == DType::U8)
    addDispatchB<uint8_t>(A, B, Out, Dt, Scale, ZeroPoint, Lo, Hi, N);
  else
    addDispatchB<int8_t>(A, B, Out, Dt, Scale, ZeroPoint, Lo, Hi, N);
}

void codegen::chooseDynamicQParams(float Min, float Max, int QMin, int QMax,
                                   double &Scale, int32_t &ZeroPoint) {
  Min = std::min(Min, 0.0f);
  Max = std::max(Max, 0.0f);
  double S = (static_cast<double>(Max) - Min) / (QMax - QMin);
  if (static_cast<float>(S) == 0.0f || std::isinf(1.0f / static_cast<float>(S)))
    S = 0.1;
  // Tiny scales are raised to 6.1e-5, stretching the range to match.
  constexpr float SmallScale = 6.1e-5f;
  if (S < SmallScale) {
    float Orig = static_cast<float>(S);
    S = SmallScale;
    if (Min == 0.0f) {
      Max = SmallScale * (QMax - QMin);
    } else if (Max == 0.0f) {
      Min = -SmallScale * (QMax - QMin);
    } else {
      Min *= SmallScale / Orig;
      Max *= SmallScale / Orig;
    }
  }
  // Of the zero points implied by either end of the range, the one from
  // the end whose terms are smaller.
  double FromMin = QMin - Min / S, FromMax = QMax - Max / S;
  double ErrMin = std::abs(QMin) - std::abs(Min / S);
  double ErrMax = std::abs(QMax) - std::abs(Max / S);
  double Initial = ErrMin < ErrMax ? FromMin : FromMax;
  Scale = S;
  if (Initial < QMin)
    ZeroPoint = QMin;
  else if (Initial > QMax)
    ZeroPoint = QMax;
  else
    ZeroPoint = static_cast<int32_t>(std::nearbyint(Initial));
}

void codegen::quantizeDynamic(const float *X, size_t N, int QMin, int QMax,
                              uint8_t *Out, float &Scale, int32_t &ZeroPoint) {
  float Min = 0.0f, Max = 0.0f;
  if (N > 0) {
    Min = *std::min_element(X, X + N);
    Max = *std::max_element(X, X + N);
  }
  double S;
  chooseDynamicQParams(Min, Max, QMin, QMax, S, ZeroPoint);
  Scale = static_cast<float>(S);
  // As oneDNN's reorder quantizes: the zero point joins before rounding.
  const float Inv = static_cast<float>(1.0 / S);
  const float Z = static_cast<float>(ZeroPoint);
  const float L = static_cast<float>(QMin), H = static_cast<float>(QMax);
#pragma omp parallel for schedule(static) if (N > ParallelGrain)
  for (size_t I = 0; I < N; ++I) {
    // NaN fails every comparison and so lands on L - 1, then QMin.
    float V = std::min(std::max(L - 1.0f, X[I] * Inv + Z), H + 1.0f);
    Out[I] = static_cast<uint8_t>(std::min(std::max(roundHalfEven(V), L), H));
  }
}
