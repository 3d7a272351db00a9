//===- QuantKernels.h - Reference int8 kernels (private) --------*- C++ -*-===//
//
// The integer kernels behind the quantized op-table entries and the
// quantized forms of the dtype-generic ops (pooling, relu, clamps, mean).
// Numerics follow PyTorch 1.13's CPU kernels with the "onednn" engine bit for
// bit where that is practical; docs/quantization.md ("Reference int8
// numerics") says which formula each op uses. The Runtime layer cannot use
// the Quant layer, so the elementwise quantize / dequantize helpers live
// here too, with the same formulas.
//
// Kernels assume operands their op's type inference accepted.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_LIB_RUNTIME_QUANTKERNELS_H
#define QFX_LIB_RUNTIME_QUANTKERNELS_H

#include "qfx/Runtime/Kernels.h"
#include "qfx/Support/Tensor.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/STLFunctionalExtras.h"

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace qfx {

struct OpDef;

namespace qref {

/// Whether \p T is u8 or s8: the dtypes of quantized activations.
bool isQuantizedDType(DType T);
/// Whether \p T is a quantized activation: u8 or s8 with per-tensor qparams.
bool isQuantizedActivation(const Tensor &T);
/// "f32", "u8 without qparams", "s8 with per-channel qparams" ...: what an
/// operand is, for error messages.
std::string describe(const Tensor &T);

/// The integer range of \p T (u8, s8 or s32).
int64_t quantMin(DType T);
int64_t quantMax(DType T);

/// PyTorch's quantize_val: clamp(nearbyint(x * (1.0f / float(scale))) + zp)
/// with \p InvScale = 1.0f / float(scale). A NaN or a value beyond int64
/// gives the minimum, as PyTorch's float-to-int64 conversion does on x86.
int64_t quantizeValue(float X, float InvScale, int64_t ZeroPoint, int64_t QMin,
                      int64_t QMax);

/// torch.quantize_per_tensor: f32 -> \p T (u8 / s8) with the result's
/// qparams set to (\p Scale, \p ZeroPoint).
Tensor quantizePerTensor(const Tensor &X, double Scale, int64_t ZeroPoint,
                         DType T);
/// Tensor.dequantize(), per tensor or per channel, with the tensor's own
/// qparams: (float(q) - zp) * float(scale) per tensor, float((q - zp) *
/// scale) in double per channel (PyTorch's two kernels differ so).
Tensor dequantize(const Tensor &Q);

//===----------------------------------------------------------------------===//
// Weighted ops: int32 accumulation, then oneDNN's requantization
//===----------------------------------------------------------------------===//

/// The output of a weighted op: scale, zero point and a fused ReLU.
struct OutputQuant {
  double Scale = 1.0;
  int64_t ZeroPoint = 0;
  bool Relu = false;
};

/// Quantized conv2d: \p X u8/s8 per tensor, \p W s8 per tensor or per
/// channel on axis 0, \p Bias f32 or null, \p Other (conv + add) a quantized
/// tensor of the output's shape or null. The result has X's dtype.
Tensor conv2d(const Tensor &X, const Tensor &W, const Tensor *Bias,
              const ref::Conv2dParams &P, const Tensor *Other,
              const OutputQuant &Out);
/// Quantized linear: X [..., in], W [out, in].
Tensor linear(const Tensor &X, const Tensor &W, const Tensor *Bias,
              const OutputQuant &Out);

/// The (scale, zero point) PyTorch's dynamic quantization picks for an input
/// range (quant_utils::ChooseQuantizationParams): the range is widened to
/// contain 0; reduce_range halves [QMin, QMax].
struct ChosenQParams {
  double Scale;
  int64_t ZeroPoint;
};
ChosenQParams chooseQParams(float Min, float Max, int64_t QMin, int64_t QMax,
                            bool ReduceRange);

/// Dynamic quantized linear: f32 X, quantized to u8 with qparams chosen from
/// its min / max, times s8 W; f32 out.
Tensor linearDynamic(const Tensor &X, const Tensor &W, const Tensor *Bias,
                     bool ReduceRange);

/// Quantized inference batch norm over dimension 1.
Tensor batchNorm(const Tensor &X, const Tensor &Mean, const Tensor &Var,
                 const Tensor *Weight, const Tensor *Bias, double Eps,
                 const OutputQuant &Out);

//===----------------------------------------------------------------------===//
// Elementwise ops: dequantize, float op, requantize
//===----------------------------------------------------------------------===//

/// a + b (then ReLU) with broadcasting, requantized to (Scale, ZeroPoint).
Tensor add(const Tensor &A, const Tensor &B, const OutputQuant &Out);
/// a * b with broadcasting: PyTorch multiplies the integers (q - zp) and
/// requantizes the product with one float multiplier.
Tensor mul(const Tensor &A, const Tensor &B, const OutputQuant &Out);
/// Concatenation; inputs whose qparams differ from the output's are
/// dequantized and requantized.
Tensor cat(llvm::ArrayRef<Tensor> Inputs, int64_t Dim, double Scale,
           int64_t ZeroPoint);
/// Applies the float kernel \p Fn to X dequantized as PyTorch's vectorized
/// elementwise kernels do, and quantizes the result with X's dtype.
Tensor mapFloat(const Tensor &X, llvm::function_ref<Tensor(const Tensor &)> Fn,
                double Scale, int64_t ZeroPoint);
/// Softmax along \p Dim of the dequantized input, quantized.
Tensor softmax(const Tensor &X, int64_t Dim, double Scale, int64_t ZeroPoint);

//===----------------------------------------------------------------------===//
// Dtype-generic ops on quantized tensors: the result keeps X's qparams
//===----------------------------------------------------------------------===//

Tensor maxPool2d(const Tensor &X, const ref::Pool2dParams &P);
/// Sums integers, then rounds half to even as PyTorch does.
Tensor avgPool2d(const Tensor &X, const ref::Pool2dParams &P);
Tensor adaptiveAvgPool2d(const Tensor &X, std::array<int64_t, 2> Output);
Tensor mean(const Tensor &X, llvm::ArrayRef<int64_t> Dims, bool KeepDim);
/// max(q, zero_point).
Tensor relu(const Tensor &X);
/// Clamps to [Min, Max] quantized with X's qparams (relu6, hardtanh).
Tensor clamp(const Tensor &X, double Min, double Max);

} // namespace qref

/// The op-table entries of the quantized ops (quantize_per_tensor,
/// dequantize, quantized_*), unsorted; OpTable.cpp merges them.
std::vector<OpDef> quantizedOpDefs();

} // namespace qfx

#endif // QFX_LIB_RUNTIME_QUANTKERNELS_H
