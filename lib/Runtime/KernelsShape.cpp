//===- KernelsShape.cpp - Shape functions of the reference kernels --------===//

#include "qfx/Runtime/Kernels.h"
#include "qfx/Support/Error.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/Twine.h"

#include <algorithm>
#include <cassert>
#include <string>

using namespace llvm;

namespace qfx {
namespace ref {

namespace {

/// Upper bound for window hyper-parameters and adaptive output sizes. With
/// extents bounded by checkedNumElements (2^40), it keeps every product in
/// the window arithmetic (dilation * kernel, index * extent) inside int64.
constexpr int64_t MaxParam = int64_t(1) << 20;

std::string formatPair(std::array<int64_t, 2> P) {
  return "[" + std::to_string(P[0]) + "," + std::to_string(P[1]) + "]";
}

std::string formatHW(int64_t H, int64_t W) {
  return std::to_string(H) + "x" + std::to_string(W);
}

/// Fails unless both entries of \p P lie in [Min, MaxParam].
Error checkParam(StringRef Op, StringRef What, std::array<int64_t, 2> P,
                 int64_t Min) {
  for (int64_t V : P)
    if (V < Min || V > MaxParam)
      return makeError(Op + ": " + What + " must be between " + Twine(Min) +
                       " and " + Twine(MaxParam) + ", got " + formatPair(P));
  return Error::success();
}

/// Fails on negative extents and on shapes with too many elements; \p What
/// names the operand ("input", "weight").
Error checkExtents(StringRef Op, StringRef What, ArrayRef<int64_t> S) {
  Expected<int64_t> N = checkedNumElements(S);
  if (!N)
    return prefixError(N.takeError(), (Op + ": " + What).str());
  return Error::success();
}

/// The result shape \p S, unless it has too many elements.
Expected<Shape> checkedResult(StringRef Op, Shape S) {
  if (Error E = checkExtents(Op, "output", S))
    return E;
  return S;
}

/// normalizeDim with the op name in front of the message.
Expected<int64_t> opDim(StringRef Op, int64_t Dim, int64_t Rank) {
  Expected<int64_t> D = normalizeDim(Dim, Rank);
  if (!D)
    return prefixError(D.takeError(), Op);
  return *D;
}

/// Fails unless \p In is a 4-d tensor with non-empty C, H and W (N may be 0,
/// as in PyTorch).
Error checkPoolInput(StringRef Op, ArrayRef<int64_t> In) {
  if (In.size() != 4)
    return makeError(Op + ": expected a 4-d input, got " + formatShape(In));
  if (Error E = checkExtents(Op, "input", In))
    return E;
  if (In[1] == 0 || In[2] == 0 || In[3] == 0)
    return makeError(Op + ": expected non-empty channel and spatial " +
                     "dimensions, got " + formatShape(In));
  return Error::success();
}

/// "input 2x2" or, when padding enlarges it, "padded input 4x4".
std::string describeInput(int64_t H, int64_t W, std::array<int64_t, 2> Pad,
                          bool TwoSided) {
  int64_t F = TwoSided ? 2 : 1;
  if (Pad[0] == 0 && Pad[1] == 0)
    return "input " + formatHW(H, W);
  return "padded input " + formatHW(H + F * Pad[0], W + F * Pad[1]);
}

} // namespace

Expected<int64_t> normalizeDim(int64_t Dim, int64_t Rank) {
  assert(Rank >= 0 && "negative rank");
  // As in PyTorch, a scalar accepts the dimensions of a rank-1 tensor.
  int64_t R = std::max<int64_t>(Rank, 1);
  if (Dim < -R || Dim >= R)
    return makeError("dimension " + Twine(Dim) + " is out of range for rank " +
                     Twine(Rank) + " (expected " + Twine(-R) + " to " +
                     Twine(R - 1) + ")");
  return Dim < 0 ? Dim + R : Dim;
}

//===----------------------------------------------------------------------===//
// Convolution, linear, batch norm
//===----------------------------------------------------------------------===//

static Error checkConvParams(const Conv2dParams &P) {
  if (Error E = checkParam("conv2d", "stride", P.Stride, 1))
    return E;
  if (Error E = checkParam("conv2d", "padding", P.Padding, 0))
    return E;
  if (Error E = checkParam("conv2d", "dilation", P.Dilation, 1))
    return E;
  if (P.Groups < 1 || P.Groups > MaxParam)
    return makeError("conv2d: groups must be between 1 and " + Twine(MaxParam) +
                     ", got " + Twine(P.Groups));
  return Error::success();
}

Expected<Shape> conv2dShape(ArrayRef<int64_t> In, ArrayRef<int64_t> W,
                            std::optional<ArrayRef<int64_t>> Bias,
                            const Conv2dParams &P) {
  if (In.size() != 4)
    return makeError("conv2d: expected a 4-d input, got " + formatShape(In));
  if (W.size() != 4)
    return makeError("conv2d: expected a 4-d weight, got " + formatShape(W));
  if (Error E = checkExtents("conv2d", "input", In))
    return E;
  if (Error E = checkExtents("conv2d", "weight", W))
    return E;
  if (llvm::is_contained(W, 0))
    return makeError("conv2d: weight has an empty dimension: " +
                     formatShape(W));
  if (Error E = checkConvParams(P))
    return E;
  if (W[0] % P.Groups != 0)
    return makeError("conv2d: weight has " + Twine(W[0]) +
                     " output channels, which groups=" + Twine(P.Groups) +
                     " does not divide");
  // W[0] * W[1] is bounded, and Groups <= W[0], so this cannot overflow.
  if (In[1] != W[1] * P.Groups)
    return makeError("conv2d: input has " + Twine(In[1]) +
                     " channels but weight expects " + Twine(W[1] * P.Groups) +
                     " (groups=" + Twine(P.Groups) + ")");
  if (Bias && (Bias->size() != 1 || (*Bias)[0] != W[0]))
    return makeError("conv2d: expected a bias of shape [" + Twine(W[0]) +
                     "], got " + formatShape(*Bias));
  Shape Out = {In[0], W[0], 0, 0};
  for (int I = 0; I < 2; ++I) {
    int64_t Padded = In[2 + I] + 2 * P.Padding[I];
    int64_t Window = P.Dilation[I] * (W[2 + I] - 1) + 1;
    if (Padded < Window)
      return makeError(
          "conv2d: output would be empty: " +
          describeInput(In[2], In[3], P.Padding, /*TwoSided=*/true) +
          " is smaller than the dilated kernel " +
          formatHW(P.Dilation[0] * (W[2] - 1) + 1,
                   P.Dilation[1] * (W[3] - 1) + 1));
    Out[2 + I] = (Padded - Window) / P.Stride[I] + 1;
  }
  return checkedResult("conv2d", std::move(Out));
}

Expected<Shape> linearShape(ArrayRef<int64_t> In, ArrayRef<int64_t> W,
                            std::optional<ArrayRef<int64_t>> Bias) {
  if (In.empty())
    return makeError("linear: expected an input of rank at least 1, got []");
  if (W.size() != 2)
    return makeError("linear: expected a 2-d weight, got " + formatShape(W));
  if (Error E = checkExtents("linear", "input", In))
    return E;
  if (Error E = checkExtents("linear", "weight", W))
    return E;
  if (In.back() != W[1])
    return makeError("linear: input has " + Twine(In.back()) +
                     " features but weight expects " + Twine(W[1]));
  if (Bias && (Bias->size() != 1 || (*Bias)[0] != W[0]))
    return makeError("linear: expected a bias of shape [" + Twine(W[0]) +
                     "], got " + formatShape(*Bias));
  Shape Out(In.begin(), In.end());
  Out.back() = W[0];
  return checkedResult("linear", std::move(Out));
}

Expected<Shape> batchNormShape(ArrayRef<int64_t> In, int64_t NumFeatures) {
  if (In.size() < 2)
    return makeError("batch_norm: expected an input of rank at least 2, got " +
                     formatShape(In));
  if (Error E = checkExtents("batch_norm", "input", In))
    return E;
  if (In[1] != NumFeatures)
    return makeError("batch_norm: input has " + Twine(In[1]) +
                     " channels but the statistics have " + Twine(NumFeatures));
  return Shape(In.begin(), In.end());
}

//===----------------------------------------------------------------------===//
// Pooling
//===----------------------------------------------------------------------===//

/// PyTorch's pooling_output_shape: floor or ceil division, and in ceil mode
/// the last window must start inside the input or the left padding.
static int64_t poolOutputSize(int64_t In, int64_t K, int64_t S, int64_t Pad,
                              int64_t D, bool Ceil) {
  int64_t Num = In + 2 * Pad - D * (K - 1) - 1 + (Ceil ? S - 1 : 0);
  // Division rounding toward negative infinity.
  int64_t Q = Num / S;
  if (Num % S != 0 && Num < 0)
    --Q;
  int64_t Out = Q + 1;
  if (Ceil && (Out - 1) * S >= In + Pad)
    --Out;
  return Out;
}

Expected<Shape> pool2dShape(ArrayRef<int64_t> In, const Pool2dParams &P) {
  if (Error E = checkPoolInput("pool2d", In))
    return E;
  if (Error E = checkParam("pool2d", "kernel size", P.Kernel, 1))
    return E;
  if (Error E = checkParam("pool2d", "stride", P.Stride, 1))
    return E;
  if (Error E = checkParam("pool2d", "padding", P.Padding, 0))
    return E;
  if (Error E = checkParam("pool2d", "dilation", P.Dilation, 1))
    return E;
  for (int I = 0; I < 2; ++I)
    if (P.Padding[I] > P.Kernel[I] / 2)
      return makeError("pool2d: padding " + Twine(P.Padding[I]) +
                       " must be at most half of kernel " + Twine(P.Kernel[I]));
  if (P.DivisorOverride && *P.DivisorOverride == 0)
    return makeError("pool2d: divisor_override must not be zero");
  Shape Out = {In[0], In[1], 0, 0};
  for (int I = 0; I < 2; ++I) {
    Out[2 + I] = poolOutputSize(In[2 + I], P.Kernel[I], P.Stride[I],
                                P.Padding[I], P.Dilation[I], P.CeilMode);
    if (Out[2 + I] < 1)
      return makeError(
          "pool2d: output would be empty: " +
          describeInput(In[2], In[3], P.Padding, /*TwoSided=*/true) +
          " is smaller than the dilated kernel " +
          formatHW(P.Dilation[0] * (P.Kernel[0] - 1) + 1,
                   P.Dilation[1] * (P.Kernel[1] - 1) + 1));
  }
  return checkedResult("pool2d", std::move(Out));
}

Expected<Shape> adaptivePool2dShape(ArrayRef<int64_t> In,
                                    std::array<int64_t, 2> Output) {
  if (Error E = checkPoolInput("adaptive_avg_pool2d", In))
    return E;
  if (Error E = checkParam("adaptive_avg_pool2d", "output size", Output, 1))
    return E;
  return checkedResult("adaptive_avg_pool2d",
                       Shape{In[0], In[1], Output[0], Output[1]});
}

//===----------------------------------------------------------------------===//
// Broadcasting and shape manipulation
//===----------------------------------------------------------------------===//

Expected<Shape> broadcastShape(ArrayRef<int64_t> A, ArrayRef<int64_t> B) {
  if (Error E = checkExtents("broadcast", "first operand", A))
    return E;
  if (Error E = checkExtents("broadcast", "second operand", B))
    return E;
  size_t R = std::max(A.size(), B.size());
  Shape Out(R, 1);
  for (size_t I = 0; I < R; ++I) {
    // Align from the right; missing leading dimensions act as 1.
    int64_t DA = I < R - A.size() ? 1 : A[I - (R - A.size())];
    int64_t DB = I < R - B.size() ? 1 : B[I - (R - B.size())];
    if (DA != DB && DA != 1 && DB != 1)
      return makeError("broadcast: shapes " + formatShape(A) + " and " +
                       formatShape(B) + " are not broadcastable");
    Out[I] = DA == 1 ? DB : DA;
  }
  return Out;
}

Expected<Shape> catShape(ArrayRef<Shape> Inputs, int64_t Dim) {
  if (Inputs.empty())
    return makeError("cat: expected at least one input");
  const Shape &First = Inputs[0];
  for (size_t I = 0; I < Inputs.size(); ++I) {
    if (Inputs[I].empty())
      return makeError("cat: input " + Twine(I) +
                       " is zero-dimensional and cannot be concatenated");
    if (Inputs[I].size() != First.size())
      return makeError("cat: input " + Twine(I) + " has rank " +
                       Twine(Inputs[I].size()) + " but input 0 has rank " +
                       Twine(First.size()));
    if (Error E = checkExtents("cat", "input " + std::to_string(I), Inputs[I]))
      return E;
  }
  Expected<int64_t> D = opDim("cat", Dim, First.size());
  if (!D)
    return D.takeError();
  Shape Out = First;
  Out[*D] = 0;
  for (const Shape &S : Inputs) {
    for (size_t J = 0; J < S.size(); ++J)
      if (static_cast<int64_t>(J) != *D && S[J] != First[J])
        return makeError("cat: inputs differ in dimension " + Twine(J) + " (" +
                         Twine(First[J]) + " vs " + Twine(S[J]) + ")");
    Out[*D] += S[*D];
  }
  return checkedResult("cat", std::move(Out));
}

Expected<Shape> flattenShape(ArrayRef<int64_t> In, int64_t StartDim,
                             int64_t EndDim) {
  if (Error E = checkExtents("flatten", "input", In))
    return E;
  int64_t Rank = In.size();
  Expected<int64_t> S = opDim("flatten", StartDim, Rank);
  if (!S)
    return S.takeError();
  Expected<int64_t> E = opDim("flatten", EndDim, Rank);
  if (!E)
    return E.takeError();
  if (*S > *E)
    return makeError("flatten: start_dim " + Twine(StartDim) +
                     " comes after end_dim " + Twine(EndDim));
  // PyTorch flattens a scalar into a one-element vector.
  if (Rank == 0)
    return Shape{1};
  Shape Out(In.begin(), In.begin() + *S);
  Out.push_back(numElements(In.slice(*S, *E - *S + 1)));
  Out.append(In.begin() + *E + 1, In.end());
  return Out;
}

Expected<Shape> reshapeShape(ArrayRef<int64_t> In, ArrayRef<int64_t> Req) {
  Expected<int64_t> N = checkedNumElements(In);
  if (!N)
    return prefixError(N.takeError(), "reshape: input");
  auto Fail = [&] {
    return makeError("reshape: cannot reshape " + formatShape(In) + " (" +
                     Twine(*N) + " elements) into " + formatShape(Req));
  };
  int64_t Known = 1;
  std::optional<size_t> Infer;
  for (size_t I = 0; I < Req.size(); ++I) {
    if (Req[I] == -1) {
      if (Infer)
        return makeError("reshape: only one dimension can be -1, got " +
                         formatShape(Req));
      Infer = I;
      continue;
    }
    if (Req[I] < 0)
      return makeError("reshape: invalid extent " + Twine(Req[I]) + " in " +
                       formatShape(Req));
    // Known <= N keeps the product bounded; exceeding N cannot match.
    if (Req[I] != 0 && Known > *N / Req[I])
      return Fail();
    Known *= Req[I];
  }
  Shape Out(Req.begin(), Req.end());
  if (Infer) {
    // With a zero extent elsewhere, -1 could be anything: PyTorch refuses.
    if (Known == 0 || *N % Known != 0)
      return Fail();
    Out[*Infer] = *N / Known;
  } else if (Known != *N) {
    return Fail();
  }
  return Out;
}

Expected<Shape> permuteShape(ArrayRef<int64_t> In, ArrayRef<int64_t> Dims) {
  if (Error E = checkExtents("permute", "input", In))
    return E;
  if (Dims.size() != In.size())
    return makeError("permute: expected " + Twine(In.size()) +
                     " dimensions for input " + formatShape(In) + ", got " +
                     formatShape(Dims));
  Shape Out;
  SmallVector<bool, 8> Seen(In.size(), false);
  for (int64_t D : Dims) {
    Expected<int64_t> ND = opDim("permute", D, In.size());
    if (!ND)
      return ND.takeError();
    if (Seen[*ND])
      return makeError("permute: dimension " + Twine(*ND) + " repeats in " +
                       formatShape(Dims));
    Seen[*ND] = true;
    Out.push_back(In[*ND]);
  }
  return Out;
}

Expected<Shape> transposeShape(ArrayRef<int64_t> In, int64_t Dim0,
                               int64_t Dim1) {
  if (Error E = checkExtents("transpose", "input", In))
    return E;
  Expected<int64_t> D0 = opDim("transpose", Dim0, In.size());
  if (!D0)
    return D0.takeError();
  Expected<int64_t> D1 = opDim("transpose", Dim1, In.size());
  if (!D1)
    return D1.takeError();
  Shape Out(In.begin(), In.end());
  if (!Out.empty())
    std::swap(Out[*D0], Out[*D1]);
  return Out;
}

Expected<Shape> meanShape(ArrayRef<int64_t> In, ArrayRef<int64_t> Dims,
                          bool KeepDim) {
  if (Error E = checkExtents("mean", "input", In))
    return E;
  // An empty dimension list reduces over everything (PyTorch 1.13).
  SmallVector<bool, 8> Reduce(In.size(), Dims.empty());
  SmallVector<bool, 8> Seen(std::max<size_t>(In.size(), 1), false);
  for (int64_t D : Dims) {
    Expected<int64_t> ND = opDim("mean", D, In.size());
    if (!ND)
      return ND.takeError();
    if (Seen[*ND])
      return makeError("mean: dimension " + Twine(*ND) + " repeats in " +
                       formatShape(Dims));
    Seen[*ND] = true;
    if (!In.empty())
      Reduce[*ND] = true;
  }
  Shape Out;
  for (size_t I = 0; I < In.size(); ++I) {
    if (!Reduce[I])
      Out.push_back(In[I]);
    else if (KeepDim)
      Out.push_back(1);
  }
  return Out;
}

} // namespace ref
} // namespace qfx
