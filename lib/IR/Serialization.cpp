//===- Serialization.cpp - Versioned JSON files for GraphModules ----------===//
//
// nlohmann::json stays inside this file: the public header speaks only
// llvm::Error, and every nlohmann exception is caught at the entry points.
// The reader checks everything a hostile file could get wrong before it
// touches an API that asserts, so that no input can crash the process.
//
//===----------------------------------------------------------------------===//

#include "qfx/IR/Serialization.h"
#include "Base64.h"
#include "qfx/IR/GraphModule.h"
#include "qfx/IR/Parser.h"
#include "qfx/IR/Printer.h"
#include "qfx/IR/Verifier.h"
#include "qfx/Support/Error.h"
#include "qfx/Support/FileIO.h"

#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/ErrorHandling.h"
#include "llvm/Support/SwapByteOrder.h"

#include "Support/JsonUtil.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <new>
#include <set>

using namespace llvm;
// The default object type is a std::map, which keeps keys sorted and so
// makes the output deterministic.
using json = nlohmann::json;

namespace qfx {

static constexpr const char *FormatTag = "qfx.graph_module";

/// Values and modules may nest at most this deep; deeper input is rejected
/// rather than risking the stack in the recursive reader.
static constexpr unsigned MaxNesting = 128;

/// Tensor bytes are little-endian in the file; reverses each element on a
/// big-endian host (a no-op everywhere else).
static void swapToOrFromLittleEndian(char *Bytes, size_t Size,
                                     size_t ElemSize) {
  if (!sys::IsBigEndianHost || ElemSize == 1)
    return;
  for (size_t I = 0; I + ElemSize <= Size; I += ElemSize)
    std::reverse(Bytes + I, Bytes + I + ElemSize);
}

//===----------------------------------------------------------------------===//
// Writing
//===----------------------------------------------------------------------===//

/// JSON has no NaN or infinity, so those become {"float": "nan"} etc.
static json writeFloat(double V) {
  if (std::isnan(V))
    return json::object({{"float", "nan"}});
  if (std::isinf(V))
    return json::object({{"float", V > 0 ? "inf" : "-inf"}});
  return V;
}

static json writeValue(const Argument &A) {
  switch (A.kind()) {
  case Argument::Kind::None:
    return nullptr;
  case Argument::Kind::NodeRef:
    if (!A.getNode())
      return nullptr;
    return json::object({{"node", A.getNode()->name().str()}});
  case Argument::Kind::Int:
    return A.getInt();
  case Argument::Kind::Float:
    return writeFloat(A.getFloat());
  case Argument::Kind::Bool:
    return A.getBool();
  case Argument::Kind::String:
    return A.getString();
  case Argument::Kind::List: {
    json L = json::array();
    for (const Argument &E : A.getList())
      L.push_back(writeValue(E));
    return L;
  }
  }
  llvm_unreachable("unknown argument kind");
}

static json writeShape(ArrayRef<int64_t> S) {
  json J = json::array();
  for (int64_t D : S)
    J.push_back(D);
  return J;
}

static json writeQuant(const QuantParams &Q) {
  json J = json::object();
  if (Q.isPerTensor()) {
    J["scheme"] = "per_tensor";
    J["scale"] = writeFloat(Q.Scale);
    J["zero_point"] = Q.ZeroPoint;
    return J;
  }
  J["scheme"] = "per_channel";
  J["axis"] = Q.Axis;
  json Scales = json::array();
  for (double S : Q.Scales)
    Scales.push_back(writeFloat(S));
  J["scales"] = std::move(Scales);
  J["zero_points"] = Q.ZeroPoints;
  return J;
}

static json writeType(const TensorType &T) {
  json J = json::object();
  J["dtype"] = dtypeName(T.Dtype).str();
  J["shape"] = writeShape(T.Dims);
  if (!T.Quant.isNone())
    J["quant"] = writeQuant(T.Quant);
  return J;
}

static json writeTensor(const NamedTensor &NT) {
  const Tensor &T = NT.Value;
  json J = json::object();
  J["name"] = NT.Name;
  J["role"] = NT.IsBuffer ? "buffer" : "param";
  J["dtype"] = dtypeName(T.dtype()).str();
  J["shape"] = writeShape(T.shape());
  if (!T.quant().isNone())
    J["quant"] = writeQuant(T.quant());
  if (T.hasData()) {
    std::string Bytes(static_cast<const char *>(T.rawData()), T.byteSize());
    swapToOrFromLittleEndian(&Bytes[0], Bytes.size(), dtypeSize(T.dtype()));
    J["data"] = encodeBase64(Bytes);
  }
  return J;
}

static json writeModule(const ModuleInfo &M) {
  json J = json::object();
  J["kind"] = M.kind().str();
  json Attrs = json::object();
  for (const auto &KV : M.attrs())
    Attrs[KV.first] = writeValue(KV.second);
  J["attrs"] = std::move(Attrs);
  json Tensors = json::array();
  for (const NamedTensor &NT : M.tensors())
    Tensors.push_back(writeTensor(NT));
  J["tensors"] = std::move(Tensors);
  json Children = json::array();
  for (const auto &C : M.children())
    Children.push_back(
        json::object({{"name", C.first}, {"module", writeModule(*C.second)}}));
  J["children"] = std::move(Children);
  return J;
}

static json writeNode(const Node &N) {
  json J = json::object();
  J["name"] = N.name().str();
  J["op"] = opcodeName(N.op()).str();
  J["target"] = N.target().str();
  json Args = json::array();
  for (const Argument &A : N.args())
    Args.push_back(writeValue(A));
  J["args"] = std::move(Args);
  if (!N.kwargs().empty()) {
    json Kw = json::array();
    for (const auto &KV : N.kwargs())
      Kw.push_back(json::array({KV.first, writeValue(KV.second)}));
    J["kwargs"] = std::move(Kw);
  }
  if (N.type())
    J["type"] = writeType(*N.type());
  if (!N.scope().empty())
    J["scope"] = N.scope().str();
  if (!N.meta().empty()) {
    json Meta = json::object();
    for (const auto &KV : N.meta())
      Meta[KV.first] = writeValue(KV.second);
    J["meta"] = std::move(Meta);
  }
  return J;
}

//===----------------------------------------------------------------------===//
// Reading
//===----------------------------------------------------------------------===//

/// Names a JSON value's type in messages; unlike json::type_name it tells
/// integers from floats, because the format does.
static const char *kindName(const json &J) {
  switch (J.type()) {
  case json::value_t::null:
    return "null";
  case json::value_t::boolean:
    return "boolean";
  case json::value_t::number_integer:
  case json::value_t::number_unsigned:
    return "integer";
  case json::value_t::number_float:
    return "float";
  case json::value_t::string:
    return "string";
  case json::value_t::array:
    return "array";
  case json::value_t::object:
    return "object";
  default:
    return "unsupported value";
  }
}

/// "a.b" or "b" when \p Where is empty (the document itself).
static std::string member(const std::string &Where, StringRef Field) {
  return Where.empty() ? Field.str() : Where + "." + Field.str();
}

static std::string element(const std::string &Where, size_t I) {
  return Where + "[" + std::to_string(I) + "]";
}

namespace {

/// The nodes created from "graph", by name and by position, and what the
/// arguments read so far refer to.
struct NodeTable {
  StringMap<size_t> Index;
  std::vector<Node *> Nodes;
  /// The node whose arguments are being read, and the indices it reads.
  size_t Current = 0;
  std::vector<std::vector<size_t>> Deps;
  /// The first argument that refers to the node itself or a later one.
  struct ForwardRef {
    std::string Where;
    size_t User, Used;
  };
  std::optional<ForwardRef> FirstForward;
};

/// Why a node reference is an error in a value that must be constant.
constexpr const char *AttrNodeRefError =
    "node reference not allowed in a module attribute";
constexpr const char *MetaNodeRefError =
    "node annotations cannot refer to nodes";

/// Turns a parsed document into a GraphModule. Every method reports the
/// first problem as "<Name>: <where>: <what>".
class Reader {
public:
  explicit Reader(StringRef Name) : Name(Name) {}

  Expected<std::unique_ptr<GraphModule>> readDocument(const json &Doc);

private:
  Error fail(const std::string &Where, const Twine &What) const {
    if (Where.empty())
      return fileError(Name, What);
    return fileError(Name, Where + ": " + What);
  }

  Error checkObject(const json &J, const std::string &Where,
                    std::initializer_list<StringRef> Required,
                    std::initializer_list<StringRef> Optional) const;
  Expected<std::string> readString(const json &J,
                                   const std::string &Where) const;
  Expected<int64_t> readInt(const json &J, const std::string &Where) const;
  Expected<double> readFloat(const json &J, const std::string &Where) const;
  Expected<DType> readDType(const json &J, const std::string &Where) const;
  Expected<Shape> readShape(const json &J, const std::string &Where) const;
  Expected<QuantParams> readQuant(const json &J,
                                  const std::string &Where) const;
  Expected<QuantParams> readPerChannel(const json &J,
                                       const std::string &Where) const;
  Expected<TensorType> readType(const json &J, const std::string &Where) const;
  Expected<Argument> readValue(const json &J, const std::string &Where,
                               NodeTable *Nodes, unsigned Depth,
                               StringRef NoNodes = AttrNodeRefError) const;
  Expected<Argument> readObjectValue(const json &J, const std::string &Where,
                                     NodeTable *Nodes, StringRef NoNodes) const;
  Expected<std::string> readPartName(const json &J, const std::string &Where,
                                     StringRef What) const;
  Expected<NamedTensor> readTensor(const json &J, const std::string &Where,
                                   const std::string &Prefix) const;
  Expected<Tensor> readTensorData(const json &Data, const std::string &Where,
                                  const std::string &Qual, DType DT,
                                  ArrayRef<int64_t> S) const;
  Error readTensors(const json &J, const std::string &Where,
                    const std::string &Prefix, ModuleInfo &M) const;
  Error readChildren(const json &J, const std::string &Where,
                     const std::string &Prefix, ModuleInfo &M,
                     unsigned Depth) const;
  Error readModule(const json &J, const std::string &Where,
                   const std::string &Prefix, ModuleInfo &M,
                   unsigned Depth) const;
  Error createNodes(const json &J, Graph &G, NodeTable &T) const;
  Expected<Node *> createNode(const json &NJ, const std::string &Where,
                              Graph &G, const NodeTable &T) const;
  Error readMeta(const json &J, const std::string &Where, Node &N) const;
  Error readNodeArgs(const json &J, const std::string &Where,
                     NodeTable &T) const;
  Error checkOrder(const NodeTable &T) const;
  Error readGraph(const json &J, Graph &G) const;

  StringRef Name;
};

} // namespace

Error Reader::checkObject(const json &J, const std::string &Where,
                          std::initializer_list<StringRef> Required,
                          std::initializer_list<StringRef> Optional) const {
  if (!J.is_object())
    return fail(Where, Twine("expected an object, got ") + kindName(J));
  for (StringRef Key : Required)
    if (!J.contains(Key.str()))
      return fail(Where, "missing field '" + Key + "'");
  // Unknown fields are rejected rather than ignored: a misspelt optional
  // field would otherwise silently lose information.
  for (const auto &KV : J.items()) {
    StringRef Key = KV.key();
    if (!llvm::is_contained(Required, Key) &&
        !llvm::is_contained(Optional, Key))
      return fail(Where, "unknown field '" + Key + "'");
  }
  return Error::success();
}

Expected<std::string> Reader::readString(const json &J,
                                         const std::string &Where) const {
  if (!J.is_string())
    return fail(Where, Twine("expected a string, got ") + kindName(J));
  return J.get_ref<const std::string &>();
}

Expected<int64_t> Reader::readInt(const json &J,
                                  const std::string &Where) const {
  if (J.is_number_unsigned()) {
    uint64_t U = J.get<uint64_t>();
    if (U > uint64_t(std::numeric_limits<int64_t>::max()))
      return fail(Where, "integer " + Twine(U) + " out of range");
    return static_cast<int64_t>(U);
  }
  if (J.is_number_integer())
    return J.get<int64_t>();
  return fail(Where, Twine("expected an integer, got ") + kindName(J));
}

/// Accepts any JSON number or the {"float": "nan"|"inf"|"-inf"} form.
Expected<double> Reader::readFloat(const json &J,
                                   const std::string &Where) const {
  if (J.is_number())
    return J.get<double>();
  if (!J.is_object() || J.size() != 1 || !J.contains("float"))
    return fail(Where, Twine("expected a number, got ") + kindName(J));
  const json &S = J["float"];
  if (S == "nan")
    return std::numeric_limits<double>::quiet_NaN();
  if (S == "inf")
    return std::numeric_limits<double>::infinity();
  if (S == "-inf")
    return -std::numeric_limits<double>::infinity();
  return fail(member(Where, "float"),
              "expected \"nan\", \"inf\" or \"-inf\", got " +
                  (S.is_string() ? "'" + S.get<std::string>() + "'"
                                 : std::string(kindName(S))));
}

Expected<DType> Reader::readDType(const json &J,
                                  const std::string &Where) const {
  Expected<std::string> S = readString(J, Where);
  if (!S)
    return S.takeError();
  if (std::optional<DType> T = parseDType(*S))
    return *T;
  return fail(Where, "unknown dtype '" + *S + "'");
}

Expected<Shape> Reader::readShape(const json &J,
                                  const std::string &Where) const {
  if (!J.is_array())
    return fail(Where, Twine("expected an array, got ") + kindName(J));
  Shape S;
  for (size_t I = 0; I < J.size(); ++I) {
    Expected<int64_t> D = readInt(J[I], element(Where, I));
    if (!D)
      return D.takeError();
    S.push_back(*D);
  }
  if (Expected<int64_t> N = checkedNumElements(S); !N)
    return fail(Where, toString(N.takeError()));
  return S;
}

Expected<QuantParams> Reader::readQuant(const json &J,
                                        const std::string &Where) const {
  if (!J.is_object())
    return fail(Where, Twine("expected an object, got ") + kindName(J));
  if (!J.contains("scheme"))
    return fail(Where, "missing field 'scheme'");
  Expected<std::string> Scheme =
      readString(J["scheme"], member(Where, "scheme"));
  if (!Scheme)
    return Scheme.takeError();
  if (*Scheme == "per_tensor") {
    if (Error E = checkObject(J, Where, {"scheme", "scale", "zero_point"}, {}))
      return E;
    Expected<double> Scale = readFloat(J["scale"], member(Where, "scale"));
    if (!Scale)
      return Scale.takeError();
    Expected<int64_t> ZP =
        readInt(J["zero_point"], member(Where, "zero_point"));
    if (!ZP)
      return ZP.takeError();
    return QuantParams::perTensor(*Scale, *ZP);
  }
  if (*Scheme != "per_channel")
    return fail(member(Where, "scheme"),
                "unknown quantization scheme '" + *Scheme +
                    "' (expected \"per_tensor\" or \"per_channel\")");
  return readPerChannel(J, Where);
}

Expected<QuantParams> Reader::readPerChannel(const json &J,
                                             const std::string &Where) const {
  if (Error E = checkObject(J, Where,
                            {"scheme", "axis", "scales", "zero_points"}, {}))
    return E;
  Expected<int64_t> Axis = readInt(J["axis"], member(Where, "axis"));
  if (!Axis)
    return Axis.takeError();
  const json &SJ = J["scales"], &ZJ = J["zero_points"];
  if (!SJ.is_array())
    return fail(member(Where, "scales"),
                Twine("expected an array, got ") + kindName(SJ));
  if (!ZJ.is_array())
    return fail(member(Where, "zero_points"),
                Twine("expected an array, got ") + kindName(ZJ));
  std::vector<double> Scales;
  for (size_t I = 0; I < SJ.size(); ++I) {
    Expected<double> S = readFloat(SJ[I], element(member(Where, "scales"), I));
    if (!S)
      return S.takeError();
    Scales.push_back(*S);
  }
  std::vector<int64_t> ZPs;
  for (size_t I = 0; I < ZJ.size(); ++I) {
    Expected<int64_t> Z =
        readInt(ZJ[I], element(member(Where, "zero_points"), I));
    if (!Z)
      return Z.takeError();
    ZPs.push_back(*Z);
  }
  return QuantParams::perChannel(std::move(Scales), std::move(ZPs), *Axis);
}

Expected<TensorType> Reader::readType(const json &J,
                                      const std::string &Where) const {
  if (Error E = checkObject(J, Where, {"dtype", "shape"}, {"quant"}))
    return E;
  TensorType T;
  Expected<DType> DT = readDType(J["dtype"], member(Where, "dtype"));
  if (!DT)
    return DT.takeError();
  T.Dtype = *DT;
  Expected<Shape> S = readShape(J["shape"], member(Where, "shape"));
  if (!S)
    return S.takeError();
  T.Dims = std::move(*S);
  if (J.contains("quant")) {
    Expected<QuantParams> Q = readQuant(J["quant"], member(Where, "quant"));
    if (!Q)
      return Q.takeError();
    std::string Msg = Q->validate(T.Dims);
    if (!Msg.empty())
      return fail(member(Where, "quant"), Msg);
    T.Quant = std::move(*Q);
  }
  return T;
}

Expected<Argument> Reader::readValue(const json &J, const std::string &Where,
                                     NodeTable *Nodes, unsigned Depth,
                                     StringRef NoNodes) const {
  switch (J.type()) {
  case json::value_t::null:
    return Argument::none();
  case json::value_t::boolean:
    return Argument::boolean(J.get<bool>());
  case json::value_t::number_integer:
  case json::value_t::number_unsigned: {
    Expected<int64_t> I = readInt(J, Where);
    if (!I)
      return I.takeError();
    return Argument::integer(*I);
  }
  case json::value_t::number_float:
    return Argument::real(J.get<double>());
  case json::value_t::string:
    return Argument::string(J.get<std::string>());
  case json::value_t::array: {
    if (Depth >= MaxNesting)
      return fail(Where,
                  "lists nest deeper than " + Twine(MaxNesting) + " levels");
    std::vector<Argument> Elems;
    for (size_t I = 0; I < J.size(); ++I) {
      Expected<Argument> E =
          readValue(J[I], element(Where, I), Nodes, Depth + 1, NoNodes);
      if (!E)
        return E.takeError();
      Elems.push_back(std::move(*E));
    }
    return Argument::list(std::move(Elems));
  }
  case json::value_t::object:
    return readObjectValue(J, Where, Nodes, NoNodes);
  default:
    return fail(Where, Twine("expected a value, got ") + kindName(J));
  }
}

/// {"node": name} or {"float": "nan"|"inf"|"-inf"}; node references are
/// allowed only where \p Nodes is given (node arguments, not attributes or
/// annotations), elsewhere they fail with \p NoNodes.
Expected<Argument> Reader::readObjectValue(const json &J,
                                           const std::string &Where,
                                           NodeTable *Nodes,
                                           StringRef NoNodes) const {
  if (J.size() == 1 && J.contains("float")) {
    Expected<double> F = readFloat(J, Where);
    if (!F)
      return F.takeError();
    return Argument::real(*F);
  }
  if (J.size() != 1 || !J.contains("node"))
    return fail(Where, "expected a value; an object value must be "
                       "{\"node\": name} or {\"float\": \"nan\"|\"inf\"|"
                       "\"-inf\"}");
  if (!Nodes)
    return fail(Where, NoNodes);
  Expected<std::string> Ref = readString(J["node"], member(Where, "node"));
  if (!Ref)
    return Ref.takeError();
  auto It = Nodes->Index.find(*Ref);
  if (It == Nodes->Index.end())
    return fail(Where, "reference to unknown node '" + *Ref + "'");
  size_t Used = It->second;
  Nodes->Deps[Nodes->Current].push_back(Used);
  if (Used >= Nodes->Current && !Nodes->FirstForward)
    Nodes->FirstForward = NodeTable::ForwardRef{Where, Nodes->Current, Used};
  return Argument(Nodes->Nodes[Used]);
}

/// The name of a tensor or child module: non-empty and without '.', since
/// qualified names are built by joining names with '.'.
Expected<std::string> Reader::readPartName(const json &J,
                                           const std::string &Where,
                                           StringRef What) const {
  Expected<std::string> S = readString(J, Where);
  if (!S)
    return S.takeError();
  if (S->empty())
    return fail(Where, "empty " + What + " name");
  if (StringRef(*S).contains('.'))
    return fail(Where, What + " name '" + *S + "' contains '.'");
  return S;
}

Expected<NamedTensor> Reader::readTensor(const json &J,
                                         const std::string &Where,
                                         const std::string &Prefix) const {
  if (Error E = checkObject(J, Where, {"name", "role", "dtype", "shape"},
                            {"quant", "data"}))
    return E;
  NamedTensor NT;
  Expected<std::string> N =
      readPartName(J["name"], member(Where, "name"), "tensor");
  if (!N)
    return N.takeError();
  NT.Name = *N;
  std::string Qual = Prefix.empty() ? NT.Name : Prefix + "." + NT.Name;
  Expected<std::string> Role = readString(J["role"], member(Where, "role"));
  if (!Role)
    return Role.takeError();
  if (*Role != "param" && *Role != "buffer")
    return fail(member(Where, "role"),
                "unknown role '" + *Role +
                    "' (expected \"param\" or \"buffer\")");
  NT.IsBuffer = *Role == "buffer";
  Expected<DType> DT = readDType(J["dtype"], member(Where, "dtype"));
  if (!DT)
    return DT.takeError();
  Expected<Shape> S = readShape(J["shape"], member(Where, "shape"));
  if (!S)
    return S.takeError();
  QuantParams Q;
  if (J.contains("quant")) {
    Expected<QuantParams> P = readQuant(J["quant"], member(Where, "quant"));
    if (!P)
      return P.takeError();
    std::string Msg = P->validate(*S);
    if (!Msg.empty())
      return fail(member(Where, "quant"), "tensor '" + Qual + "': " + Msg);
    Q = std::move(*P);
  }
  if (!J.contains("data")) {
    NT.Value = Tensor::declared(*DT, *S);
    NT.Value.setQuant(std::move(Q));
    return NT;
  }
  Expected<Tensor> T =
      readTensorData(J["data"], member(Where, "data"), Qual, *DT, *S);
  if (!T)
    return T.takeError();
  NT.Value = std::move(*T);
  NT.Value.setQuant(std::move(Q));
  return NT;
}

/// The tensor \p Qual of dtype \p DT and shape \p S, with values from the
/// base64 string \p Data.
Expected<Tensor> Reader::readTensorData(const json &Data,
                                        const std::string &Where,
                                        const std::string &Qual, DType DT,
                                        ArrayRef<int64_t> S) const {
  // Not readString: tensor data can be large, so it is not copied.
  if (!Data.is_string())
    return fail(Where, Twine("expected a string, got ") + kindName(Data));
  Expected<std::string> Bytes =
      decodeBase64(Data.get_ref<const std::string &>());
  if (!Bytes)
    return fail(Where, "tensor '" + Qual + "': " + toString(Bytes.takeError()));
  // readShape bounded the element count, so this cannot overflow.
  uint64_t Needed = uint64_t(numElements(S)) * dtypeSize(DT);
  if (Bytes->size() != Needed)
    return fail(Where, "tensor '" + Qual + "': data has " +
                           Twine(Bytes->size()) + " bytes, shape " +
                           formatShape(S) + " of " + dtypeName(DT) + " needs " +
                           Twine(Needed));
  swapToOrFromLittleEndian(&(*Bytes)[0], Bytes->size(), dtypeSize(DT));
  Tensor T(DT, S);
  if (!Bytes->empty())
    std::memcpy(T.rawData(), Bytes->data(), Bytes->size());
  return T;
}

Error Reader::readTensors(const json &J, const std::string &Where,
                          const std::string &Prefix, ModuleInfo &M) const {
  if (!J.is_array())
    return fail(Where, Twine("expected an array, got ") + kindName(J));
  StringSet<> Seen;
  for (size_t I = 0; I < J.size(); ++I) {
    std::string TW = element(Where, I);
    Expected<NamedTensor> NT = readTensor(J[I], TW, Prefix);
    if (!NT)
      return NT.takeError();
    // setTensor would silently replace an earlier tensor of that name.
    if (!Seen.insert(NT->Name).second)
      return fail(member(TW, "name"),
                  "duplicate tensor name '" + NT->Name + "'");
    M.setTensor(NT->Name, std::move(NT->Value), NT->IsBuffer);
  }
  return Error::success();
}

Error Reader::readChildren(const json &J, const std::string &Where,
                           const std::string &Prefix, ModuleInfo &M,
                           unsigned Depth) const {
  if (!J.is_array())
    return fail(Where, Twine("expected an array, got ") + kindName(J));
  for (size_t I = 0; I < J.size(); ++I) {
    std::string CW = element(Where, I);
    if (Error E = checkObject(J[I], CW, {"name", "module"}, {}))
      return E;
    Expected<std::string> N =
        readPartName(J[I]["name"], member(CW, "name"), "module");
    if (!N)
      return N.takeError();
    // addChild asserts that the name is new.
    if (M.child(*N))
      return fail(member(CW, "name"), "duplicate module name '" + *N + "'");
    if (Depth + 1 >= MaxNesting)
      return fail(CW,
                  "modules nest deeper than " + Twine(MaxNesting) + " levels");
    ModuleInfo &Child = M.addChild(*N, "Module");
    std::string Qual = Prefix.empty() ? *N : Prefix + "." + *N;
    if (Error E = readModule(J[I]["module"], member(CW, "module"), Qual, Child,
                             Depth + 1))
      return E;
  }
  return Error::success();
}

Error Reader::readModule(const json &J, const std::string &Where,
                         const std::string &Prefix, ModuleInfo &M,
                         unsigned Depth) const {
  if (Error E =
          checkObject(J, Where, {"kind", "attrs", "tensors", "children"}, {}))
    return E;
  Expected<std::string> Kind = readString(J["kind"], member(Where, "kind"));
  if (!Kind)
    return Kind.takeError();
  if (Kind->empty())
    return fail(member(Where, "kind"), "empty module kind");
  M.setKind(*Kind);
  const json &Attrs = J["attrs"];
  if (!Attrs.is_object())
    return fail(member(Where, "attrs"),
                Twine("expected an object, got ") + kindName(Attrs));
  for (const auto &KV : Attrs.items()) {
    Expected<Argument> V = readValue(
        KV.value(), member(member(Where, "attrs"), KV.key()), nullptr, 0);
    if (!V)
      return V.takeError();
    M.setAttr(KV.key(), std::move(*V));
  }
  if (Error E = readTensors(J["tensors"], member(Where, "tensors"), Prefix, M))
    return E;
  return readChildren(J["children"], member(Where, "children"), Prefix, M,
                      Depth);
}

/// Creates every node without arguments, so that references can then be
/// resolved to nodes defined anywhere in the array.
Error Reader::createNodes(const json &J, Graph &G, NodeTable &T) const {
  for (size_t I = 0; I < J.size(); ++I) {
    Expected<Node *> N = createNode(J[I], element("graph", I), G, T);
    if (!N)
      return N.takeError();
    T.Index[(*N)->name()] = I;
    T.Nodes.push_back(*N);
  }
  return Error::success();
}

/// Creates the node described by \p NJ, with its type, scope and meta.
Expected<Node *> Reader::createNode(const json &NJ, const std::string &Where,
                                    Graph &G, const NodeTable &T) const {
  if (Error E = checkObject(NJ, Where, {"name", "op", "target", "args"},
                            {"kwargs", "type", "scope", "meta"}))
    return E;
  Expected<std::string> N = readString(NJ["name"], member(Where, "name"));
  if (!N)
    return N.takeError();
  Expected<std::string> Op = readString(NJ["op"], member(Where, "op"));
  if (!Op)
    return Op.takeError();
  Expected<std::string> Target =
      readString(NJ["target"], member(Where, "target"));
  if (!Target)
    return Target.takeError();
  std::optional<OpCode> Code = parseOpCode(*Op);
  if (!Code)
    return fail(member(Where, "op"), "unknown opcode '" + *Op + "'");
  auto Prev = T.Index.find(*N);
  if (Prev != T.Index.end())
    return fail(member(Where, "name"),
                "duplicate node name '" + *N + "' (first defined at " +
                    element("graph", Prev->second) + ")");
  if (!Graph::isValidName(*N))
    return fail(member(Where, "name"),
                "invalid node name '" + *N +
                    "' (expected [A-Za-z_][A-Za-z0-9_]*)");
  Expected<Node *> Created = G.createNamed(*Code, *N, *Target);
  if (!Created)
    return fail(member(Where, "name"), toString(Created.takeError()));
  if (NJ.contains("type")) {
    Expected<TensorType> Ty = readType(NJ["type"], member(Where, "type"));
    if (!Ty)
      return Ty.takeError();
    (*Created)->setType(std::move(*Ty));
  }
  if (NJ.contains("scope")) {
    Expected<std::string> S = readString(NJ["scope"], member(Where, "scope"));
    if (!S)
      return S.takeError();
    (*Created)->setScope(*S);
  }
  if (NJ.contains("meta"))
    if (Error E = readMeta(NJ["meta"], member(Where, "meta"), **Created))
      return E;
  return Created;
}

/// Annotations are constants, so unlike arguments they need no node table.
Error Reader::readMeta(const json &J, const std::string &Where, Node &N) const {
  if (!J.is_object())
    return fail(Where, Twine("expected an object, got ") + kindName(J));
  for (const auto &KV : J.items()) {
    Expected<Argument> V = readValue(KV.value(), member(Where, KV.key()),
                                     nullptr, 0, MetaNodeRefError);
    if (!V)
      return V.takeError();
    N.setMeta(KV.key(), std::move(*V));
  }
  return Error::success();
}

/// Reads "args" and "kwargs" of node T.Current and sets them.
Error Reader::readNodeArgs(const json &NJ, const std::string &Where,
                           NodeTable &T) const {
  const json &AJ = NJ["args"];
  std::string AW = member(Where, "args");
  if (!AJ.is_array())
    return fail(AW, Twine("expected an array, got ") + kindName(AJ));
  std::vector<Argument> Args;
  for (size_t I = 0; I < AJ.size(); ++I) {
    Expected<Argument> A = readValue(AJ[I], element(AW, I), &T, 0);
    if (!A)
      return A.takeError();
    Args.push_back(std::move(*A));
  }
  Kwargs Kw;
  if (NJ.contains("kwargs")) {
    const json &KJ = NJ["kwargs"];
    std::string KW = member(Where, "kwargs");
    if (!KJ.is_array())
      return fail(KW, Twine("expected an array, got ") + kindName(KJ));
    for (size_t I = 0; I < KJ.size(); ++I) {
      std::string PW = element(KW, I);
      const json &Pair = KJ[I];
      if (!Pair.is_array() || Pair.size() != 2)
        return fail(PW, "expected a [key, value] pair");
      Expected<std::string> Key = readString(Pair[0], element(PW, 0));
      if (!Key)
        return Key.takeError();
      if (llvm::any_of(Kw, [&](const auto &KV) { return KV.first == *Key; }))
        return fail(element(PW, 0),
                    "duplicate keyword argument '" + *Key + "'");
      Expected<Argument> V = readValue(Pair[1], element(PW, 1), &T, 0);
      if (!V)
        return V.takeError();
      Kw.emplace_back(std::move(*Key), std::move(*V));
    }
  }
  Node *N = T.Nodes[T.Current];
  N->setArgs(std::move(Args));
  N->setKwargs(std::move(Kw));
  return Error::success();
}

/// A node on a cycle of \p Deps, if there is one. Kahn's algorithm leaves
/// exactly the nodes on or downstream of cycles; walking back through
/// unfinished inputs from any of them must end up going round a cycle.
static std::optional<size_t>
findCycleNode(const std::vector<std::vector<size_t>> &Deps) {
  size_t N = Deps.size();
  std::vector<size_t> Pending(N);
  std::vector<std::vector<size_t>> Users(N);
  std::vector<size_t> Ready;
  for (size_t I = 0; I < N; ++I) {
    Pending[I] = Deps[I].size();
    for (size_t D : Deps[I])
      Users[D].push_back(I);
    if (Pending[I] == 0)
      Ready.push_back(I);
  }
  while (!Ready.empty()) {
    size_t I = Ready.back();
    Ready.pop_back();
    for (size_t U : Users[I])
      if (--Pending[U] == 0)
        Ready.push_back(U);
  }
  auto Stuck = llvm::find_if(Pending, [](size_t P) { return P != 0; });
  if (Stuck == Pending.end())
    return std::nullopt;
  size_t X = Stuck - Pending.begin();
  for (size_t Step = 0; Step < N; ++Step)
    X = *llvm::find_if(Deps[X], [&](size_t D) { return Pending[D] != 0; });
  return X;
}

/// Rejects graphs whose order is not an execution order.
Error Reader::checkOrder(const NodeTable &T) const {
  if (!T.FirstForward)
    return Error::success();
  if (std::optional<size_t> C = findCycleNode(T.Deps))
    return fail("graph",
                "graph has a cycle through node '" + T.Nodes[*C]->name() + "'");
  const NodeTable::ForwardRef &F = *T.FirstForward;
  return fail(F.Where, "node '" + T.Nodes[F.User]->name() + "' uses node '" +
                           T.Nodes[F.Used]->name() +
                           "' before its definition at " +
                           element("graph", F.Used));
}

Error Reader::readGraph(const json &J, Graph &G) const {
  if (!J.is_array())
    return fail("graph", Twine("expected an array, got ") + kindName(J));
  NodeTable T;
  if (Error E = createNodes(J, G, T))
    return E;
  T.Deps.resize(T.Nodes.size());
  for (size_t I = 0; I < J.size(); ++I) {
    T.Current = I;
    if (Error E = readNodeArgs(J[I], element("graph", I), T))
      return E;
  }
  return checkOrder(T);
}

Expected<std::unique_ptr<GraphModule>> Reader::readDocument(const json &Doc) {
  if (!Doc.is_object())
    return fail("", Twine("expected a JSON object at the top level, got ") +
                        kindName(Doc));
  if (!Doc.contains("format"))
    return fail("", "missing field 'format' (not a qfx graph module file)");
  const json &Format = Doc["format"];
  if (!Format.is_string())
    return fail("format", Twine("expected a string, got ") + kindName(Format));
  if (Format != FormatTag)
    return fail("format", Twine("expected \"") + FormatTag + "\", got \"" +
                              Format.get_ref<const std::string &>() + "\"");
  if (!Doc.contains("version"))
    return fail("", "missing field 'version'");
  Expected<int64_t> Version = readInt(Doc["version"], "version");
  if (!Version)
    return Version.takeError();
  if (*Version != SerializationVersion)
    return fail("version", "unsupported version " + Twine(*Version) +
                               " (this build reads version " +
                               Twine(SerializationVersion) + ")");
  if (Error E =
          checkObject(Doc, "", {"format", "version", "root", "graph"}, {}))
    return E;
  auto GM = std::make_unique<GraphModule>();
  if (Error E = readModule(Doc["root"], "root", "", GM->root(), 0))
    return E;
  if (Error E = readGraph(Doc["graph"], GM->graph()))
    return E;
  if (Error E = verify(*GM))
    return prefixError(std::move(E), Name);
  return GM;
}

std::string serializeToJson(const GraphModule &GM) {
  try {
    json Doc = json::object();
    Doc["format"] = FormatTag;
    Doc["version"] = SerializationVersion;
    Doc["root"] = writeModule(GM.root());
    json Nodes = json::array();
    for (const Node &N : GM.graph())
      Nodes.push_back(writeNode(N));
    Doc["graph"] = std::move(Nodes);
    // JSON strings must be UTF-8; invalid sequences in names or string
    // arguments become U+FFFD instead of failing the whole save.
    return Doc.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
  } catch (const json::exception &E) {
    // Only a bug can get here: the writer builds well-typed values and the
    // replace handler makes dumping strings total.
    report_fatal_error(Twine("JSON serialization failed: ") + E.what());
  }
}

Expected<std::unique_ptr<GraphModule>> deserializeFromJson(StringRef Bytes,
                                                           StringRef Name) {
  Expected<json> Doc = parseJsonDocument(Bytes, Name, "not valid JSON: ");
  if (!Doc)
    return Doc.takeError();
  try {
    return Reader(Name).readDocument(*Doc);
  } catch (const json::exception &E) {
    // The reader checks types before every access, so this is a bug; still
    // a file must never take the process down.
    return fileError(Name,
                     "cannot read JSON: " + stripJsonExceptionTag(E.what()));
  } catch (const std::bad_alloc &) {
    return fileError(Name, "out of memory while reading the graph module");
  }
}

Expected<std::unique_ptr<GraphModule>> loadGraphModule(StringRef Path) {
  Expected<std::string> Bytes = readFile(Path);
  if (!Bytes)
    return Bytes.takeError();
  if (StringRef(*Bytes).ltrim().startswith("{"))
    return deserializeFromJson(*Bytes, Path);
  Expected<std::unique_ptr<GraphModule>> GM = parseGraphModule(*Bytes, Path);
  if (!GM)
    return GM.takeError();
  if (Error E = verify(**GM))
    return prefixError(std::move(E), Path);
  return GM;
}

Error saveGraphModule(const GraphModule &GM, StringRef Path,
                      GraphFileFormat Format) {
  std::string Bytes;
  if (Format == GraphFileFormat::Json) {
    Bytes = serializeToJson(GM);
  } else {
    PrintOptions Opts;
    Opts.ElideTensorsAbove = -1;
    Bytes = printToString(GM, Opts);
  }
  return writeFileAtomically(Path, Bytes);
}

} // namespace qfx
