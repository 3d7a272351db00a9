//===- KernelsTransformer.cpp - Reference kernels of the transformer ops --===//

#include "TransformerKernels.h"

#include "qfx/Runtime/Kernels.h"
#include "qfx/Support/Error.h"

#include "llvm/ADT/Twine.h"

#include <cmath>
#include <cstring>

using namespace qfx;
using llvm::ArrayRef;
using llvm::Expected;
using llvm::Twine;

namespace {

/// Row-major strides of \p S.
Shape stridesOf(ArrayRef<int64_t> S) {
  Shape St(S.size(), 1);
  for (size_t I = S.size(); I-- > 1;)
    St[I - 1] = St[I] * S[I];
  return St;
}

/// The flat offset into a tensor of shape \p In for the multi-index \p Idx
/// of a broadcast result (aligned from the right; size-1 dims repeat).
int64_t broadcastOffset(ArrayRef<int64_t> Idx, ArrayRef<int64_t> In,
                        ArrayRef<int64_t> InStrides) {
  int64_t Off = 0;
  size_t Lead = Idx.size() - In.size();
  for (size_t I = 0; I < In.size(); ++I)
    if (In[I] != 1)
      Off += Idx[Lead + I] * InStrides[I];
  return Off;
}

/// Steps multi-index \p Idx through shape \p S; false after the last.
bool nextIndex(Shape &Idx, ArrayRef<int64_t> S) {
  for (size_t I = S.size(); I-- > 0;) {
    if (++Idx[I] < S[I])
      return true;
    Idx[I] = 0;
  }
  return false;
}

} // namespace

Expected<int64_t> ref::layerNormSize(ArrayRef<int64_t> In,
                                     ArrayRef<int64_t> Norm) {
  if (Norm.empty())
    return makeError("layer_norm: normalized_shape must not be empty");
  bool Fits = Norm.size() <= In.size();
  for (size_t I = 0; Fits && I < Norm.size(); ++I)
    Fits = In[In.size() - Norm.size() + I] == Norm[I];
  if (!Fits)
    return makeError("layer_norm: input " + formatShape(In) +
                     " does not end in normalized_shape " + formatShape(Norm));
  return numElements(Norm);
}

Expected<Shape> ref::matmulShape(ArrayRef<int64_t> A, ArrayRef<int64_t> B) {
  if (A.empty() || B.empty())
    return makeError("matmul: both arguments need at least 1 dimension, got " +
                     formatShape(A) + " and " + formatShape(B));
  Shape SA(A.begin(), A.end()), SB(B.begin(), B.end());
  if (SA.size() == 1)
    SA.insert(SA.begin(), 1);
  if (SB.size() == 1)
    SB.push_back(1);
  if (SA.back() != SB[SB.size() - 2])
    return makeError("matmul: shapes " + formatShape(A) + " and " +
                     formatShape(B) + " cannot be multiplied (" +
                     Twine(SA.back()) + " vs " + Twine(SB[SB.size() - 2]) +
                     ")");
  auto Batch = broadcastShape(ArrayRef<int64_t>(SA).drop_back(2),
                              ArrayRef<int64_t>(SB).drop_back(2));
  if (!Batch)
    return prefixError(Batch.takeError(), "matmul: batch dimensions");
  Shape Out = *Batch;
  if (A.size() > 1)
    Out.push_back(SA[SA.size() - 2]);
  if (B.size() > 1)
    Out.push_back(SB.back());
  return Out;
}

Expected<Shape> ref::bmmShape(ArrayRef<int64_t> A, ArrayRef<int64_t> B) {
  if (A.size() != 3 || B.size() != 3)
    return makeError("bmm: expected 3-d tensors, got " + formatShape(A) +
                     " and " + formatShape(B));
  if (A[0] != B[0] || A[2] != B[1])
    return makeError("bmm: shapes " + formatShape(A) + " and " +
                     formatShape(B) + " cannot be multiplied");
  return Shape{A[0], A[1], B[2]};
}

Expected<Shape> ref::expandShape(ArrayRef<int64_t> In, ArrayRef<int64_t> Sz) {
  if (Sz.size() < In.size())
    return makeError("expand: the number of sizes (" + Twine(Sz.size()) +
                     ") must be at least the tensor's rank (" +
                     Twine(In.size()) + ")");
  Shape Out(Sz.begin(), Sz.end());
  size_t Lead = Sz.size() - In.size();
  for (size_t I = 0; I < Sz.size(); ++I) {
    if (I < Lead) {
      if (Sz[I] < 0)
        return makeError("expand: -1 is not allowed in a new leading "
                         "dimension, got " +
                         formatShape(Sz));
      continue;
    }
    int64_t D = In[I - Lead];
    if (Sz[I] == -1) {
      Out[I] = D;
    } else if (Sz[I] < 0 || (D != 1 && D != Sz[I])) {
      return makeError("expand: cannot expand " + formatShape(In) + " to " +
                       formatShape(Sz));
    }
  }
  return Out;
}

Expected<ref::SelectSpec> ref::selectSpec(ArrayRef<int64_t> In, int64_t Dim,
                                          int64_t Index) {
  if (In.empty())
    return makeError("select: cannot select from a 0-d tensor");
  auto D = normalizeDim(Dim, static_cast<int64_t>(In.size()));
  if (!D)
    return prefixError(D.takeError(), "select");
  int64_t N = In[*D];
  if (Index < -N || Index >= N)
    return makeError("select: index " + Twine(Index) +
                     " out of range for dimension " + Twine(*D) + " of size " +
                     Twine(N));
  SelectSpec S{*D, Index < 0 ? Index + N : Index, Shape(In.begin(), In.end())};
  S.Out.erase(S.Out.begin() + *D);
  return S;
}

Tensor ref::layerNorm(const Tensor &X, int64_t M, const Tensor *W,
                      const Tensor *B, double Eps, std::vector<float> *Mean,
                      std::vector<float> *Rstd) {
  Tensor Y = Tensor::uninitialized(DType::F32, X.shape());
  int64_t Rows = M ? X.numElements() / M : 0;
  if (Mean)
    Mean->assign(Rows, 0.0f);
  if (Rstd)
    Rstd->assign(Rows, 0.0f);
  const float *In = X.data<float>();
  float *Out = Y.data<float>();
  const float *PW = W ? W->data<float>() : nullptr;
  const float *PB = B ? B->data<float>() : nullptr;
  for (int64_t R = 0; R < Rows; ++R) {
    const float *XR = In + R * M;
    double Sum = 0.0, Sq = 0.0;
    for (int64_t I = 0; I < M; ++I)
      Sum += XR[I];
    double Mu = Sum / double(M);
    for (int64_t I = 0; I < M; ++I)
      Sq += (XR[I] - Mu) * (XR[I] - Mu);
    double RS = 1.0 / std::sqrt(Sq / double(M) + Eps);
    for (int64_t I = 0; I < M; ++I) {
      double V = (XR[I] - Mu) * RS;
      if (PW)
        V *= PW[I];
      if (PB)
        V += PB[I];
      Out[R * M + I] = static_cast<float>(V);
    }
    if (Mean)
      (*Mean)[R] = static_cast<float>(Mu);
    if (Rstd)
      (*Rstd)[R] = static_cast<float>(RS);
  }
  return Y;
}

static constexpr double Sqrt1_2 = 0.70710678118654752440;
static constexpr double Sqrt2OverPi = 0.79788456080286535588;

Tensor ref::gelu(const Tensor &X, bool Tanh) {
  Tensor Y = Tensor::uninitialized(DType::F32, X.shape());
  const float *In = X.data<float>();
  float *Out = Y.data<float>();
  for (int64_t I = 0, N = X.numElements(); I < N; ++I) {
    double V = In[I];
    double C = Tanh ? std::tanh(Sqrt2OverPi * (V + 0.044715 * V * V * V))
                    : std::erf(V * Sqrt1_2);
    Out[I] = static_cast<float>(0.5 * V * (1.0 + C));
  }
  return Y;
}

Tensor ref::geluDerivative(const Tensor &X, bool Tanh) {
  Tensor Y = Tensor::uninitialized(DType::F32, X.shape());
  const float *In = X.data<float>();
  float *Out = Y.data<float>();
  const double InvSqrt2Pi = 0.39894228040143267794;
  for (int64_t I = 0, N = X.numElements(); I < N; ++I) {
    double V = In[I], D;
    if (Tanh) {
      double U = Sqrt2OverPi * (V + 0.044715 * V * V * V);
      double T = std::tanh(U);
      double DU = Sqrt2OverPi * (1.0 + 3.0 * 0.044715 * V * V);
      D = 0.5 * (1.0 + T) + 0.5 * V * (1.0 - T * T) * DU;
    } else {
      D = 0.5 * (1.0 + std::erf(V * Sqrt1_2)) +
          V * InvSqrt2Pi * std::exp(-0.5 * V * V);
    }
    Out[I] = static_cast<float>(D);
  }
  return Y;
}

Tensor ref::matmul(const Tensor &A, const Tensor &B) {
  Shape SA(A.shape().begin(), A.shape().end());
  Shape SB(B.shape().begin(), B.shape().end());
  if (SA.size() == 1)
    SA.insert(SA.begin(), 1);
  if (SB.size() == 1)
    SB.push_back(1);
  int64_t N = SA[SA.size() - 2], K = SA.back(), M = SB.back();
  ArrayRef<int64_t> BA = ArrayRef<int64_t>(SA).drop_back(2);
  ArrayRef<int64_t> BB = ArrayRef<int64_t>(SB).drop_back(2);
  Shape Batch = *broadcastShape(BA, BB);
  Shape StA = stridesOf(BA), StB = stridesOf(BB);
  Tensor Y(DType::F32, *matmulShape(A.shape(), B.shape()));
  const float *PA = A.data<float>(), *PB = B.data<float>();
  float *PY = Y.data<float>();
  Shape Idx(Batch.size(), 0);
  int64_t Out = 0;
  do {
    const float *MA = PA + broadcastOffset(Idx, BA, StA) * N * K;
    const float *MB = PB + broadcastOffset(Idx, BB, StB) * K * M;
    for (int64_t I = 0; I < N; ++I)
      for (int64_t J = 0; J < M; ++J) {
        double S = 0.0;
        for (int64_t L = 0; L < K; ++L)
          S += double(MA[I * K + L]) * MB[L * M + J];
        PY[Out + I * M + J] = static_cast<float>(S);
      }
    Out += N * M;
  } while (nextIndex(Idx, Batch));
  return Y;
}

Tensor ref::expand(const Tensor &X, ArrayRef<int64_t> OutShape) {
  Tensor Y(X.dtype(), OutShape);
  Y.setQuant(X.quant());
  Shape St = stridesOf(X.shape());
  size_t Elem = dtypeSize(X.dtype());
  const char *In = static_cast<const char *>(X.rawData());
  char *Out = static_cast<char *>(Y.rawData());
  if (Y.numElements() == 0)
    return Y;
  Shape Idx(OutShape.size(), 0);
  int64_t I = 0;
  do {
    std::memcpy(Out + I++ * Elem,
                In + broadcastOffset(Idx, X.shape(), St) * Elem, Elem);
  } while (nextIndex(Idx, OutShape));
  return Y;
}

Tensor ref::select(const Tensor &X, int64_t Dim, int64_t Index) {
  SelectSpec S = *selectSpec(X.shape(), Dim, Index);
  Tensor Y(X.dtype(), S.Out);
  Y.setQuant(X.quant());
  ArrayRef<int64_t> Sh = X.shape();
  int64_t Outer = numElements(Sh.take_front(S.Dim));
  int64_t Inner = numElements(Sh.drop_front(S.Dim + 1)) * dtypeSize(X.dtype());
  const char *In = static_cast<const char *>(X.rawData());
  char *Out = static_cast<char *>(Y.rawData());
  for (int64_t O = 0; O < Outer; ++O)
    std::memcpy(Out + O * Inner, In + (O * Sh[S.Dim] + S.Index) * Inner, Inner);
  return Y;
}

Tensor ref::sumTo(const Tensor &G, ArrayRef<int64_t> In) {
  Tensor R(DType::F32, In);
  Shape St = stridesOf(In);
  const float *PG = G.data<float>();
  float *PR = R.data<float>();
  if (G.numElements() == 0)
    return R;
  Shape Idx(G.rank(), 0);
  int64_t I = 0;
  do {
    PR[broadcastOffset(Idx, In, St)] += PG[I++];
  } while (nextIndex(Idx, G.shape()));
  return R;
}
