//===- DeadCodeElimination.cpp - Erase unused nodes -----------------------===//

#include "qfx/Transforms/DeadCodeElimination.h"

#include "qfx/IR/GraphModule.h"

using namespace qfx;

llvm::Error DeadCodeElimination::run(GraphModule &GM, PassContext &Ctx) {
  NumErased = GM.graph().eliminateDeadCode();
  return llvm::Error::success();
}
