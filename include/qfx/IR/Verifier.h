//===- Verifier.h - Structural checks of a GraphModule ----------*- C++ -*-===//
//
// Runs after parsing, after loading and (in tests and with --verify-each)
// after every pass. It reports every problem it finds, each naming the node.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_IR_VERIFIER_H
#define QFX_IR_VERIFIER_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <string>
#include <vector>

namespace qfx {

class GraphModule;

/// Whether \p Target names an op a call_function / call_method can call.
using OpTargetCheck = bool (*)(llvm::StringRef Target);

/// Installs the check of call_function / call_method targets. The IR cannot
/// know the ops (they live in the Runtime's op table), so the Runtime
/// installs its lookup at start-up; without one every target is accepted.
void setOpTargetCheck(OpTargetCheck Check);

/// Every problem in \p GM, each as "node 'name': what is wrong" (or
/// "graph: ..." for problems that belong to no node), in graph order.
/// Checks: arguments defined before use and inside this graph; use lists
/// consistent with arguments; unique valid names; exactly one output node
/// and it is last; placeholders have no arguments; get_attr targets name
/// tensors and call_module targets name modules; call_function and
/// call_method targets name ops (see setOpTargetCheck); types consistent with
/// the tensors they describe; quantization parameters valid for their shapes
/// and present only on integer dtypes.
std::vector<std::string> collectVerifierErrors(const GraphModule &GM);

/// All of collectVerifierErrors as one error (one line per problem), or
/// success.
llvm::Error verify(const GraphModule &GM);

} // namespace qfx

#endif // QFX_IR_VERIFIER_H
