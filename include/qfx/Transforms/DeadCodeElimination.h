//===- DeadCodeElimination.h - Erase unused nodes ---------------*- C++ -*-===//
//
// Erases every node whose result nobody uses, except placeholders (they are
// the module's signature) and the output. Runs after rewrites that leave the
// matched nodes behind, as torch.fx's Graph.eliminate_dead_code does.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_TRANSFORMS_DEADCODEELIMINATION_H
#define QFX_TRANSFORMS_DEADCODEELIMINATION_H

#include "qfx/Transforms/Pass.h"

namespace qfx {

/// The dead-code-elimination pass.
class DeadCodeElimination : public Pass {
public:
  llvm::StringRef name() const override { return "dead-code-elimination"; }
  llvm::Error run(GraphModule &GM, PassContext &Ctx) override;
  /// Nodes erased by the last run.
  size_t numErased() const { return NumErased; }

private:
  size_t NumErased = 0;
};

} // namespace qfx

#endif // QFX_TRANSFORMS_DEADCODEELIMINATION_H
