//===- Quantize.h - Quantize, dequantize, fake-quantize ---------*- C++ -*-===//
//
// The elementwise numerics of torch.ao.quantization, bit-exact with PyTorch
// 1.13's CPU kernels: round half to even (std::nearbyint), float inverse
// scale as PyTorch computes it, saturation to [quant_min, quant_max].
//
//===----------------------------------------------------------------------===//

#ifndef QFX_QUANT_QUANTIZE_H
#define QFX_QUANT_QUANTIZE_H

#include "qfx/Support/Tensor.h"

#include <cstdint>

namespace qfx {

/// torch.quantize_per_tensor: f32 -> u8/s8/s32 with \p Scale/\p ZeroPoint
/// recorded in the result's quantization parameters.
Tensor quantizePerTensor(const Tensor &X, double Scale, int64_t ZeroPoint,
                         DType T);
/// torch.quantize_per_channel along \p Axis.
Tensor quantizePerChannel(const Tensor &X, llvm::ArrayRef<double> Scales,
                          llvm::ArrayRef<int64_t> ZeroPoints, int64_t Axis,
                          DType T);
/// Tensor.dequantize(): uses the tensor's own quantization parameters.
Tensor dequantize(const Tensor &Q);

/// torch.fake_quantize_per_tensor_affine (forward). With \p Mask, also
/// stores there, in the same pass, the straight-through estimator's mask as
/// f32 0 / 1 (what fakeQuantizeMaskPerTensor computes).
Tensor fakeQuantizePerTensor(const Tensor &X, double Scale, int64_t ZeroPoint,
                             int64_t QuantMin, int64_t QuantMax,
                             Tensor *Mask = nullptr);
/// torch.fake_quantize_per_channel_affine (forward); \p Mask as above.
Tensor fakeQuantizePerChannel(const Tensor &X, llvm::ArrayRef<double> Scales,
                              llvm::ArrayRef<int64_t> ZeroPoints, int64_t Axis,
                              int64_t QuantMin, int64_t QuantMax,
                              Tensor *Mask = nullptr);
/// The straight-through-estimator mask of fake quantization: 1 where the
/// rounded value falls inside [quant_min, quant_max], else 0 (PyTorch's
/// fake_quantize_per_tensor_affine_cachemask).
Tensor fakeQuantizeMaskPerTensor(const Tensor &X, double Scale,
                                 int64_t ZeroPoint, int64_t QuantMin,
                                 int64_t QuantMax);

/// The same mask for per-channel fake quantization along \p Axis (PyTorch's
/// fake_quantize_per_channel_affine_cachemask).
Tensor fakeQuantizeMaskPerChannel(const Tensor &X,
                                  llvm::ArrayRef<double> Scales,
                                  llvm::ArrayRef<int64_t> ZeroPoints,
                                  int64_t Axis, int64_t QuantMin,
                                  int64_t QuantMax);

} // namespace qfx

#endif // QFX_QUANT_QUANTIZE_H
