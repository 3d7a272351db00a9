//===- Quantize.cpp - Quantize, dequantize, fake-quantize ----------------===//
//
// Each formula below is the one PyTorch 1.13's CPU kernels evaluate, in the
// same precision: the quantized value is computed in float (including the
// addition of the zero point), converted to int64 the way x86 converts
// (NaN and out-of-range values become INT64_MIN, which then saturates to
// quant_min), then clamped.
//
//===----------------------------------------------------------------------===//

#include "qfx/Quant/Quantize.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstdint>
#include <limits>

using namespace qfx;

namespace {

/// static_cast<int64_t>(float) as x86's cvttss2si evaluates it: PyTorch
/// relies on this for infinities and NaN.
int64_t floatToInt64(float V) {
  if (std::isnan(V) || V >= 0x1p63f || V < -0x1p63f)
    return std::numeric_limits<int64_t>::min();
  return static_cast<int64_t>(V);
}

/// at::native::quantize_val before clamping: zero_point + nearbyint(x *
/// inv_scale), the addition done in float.
int64_t quantizeUnclamped(float X, float InvScale, int64_t ZeroPoint) {
  float Rounded = std::nearbyint(X * InvScale);
  return floatToInt64(static_cast<float>(ZeroPoint) + Rounded);
}

std::pair<int64_t, int64_t> dtypeRange(DType T) {
  switch (T) {
  case DType::U8:
    return {0, 255};
  case DType::S8:
    return {-128, 127};
  case DType::S32:
    return {std::numeric_limits<int32_t>::min(),
            std::numeric_limits<int32_t>::max()};
  default:
    assert(false && "quantized dtype must be u8, s8 or s32");
    return {0, 0};
  }
}

/// Extents before, along and after \p Axis.
struct AxisSplit {
  int64_t Outer = 1, Channels = 1, Inner = 1;
};

AxisSplit splitAt(llvm::ArrayRef<int64_t> Shape, int64_t Axis) {
  assert(Axis >= 0 && Axis < static_cast<int64_t>(Shape.size()) &&
         "channel axis out of range");
  AxisSplit S;
  for (int64_t I = 0; I < static_cast<int64_t>(Shape.size()); ++I) {
    if (I < Axis)
      S.Outer *= Shape[I];
    else if (I == Axis)
      S.Channels = Shape[I];
    else
      S.Inner *= Shape[I];
  }
  return S;
}

template <typename T>
void quantizeInto(const float *X, T *Out, int64_t N, float InvScale,
                  int64_t ZeroPoint, int64_t Lo, int64_t Hi) {
  for (int64_t I = 0; I < N; ++I)
    Out[I] = static_cast<T>(
        std::clamp(quantizeUnclamped(X[I], InvScale, ZeroPoint), Lo, Hi));
}

/// Quantizes \p N floats starting at \p X into element \p Offset of \p Q.
void quantizeRange(const float *X, Tensor &Q, int64_t Offset, int64_t N,
                   double Scale, int64_t ZeroPoint) {
  // quantize_val: float inv_scale = 1.0f / static_cast<float>(scale).
  float InvScale = 1.0f / static_cast<float>(Scale);
  auto [Lo, Hi] = dtypeRange(Q.dtype());
  switch (Q.dtype()) {
  case DType::U8:
    return quantizeInto(X, Q.data<uint8_t>() + Offset, N, InvScale, ZeroPoint,
                        Lo, Hi);
  case DType::S8:
    return quantizeInto(X, Q.data<int8_t>() + Offset, N, InvScale, ZeroPoint,
                        Lo, Hi);
  default:
    return quantizeInto(X, Q.data<int32_t>() + Offset, N, InvScale, ZeroPoint,
                        Lo, Hi);
  }
}

/// The integer value of element \p I of a u8/s8/s32 tensor.
template <typename T> int64_t intAt(const Tensor &Q, int64_t I) {
  return Q.data<T>()[I];
}

int64_t quantizedAt(const Tensor &Q, int64_t I) {
  switch (Q.dtype()) {
  case DType::U8:
    return intAt<uint8_t>(Q, I);
  case DType::S8:
    return intAt<int8_t>(Q, I);
  case DType::S32:
    return intAt<int32_t>(Q, I);
  default:
    assert(false && "dequantize needs a u8, s8 or s32 tensor");
    return 0;
  }
}

/// The fake-quantized value and whether the rounded value was in range
/// (fake_quantize_tensor_cachemask_kernel).
float fakeQuantizeOne(float X, float Scale, float InvScale, int64_t ZeroPoint,
                      int64_t QuantMin, int64_t QuantMax, bool &InRange) {
  int64_t Q = quantizeUnclamped(X, InvScale, ZeroPoint);
  InRange = QuantMin <= Q && Q <= QuantMax;
  int64_t Clamped = std::clamp(Q, QuantMin, QuantMax);
  // (clamped - zero_point) is exact in double and its product with a float
  // scale rounds once, as PyTorch's double expression does.
  return static_cast<float>(static_cast<double>(Clamped - ZeroPoint) *
                            static_cast<double>(Scale));
}

} // namespace

Tensor qfx::quantizePerTensor(const Tensor &X, double Scale, int64_t ZeroPoint,
                              DType T) {
  assert(X.dtype() == DType::F32 && "quantize needs an f32 tensor");
  Tensor Q(T, X.shape());
  quantizeRange(X.data<float>(), Q, 0, X.numElements(), Scale, ZeroPoint);
  Q.setQuant(QuantParams::perTensor(Scale, ZeroPoint));
  return Q;
}

Tensor qfx::quantizePerChannel(const Tensor &X, llvm::ArrayRef<double> Scales,
                               llvm::ArrayRef<int64_t> ZeroPoints, int64_t Axis,
                               DType T) {
  assert(X.dtype() == DType::F32 && "quantize needs an f32 tensor");
  AxisSplit S = splitAt(X.shape(), Axis);
  assert(static_cast<int64_t>(Scales.size()) == S.Channels &&
         static_cast<int64_t>(ZeroPoints.size()) == S.Channels &&
         "one scale and zero point per channel");
  Tensor Q(T, X.shape());
  const float *In = X.data<float>();
  for (int64_t O = 0; O < S.Outer; ++O)
    for (int64_t C = 0; C < S.Channels; ++C) {
      int64_t Offset = (O * S.Channels + C) * S.Inner;
      quantizeRange(In + Offset, Q, Offset, S.Inner, Scales[C], ZeroPoints[C]);
    }
  Q.setQuant(QuantParams::perChannel(
      std::vector<double>(Scales.begin(), Scales.end()),
      std::vector<int64_t>(ZeroPoints.begin(), ZeroPoints.end()), Axis));
  return Q;
}

Tensor qfx::dequantize(const Tensor &Q) {
  const QuantParams &P = Q.quant();
  assert(!P.isNone() && "dequantize needs quantization parameters");
  Tensor R(DType::F32, Q.shape());
  float *Out = R.data<float>();
  if (P.isPerTensor()) {
    // Per tensor: float(int32(q - zero_point)) * float(scale), the
    // subtraction wrapping in int32 as PyTorch's does.
    float Scale = static_cast<float>(P.Scale);
    for (int64_t I = 0, E = Q.numElements(); I < E; ++I) {
      uint32_t Diff = static_cast<uint32_t>(quantizedAt(Q, I)) -
                      static_cast<uint32_t>(P.ZeroPoint);
      Out[I] = static_cast<float>(static_cast<int32_t>(Diff)) * Scale;
    }
    return R;
  }
  // Per channel: dequantize_val, (float(q) - zero_point) * scale with the
  // product in double.
  AxisSplit S = splitAt(Q.shape(), P.Axis);
  assert(static_cast<int64_t>(P.Scales.size()) == S.Channels &&
         "one scale per channel");
  for (int64_t O = 0; O < S.Outer; ++O)
    for (int64_t C = 0; C < S.Channels; ++C)
      for (int64_t I = 0; I < S.Inner; ++I) {
        int64_t Idx = (O * S.Channels + C) * S.Inner + I;
        float Diff = static_cast<float>(quantizedAt(Q, Idx)) -
                     static_cast<float>(P.ZeroPoints[C]);
        Out[Idx] = static_cast<float>(static_cast<double>(Diff) * P.Scales[C]);
      }
  return R;
}

Tensor qfx::fakeQuantizePerTensor(const Tensor &X, double Scale,
                                  int64_t ZeroPoint, int64_t QuantMin,
                                  int64_t QuantMax, Tensor *Mask) {
  assert(X.dtype() == DType::F32 && "fake quantize needs an f32 tensor");
  // The kernel receives the scale as float.
  float S = static_cast<float>(Scale);
  float InvScale = 1.0f / S;
  Tensor R = Tensor::uninitialized(DType::F32, X.shape());
  if (Mask)
    *Mask = Tensor::uninitialized(DType::F32, X.shape());
  const float *In = X.data<float>();
  float *Out = R.data<float>();
  float *M = Mask ? Mask->data<float>() : nullptr;
  for (int64_t I = 0, E = X.numElements(); I < E; ++I) {
    bool InRange;
    Out[I] = fakeQuantizeOne(In[I], S, InvScale, ZeroPoint, QuantMin, QuantMax,
                             InRange);
    if (M)
      M[I] = InRange ? 1.0f : 0.0f;
  }
  return R;
}

Tensor qfx::fakeQuantizePerChannel(const Tensor &X,
                                   llvm::ArrayRef<double> Scales,
                                   llvm::ArrayRef<int64_t> ZeroPoints,
                                   int64_t Axis, int64_t QuantMin,
                                   int64_t QuantMax, Tensor *Mask) {
  assert(X.dtype() == DType::F32 && "fake quantize needs an f32 tensor");
  AxisSplit S = splitAt(X.shape(), Axis);
  assert(static_cast<int64_t>(Scales.size()) == S.Channels &&
         static_cast<int64_t>(ZeroPoints.size()) == S.Channels &&
         "one scale and zero point per channel");
  Tensor R = Tensor::uninitialized(DType::F32, X.shape());
  if (Mask)
    *Mask = Tensor::uninitialized(DType::F32, X.shape());
  const float *In = X.data<float>();
  float *Out = R.data<float>();
  float *M = Mask ? Mask->data<float>() : nullptr;
  for (int64_t O = 0; O < S.Outer; ++O)
    for (int64_t C = 0; C < S.Channels; ++C) {
      // PyTorch's per-channel kernel takes float scales.
      float Sc = static_cast<float>(Scales[C]);
      float InvScale = 1.0f / Sc;
      int64_t Base = (O * S.Channels + C) * S.Inner;
      for (int64_t I = 0; I < S.Inner; ++I) {
        bool InRange;
        Out[Base + I] =
            fakeQuantizeOne(In[Base + I], Sc, InvScale, ZeroPoints[C], QuantMin,
                            QuantMax, InRange);
        if (M)
          M[Base + I] = InRange ? 1.0f : 0.0f;
      }
    }
  return R;
}

/// The f32 0 / 1 mask as u8.
static Tensor maskToU8(const Tensor &Mask) {
  Tensor R = Tensor::uninitialized(DType::U8, Mask.shape());
  const float *In = Mask.data<float>();
  uint8_t *Out = R.data<uint8_t>();
  for (int64_t I = 0, E = Mask.numElements(); I < E; ++I)
    Out[I] = In[I] != 0.0f ? 1 : 0;
  return R;
}

Tensor qfx::fakeQuantizeMaskPerTensor(const Tensor &X, double Scale,
                                      int64_t ZeroPoint, int64_t QuantMin,
                                      int64_t QuantMax) {
  // The forward decides the mask: computing both keeps them in step at the
  // rounding boundaries.
  Tensor Mask;
  fakeQuantizePerTensor(X, Scale, ZeroPoint, QuantMin, QuantMax, &Mask);
  return maskToU8(Mask);
}

Tensor qfx::fakeQuantizeMaskPerChannel(const Tensor &X,
                                       llvm::ArrayRef<double> Scales,
                                       llvm::ArrayRef<int64_t> ZeroPoints,
                                       int64_t Axis, int64_t QuantMin,
                                       int64_t QuantMax) {
  Tensor Mask;
  fakeQuantizePerChannel(X, Scales, ZeroPoints, Axis, QuantMin, QuantMax,
                         &Mask);
  return maskToU8(Mask);
}
