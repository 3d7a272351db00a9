//===- Verifier.h - Structural checks of a GraphModule ----------*- C++ -*-===//
//
// Runs after parsing, after loading and (in tests and with --verify-each)
// after every pass. It reports every problem it finds, each naming the node.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_IR_VERIFIER_H
#define QFX_IR_VERIFIER_H

#include "llvm/Support/Error.h"

#include <string>
#include <vector>

namespace qfx {

class GraphModule;

/// Every problem in \p GM, each as "node 'name': what is wrong" (or
/// "graph: ..." for problems that belong to no node), in graph order.
/// Checks: arguments defined before use and inside this graph; use lists
/// consistent with arguments; unique valid names; exactly one output node
/// and it is last; placeholders have no arguments; get_attr targets name
/// tensors and call_module targets name modules; types consistent with the
/// tensors they describe; quantization parameters valid for their shapes and
/// present only on integer dtypes.
std::vector<std::string> collectVerifierErrors(const GraphModule &GM);

/// All of collectVerifierErrors as one error (one line per problem), or
/// success.
llvm::Error verify(const GraphModule &GM);

} // namespace qfx

#endif // QFX_IR_VERIFIER_H
