//===- QuantKernels.cpp - Reference int8 kernels --------------------------===//

#include "QuantKernels.h"

#include "qfx/Support/Error.h"

#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/Twine.h"
#include "llvm/Support/ErrorHandling.h"

#include <algorithm>
#include <cmath>
#include <limits>

using namespace llvm;

namespace qfx {
namespace qref {

//===----------------------------------------------------------------------===//
// Element access and quantize / dequantize
//===----------------------------------------------------------------------===//

bool isQuantizedDType(DType T) { return T == DType::U8 || T == DType::S8; }

bool isQuantizedActivation(const Tensor &T) {
  return isQuantizedDType(T.dtype()) && T.quant().isPerTensor();
}

std::string describe(const Tensor &T) {
  std::string Name = dtypeName(T.dtype()).str();
  if (T.dtype() == DType::F32)
    return Name;
  if (T.quant().isNone())
    return Name + " without qparams";
  if (T.quant().isPerChannel())
    return Name + " with per-channel qparams";
  return Name + " with per-tensor qparams";
}

int64_t quantMin(DType T) {
  switch (T) {
  case DType::U8:
    return 0;
  case DType::S8:
    return -128;
  case DType::S32:
    return std::numeric_limits<int32_t>::min();
  default:
    report_fatal_error("quantized kernel expects an integer dtype");
  }
}

int64_t quantMax(DType T) {
  switch (T) {
  case DType::U8:
    return 255;
  case DType::S8:
    return 127;
  case DType::S32:
    return std::numeric_limits<int32_t>::max();
  default:
    report_fatal_error("quantized kernel expects an integer dtype");
  }
}

int64_t quantizeValue(float X, float InvScale, int64_t ZeroPoint, int64_t QMin,
                      int64_t QMax) {
  // PyTorch adds the zero point to the rounded value in float, then
  // converts to int64; out-of-range and NaN conversions give INT64_MIN.
  float R = static_cast<float>(ZeroPoint) + std::nearbyint(X * InvScale);
  constexpr float Limit = 9.2233720368547758e18f;
  if (!(R >= -Limit && R < Limit))
    return QMin;
  return std::min(std::max(static_cast<int64_t>(R), QMin), QMax);
}

namespace {

/// Kernels run on operands their op's type inference accepted; anything
/// else is a caller bug, reported loudly rather than computed wrongly.
Shape checkedShape(Expected<Shape> S) {
  if (!S)
    report_fatal_error("quantized kernel called with invalid operands: " +
                       Twine(errorToString(S.takeError())));
  return std::move(*S);
}

/// Calls \p Fn with a typed pointer to the integers of \p T.
template <typename F> void visitInts(const Tensor &T, F Fn) {
  if (!T.hasData())
    report_fatal_error("quantized kernel expects tensors with data");
  switch (T.dtype()) {
  case DType::U8:
    return Fn(T.data<uint8_t>());
  case DType::S8:
    return Fn(T.data<int8_t>());
  case DType::S32:
    return Fn(T.data<int32_t>());
  default:
    report_fatal_error("quantized kernel expects an integer tensor");
  }
}

/// The integers of \p T minus \p ZeroPoint.
std::vector<int32_t> centered(const Tensor &T, int64_t ZeroPoint) {
  std::vector<int32_t> R(T.numElements());
  int32_t Z = static_cast<int32_t>(ZeroPoint);
  visitInts(T, [&](const auto *P) {
    for (size_t I = 0; I < R.size(); ++I)
      R[I] = static_cast<int32_t>(P[I]) - Z;
  });
  return R;
}

/// The integers of \p T widened to int32.
std::vector<int32_t> ints(const Tensor &T) { return centered(T, 0); }

/// Per-output-channel scales and zero points of a weight quantized per
/// tensor or per channel on axis 0.
struct WeightQuant {
  std::vector<double> Scales;
  std::vector<int64_t> ZeroPoints;
};

WeightQuant weightQuant(const Tensor &W) {
  const QuantParams &Q = W.quant();
  if (Q.isPerChannel())
    return {Q.Scales, Q.ZeroPoints};
  int64_t C = W.dim(0);
  return {std::vector<double>(C, Q.Scale),
          std::vector<int64_t>(C, Q.ZeroPoint)};
}

/// The weight's integers minus their channel's zero point.
std::vector<int32_t> centeredWeight(const Tensor &W, const WeightQuant &Q) {
  std::vector<int32_t> R = ints(W);
  int64_t C = W.dim(0), Inner = C ? W.numElements() / C : 0;
  for (int64_t O = 0; O < C; ++O)
    for (int64_t I = 0; I < Inner; ++I)
      R[O * Inner + I] -= static_cast<int32_t>(Q.ZeroPoints[O]);
  return R;
}

/// A tensor of dtype \p T and shape \p S holding \p V (already in range),
/// quantized per tensor with (\p Scale, \p ZeroPoint).
Tensor makeQuantized(DType T, ArrayRef<int64_t> S, ArrayRef<int32_t> V,
                     double Scale, int64_t ZeroPoint) {
  Tensor Y(T, S);
  assert(static_cast<int64_t>(V.size()) == Y.numElements());
  auto Store = [&](auto *Out) {
    for (size_t I = 0; I < V.size(); ++I)
      Out[I] = static_cast<std::remove_pointer_t<decltype(Out)>>(V[I]);
  };
  switch (T) {
  case DType::U8:
    Store(Y.data<uint8_t>());
    break;
  case DType::S8:
    Store(Y.data<int8_t>());
    break;
  default:
    report_fatal_error("quantized kernel expects a u8 or s8 result");
  }
  Y.setQuant(QuantParams::perTensor(Scale, ZeroPoint));
  return Y;
}

/// Quantizes f32 \p F to dtype \p T with PyTorch's quantize_val.
Tensor quantizeFloats(const Tensor &F, DType T, double Scale,
                      int64_t ZeroPoint) {
  float Inv = 1.0f / static_cast<float>(Scale);
  int64_t Lo = quantMin(T), Hi = quantMax(T);
  std::vector<int32_t> V(F.numElements());
  const float *P = F.data<float>();
  for (size_t I = 0; I < V.size(); ++I)
    V[I] = static_cast<int32_t>(quantizeValue(P[I], Inv, ZeroPoint, Lo, Hi));
  return makeQuantized(T, F.shape(), V, Scale, ZeroPoint);
}

/// One element dequantized as PyTorch's vectorized elementwise kernels do:
/// fma(scale, q, scale * -zp), which can differ from (q - zp) * scale in the
/// last bit.
struct FmaDequant {
  explicit FmaDequant(const QuantParams &Q)
      : Scale(static_cast<float>(Q.Scale)),
        Premul(Scale * -static_cast<float>(Q.ZeroPoint)) {}
  float operator()(int32_t V) const {
    return std::fma(Scale, static_cast<float>(V), Premul);
  }
  float Scale, Premul;
};

Tensor dequantizeFma(const Tensor &X) {
  Tensor Y(DType::F32, X.shape());
  FmaDequant D(X.quant());
  std::vector<int32_t> V = ints(X);
  float *Out = Y.data<float>();
  for (size_t I = 0; I < V.size(); ++I)
    Out[I] = D(V[I]);
  return Y;
}

} // namespace

Tensor quantizePerTensor(const Tensor &X, double Scale, int64_t ZeroPoint,
                         DType T) {
  if (X.dtype() != DType::F32 || !X.hasData())
    report_fatal_error("quantize_per_tensor expects an f32 tensor with data");
  return quantizeFloats(X, T, Scale, ZeroPoint);
}

Tensor dequantize(const Tensor &Q) {
  const QuantParams &P = Q.quant();
  Tensor Y(DType::F32, Q.shape());
  std::vector<int32_t> V = ints(Q);
  float *Out = Y.data<float>();
  if (P.isPerTensor()) {
    float S = static_cast<float>(P.Scale);
    float Z = static_cast<float>(P.ZeroPoint);
    for (size_t I = 0; I < V.size(); ++I)
      Out[I] = (static_cast<float>(V[I]) - Z) * S;
    return Y;
  }
  assert(P.isPerChannel() && "dequantize needs qparams");
  // Channel C of axis A covers runs of Inner elements, Outer times.
  int64_t A = P.Axis, C = Q.dim(A);
  int64_t Inner = numElements(Q.shape().drop_front(A + 1));
  int64_t Outer = numElements(Q.shape().take_front(A));
  for (int64_t O = 0, I = 0; O < Outer; ++O)
    for (int64_t Ch = 0; Ch < C; ++Ch)
      for (int64_t K = 0; K < Inner; ++K, ++I)
        Out[I] = static_cast<float>(
            static_cast<double>(V[I] - P.ZeroPoints[Ch]) * P.Scales[Ch]);
  return Y;
}

//===----------------------------------------------------------------------===//
// Weighted ops
//===----------------------------------------------------------------------===//

namespace {

/// oneDNN's int8 output stage as PyTorch 1.13's onednn engine sets it up
/// (reciprocal float scales, oneDNN's convention): per output channel c,
///   b = float(1 / x_scale) * float(1 / w_scale[c])
///   v = (float(acc) + bias[c] * b) * (float(1 / out_scale) / b)
///   q = saturate(nearbyint(v + out_zp))
/// with the ReLU applied to v. Mathematically acc * x_scale * w_scale[c] +
/// bias[c] requantized; this order reproduces PyTorch's results exactly.
class Requant {
public:
  Requant(double XScale, const WeightQuant &WQ, double OutScale,
          int64_t OutZeroPoint, bool Relu, DType T)
      : ZeroPoint(static_cast<float>(OutZeroPoint)), QMin(quantMin(T)),
        QMax(quantMax(T)), Relu(Relu) {
    float InvX = static_cast<float>(1.0 / XScale);
    float InvOut = static_cast<float>(1.0 / OutScale);
    for (double WS : WQ.Scales) {
      float B = InvX * static_cast<float>(1.0 / WS);
      BiasScale.push_back(B);
      OutMul.push_back(InvOut / B);
    }
  }

  /// The accumulator of channel \p C (plus its bias) in output units.
  float units(int32_t Acc, int64_t C, const float *Bias) const {
    float A = static_cast<float>(Acc);
    if (Bias)
      A += Bias[C] * BiasScale[C];
    return A * OutMul[C];
  }

  int32_t finish(float V) const {
    if (Relu)
      V = std::max(V, 0.0f);
    float R = std::nearbyint(V + ZeroPoint);
    if (!(R >= static_cast<float>(QMin)))
      return static_cast<int32_t>(QMin);
    if (R > static_cast<float>(QMax))
      return static_cast<int32_t>(QMax);
    return static_cast<int32_t>(R);
  }

private:
  std::vector<float> BiasScale, OutMul;
  float ZeroPoint;
  int64_t QMin, QMax;
  bool Relu;
};

/// Integer conv2d of centered inputs into \p Acc (one plane per (n, o)).
void accumulateConv(const std::vector<int32_t> &XI,
                    const std::vector<int32_t> &WI, ArrayRef<int64_t> XS,
                    ArrayRef<int64_t> WS, ArrayRef<int64_t> OS,
                    const ref::Conv2dParams &P, std::vector<int32_t> &Acc) {
  const int64_t N = OS[0], OC = OS[1], OH = OS[2], OW = OS[3];
  const int64_t IC = XS[1], IH = XS[2], IW = XS[3];
  const int64_t ICG = WS[1], KH = WS[2], KW = WS[3];
  const int64_t OCG = OC / P.Groups;
  for (int64_t NI = 0; NI < N; ++NI) {
    for (int64_t O = 0; O < OC; ++O) {
      const int32_t *XG = XI.data() + (NI * IC + (O / OCG) * ICG) * IH * IW;
      const int32_t *WO = WI.data() + O * ICG * KH * KW;
      int32_t *AO = Acc.data() + (NI * OC + O) * OH * OW;
      for (int64_t OY = 0; OY < OH; ++OY) {
        for (int64_t OX = 0; OX < OW; ++OX) {
          // Taps in the padding read x_zp, which is 0 once centered.
          int32_t Sum = 0;
          for (int64_t C = 0; C < ICG; ++C) {
            for (int64_t KY = 0; KY < KH; ++KY) {
              int64_t IY = OY * P.Stride[0] - P.Padding[0] + KY * P.Dilation[0];
              if (IY < 0 || IY >= IH)
                continue;
              for (int64_t KX = 0; KX < KW; ++KX) {
                int64_t IX =
                    OX * P.Stride[1] - P.Padding[1] + KX * P.Dilation[1];
                if (IX < 0 || IX >= IW)
                  continue;
                Sum +=
                    XG[(C * IH + IY) * IW + IX] * WO[(C * KH + KY) * KW + KX];
              }
            }
          }
          AO[OY * OW + OX] = Sum;
        }
      }
    }
  }
}

} // namespace

Tensor conv2d(const Tensor &X, const Tensor &W, const Tensor *Bias,
              const ref::Conv2dParams &P, const Tensor *Other,
              const OutputQuant &Out) {
  std::optional<ArrayRef<int64_t>> BiasShape;
  if (Bias)
    BiasShape = Bias->shape();
  Shape OS = checkedShape(ref::conv2dShape(X.shape(), W.shape(), BiasShape, P));
  WeightQuant WQ = weightQuant(W);
  std::vector<int32_t> Acc(numElements(OS));
  accumulateConv(centered(X, X.quant().ZeroPoint), centeredWeight(W, WQ),
                 X.shape(), W.shape(), OS, P, Acc);
  Requant R(X.quant().Scale, WQ, Out.Scale, Out.ZeroPoint, Out.Relu, X.dtype());
  // conv + add: the other operand joins in output units, as oneDNN's sum
  // post-op adds it (scale other_scale / out_scale).
  std::vector<int32_t> OI;
  float OtherMul = 0.0f;
  if (Other) {
    OI = centered(*Other, Other->quant().ZeroPoint);
    OtherMul = static_cast<float>(Other->quant().Scale / Out.Scale);
  }
  const float *BP = Bias ? Bias->data<float>() : nullptr;
  const int64_t OC = OS[1], Plane = OS[2] * OS[3];
  for (size_t I = 0; I < Acc.size(); ++I) {
    float V = R.units(Acc[I], (I / Plane) % OC, BP);
    if (Other)
      V += static_cast<float>(OI[I]) * OtherMul;
    Acc[I] = R.finish(V);
  }
  return makeQuantized(X.dtype(), OS, Acc, Out.Scale, Out.ZeroPoint);
}

Tensor linear(const Tensor &X, const Tensor &W, const Tensor *Bias,
              const OutputQuant &Out) {
  std::optional<ArrayRef<int64_t>> BiasShape;
  if (Bias)
    BiasShape = Bias->shape();
  Shape OS = checkedShape(ref::linearShape(X.shape(), W.shape(), BiasShape));
  WeightQuant WQ = weightQuant(W);
  std::vector<int32_t> XI = centered(X, X.quant().ZeroPoint);
  std::vector<int32_t> WI = centeredWeight(W, WQ);
  Requant R(X.quant().Scale, WQ, Out.Scale, Out.ZeroPoint, Out.Relu, X.dtype());
  const int64_t NOut = W.dim(0), In = W.dim(1);
  const int64_t Rows = NOut == 0 ? 0 : numElements(OS) / NOut;
  const float *BP = Bias ? Bias->data<float>() : nullptr;
  std::vector<int32_t> V(numElements(OS));
  for (int64_t Row = 0; Row < Rows; ++Row) {
    for (int64_t O = 0; O < NOut; ++O) {
      int32_t Sum = 0;
      for (int64_t I = 0; I < In; ++I)
        Sum += XI[Row * In + I] * WI[O * In + I];
      V[Row * NOut + O] = R.finish(R.units(Sum, O, BP));
    }
  }
  return makeQuantized(X.dtype(), OS, V, Out.Scale, Out.ZeroPoint);
}

ChosenQParams chooseQParams(float Min, float Max, int64_t QMin, int64_t QMax,
                            bool ReduceRange) {
  if (ReduceRange) {
    QMin /= 2;
    QMax /= 2;
  }
  Min = std::min(Min, 0.0f);
  Max = std::max(Max, 0.0f);
  double Scale = (static_cast<double>(Max) - Min) / (QMax - QMin);
  // A zero scale, or one whose reciprocal overflows, becomes 0.1.
  if (static_cast<float>(Scale) == 0.0f ||
      std::isinf(1.0f / static_cast<float>(Scale)))
    Scale = 0.1;
  // Tiny scales are raised to 6.1e-5, stretching the range to match.
  constexpr float SmallScale = 6.1e-5f;
  if (Scale < SmallScale) {
    float Orig = static_cast<float>(Scale);
    Scale = SmallScale;
    if (Min == 0.0f) {
      Max = SmallScale * (QMax - QMin);
    } else if (Max == 0.0f) {
      Min = -SmallScale * (QMax - QMin);
    } else {
      float Amplifier = SmallScale / Orig;
      Min *= Amplifier;
      Max *= Amplifier;
    }
  }
  // The zero point from whichever end adds the smaller terms.
  double FromMin = QMin - Min / Scale, FromMax = QMax - Max / Scale;
  double ErrMin = std::abs(QMin) - std::abs(Min / Scale);
  double ErrMax = std::abs(QMax) - std::abs(Max / Scale);
  double Initial = ErrMin < ErrMax ? FromMin : FromMax;
  int64_t ZeroPoint = Initial < QMin ? QMin
                      : Initial > QMax
                          ? QMax
                          : static_cast<int64_t>(std::nearbyint(Initial));
  return {Scale, ZeroPoint};
}

Tensor linearDynamic(const Tensor &X, const Tensor &W, const Tensor *Bias,
                     bool ReduceRange) {
  std::optional<ArrayRef<int64_t>> BiasShape;
  if (Bias)
    BiasShape = Bias->shape();
  Shape OS = checkedShape(ref::linearShape(X.shape(), W.shape(), BiasShape));
  const float *XP = X.data<float>();
  const int64_t NX = X.numElements();
  float Min = 0.0f, Max = 0.0f;
  if (NX > 0) {
    Min = *std::min_element(XP, XP + NX);
    Max = *std::max_element(XP, XP + NX);
  }
  ChosenQParams Q = chooseQParams(Min, Max, 0, 255, ReduceRange);
  // oneDNN quantizes the input with a reorder: the zero point is added
  // before rounding.
  float InvScale = static_cast<float>(1.0 / Q.Scale);
  float Z = static_cast<float>(Q.ZeroPoint);
  std::vector<int32_t> XI(NX);
  for (int64_t I = 0; I < NX; ++I) {
    float R = std::nearbyint(XP[I] * InvScale + Z);
    R = std::isnan(R) ? 0.0f : std::min(std::max(R, 0.0f), 255.0f);
    XI[I] = static_cast<int32_t>(R) - static_cast<int32_t>(Q.ZeroPoint);
  }
  WeightQuant WQ = weightQuant(W);
  std::vector<int32_t> WI = centeredWeight(W, WQ);
  // The output stage of Requant with an output scale of 1, kept in float.
  const int64_t NOut = W.dim(0), In = W.dim(1);
  std::vector<float> BScale(NOut), OutMul(NOut);
  for (int64_t O = 0; O < NOut; ++O) {
    BScale[O] = InvScale * static_cast<float>(1.0 / WQ.Scales[O]);
    OutMul[O] = 1.0f / BScale[O];
  }
  const int64_t Rows = NOut == 0 ? 0 : numElements(OS) / NOut;
  const float *BP = Bias ? Bias->data<float>() : nullptr;
  Tensor Y(DType::F32, OS);
  float *YP = Y.data<float>();
  for (int64_t Row = 0; Row < Rows; ++Row) {
    for (int64_t O = 0; O < NOut; ++O) {
      int32_t Sum = 0;
      for (int64_t I = 0; I < In; ++I)
        Sum += XI[Row * In + I] * WI[O * In + I];
      float A = static_cast<float>(Sum);
      if (BP)
        A += BP[O] * BScale[O];
      YP[Row * NOut + O] = A * OutMul[O];
    }
  }
  return Y;
}

Tensor batchNorm(const Tensor &X, const Tensor &Mean, const Tensor &Var,
                 const Tensor *Weight, const Tensor *Bias, double Eps,
                 const OutputQuant &Out) {
  Shape OS = checkedShape(ref::batchNormShape(X.shape(), Mean.numElements()));
  const int64_t N = OS[0], C = OS[1];
  const int64_t Inner = numElements(ArrayRef<int64_t>(OS).drop_front(2));
  // PyTorch's compute_fused_params, with its mix of float and double.
  double InScale = X.quant().Scale;
  std::vector<float> Alpha(C), Beta(C);
  for (int64_t Ch = 0; Ch < C; ++Ch) {
    float InvSigma = static_cast<float>(
        1.0 / std::sqrt(Var.data<float>()[Ch] + static_cast<float>(Eps)));
    float G = Weight ? Weight->data<float>()[Ch] : 1.0f;
    float B = Bias ? Bias->data<float>()[Ch] : 0.0f;
    Alpha[Ch] = static_cast<float>(InvSigma * G * (InScale / Out.Scale));
    Beta[Ch] = static_cast<float>((B - Mean.data<float>()[Ch] * InvSigma * G) /
                                  Out.Scale);
  }
  std::vector<int32_t> V = centered(X, X.quant().ZeroPoint);
  int64_t Lo = quantMin(X.dtype()), Hi = quantMax(X.dtype());
  for (int64_t NI = 0, I = 0; NI < N; ++NI) {
    for (int64_t Ch = 0; Ch < C; ++Ch) {
      for (int64_t K = 0; K < Inner; ++K, ++I) {
        // The vectorized kernel: one fma, then quantize with scale 1.
        float Y = std::fma(Alpha[Ch], static_cast<float>(V[I]), Beta[Ch]);
        if (Out.Relu)
          Y = std::max(Y, 0.0f);
        V[I] =
            static_cast<int32_t>(quantizeValue(Y, 1.0f, Out.ZeroPoint, Lo, Hi));
      }
    }
  }
  return makeQuantized(X.dtype(), OS, V, Out.Scale, Out.ZeroPoint);
}

//===----------------------------------------------------------------------===//
// Elementwise ops
//===----------------------------------------------------------------------===//

namespace {

/// Calls \p Fn(I, IA, IB) for every element I of the broadcast shape of
/// \p SA and \p SB, with the flat indices it reads from each operand.
template <typename F>
void forEachBroadcast(ArrayRef<int64_t> SA, ArrayRef<int64_t> SB, F Fn) {
  Shape OS = checkedShape(ref::broadcastShape(SA, SB));
  size_t R = OS.size();
  // Row-major strides of each operand laid over the output's dimensions,
  // 0 where the operand broadcasts.
  auto Aligned = [&](ArrayRef<int64_t> S) {
    SmallVector<int64_t, 8> St(R, 0);
    int64_t Stride = 1;
    for (size_t I = S.size(); I-- > 0;) {
      St[R - S.size() + I] = S[I] == 1 ? 0 : Stride;
      Stride *= S[I];
    }
    return St;
  };
  SmallVector<int64_t, 8> StA = Aligned(SA), StB = Aligned(SB), Idx(R, 0);
  int64_t OffA = 0, OffB = 0;
  for (int64_t I = 0, N = numElements(OS); I < N; ++I) {
    Fn(I, OffA, OffB);
    for (size_t D = R; D-- > 0;) {
      if (++Idx[D] < OS[D]) {
        OffA += StA[D];
        OffB += StB[D];
        break;
      }
      OffA -= StA[D] * (OS[D] - 1);
      OffB -= StB[D] * (OS[D] - 1);
      Idx[D] = 0;
    }
  }
}

} // namespace

Tensor add(const Tensor &A, const Tensor &B, const OutputQuant &Out) {
  FmaDequant DA(A.quant()), DB(B.quant());
  std::vector<int32_t> VA = ints(A), VB = ints(B);
  Shape OS = checkedShape(ref::broadcastShape(A.shape(), B.shape()));
  std::vector<int32_t> V(numElements(OS));
  float Inv = 1.0f / static_cast<float>(Out.Scale);
  int64_t Lo = quantMin(A.dtype()), Hi = quantMax(A.dtype());
  forEachBroadcast(
      A.shape(), B.shape(), [&](int64_t I, int64_t IA, int64_t IB) {
        float C = DA(VA[IA]) + DB(VB[IB]);
        if (Out.Relu)
          C = std::max(C, 0.0f);
        V[I] =
            static_cast<int32_t>(quantizeValue(C, Inv, Out.ZeroPoint, Lo, Hi));
      });
  return makeQuantized(A.dtype(), OS, V, Out.Scale, Out.ZeroPoint);
}

Tensor mul(const Tensor &A, const Tensor &B, const OutputQuant &Out) {
  std::vector<int32_t> VA = centered(A, A.quant().ZeroPoint);
  std::vector<int32_t> VB = centered(B, B.quant().ZeroPoint);
  Shape OS = checkedShape(ref::broadcastShape(A.shape(), B.shape()));
  std::vector<int32_t> V(numElements(OS));
  float Multiplier = static_cast<float>(A.quant().Scale) *
                     static_cast<float>(B.quant().Scale) *
                     (1.0f / static_cast<float>(Out.Scale));
  int64_t Lo = quantMin(A.dtype()), Hi = quantMax(A.dtype());
  forEachBroadcast(
      A.shape(), B.shape(), [&](int64_t I, int64_t IA, int64_t IB) {
        float P = static_cast<float>(VA[IA] * VB[IB]);
        int64_t Q = quantizeValue(P, Multiplier, Out.ZeroPoint, Lo, Hi);
        if (Out.Relu)
          Q = std::max(Q, Out.ZeroPoint);
        V[I] = static_cast<int32_t>(Q);
      });
  return makeQuantized(A.dtype(), OS, V, Out.Scale, Out.ZeroPoint);
}

Tensor cat(ArrayRef<Tensor> Inputs, int64_t Dim, double Scale,
           int64_t ZeroPoint) {
  assert(!Inputs.empty() && "cat of no tensors");
  DType T = Inputs[0].dtype();
  QuantParams Want = QuantParams::perTensor(Scale, ZeroPoint);
  // Integers are copied when they already have the output's qparams (the
  // dequantize-quantize round trip PyTorch does is then the identity).
  std::vector<Tensor> Parts;
  for (const Tensor &In : Inputs) {
    if (In.quant() == Want && In.dtype() == T)
      Parts.push_back(In);
    else
      Parts.push_back(quantizeFloats(dequantize(In), T, Scale, ZeroPoint));
  }
  Tensor Y = ref::cat(Parts, Dim);
  Y.setQuant(Want);
  return Y;
}

Tensor mapFloat(const Tensor &X, function_ref<Tensor(const Tensor &)> Fn,
                double Scale, int64_t ZeroPoint) {
  return quantizeFloats(Fn(dequantizeFma(X)), X.dtype(), Scale, ZeroPoint);
}

Tensor softmax(const Tensor &X, int64_t Dim, double Scale, int64_t ZeroPoint) {
  // PyTorch's fallback: Tensor.dequantize(), float softmax, quantize.
  return quantizeFloats(ref::softmax(dequantize(X), Dim), X.dtype(), Scale,
                        ZeroPoint);
}

//===----------------------------------------------------------------------===//
// Dtype-generic ops on quantized tensors
//===----------------------------------------------------------------------===//

Tensor maxPool2d(const Tensor &X, const ref::Pool2dParams &P) {
  Shape OS = checkedShape(ref::pool2dShape(X.shape(), P));
  const int64_t Planes = OS[0] * OS[1], OH = OS[2], OW = OS[3];
  const int64_t IH = X.dim(2), IW = X.dim(3);
  std::vector<int32_t> XI = ints(X), V(numElements(OS));
  for (int64_t PI = 0; PI < Planes; ++PI) {
    const int32_t *XP = XI.data() + PI * IH * IW;
    for (int64_t OY = 0; OY < OH; ++OY) {
      for (int64_t OX = 0; OX < OW; ++OX) {
        // Padding never wins; a window entirely in padding gives the
        // dtype's minimum.
        int32_t M = static_cast<int32_t>(quantMin(X.dtype()));
        for (int64_t KY = 0; KY < P.Kernel[0]; ++KY) {
          int64_t IY = OY * P.Stride[0] - P.Padding[0] + KY * P.Dilation[0];
          if (IY < 0 || IY >= IH)
            continue;
          for (int64_t KX = 0; KX < P.Kernel[1]; ++KX) {
            int64_t IX = OX * P.Stride[1] - P.Padding[1] + KX * P.Dilation[1];
            if (IX >= 0 && IX < IW)
              M = std::max(M, XP[IY * IW + IX]);
          }
        }
        V[(PI * OH + OY) * OW + OX] = M;
      }
    }
  }
  return makeQuantized(X.dtype(), OS, V, X.quant().Scale, X.quant().ZeroPoint);
}

Tensor avgPool2d(const Tensor &X, const ref::Pool2dParams &P) {
  Shape OS = checkedShape(ref::pool2dShape(X.shape(), P));
  const int64_t Planes = OS[0] * OS[1], OH = OS[2], OW = OS[3];
  const int64_t IH = X.dim(2), IW = X.dim(3);
  const int64_t Z = X.quant().ZeroPoint;
  const int64_t Lo = quantMin(X.dtype()), Hi = quantMax(X.dtype());
  std::vector<int32_t> XI = ints(X), V(numElements(OS));
  for (int64_t PI = 0; PI < Planes; ++PI) {
    const int32_t *XP = XI.data() + PI * IH * IW;
    for (int64_t OY = 0; OY < OH; ++OY) {
      int64_t Y0, Y1, PadH;
      ref::avgPoolWindow(OY, P.Kernel[0], P.Stride[0], P.Padding[0], IH, Y0, Y1,
                         PadH);
      for (int64_t OX = 0; OX < OW; ++OX) {
        int64_t X0, X1, PadW;
        ref::avgPoolWindow(OX, P.Kernel[1], P.Stride[1], P.Padding[1], IW, X0,
                           X1, PadW);
        int64_t Size =
            std::max<int64_t>(Y1 - Y0, 0) * std::max<int64_t>(X1 - X0, 0);
        int32_t &Out = V[(PI * OH + OY) * OW + OX];
        if (Size == 0) {
          Out = static_cast<int32_t>(Z); // real zero
          continue;
        }
        int64_t Sum = 0;
        for (int64_t IY = Y0; IY < Y1; ++IY)
          for (int64_t IX = X0; IX < X1; ++IX)
            Sum += XP[IY * IW + IX];
        int64_t Div = P.DivisorOverride   ? *P.DivisorOverride
                      : P.CountIncludePad ? PadH * PadW
                                          : Size;
        // PyTorch: nearbyint(float(sum - size * zp) * multiplier + zp) with
        // multiplier = float(1.0 / divisor): padding counts as real zero and
        // ties round to even.
        float Multiplier = static_cast<float>(1.0 / static_cast<double>(Div));
        float R =
            std::nearbyint(static_cast<float>(Sum - Size * Z) * Multiplier +
                           static_cast<float>(Z));
        Out = static_cast<int32_t>(std::min<float>(std::max<float>(R, Lo), Hi));
      }
    }
  }
  return makeQuantized(X.dtype(), OS, V, X.quant().Scale, X.quant().ZeroPoint);
}

Tensor adaptiveAvgPool2d(const Tensor &X, std::array<int64_t, 2> Output) {
  Shape OS = checkedShape(ref::adaptivePool2dShape(X.shape(), Output));
  const int64_t Planes = OS[0] * OS[1], OH = OS[2], OW = OS[3];
  const int64_t IH = X.dim(2), IW = X.dim(3);
  std::vector<int32_t> XI = ints(X), V(numElements(OS));
  auto CeilDiv = [](int64_t A, int64_t B) { return (A + B - 1) / B; };
  for (int64_t PI = 0; PI < Planes; ++PI) {
    const int32_t *XP = XI.data() + PI * IH * IW;
    for (int64_t OY = 0; OY < OH; ++OY) {
      int64_t Y0 = OY * IH / OH, Y1 = CeilDiv((OY + 1) * IH, OH);
      for (int64_t OX = 0; OX < OW; ++OX) {
        int64_t X0 = OX * IW / OW, X1 = CeilDiv((OX + 1) * IW, OW);
        int64_t Sum = 0;
        for (int64_t IY = Y0; IY < Y1; ++IY)
          for (int64_t IX = X0; IX < X1; ++IX)
            Sum += XP[IY * IW + IX];
        // The average of the raw integers (the zero point averages to
        // itself), divided by the window's height and width in turn.
        float Avg = static_cast<float>(Sum) / static_cast<float>(Y1 - Y0) /
                    static_cast<float>(X1 - X0);
        V[(PI * OH + OY) * OW + OX] = static_cast<int32_t>(std::nearbyint(Avg));
      }
    }
  }
  return makeQuantized(X.dtype(), OS, V, X.quant().Scale, X.quant().ZeroPoint);
}

Tensor mean(const Tensor &X, ArrayRef<int64_t> Dims, bool KeepDim) {
  Shape OS = checkedShape(ref::meanShape(X.shape(), Dims, KeepDim));
  int64_t Rank = X.rank();
  SmallVector<bool, 8> Reduce(Rank, Dims.empty());
  for (int64_t D : Dims)
    if (Rank > 0)
      Reduce[D < 0 ? D + Rank : D] = true;
  // Output strides over the input's dimensions (0 on reduced ones) map each
  // input element to the output element it contributes to.
  SmallVector<int64_t, 8> St(Rank, 0);
  int64_t Stride = 1, Count = 1;
  for (int64_t I = Rank; I-- > 0;) {
    if (Reduce[I]) {
      Count *= X.dim(I);
      continue;
    }
    St[I] = Stride;
    Stride *= X.dim(I);
  }
  std::vector<int64_t> Sum(numElements(OS), 0);
  std::vector<int32_t> XI = ints(X);
  SmallVector<int64_t, 8> Idx(Rank, 0);
  int64_t Off = 0;
  for (size_t I = 0; I < XI.size(); ++I) {
    Sum[Off] += XI[I];
    for (int64_t D = Rank; D-- > 0;) {
      if (++Idx[D] < X.dim(D)) {
        Off += St[D];
        break;
      }
      Off -= St[D] * (X.dim(D) - 1);
      Idx[D] = 0;
    }
  }
  // PyTorch's integer mean: nearbyint(float(sum) / count); an empty
  // reduction gives the zero point (real zero).
  std::vector<int32_t> V(Sum.size());
  for (size_t I = 0; I < Sum.size(); ++I)
    V[I] = Count == 0
               ? static_cast<int32_t>(X.quant().ZeroPoint)
               : static_cast<int32_t>(std::nearbyint(
                     static_cast<float>(Sum[I]) / static_cast<float>(Count)));
  return makeQuantized(X.dtype(), OS, V, X.quant().Scale, X.quant().ZeroPoint);
}

Tensor relu(const Tensor &X) {
  std::vector<int32_t> V = ints(X);
  int32_t Z = static_cast<int32_t>(X.quant().ZeroPoint);
  for (int32_t &E : V)
    E = std::max(E, Z);
  return makeQuantized(X.dtype(), X.shape(), V, X.quant().Scale, Z);
}

Tensor clamp(const Tensor &X, double Min, double Max) {
  const QuantParams &Q = X.quant();
  float Inv = 1.0f / static_cast<float>(Q.Scale);
  int64_t Lo = quantMin(X.dtype()), Hi = quantMax(X.dtype());
  int32_t QLo = static_cast<int32_t>(
      quantizeValue(static_cast<float>(Min), Inv, Q.ZeroPoint, Lo, Hi));
  int32_t QHi = static_cast<int32_t>(
      quantizeValue(static_cast<float>(Max), Inv, Q.ZeroPoint, Lo, Hi));
  std::vector<int32_t> V = ints(X);
  for (int32_t &E : V)
    E = std::min(std::max(E, QLo), QHi);
  return makeQuantized(X.dtype(), X.shape(), V, Q.Scale, Q.ZeroPoint);
}

} // namespace qref
} // namespace qfx
