//===- ExportState.h - The ONNX graph under construction (private) --------===//
//
// What the exporter's emitters share: the ModelProto's graph being built,
// the ONNX value each qfx node produced, and the helpers every node-unit
// shape is built from (activation QuantizeLinear / DequantizeLinear,
// per-channel int8 weights behind a DequantizeLinear, int32 bias with scale
// s_in * s_w). Only lib/Onnx/Export*.cpp include it.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_LIB_ONNX_EXPORTSTATE_H
#define QFX_LIB_ONNX_EXPORTSTATE_H

#include "qfx/IR/GraphModule.h"
#include "qfx/Onnx/Export.h"
#include "qfx/Runtime/Op.h"

#include "onnx/onnx_pb.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

// Propagates an error out of an Expected-returning exporter.
#define QFX_TRY(Var, Expr)                                                     \
  auto Var = (Expr);                                                           \
  if (!Var)                                                                    \
    return Var.takeError();

namespace qfx {
namespace onnxexport {

/// An exporter's result: the ONNX name of the value it wrote.
using Result = llvm::Expected<std::string>;

/// The ONNX tensor a qfx node's result became. A quantized result is the
/// (u)int8 output of a QuantizeLinear (or an int8 initializer); its
/// consumers read it through their own DequantizeLinear.
struct Value {
  std::string Name;
  DType Dtype = DType::F32;
  QuantParams Quant;
  /// The qfx static type's dims, when known.
  std::optional<Shape> Dims;
  /// Initializer names of a per-tensor quantized value's scale / zero point.
  std::string ScaleName, ZeroPointName;

  bool isQuantized() const { return !Quant.isNone(); }
};

/// One qfx node bound to its op's parameters (a call_module through its
/// module kind), with node inputs standing in as tagged tensors.
struct NodeCall {
  const Node *N = nullptr;
  const OpDef *Def = nullptr;
  const ModuleInfo *Module = nullptr;
  /// The module's qualified name (a fused module's child has its own).
  std::string ModulePath;
  std::optional<BoundArgs> Args;

  /// The index of parameter \p Name (asserts it exists).
  size_t param(llvm::StringRef Name) const;
  /// Whether the op has a parameter \p Name.
  bool hasParam(llvm::StringRef Name) const;
};

class ExportState {
public:
  ExportState(const GraphModule &GM, const OnnxExportOptions &Opts,
              onnx::GraphProto &G)
      : GM(GM), Opts(Opts), G(G) {}

  const GraphModule &graphModule() const { return GM; }
  int opset() const { return Opts.Opset; }
  bool dynamicBatch() const { return Opts.DynamicBatch; }

  //===--- Binding -------------------------------------------------------===//

  /// Binds \p N's arguments to its op's parameters.
  llvm::Expected<NodeCall> bind(const Node &N);
  /// Binds a call of module \p M (qualified name \p Path) on \p Inputs.
  llvm::Expected<NodeCall> bindModule(const Node &N, const ModuleInfo &M,
                                      std::string Path,
                                      std::vector<Operand> Inputs);
  /// \p A as an operand: node references become tagged tensors.
  Operand toOperand(const Argument &A);
  /// An operand standing for the float ONNX tensor \p Name (a step inside
  /// a fused module), with dims \p Dims when known.
  Operand floatTag(const std::string &Name, std::optional<Shape> Dims);
  /// The qfx node a bound operand stands for, or nullptr for a constant.
  const Node *valueNode(const Operand &O) const;
  /// The ONNX value of \p N (exported earlier, in graph order).
  const Value *value(const Node *N) const;
  void setValue(const Node *N, Value V);

  //===--- Nodes and initializers ----------------------------------------===//

  /// The node being exported: names of new ONNX nodes derive from it.
  void setCurrent(const Node *N) { Current = N; }
  const Node *current() const { return Current; }
  /// A name "<current node>/<Hint>" no ONNX node or tensor has yet.
  std::string fresh(llvm::StringRef Hint);
  /// Adds an ONNX node named fresh(OpType) with one output
  /// "<current>/<OpType>_output" (made unique); returns it.
  onnx::NodeProto &add(llvm::StringRef OpType, std::vector<std::string> Inputs);
  /// The first output of \p P.
  static const std::string &out(const onnx::NodeProto &P) {
    return P.output(0);
  }

  /// Adds \p T as initializer \p Name once (later calls return the name).
  std::string initializer(const std::string &Name, const Tensor &T);
  /// A 1-D int64 initializer "<current>/<Hint>".
  std::string constInts(llvm::StringRef Hint, llvm::ArrayRef<int64_t> V);
  /// A scalar f32 initializer "<current>/<Hint>".
  std::string constFloat(llvm::StringRef Hint, float V);

  //===--- The shared QDQ helpers ----------------------------------------===//

  /// Operand \p I as a float ONNX tensor: a quantized value through a new
  /// DequantizeLinear of its own (ORT fuses a DQ only with one consumer),
  /// a constant as an initializer named by constantName, a number as a
  /// scalar f32 initializer.
  llvm::Expected<std::string> floatInput(const NodeCall &C, size_t I);
  /// The same for a node reference (lists, outputs).
  llvm::Expected<std::string> floatOf(const Node *V);
  /// The module tensor or constant behind operand \p I of a call_module
  /// (the stored one: an s8 weight stays s8), or nullptr.
  const Tensor *constant(const NodeCall &C, size_t I) const;
  /// The initializer name of operand \p I's constant.
  std::string constantName(const NodeCall &C, size_t I) const;
  /// A weight: f32 as an initializer, s8 / u8 (weight-only) as an integer
  /// initializer with its scales and zero points (per channel on its axis,
  /// or per tensor) behind a DequantizeLinear of its own.
  llvm::Expected<std::string> weight(const NodeCall &C, size_t I);
  /// weight() for tensor \p T under initializer name \p Name.
  llvm::Expected<std::string> weightTensor(const std::string &Name,
                                           const Tensor &T);
  /// A bias for a quantized weighted op whose input has scale \p InScale
  /// and weight \p W: int32 round(b / (s_in * s_w[c])) with scale
  /// s_in * s_w[c] and zero point 0 behind a DequantizeLinear, as ORT's
  /// quantizer writes it.
  llvm::Expected<std::string> quantizedBias(const NodeCall &C, size_t I,
                                            double InScale, const Tensor &W);
  /// QuantizeLinear of \p Float to \p N's result type; records the value.
  llvm::Error quantizeResult(const Node &N, const std::string &Float);
  /// Scale and zero-point initializers of \p Q (scalars per tensor, vectors
  /// per channel; zero points of dtype \p T), named after \p Base.
  std::pair<std::string, std::string> qparams(const std::string &Base,
                                              const QuantParams &Q, DType T);

  /// The dims of operand \p I's value, when its type is known.
  std::optional<Shape> dimsOf(const NodeCall &C, size_t I) const;

  onnx::GraphProto &graph() { return G; }

private:
  const GraphModule &GM;
  const OnnxExportOptions &Opts;
  onnx::GraphProto &G;
  const Node *Current = nullptr;
  std::map<const Node *, Value> Values;
  /// Tag tensors' storage -> the node they stand for (lookup only; nothing
  /// is ever ordered by these addresses).
  std::map<const void *, const Node *> Tags;
  /// Tags of float ONNX tensors inside fused modules: name and dims.
  std::map<const void *, std::pair<std::string, std::optional<Shape>>>
      FloatTags;
  std::vector<Tensor> TagKeepAlive;
  std::set<std::string> Names;
  std::set<std::string> Initializers;
};

/// Adds attributes to an ONNX node.
void attrInt(onnx::NodeProto &P, const char *Name, int64_t V);
void attrInts(onnx::NodeProto &P, const char *Name, llvm::ArrayRef<int64_t> V);
void attrFloat(onnx::NodeProto &P, const char *Name, float V);

/// Exports one bound node: returns the float result's ONNX name (the
/// driver adds the QuantizeLinear of a quantized result), or "" after
/// recording an int8 result itself (setValue).
using EmitFn = llvm::Expected<std::string> (*)(ExportState &S,
                                               const NodeCall &C);

// arith family (ExportArith.cpp).
llvm::Expected<std::string> emitSub(ExportState &S, const NodeCall &C);
llvm::Expected<std::string> emitRsub(ExportState &S, const NodeCall &C);
llvm::Expected<std::string> emitDiv(ExportState &S, const NodeCall &C);
llvm::Expected<std::string> emitNeg(ExportState &S, const NodeCall &C);
llvm::Expected<std::string> emitReciprocal(ExportState &S, const NodeCall &C);
llvm::Expected<std::string> emitNarrow(ExportState &S, const NodeCall &C);
llvm::Expected<std::string> emitInterpolate(ExportState &S, const NodeCall &C);

// conv family and transformer ops (ExportTransformer.cpp).
llvm::Expected<std::string> emitConv1d(ExportState &S, const NodeCall &C);
llvm::Expected<std::string> emitQConv1d(ExportState &S, const NodeCall &C);
llvm::Expected<std::string> emitQConv1dRelu(ExportState &S, const NodeCall &C);
llvm::Expected<std::string> emitConvTranspose(ExportState &S,
                                              const NodeCall &C);
llvm::Expected<std::string> emitQConvTranspose(ExportState &S,
                                               const NodeCall &C);
llvm::Expected<std::string> emitLayerNorm(ExportState &S, const NodeCall &C);
llvm::Expected<std::string> emitGelu(ExportState &S, const NodeCall &C);
llvm::Expected<std::string> emitMatmul(ExportState &S, const NodeCall &C);
llvm::Expected<std::string> emitExpand(ExportState &S, const NodeCall &C);
llvm::Expected<std::string> emitSelect(ExportState &S, const NodeCall &C);
llvm::Expected<std::string> emitEmbedding(ExportState &S, const NodeCall &C);

/// The scale of a quantized op's input 0, which must be quantized per tensor
/// (the int32 bias's scale is s_in * s_w).
llvm::Expected<double> quantizedInputScale(ExportState &S, const NodeCall &C);

/// One row of the export table: a qfx op (call_function / call_method
/// target, or the op a module kind calls) and its emitter, or the reason
/// it has no ONNX form.
struct ExportRule {
  const char *Op;
  EmitFn Emit;
  const char *NoFormReason;
};

/// The row for \p Op, or nullptr.
const ExportRule *lookupExportRule(llvm::StringRef Op);

} // namespace onnxexport
} // namespace qfx

#endif // QFX_LIB_ONNX_EXPORTSTATE_H
