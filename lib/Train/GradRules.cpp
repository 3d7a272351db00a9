//===- GradRules.cpp - Gradient rules of the differentiable ops ----------===//
//
// The data table the tape dispatches on: op name -> training forward (if the
// op behaves differently when training or saves state) and backward. Each
// backward unpacks the bound arguments as the op's forward does and calls a
// kernel of GradKernels.h.
//
//===----------------------------------------------------------------------===//

#include "GradRules.h"
#include "ArithGrads.h"

#include "qfx/Support/Error.h"

#include "llvm/ADT/STLExtras.h"

using namespace qfx;
using namespace qfx::train;

#define QFX_TRY(Var, Expr)                                                     \
  auto Var = (Expr);                                                           \
  if (!Var)                                                                    \
    return Var.takeError();

namespace {

/// Slot grads with \p N empty slots.
SlotGrads slots(size_t N) { return SlotGrads(N); }

/// A single-input op's gradient in slot 0 (other slots: none).
SlotGrads inputOnly(const BackwardCtx &C, Tensor G) {
  SlotGrads R = slots(C.Args.size());
  R[0].push_back(std::move(G));
  return R;
}

const Tensor &in(const BackwardCtx &C) { return C.Args.operand(0).tensor(); }

/// conv2d's and linear's (input, weight, bias) gradients in slots 0-2.
template <typename Grads>
SlotGrads weightedSlots(const BackwardCtx &C, Grads G, bool HasBias) {
  SlotGrads R = slots(C.Args.size());
  R[0].push_back(std::move(G.X));
  R[1].push_back(std::move(G.W));
  if (HasBias)
    R[2].push_back(std::move(G.Bias));
  return R;
}

//===----------------------------------------------------------------------===//
// Layers
//===----------------------------------------------------------------------===//

llvm::Expected<SlotGrads> conv2dBackward(const BackwardCtx &C) {
  QFX_TRY(P, conv2dParams(C.Args));
  bool HasBias = !C.Args.isNone(2);
  grad::Conv2dGrads G =
      grad::conv2dBackward(in(C), C.Args.operand(1).tensor(), HasBias,
                           C.GradOut, *P, C.Needs[0], C.Needs[1] || HasBias);
  return weightedSlots(C, std::move(G), HasBias);
}

llvm::Expected<SlotGrads> linearBackward(const BackwardCtx &C) {
  bool HasBias = !C.Args.isNone(2);
  grad::LinearGrads G =
      grad::linearBackward(in(C), C.Args.operand(1).tensor(), HasBias,
                           C.GradOut, C.Needs[0], C.Needs[1] || HasBias);
  return weightedSlots(C, std::move(G), HasBias);
}

// batch_norm(input, running_mean, running_var, weight, bias, training,
// momentum, eps).
llvm::Expected<Tensor> batchNormForward(ForwardCtx &C) {
  QFX_TRY(Training, C.Args.boolean(5));
  bool BatchStats = C.Training ? *C.Training : *Training;
  if (!BatchStats)
    return lookupOp("batch_norm")->Run(C.Args);
  QFX_TRY(Momentum, C.Args.real(6));
  QFX_TRY(Eps, C.Args.real(7));
  const Tensor &X = C.Args.operand(0).tensor();
  if (X.dim(0) * (X.numElements() / X.dim(0) / X.dim(1)) < 2)
    return makeError("batch_norm: training needs more than one value per "
                     "channel, got input of shape " +
                     formatShape(X.shape()));
  // Running statistics are updated in place: the bound tensors share
  // storage with the module's buffers.
  Tensor RunningMean = C.Args.operand(1).tensor();
  Tensor RunningVar = C.Args.operand(2).tensor();
  QFX_TRY(W, C.Args.optTensor(3));
  QFX_TRY(B, C.Args.optTensor(4));
  Tensor Out;
  C.S.BN =
      grad::batchNormTrain(X, RunningMean, RunningVar, *W, *B,
                           C.Momentum ? *C.Momentum : *Momentum, *Eps, Out);
  C.S.BatchStats = true;
  return Out;
}

llvm::Expected<SlotGrads> batchNormBackward(const BackwardCtx &C) {
  QFX_TRY(W, C.Args.optTensor(3));
  QFX_TRY(Eps, C.Args.real(7));
  grad::BatchNormGrads G =
      C.S.BatchStats
          ? grad::batchNormTrainBackward(in(C), C.S.BN, *W, C.GradOut)
          : grad::batchNormEvalBackward(in(C), C.Args.operand(1).tensor(),
                                        C.Args.operand(2).tensor(), *W, *Eps,
                                        C.GradOut);
  SlotGrads R = slots(C.Args.size());
  R[0].push_back(std::move(G.X));
  if (*W)
    R[3].push_back(std::move(G.Weight));
  if (!C.Args.isNone(4))
    R[4].push_back(std::move(G.Bias));
  return R;
}

//===----------------------------------------------------------------------===//
// Pooling
//===----------------------------------------------------------------------===//

llvm::Expected<SlotGrads> maxPoolBackward(const BackwardCtx &C) {
  QFX_TRY(P, pool2dParams(C.Args, /*IsMax=*/true));
  return inputOnly(C, grad::maxPool2dBackward(in(C), C.GradOut, *P));
}

llvm::Expected<SlotGrads> avgPoolBackward(const BackwardCtx &C) {
  QFX_TRY(P, pool2dParams(C.Args, /*IsMax=*/false));
  return inputOnly(C, grad::avgPool2dBackward(in(C).shape(), C.GradOut, *P));
}

llvm::Expected<SlotGrads> adaptiveAvgPoolBackward(const BackwardCtx &C) {
  return inputOnly(C,
                   grad::adaptiveAvgPool2dBackward(in(C).shape(), C.GradOut));
}

//===----------------------------------------------------------------------===//
// Activations
//===----------------------------------------------------------------------===//

llvm::Expected<SlotGrads> reluBackward(const BackwardCtx &C) {
  return inputOnly(C, grad::reluBackward(in(C), C.GradOut));
}

llvm::Expected<SlotGrads> relu6Backward(const BackwardCtx &C) {
  return inputOnly(C, grad::hardtanhBackward(in(C), 0.0, 6.0, C.GradOut));
}

llvm::Expected<SlotGrads> hardtanhBackward(const BackwardCtx &C) {
  QFX_TRY(Min, C.Args.real(1));
  QFX_TRY(Max, C.Args.real(2));
  return inputOnly(C, grad::hardtanhBackward(in(C), *Min, *Max, C.GradOut));
}

llvm::Expected<SlotGrads> hardswishBackward(const BackwardCtx &C) {
  return inputOnly(C, grad::hardswishBackward(in(C), C.GradOut));
}

llvm::Expected<SlotGrads> siluBackward(const BackwardCtx &C) {
  return inputOnly(C, grad::siluBackward(in(C), C.GradOut));
}

llvm::Expected<SlotGrads> hardsigmoidBackward(const BackwardCtx &C) {
  return inputOnly(C, grad::hardsigmoidBackward(in(C), C.GradOut));
}

llvm::Expected<SlotGrads> leakyReluBackward(const BackwardCtx &C) {
  QFX_TRY(Slope, C.Args.real(1));
  return inputOnly(C, grad::leakyReluBackward(in(C), *Slope, C.GradOut));
}

llvm::Expected<SlotGrads> sigmoidBackward(const BackwardCtx &C) {
  return inputOnly(C, grad::sigmoidBackward(C.Out, C.GradOut));
}

llvm::Expected<SlotGrads> tanhBackward(const BackwardCtx &C) {
  return inputOnly(C, grad::tanhBackward(C.Out, C.GradOut));
}

llvm::Expected<SlotGrads> softmaxBackward(const BackwardCtx &C) {
  QFX_TRY(Dim, C.Args.integer(1));
  QFX_TRY(D, ref::normalizeDim(*Dim, in(C).rank()));
  return inputOnly(C, grad::softmaxBackward(C.Out, *D, C.GradOut));
}

//===----------------------------------------------------------------------===//
// Arithmetic and shapes
//===----------------------------------------------------------------------===//

// add(input, other, alpha): other may be a scalar (no gradient).
llvm::Expected<SlotGrads> addBackward(const BackwardCtx &C) {
  QFX_TRY(Alpha, C.Args.real(2));
  if (!C.Args.operand(1).isTensor())
    return inputOnly(C, C.GradOut);
  auto G = grad::addBackward(in(C).shape(), C.Args.operand(1).tensor().shape(),
                             *Alpha, C.GradOut);
  SlotGrads R = slots(C.Args.size());
  R[0].push_back(std::move(G[0]));
  R[1].push_back(std::move(G[1]));
  return R;
}

llvm::Expected<SlotGrads> mulBackward(const BackwardCtx &C) {
  if (!C.Args.operand(1).isTensor()) {
    QFX_TRY(S, C.Args.real(1));
    return inputOnly(C, ref::mulScalar(C.GradOut, *S));
  }
  auto G = grad::mulBackward(in(C), C.Args.operand(1).tensor(), C.GradOut);
  SlotGrads R = slots(C.Args.size());
  R[0].push_back(std::move(G[0]));
  R[1].push_back(std::move(G[1]));
  return R;
}

llvm::Expected<SlotGrads> catBackward(const BackwardCtx &C) {
  QFX_TRY(Ts, C.Args.tensorList(0));
  QFX_TRY(Dim, C.Args.integer(1));
  QFX_TRY(D, ref::normalizeDim(*Dim, C.GradOut.rank()));
  std::vector<Shape> Shapes;
  for (const Tensor &T : *Ts)
    Shapes.emplace_back(T.shape().begin(), T.shape().end());
  SlotGrads R = slots(C.Args.size());
  R[0] = grad::catBackward(Shapes, *D, C.GradOut);
  return R;
}

/// Shape-only ops: the gradient is GradOut viewed with the input's shape.
llvm::Expected<SlotGrads> viewBackward(const BackwardCtx &C) {
  return inputOnly(C, C.GradOut.reshaped(in(C).shape()));
}

llvm::Expected<SlotGrads> permuteBackward(const BackwardCtx &C) {
  QFX_TRY(Dims, C.Args.ints(1));
  return inputOnly(C, grad::permuteBackward(C.GradOut, *Dims));
}

llvm::Expected<SlotGrads> transposeBackward(const BackwardCtx &C) {
  QFX_TRY(D0, C.Args.integer(1));
  QFX_TRY(D1, C.Args.integer(2));
  // A transpose is its own inverse.
  return inputOnly(C, ref::transpose(C.GradOut, *D0, *D1));
}

llvm::Expected<SlotGrads> meanBackward(const BackwardCtx &C) {
  QFX_TRY(Dims, C.Args.ints(1));
  QFX_TRY(KeepDim, C.Args.boolean(2));
  std::vector<int64_t> Norm;
  for (int64_t D : *Dims) {
    QFX_TRY(N, ref::normalizeDim(D, in(C).rank()));
    Norm.push_back(*N);
  }
  return inputOnly(
      C, grad::meanBackward(in(C).shape(), Norm, *KeepDim, C.GradOut));
}

// dropout(input, p, training).
llvm::Expected<Tensor> dropoutForward(ForwardCtx &C) {
  QFX_TRY(P, C.Args.real(1));
  QFX_TRY(Training, C.Args.boolean(2));
  if (!(C.Training ? *C.Training : *Training))
    return C.Args.operand(0).tensor();
  if (*P < 0 || *P > 1)
    return makeError("dropout: p must be in [0, 1], got " + std::to_string(*P));
  grad::DropoutResult R =
      grad::dropoutTrain(C.Args.operand(0).tensor(), *P, C.Rng);
  C.S.Mask = std::move(R.Mask);
  return R.Out;
}

llvm::Expected<SlotGrads> dropoutBackward(const BackwardCtx &C) {
  if (!C.S.Mask.hasData())
    return inputOnly(C, C.GradOut);
  return inputOnly(C, grad::mulElementwise(C.GradOut, C.S.Mask));
}

llvm::Expected<SlotGrads> identityBackward(const BackwardCtx &C) {
  return inputOnly(C, C.GradOut);
}

// Sorted by op name.
const GradRule Rules[] = {
    {"adaptive_avg_pool2d", nullptr, adaptiveAvgPoolBackward},
    {"add", nullptr, addBackward},
    {"avg_pool2d", nullptr, avgPoolBackward},
    {"batch_norm", batchNormForward, batchNormBackward},
    {"cat", nullptr, catBackward},
    {"contiguous", nullptr, identityBackward},
    {"conv1d", nullptr, train::conv1dBackward}, // conv family
    {"conv2d", nullptr, conv2dBackward},
    {"conv_transpose2d", nullptr, train::convTranspose2dBackward},
    {"dropout", dropoutForward, dropoutBackward},
    {"flatten", nullptr, viewBackward},
    {"hardsigmoid", nullptr, hardsigmoidBackward},
    {"hardswish", nullptr, hardswishBackward},
    {"hardtanh", nullptr, hardtanhBackward},
    {"identity", nullptr, identityBackward},
    {"leaky_relu", nullptr, leakyReluBackward},
    {"linear", nullptr, linearBackward},
    {"max_pool2d", nullptr, maxPoolBackward},
    {"mean", nullptr, meanBackward},
    {"mul", nullptr, mulBackward},
    {"permute", nullptr, permuteBackward},
    {"relu", nullptr, reluBackward},
    {"relu6", nullptr, relu6Backward},
    {"reshape", nullptr, viewBackward},
    {"sigmoid", nullptr, sigmoidBackward},
    {"silu", nullptr, siluBackward},
    {"softmax", nullptr, softmaxBackward},
    {"tanh", nullptr, tanhBackward},
    {"transpose", nullptr, transposeBackward},
    {"view", nullptr, viewBackward},
};

} // namespace

/// The table is binary-searched and names ops of the op table.
static bool rulesAreWellFormed() {
  for (size_t I = 0; I < std::size(Rules); ++I)
    if (!lookupOp(Rules[I].Op) ||
        (I > 0 && !(llvm::StringRef(Rules[I - 1].Op) < Rules[I].Op)))
      return false;
  return true;
}

const GradRule *qfx::train::lookupGradRule(llvm::StringRef Op) {
  static const bool WellFormed = rulesAreWellFormed();
  assert(WellFormed && "gradient rules must be sorted and name known ops");
  (void)WellFormed;
  auto It = llvm::partition_point(
      Rules, [&](const GradRule &R) { return llvm::StringRef(R.Op) < Op; });
  if (It != std::end(Rules) && Op == It->Op)
    return It;
  // arith family (ArithGrads.cpp).
  if (const GradRule *R = lookupArithGradRule(Op))
    return R;
  for (const GradRule &R : transformerGradRules())
    if (Op == R.Op)
      return &R;
  return nullptr;
}
