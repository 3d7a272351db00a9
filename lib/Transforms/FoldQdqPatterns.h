//===- FoldQdqPatterns.h - The fold-qdq pass's groups -----------*- C++ -*-===//
//
// Private to the fold-qdq pass. A group ends at a quantize_per_tensor: the
// float ops behind it, back to the dequantizes of int8 values. Matching only
// inspects the graph and says why a near miss does not apply; rewriting
// replaces the group by its int8 form through the Graph API and removes the
// dequantizes, weights and modules nothing reads any more.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_LIB_TRANSFORMS_FOLDQDQPATTERNS_H
#define QFX_LIB_TRANSFORMS_FOLDQDQPATTERNS_H

#include "qfx/Support/Tensor.h"

#include "llvm/ADT/StringRef.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace qfx {

class GraphModule;
class Node;

namespace foldqdq {

/// An int8 activation's dtype and per-tensor qparams.
struct ActQ {
  DType Dtype = DType::U8;
  double Scale = 1.0;
  int64_t ZeroPoint = 0;

  bool operator==(const ActQ &O) const {
    return Dtype == O.Dtype && Scale == O.Scale && ZeroPoint == O.ZeroPoint;
  }
  bool operator!=(const ActQ &O) const { return !(*this == O); }
};

/// The int8 qparams of value \p N: its type's, or a quantize_per_tensor's
/// arguments; none for float values.
std::optional<ActQ> int8Quant(const Node &N);

/// How a group is rewritten.
enum class GroupKind : uint8_t {
  /// q(dq(x)) with x's qparams: x.
  Cancel,
  /// conv2d / conv1d / conv_transpose2d / linear with a dequantized
  /// constant weight: a quantized module.
  Weighted,
  /// add / mul / matmul of two int8 values: quantized_add[_relu] /
  /// quantized_mul / quantized_matmul.
  Binary,
  /// cat of int8 values: quantized_cat.
  Cat,
  /// hardswish / leaky_relu: the quantized_* function with the qparams.
  Unary,
  /// sigmoid ...: the quantized_* function, which has PyTorch's qparams.
  Fixed,
  /// Pools, reshapes, relu ...: the op itself on the int8 value.
  Shares,
  /// A BatchNorm2d or LayerNorm module: rebuilt in place as its quantized
  /// kind.
  InPlace,
};

/// One row of the table: a float op and its int8 forms.
struct FoldRow {
  const char *Op;
  GroupKind Kind;
  /// The int8 form (a module kind for Weighted, else a function).
  const char *Into;
  /// With a relu before the quantize ("" if it cannot absorb one).
  const char *IntoRelu;
  /// Weighted: with a residual add, without and with a relu after it.
  const char *IntoAdd = "";
  const char *IntoAddRelu = "";
};

/// The row of float op \p Op (call_function or call_method target), or
/// nullptr. Shares-qparams ops come from the backend table.
const FoldRow *lookupFoldRow(llvm::StringRef Op);

/// The outcome of matching at one quantize_per_tensor node.
struct MatchResult {
  const FoldRow *Row = nullptr;
  GroupKind Kind = GroupKind::Cancel;
  bool Matched = false;
  const Node *Quantize = nullptr;
  /// The float ops in data-flow order (conv, add, relu); the last one
  /// feeds the quantize. Empty for Cancel.
  std::vector<const Node *> Ops;
  /// The op the group is named after (the conv, the add ...).
  const Node *Main = nullptr;
  /// The int8 values the group reads (behind its dequantizes), in operand
  /// order (cat: the list).
  std::vector<const Node *> Inputs;
  /// Weighted: the weight's get_attr, and the bias node (an f32 get_attr or
  /// a dequantize of one), or nullptr for none.
  const Node *Weight = nullptr;
  const Node *Bias = nullptr;
  bool Relu = false;
  bool Add = false;
  /// The output's qparams (the quantize's).
  ActQ Out;
  /// For a near miss, why it stays QDQ; empty when there is nothing to
  /// explain (a quantize of a graph input).
  std::string Reason;

  /// "conv + relu" for remarks.
  std::string describe() const;
  /// The int8 op or module kind the group becomes.
  llvm::StringRef replacement() const;
};

/// Matches the group ending at quantize_per_tensor \p Q; only inspects the
/// graph.
MatchResult matchGroup(const Node &Q, const GraphModule &GM);

/// Replaces the matched group by its int8 form; returns the node that now
/// yields the int8 value (named after the group's main op). Nodes, tensors
/// and modules left unused are erased; every erased node precedes \p M's
/// quantize in the graph.
Node *rewriteGroup(const MatchResult &M, GraphModule &GM);

} // namespace foldqdq
} // namespace qfx

#endif // QFX_LIB_TRANSFORMS_FOLDQDQPATTERNS_H
