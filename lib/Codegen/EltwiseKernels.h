//===- EltwiseKernels.h - Host loops for int8 activations, muls -*- C++ -*-===//
//
// What oneDNN 2.6 cannot do on int8 data with different input and output
// scales: a unary op as a 256-entry table, and a two-tensor mul (same shape,
// or a per-channel gate as in squeeze-excitation). Both work on the bytes in
// whatever layout they are in, and compute exactly what the reference
// kernels compute.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_LIB_CODEGEN_ELTWISEKERNELS_H
#define QFX_LIB_CODEGEN_ELTWISEKERNELS_H

#include "qfx/Support/Tensor.h"

#include <array>
#include <cstddef>
#include <cstdint>

namespace qfx {
namespace codegen {

/// Out[i] = Table[byte of In[i]], for u8 or s8 data.
void lookupInt8(const std::array<uint8_t, 256> &Table, const void *In,
                void *Out, size_t N);

/// Out[i] = min(max(x + 3, 0), 6) / 6, PyTorch's float hardsigmoid.
void hardsigmoidF32(const float *In, float *Out, size_t N);

/// The int8 operands of a quantized_mul with PyTorch's arithmetic: the
/// product of the zero-point-centred integers times
/// float(sa) * float(sb) * (1 / float(so)), rounded half to even, plus the
/// output zero point, saturated to \p Dt.
struct MulInt8 {
  DType Dt = DType::U8;
  int32_t ZeroA = 0, ZeroB = 0, ZeroOut = 0;
  float Multiplier = 1.0f;
};

/// Same-shape mul of \p N elements.
void mulInt8(const MulInt8 &M, const void *A, const void *B, void *Out,
             size_t N);

/// X [N, C, H, W] times Gate [N or 1, C, 1, 1]: \p ChannelsLast says X's
/// bytes are NHWC; \p GateBatch says the gate has a row per sample.
void mulInt8Channel(const MulInt8 &M, const void *X, const void *Gate,
                    void *Out, int64_t N, int64_t C, int64_t HW,
                    bool ChannelsLast, bool GateBatch);

} // namespace codegen
} // namespace qfx

#endif // QFX_LIB_CODEGEN_ELTWISEKERNELS_H
