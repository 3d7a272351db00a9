//===- EltwiseKernels.cpp - Host loops for int8 activations and muls ------===//

#include "EltwiseKernels.h"

#include "HostKernels.h"
#include "qfx/Backend/OneDNN/CpuIsa.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cassert>
#include <type_traits>
#include <vector>

using namespace qfx;
using namespace qfx::codegen;

namespace {

/// Below this many elements a parallel region costs more than it saves.
constexpr size_t ParallelGrain = 1 << 15;

/// One output of quantized_mul from the product \p P of the centred
/// integers. The operands are integers below 256 in magnitude, so P is exact
/// in float and float arithmetic (which vectorizes well, unlike 32-bit
/// integer products on SSE2) gives the reference's result bit for bit.
template <typename T>
inline T requant(float P, float Multiplier, float Lo, float Hi, float Z) {
  float V = P * Multiplier;
  V = std::min(std::max(V, Lo - 1.0f), Hi + 1.0f);
  V = std::min(std::max(roundHalfEven(V), Lo), Hi) + Z;
  return static_cast<T>(static_cast<int32_t>(V));
}

template <typename T> struct Bounds {
  float Lo, Hi;
  explicit Bounds(const MulInt8 &M)
      : Lo(static_cast<float>((std::is_signed<T>::value ? -128 : 0) -
                              M.ZeroOut)),
        Hi(static_cast<float>((std::is_signed<T>::value ? 127 : 255) -
                              M.ZeroOut)) {}
};

/// Out = requant((A - ZA) * B) over a row, B already centred (float).
template <typename T, typename TB>
inline void mulRow(const T *A, float ZA, const TB *B, float ZB, T *Out,
                   int64_t Len, float Mul, float Lo, float Hi, float ZO) {
  for (int64_t I = 0; I < Len; ++I)
    Out[I] = requant<T>((static_cast<float>(A[I]) - ZA) *
                            (static_cast<float>(B[I]) - ZB),
                        Mul, Lo, Hi, ZO);
}

template <typename T>
void mulT(const MulInt8 &M, const T *A, const T *B, T *Out, size_t N) {
  const Bounds<T> Bd(M);
  const float ZA = static_cast<float>(M.ZeroA),
              ZB = static_cast<float>(M.ZeroB),
              ZO = static_cast<float>(M.ZeroOut);
  const int64_t Block = 4096,
                Blocks = (static_cast<int64_t>(N) + Block - 1) / Block;
#pragma omp parallel for schedule(static) if (N > ParallelGrain)
  for (int64_t K = 0; K < Blocks; ++K) {
    int64_t Begin = K * Block,
            Len = std::min<int64_t>(Block, static_cast<int64_t>(N) - Begin);
    mulRow(A + Begin, ZA, B + Begin, ZB, Out + Begin, Len, M.Multiplier, Bd.Lo,
           Bd.Hi, ZO);
  }
}

template <typename T>
void mulChannelT(const MulInt8 &M, const T *X, const T *Gate, T *Out, int64_t N,
                 int64_t C, int64_t HW, bool ChannelsLast, bool GateBatch) {
  const Bounds<T> Bd(M);
  const float ZX = static_cast<float>(M.ZeroA),
              ZO = static_cast<float>(M.ZeroOut);
  const float Mul = M.Multiplier;
  std::vector<float> G(static_cast<size_t>((GateBatch ? N : 1) * C));
  for (size_t I = 0; I < G.size(); ++I)
    G[I] = static_cast<float>(static_cast<int32_t>(Gate[I]) - M.ZeroB);
  const bool Parallel = static_cast<size_t>(N * C * HW) > ParallelGrain;
  if (ChannelsLast) {
#pragma omp parallel for collapse(2) schedule(static) if (Parallel)
    for (int64_t Nn = 0; Nn < N; ++Nn)
      for (int64_t P = 0; P < HW; ++P) {
        const float *Gn = G.data() + (GateBatch ? Nn * C : 0);
        int64_t Off = (Nn * HW + P) * C;
        mulRow(X + Off, ZX, Gn, 0.0f, Out + Off, C, Mul, Bd.Lo, Bd.Hi, ZO);
      }
    return;
  }
#pragma omp parallel for collapse(2) schedule(static) if (Parallel)
  for (int64_t Nn = 0; Nn < N; ++Nn)
    for (int64_t Ci = 0; Ci < C; ++Ci) {
      const float Gc = G[(GateBatch ? Nn * C : 0) + Ci];
      const T *Xp = X + (Nn * C + Ci) * HW;
      T *Op = Out + (Nn * C + Ci) * HW;
      for (int64_t P = 0; P < HW; ++P)
        Op[P] = requant<T>((static_cast<float>(Xp[P]) - ZX) * Gc, Mul, Bd.Lo,
                           Bd.Hi, ZO);
    }
}

} // namespace

#if defined(__x86_64__) && defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
/// 64 lookups a step: two 128-entry byte permutes (AVX-512 VBMI), the
/// index's top bit choosing between them.
__attribute__((target("avx512f,avx512bw,avx512vbmi"))) static void
lookupVbmi(const uint8_t *T, const uint8_t *X, uint8_t *Y, size_t N) {
  const __m512i T0 = _mm512_loadu_si512(T), T1 = _mm512_loadu_si512(T + 64);
  const __m512i T2 = _mm512_loadu_si512(T + 128),
                T3 = _mm512_loadu_si512(T + 192);
  for (size_t I = 0; I < N; I += 64) {
    __mmask64 K = N - I >= 64 ? ~__mmask64(0) : (__mmask64(1) << (N - I)) - 1;
    __m512i Idx = _mm512_maskz_loadu_epi8(K, X + I);
    __m512i Lo = _mm512_permutex2var_epi8(T0, Idx, T1);
    __m512i Hi = _mm512_permutex2var_epi8(T2, Idx, T3);
    __m512i R = _mm512_mask_blend_epi8(_mm512_movepi8_mask(Idx), Lo, Hi);
    _mm512_mask_storeu_epi8(Y + I, K, R);
  }
}
#pragma GCC diagnostic pop
#endif

void codegen::lookupInt8(const std::array<uint8_t, 256> &Table, const void *In,
                         void *Out, size_t N) {
  const uint8_t *X = static_cast<const uint8_t *>(In);
  uint8_t *Y = static_cast<uint8_t *>(Out);
  const uint8_t *T = Table.data();
#if defined(__x86_64__) && defined(__GNUC__)
  // Tables after every int8 matmul of a transformer's MLP: the scalar loop
  // cost a byte per nanosecond.
  static const bool CpuHasVbmi = __builtin_cpu_supports("avx512vbmi") &&
                                 __builtin_cpu_supports("avx512bw");
  if (CpuHasVbmi && hostMayUseAvx512()) {
    size_t Chunks = (N + ParallelGrain - 1) / ParallelGrain;
#pragma omp parallel for schedule(static) if (Chunks > 1)
    for (size_t C = 0; C < Chunks; ++C) {
      size_t Begin = C * ParallelGrain;
      lookupVbmi(T, X + Begin, Y + Begin, std::min(N - Begin, ParallelGrain));
    }
    return;
  }
#endif
#pragma omp parallel for schedule(static) if (N > ParallelGrain)
  for (size_t I = 0; I < N; ++I)
    Y[I] = T[X[I]];
}

void codegen::hardsigmoidF32(const float *In, float *Out, size_t N) {
#pragma omp parallel for schedule(static) if (N > ParallelGrain)
  for (size_t I = 0; I < N; ++I)
    Out[I] = std::min(std::max(In[I] + 3.0f, 0.0f), 6.0f) / 6.0f;
}

void codegen::mulInt8(const MulInt8 &M, const void *A, const void *B, void *Out,
                      size_t N) {
  if (M.Dt == DType::U8)
    mulT(M, static_cast<const uint8_t *>(A), static_cast<const uint8_t *>(B),
         static_cast<uint8_t *>(Out), N);
  else
    mulT(M, static_cast<const int8_t *>(A), static_cast<const int8_t *>(B),
         static_cast<int8_t *>(Out), N);
}

void codegen::mulInt8Channel(const MulInt8 &M, const void *X, const void *Gate,
                             void *Out, int64_t N, int64_t C, int64_t HW,
                             bool ChannelsLast, bool GateBatch) {
  if (M.Dt == DType::U8)
    mulChannelT(M, static_cast<const uint8_t *>(X),
                static_cast<const uint8_t *>(Gate), static_cast<uint8_t *>(Out),
                N, C, HW, ChannelsLast, GateBatch);
  else
    mulChannelT(M, static_cast<const int8_t *>(X),
                static_cast<const int8_t *>(Gate), static_cast<int8_t *>(Out),
                N, C, HW, ChannelsLast, GateBatch);
}
