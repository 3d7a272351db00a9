//===- NodeReader.h - Importer state and typed ONNX node readers -*- C++
//-*-===//
//
// Private to lib/Onnx. The importer's per-model state (values by ONNX name,
// the GraphModule being built) and NodeReader, the one place handlers read
// attributes and inputs through: every error it makes names the file, the
// node (index, ONNX name, op type, opset) and the field.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_LIB_ONNX_NODEREADER_H
#define QFX_LIB_ONNX_NODEREADER_H

#include "qfx/IR/GraphModule.h"
#include "qfx/Onnx/Import.h"

#include "onnx/onnx_pb.h"

#include "llvm/ADT/Twine.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace qfx {
namespace onnximport {

/// How an element of a folded integer constant relates to the symbolic
/// batch size: unrelated, equal to it, or computed from it in a way a
/// reshape target cannot express.
enum class BatchDep : uint8_t { None, Batch, Derived };

/// A value inside a multi-node pattern that has no qfx op of its own (Erf,
/// Sqrt): it has no graph node yet, and only the pattern's next node may
/// read it (ImportPatterns.cpp).
enum class Partial : uint8_t {
  None,
  GeluErf,      ///< Erf(x / sqrt(2))
  GeluErfPlus1, ///< 1 + Erf(x / sqrt(2))
  GeluHalfErf,  ///< 0.5 * (1 + Erf(x / sqrt(2)))
  GeluXErf,     ///< x * (1 + Erf(x / sqrt(2)))
  NormSqrt,     ///< Sqrt(ReduceMean((x - mean)^2) + eps)
  Taken,        ///< a value a pattern took apart (read by nothing else)
};

/// What a partial value is and which nodes may read it, for errors ("the
/// Erf of a GELU pattern ...").
std::string describePartial(Partial P);

/// An ONNX value: a graph node, a constant known at import (an
/// initializer or a folded shape computation), or a partial pattern.
struct OnnxValue {
  Node *N = nullptr;
  std::optional<Tensor> Const;
  /// Per element of Const (empty: all None).
  std::vector<BatchDep> Dep;
  /// For graph values: dimension 0 is the symbolic batch.
  bool BatchDim0 = false;
  /// For constants: the initializer name, used to name get_attr tensors.
  std::string InitName;
  /// For constants with a batch element: the graph value whose dimension 0
  /// it is (Expand's batch_like); null if unknown.
  Node *BatchOf = nullptr;
  /// For partial patterns: which, and the graph value it is of (x for the
  /// GELU forms, the variance-plus-eps node for NormSqrt).
  Partial Part = Partial::None;
  Node *PartOf = nullptr;

  bool isConst() const { return Const.has_value(); }
  BatchDep dep(int64_t I) const {
    return I < static_cast<int64_t>(Dep.size()) ? Dep[I] : BatchDep::None;
  }
};

/// Everything the node loop shares.
struct ImportState {
  std::string File;
  GraphModule *GM = nullptr;
  int64_t Opset = 0;
  std::map<std::string, OnnxValue> Values;
  /// get_attr nodes already made for constants, by ONNX name.
  std::map<std::string, Node *> ConstNodes;
  bool SawQdq = false;
  /// Module paths of the nodes imported so far (see modulePathOf).
  std::set<std::string> SeenPaths;
  /// How many nodes (and graph outputs) read each ONNX value.
  std::map<std::string, int> Uses;
  /// The graph outputs' ONNX names.
  std::set<std::string> Outputs;
  /// LayerNorm modules made from a decomposed layer norm whose weight was
  /// folded but not yet its bias (see foldNormBias).
  std::set<const Node *> NormsAwaitingBias;
};

/// The module path a torch.onnx.export node name gives
/// ("/layer1/layer1.0/conv1/Conv" -> "layer1.0.conv1"; "" when the name has
/// no scope). \p Seen holds the paths of earlier nodes, so that the second
/// call of module "relu" (named ".../relu_1/Relu") maps to "relu".
std::string modulePathOf(llvm::StringRef NodeName,
                         const std::set<std::string> &Seen);

/// Reads one node for a handler and records its results.
class NodeReader {
public:
  NodeReader(ImportState &S, const onnx::NodeProto &N, size_t Index)
      : S(S), N(N), Index(Index) {}

  const onnx::NodeProto &proto() const { return N; }
  ImportState &state() { return S; }
  GraphModule &gm() { return *S.GM; }
  int64_t opset() const { return S.Opset; }

  /// "<file>: node 7 '/a/Conv' (Conv, opset 13): <Msg>".
  llvm::Error error(const llvm::Twine &Msg) const;

  /// Inputs. An empty ONNX name is an absent optional input.
  size_t numInputs() const { return N.input_size(); }
  bool hasInput(size_t I) const;
  llvm::Expected<const OnnxValue *> input(size_t I) const;
  /// The input if it is a partial pattern (which input() refuses), else
  /// null.
  const OnnxValue *partial(size_t I) const;
  /// How many ONNX nodes and graph outputs read graph node \p Nd, under
  /// any of its ONNX names (a pattern takes a node apart only when it is
  /// the pattern's every reader).
  int readers(const Node *Nd) const;
  /// Erases \p Nodes, which a pattern took apart, if nothing outside them
  /// uses them (else erases nothing and returns false); their ONNX names
  /// become Taken.
  bool takeApart(llvm::ArrayRef<Node *> Nodes);

private:
  void eraseTaken(Node *Nd);

public:
  /// The input as a graph node; float constants become get_attr nodes.
  llvm::Expected<Node *> node(size_t I);
  /// The input as a constant (\p What names it in the error).
  llvm::Expected<const OnnxValue *> constant(size_t I, llvm::StringRef What);
  /// A constant input read as ints / as a float scalar.
  llvm::Expected<std::vector<int64_t>> constInts(size_t I,
                                                 llvm::StringRef What);
  llvm::Expected<double> constScalar(size_t I, llvm::StringRef What);
  /// Fails unless only output 0 is used.
  llvm::Error requireSingleOutput() const;

  /// Attributes; absent ones give the default.
  const onnx::AttributeProto *attr(llvm::StringRef Name) const;
  llvm::Expected<int64_t> attrInt(llvm::StringRef Name, int64_t Default) const;
  llvm::Expected<double> attrFloat(llvm::StringRef Name, double Default) const;
  llvm::Expected<std::string> attrString(llvm::StringRef Name,
                                         llvm::StringRef Default) const;
  llvm::Expected<std::vector<int64_t>>
  attrInts(llvm::StringRef Name, std::vector<int64_t> Default) const;

  /// The module path the exporter's node name gives
  /// ("/layer1/layer1.0/conv1/Conv" -> "layer1.0.conv1"), "" if none.
  std::string modulePath() const;
  /// A fresh module path for this node's module of kind \p Kind (from the
  /// node name, else the weight's initializer name, else \p Fallback; ""
  /// when all three are empty).
  std::string newModulePath(llvm::StringRef WeightName,
                            llvm::StringRef Fallback) const;

  /// Creates a node, types it through the op table and records the ONNX
  /// name; fails (naming this node) when the op rejects its operands.
  llvm::Expected<Node *> emit(OpCode Op, llvm::StringRef Target,
                              std::vector<Argument> Args,
                              llvm::StringRef NameHint = "");
  /// Output \p I is \p V / the node \p Nd (dimension 0 batch as input 0's).
  void define(size_t I, OnnxValue V);
  void defineNode(size_t I, Node *Nd);

private:
  ImportState &S;
  const onnx::NodeProto &N;
  size_t Index;
};

/// A handler: reads the node and defines its outputs.
using ImportHandler = llvm::Error (*)(NodeReader &);

/// One row of the import table.
struct ImportRule {
  const char *Domain;
  const char *OpType;
  std::vector<int> SinceVersions;
  ImportHandler Handler;
};

/// The rows for (\p Domain, \p OpType), or empty.
std::vector<const ImportRule *> lookupRules(llvm::StringRef Domain,
                                            llvm::StringRef OpType);

/// Sets \p Nd's type from the op table (call_function / call_method /
/// call_module / get_attr).
llvm::Error typeNode(GraphModule &GM, Node *Nd);

/// ONNX tensor element type -> qfx dtype.
std::optional<DType> dtypeFromOnnx(int32_t ElemType);
/// A TensorProto's data as a qfx tensor: sizes checked against dims,
/// external data read below \p BaseDir.
llvm::Expected<Tensor> tensorFromProto(const onnx::TensorProto &T,
                                       llvm::StringRef BaseDir);
/// Whether \p V is a value of \p D (finite and in range; any finite value
/// for f32).
bool fitsDType(double V, DType D);
/// A constant's elements as int64.
std::vector<int64_t> tensorInts(const Tensor &T);

/// The first error of several Expected values (the others are consumed),
/// so a handler can read all its attributes, then check once.
template <typename... Ts> llvm::Error firstError(Ts &...Vs) {
  llvm::Error R = llvm::Error::success();
  auto One = [&R](auto &V) {
    if (llvm::Error E = V.takeError()) {
      if (!R)
        R = std::move(E);
      else
        llvm::consumeError(std::move(E));
    }
  };
  (One(Vs), ...);
  return R;
}

/// ONNX pads [top, left, bottom, right] (and auto_pad) as PyTorch's
/// symmetric [pad_h, pad_w] (Conv and pooling).
llvm::Expected<std::vector<int64_t>> readPads(NodeReader &R);

// Handlers, by family.
llvm::Error importConv(NodeReader &R);
llvm::Error importGemm(NodeReader &R);
llvm::Error importMatMul(NodeReader &R);
llvm::Error importBatchNorm(NodeReader &R);
/// Conv family (ImportConvFamily.cpp): Conv with a 1-d kernel as Conv1d.
llvm::Error importConv1d(NodeReader &R);
/// call_function \p Target whose weight \p W is a graph value (a QDQ
/// weight's dequantize), scoped by the weight's initializer name when the
/// node name gives no module path, so that fold-qdq names the quantized
/// module after the module it came from.
llvm::Expected<Node *> emitWeighted(NodeReader &R, llvm::StringRef Target,
                                    std::vector<Argument> Args, const Node *W);
/// \p Target(x, weight, bias, \p Params...) through emitWeighted, its
/// weight (input 1) and optional bias (input 2) graph values: a
/// convolution whose weight is a QDQ weight's dequantize. The op's type
/// inference checks the shapes.
llvm::Expected<Node *> emitWeightedConv(NodeReader &R, llvm::StringRef Target,
                                        Node *X, std::vector<Argument> Params);
/// The double with the fewest digits that rounds to the same float (ONNX
/// stores eps and momentum as floats; PyTorch's modules hold doubles such
/// as 1e-5).
double shortestDouble(double V);
llvm::Error importConvTranspose(NodeReader &R);
llvm::Error importRelu(NodeReader &R);
llvm::Error importSigmoid(NodeReader &R);
llvm::Error importHardSwish(NodeReader &R);
llvm::Error importHardSigmoid(NodeReader &R);
llvm::Error importClip(NodeReader &R);
llvm::Error importAdd(NodeReader &R);
llvm::Error importMul(NodeReader &R);
llvm::Error importSoftmaxFlat(NodeReader &R);
llvm::Error importSoftmax(NodeReader &R);
llvm::Error importPassThrough(NodeReader &R);
llvm::Error importDropout(NodeReader &R);
llvm::Error importGlobalAveragePool(NodeReader &R);
llvm::Error importMaxPool(NodeReader &R);
llvm::Error importAveragePool(NodeReader &R);
llvm::Error importReduceMean(NodeReader &R);
llvm::Error importFlatten(NodeReader &R);
llvm::Error importReshape(NodeReader &R);
llvm::Error importConcat(NodeReader &R);
llvm::Error importEqual(NodeReader &R);
llvm::Error importWhere(NodeReader &R);
llvm::Error importExpand(NodeReader &R);
llvm::Error importTanh(NodeReader &R);
// Patterns of ops qfx has no op for (ImportPatterns.cpp): GELU as
// torch.onnx.export writes it (Div, Erf, Add, Mul, Mul; and the tanh form),
// the decomposed LayerNorm of opsets below 17 (ReduceMean, Sub, Pow,
// ReduceMean, Add, Sqrt, Div, Mul, Add).
llvm::Error importErf(NodeReader &R);
llvm::Error importSqrt(NodeReader &R);
llvm::Error importPow(NodeReader &R);
/// Add / Mul / Div that continue or finish a pattern; false (and nothing
/// done) when the node is not one.
llvm::Expected<bool> addInPattern(NodeReader &R);
llvm::Expected<bool> mulInPattern(NodeReader &R);
llvm::Expected<bool> divInPattern(NodeReader &R);
/// call_module LayerNorm(x) with a new module of weight \p W and bias \p B,
/// named after the node (else the weight's initializer), as the tracer
/// records nn.LayerNorm.
llvm::Expected<Node *> emitLayerNormModule(NodeReader &R, Node *X,
                                           llvm::ArrayRef<int64_t> Norm,
                                           double Eps, const Tensor &W,
                                           const Tensor &B,
                                           llvm::StringRef WeightName);
// Transformer ops (ImportTransformer.cpp).
llvm::Error importLayerNormalization(NodeReader &R);
/// MatMul whose right operand is not a constant (attention).
llvm::Error importMatMulOfActivations(NodeReader &R);
llvm::Error importTranspose(NodeReader &R);
/// Gather of one constant index from an activation (x[:, 0]).
llvm::Error importGatherSelect(NodeReader &R);
llvm::Error importShape(NodeReader &R);
llvm::Error importGather(NodeReader &R);
// arith family (ImportArith.cpp).
llvm::Error importSub(NodeReader &R);
llvm::Error importDiv(NodeReader &R);
llvm::Error importNeg(NodeReader &R);
llvm::Error importReciprocal(NodeReader &R);
llvm::Error importResize(NodeReader &R);
/// Upsample (opsets 7-9, before Resize): nearest as F.interpolate.
llvm::Error importUpsample(NodeReader &R);
llvm::Error importSplit(NodeReader &R);
/// Slice of a graph value (importSlice folds constants and hands the rest
/// here): one narrow per cut axis.
llvm::Error importSliceTensor(NodeReader &R);
/// Whether a Gather reads rows of a 2-d float constant with graph indices,
/// which is how nn.Embedding exports; importGather then calls
/// importEmbeddingGather.
bool isEmbeddingGather(NodeReader &R);
llvm::Error importEmbeddingGather(NodeReader &R);
llvm::Error importUnsqueeze(NodeReader &R);
llvm::Error importSqueeze(NodeReader &R);
llvm::Error importSlice(NodeReader &R);
llvm::Error importCast(NodeReader &R);
llvm::Error importConstant(NodeReader &R);
llvm::Error importConstantOfShape(NodeReader &R);
llvm::Error importQuantizeLinear(NodeReader &R);
llvm::Error importDequantizeLinear(NodeReader &R);

} // namespace onnximport
} // namespace qfx

#endif // QFX_LIB_ONNX_NODEREADER_H
