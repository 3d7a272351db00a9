//===- VnniPeak.cpp - Measured int8 VNNI peak of this machine -------------===//
//
// Built with -mavx512f -mavx512vnni (only this file), so the rest of the tool
// runs anywhere; vnniPeakGops() checks the CPU before using the instruction.
//
//===----------------------------------------------------------------------===//

#include <immintrin.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

namespace {

// vpdpbusd has a latency of ~5 cycles and up to 2 ports: 16 independent
// accumulators keep both ports busy with room to spare.
constexpr int NumAcc = 16;
// Each vpdpbusd: 16 lanes x 4 u8*s8 products, 2 ops (mul + add) each.
constexpr double OpsPerInstr = 16 * 4 * 2;

/// Runs \p Iters x NumAcc vpdpbusd; returns a value derived from the
/// accumulators so the loop cannot be removed.
__attribute__((noinline)) int32_t vnniLoop(int64_t Iters) {
  // Bytes 1 (u8) times bytes -1 (s8); set1_epi32 avoids GCC 12 warnings.
  __m512i A = _mm512_set1_epi32(0x01010101), B = _mm512_set1_epi32(-1);
  __m512i Acc[NumAcc];
  for (int I = 0; I < NumAcc; ++I)
    Acc[I] = _mm512_set1_epi32(I);
  for (int64_t It = 0; It < Iters; ++It) {
#pragma GCC unroll 16
    for (int I = 0; I < NumAcc; ++I)
      Acc[I] = _mm512_dpbusd_epi32(Acc[I], A, B);
    // Keeps the compiler from folding the loop into a multiply.
    __asm__ volatile("" : "+v"(A));
  }
  __m512i Sum = Acc[0];
  for (int I = 1; I < NumAcc; ++I)
    Sum = _mm512_add_epi32(Sum, Acc[I]);
  alignas(64) int32_t Lanes[16];
  _mm512_store_si512(Lanes, Sum);
  // The accumulators wrap (vpdpbusd is modular): sum them the same way,
  // since a signed overflow would be undefined behaviour.
  uint32_t R = 0;
  for (int32_t L : Lanes)
    R += static_cast<uint32_t>(L);
  return static_cast<int32_t>(R);
}

} // namespace

/// Per-thread VNNI GOPS with \p Threads threads running the loop at once
/// (the mean over threads), or 0 when the CPU has no AVX512-VNNI.
double vnniPeakGops(int Threads, double Seconds) {
  if (!__builtin_cpu_supports("avx512vnni"))
    return 0.0;
  // Calibrate the iteration count on one short run.
  int64_t Iters = 1 << 16;
  using Clock = std::chrono::steady_clock;
  for (;;) {
    auto T0 = Clock::now();
    vnniLoop(Iters);
    double S = std::chrono::duration<double>(Clock::now() - T0).count();
    if (S > 0.02) {
      Iters = static_cast<int64_t>(Iters * Seconds / S) + 1;
      break;
    }
    Iters *= 4;
  }
  std::vector<double> Gops(Threads);
  std::atomic<int32_t> Sink{0};
  std::vector<std::thread> Pool;
  for (int T = 0; T < Threads; ++T)
    Pool.emplace_back([&, T] {
      auto T0 = Clock::now();
      Sink += vnniLoop(Iters);
      double S = std::chrono::duration<double>(Clock::now() - T0).count();
      Gops[T] = Iters * NumAcc * OpsPerInstr / S / 1e9;
    });
  for (auto &Th : Pool)
    Th.join();
  double Sum = 0;
  for (double G : Gops)
    Sum += G;
  return Sum / Threads + 0 * Sink.load();
}
