//===- HostKernels.h - Int8 element-wise kernels, dynamic quant -*- C++ -*-===//
//
// Small loops oneDNN 2.6 has no primitive for: clamps on int8 data (relu at
// the zero point), adds of two int8 tensors with their own qparams, layer
// norms from int8 to int8, and the per-batch quantization of a dynamic
// linear's input.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_LIB_CODEGEN_HOSTKERNELS_H
#define QFX_LIB_CODEGEN_HOSTKERNELS_H

#include "qfx/Support/Tensor.h"

#include <cstddef>
#include <cstdint>

namespace qfx {
namespace codegen {

/// Out[i] = clamp(In[i], Lo, Hi) for u8 / s8 data.
void clampInt8(DType Dt, const void *In, void *Out, size_t N, int Lo, int Hi);

/// Operand of addInt8: data, dtype and qparams.
struct Int8Operand {
  const void *Data;
  DType Dt;
  float Scale;
  int32_t ZeroPoint;
};

/// Out = clamp(round((dequant(A) + dequant(B)) / so) + zo, Lo, Hi), the
/// bounds including the zero point (a fused relu raises Lo to it).
void addInt8(const Int8Operand &A, const Int8Operand &B, void *Out, DType Dt,
             float Scale, int32_t ZeroPoint, int Lo, int Hi, size_t N);

/// quantized_layer_norm over \p Rows rows of \p M elements: the
/// reference's formulas (dequantize, statistics in double, affine, then
/// quantize_val), with \p W and \p B optional.
struct LayerNormInt8 {
  DType InDt, OutDt;
  float InScale;
  int32_t InZeroPoint;
  float OutScale;
  int32_t OutZeroPoint;
  const float *W, *B;
  double Eps;
};
void layerNormInt8(const LayerNormInt8 &P, const void *In, void *Out,
                   size_t Rows, size_t M);

/// Softmax over \p Rows rows of \p Len int8 codes q whose real values are
/// C * (q - zp) with C > 0, quantized with (OutScale, OutZeroPoint):
/// \p Exp[d] = exp(-C * d) for the distance d of a code below the row's
/// largest. InDt F32: the rows hold the integers q - zp as floats.
struct SoftmaxInt8 {
  DType InDt, OutDt;
  const float *Exp;
  float OutScale;
  int32_t OutZeroPoint;
};
void softmaxInt8(const SoftmaxInt8 &P, const void *In, void *Out, size_t Rows,
                 size_t Len);

/// PyTorch's dynamic activation qparams (quant_utils'
/// ChooseQuantizationParams over [min(x, 0), max(x, 0)]) for the integer
/// range [QMin, QMax].
void chooseDynamicQParams(float Min, float Max, int QMin, int QMax,
                          double &Scale, int32_t &ZeroPoint);

/// Quantizes \p N floats to u8 with qparams chosen from their range; a NaN
/// quantizes to QMin.
void quantizeDynamic(const float *X, size_t N, int QMin, int QMax, uint8_t *Out,
                     float &Scale, int32_t &ZeroPoint);

/// Round half to even, valid for |V| < 2^22 (the callers clamp first).
inline float roundHalfEven(float V) {
  constexpr float Magic = 12582912.0f; // 1.5 * 2^23
  return (V + Magic) - Magic;
}

} // namespace codegen
} // namespace qfx

#endif // QFX_LIB_CODEGEN_HOSTKERNELS_H
