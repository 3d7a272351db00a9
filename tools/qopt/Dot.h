//===- Dot.h - Graphviz rendering of a GraphModule for qopt -----*- C++ -*-===//

#ifndef QFX_TOOLS_QOPT_DOT_H
#define QFX_TOOLS_QOPT_DOT_H

#include "llvm/Support/raw_ostream.h"

namespace qfx {
class GraphModule;

/// Writes \p GM as a Graphviz digraph: int8 edges bold blue with their
/// qparams, float edges grey, fused and quantized modules filled, float
/// islands of a quantized graph in red clusters, and a legend.
void printDot(const GraphModule &GM, llvm::raw_ostream &OS);
} // namespace qfx

#endif // QFX_TOOLS_QOPT_DOT_H
