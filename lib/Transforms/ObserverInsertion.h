//===- ObserverInsertion.h - The core of prepare, prepare-qat --*- C++ -*-===//
//
// Places observers (or FakeQuantize modules) by the node classes of
// docs/quantization.md. Private to the Prepare and PrepareQat passes.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_LIB_TRANSFORMS_OBSERVERINSERTION_H
#define QFX_LIB_TRANSFORMS_OBSERVERINSERTION_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

namespace qfx {

class GraphModule;
struct PassContext;

/// Inserts observers into \p GM; with \p QAT, FakeQuantize modules (as
/// also for qconfigs whose specs ask for fake quantization). Qconfigs come
/// from node meta (qconfig-propagation) and Ctx.QConfigs. Remarks are made
/// under \p PassName.
llvm::Error insertObservers(GraphModule &GM, PassContext &Ctx,
                            llvm::StringRef PassName, bool QAT);

} // namespace qfx

#endif // QFX_LIB_TRANSFORMS_OBSERVERINSERTION_H
