//===- SymbolicTrace.h - symbolic_trace for C++ models ----------*- C++ -*-===//
//
// torch.fx.symbolic_trace for qfx: runs a model's forward() on symbolic
// inputs and returns the recorded, verified GraphModule, with every node
// typed by shape propagation from the example input specs.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_TRACE_SYMBOLICTRACE_H
#define QFX_TRACE_SYMBOLICTRACE_H

#include "qfx/IR/GraphModule.h"
#include "qfx/NN/Module.h"
#include "qfx/NN/Tracer.h"

#include "llvm/Support/Error.h"

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace qfx {

/// One forward() argument: symbolic with a type (becomes a placeholder), or
/// concrete data (specializes the trace on it, like torch.fx's
/// concrete_args: forward() may branch on it, and tensor ops that use it
/// record it as a constant).
struct InputSpec {
  std::string Name;
  TensorType Type;
  std::optional<Tensor> Concrete;

  static InputSpec symbolic(std::string Name, DType T,
                            llvm::ArrayRef<int64_t> Shape);
  static InputSpec concrete(std::string Name, Tensor Data);
};

struct TraceOptions {
  /// Which modules become call_module; default: built-in modules.
  nn::LeafPolicy IsLeafModule = nn::isStandardLeafModule;
};

/// Traces \p Model. The result shares tensor storage with the model (as a
/// torch.fx GraphModule shares parameters). Errors (a TraceError from
/// control flow on symbolic values, shape errors) name the module path.
llvm::Expected<std::unique_ptr<GraphModule>>
symbolicTrace(nn::Module &Model, llvm::ArrayRef<InputSpec> Inputs,
              const TraceOptions &Opts = {});

/// PyTorch's spelling.
inline llvm::Expected<std::unique_ptr<GraphModule>>
symbolic_trace(nn::Module &Model, llvm::ArrayRef<InputSpec> Inputs,
               const TraceOptions &Opts = {}) {
  return symbolicTrace(Model, Inputs, Opts);
}

} // namespace qfx

#endif // QFX_TRACE_SYMBOLICTRACE_H
