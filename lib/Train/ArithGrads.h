//===- ArithGrads.h - The arith family's gradient rules ---------*- C++ -*-===//
//
// Private to Train: lookupGradRule consults this after its own table.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_LIB_TRAIN_ARITHGRADS_H
#define QFX_LIB_TRAIN_ARITHGRADS_H

#include "GradRules.h"

namespace qfx {
namespace train {

/// The rule of arith-family op \p Op, or nullptr.
const GradRule *lookupArithGradRule(llvm::StringRef Op);

} // namespace train
} // namespace qfx

#endif // QFX_LIB_TRAIN_ARITHGRADS_H
