//===- TransformerOpTable.h - Transformer op-table entries ----*- C++ -*-===//

#ifndef QFX_LIB_RUNTIME_TRANSFORMEROPTABLE_H
#define QFX_LIB_RUNTIME_TRANSFORMEROPTABLE_H

#include "qfx/Runtime/Op.h"

#include <vector>

namespace qfx {

/// layer_norm, gelu, matmul, bmm, expand, select and their quantized forms,
/// merged into the op table by OpTable.cpp.
std::vector<OpDef> transformerOpDefs();

} // namespace qfx

#endif // QFX_LIB_RUNTIME_TRANSFORMEROPTABLE_H
