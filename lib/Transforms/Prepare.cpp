//===- Prepare.cpp - Insert observers (prepare_fx) ------------------------===//

#include "qfx/Transforms/Prepare.h"

#include "ObserverInsertion.h"

using namespace qfx;

llvm::Error Prepare::run(GraphModule &GM, PassContext &Ctx) {
  return insertObservers(GM, Ctx, name(), Ctx.QAT);
}
