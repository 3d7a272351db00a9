//===- FusionPatterns.h - The fuse pass's pattern table ---------*- C++ -*-===//
//
// Private to the fuse pass. A pattern is a chain of ops linked by data flow
// (conv -> bn -> relu); matching only inspects the graph and says why a
// near miss does not apply, rewriting replaces the chain by one call_module
// of a fused module.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_LIB_TRANSFORMS_FUSIONPATTERNS_H
#define QFX_LIB_TRANSFORMS_FUSIONPATTERNS_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"

#include <string>
#include <vector>

namespace qfx {

class GraphModule;
class Node;

/// What one position of a pattern accepts.
struct OpMatcher {
  enum class Kind : uint8_t {
    /// call_module of a module of kind ModuleKind.
    Module,
    /// relu as a ReLU module, a function or a method.
    ReLU,
    /// call_function add of two same-shaped tensors, alpha 1.
    Add
  };
  Kind K;
  const char *ModuleKind = nullptr;
};

/// The outcome of matching a pattern at a root node: the chain of matched
/// nodes, or why the pattern does not apply.
struct MatchResult {
  /// The chain in data-flow order; empty when there is no match.
  std::vector<const Node *> Nodes;
  /// For patterns with an add: the add's operand that is not the chain.
  const Node *Other = nullptr;
  /// For a near miss (the ops are there but a condition fails), the reason,
  /// e.g. "conv1 -> bn1: 'conv1' has 2 users"; empty otherwise.
  std::string Reason;

  bool matched() const { return !Nodes.empty(); }
  bool isNearMiss() const { return !matched() && !Reason.empty(); }
};

/// One fusion pattern.
struct FusionPattern {
  /// Name used in remarks ("conv-bn-relu").
  const char *Name;
  std::vector<OpMatcher> Ops;
  /// The kind of the fused module without and with QAT (nullptr: not fused
  /// for QAT).
  const char *EvalKind;
  const char *QATKind;
  /// Whether, without QAT, the BatchNorm at position 1 folds into the
  /// conv/linear at position 0 (in PyTorch's float32 operation order).
  bool FoldsBN = false;

  const char *fusedKind(bool QAT) const { return QAT ? QATKind : EvalKind; }
  /// Whether PyTorch 1.13's fuse_fx makes this fusion too; qfx's own
  /// (those with an add) must not change any op's qconfig.
  bool inPyTorch() const {
    for (const OpMatcher &Op : Ops)
      if (Op.K == OpMatcher::Kind::Add)
        return false;
    return true;
  }
  bool folds(bool QAT) const { return FoldsBN && !QAT; }

  /// Matches the chain starting at \p Root; only inspects the graph.
  MatchResult match(const Node &Root, const GraphModule &GM) const;
  /// Replaces the matched chain by a call_module of a new module of
  /// fusedKind(QAT) at the root's module path; returns the fused node (the
  /// root node, moved to where the chain ended).
  Node *rewrite(const MatchResult &M, GraphModule &GM, bool QAT) const;
};

/// Every pattern, in the order they are tried (longer chains first).
llvm::ArrayRef<FusionPattern> fusionPatterns();

} // namespace qfx

#endif // QFX_LIB_TRANSFORMS_FUSIONPATTERNS_H
