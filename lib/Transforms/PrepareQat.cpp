//===- PrepareQat.cpp - Insert fake-quant modules (prepare_qat_fx) --------===//

#include "qfx/Transforms/PrepareQat.h"

#include "ObserverInsertion.h"

using namespace qfx;

llvm::Error PrepareQat::run(GraphModule &GM, PassContext &Ctx) {
  return insertObservers(GM, Ctx, name(), /*QAT=*/true);
}
