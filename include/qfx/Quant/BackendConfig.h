//===- BackendConfig.h - Which ops quantize, and how ------------*- C++ -*-===//
//
// The node-class data table of docs/quantization.md, qfx's counterpart of
// torch.ao.quantization's BackendConfig: every op (a module kind, or a
// function / method name) falls in one class that tells prepare where to
// observe and convert what to emit. Ops absent from the table stay float.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_QUANT_BACKENDCONFIG_H
#define QFX_QUANT_BACKENDCONFIG_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"

#include <cstdint>
#include <optional>
#include <string>

namespace qfx {

class GraphModule;
class Node;

/// The classes of docs/quantization.md.
enum class NodeClass : uint8_t {
  /// Conv / Linear modules and their fused forms: observed activation inputs
  /// and output, plus a weight observer child.
  Weighted,
  /// Observed inputs and output (add, mul, BatchNorm2d, hardswish ...).
  General,
  /// The output reuses the input's observer (pools, reshapes, relu ...).
  SharesQParams,
  /// One observer shared by every input and the output.
  Cat,
  /// The output has constant qparams (sigmoid, tanh, softmax ...).
  FixedQParams,
  /// No int8 implementation.
  Float,
};

/// "weighted", "general", "shares_qparams", "cat", "fixed_qparams", "float".
llvm::StringRef nodeClassName(NodeClass C);

/// One row of the table.
struct BackendOpEntry {
  /// A module kind ("Conv2d") or a function / method name ("max_pool2d").
  const char *Op;
  /// Whether Op names a module kind (call_module) rather than a function or
  /// method (call_function / call_method).
  bool IsModule;
  NodeClass Class;
  /// Fixed-qparams ops: the output's quint8 scale and zero point.
  double FixedScale = 0.0;
  int64_t FixedZeroPoint = 0;
  /// Weighted ops with a dynamic (per-batch activation) int8 kernel.
  bool SupportsDynamic = false;
};

/// Every row, sorted by (IsModule, Op).
llvm::ArrayRef<BackendOpEntry> backendOpTable();
/// The row for \p Op, or nullptr.
const BackendOpEntry *lookupBackendOp(llvm::StringRef Op, bool IsModule);

/// What the table says about one node.
struct NodeClassification {
  NodeClass Class = NodeClass::Float;
  /// The op as the table spells it: the module kind for call_module, the
  /// target otherwise ("" for placeholders, get_attr and output).
  std::string Op;
  /// Fixed-qparams ops: the output's qparams.
  double FixedScale = 0.0;
  int64_t FixedZeroPoint = 0;
  bool SupportsDynamic = false;
  /// Float nodes: why ("no int8 implementation for 'softplus'").
  std::string FloatReason;

  bool isFloat() const { return Class == NodeClass::Float; }
};

/// Classifies \p N of \p GM. Beyond the table: add / mul are General with
/// two tensor operands and SharesQParams with one tensor and one number
/// (PyTorch 1.13's binary-op config: the output shares the input's
/// observer), both only with alpha 1; cat needs a list of tensors; observer
/// modules, placeholders, get_attr and output are Float.
NodeClassification classify(const Node &N, const GraphModule &GM);

/// The number of a call_function / call_method add or mul of a tensor and a
/// number (`x * 0.25`, `x + 1`; the tracer records `2 * x` as `x * 2`);
/// std::nullopt for any other node. PyTorch lowers these to quantized::add
/// / quantized::mul with a scalar.
std::optional<double> scalarArithOperand(const Node &N);

/// The relu (function, method or ReLU module of \p GM) that is \p N's only
/// user and reads only \p N, or nullptr: with an add or mul before it, one
/// pattern of PyTorch 1.13's binary-op config.
Node *soleReluUser(const Node &N, const GraphModule &GM);

/// Whether module kind \p Kind is an activation or weight observer or a
/// fake-quant module (PyTorch's is_activation_post_process, by name).
bool isObserverModuleKind(llvm::StringRef Kind);

} // namespace qfx

#endif // QFX_QUANT_BACKENDCONFIG_H
