//===- Interpreter.h - Runs a GraphModule on tensors ------------*- C++ -*-===//
//
// The float runtime: executes nodes in order through the op table (the same
// kernels eager forward() uses), freeing each value after its last use.
// Later layers (observers, fake-quant, the reference int8 interpreter)
// extend it through the per-node hook.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_RUNTIME_INTERPRETER_H
#define QFX_RUNTIME_INTERPRETER_H

#include "qfx/Runtime/Op.h"
#include "qfx/Support/Tensor.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/Support/Error.h"

#include <functional>
#include <optional>
#include <vector>

namespace qfx {

class Graph;
class GraphModule;
class Node;

/// Interprets one GraphModule; reusable across runs.
class Interpreter {
public:
  explicit Interpreter(const GraphModule &GM);

  /// Called after each node that produced a tensor, with that tensor.
  using NodeHook = std::function<void(const Node &, const Tensor &)>;
  void setAfterNodeHook(NodeHook H) { AfterNode = std::move(H); }

  /// Runs a call_module node (given its operands) in place of the module
  /// when it returns a value, so that observers and fake-quant modules can
  /// update their state; std::nullopt runs the module as usual.
  using CallModuleHook = std::function<std::optional<llvm::Expected<Tensor>>(
      const Node &, const std::vector<Operand> &)>;
  void setCallModuleHook(CallModuleHook H) { CallModule = std::move(H); }

  /// Runs on one input per placeholder. Each input must match its
  /// placeholder's type in dtype and rank and in every dimension but the
  /// first (the batch may differ). Returns the output's tensors in order
  /// (one for a single result, several for a list).
  llvm::Expected<std::vector<Tensor>> run(llvm::ArrayRef<Tensor> Inputs);

private:
  const GraphModule &GM;
  NodeHook AfterNode;
  CallModuleHook CallModule;
};

/// Checks \p Inputs against \p G's placeholders: one per placeholder, with
/// data, matching its type in dtype and rank and in every dimension but the
/// first. Errors name the placeholder.
llvm::Error checkGraphInputs(const Graph &G, llvm::ArrayRef<Tensor> Inputs);

/// Convenience: runs \p GM on \p Inputs and returns its single output.
llvm::Expected<Tensor> interpret(const GraphModule &GM,
                                 llvm::ArrayRef<Tensor> Inputs);

} // namespace qfx

#endif // QFX_RUNTIME_INTERPRETER_H
