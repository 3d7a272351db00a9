//===- NodeReader.cpp - Typed ONNX node readers, tensors and typing -------===//
//
// The readers handlers go through, the TensorProto -> Tensor conversion
// (sizes checked, external data confined to the model's folder) and the
// op-table typing of created nodes.
//
//===----------------------------------------------------------------------===//

#include "NodeReader.h"

#include "qfx/Runtime/ModuleRunner.h"
#include "qfx/Runtime/Op.h"
#include "qfx/Support/Error.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include <cmath>
#include <cstring>
#include <set>

using namespace qfx;
using namespace qfx::onnximport;

//===----------------------------------------------------------------------===//
// Errors, inputs, attributes
//===----------------------------------------------------------------------===//

llvm::Error NodeReader::error(const llvm::Twine &Msg) const {
  return fileError(S.File, "node " + llvm::Twine(Index) + " '" + N.name() +
                               "' (" + N.op_type() + ", opset " +
                               llvm::Twine(S.Opset) + "): " + Msg);
}

bool NodeReader::hasInput(size_t I) const {
  return I < static_cast<size_t>(N.input_size()) && !N.input(I).empty();
}

llvm::Expected<const OnnxValue *> NodeReader::input(size_t I) const {
  if (!hasInput(I))
    return error("input " + llvm::Twine(I) + " is missing");
  auto It = S.Values.find(N.input(I));
  if (It == S.Values.end())
    return error("input '" + N.input(I) +
                 "' is not defined by an earlier node, an initializer or a "
                 "graph input");
  if (It->second.Part != Partial::None)
    return error("input '" + N.input(I) + "' is " +
                 describePartial(It->second.Part));
  return &It->second;
}

const OnnxValue *NodeReader::partial(size_t I) const {
  if (!hasInput(I))
    return nullptr;
  auto It = S.Values.find(N.input(I));
  if (It == S.Values.end() || It->second.Part == Partial::None)
    return nullptr;
  return &It->second;
}

int NodeReader::readers(const Node *Nd) const {
  int R = 0;
  for (const auto &[Name, V] : S.Values)
    if (V.N == Nd) {
      auto It = S.Uses.find(Name);
      R += It == S.Uses.end() ? 0 : It->second;
    }
  return R;
}

bool NodeReader::takeApart(llvm::ArrayRef<Node *> Nodes) {
  std::set<const Node *> Set(Nodes.begin(), Nodes.end());
  if (Set.size() != Nodes.size())
    return false;
  // A node may also be read other than by ONNX name (expand's batch_like).
  for (const Node *N : Nodes)
    for (const Node *U : N->users())
      if (!Set.count(U))
        return false;
  std::vector<Node *> Left(Nodes.begin(), Nodes.end());
  while (!Left.empty())
    for (size_t I = 0; I < Left.size(); ++I)
      if (!Left[I]->hasUsers()) {
        eraseTaken(Left[I]);
        Left.erase(Left.begin() + I);
        break;
      }
  return true;
}

void NodeReader::eraseTaken(Node *Nd) {
  for (auto &[Name, V] : S.Values)
    if (V.N == Nd) {
      V = OnnxValue();
      V.Part = Partial::Taken;
    }
  S.NormsAwaitingBias.erase(Nd);
  S.GM->graph().erase(Nd);
}

/// A valid qfx name from an ONNX name ("layer1.0.weight" ->
/// "layer1_0_weight").
static std::string sanitize(llvm::StringRef Name) {
  std::string R;
  for (char C : Name)
    R += llvm::isAlnum(C) || C == '_' ? C : '_';
  if (R.empty() || llvm::isDigit(R[0]))
    R = "_" + R;
  return R;
}

llvm::Expected<Node *> NodeReader::node(size_t I) {
  auto V = input(I);
  if (!V)
    return V.takeError();
  if ((*V)->N)
    return (*V)->N;
  const std::string &Name = N.input(I);
  auto Cached = S.ConstNodes.find(Name);
  if (Cached != S.ConstNodes.end())
    return Cached->second;
  const Tensor &T = *(*V)->Const;
  if (llvm::any_of((*V)->Dep, [](BatchDep D) { return D != BatchDep::None; }))
    return error("input '" + Name +
                 "' is computed from the batch size and used as a tensor; "
                 "only reshape targets may depend on it");
  if (T.dtype() == DType::S64)
    return error("input '" + Name + "' is an int64 constant used as a tensor");
  std::string Attr = S.GM->root().tensor(sanitize(Name))
                         ? S.GM->graph().uniqueName(sanitize(Name))
                         : sanitize(Name);
  while (S.GM->root().tensor(Attr) || S.GM->root().child(Attr))
    Attr += "_";
  S.GM->root().setTensor(Attr, T);
  Node *G = S.GM->graph().getAttr(Attr);
  if (G->name() != Name)
    G->setMeta("onnx_name", Argument::string(Name));
  if (llvm::Error E = typeNode(*S.GM, G))
    return error(errorToString(std::move(E)));
  S.ConstNodes[Name] = G;
  return G;
}

llvm::Expected<const OnnxValue *> NodeReader::constant(size_t I,
                                                       llvm::StringRef What) {
  auto V = input(I);
  if (!V)
    return V.takeError();
  if (!(*V)->isConst())
    return error(What + " ('" + N.input(I) +
                 "') must be a constant (an initializer or computed from "
                 "constants and shapes)");
  return *V;
}

std::vector<int64_t> qfx::onnximport::tensorInts(const Tensor &T) {
  std::vector<int64_t> R(T.numElements());
  for (int64_t I = 0; I < T.numElements(); ++I) {
    if (T.dtype() == DType::S64)
      R[I] = T.data<int64_t>()[I];
    else if (T.dtype() == DType::F32) {
      float F = T.data<float>()[I];
      R[I] = F > -9e18f && F < 9e18f ? static_cast<int64_t>(F) : 0;
    } else
      R[I] = static_cast<int64_t>(T.getAsDouble(I));
  }
  return R;
}

llvm::Expected<std::vector<int64_t>>
NodeReader::constInts(size_t I, llvm::StringRef What) {
  auto V = constant(I, What);
  if (!V)
    return V.takeError();
  DType D = (*V)->Const->dtype();
  if (D != DType::S64 && D != DType::S32)
    return error(What + " must be an int64 or int32 tensor, got " +
                 dtypeName(D));
  return tensorInts(*(*V)->Const);
}

llvm::Expected<double> NodeReader::constScalar(size_t I, llvm::StringRef What) {
  auto V = constant(I, What);
  if (!V)
    return V.takeError();
  const Tensor &T = *(*V)->Const;
  if (T.numElements() != 1)
    return error(What + " must be a scalar, got shape " +
                 formatShape(T.shape()));
  return T.getAsDouble(0);
}

llvm::Error NodeReader::requireSingleOutput() const {
  for (int I = 1; I < N.output_size(); ++I)
    if (!N.output(I).empty())
      return error("output " + llvm::Twine(I) + " ('" + N.output(I) +
                   "') is not supported; only the first output may be used");
  return llvm::Error::success();
}

const onnx::AttributeProto *NodeReader::attr(llvm::StringRef Name) const {
  for (const onnx::AttributeProto &A : N.attribute())
    if (A.name() == Name)
      return &A;
  return nullptr;
}

llvm::Expected<int64_t> NodeReader::attrInt(llvm::StringRef Name,
                                            int64_t Default) const {
  const onnx::AttributeProto *A = attr(Name);
  if (!A)
    return Default;
  if (A->type() != onnx::AttributeProto::INT)
    return error("attribute '" + Name + "' must be an int");
  return A->i();
}

llvm::Expected<double> NodeReader::attrFloat(llvm::StringRef Name,
                                             double Default) const {
  const onnx::AttributeProto *A = attr(Name);
  if (!A)
    return Default;
  if (A->type() != onnx::AttributeProto::FLOAT)
    return error("attribute '" + Name + "' must be a float");
  return A->f();
}

llvm::Expected<std::string>
NodeReader::attrString(llvm::StringRef Name, llvm::StringRef Default) const {
  const onnx::AttributeProto *A = attr(Name);
  if (!A)
    return Default.str();
  if (A->type() != onnx::AttributeProto::STRING)
    return error("attribute '" + Name + "' must be a string");
  return A->s();
}

llvm::Expected<std::vector<int64_t>>
NodeReader::attrInts(llvm::StringRef Name, std::vector<int64_t> Default) const {
  const onnx::AttributeProto *A = attr(Name);
  if (!A)
    return Default;
  if (A->type() != onnx::AttributeProto::INTS)
    return error("attribute '" + Name + "' must be a list of ints");
  return std::vector<int64_t>(A->ints().begin(), A->ints().end());
}

//===----------------------------------------------------------------------===//
// Names
//===----------------------------------------------------------------------===//

std::string qfx::onnximport::modulePathOf(llvm::StringRef NodeName,
                                          const std::set<std::string> &Seen) {
  llvm::SmallVector<llvm::StringRef, 8> Parts;
  NodeName.split(Parts, '/', -1, /*KeepEmpty=*/false);
  if (!NodeName.startswith("/") || Parts.size() < 2)
    return "";
  // torch.onnx.export writes each scope relative to its parent ("conv1")
  // or qualified from an ancestor ("layer1.0" under "layer1", "block.0"
  // under "features.1/block"): join it onto the longest suffix it extends.
  llvm::SmallVector<std::string, 8> Path;
  for (size_t I = 0; I + 1 < Parts.size(); ++I) {
    llvm::StringRef C = Parts[I];
    for (size_t K = Path.size(); K > 0; --K) {
      std::string Suffix =
          llvm::join(llvm::drop_begin(Path, Path.size() - K), ".");
      if (C.startswith(Suffix + ".")) {
        Path.resize(Path.size() - K);
        break;
      }
    }
    llvm::SmallVector<llvm::StringRef, 4> Segs;
    C.split(Segs, '.', -1, false);
    for (llvm::StringRef Seg : Segs)
      Path.push_back(Seg.str());
  }
  std::string R = llvm::join(Path, ".");
  // A module called again is "relu_1", "relu_2" ...: the module is "relu".
  auto [Base, Suffix] = llvm::StringRef(R).rsplit('_');
  unsigned N;
  if (!Suffix.empty() && !Suffix.getAsInteger(10, N) && Seen.count(Base.str()))
    return Base.str();
  return R;
}

std::string NodeReader::modulePath() const {
  return modulePathOf(N.name(), S.SeenPaths);
}

/// Each '.'-segment of \p Path made a valid name.
static std::string sanitizePath(llvm::StringRef Path) {
  llvm::SmallVector<llvm::StringRef, 8> Parts;
  Path.split(Parts, '.', -1, /*KeepEmpty=*/false);
  std::string R;
  for (llvm::StringRef P : Parts) {
    std::string Seg;
    for (char C : P)
      Seg += llvm::isAlnum(C) || C == '_' ? C : '_';
    R += (R.empty() ? "" : ".") + Seg;
  }
  return R;
}

std::string NodeReader::newModulePath(llvm::StringRef WeightName,
                                      llvm::StringRef Fallback) const {
  std::string Path = modulePath();
  if (Path.empty() && WeightName.endswith(".weight") &&
      !WeightName.startswith("onnx::"))
    Path = WeightName.drop_back(7).str();
  Path = sanitizePath(Path);
  if (Path.empty())
    Path = Fallback.str();
  if (Path.empty())
    return Path;
  // A module may not sit inside a leaf module nor reuse a path.
  GraphModule &G = *S.GM;
  auto Taken = [&](const std::string &P) {
    if (G.lookupModule(P))
      return true;
    llvm::StringRef Prefix = splitQualifiedName(P).first;
    for (; !Prefix.empty(); Prefix = splitQualifiedName(Prefix).first)
      if (const ModuleInfo *M = G.lookupModule(Prefix))
        if (M->kind() != "Module")
          return true;
    return G.root().tensor(P) != nullptr;
  };
  if (!Taken(Path))
    return Path;
  for (int I = 1;; ++I) {
    std::string Cand = Path + "_" + std::to_string(I);
    if (!Taken(Cand))
      return Cand;
  }
}

//===----------------------------------------------------------------------===//
// Creating and typing nodes
//===----------------------------------------------------------------------===//

static Operand operandOf(const Argument &A) {
  if (A.isNode()) {
    const auto &T = A.getNode()->type();
    if (!T)
      return Operand(Tensor());
    Tensor D = Tensor::declared(T->Dtype, T->Dims);
    D.setQuant(T->Quant);
    return Operand(D);
  }
  if (A.isList()) {
    bool HasNode = false;
    A.forEachNode([&](Node *) { HasNode = true; });
    if (HasNode) {
      std::vector<Operand> Elems;
      for (const Argument &E : A.getList())
        Elems.push_back(operandOf(E));
      return Operand::list(std::move(Elems));
    }
  }
  return Operand(A);
}

llvm::Error qfx::onnximport::typeNode(GraphModule &GM, Node *Nd) {
  std::vector<Operand> Ops;
  for (const Argument &A : Nd->args())
    Ops.push_back(operandOf(A));
  llvm::Expected<TensorType> Ty = TensorType{};
  switch (Nd->op()) {
  case OpCode::GetAttr: {
    const Tensor *T = GM.lookupTensor(Nd->target());
    if (!T)
      return makeError("no tensor '" + Nd->target() + "'");
    Nd->setType(TensorType{
        T->dtype(), Shape(T->shape().begin(), T->shape().end()), T->quant()});
    return llvm::Error::success();
  }
  case OpCode::CallModule:
    Ty = inferModule(GM, Nd->target(), std::move(Ops));
    break;
  case OpCode::CallFunction:
  case OpCode::CallMethod:
    Ty = inferOp(Nd->target(), std::move(Ops));
    break;
  default:
    return llvm::Error::success();
  }
  if (!Ty)
    return Ty.takeError();
  Nd->setType(*Ty);
  return llvm::Error::success();
}

/// Drops trailing arguments equal to the op's defaults, as the tracer
/// records a Python call; a list [k, k] equals a default k.
static void dropDefaults(llvm::StringRef Op, std::vector<Argument> &Args) {
  const OpDef *Def = lookupOp(Op);
  auto Same = [](const Argument &A, const Argument &D) {
    if (A == D)
      return true;
    auto L = A.getIntList();
    return A.isList() && L && D.isInt() && !L->empty() &&
           llvm::all_of(*L, [&](int64_t V) { return V == D.getInt(); });
  };
  while (Def && !Args.empty() && Args.size() <= Def->Params.size()) {
    const OpParam &P = Def->Params[Args.size() - 1];
    if (!P.Default || !Same(Args.back(), *P.Default))
      break;
    Args.pop_back();
  }
}

llvm::Expected<Node *> NodeReader::emit(OpCode Op, llvm::StringRef Target,
                                        std::vector<Argument> Args,
                                        llvm::StringRef NameHint) {
  std::string Scope = modulePath(), Hint = NameHint.str();
  if (Op == OpCode::CallModule) {
    Scope = splitQualifiedName(Target).first.str();
    Hint = Target.str();
  } else if (Hint.empty()) {
    // Like the tracer: "relu" at the root; "layer1.0.relu" for the relu of
    // module layer1.0.relu; "layer1.0.add" for an add in layer1.0.
    llvm::StringRef Last = splitQualifiedName(Scope).second;
    if (Scope.empty())
      Hint = Target.str();
    else if (Last.lower().rfind(Target.lower(), 0) == 0)
      Hint = Scope;
    else
      Hint = Scope + "." + Target.str();
  }
  if (Op == OpCode::CallFunction || Op == OpCode::CallMethod)
    dropDefaults(Target, Args);
  Node *Nd = S.GM->graph().create(Op, Hint, Target, std::move(Args));
  Nd->setScope(sanitizePath(Scope));
  if (!N.name().empty())
    Nd->setMeta("onnx_name", Argument::string(N.name()));
  if (llvm::Error E = typeNode(*S.GM, Nd)) {
    std::string Msg = errorToString(std::move(E));
    // The node cannot be used: take it back out before failing.
    S.GM->graph().erase(Nd);
    return error(Msg);
  }
  return Nd;
}

void NodeReader::define(size_t I, OnnxValue V) {
  if (I < static_cast<size_t>(N.output_size()) && !N.output(I).empty())
    S.Values[N.output(I)] = std::move(V);
}

void NodeReader::defineNode(size_t I, Node *Nd) {
  OnnxValue V;
  V.N = Nd;
  // Every op imported keeps the batch in dimension 0 (flatten and reshape
  // included: their targets keep it there or fail).
  for (int J = 0; J < N.input_size(); ++J) {
    auto It = S.Values.find(N.input(J));
    if (It != S.Values.end() && It->second.N && It->second.BatchDim0)
      V.BatchDim0 = true;
  }
  define(I, std::move(V));
}

//===----------------------------------------------------------------------===//
// Tensors
//===----------------------------------------------------------------------===//

std::optional<DType> qfx::onnximport::dtypeFromOnnx(int32_t ElemType) {
  switch (ElemType) {
  case onnx::TensorProto::FLOAT:
    return DType::F32;
  case onnx::TensorProto::INT8:
    return DType::S8;
  case onnx::TensorProto::UINT8:
    return DType::U8;
  case onnx::TensorProto::INT32:
    return DType::S32;
  case onnx::TensorProto::INT64:
    return DType::S64;
  default:
    return std::nullopt;
  }
}

/// Reads the external data of \p T (location, offset, length) from a file
/// below \p BaseDir into \p Out.
static llvm::Error readExternal(const onnx::TensorProto &T,
                                llvm::StringRef BaseDir, Tensor &Out) {
  std::string Location;
  int64_t Offset = 0, Length = -1;
  for (const onnx::StringStringEntryProto &E : T.external_data()) {
    if (E.key() == "location")
      Location = E.value();
    else if (E.key() == "offset" || E.key() == "length") {
      int64_t V;
      if (llvm::StringRef(E.value()).getAsInteger(10, V) || V < 0)
        return makeError("external data " + E.key() + " '" + E.value() +
                         "' is not a non-negative integer");
      (E.key() == "offset" ? Offset : Length) = V;
    }
  }
  if (BaseDir.empty())
    return makeError("external data is not allowed without a model folder");
  if (Location.empty())
    return makeError("external data has no location");
  if (llvm::sys::path::is_absolute(Location) ||
      llvm::any_of(llvm::make_range(llvm::sys::path::begin(Location),
                                    llvm::sys::path::end(Location)),
                   [](llvm::StringRef C) { return C == ".."; }))
    return makeError("external data location '" + Location +
                     "' leaves the model's folder");
  llvm::SmallString<256> Path(BaseDir);
  llvm::sys::path::append(Path, Location);
  llvm::SmallString<256> RealBase, RealPath;
  if (llvm::sys::fs::real_path(BaseDir, RealBase) ||
      llvm::sys::fs::real_path(Path, RealPath))
    return makeError("external data file '" + Location + "' cannot be found");
  if (!llvm::StringRef(RealPath).startswith((RealBase + "/").str()))
    return makeError("external data location '" + Location +
                     "' leaves the model's folder");
  int64_t Need = static_cast<int64_t>(Out.byteSize());
  if (Length >= 0 && Length != Need)
    return makeError("external data length " + llvm::Twine(Length) +
                     " does not match dims " + formatShape(Out.shape()) + " (" +
                     llvm::Twine(Need) + " bytes)");
  uint64_t Size = 0;
  if (llvm::sys::fs::file_size(RealPath, Size) || uint64_t(Offset) > Size ||
      Size - uint64_t(Offset) < uint64_t(Need))
    return makeError("external data file '" + Location + "' is shorter than " +
                     llvm::Twine(Offset + Need) + " bytes");
  if (Need == 0)
    return llvm::Error::success();
  auto Buf = llvm::MemoryBuffer::getFileSlice(RealPath, Need, Offset);
  if (!Buf || (*Buf)->getBufferSize() != size_t(Need))
    return makeError("external data file '" + Location + "' cannot be read");
  std::memcpy(Out.rawData(), (*Buf)->getBufferStart(), Need);
  return llvm::Error::success();
}

bool qfx::onnximport::fitsDType(double V, DType D) {
  switch (D) {
  case DType::F32:
    return !std::isnan(V);
  case DType::S8:
    return V >= -128 && V <= 127;
  case DType::U8:
    return V >= 0 && V <= 255;
  case DType::S32:
    return V >= -2147483648.0 && V <= 2147483647.0;
  case DType::S64:
    return V >= -9.2e18 && V <= 9.2e18;
  }
  return false;
}

/// The elements of a tensor whose values are in a typed field.
template <typename Field>
static llvm::Error copyTyped(const Field &F, Tensor &Out, const char *Name) {
  if (F.size() != Out.numElements())
    return makeError(llvm::Twine(Name) + " has " + llvm::Twine(F.size()) +
                     " values, dims " + formatShape(Out.shape()) + " need " +
                     llvm::Twine(Out.numElements()));
  for (int64_t I = 0; I < Out.numElements(); ++I) {
    if (Out.dtype() == DType::S64) {
      Out.data<int64_t>()[I] = static_cast<int64_t>(F.Get(I));
      continue;
    }
    double V = static_cast<double>(F.Get(I));
    // int8 and uint8 values travel in int32_data: check their range.
    if (Out.dtype() != DType::F32 && !fitsDType(V, Out.dtype()))
      return makeError(llvm::Twine(Name) + " value " +
                       llvm::Twine(static_cast<int64_t>(V)) +
                       " is out of range for " + dtypeName(Out.dtype()));
    Out.setFromDouble(I, V);
  }
  return llvm::Error::success();
}

llvm::Expected<Tensor>
qfx::onnximport::tensorFromProto(const onnx::TensorProto &T,
                                 llvm::StringRef BaseDir) {
  std::optional<DType> D = dtypeFromOnnx(T.data_type());
  if (!D)
    return makeError("data type " + llvm::Twine(T.data_type()) +
                     " is not supported (float, int8, uint8, int32, int64)");
  Shape Dims(T.dims().begin(), T.dims().end());
  auto Count = checkedNumElements(Dims, int64_t(1) << 32);
  if (!Count)
    return makeError("dims " + formatShape(Dims) + ": " +
                     errorToString(Count.takeError()));
  if (T.has_segment())
    return makeError("segmented tensors are not supported");
  // Storage is allocated only once the data is known to be there.
  size_t Bytes = size_t(*Count) * dtypeSize(*D);
  if (T.data_location() == onnx::TensorProto::EXTERNAL) {
    if (size_t(T.raw_data().size()) > 0)
      return makeError("external tensor also has raw data");
    Tensor Out(*D, Dims);
    if (llvm::Error E = readExternal(T, BaseDir, Out))
      return E;
    return Out;
  }
  if (T.has_raw_data()) {
    if (T.raw_data().size() != Bytes)
      return makeError("has " + llvm::Twine(T.raw_data().size()) +
                       " bytes of data, dims " + formatShape(Dims) + " need " +
                       llvm::Twine(Bytes));
    Tensor Out(*D, Dims);
    if (Bytes)
      std::memcpy(Out.rawData(), T.raw_data().data(), Bytes);
    return Out;
  }
  int64_t Have = *D == DType::F32   ? T.float_data_size()
                 : *D == DType::S64 ? T.int64_data_size()
                                    : T.int32_data_size();
  if (Have != *Count)
    return makeError("has " + llvm::Twine(Have) + " values, dims " +
                     formatShape(Dims) + " need " + llvm::Twine(*Count));
  Tensor Out(*D, Dims);
  llvm::Error E =
      *D == DType::F32   ? copyTyped(T.float_data(), Out, "float_data")
      : *D == DType::S64 ? copyTyped(T.int64_data(), Out, "int64_data")
                         : copyTyped(T.int32_data(), Out, "int32_data");
  if (E)
    return E;
  return Out;
}
