//===- ConvFamilyOpTable.h - conv1d and its quantized forms -----*- C++ -*-===//
//
// Private to the Runtime layer: the op-table entries of the conv family
// (conv1d, quantized_conv1d[_relu]), merged into the table by OpTable.cpp.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_LIB_RUNTIME_CONVFAMILYOPTABLE_H
#define QFX_LIB_RUNTIME_CONVFAMILYOPTABLE_H

#include "qfx/Runtime/Op.h"

#include <vector>

namespace qfx {

/// conv1d and quantized_conv1d[_relu] (each runs as its 2-d counterpart on
/// tensors with a unit height, which is exactly PyTorch's own conv1d) and
/// conv_transpose2d.
std::vector<OpDef> convFamilyOpDefs();

} // namespace qfx

#endif // QFX_LIB_RUNTIME_CONVFAMILYOPTABLE_H
