//===- SupportTable.h - What the oneDNN lowering supports -------*- C++ -*-===//
//
// One row per op the lowering handles: which kind of step it becomes, which
// activation dtypes oneDNN takes for it, what it already fuses (a module's
// built-in residual add or ReLU) and which following ops may be fused into
// it as post-ops. Ops absent from the table run through the op table.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_LIB_CODEGEN_SUPPORTTABLE_H
#define QFX_LIB_CODEGEN_SUPPORTTABLE_H

#include "qfx/Support/Tensor.h"

#include "llvm/ADT/StringRef.h"

#include <cstdint>

namespace qfx {

class GraphModule;
class Node;

namespace codegen {

/// The step an op becomes.
enum class LowerKind : uint8_t {
  Conv,
  /// Transposed convolution (conv family): oneDNN's deconvolution.
  Deconv,
  Linear,
  /// Inference batch norm (f32), running statistics.
  BatchNorm,
  LinearDynamic,
  MaxPool,
  AvgPool,
  AdaptiveAvgPool,
  /// relu, relu6, hardtanh: a clamp.
  Eltwise,
  /// Two-tensor add (f32) or quantized_add (int8).
  Add,
  Cat,
  /// flatten / reshape / view: a new shape over the same bytes.
  View,
  /// identity, contiguous, eval-mode dropout: the input itself.
  Alias,
  Quantize,
  Dequantize,
  // arith family (LowerArith.cpp).
  /// sub / rsub / div / neg / reciprocal: binary or eltwise.
  ArithBinary,
  /// interpolate: resampling, or the host kernel of PyTorch's index rule.
  Resample,
  /// embedding: a host gather of the table's rows.
  Embedding,
  /// narrow: a copy from a sub-memory.
  Narrow,
  /// hardswish, hardsigmoid, sigmoid, tanh, silu (Act says which): an
  /// eltwise post-op of a preceding conv / linear, else a primitive (f32)
  /// or a 256-entry table (int8).
  Activation,
  /// Two-tensor mul with broadcasting (f32 binary, int8 host kernel).
  Mul,
  // Transformer ops (LowerTransformer.cpp).
  /// matmul / bmm of two activations (a group anchor: scalar mul, gelu).
  Matmul,
  LayerNorm,
  Softmax,
  /// gelu on its own (fused into a linear or matmul when it follows one).
  Gelu,
  /// permute / transpose: a strided view for matmuls, else a reorder.
  Permute,
  /// select: a reorder of a strided view.
  Select,
  /// expand: a constant when its input is one, else a broadcast copy.
  Expand
};

/// The function an Activation op applies, in real units.
enum class ActKind : uint8_t {
  None,
  Hardswish,
  Hardsigmoid,
  Sigmoid,
  Tanh,
  Silu
};

/// Activation dtypes, as bits.
enum DTypeBits : uint8_t { DtF32 = 1, DtU8 = 2, DtS8 = 4, DtInt8 = 6 };

/// Post-ops that may follow an op, as bits.
enum PostOpBits : uint8_t {
  /// relu / relu6 / hardtanh as an eltwise post-op.
  PostEltwise = 1,
  /// A following two-tensor add as the sum post-op (f32 only: an int8 add
  /// requantizes the conv's own output first, which a sum cannot mimic).
  PostSum = 2,
  /// A following dequantize: the op writes f32 itself.
  PostDequant = 4,
  /// Only a plain relu as the eltwise (batch norm's fused ReLU flag).
  PostRelu = 8,
  /// A following gelu as an eltwise_gelu_erf / gelu_tanh post-op.
  PostGelu = 16,
  /// A following multiplication by a scalar as the output scale.
  PostScale = 32
};

/// Clamps an Eltwise op applies, in real units.
enum class ClampKind : uint8_t {
  None,
  /// [0, inf).
  Relu,
  /// [0, 6].
  Relu6,
  /// [min_val, max_val] from the node (defaults -1, 1).
  Hardtanh
};

struct LoweringRule {
  const char *Op;
  /// A module kind (call_module) rather than a function / method.
  bool IsModule;
  LowerKind Kind;
  /// Activation dtypes the primitive takes.
  uint8_t Dtypes;
  /// Post-ops that may be fused after it.
  uint8_t PostOps;
  /// Built in: the residual add of a ConvAdd kind (second input).
  bool BuiltinSum = false;
  /// Built in: a clamp after everything else (ReLU kinds), or the clamp of
  /// an Eltwise op.
  ClampKind Clamp = ClampKind::None;
  /// The function of an Activation op.
  ActKind Act = ActKind::None;
};

/// The row for \p Op, or nullptr.
const LoweringRule *lookupLoweringRule(llvm::StringRef Op, bool IsModule);
/// The row for node \p N (its module's kind for call_module), or nullptr.
const LoweringRule *lookupLoweringRule(const Node &N, const GraphModule &GM);

/// Whether \p Rule takes activations of dtype \p T.
bool supportsDType(const LoweringRule &Rule, DType T);

} // namespace codegen
} // namespace qfx

#endif // QFX_LIB_CODEGEN_SUPPORTTABLE_H
