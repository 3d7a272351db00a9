//===- ConvBnQat.h - Training QAT ConvBn2d as PyTorch does ------*- C++ -*-===//
//
// Private to the Train layer: forward and backward of a ConvBn2d /
// ConvBnReLU2d / LinearBn1d with a weight_fake_quant child, following
// torch.ao.nn.intrinsic.qat's _ConvBnNd._forward_approximate (and
// LinearBn1d.forward, the same formula with linear).
//
//===----------------------------------------------------------------------===//

#ifndef QFX_LIB_TRAIN_CONVBNQAT_H
#define QFX_LIB_TRAIN_CONVBNQAT_H

#include "TapeRecord.h"

#include "llvm/ADT/StringRef.h"

#include <vector>

namespace qfx {

class GraphModule;
class ModuleInfo;

namespace train {

/// Whether \p Kind is trained by recordConvBnQat (ConvBn2d, ConvBnReLU2d,
/// LinearBn1d).
bool isConvBnQatKind(llvm::StringRef Kind);

/// Runs QAT conv-bn module \p M (children "0" Conv2d, "1" BatchNorm2d and,
/// for ConvBnReLU2d, "2" ReLU; LinearBn1d: "0" Linear, "1" BatchNorm1d) at
/// \p Path on Inputs[0]:
///   sf = gamma / sqrt(running_var + eps)
///   y  = conv(x, weight_fake_quant(w * sf), 0) / sf + conv_bias
///   out = [relu](bn(y))
/// with bn in training mode (batch statistics, running-stat update) when
/// \p BatchStats, else with the running statistics (freeze_bn). Records a
/// custom backward into \p R that differentiates the whole expression,
/// including the path from gamma through sf.
llvm::Expected<Tensor> recordConvBnQat(GraphModule &GM, llvm::StringRef Path,
                                       ModuleInfo &M, ModuleInfo &FQ,
                                       const std::vector<Operand> &Inputs,
                                       const std::vector<Source> &Srcs,
                                       bool BatchStats, Record &R);

} // namespace train
} // namespace qfx

#endif // QFX_LIB_TRAIN_CONVBNQAT_H
