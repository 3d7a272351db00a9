//===- ElementwiseGrads.cpp - Backward of activations, shapes and loss ----===//
//
// The parameter-free half of GradKernels.h: activations, broadcasting
// arithmetic, data movement, mean, dropout and cross-entropy. Plain loops
// over contiguous row-major f32 tensors. Boundary cases copy the exact
// comparisons of PyTorch 1.13's CPU kernels (threshold_backward,
// hardtanh_backward, hardswish_backward, ...) so gradients at the kinks,
// and for NaN inputs, are PyTorch's.
//
//===----------------------------------------------------------------------===//

#include "qfx/Support/Error.h"
#include "qfx/Train/GradKernels.h"

#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/Twine.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>
#include <limits>

using namespace llvm;

namespace qfx {
namespace grad {

namespace {

bool isF32WithData(const Tensor &T) {
  return T.dtype() == DType::F32 && T.hasData();
}

/// Row-major strides of \p S.
SmallVector<int64_t, 8> stridesOf(ArrayRef<int64_t> S) {
  SmallVector<int64_t, 8> St(S.size(), 1);
  for (size_t I = S.size(); I-- > 1;)
    St[I - 1] = St[I] * S[I];
  return St;
}

/// Calls \p Fn(I, Off) for every element I of \p S in row-major order, where
/// Off = sum(index[d] * Strides[d]): walks a tensor of shape S against
/// another laid out with \p Strides (0 on broadcast or reduced dimensions).
template <typename F>
void forEachOffset(ArrayRef<int64_t> S, ArrayRef<int64_t> Strides, F Fn) {
  int64_t N = numElements(S);
  SmallVector<int64_t, 8> Idx(S.size(), 0);
  int64_t Off = 0;
  for (int64_t I = 0; I < N; ++I) {
    Fn(I, Off);
    // Odometer increment of the multi-index, moving the offset in step.
    for (size_t D = S.size(); D-- > 0;) {
      if (++Idx[D] < S[D]) {
        Off += Strides[D];
        break;
      }
      Off -= Strides[D] * (S[D] - 1);
      Idx[D] = 0;
    }
  }
}

/// Below this many elements a parallel loop costs more than it saves.
constexpr int64_t ParallelGrain = 1 << 15;

/// Elementwise \p Fn(x, g) over two same-shape tensors.
template <typename F> Tensor pointwise(const Tensor &X, const Tensor &G, F Fn) {
  assert(isF32WithData(X) && isF32WithData(G) && "grad kernels take f32");
  assert(X.shape() == G.shape() && "gradient shape differs from the input's");
  Tensor R = Tensor::uninitialized(DType::F32, X.shape());
  const float *PX = X.data<float>(), *PG = G.data<float>();
  float *Out = R.data<float>();
  const int64_t N = X.numElements();
  // Independent elements: threads cannot change the result.
#pragma omp parallel for schedule(static) if (N >= ParallelGrain)
  for (int64_t I = 0; I < N; ++I)
    Out[I] = Fn(PX[I], PG[I]);
  return R;
}

/// \p Dim normalized against \p Rank; callers validated it in the forward.
int64_t checkedDim(int64_t Dim, int64_t Rank) {
  Expected<int64_t> D = ref::normalizeDim(Dim, Rank);
  if (!D) {
    consumeError(D.takeError());
    assert(false && "grad kernel called with an invalid dimension");
    return 0;
  }
  return *D;
}

} // namespace

//===----------------------------------------------------------------------===//
// Activations
//===----------------------------------------------------------------------===//

Tensor reluBackward(const Tensor &X, const Tensor &GradOut) {
  // threshold_backward: NaN fails `x <= 0` and passes the gradient.
  return pointwise(X, GradOut,
                   [](float V, float G) { return V <= 0.0f ? 0.0f : G; });
}

Tensor hardtanhBackward(const Tensor &X, double Min, double Max,
                        const Tensor &GradOut) {
  float Lo = static_cast<float>(Min), Hi = static_cast<float>(Max);
  return pointwise(X, GradOut, [=](float V, float G) {
    return V <= Lo || V >= Hi ? 0.0f : G;
  });
}

Tensor hardswishBackward(const Tensor &X, const Tensor &GradOut) {
  // PyTorch writes the middle piece as g * (x / 3 + 0.5), which is
  // g * (2x + 3) / 6 up to rounding; keep its form for identical floats.
  return pointwise(X, GradOut, [](float V, float G) {
    if (V < -3.0f)
      return 0.0f;
    if (V <= 3.0f)
      return G * ((V / 3.0f) + 0.5f);
    return G;
  });
}

Tensor siluBackward(const Tensor &X, const Tensor &GradOut) {
  return pointwise(X, GradOut, [](float V, float G) {
    float S = 1.0f / (1.0f + std::exp(-V));
    return G * S * (1.0f + V * (1.0f - S));
  });
}

Tensor hardsigmoidBackward(const Tensor &X, const Tensor &GradOut) {
  const float OneSixth = 1.0f / 6.0f;
  return pointwise(X, GradOut, [=](float V, float G) {
    return V > -3.0f && V < 3.0f ? G * OneSixth : 0.0f;
  });
}

Tensor leakyReluBackward(const Tensor &X, double NegativeSlope,
                         const Tensor &GradOut) {
  float S = static_cast<float>(NegativeSlope);
  return pointwise(X, GradOut,
                   [=](float V, float G) { return V > 0.0f ? G : G * S; });
}

Tensor sigmoidBackward(const Tensor &Y, const Tensor &GradOut) {
  return pointwise(Y, GradOut,
                   [](float V, float G) { return G * (1.0f - V) * V; });
}

Tensor tanhBackward(const Tensor &Y, const Tensor &GradOut) {
  return pointwise(Y, GradOut,
                   [](float V, float G) { return G * (1.0f - V * V); });
}

Tensor softmaxBackward(const Tensor &Y, int64_t Dim, const Tensor &GradOut) {
  assert(isF32WithData(Y) && isF32WithData(GradOut) && "grad kernels take f32");
  assert(Y.shape() == GradOut.shape() && "softmax gradient shape mismatch");
  int64_t D = checkedDim(Dim, Y.rank());
  // A scalar is a one-element vector along dimension 0, as in the forward.
  ArrayRef<int64_t> S = Y.shape();
  int64_t Outer = Y.rank() ? numElements(S.take_front(D)) : 1;
  int64_t Len = Y.rank() ? S[D] : 1;
  int64_t Inner = Y.rank() ? numElements(S.drop_front(D + 1)) : 1;
  Tensor R(DType::F32, S);
  const float *PY = Y.data<float>(), *PG = GradOut.data<float>();
  float *Out = R.data<float>();
  for (int64_t O = 0; O < Outer; ++O) {
    for (int64_t I = 0; I < Inner; ++I) {
      int64_t Base = O * Len * Inner + I;
      double Dot = 0;
      for (int64_t L = 0; L < Len; ++L)
        Dot += double(PY[Base + L * Inner]) * PG[Base + L * Inner];
      float DotF = static_cast<float>(Dot);
      for (int64_t L = 0; L < Len; ++L) {
        int64_t K = Base + L * Inner;
        Out[K] = PY[K] * (PG[K] - DotF);
      }
    }
  }
  return R;
}

//===----------------------------------------------------------------------===//
// Shapes and arithmetic
//===----------------------------------------------------------------------===//

Tensor sumToShape(const Tensor &G, ArrayRef<int64_t> To) {
  assert(isF32WithData(G) && "grad kernels take f32");
  ArrayRef<int64_t> From = G.shape();
  if (From == To)
    return G.clone();
  assert(To.size() <= From.size() && "cannot sum to a higher rank");
  // The target's strides laid over G's dimensions: 0 on the leading
  // dimensions broadcasting added and on the size-1 ones it expanded, so
  // every element of G lands on the target element it was broadcast from.
  size_t Lead = From.size() - To.size();
  SmallVector<int64_t, 8> Own = stridesOf(To), St(From.size(), 0);
  for (size_t I = 0; I < To.size(); ++I) {
    assert((To[I] == From[Lead + I] || To[I] == 1) &&
           "target shape does not broadcast to the gradient's");
    St[Lead + I] = To[I] == 1 ? 0 : Own[I];
  }
  Tensor R(DType::F32, To);
  // Accumulate in double, in G's order, then round once.
  std::vector<double> Acc(R.numElements(), 0.0);
  const float *In = G.data<float>();
  forEachOffset(From, St, [&](int64_t I, int64_t Off) { Acc[Off] += In[I]; });
  float *Out = R.data<float>();
  for (size_t I = 0; I < Acc.size(); ++I)
    Out[I] = static_cast<float>(Acc[I]);
  return R;
}

std::array<Tensor, 2> addBackward(ArrayRef<int64_t> AShape,
                                  ArrayRef<int64_t> BShape, double Alpha,
                                  const Tensor &GradOut) {
  Tensor GB = GradOut;
  // PyTorch scales by alpha (rounded to float) before reducing.
  if (static_cast<float>(Alpha) != 1.0f)
    GB = ref::mulScalar(GradOut, Alpha);
  return {sumToShape(GradOut, AShape), sumToShape(GB, BShape)};
}

std::array<Tensor, 2> mulBackward(const Tensor &A, const Tensor &B,
                                  const Tensor &GradOut) {
  return {sumToShape(ref::mul(GradOut, B), A.shape()),
          sumToShape(ref::mul(GradOut, A), B.shape())};
}

std::vector<Tensor> catBackward(ArrayRef<Shape> InputShapes, int64_t Dim,
                                const Tensor &GradOut) {
  assert(isF32WithData(GradOut) && "grad kernels take f32");
  int64_t D = checkedDim(Dim, GradOut.rank());
  ArrayRef<int64_t> S = GradOut.shape();
  // Each input owns one contiguous block of GradOut per outer index.
  int64_t Outer = numElements(S.take_front(D));
  int64_t Inner = numElements(S.drop_front(D + 1));
  std::vector<Tensor> Grads;
  Grads.reserve(InputShapes.size());
  int64_t Begin = 0; // Offset of the current input's block along Dim.
  for (const Shape &IS : InputShapes) {
    assert(int64_t(IS.size()) == GradOut.rank() && "cat input rank mismatch");
    Tensor T(DType::F32, IS);
    int64_t Block = IS[D] * Inner;
    const float *In = GradOut.data<float>() + Begin * Inner;
    float *Out = T.data<float>();
    for (int64_t O = 0; O < Outer && Block > 0; ++O)
      std::memcpy(Out + O * Block, In + O * S[D] * Inner,
                  Block * sizeof(float));
    Begin += IS[D];
    Grads.push_back(std::move(T));
  }
  assert(Begin == S[D] && "cat inputs do not tile the gradient");
  return Grads;
}

Tensor permuteBackward(const Tensor &GradOut, ArrayRef<int64_t> Dims) {
  // Output dimension I of the forward was input dimension Dims[I], so the
  // inverse sends dimension I of GradOut back to position Dims[I].
  SmallVector<int64_t, 8> Inverse(Dims.size(), 0);
  for (size_t I = 0; I < Dims.size(); ++I)
    Inverse[checkedDim(Dims[I], Dims.size())] = static_cast<int64_t>(I);
  return ref::permute(GradOut, Inverse);
}

Tensor meanBackward(ArrayRef<int64_t> XShape, ArrayRef<int64_t> Dims,
                    bool KeepDim, const Tensor &GradOut) {
  assert(isF32WithData(GradOut) && "grad kernels take f32");
  int64_t Rank = static_cast<int64_t>(XShape.size());
  // An empty list reduces everything (PyTorch 1.13), as in ref::mean.
  SmallVector<bool, 8> Reduce(Rank, Dims.empty());
  for (int64_t D : Dims)
    if (Rank > 0)
      Reduce[checkedDim(D, Rank)] = true;
  // GradOut's strides over X's dimensions (0 on reduced ones) are the same
  // with and without KeepDim: the kept dimensions have extent 1.
  SmallVector<int64_t, 8> St(Rank, 0);
  int64_t Stride = 1, Count = 1;
  for (int64_t I = Rank; I-- > 0;) {
    if (Reduce[I]) {
      Count *= XShape[I];
      continue;
    }
    St[I] = Stride;
    Stride *= XShape[I];
  }
  assert(GradOut.numElements() == Stride && "mean gradient has wrong size");
  assert((!KeepDim || GradOut.rank() == Rank) && "keepdim gradient rank");
  (void)KeepDim; // Only the assertion needs it.
  Tensor R(DType::F32, XShape);
  const float *In = GradOut.data<float>();
  float *Out = R.data<float>();
  // PyTorch divides the expanded gradient by the count in float.
  float N = static_cast<float>(Count);
  forEachOffset(XShape, St,
                [&](int64_t I, int64_t Off) { Out[I] = In[Off] / N; });
  return R;
}

DropoutResult dropoutTrain(const Tensor &X, double P, std::mt19937_64 &Rng) {
  assert(isF32WithData(X) && "grad kernels take f32");
  assert(P >= 0.0 && P <= 1.0 && "dropout probability outside [0, 1]");
  DropoutResult R{Tensor(DType::F32, X.shape()), Tensor(DType::F32, X.shape())};
  float *M = R.Mask.data<float>();
  int64_t N = X.numElements();
  // p == 1 zeroes everything (the mask stays 0, no 1 / 0); p == 0 keeps
  // everything. Neither draws from Rng.
  if (P >= 1.0)
    return R;
  if (P <= 0.0) {
    std::fill(M, M + N, 1.0f);
    R.Out = X.clone();
    return R;
  }
  // Kept elements hold 1 / (1 - p) computed in float, as PyTorch's
  // noise.div_(1 - p). The draw uses the top 53 bits of the engine directly:
  // std::mt19937_64's output is fixed by the standard, its distributions
  // are not, so a seed gives the same mask with every standard library.
  float Scale = 1.0f / static_cast<float>(1.0 - P);
  const float *In = X.data<float>();
  float *Out = R.Out.data<float>();
  for (int64_t I = 0; I < N; ++I) {
    double U = static_cast<double>(Rng() >> 11) * 0x1.0p-53;
    M[I] = U < P ? 0.0f : Scale;
    Out[I] = In[I] * M[I];
  }
  return R;
}

Tensor mulElementwise(const Tensor &A, const Tensor &B) {
  return pointwise(A, B, [](float X, float Y) { return X * Y; });
}

//===----------------------------------------------------------------------===//
// Loss
//===----------------------------------------------------------------------===//

namespace {

Error checkCrossEntropyOperands(const Tensor &Logits,
                                ArrayRef<int64_t> Labels) {
  if (Logits.rank() != 2)
    return makeError("cross_entropy: logits must have rank 2 ([N, K]), got " +
                     formatShape(Logits.shape()));
  if (Logits.dtype() != DType::F32 || !Logits.hasData())
    return makeError("cross_entropy: logits must be f32 with data, got " +
                     dtypeName(Logits.dtype()));
  int64_t N = Logits.dim(0), K = Logits.dim(1);
  if (static_cast<int64_t>(Labels.size()) != N)
    return makeError("cross_entropy: " + Twine(Labels.size()) +
                     " labels for a batch of " + Twine(N));
  for (int64_t I = 0; I < N; ++I)
    if (Labels[I] < 0 || Labels[I] >= K)
      return makeError("cross_entropy: label " + Twine(Labels[I]) + " of row " +
                       Twine(I) + " is outside [0, " + Twine(K) + ")");
  return Error::success();
}

} // namespace

Expected<CrossEntropyResult> crossEntropy(const Tensor &Logits,
                                          ArrayRef<int64_t> Labels) {
  if (Error E = checkCrossEntropyOperands(Logits, Labels))
    return E;
  int64_t N = Logits.dim(0), K = Logits.dim(1);
  CrossEntropyResult R;
  R.GradLogits = Tensor(DType::F32, Logits.shape());
  const float *In = Logits.data<float>();
  float *G = R.GradLogits.data<float>();
  double Total = 0;
  for (int64_t Row = 0; Row < N; ++Row) {
    const float *X = In + Row * K;
    // The first maximum: PyTorch's argmax on ties, and the shift that keeps
    // exp() from overflowing.
    int64_t ArgMax = 0;
    for (int64_t J = 1; J < K; ++J)
      if (X[J] > X[ArgMax])
        ArgMax = J;
    double Max = X[ArgMax], Sum = 0;
    for (int64_t J = 0; J < K; ++J)
      Sum += std::exp(double(X[J]) - Max);
    double LogSumExp = Max + std::log(Sum);
    Total += LogSumExp - X[Labels[Row]];
    R.Correct += ArgMax == Labels[Row];
    for (int64_t J = 0; J < K; ++J) {
      double Soft = std::exp(double(X[J]) - LogSumExp);
      G[Row * K + J] = static_cast<float>((Soft - (J == Labels[Row])) / N);
    }
  }
  // An empty batch gives NaN, as PyTorch's mean reduction does.
  R.Loss = N ? Total / N : std::numeric_limits<double>::quiet_NaN();
  return R;
}

} // namespace grad
} // namespace qfx
