//===- KernelsArith.cpp - Reference kernels of the arith family -----------===//
//
// sub / div / neg / reciprocal reuse the broadcasting loop of ref::add by
// composing it; interpolate and embedding copy the index and weight rules of
// PyTorch 1.13's CPU kernels (UpSample.h, UpSampleKernel.cpp and the
// quantized UpSampleBilinear2d.cpp) so results match bit for bit where the
// arithmetic order allows.
//
//===----------------------------------------------------------------------===//

#include "qfx/Runtime/KernelsArith.h"

#include "QuantKernels.h"

#include "qfx/Runtime/Kernels.h"
#include "qfx/Support/Error.h"

#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/Twine.h"

#include <algorithm>
#include <cmath>
#include <cstring>

using namespace llvm;

namespace qfx {
namespace ref {

namespace {

void requireF32(const Tensor &T) {
  if (T.dtype() != DType::F32 || !T.hasData())
    report_fatal_error("reference kernel expects f32 tensors with data");
}

template <typename F> Tensor mapF32(const Tensor &X, F Fn) {
  requireF32(X);
  Tensor Y = Tensor::uninitialized(DType::F32, X.shape());
  const float *In = X.data<float>();
  float *Out = Y.data<float>();
  for (int64_t I = 0, N = X.numElements(); I < N; ++I)
    Out[I] = Fn(In[I]);
  return Y;
}

float roundQuotient(float Q, DivRounding R) {
  switch (R) {
  case DivRounding::None:
    return Q;
  case DivRounding::Trunc:
    return std::trunc(Q);
  case DivRounding::Floor:
    return std::floor(Q);
  }
  return Q;
}

/// Row-major strides of \p S.
SmallVector<int64_t, 8> stridesOf(ArrayRef<int64_t> S) {
  SmallVector<int64_t, 8> St(S.size(), 1);
  for (size_t I = S.size(); I-- > 1;)
    St[I - 1] = St[I] * S[I];
  return St;
}

/// Broadcasting \p Fn(a, b) over f32 tensors (shapes already validated).
template <typename F>
Tensor broadcastBinary(const Tensor &A, const Tensor &B, F Fn) {
  requireF32(A);
  requireF32(B);
  Expected<Shape> OSE = broadcastShape(A.shape(), B.shape());
  if (!OSE)
    report_fatal_error("reference kernel called with invalid operands: " +
                       Twine(errorToString(OSE.takeError())));
  Shape OS = *OSE;
  Tensor Y = Tensor::uninitialized(DType::F32, OS);
  const float *PA = A.data<float>(), *PB = B.data<float>();
  float *Out = Y.data<float>();
  int64_t N = Y.numElements();
  if (A.shape() == B.shape()) {
    for (int64_t I = 0; I < N; ++I)
      Out[I] = Fn(PA[I], PB[I]);
    return Y;
  }
  auto Aligned = [&](ArrayRef<int64_t> S) {
    SmallVector<int64_t, 8> St(OS.size(), 0), Own = stridesOf(S);
    size_t Lead = OS.size() - S.size();
    for (size_t I = 0; I < S.size(); ++I)
      St[Lead + I] = S[I] == 1 ? 0 : Own[I];
    return St;
  };
  SmallVector<int64_t, 8> SA = Aligned(A.shape()), SB = Aligned(B.shape());
  SmallVector<int64_t, 8> Idx(OS.size(), 0);
  int64_t OA = 0, OB = 0;
  for (int64_t I = 0; I < N; ++I) {
    Out[I] = Fn(PA[OA], PB[OB]);
    for (size_t D = OS.size(); D-- > 0;) {
      if (++Idx[D] < OS[D]) {
        OA += SA[D];
        OB += SB[D];
        break;
      }
      OA -= SA[D] * (OS[D] - 1);
      OB -= SB[D] * (OS[D] - 1);
      Idx[D] = 0;
    }
  }
  return Y;
}

} // namespace

//===----------------------------------------------------------------------===//
// Arithmetic
//===----------------------------------------------------------------------===//

Tensor sub(const Tensor &A, const Tensor &B, double Alpha) {
  if (Alpha == 1.0)
    return broadcastBinary(A, B, [](float X, float Y) { return X - Y; });
  float NegAlpha = static_cast<float>(-Alpha);
  return broadcastBinary(A, B,
                         [=](float X, float Y) { return X + NegAlpha * Y; });
}

Tensor div(const Tensor &A, const Tensor &B, DivRounding R) {
  return broadcastBinary(
      A, B, [=](float X, float Y) { return roundQuotient(X / Y, R); });
}

Tensor divScalar(const Tensor &A, double S, DivRounding R) {
  float F = static_cast<float>(S);
  return mapF32(A, [=](float X) { return roundQuotient(X / F, R); });
}

Tensor rsubScalar(const Tensor &A, double S, double Alpha) {
  float F = static_cast<float>(S), Al = static_cast<float>(Alpha);
  if (Alpha == 1.0)
    return mapF32(A, [=](float X) { return F - X; });
  return mapF32(A, [=](float X) { return F - Al * X; });
}

Tensor neg(const Tensor &A) {
  return mapF32(A, [](float X) { return -X; });
}

Tensor reciprocal(const Tensor &A) {
  return mapF32(A, [](float X) { return 1.0f / X; });
}

//===----------------------------------------------------------------------===//
// interpolate
//===----------------------------------------------------------------------===//

Expected<Shape> interpolateShape(ArrayRef<int64_t> Input,
                                 const InterpParams &P) {
  if (Input.size() != 4)
    return makeError("interpolate: input: expected a 4-d [N, C, H, W] tensor, "
                     "got shape " +
                     formatShape(Input));
  for (int64_t S : P.Size)
    if (S <= 0)
      return makeError("interpolate: size: output size must be positive, "
                       "got [" +
                       Twine(P.Size[0]) + "," + Twine(P.Size[1]) + "]");
  for (int64_t I = 2; I < 4; ++I)
    if (Input[I] <= 0)
      return makeError("interpolate: input: spatial extents must be "
                       "positive, got shape " +
                       formatShape(Input));
  Shape Out{Input[0], Input[1], P.Size[0], P.Size[1]};
  // Scale factors from a file can ask for absurd outputs.
  if (Expected<int64_t> N = checkedNumElements(Out); !N) {
    consumeError(N.takeError());
    return makeError("interpolate: size: output shape " + formatShape(Out) +
                     " is too large");
  }
  return Out;
}

/// compute_scales_value<float>: 1/scale when given, else in/out.
static float scaleValue(std::optional<double> Scale, int64_t In, int64_t Out) {
  return Scale && *Scale > 0.0 ? static_cast<float>(1.0 / *Scale)
                               : static_cast<float>(In) / Out;
}

int64_t nearestSourceIndex(int64_t Dst, int64_t In, int64_t Out,
                           std::optional<double> Scale) {
  if (Out == In)
    return Dst;
  if (Out == 2 * In)
    return Dst >> 1;
  float S = scaleValue(Scale, In, Out);
  auto Src = static_cast<int64_t>(std::floor(static_cast<float>(Dst) * S));
  return std::min(Src, In - 1);
}

LinearTap linearSourceTap(int64_t Dst, int64_t In, int64_t Out,
                          bool AlignCorners, std::optional<double> Scale,
                          bool Quantized) {
  LinearTap T;
  if (!Quantized && Out == In) {
    T.I0 = T.I1 = Dst;
    return T;
  }
  // area_pixel_compute_scale<float>.
  float S;
  if (AlignCorners)
    S = Out > 1 ? static_cast<float>(In - 1) / (Out - 1) : 0.0f;
  else
    S = scaleValue(Scale, In, Out);
  // area_pixel_compute_source_index<float>: the half-pixel offset is
  // computed in double (dst + 0.5 is a double), then rounded to float.
  float Real;
  if (AlignCorners) {
    Real = S * static_cast<float>(Dst);
  } else {
    // The quantized kernel's offset is all float (checked against PyTorch
    // 1.13's outputs: the double form differs at scale factor 1.5).
    Real = Quantized ? S * (static_cast<float>(Dst) + 0.5f) - 0.5f
                     : static_cast<float>(S * (Dst + 0.5) - 0.5);
    if (Real < 0)
      Real = 0;
  }
  T.I0 = static_cast<int64_t>(Real);
  T.I1 = T.I0 + (T.I0 < In - 1 ? 1 : 0);
  float L1 = Real - static_cast<float>(T.I0);
  if (!Quantized)
    L1 = std::min(std::max(L1, 0.0f), 1.0f);
  T.L1 = L1;
  T.L0 = 1.0f - L1;
  return T;
}

namespace {

/// The per-axis source indices (nearest) or taps (bilinear) of \p P.
struct Taps {
  std::vector<LinearTap> H, W;
};

Taps computeTaps(ArrayRef<int64_t> In, const InterpParams &P, bool Quantized) {
  Taps T;
  for (int Axis = 0; Axis < 2; ++Axis) {
    int64_t I = In[2 + Axis], O = P.Size[Axis];
    std::vector<LinearTap> &V = Axis ? T.W : T.H;
    V.resize(O);
    for (int64_t D = 0; D < O; ++D) {
      if (P.Mode == InterpMode::Nearest) {
        V[D].I0 = V[D].I1 = nearestSourceIndex(D, I, O, P.Scales[Axis]);
        continue;
      }
      V[D] =
          linearSourceTap(D, I, O, P.AlignCorners, P.Scales[Axis], Quantized);
    }
  }
  return T;
}

} // namespace

Tensor interpolate(const Tensor &X, const InterpParams &P) {
  requireF32(X);
  Expected<Shape> OS = interpolateShape(X.shape(), P);
  if (!OS)
    report_fatal_error("reference kernel called with invalid operands: " +
                       Twine(errorToString(OS.takeError())));
  Tensor Y = Tensor::uninitialized(DType::F32, *OS);
  Taps T = computeTaps(X.shape(), P, false);
  int64_t Planes = X.dim(0) * X.dim(1), IH = X.dim(2), IW = X.dim(3);
  int64_t OH = P.Size[0], OW = P.Size[1];
  for (int64_t C = 0; C < Planes; ++C) {
    const float *In = X.data<float>() + C * IH * IW;
    float *Out = Y.data<float>() + C * OH * OW;
    for (int64_t H = 0; H < OH; ++H) {
      const LinearTap &TH = T.H[H];
      const float *R0 = In + TH.I0 * IW, *R1 = In + TH.I1 * IW;
      for (int64_t W = 0; W < OW; ++W) {
        const LinearTap &TW = T.W[W];
        if (P.Mode == InterpMode::Nearest) {
          Out[H * OW + W] = R0[TW.I0];
          continue;
        }
        // Interpolate<2, float, int64_t, 2>: rows first, then columns.
        float T0 = R0[TW.I0] * TW.L0 + R0[TW.I1] * TW.L1;
        float T1 = R1[TW.I0] * TW.L0 + R1[TW.I1] * TW.L1;
        Out[H * OW + W] = T0 * TH.L0 + T1 * TH.L1;
      }
    }
  }
  return Y;
}

namespace {

template <typename Q>
void interpolatePlanes(const Tensor &X, Tensor &Y, const InterpParams &P,
                       const Taps &T) {
  int64_t Planes = X.dim(0) * X.dim(1), IH = X.dim(2), IW = X.dim(3);
  int64_t OH = P.Size[0], OW = P.Size[1];
  int64_t Zp = X.quant().ZeroPoint;
  int64_t QMin = qref::quantMin(X.dtype()), QMax = qref::quantMax(X.dtype());
  for (int64_t C = 0; C < Planes; ++C) {
    const Q *In = X.data<Q>() + C * IH * IW;
    Q *Out = Y.data<Q>() + C * OH * OW;
    for (int64_t H = 0; H < OH; ++H) {
      const LinearTap &TH = T.H[H];
      const Q *R0 = In + TH.I0 * IW, *R1 = In + TH.I1 * IW;
      for (int64_t W = 0; W < OW; ++W) {
        const LinearTap &TW = T.W[W];
        if (P.Mode == InterpMode::Nearest) {
          Out[H * OW + W] = R0[TW.I0];
          continue;
        }
        // quantized upsample_bilinear2d: interpolate the integers, remove
        // the zero point, round half to even (the same qparams out; PyTorch
        // 1.13's outputs match this, not a round trip through the scale).
        float R = TH.L0 * (TW.L0 * R0[TW.I0] + TW.L1 * R0[TW.I1]) +
                  TH.L1 * (TW.L0 * R1[TW.I0] + TW.L1 * R1[TW.I1]) -
                  static_cast<float>(Zp);
        float V = static_cast<float>(Zp) + std::nearbyint(R);
        Out[H * OW + W] = static_cast<Q>(
            std::min<float>(std::max<float>(V, static_cast<float>(QMin)),
                            static_cast<float>(QMax)));
      }
    }
  }
}

} // namespace

Tensor interpolateQuantized(const Tensor &X, const InterpParams &P) {
  Expected<Shape> OS = interpolateShape(X.shape(), P);
  if (!OS || !X.quant().isPerTensor() || !X.hasData())
    report_fatal_error("quantized interpolate called with invalid operands");
  Tensor Y = Tensor::uninitialized(X.dtype(), *OS);
  Y.setQuant(X.quant());
  Taps T = computeTaps(X.shape(), P, true);
  if (X.dtype() == DType::U8)
    interpolatePlanes<uint8_t>(X, Y, P, T);
  else
    interpolatePlanes<int8_t>(X, Y, P, T);
  return Y;
}

//===----------------------------------------------------------------------===//
// embedding
//===----------------------------------------------------------------------===//

Expected<Tensor> embedding(const Tensor &Indices, const Tensor &Weight) {
  requireF32(Weight);
  assert(Weight.rank() == 2 && "embedding weight is [num, dim]");
  int64_t Num = Weight.dim(0), Dim = Weight.dim(1);
  Shape OS(Indices.shape().begin(), Indices.shape().end());
  OS.push_back(Dim);
  Tensor Y = Tensor::uninitialized(DType::F32, OS);
  for (int64_t I = 0, N = Indices.numElements(); I < N; ++I) {
    int64_t Idx = Indices.dtype() == DType::S64
                      ? Indices.data<int64_t>()[I]
                      : static_cast<int64_t>(Indices.data<int32_t>()[I]);
    // PyTorch's index_select rejects negative indices too.
    if (Idx < 0 || Idx >= Num)
      return makeError("embedding: input: index " + Twine(Idx) +
                       " is out of range for " + Twine(Num) + " embeddings");
    std::memcpy(Y.data<float>() + I * Dim, Weight.data<float>() + Idx * Dim,
                sizeof(float) * Dim);
  }
  return Y;
}

//===----------------------------------------------------------------------===//
// narrow, split, chunk
//===----------------------------------------------------------------------===//

Expected<Shape> narrowShape(ArrayRef<int64_t> Input, int64_t Dim, int64_t Start,
                            int64_t Length) {
  if (Input.empty())
    return makeError("narrow: input: cannot be applied to a 0-dim tensor");
  Expected<int64_t> D = normalizeDim(Dim, static_cast<int64_t>(Input.size()));
  if (!D)
    return makeError("narrow: dim: " + Twine(errorToString(D.takeError())));
  int64_t Extent = Input[*D];
  if (Start < -Extent || Start > Extent)
    return makeError("narrow: start: " + Twine(Start) +
                     " is out of range for extent " + Twine(Extent));
  int64_t S = Start < 0 ? Start + Extent : Start;
  if (Length < 0 || S + Length > Extent)
    return makeError("narrow: length: start (" + Twine(S) + ") + length (" +
                     Twine(Length) + ") exceeds extent " + Twine(Extent));
  Shape Out(Input.begin(), Input.end());
  Out[*D] = Length;
  return Out;
}

Tensor narrow(const Tensor &X, int64_t Dim, int64_t Start, int64_t Length) {
  Expected<Shape> OS = narrowShape(X.shape(), Dim, Start, Length);
  if (!OS || !X.hasData())
    report_fatal_error("narrow called with invalid operands");
  int64_t D = Dim < 0 ? Dim + X.rank() : Dim;
  int64_t S = Start < 0 ? Start + X.dim(D) : Start;
  Tensor Y = Tensor::uninitialized(X.dtype(), *OS);
  Y.setQuant(X.quant());
  size_t Elem = dtypeSize(X.dtype());
  int64_t Outer = 1, Inner = 1;
  for (int64_t I = 0; I < D; ++I)
    Outer *= X.dim(I);
  for (int64_t I = D + 1; I < X.rank(); ++I)
    Inner *= X.dim(I);
  const char *In = static_cast<const char *>(X.rawData());
  char *Out = static_cast<char *>(Y.rawData());
  size_t Row = Elem * Length * Inner;
  for (int64_t O = 0; O < Outer; ++O)
    std::memcpy(Out + O * Row, In + Elem * (O * X.dim(D) + S) * Inner, Row);
  return Y;
}

std::vector<int64_t> splitSizes(int64_t Extent, int64_t SplitSize) {
  assert(SplitSize > 0 || Extent == 0);
  if (Extent == 0)
    return {0};
  std::vector<int64_t> R;
  for (int64_t S = 0; S < Extent; S += SplitSize)
    R.push_back(std::min(SplitSize, Extent - S));
  return R;
}

std::vector<int64_t> chunkSizes(int64_t Extent, int64_t Chunks) {
  assert(Chunks > 0);
  int64_t Size = (Extent + Chunks - 1) / Chunks;
  if (Size == 0)
    return std::vector<int64_t>(Chunks, 0);
  return splitSizes(Extent, Size);
}

} // namespace ref
} // namespace qfx
