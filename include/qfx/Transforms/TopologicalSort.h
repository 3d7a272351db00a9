//===- TopologicalSort.h - Put nodes in dependency order --------*- C++ -*-===//
//
// Reorders nodes so that each follows its inputs, keeping the existing order
// wherever it is already valid; fails on a cycle. Passes that insert nodes
// without care for position run it afterwards.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_TRANSFORMS_TOPOLOGICALSORT_H
#define QFX_TRANSFORMS_TOPOLOGICALSORT_H

#include "qfx/Transforms/Pass.h"

namespace qfx {

/// The topological-sort pass.
class TopologicalSort : public Pass {
public:
  llvm::StringRef name() const override { return "topological-sort"; }
  llvm::Error run(GraphModule &GM, PassContext &Ctx) override;
};

} // namespace qfx

#endif // QFX_TRANSFORMS_TOPOLOGICALSORT_H
