//===- ArithGrads.cpp - Gradients of sub, div, interpolate, embedding -----===//
//
// Backward kernels of ArithGradKernels.h and the arith family's gradient
// rules, looked up by GradRules.cpp after its own table. Formulas follow
// PyTorch 1.13's derivatives.yaml (div's rounding modes have zero
// gradient; embedding skips padding_idx rows).
//
//===----------------------------------------------------------------------===//

#include "ArithGrads.h"

#include "qfx/Runtime/ArithParams.h"
#include "qfx/Runtime/Kernels.h"
#include "qfx/Support/Error.h"
#include "qfx/Train/ArithGradKernels.h"

#include "llvm/ADT/STLExtras.h"

#include <cstring>

using namespace qfx;
using namespace qfx::train;

//===----------------------------------------------------------------------===//
// Kernels
//===----------------------------------------------------------------------===//

std::array<Tensor, 2> grad::divBackward(const Tensor &A, const Tensor &B,
                                        const Tensor &GradOut) {
  Tensor GA = ref::div(GradOut, B);
  // -g * a / (b * b), PyTorch's div_tensor_other_backward.
  Tensor GB = ref::div(ref::mul(ref::neg(GradOut), A), ref::mul(B, B));
  return {sumToShape(GA, A.shape()), sumToShape(GB, B.shape())};
}

Tensor grad::reciprocalBackward(const Tensor &Y, const Tensor &GradOut) {
  return ref::mul(ref::neg(GradOut), ref::mul(Y, Y));
}

Tensor grad::interpolateBackward(llvm::ArrayRef<int64_t> InputShape,
                                 const ref::InterpParams &P,
                                 const Tensor &GradOut) {
  Tensor GX(DType::F32, InputShape);
  int64_t Planes = InputShape[0] * InputShape[1];
  int64_t IH = InputShape[2], IW = InputShape[3];
  int64_t OH = P.Size[0], OW = P.Size[1];
  std::vector<ref::LinearTap> TH(OH), TW(OW);
  auto Tap = [&](int64_t D, int64_t In, int64_t Out, int Axis) {
    ref::LinearTap T;
    if (P.Mode == ref::InterpMode::Nearest) {
      T.I0 = T.I1 = ref::nearestSourceIndex(D, In, Out, P.Scales[Axis]);
      return T;
    }
    return ref::linearSourceTap(D, In, Out, P.AlignCorners, P.Scales[Axis]);
  };
  for (int64_t H = 0; H < OH; ++H)
    TH[H] = Tap(H, IH, OH, 0);
  for (int64_t W = 0; W < OW; ++W)
    TW[W] = Tap(W, IW, OW, 1);
  for (int64_t C = 0; C < Planes; ++C) {
    const float *G = GradOut.data<float>() + C * OH * OW;
    float *Out = GX.data<float>() + C * IH * IW;
    for (int64_t H = 0; H < OH; ++H)
      for (int64_t W = 0; W < OW; ++W) {
        float V = G[H * OW + W];
        if (P.Mode == ref::InterpMode::Nearest) {
          Out[TH[H].I0 * IW + TW[W].I0] += V;
          continue;
        }
        Out[TH[H].I0 * IW + TW[W].I0] += V * TH[H].L0 * TW[W].L0;
        Out[TH[H].I0 * IW + TW[W].I1] += V * TH[H].L0 * TW[W].L1;
        Out[TH[H].I1 * IW + TW[W].I0] += V * TH[H].L1 * TW[W].L0;
        Out[TH[H].I1 * IW + TW[W].I1] += V * TH[H].L1 * TW[W].L1;
      }
  }
  return GX;
}

Tensor grad::embeddingBackward(const Tensor &Indices, int64_t NumEmbeddings,
                               std::optional<int64_t> PaddingIdx,
                               const Tensor &GradOut) {
  int64_t Dim = GradOut.dim(GradOut.rank() - 1);
  Tensor GW(DType::F32, {NumEmbeddings, Dim});
  for (int64_t I = 0, N = Indices.numElements(); I < N; ++I) {
    int64_t Idx = Indices.dtype() == DType::S64
                      ? Indices.data<int64_t>()[I]
                      : static_cast<int64_t>(Indices.data<int32_t>()[I]);
    if (PaddingIdx && Idx == *PaddingIdx)
      continue;
    assert(Idx >= 0 && Idx < NumEmbeddings && "checked by the forward");
    const float *G = GradOut.data<float>() + I * Dim;
    float *Row = GW.data<float>() + Idx * Dim;
    for (int64_t J = 0; J < Dim; ++J)
      Row[J] += G[J];
  }
  return GW;
}

Tensor grad::narrowBackward(llvm::ArrayRef<int64_t> InputShape, int64_t Dim,
                            int64_t Start, const Tensor &GradOut) {
  Tensor GX(DType::F32, InputShape);
  int64_t Outer = 1, Inner = 1, Extent = InputShape[Dim];
  for (int64_t I = 0; I < Dim; ++I)
    Outer *= InputShape[I];
  for (size_t I = Dim + 1; I < InputShape.size(); ++I)
    Inner *= InputShape[I];
  int64_t Len = GradOut.dim(Dim);
  for (int64_t O = 0; O < Outer; ++O)
    std::memcpy(GX.data<float>() + (O * Extent + Start) * Inner,
                GradOut.data<float>() + O * Len * Inner,
                sizeof(float) * Len * Inner);
  return GX;
}

//===----------------------------------------------------------------------===//
// Rules
//===----------------------------------------------------------------------===//

#define QFX_TRY(Var, Expr)                                                     \
  auto Var = (Expr);                                                           \
  if (!Var)                                                                    \
    return Var.takeError();

namespace {

const Tensor &in(const BackwardCtx &C) { return C.Args.operand(0).tensor(); }

SlotGrads inputOnly(const BackwardCtx &C, Tensor G) {
  SlotGrads R(C.Args.size());
  R[0].push_back(std::move(G));
  return R;
}

SlotGrads twoSlots(const BackwardCtx &C, Tensor G0, Tensor G1) {
  SlotGrads R(C.Args.size());
  R[0].push_back(std::move(G0));
  R[1].push_back(std::move(G1));
  return R;
}

// sub(input, other, alpha) = input - alpha * other.
llvm::Expected<SlotGrads> subBackward(const BackwardCtx &C) {
  QFX_TRY(Alpha, C.Args.real(2));
  if (!C.Args.operand(1).isTensor())
    return inputOnly(C, C.GradOut);
  auto G = grad::addBackward(in(C).shape(), C.Args.operand(1).tensor().shape(),
                             -*Alpha, C.GradOut);
  return twoSlots(C, std::move(G[0]), std::move(G[1]));
}

// rsub(input, other, alpha) = other - alpha * input.
llvm::Expected<SlotGrads> rsubBackward(const BackwardCtx &C) {
  QFX_TRY(Alpha, C.Args.real(2));
  if (!C.Args.operand(1).isTensor())
    return inputOnly(C, ref::mulScalar(C.GradOut, -*Alpha));
  auto G = grad::addBackward(C.Args.operand(1).tensor().shape(), in(C).shape(),
                             -*Alpha, C.GradOut);
  return twoSlots(C, std::move(G[1]), std::move(G[0]));
}

llvm::Expected<SlotGrads> divBackward(const BackwardCtx &C) {
  QFX_TRY(R, divRounding(C.Args));
  bool IsTensor = C.Args.operand(1).isTensor();
  if (*R != ref::DivRounding::None) {
    // floor / trunc division is piecewise constant.
    Tensor Z(DType::F32, in(C).shape());
    if (!IsTensor)
      return inputOnly(C, Z);
    return twoSlots(C, Z,
                    Tensor(DType::F32, C.Args.operand(1).tensor().shape()));
  }
  if (!IsTensor) {
    QFX_TRY(S, C.Args.real(1));
    return inputOnly(C, ref::divScalar(C.GradOut, *S));
  }
  auto G = grad::divBackward(in(C), C.Args.operand(1).tensor(), C.GradOut);
  return twoSlots(C, std::move(G[0]), std::move(G[1]));
}

llvm::Expected<SlotGrads> negBackward(const BackwardCtx &C) {
  return inputOnly(C, ref::neg(C.GradOut));
}

llvm::Expected<SlotGrads> reciprocalBackward(const BackwardCtx &C) {
  return inputOnly(C, grad::reciprocalBackward(C.Out, C.GradOut));
}

llvm::Expected<SlotGrads> interpolateBackward(const BackwardCtx &C) {
  QFX_TRY(P, interpolateParams(C.Args));
  return inputOnly(C, grad::interpolateBackward(in(C).shape(), *P, C.GradOut));
}

llvm::Expected<SlotGrads> embeddingBackward(const BackwardCtx &C) {
  const Tensor &W = C.Args.operand(1).tensor();
  std::optional<int64_t> Pad;
  if (!C.Args.isNone(2)) {
    QFX_TRY(P, C.Args.integer(2));
    Pad = *P < 0 ? *P + W.dim(0) : *P;
  }
  SlotGrads R(C.Args.size());
  R[1].push_back(grad::embeddingBackward(in(C), W.dim(0), Pad, C.GradOut));
  return R;
}

llvm::Expected<SlotGrads> narrowBackward(const BackwardCtx &C) {
  QFX_TRY(P, narrowParams(C.Args));
  return inputOnly(
      C, grad::narrowBackward(in(C).shape(), P->Dim, P->Start, C.GradOut));
}

// Sorted by op name.
const GradRule Rules[] = {
    {"div", nullptr, divBackward},
    {"embedding", nullptr, embeddingBackward},
    {"interpolate", nullptr, interpolateBackward},
    {"narrow", nullptr, narrowBackward},
    {"neg", nullptr, negBackward},
    {"reciprocal", nullptr, reciprocalBackward},
    {"rsub", nullptr, rsubBackward},
    {"sub", nullptr, subBackward},
};

} // namespace

const GradRule *qfx::train::lookupArithGradRule(llvm::StringRef Op) {
  for (const GradRule &R : Rules)
    if (Op == R.Op)
      return &R;
  return nullptr;
}
