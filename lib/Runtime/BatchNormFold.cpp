//===- BatchNormFold.cpp - Eval-mode BatchNorm folded into conv / linear --===//

#include "qfx/Runtime/BatchNormFold.h"

#include <cmath>

using namespace qfx;

namespace {

/// Per-channel values of an optional tensor: its data, or a constant.
struct ChannelValues {
  const Tensor *T;
  float Default;
  float operator[](int64_t C) const {
    return T ? T->data<float>()[C] : Default;
  }
};

} // namespace

/// BatchNorm's eps attribute (PyTorch's default when absent).
static double batchNormEps(const ModuleInfo &BN) {
  const Argument *A = BN.attr("eps");
  if (A && A->isFloat())
    return A->getFloat();
  if (A && A->isInt())
    return static_cast<double>(A->getInt());
  return 1e-5;
}

// Each loop below is one of PyTorch's tensor ops, in the same order.
FoldedWeights qfx::foldBatchNorm(const ModuleInfo &Lin, const ModuleInfo &BN,
                                 bool IsConv, bool Transposed) {
  const Tensor &W = *Lin.tensor("weight");
  const Tensor &Mean = *BN.tensor("running_mean");
  const Tensor &Var = *BN.tensor("running_var");
  ChannelValues Bias{Lin.tensor("bias"), 0.0f};
  ChannelValues Gamma{BN.tensor("weight"), 1.0f};
  ChannelValues Beta{BN.tensor("bias"), 0.0f};
  // Output channels: axis 0, or axis 1 of a transposed conv's weight.
  const int64_t C = W.dim(Transposed ? 1 : 0);
  bool HasData = W.hasData() && Mean.hasData() && Var.hasData();
  for (const ChannelValues *V : {&Bias, &Gamma, &Beta})
    HasData &= !V->T || V->T->hasData();
  if (!HasData) // Elided values (text IR): the types are still known.
    return {Tensor::declared(DType::F32, W.shape()),
            Tensor::declared(DType::F32, {C})};

  const float Eps = static_cast<float>(batchNormEps(BN));
  std::vector<float> Rsqrt(C), Scale(C), Diff(C);
  for (int64_t I = 0; I < C; ++I) // torch.rsqrt(bn_rv + bn_eps)
    Rsqrt[I] = 1.0f / std::sqrt(Var.data<float>()[I] + Eps);
  for (int64_t I = 0; I < C; ++I) // bn_w * bn_var_rsqrt
    Scale[I] = Gamma[I] * Rsqrt[I];
  Tensor NewW(DType::F32, W.shape());
  const int64_t Outer = Transposed ? W.dim(0) : 1;
  const int64_t Inner = W.numElements() / C / Outer;
  for (int64_t O = 0; O < Outer; ++O)
    for (int64_t I = 0; I < C; ++I)
      for (int64_t J = 0; J < Inner; ++J) {
        int64_t K = (O * C + I) * Inner + J;
        NewW.data<float>()[K] = W.data<float>()[K] * Scale[I];
      }
  for (int64_t I = 0; I < C; ++I) // conv_b - bn_rm
    Diff[I] = Bias[I] - Mean.data<float>()[I];
  Tensor NewB(DType::F32, {C});
  float *B = NewB.data<float>();
  if (IsConv) {
    // (conv_b - bn_rm) * bn_var_rsqrt * bn_w + bn_b
    for (int64_t I = 0; I < C; ++I)
      B[I] = Diff[I] * Rsqrt[I];
    for (int64_t I = 0; I < C; ++I)
      B[I] = B[I] * Gamma[I];
  } else {
    // (linear_b - bn_rm) * bn_scale + bn_b
    for (int64_t I = 0; I < C; ++I)
      B[I] = Diff[I] * Scale[I];
  }
  for (int64_t I = 0; I < C; ++I)
    B[I] = B[I] + Beta[I];
  return {NewW, NewB};
}
