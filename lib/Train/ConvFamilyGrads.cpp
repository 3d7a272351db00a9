//===- ConvFamilyGrads.cpp - Gradient rules of the conv family -----------===//
//
// conv1d is conv2d over a unit height (as PyTorch computes it), so its
// gradients are conv2d's on the same tensors viewed as [N, C, 1, L].
// conv_transpose2d's come from its reference scatter loops.
//
//===----------------------------------------------------------------------===//

#include "GradRules.h"

using namespace qfx;
using namespace qfx::train;

/// \p T viewed with a unit dimension at 2 (\p Insert) or without it.
static Tensor unitHeight(const Tensor &T, bool Insert) {
  Shape S(T.shape().begin(), T.shape().end());
  if (Insert)
    S.insert(S.begin() + 2, 1);
  else
    S.erase(S.begin() + 2);
  return T.reshaped(S);
}

llvm::Expected<SlotGrads> train::conv1dBackward(const BackwardCtx &C) {
  auto P = conv1dParams(C.Args);
  if (!P)
    return P.takeError();
  bool HasBias = !C.Args.isNone(2);
  grad::Conv2dGrads G = grad::conv2dBackward(
      unitHeight(C.Args.operand(0).tensor(), true),
      unitHeight(C.Args.operand(1).tensor(), true), HasBias,
      unitHeight(C.GradOut, true), *P, C.Needs[0], C.Needs[1] || HasBias);
  SlotGrads R(C.Args.size());
  R[0].push_back(G.X.hasData() ? unitHeight(G.X, false) : Tensor());
  R[1].push_back(G.W.hasData() ? unitHeight(G.W, false) : Tensor());
  if (HasBias)
    R[2].push_back(std::move(G.Bias));
  return R;
}

llvm::Expected<SlotGrads> train::convTranspose2dBackward(const BackwardCtx &C) {
  auto P = convTranspose2dParams(C.Args);
  if (!P)
    return P.takeError();
  bool HasBias = !C.Args.isNone(2);
  ref::ConvTranspose2dGrads G = ref::convTranspose2dBackward(
      C.Args.operand(0).tensor(), C.Args.operand(1).tensor(), HasBias,
      C.GradOut, *P, C.Needs[0], C.Needs[1]);
  SlotGrads R(C.Args.size());
  R[0].push_back(std::move(G.X));
  R[1].push_back(std::move(G.W));
  if (HasBias)
    R[2].push_back(std::move(G.Bias));
  return R;
}
