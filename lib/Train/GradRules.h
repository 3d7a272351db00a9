//===- GradRules.h - The tape's table of per-op gradient rules --*- C++ -*-===//
//
// Private to the Train layer. Each op of the op table that can be
// differentiated has a rule: an optional training-mode forward (ops whose
// training behaviour differs from inference, or that must save something
// for backward) and a backward giving one gradient per schema slot.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_LIB_TRAIN_GRADRULES_H
#define QFX_LIB_TRAIN_GRADRULES_H

#include "qfx/Runtime/Op.h"
#include "qfx/Train/GradKernels.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/Support/Error.h"

#include <optional>
#include <random>
#include <vector>

namespace qfx {
namespace train {

/// What a rule's forward saves for its backward.
struct Saved {
  Tensor Mask;             ///< dropout mask
  grad::BatchNormSaved BN; ///< batch statistics
  bool BatchStats = false; ///< batch norm normalized with batch statistics
};

/// Context of a training-mode forward.
struct ForwardCtx {
  const BoundArgs &Args;
  /// Module-mode overrides: batch norm modules use batch statistics when
  /// training and not frozen; dropout modules drop when training. Functional
  /// calls follow their own `training` argument.
  std::optional<bool> Training;
  /// batch_norm modules' momentum (the functional reads its argument).
  std::optional<double> Momentum;
  std::mt19937_64 &Rng;
  Saved &S;
};

/// Context of a backward.
struct BackwardCtx {
  const BoundArgs &Args;
  const Tensor &Out;
  const Tensor &GradOut;
  const Saved &S;
  /// Whether schema slot I needs a gradient.
  llvm::ArrayRef<bool> Needs;
};

/// One entry per schema slot: one tensor for a tensor slot, one per element
/// for a tensor-list slot, none (or an empty Tensor()) for no gradient.
using SlotGrads = std::vector<std::vector<Tensor>>;

struct GradRule {
  const char *Op;
  /// nullptr: the op's inference Run, nothing saved.
  llvm::Expected<Tensor> (*Forward)(ForwardCtx &);
  llvm::Expected<SlotGrads> (*Backward)(const BackwardCtx &);
};

/// Conv family (ConvFamilyGrads.cpp): conv1d through conv2d's kernels.
llvm::Expected<SlotGrads> conv1dBackward(const BackwardCtx &C);
llvm::Expected<SlotGrads> convTranspose2dBackward(const BackwardCtx &C);
/// The transformer ops' rules (TransformerGrads.cpp), sorted by op name.
llvm::ArrayRef<GradRule> transformerGradRules();

/// The rule of op \p Op, or nullptr if it cannot be differentiated.
const GradRule *lookupGradRule(llvm::StringRef Op);

} // namespace train
} // namespace qfx

#endif // QFX_LIB_TRAIN_GRADRULES_H
