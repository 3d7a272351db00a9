//===- BatchNormFold.h - BatchNorm folded into a conv / linear --*- C++ -*-===//
//
// PyTorch's fuse_conv_bn_weights / fuse_linear_bn_weights, bit for bit: the
// one place the folding arithmetic lives (the fuse pass and compile() both
// call it).
//
//===----------------------------------------------------------------------===//

#ifndef QFX_RUNTIME_BATCHNORMFOLD_H
#define QFX_RUNTIME_BATCHNORMFOLD_H

#include "qfx/IR/GraphModule.h"

namespace qfx {

/// The weight and bias of a conv / linear followed by an eval-mode
/// BatchNorm.
struct FoldedWeights {
  Tensor Weight;
  Tensor Bias;
};

/// Folds \p BN (running statistics, optional affine weight / bias, eps)
/// into \p Lin's weight and optional bias, computing in float32 one tensor
/// op at a time in PyTorch's order so that the results are bitwise
/// PyTorch's. \p IsConv selects the conv formula (else linear's);
/// \p Transposed reads output channels from a transposed conv's weight axis
/// 1. Neither module is modified (their tensors may share storage with the
/// user's model). With elided values (text IR), the result is declared
/// tensors of the right types.
FoldedWeights foldBatchNorm(const ModuleInfo &Lin, const ModuleInfo &BN,
                            bool IsConv, bool Transposed);

} // namespace qfx

#endif // QFX_RUNTIME_BATCHNORMFOLD_H
