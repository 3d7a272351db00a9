//===- Tracer.h - Records forward() into a graph ----------------*- C++ -*-===//
//
// The recording half of symbolic tracing. While a Tracer is active on a
// thread, ops on symbolic Values and calls of modules are recorded into its
// GraphModule instead of being run. Users call symbolicTrace
// (Trace/SymbolicTrace.h); this class is its engine.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_NN_TRACER_H
#define QFX_NN_TRACER_H

#include "qfx/IR/GraphModule.h"
#include "qfx/NN/Value.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/StringRef.h"

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace qfx {

class Operand;

namespace nn {

class Module;

/// Decides whether a module is recorded as call_module (true) or inlined.
using LeafPolicy =
    std::function<bool(const Module &M, llvm::StringRef QualifiedName)>;

/// The default policy, torch.fx's: built-in modules are leaves.
bool isStandardLeafModule(const Module &M, llvm::StringRef QualifiedName);

class Tracer {
public:
  /// Prepares to trace \p Root: copies its module tree (sharing tensor
  /// storage) into a new GraphModule and indexes its tensors by storage.
  Tracer(Module &Root, LeafPolicy IsLeaf);
  ~Tracer();
  Tracer(const Tracer &) = delete;
  Tracer &operator=(const Tracer &) = delete;

  /// The tracer active on this thread, or nullptr.
  static Tracer *current();

  /// Makes this tracer current for its lifetime's scope (RAII).
  class Activation {
  public:
    explicit Activation(Tracer &T);
    ~Activation();

  private:
    Tracer *Previous;
  };

  /// Adds a placeholder and returns its symbolic Value.
  Value placeholder(llvm::StringRef Name, const TensorType &Type);
  /// Records op \p Op (call_function, or call_method if \p AsMethod).
  Value recordOp(llvm::StringRef Op, const std::vector<OpArg> &Args,
                 const OpKwargs &KwArgs, bool AsMethod);
  /// Records a call of \p M (call_module for leaves, otherwise inlines).
  Value callModule(Module &M, const std::vector<Value> &Inputs);
  /// Records the output node.
  void output(const Value &Result);

  /// The module path whose forward() is running ("" for the root).
  llvm::StringRef scope() const { return ScopeStack.back(); }
  /// Takes the recorded module (the tracer is done).
  std::unique_ptr<GraphModule> take() { return std::move(GM); }

private:
  Argument toArgument(const Value &V);
  Argument toArgument(const OpArg &A);
  Operand toOperand(const Value &V) const;
  Operand toOperand(const OpArg &A) const;
  [[noreturn]] void fail(const std::string &Msg) const;
  Value recordLeafCall(Module &M, llvm::StringRef Path,
                       const std::vector<Value> &Inputs);

  std::unique_ptr<GraphModule> GM;
  LeafPolicy IsLeaf;
  /// Qualified name of every module of the tree.
  llvm::DenseMap<const Module *, std::string> ModulePaths;
  /// Qualified name of every registered tensor, by storage address (lookup
  /// only; never iterated).
  llvm::DenseMap<const void *, std::string> TensorPaths;
  /// get_attr nodes already created, by qualified tensor name.
  std::map<std::string, Node *> AttrNodes;
  std::vector<std::string> ScopeStack;
  unsigned NumConstants = 0;
};

} // namespace nn
} // namespace qfx

#endif // QFX_NN_TRACER_H
