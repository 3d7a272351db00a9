//===- ArithOps.h - The arith family's op-table entries ---------*- C++ -*-===//
//
// Private to Runtime: sub, rsub, div, neg, reciprocal, interpolate,
// embedding and narrow, merged into the op table by OpTable.cpp; and the
// parameter readers their lowering and gradients share.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_LIB_RUNTIME_ARITHOPS_H
#define QFX_LIB_RUNTIME_ARITHOPS_H

#include "qfx/Runtime/Op.h"

#include <vector>

namespace qfx {

/// The arith family's entries (unsorted; OpTable.cpp sorts the table).
std::vector<OpDef> arithOpDefs();

} // namespace qfx

#endif // QFX_LIB_RUNTIME_ARITHOPS_H
