//===- Export.cpp - GraphModules out as ONNX and QDQ ONNX -----------------===//
//
// The exporter's driver and shared helpers. Nodes are exported in graph
// order: each call is bound to its op's parameters (a module through its
// kind), the export table's emitter writes its float ONNX form, and a
// quantized result gets a QuantizeLinear with the node's qparams; every
// quantized input is read through a DequantizeLinear of its own. That is
// the QDQ form ONNX Runtime's quantizer writes and its QDQ transformer
// fuses into int8 kernels (ExportTable.cpp lists the node-unit shapes). An
// observed or fake-quant graph is converted first (the registered convert
// pass), so its numerics are convert's. docs/onnx.md has the contract.
//
//===----------------------------------------------------------------------===//

#include "ExportState.h"

#include "qfx/IR/GraphModule.h"
#include "qfx/Onnx/Export.h"
#include "qfx/Quant/ObserverModule.h"
#include "qfx/Runtime/ModuleRunner.h"
#include "qfx/Support/Error.h"
#include "qfx/Support/FileIO.h"
#include "qfx/Transforms/Pass.h"

#include "onnx/checker.h"
#include "onnx/onnx_pb.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/Twine.h"

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>

using namespace qfx;
using namespace qfx::onnxexport;

//===----------------------------------------------------------------------===//
// Tensors and attributes
//===----------------------------------------------------------------------===//

static int onnxType(DType T) {
  switch (T) {
  case DType::F32:
    return onnx::TensorProto::FLOAT;
  case DType::S8:
    return onnx::TensorProto::INT8;
  case DType::U8:
    return onnx::TensorProto::UINT8;
  case DType::S32:
    return onnx::TensorProto::INT32;
  case DType::S64:
    return onnx::TensorProto::INT64;
  }
  llvm_unreachable("unknown dtype");
}

/// Raw little-endian bytes, as ONNX stores raw_data (qfx runs on
/// little-endian hosts only, as oneDNN does).
static void fillTensor(onnx::TensorProto &P, const std::string &Name,
                       const Tensor &T) {
  P.set_name(Name);
  P.set_data_type(onnxType(T.dtype()));
  for (int64_t D : T.shape())
    P.add_dims(D);
  P.set_raw_data(
      std::string(static_cast<const char *>(T.rawData()), T.byteSize()));
}

void onnxexport::attrInt(onnx::NodeProto &P, const char *Name, int64_t V) {
  onnx::AttributeProto *A = P.add_attribute();
  A->set_name(Name);
  A->set_type(onnx::AttributeProto::INT);
  A->set_i(V);
}

void onnxexport::attrInts(onnx::NodeProto &P, const char *Name,
                          llvm::ArrayRef<int64_t> V) {
  onnx::AttributeProto *A = P.add_attribute();
  A->set_name(Name);
  A->set_type(onnx::AttributeProto::INTS);
  for (int64_t X : V)
    A->add_ints(X);
}

void onnxexport::attrFloat(onnx::NodeProto &P, const char *Name, float V) {
  onnx::AttributeProto *A = P.add_attribute();
  A->set_name(Name);
  A->set_type(onnx::AttributeProto::FLOAT);
  A->set_f(V);
}

//===----------------------------------------------------------------------===//
// NodeCall
//===----------------------------------------------------------------------===//

size_t NodeCall::param(llvm::StringRef Name) const {
  for (size_t I = 0; I < Def->Params.size(); ++I)
    if (Name == Def->Params[I].Name)
      return I;
  assert(false && "op has no such parameter");
  return 0;
}

bool NodeCall::hasParam(llvm::StringRef Name) const {
  return llvm::any_of(Def->Params,
                      [&](const OpParam &P) { return Name == P.Name; });
}

//===----------------------------------------------------------------------===//
// ExportState
//===----------------------------------------------------------------------===//

static std::string describeNode(const Node &N) {
  return ("node '" + N.name() + "' (" + opcodeName(N.op()) + "[" + N.target() +
          "])")
      .str();
}

Operand ExportState::toOperand(const Argument &A) {
  // Node inputs become one-element tagged tensors so the runtime's binder
  // (which resolves defaults and module kinds) can place them.
  if (A.isNode()) {
    Tensor T(DType::S64, {1});
    Tags[T.rawData()] = A.getNode();
    TagKeepAlive.push_back(T);
    return Operand(T);
  }
  if (A.isList()) {
    bool HasNode = false;
    A.forEachNode([&](Node *) { HasNode = true; });
    if (HasNode) {
      std::vector<Operand> Elems;
      for (const Argument &E : A.getList())
        Elems.push_back(toOperand(E));
      return Operand::list(std::move(Elems));
    }
  }
  return Operand(A);
}

Operand ExportState::floatTag(const std::string &Name,
                              std::optional<Shape> Dims) {
  Tensor T(DType::S64, {1});
  FloatTags[T.rawData()] = {Name, std::move(Dims)};
  TagKeepAlive.push_back(T);
  return Operand(T);
}

llvm::Expected<NodeCall> ExportState::bindModule(const Node &N,
                                                 const ModuleInfo &M,
                                                 std::string Path,
                                                 std::vector<Operand> Inputs) {
  auto B = bindModuleCall(M, std::move(Inputs));
  if (!B)
    return B.takeError();
  NodeCall C;
  C.N = &N;
  C.Module = &M;
  C.ModulePath = std::move(Path);
  C.Def = B->first;
  C.Args.emplace(std::move(B->second));
  return C;
}

llvm::Expected<NodeCall> ExportState::bind(const Node &N) {
  std::vector<Operand> Positional;
  for (const Argument &A : N.args())
    Positional.push_back(toOperand(A));
  std::vector<std::pair<std::string, Operand>> Keywords;
  for (const auto &KV : N.kwargs())
    Keywords.emplace_back(KV.first, toOperand(KV.second));

  if (N.op() == OpCode::CallModule) {
    const ModuleInfo *M = GM.lookupModule(N.target());
    if (!M)
      return makeError("no module '" + N.target() + "'");
    if (!Keywords.empty())
      return makeError("keyword arguments of a module call are not "
                       "exported");
    return bindModule(N, *M, N.target().str(), std::move(Positional));
  }
  NodeCall C;
  C.N = &N;
  C.Def = lookupOp(N.target());
  if (!C.Def)
    return makeError("unknown op '" + N.target() + "'");
  auto B = bindArgs(*C.Def, std::move(Positional), std::move(Keywords));
  if (!B)
    return B.takeError();
  C.Args.emplace(std::move(*B));
  return C;
}

const Node *ExportState::valueNode(const Operand &O) const {
  if (!O.isTensor() || !O.tensor().hasData())
    return nullptr;
  auto It = Tags.find(O.tensor().rawData());
  return It == Tags.end() ? nullptr : It->second;
}

const Value *ExportState::value(const Node *N) const {
  auto It = Values.find(N);
  return It == Values.end() ? nullptr : &It->second;
}

void ExportState::setValue(const Node *N, Value V) { Values[N] = std::move(V); }

std::string ExportState::fresh(llvm::StringRef Hint) {
  std::string Base =
      Current ? (Current->name() + "/" + Hint).str() : Hint.str();
  std::string Name = Base;
  for (int I = 1; Names.count(Name); ++I)
    Name = Base + "_" + std::to_string(I);
  Names.insert(Name);
  return Name;
}

onnx::NodeProto &ExportState::add(llvm::StringRef OpType,
                                  std::vector<std::string> Inputs) {
  onnx::NodeProto *P = G.add_node();
  P->set_op_type(OpType.str());
  P->set_name(fresh(OpType));
  for (std::string &I : Inputs)
    P->add_input(std::move(I));
  P->add_output(fresh((OpType + "_output").str()));
  return *P;
}

std::string ExportState::initializer(const std::string &Name, const Tensor &T) {
  if (Initializers.insert(Name).second) {
    Names.insert(Name);
    fillTensor(*G.add_initializer(), Name, T);
  }
  return Name;
}

std::string ExportState::constInts(llvm::StringRef Hint,
                                   llvm::ArrayRef<int64_t> V) {
  Tensor T(DType::S64, {static_cast<int64_t>(V.size())});
  if (!V.empty())
    std::memcpy(T.rawData(), V.data(), V.size() * sizeof(int64_t));
  return initializer(fresh(Hint), T);
}

std::string ExportState::constFloat(llvm::StringRef Hint, float V) {
  Tensor T(DType::F32, {});
  T.data<float>()[0] = V;
  return initializer(fresh(Hint), T);
}

std::pair<std::string, std::string>
ExportState::qparams(const std::string &Base, const QuantParams &Q, DType T) {
  Tensor Scale, Zero;
  if (Q.isPerChannel()) {
    int64_t C = static_cast<int64_t>(Q.Scales.size());
    Scale = Tensor(DType::F32, {C});
    Zero = Tensor(T, {C});
    for (int64_t I = 0; I < C; ++I) {
      Scale.data<float>()[I] = static_cast<float>(Q.Scales[I]);
      Zero.setFromDouble(I, static_cast<double>(Q.ZeroPoints[I]));
    }
  } else {
    Scale = Tensor(DType::F32, {});
    Zero = Tensor(T, {});
    Scale.data<float>()[0] = static_cast<float>(Q.Scale);
    Zero.setFromDouble(0, static_cast<double>(Q.ZeroPoint));
  }
  return {initializer(Base + "_scale", Scale),
          initializer(Base + "_zero_point", Zero)};
}

llvm::Expected<std::string> ExportState::floatOf(const Node *V) {
  const Value *X = value(V);
  if (!X)
    return makeError("reads '" + V->name() + "', which has no ONNX value");
  if (!X->isQuantized())
    return X->Name;
  onnx::NodeProto &DQ =
      add("DequantizeLinear", {X->Name, X->ScaleName, X->ZeroPointName});
  if (X->Quant.isPerChannel())
    attrInt(DQ, "axis", X->Quant.Axis);
  return out(DQ);
}

const Tensor *ExportState::constant(const NodeCall &C, size_t I) const {
  const Operand &O = C.Args->operand(I);
  if (!O.isTensor() || valueNode(O) || FloatTags.count(O.tensor().rawData()))
    return nullptr;
  if (C.Module)
    if (const Tensor *T = C.Module->tensor(C.Def->Params[I].Name))
      return T;
  return &O.tensor();
}

std::string ExportState::constantName(const NodeCall &C, size_t I) const {
  llvm::StringRef Base = C.Module ? llvm::StringRef(C.ModulePath) : C.N->name();
  return (Base + "." + C.Def->Params[I].Name).str();
}

llvm::Expected<std::string> ExportState::floatInput(const NodeCall &C,
                                                    size_t I) {
  const Operand &O = C.Args->operand(I);
  if (const Node *V = valueNode(O))
    return floatOf(V);
  if (O.isTensor() && FloatTags.count(O.tensor().rawData()))
    return FloatTags.find(O.tensor().rawData())->second.first;
  if (O.isTensor()) {
    const Tensor *T = constant(C, I);
    if (T->dtype() != DType::F32)
      return weight(C, I);
    return initializer(constantName(C, I), *T);
  }
  if (O.kind() == Operand::Kind::Arg && (O.arg().isFloat() || O.arg().isInt()))
    return constFloat(C.Def->Params[I].Name,
                      static_cast<float>(O.arg().isFloat() ? O.arg().getFloat()
                                                           : O.arg().getInt()));
  return makeError(llvm::Twine("operand '") + C.Def->Params[I].Name +
                   "' is not a tensor");
}

llvm::Expected<std::string> ExportState::weight(const NodeCall &C, size_t I) {
  const Operand &O = C.Args->operand(I);
  if (const Node *V = valueNode(O))
    return floatOf(V);
  const Tensor *T = constant(C, I);
  if (!T)
    return makeError(llvm::Twine("operand '") + C.Def->Params[I].Name +
                     "' is not a tensor");
  if (!T->hasData())
    return makeError(llvm::Twine("parameter '") + constantName(C, I) +
                     "' has no values");
  return weightTensor(constantName(C, I), *T);
}

llvm::Expected<std::string> ExportState::weightTensor(const std::string &Name,
                                                      const Tensor &T) {
  if (T.dtype() == DType::F32)
    return initializer(Name, T);
  if ((T.dtype() != DType::S8 && T.dtype() != DType::U8) || T.quant().isNone())
    return makeError("parameter '" + Name + "' is " + dtypeName(T.dtype()) +
                     " without qparams; expected f32 or quantized s8/u8");
  initializer(Name, T);
  auto [S, Z] = qparams(Name, T.quant(), T.dtype());
  onnx::NodeProto &DQ = add("DequantizeLinear", {Name, S, Z});
  if (T.quant().isPerChannel())
    attrInt(DQ, "axis", T.quant().Axis);
  return out(DQ);
}

llvm::Expected<std::string> ExportState::quantizedBias(const NodeCall &C,
                                                       size_t I, double InScale,
                                                       const Tensor &W) {
  const Tensor *B = constant(C, I);
  if (!B || B->dtype() != DType::F32 || !B->hasData() || B->rank() != 1)
    return makeError("expected the bias as an f32 vector with values");
  const QuantParams &WQ = W.quant();
  int64_t N = B->numElements();
  if (WQ.isPerChannel() && static_cast<int64_t>(WQ.Scales.size()) != N)
    return makeError("bias has " + llvm::Twine(N) +
                     " elements but the "
                     "weight has " +
                     llvm::Twine(WQ.Scales.size()) + " channel scales");
  // ORT's quantizer: bias_scale = s_in * s_w (f32), q = round(b / scale)
  // as int32; ORT dequantizes q * bias_scale.
  Tensor Q(DType::S32, {N}), Scale(DType::F32, {N}), Zero(DType::S32, {N});
  for (int64_t K = 0; K < N; ++K) {
    double SW = WQ.isPerChannel() ? WQ.Scales[K] : WQ.Scale;
    float S = static_cast<float>(InScale * SW);
    double R = std::nearbyint(static_cast<double>(B->data<float>()[K]) / S);
    R = std::min<double>(std::max<double>(R, INT32_MIN), INT32_MAX);
    Q.data<int32_t>()[K] = static_cast<int32_t>(R);
    Scale.data<float>()[K] = S;
  }
  std::string Name = constantName(C, I) + "_quantized";
  // Named after the module: a module called twice with different input
  // scales would keep the first call's bias (not checked).
  initializer(Name, Q);
  std::string SName = initializer(Name + "_scale", Scale);
  std::string ZName = initializer(Name + "_zero_point", Zero);
  onnx::NodeProto &DQ = add("DequantizeLinear", {Name, SName, ZName});
  attrInt(DQ, "axis", 0);
  return out(DQ);
}

llvm::Error ExportState::quantizeResult(const Node &N,
                                        const std::string &Float) {
  const TensorType &T = *N.type();
  if (!T.Quant.isPerTensor() || (T.Dtype != DType::U8 && T.Dtype != DType::S8))
    return makeError("result type " + llvm::Twine(dtypeName(T.Dtype)) +
                     " has no per-tensor 8-bit qparams");
  auto [S, Z] = qparams(N.name().str(), T.Quant, T.Dtype);
  onnx::NodeProto &Q = add("QuantizeLinear", {Float, S, Z});
  Value V;
  V.Name = out(Q);
  V.Dtype = T.Dtype;
  V.Quant = T.Quant;
  V.Dims = T.Dims;
  V.ScaleName = S;
  V.ZeroPointName = Z;
  setValue(&N, std::move(V));
  return llvm::Error::success();
}

std::optional<Shape> ExportState::dimsOf(const NodeCall &C, size_t I) const {
  const Operand &O = C.Args->operand(I);
  if (const Node *V = valueNode(O))
    if (const Value *X = value(V))
      return X->Dims;
  if (O.isTensor() && FloatTags.count(O.tensor().rawData()))
    return FloatTags.find(O.tensor().rawData())->second.second;
  return std::nullopt;
}

//===----------------------------------------------------------------------===//
// The driver
//===----------------------------------------------------------------------===//

namespace {

/// Sets \p VI's type: dtype and dims, the first dim named "batch" when
/// \p DynamicBatch.
void setValueInfo(onnx::ValueInfoProto &VI, const std::string &Name, DType T,
                  const std::optional<Shape> &Dims, bool DynamicBatch) {
  VI.set_name(Name);
  onnx::TypeProto_Tensor *TT = VI.mutable_type()->mutable_tensor_type();
  TT->set_elem_type(onnxType(T));
  if (!Dims)
    return;
  onnx::TensorShapeProto *S = TT->mutable_shape();
  for (size_t I = 0; I < Dims->size(); ++I) {
    onnx::TensorShapeProto_Dimension *D = S->add_dim();
    if (I == 0 && DynamicBatch)
      D->set_dim_param("batch");
    else
      D->set_dim_value((*Dims)[I]);
  }
}

bool readsObservers(const GraphModule &GM) {
  return llvm::any_of(GM.graph(), [&](const Node &N) {
    if (N.op() != OpCode::CallModule)
      return false;
    const ModuleInfo *M = GM.lookupModule(N.target());
    return M && isObserverModule(*M);
  });
}

class Driver {
public:
  Driver(const GraphModule &GM, const OnnxExportOptions &Opts,
         onnx::ModelProto &M)
      : GM(GM), Opts(Opts), S(GM, Opts, *M.mutable_graph()) {}

  llvm::Error run() {
    for (const Node &N : GM.graph()) {
      S.setCurrent(&N);
      if (llvm::Error E = exportNode(N))
        return prefixError(std::move(E), describeNode(N));
    }
    return llvm::Error::success();
  }

private:
  llvm::Error exportNode(const Node &N) {
    switch (N.op()) {
    case OpCode::Placeholder:
      return exportInput(N);
    case OpCode::GetAttr:
      return exportConstant(N);
    case OpCode::Output:
      return exportOutput(N);
    case OpCode::CallModule:
    case OpCode::CallFunction:
    case OpCode::CallMethod:
      return exportCall(N);
    }
    llvm_unreachable("unknown opcode");
  }

  llvm::Error exportInput(const Node &N) {
    if (!N.type())
      return makeError("the input has no type; give its shape (trace with "
                       "input specs or --input-shape)");
    // f32 activations, and s64 / s32 indices (embedding's input).
    DType T = N.type()->Dtype;
    if (T != DType::F32 && T != DType::S64 && T != DType::S32)
      return makeError("only f32, s64 and s32 graph inputs are exported, "
                       "got " +
                       llvm::Twine(dtypeName(T)));
    Value V;
    V.Name = N.target().str();
    V.Dtype = T;
    V.Dims = N.type()->Dims;
    setValueInfo(*S.graph().add_input(), V.Name, T, V.Dims, Opts.DynamicBatch);
    S.setValue(&N, std::move(V));
    return llvm::Error::success();
  }

  llvm::Error exportConstant(const Node &N) {
    const Tensor *T = GM.lookupTensor(N.target());
    if (!T || !T->hasData())
      return makeError("no tensor '" + N.target() + "' with values");
    Value V;
    V.Name = S.initializer(N.target().str(), *T);
    V.Dtype = T->dtype();
    V.Dims = Shape(T->shape().begin(), T->shape().end());
    if (!T->quant().isNone()) {
      V.Quant = T->quant();
      auto [Sc, Z] = S.qparams(V.Name, T->quant(), T->dtype());
      V.ScaleName = Sc;
      V.ZeroPointName = Z;
    }
    S.setValue(&N, std::move(V));
    return llvm::Error::success();
  }

  llvm::Error exportOutput(const Node &N) {
    if (N.numArgs() != 1)
      return makeError("expected one output argument");
    std::vector<const Node *> Outs;
    const Argument &A = N.arg(0);
    if (A.isNode())
      Outs.push_back(A.getNode());
    else if (A.isList() && llvm::all_of(A.getList(), [](const Argument &E) {
               return E.isNode();
             }))
      for (const Argument &E : A.getList())
        Outs.push_back(E.getNode());
    else
      return makeError("outputs must be a value or a list of values");
    for (size_t I = 0; I < Outs.size(); ++I) {
      const Value *V = S.value(Outs[I]);
      if (!V)
        return makeError("output '" + Outs[I]->name() + "' has no value");
      // Named outputs through an Identity: a graph input or a value
      // returned twice still gets its own output name.
      std::string Name = Outs.size() == 1 && A.isNode()
                             ? std::string("output")
                             : "output_" + std::to_string(I);
      onnx::NodeProto *P = S.graph().add_node();
      P->set_op_type("Identity");
      P->set_name(S.fresh("Identity"));
      P->add_input(V->Name);
      P->add_output(Name);
      setValueInfo(*S.graph().add_output(), Name, V->Dtype, V->Dims,
                   Opts.DynamicBatch);
    }
    return llvm::Error::success();
  }

  static llvm::Expected<std::string> emit(ExportState &S, const NodeCall &C) {
    const ExportRule *R = lookupExportRule(C.Def->Name);
    if (!R)
      return makeError("op '" + llvm::Twine(C.Def->Name) +
                       "' has no ONNX exporter");
    if (!R->Emit)
      return makeError("op '" + llvm::Twine(C.Def->Name) +
                       "' has no ONNX form: " + R->NoFormReason);
    return R->Emit(S, C);
  }

  /// A fused module (ConvReLU2d, LinearReLU, ConvAdd2d ...): its steps in
  /// order, each child through its own row, the running value in float.
  llvm::Expected<std::string> emitFused(const Node &N, const ModuleInfo &M,
                                        const FusedKindDef &K) {
    if (N.numArgs() != K.NumInputs || !N.kwargs().empty())
      return makeError(M.kind() + " takes " + llvm::Twine(K.NumInputs) +
                       " positional inputs");
    std::vector<Operand> Ins;
    for (const Argument &A : N.args())
      Ins.push_back(S.toOperand(A));
    std::optional<Shape> Dims;
    if (N.type())
      Dims = N.type()->Dims;
    Operand Running = Ins[0];
    std::string Last;
    for (const FusedStep &Step : K.Steps) {
      if (Step.K == FusedStep::Kind::AddOther) {
        // The residual add: the running value plus the second input.
        NodeCall Add;
        Add.N = &N;
        Add.Def = lookupOp("add");
        auto B = bindArgs(*Add.Def, {Running, Ins[1]}, {});
        if (!B)
          return B.takeError();
        Add.Args.emplace(std::move(*B));
        auto F = emit(S, Add);
        if (!F)
          return F.takeError();
        Last = *F;
      } else {
        const ModuleInfo *Child = M.child(Step.Child);
        if (!Child)
          return makeError(M.kind() + " has no child '" + Step.Child + "'");
        auto C = S.bindModule(N, *Child, (N.target() + "." + Step.Child).str(),
                              {Running});
        if (!C)
          return C.takeError();
        auto F = emit(S, *C);
        if (!F)
          return F.takeError();
        Last = *F;
      }
      Running = S.floatTag(Last, Dims);
    }
    return Last;
  }

  llvm::Error exportCall(const Node &N) {
    llvm::Expected<std::string> Float = std::string();
    const ModuleInfo *M =
        N.op() == OpCode::CallModule ? GM.lookupModule(N.target()) : nullptr;
    if (const FusedKindDef *K = M ? lookupFusedKind(M->kind()) : nullptr) {
      Float = emitFused(N, *M, *K);
    } else {
      auto C = S.bind(N);
      if (!C)
        return C.takeError();
      Float = emit(S, *C);
    }
    if (!Float)
      return Float.takeError();
    // An emitter that wrote an int8 result itself returns "".
    if (Float->empty() && S.value(&N))
      return llvm::Error::success();
    const std::optional<TensorType> &T = N.type();
    if (T && T->Dtype != DType::F32)
      return S.quantizeResult(N, *Float);
    Value V;
    V.Name = *Float;
    if (T)
      V.Dims = T->Dims;
    S.setValue(&N, std::move(V));
    return llvm::Error::success();
  }

  const GraphModule &GM;
  const OnnxExportOptions &Opts;
  ExportState S;
};

llvm::Expected<std::string> serialize(const onnx::ModelProto &M) {
  std::string Bytes;
  {
    google::protobuf::io::StringOutputStream SOS(&Bytes);
    google::protobuf::io::CodedOutputStream COS(&SOS);
    COS.SetSerializationDeterministic(true);
    if (!M.SerializeToCodedStream(&COS))
      return makeError("cannot serialize the ONNX model");
  }
  return Bytes;
}

} // namespace

llvm::Expected<std::string>
qfx::exportOnnxBuffer(const GraphModule &GM, const OnnxExportOptions &Opts) {
  if (Opts.Opset < 13 || Opts.Opset > 17)
    return makeError("opset " + llvm::Twine(Opts.Opset) +
                     " is not supported for export (13..17)");
  // Observed and fake-quant graphs: export what convert makes of them, so
  // ORT's numerics are convert's (PyTorch's QAT -> QDQ export does the
  // same through its reference model).
  if (readsObservers(GM)) {
    std::unique_ptr<GraphModule> Ref = GM.clone();
    const PassInfo *Convert = lookupPass("convert");
    assert(Convert && "the convert pass is registered");
    PassContext Ctx;
    if (llvm::Error E = Convert->Create()->run(*Ref, Ctx))
      return prefixError(std::move(E), "converting the observed graph");
    return exportOnnxBuffer(*Ref, Opts);
  }
  onnx::ModelProto M;
  M.set_ir_version(8);
  M.set_producer_name("qfx");
  onnx::OperatorSetIdProto *OS = M.add_opset_import();
  OS->set_domain("");
  OS->set_version(Opts.Opset);
  M.mutable_graph()->set_name(GM.root().kind().str());
  Driver D(GM, Opts, M);
  if (llvm::Error E = D.run())
    return E;
  try {
    onnx::checker::check_model(M);
  } catch (const std::exception &E) {
    return makeError(llvm::Twine("the exported model fails ONNX's checker: ") +
                     E.what());
  }
  return serialize(M);
}

llvm::Error qfx::exportOnnx(const GraphModule &GM, llvm::StringRef Path,
                            const OnnxExportOptions &Opts) {
  auto Bytes = exportOnnxBuffer(GM, Opts);
  if (!Bytes)
    return prefixError(Bytes.takeError(), Path);
  return writeFileAtomically(Path, *Bytes);
}
