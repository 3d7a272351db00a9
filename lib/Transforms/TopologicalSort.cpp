//===- TopologicalSort.cpp - Put nodes in dependency order ----------------===//

#include "qfx/Transforms/TopologicalSort.h"

#include "qfx/IR/GraphModule.h"

using namespace qfx;

llvm::Error TopologicalSort::run(GraphModule &GM, PassContext &Ctx) {
  return GM.graph().topologicalSort();
}
