//===- TransformerGrads.cpp - Gradients of the transformer ops -----------===//
//
// layer_norm, gelu, matmul / bmm, expand and select: the backward kernels
// (GradKernels.h) and the rules the tape dispatches on (GradRules.h).
//
//===----------------------------------------------------------------------===//

#include "GradRules.h"

#include "Runtime/TransformerKernels.h"

#include "qfx/Support/Error.h"

#include <cstring>

using namespace qfx;
using namespace qfx::train;

#define QFX_TRY(Var, Expr)                                                     \
  auto Var = (Expr);                                                           \
  if (!Var)                                                                    \
    return Var.takeError();

//===----------------------------------------------------------------------===//
// Kernels
//===----------------------------------------------------------------------===//

grad::LayerNormGrads grad::layerNormBackward(const Tensor &X, int64_t M,
                                             const Tensor *W, bool HasBias,
                                             double Eps,
                                             const Tensor &GradOut) {
  std::vector<float> Mean, Rstd;
  ref::layerNorm(X, M, nullptr, nullptr, Eps, &Mean, &Rstd);
  LayerNormGrads G{Tensor(DType::F32, X.shape()),
                   W ? Tensor(DType::F32, {M}) : Tensor(),
                   HasBias ? Tensor(DType::F32, {M}) : Tensor()};
  int64_t Rows = M ? X.numElements() / M : 0;
  const float *PX = X.data<float>(), *PG = GradOut.data<float>();
  const float *PW = W ? W->data<float>() : nullptr;
  float *DX = G.X.data<float>();
  for (int64_t R = 0; R < Rows; ++R) {
    const float *XR = PX + R * M, *GR = PG + R * M;
    double SumG = 0, SumGX = 0;
    for (int64_t I = 0; I < M; ++I) {
      double Xh = (XR[I] - Mean[R]) * Rstd[R];
      double Gi = GR[I] * (PW ? PW[I] : 1.0f);
      SumG += Gi;
      SumGX += Gi * Xh;
      if (W)
        G.W.data<float>()[I] += static_cast<float>(GR[I] * Xh);
      if (HasBias)
        G.Bias.data<float>()[I] += GR[I];
    }
    for (int64_t I = 0; I < M; ++I) {
      double Xh = (XR[I] - Mean[R]) * Rstd[R];
      double Gi = GR[I] * (PW ? PW[I] : 1.0f);
      DX[R * M + I] = static_cast<float>(
          Rstd[R] * (Gi - SumG / double(M) - Xh * SumGX / double(M)));
    }
  }
  return G;
}

Tensor grad::geluBackward(const Tensor &X, bool Tanh, const Tensor &GradOut) {
  Tensor D = ref::geluDerivative(X, Tanh);
  float *PD = D.data<float>();
  const float *PG = GradOut.data<float>();
  for (int64_t I = 0, N = D.numElements(); I < N; ++I)
    PD[I] *= PG[I];
  return D;
}

/// The last two dimensions swapped (a copy).
static Tensor swapLast(const Tensor &T) { return ref::transpose(T, -2, -1); }

std::array<Tensor, 2> grad::matmulBackward(const Tensor &A, const Tensor &B,
                                           const Tensor &GradOut) {
  // 1-d operands as matrices: [k] -> [1,k] (A), [k] -> [k,1] (B); the
  // output gets the dimensions matmul removed.
  Shape SA(A.shape().begin(), A.shape().end());
  Shape SB(B.shape().begin(), B.shape().end());
  if (SA.size() == 1)
    SA.insert(SA.begin(), 1);
  if (SB.size() == 1)
    SB.push_back(1);
  Tensor A2 = A.reshaped(SA), B2 = B.reshaped(SB);
  Shape SG(GradOut.shape().begin(), GradOut.shape().end());
  if (A.rank() == 1)
    SG.insert(SG.end() - (B.rank() == 1 ? 0 : 1), 1);
  if (B.rank() == 1)
    SG.push_back(1);
  Tensor G = GradOut.reshaped(SG);
  Tensor DA = ref::sumTo(ref::matmul(G, swapLast(B2)), SA);
  Tensor DB = ref::sumTo(ref::matmul(swapLast(A2), G), SB);
  return {DA.reshaped(A.shape()), DB.reshaped(B.shape())};
}

Tensor grad::expandBackward(llvm::ArrayRef<int64_t> In, const Tensor &GradOut) {
  return ref::sumTo(GradOut, In);
}

Tensor grad::selectBackward(llvm::ArrayRef<int64_t> In, int64_t Dim,
                            int64_t Index, const Tensor &GradOut) {
  Tensor R(DType::F32, In);
  int64_t Outer = numElements(In.take_front(Dim));
  int64_t Inner = numElements(In.drop_front(Dim + 1));
  for (int64_t O = 0; O < Outer; ++O)
    std::memcpy(R.data<float>() + (O * In[Dim] + Index) * Inner,
                GradOut.data<float>() + O * Inner, Inner * sizeof(float));
  return R;
}

//===----------------------------------------------------------------------===//
// Rules
//===----------------------------------------------------------------------===//

namespace {

SlotGrads inputOnly(const BackwardCtx &C, Tensor G) {
  SlotGrads R(C.Args.size());
  R[0].push_back(std::move(G));
  return R;
}

const Tensor &in(const BackwardCtx &C) { return C.Args.operand(0).tensor(); }

llvm::Expected<SlotGrads> layerNormRule(const BackwardCtx &C) {
  QFX_TRY(Norm, C.Args.ints(1));
  QFX_TRY(W, C.Args.optTensor(2));
  QFX_TRY(B, C.Args.optTensor(3));
  QFX_TRY(Eps, C.Args.real(4));
  QFX_TRY(M, ref::layerNormSize(in(C).shape(), *Norm));
  grad::LayerNormGrads G =
      grad::layerNormBackward(in(C), *M, *W, *B != nullptr, *Eps, C.GradOut);
  SlotGrads R(C.Args.size());
  R[0].push_back(std::move(G.X));
  if (*W)
    R[2].push_back(G.W.reshaped((*W)->shape()));
  if (*B)
    R[3].push_back(G.Bias.reshaped((*B)->shape()));
  return R;
}

llvm::Expected<SlotGrads> geluRule(const BackwardCtx &C) {
  const Operand &A = C.Args.operand(1);
  bool Tanh = !A.isTensor() && !A.isList() && A.arg().isString() &&
              A.arg().getString() == "tanh";
  return inputOnly(C, grad::geluBackward(in(C), Tanh, C.GradOut));
}

llvm::Expected<SlotGrads> matmulRule(const BackwardCtx &C) {
  auto G = grad::matmulBackward(in(C), C.Args.operand(1).tensor(), C.GradOut);
  SlotGrads R(C.Args.size());
  R[0].push_back(std::move(G[0]));
  R[1].push_back(std::move(G[1]));
  return R;
}

llvm::Expected<SlotGrads> expandRule(const BackwardCtx &C) {
  return inputOnly(C, grad::expandBackward(in(C).shape(), C.GradOut));
}

llvm::Expected<SlotGrads> selectRule(const BackwardCtx &C) {
  QFX_TRY(Dim, C.Args.integer(1));
  QFX_TRY(Index, C.Args.integer(2));
  QFX_TRY(S, ref::selectSpec(in(C).shape(), *Dim, *Index));
  return inputOnly(
      C, grad::selectBackward(in(C).shape(), S->Dim, S->Index, C.GradOut));
}

// Sorted by op name.
const GradRule Rules[] = {
    {"bmm", nullptr, matmulRule},    {"expand", nullptr, expandRule},
    {"gelu", nullptr, geluRule},     {"layer_norm", nullptr, layerNormRule},
    {"matmul", nullptr, matmulRule}, {"select", nullptr, selectRule},
};

} // namespace

llvm::ArrayRef<GradRule> qfx::train::transformerGradRules() { return Rules; }
