//===- Explain.h - The per-node explain report of qopt ----------*- C++ -*-===//

#ifndef QFX_TOOLS_QOPT_EXPLAIN_H
#define QFX_TOOLS_QOPT_EXPLAIN_H

#include "llvm/Support/raw_ostream.h"

namespace qfx {
class GraphModule;
struct PassContext;

/// Prints, per node in graph order, its qconfig annotations and the remarks
/// passes made about it, then the remarks about nodes no longer in the graph.
void printExplain(const GraphModule &GM, const PassContext &Ctx,
                  llvm::raw_ostream &OS);
} // namespace qfx

#endif // QFX_TOOLS_QOPT_EXPLAIN_H
