//===- Kernels.cpp - Reference float kernels ------------------------------===//

#include "qfx/Runtime/Kernels.h"
#include "qfx/Support/Error.h"

#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/Twine.h"
#include "llvm/Support/ErrorHandling.h"

#include <algorithm>
#include <array>
#include <cassert>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

using namespace llvm;

namespace qfx {
namespace ref {

namespace {

/// Kernels run on operands their shape function accepted; anything else is
/// a caller bug, reported loudly rather than computed wrongly.
Shape checkedShape(Expected<Shape> S) {
  if (!S)
    report_fatal_error("reference kernel called with invalid operands: " +
                       Twine(errorToString(S.takeError())));
  return std::move(*S);
}

void requireF32(const Tensor &T) {
  if (T.dtype() != DType::F32 || !T.hasData())
    report_fatal_error("reference kernel expects f32 tensors with data");
}

void requireData(const Tensor &T) {
  if (!T.hasData())
    report_fatal_error("reference kernel expects tensors with data");
}

/// Ceiling of A / B for A >= 0, B > 0.
int64_t ceilDiv(int64_t A, int64_t B) { return (A + B - 1) / B; }

/// The taps [Lo, Hi) of a K-tap window starting at \p Start with step \p D
/// that fall inside [0, Extent): skipping the rest is the same as reading
/// zero padding (conv) or ignoring it (pooling).
void validTaps(int64_t Start, int64_t K, int64_t D, int64_t Extent, int64_t &Lo,
               int64_t &Hi) {
  Lo = Start < 0 ? ceilDiv(-Start, D) : 0;
  Hi = Extent > Start ? std::min(K, ceilDiv(Extent - Start, D)) : 0;
}

/// The outputs [Lo, Hi) of a sliding window with stride \p S whose tap at
/// input offset \p Off (input index O * S + Off) falls inside [0, In);
/// the others read zero padding and are skipped.
void validOutputs(int64_t Off, int64_t S, int64_t In, int64_t Out, int64_t &Lo,
                  int64_t &Hi) {
  Lo = Off >= 0 ? 0 : ceilDiv(-Off, S);
  Hi = In - 1 - Off < 0 ? 0 : std::min(Out, (In - 1 - Off) / S + 1);
}

/// Row-major strides of \p S.
SmallVector<int64_t, 8> stridesOf(ArrayRef<int64_t> S) {
  SmallVector<int64_t, 8> St(S.size(), 1);
  for (size_t I = S.size(); I-- > 1;)
    St[I - 1] = St[I] * S[I];
  return St;
}

/// Calls \p Fn(I, Offs) for every element I of \p Shape in row-major order,
/// where Offs[k] = sum(index[d] * Strides[k][d]): reads tensors through
/// permuted or broadcast (zero) strides without per-element index math.
template <size_t K, typename F>
void forEachStrided(ArrayRef<int64_t> Shape,
                    std::array<ArrayRef<int64_t>, K> Strides, F Fn) {
  int64_t N = numElements(Shape);
  size_t R = Shape.size();
  SmallVector<int64_t, 8> Idx(R, 0);
  std::array<int64_t, K> Offs{};
  for (int64_t I = 0; I < N; ++I) {
    Fn(I, Offs);
    // Odometer increment of the multi-index, moving the offsets in step.
    for (size_t D = R; D-- > 0;) {
      if (++Idx[D] < Shape[D]) {
        for (size_t J = 0; J < K; ++J)
          Offs[J] += Strides[J][D];
        break;
      }
      for (size_t J = 0; J < K; ++J)
        Offs[J] -= Strides[J][D] * (Shape[D] - 1);
      Idx[D] = 0;
    }
  }
}

/// normalizeDim for kernels, whose callers validated the dimension.
int64_t checkedDim(int64_t Dim, int64_t Rank) {
  Expected<int64_t> D = normalizeDim(Dim, Rank);
  if (!D)
    report_fatal_error("reference kernel called with invalid operands: " +
                       Twine(errorToString(D.takeError())));
  return *D;
}

template <typename F> Tensor unary(const Tensor &X, F Fn) {
  requireF32(X);
  Tensor Y = Tensor::uninitialized(DType::F32, X.shape());
  const float *In = X.data<float>();
  float *Out = Y.data<float>();
  for (int64_t I = 0, N = X.numElements(); I < N; ++I)
    Out[I] = Fn(In[I]);
  return Y;
}

/// Broadcasting elementwise \p Fn(a, b).
template <typename F> Tensor binary(const Tensor &A, const Tensor &B, F Fn) {
  requireF32(A);
  requireF32(B);
  Shape OS = checkedShape(broadcastShape(A.shape(), B.shape()));
  Tensor Y(DType::F32, OS);
  const float *PA = A.data<float>(), *PB = B.data<float>();
  float *Out = Y.data<float>();
  if (A.shape() == B.shape()) {
    for (int64_t I = 0, N = Y.numElements(); I < N; ++I)
      Out[I] = Fn(PA[I], PB[I]);
    return Y;
  }
  // Strides over the output's dimensions: 0 where an operand broadcasts.
  auto Aligned = [&](ArrayRef<int64_t> S) {
    SmallVector<int64_t, 8> St(OS.size(), 0), Own = stridesOf(S);
    size_t Lead = OS.size() - S.size();
    for (size_t I = 0; I < S.size(); ++I)
      St[Lead + I] = S[I] == 1 ? 0 : Own[I];
    return St;
  };
  SmallVector<int64_t, 8> SA = Aligned(A.shape()), SB = Aligned(B.shape());
  forEachStrided<2>(OS, {SA, SB},
                    [&](int64_t I, const std::array<int64_t, 2> &Off) {
                      Out[I] = Fn(PA[Off[0]], PB[Off[1]]);
                    });
  return Y;
}

} // namespace

//===----------------------------------------------------------------------===//
// Convolution, linear, batch norm
//===----------------------------------------------------------------------===//

Tensor conv2d(const Tensor &X, const Tensor &W, const Tensor *Bias,
              const Conv2dParams &P) {
  requireF32(X);
  requireF32(W);
  std::optional<ArrayRef<int64_t>> BiasShape;
  if (Bias) {
    requireF32(*Bias);
    BiasShape = Bias->shape();
  }
  Shape OS = checkedShape(conv2dShape(X.shape(), W.shape(), BiasShape, P));
  Tensor Y(DType::F32, OS);
  const int64_t N = OS[0], OC = OS[1], OH = OS[2], OW = OS[3];
  const int64_t IC = X.dim(1), IH = X.dim(2), IW = X.dim(3);
  const int64_t ICG = W.dim(1), KH = W.dim(2), KW = W.dim(3);
  const int64_t OCG = OC / P.Groups;
  const int64_t SH = P.Stride[0], SW = P.Stride[1];
  const int64_t DH = P.Dilation[0], DW = P.Dilation[1];
  const float *XP = X.data<float>(), *WP = W.data<float>();
  const float *BP = Bias ? Bias->data<float>() : nullptr;
  float *YP = Y.data<float>();
  // Each output plane accumulates its taps in the order (ic, kh, kw), one
  // tap for the whole plane at a time: every output still sums in that fixed
  // order in float, but the inner loop runs along an input row.
  for (int64_t NI = 0; NI < N; ++NI) {
    for (int64_t O = 0; O < OC; ++O) {
      const float *XG = XP + (NI * IC + (O / OCG) * ICG) * IH * IW;
      const float *WO = WP + O * ICG * KH * KW;
      float *YO = YP + (NI * OC + O) * OH * OW;
      for (int64_t C = 0; C < ICG; ++C) {
        for (int64_t KY = 0; KY < KH; ++KY) {
          int64_t OffY = KY * DH - P.Padding[0], OYLo, OYHi;
          validOutputs(OffY, SH, IH, OH, OYLo, OYHi);
          for (int64_t KX = 0; KX < KW; ++KX) {
            int64_t OffX = KX * DW - P.Padding[1], OXLo, OXHi;
            validOutputs(OffX, SW, IW, OW, OXLo, OXHi);
            const float Wv = WO[(C * KH + KY) * KW + KX];
            for (int64_t OY = OYLo; OY < OYHi; ++OY) {
              const float *XR = XG + (C * IH + OY * SH + OffY) * IW + OffX;
              float *YR = YO + OY * OW;
              for (int64_t OX = OXLo; OX < OXHi; ++OX)
                YR[OX] += XR[OX * SW] * Wv;
            }
          }
        }
      }
      // The bias comes after the sum, as in PyTorch.
      if (BP)
        for (int64_t I = 0; I < OH * OW; ++I)
          YO[I] += BP[O];
    }
  }
  return Y;
}

Tensor linear(const Tensor &X, const Tensor &W, const Tensor *Bias) {
  requireF32(X);
  requireF32(W);
  std::optional<ArrayRef<int64_t>> BiasShape;
  if (Bias) {
    requireF32(*Bias);
    BiasShape = Bias->shape();
  }
  Shape OS = checkedShape(linearShape(X.shape(), W.shape(), BiasShape));
  Tensor Y(DType::F32, OS);
  const int64_t Out = W.dim(0), In = W.dim(1);
  const int64_t Rows = Out == 0 ? 0 : Y.numElements() / Out;
  const float *XP = X.data<float>(), *WP = W.data<float>();
  const float *BP = Bias ? Bias->data<float>() : nullptr;
  float *YP = Y.data<float>();
  for (int64_t R = 0; R < Rows; ++R) {
    const float *XR = XP + R * In;
    for (int64_t O = 0; O < Out; ++O) {
      const float *WR = WP + O * In;
      float Sum = 0.0f;
      for (int64_t I = 0; I < In; ++I)
        Sum += XR[I] * WR[I];
      YP[R * Out + O] = BP ? Sum + BP[O] : Sum;
    }
  }
  return Y;
}

Tensor batchNorm(const Tensor &X, const Tensor &Mean, const Tensor &Var,
                 const Tensor *Weight, const Tensor *Bias, double Eps) {
  requireF32(X);
  requireF32(Mean);
  requireF32(Var);
  Shape OS = checkedShape(batchNormShape(X.shape(), Mean.numElements()));
  const int64_t C = OS[1];
  auto CheckStat = [&](const Tensor *T) {
    if (!T)
      return;
    requireF32(*T);
    if (T->numElements() != C)
      report_fatal_error("batch_norm: statistics of the wrong length");
  };
  CheckStat(&Var);
  CheckStat(Weight);
  CheckStat(Bias);
  Tensor Y(DType::F32, OS);
  const int64_t N = OS[0];
  const int64_t Inner = numElements(ArrayRef<int64_t>(OS).drop_front(2));
  const float *XP = X.data<float>();
  float *YP = Y.data<float>();
  for (int64_t Ch = 0; Ch < C; ++Ch) {
    // Per-channel constants in double; the result is rounded once.
    double M = Mean.data<float>()[Ch];
    double InvStd = 1.0 / std::sqrt(double(Var.data<float>()[Ch]) + Eps);
    double G = Weight ? Weight->data<float>()[Ch] : 1.0;
    double B = Bias ? Bias->data<float>()[Ch] : 0.0;
    for (int64_t NI = 0; NI < N; ++NI) {
      int64_t Base = (NI * C + Ch) * Inner;
      for (int64_t I = 0; I < Inner; ++I)
        YP[Base + I] = static_cast<float>((XP[Base + I] - M) * InvStd * G + B);
    }
  }
  return Y;
}

//===----------------------------------------------------------------------===//
// Activations (NaN propagates, as in PyTorch)
//===----------------------------------------------------------------------===//

static float clampF(float X, float Lo, float Hi) {
  return std::isnan(X) ? X : std::min(std::max(X, Lo), Hi);
}

Tensor relu(const Tensor &X) {
  return unary(X, [](float V) { return std::isnan(V) || V > 0 ? V : 0.0f; });
}

Tensor relu6(const Tensor &X) {
  return unary(X, [](float V) { return clampF(V, 0.0f, 6.0f); });
}

Tensor hardtanh(const Tensor &X, double Min, double Max) {
  float Lo = static_cast<float>(Min), Hi = static_cast<float>(Max);
  return unary(X, [=](float V) { return clampF(V, Lo, Hi); });
}

Tensor hardswish(const Tensor &X) {
  return unary(X, [](float V) {
    return V * std::min(std::max(V + 3.0f, 0.0f), 6.0f) / 6.0f;
  });
}

Tensor hardsigmoid(const Tensor &X) {
  return unary(X, [](float V) {
    return std::min(std::max(V + 3.0f, 0.0f), 6.0f) / 6.0f;
  });
}

Tensor sigmoid(const Tensor &X) {
  return unary(X, [](float V) { return 1.0f / (1.0f + std::exp(-V)); });
}

Tensor tanh(const Tensor &X) {
  return unary(X, [](float V) { return std::tanh(V); });
}

Tensor silu(const Tensor &X) {
  return unary(X, [](float V) { return V / (1.0f + std::exp(-V)); });
}

Tensor leakyRelu(const Tensor &X, double NegativeSlope) {
  float S = static_cast<float>(NegativeSlope);
  return unary(X, [=](float V) { return V > 0 ? V : V * S; });
}

//===----------------------------------------------------------------------===//
// Pooling
//===----------------------------------------------------------------------===//

Tensor maxPool2d(const Tensor &X, const Pool2dParams &P) {
  requireF32(X);
  Shape OS = checkedShape(pool2dShape(X.shape(), P));
  Tensor Y(DType::F32, OS);
  const int64_t Planes = OS[0] * OS[1], OH = OS[2], OW = OS[3];
  const int64_t IH = X.dim(2), IW = X.dim(3);
  const int64_t DH = P.Dilation[0], DW = P.Dilation[1];
  for (int64_t PI = 0; PI < Planes; ++PI) {
    const float *XP = X.data<float>() + PI * IH * IW;
    float *YP = Y.data<float>() + PI * OH * OW;
    for (int64_t OY = 0; OY < OH; ++OY) {
      int64_t IY0 = OY * P.Stride[0] - P.Padding[0], KYLo, KYHi;
      validTaps(IY0, P.Kernel[0], DH, IH, KYLo, KYHi);
      for (int64_t OX = 0; OX < OW; ++OX) {
        int64_t IX0 = OX * P.Stride[1] - P.Padding[1], KXLo, KXHi;
        validTaps(IX0, P.Kernel[1], DW, IW, KXLo, KXHi);
        // Padding reads as -inf, so a window entirely in padding gives -inf.
        float M = -std::numeric_limits<float>::infinity();
        for (int64_t KY = KYLo; KY < KYHi; ++KY) {
          const float *XR = XP + (IY0 + KY * DH) * IW + IX0;
          for (int64_t KX = KXLo; KX < KXHi; ++KX) {
            float V = XR[KX * DW];
            if (V > M || std::isnan(V))
              M = V;
          }
        }
        YP[OY * OW + OX] = M;
      }
    }
  }
  return Y;
}

void avgPoolWindow(int64_t O, int64_t K, int64_t S, int64_t Pad, int64_t In,
                   int64_t &Start, int64_t &End, int64_t &Padded) {
  Start = O * S - Pad;
  End = std::min(Start + K, In + Pad);
  Padded = End - Start;
  Start = std::max<int64_t>(Start, 0);
  End = std::min(End, In);
}

Tensor avgPool2d(const Tensor &X, const Pool2dParams &P) {
  requireF32(X);
  assert(P.Dilation[0] == 1 && P.Dilation[1] == 1 &&
         "avg_pool2d has no dilation");
  Shape OS = checkedShape(pool2dShape(X.shape(), P));
  Tensor Y(DType::F32, OS);
  const int64_t Planes = OS[0] * OS[1], OH = OS[2], OW = OS[3];
  const int64_t IH = X.dim(2), IW = X.dim(3);
  for (int64_t PI = 0; PI < Planes; ++PI) {
    const float *XP = X.data<float>() + PI * IH * IW;
    float *YP = Y.data<float>() + PI * OH * OW;
    for (int64_t OY = 0; OY < OH; ++OY) {
      int64_t Y0, Y1, PadH;
      avgPoolWindow(OY, P.Kernel[0], P.Stride[0], P.Padding[0], IH, Y0, Y1,
                    PadH);
      for (int64_t OX = 0; OX < OW; ++OX) {
        int64_t X0, X1, PadW;
        avgPoolWindow(OX, P.Kernel[1], P.Stride[1], P.Padding[1], IW, X0, X1,
                      PadW);
        if (Y0 >= Y1 || X0 >= X1) {
          YP[OY * OW + OX] = 0.0f;
          continue;
        }
        float Sum = 0.0f;
        for (int64_t IY = Y0; IY < Y1; ++IY)
          for (int64_t IX = X0; IX < X1; ++IX)
            Sum += XP[IY * IW + IX];
        int64_t Div = P.DivisorOverride   ? *P.DivisorOverride
                      : P.CountIncludePad ? PadH * PadW
                                          : (Y1 - Y0) * (X1 - X0);
        YP[OY * OW + OX] = Sum / static_cast<float>(Div);
      }
    }
  }
  return Y;
}

Tensor adaptiveAvgPool2d(const Tensor &X, std::array<int64_t, 2> Output) {
  requireF32(X);
  Shape OS = checkedShape(adaptivePool2dShape(X.shape(), Output));
  Tensor Y(DType::F32, OS);
  const int64_t Planes = OS[0] * OS[1], OH = OS[2], OW = OS[3];
  const int64_t IH = X.dim(2), IW = X.dim(3);
  for (int64_t PI = 0; PI < Planes; ++PI) {
    const float *XP = X.data<float>() + PI * IH * IW;
    float *YP = Y.data<float>() + PI * OH * OW;
    for (int64_t OY = 0; OY < OH; ++OY) {
      int64_t Y0 = OY * IH / OH, Y1 = ceilDiv((OY + 1) * IH, OH);
      for (int64_t OX = 0; OX < OW; ++OX) {
        int64_t X0 = OX * IW / OW, X1 = ceilDiv((OX + 1) * IW, OW);
        float Sum = 0.0f;
        for (int64_t IY = Y0; IY < Y1; ++IY)
          for (int64_t IX = X0; IX < X1; ++IX)
            Sum += XP[IY * IW + IX];
        YP[OY * OW + OX] = Sum / static_cast<float>((Y1 - Y0) * (X1 - X0));
      }
    }
  }
  return Y;
}

//===----------------------------------------------------------------------===//
// Elementwise arithmetic (in float, with scalars rounded to float first, as
// PyTorch does for f32 tensors)
//===----------------------------------------------------------------------===//

Tensor add(const Tensor &A, const Tensor &B, double Alpha) {
  float Al = static_cast<float>(Alpha);
  if (Al == 1.0f)
    return binary(A, B, [](float X, float Y) { return X + Y; });
  return binary(A, B, [=](float X, float Y) { return X + Al * Y; });
}

Tensor mul(const Tensor &A, const Tensor &B) {
  return binary(A, B, [](float X, float Y) { return X * Y; });
}

Tensor addScalar(const Tensor &A, double S) {
  float F = static_cast<float>(S);
  return unary(A, [=](float X) { return X + F; });
}

Tensor mulScalar(const Tensor &A, double S) {
  float F = static_cast<float>(S);
  return unary(A, [=](float X) { return X * F; });
}

//===----------------------------------------------------------------------===//
// Data movement (any dtype; quantization parameters are not carried over)
//===----------------------------------------------------------------------===//

Tensor cat(ArrayRef<Tensor> Inputs, int64_t Dim) {
  SmallVector<Shape, 4> Shapes;
  for (const Tensor &T : Inputs) {
    requireData(T);
    if (T.dtype() != Inputs[0].dtype())
      report_fatal_error("cat: inputs of different dtypes");
    Shapes.emplace_back(T.shape().begin(), T.shape().end());
  }
  Shape OS = checkedShape(catShape(Shapes, Dim));
  int64_t D = checkedDim(Dim, OS.size());
  Tensor Y(Inputs[0].dtype(), OS);
  const size_t Elt = dtypeSize(Y.dtype());
  // Each input contributes one contiguous block per outer index.
  int64_t Outer = numElements(ArrayRef<int64_t>(OS).take_front(D));
  int64_t Inner = numElements(ArrayRef<int64_t>(OS).drop_front(D + 1));
  char *Out = static_cast<char *>(Y.rawData());
  for (int64_t O = 0; O < Outer; ++O) {
    for (const Tensor &T : Inputs) {
      size_t Bytes = T.dim(D) * Inner * Elt;
      if (Bytes == 0)
        continue;
      std::memcpy(Out, static_cast<const char *>(T.rawData()) + O * Bytes,
                  Bytes);
      Out += Bytes;
    }
  }
  return Y;
}

Tensor reshape(const Tensor &X, ArrayRef<int64_t> NewShape) {
  return X.reshaped(checkedShape(reshapeShape(X.shape(), NewShape)));
}

Tensor flatten(const Tensor &X, int64_t StartDim, int64_t EndDim) {
  return X.reshaped(checkedShape(flattenShape(X.shape(), StartDim, EndDim)));
}

Tensor permute(const Tensor &X, ArrayRef<int64_t> Dims) {
  requireData(X);
  Shape OS = checkedShape(permuteShape(X.shape(), Dims));
  Tensor Y(X.dtype(), OS);
  // Output dimension I reads input dimension Dims[I]: gather through the
  // input's strides in that order.
  SmallVector<int64_t, 8> InStrides = stridesOf(X.shape()), St;
  for (int64_t D : Dims)
    St.push_back(InStrides[checkedDim(D, X.rank())]);
  const size_t Elt = dtypeSize(X.dtype());
  const char *In = static_cast<const char *>(X.rawData());
  char *Out = static_cast<char *>(Y.rawData());
  forEachStrided<1>(OS, {St},
                    [&](int64_t I, const std::array<int64_t, 1> &Off) {
                      std::memcpy(Out + I * Elt, In + Off[0] * Elt, Elt);
                    });
  return Y;
}

Tensor transpose(const Tensor &X, int64_t Dim0, int64_t Dim1) {
  requireData(X);
  checkedShape(transposeShape(X.shape(), Dim0, Dim1));
  if (X.rank() == 0)
    return X.clone();
  SmallVector<int64_t, 8> Dims;
  for (int64_t I = 0; I < X.rank(); ++I)
    Dims.push_back(I);
  std::swap(Dims[checkedDim(Dim0, X.rank())], Dims[checkedDim(Dim1, X.rank())]);
  return permute(X, Dims);
}

//===----------------------------------------------------------------------===//
// Reductions
//===----------------------------------------------------------------------===//

Tensor mean(const Tensor &X, ArrayRef<int64_t> Dims, bool KeepDim) {
  requireF32(X);
  Shape OS = checkedShape(meanShape(X.shape(), Dims, KeepDim));
  // Output strides laid over the input's dimensions, 0 on reduced ones, map
  // every input element to the output element it contributes to.
  SmallVector<bool, 8> Reduce(X.rank(), Dims.empty());
  for (int64_t D : Dims)
    if (X.rank() > 0)
      Reduce[checkedDim(D, X.rank())] = true;
  SmallVector<int64_t, 8> St(X.rank(), 0);
  int64_t Stride = 1, Count = 1;
  for (int64_t I = X.rank(); I-- > 0;) {
    if (Reduce[I]) {
      Count *= X.dim(I);
      continue;
    }
    St[I] = Stride;
    Stride *= X.dim(I);
  }
  Tensor Y(DType::F32, OS);
  // Accumulate in double, in input order, then round once.
  std::vector<double> Acc(Y.numElements(), 0.0);
  const float *In = X.data<float>();
  forEachStrided<1>(X.shape(), {St},
                    [&](int64_t I, const std::array<int64_t, 1> &Off) {
                      Acc[Off[0]] += In[I];
                    });
  float *Out = Y.data<float>();
  for (size_t I = 0; I < Acc.size(); ++I)
    // A mean over no elements is NaN, as in PyTorch.
    Out[I] = static_cast<float>(Count == 0 ? std::nan("") : Acc[I] / Count);
  return Y;
}

Tensor softmax(const Tensor &X, int64_t Dim) {
  requireF32(X);
  int64_t D = checkedDim(Dim, X.rank());
  Tensor Y(DType::F32, X.shape());
  // A scalar is a one-element vector along dimension 0.
  ArrayRef<int64_t> S = X.shape();
  int64_t Outer = X.rank() ? numElements(S.take_front(D)) : 1;
  int64_t Len = X.rank() ? S[D] : 1;
  int64_t Inner = X.rank() ? numElements(S.drop_front(D + 1)) : 1;
  const float *In = X.data<float>();
  float *Out = Y.data<float>();
  for (int64_t O = 0; O < Outer; ++O) {
    for (int64_t I = 0; I < Inner; ++I) {
      const float *XR = In + O * Len * Inner + I;
      float *YR = Out + O * Len * Inner + I;
      float Max = -std::numeric_limits<float>::infinity();
      for (int64_t L = 0; L < Len; ++L)
        Max = std::max(Max, XR[L * Inner]);
      double Sum = 0.0;
      for (int64_t L = 0; L < Len; ++L) {
        YR[L * Inner] = std::exp(XR[L * Inner] - Max);
        Sum += YR[L * Inner];
      }
      for (int64_t L = 0; L < Len; ++L)
        YR[L * Inner] = static_cast<float>(YR[L * Inner] / Sum);
    }
  }
  return Y;
}

} // namespace ref
} // namespace qfx
