//===- SerializationTest.cpp - JSON files: round trips and bad input ------===//

#include "qfx/IR/Serialization.h"
#include "qfx/IR/GraphModule.h"
#include "qfx/IR/Verifier.h"
#include "qfx/Support/Error.h"
#include "qfx/Support/FileIO.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

using namespace qfx;
using namespace llvm;

namespace {

const double NaN = std::numeric_limits<double>::quiet_NaN();
const double Inf = std::numeric_limits<double>::infinity();

/// The value of \p E, failing the test with its message if it is an error.
template <typename T> T unwrap(Expected<T> E) {
  if (!E)
    FAIL(toString(E.takeError()));
  return std::move(*E);
}

/// The message of \p R's error, or "" if it holds a module.
std::string errorOf(Expected<std::unique_ptr<GraphModule>> R) {
  if (R)
    return "";
  return toString(R.takeError());
}

std::string verifierMessage(const GraphModule &GM) {
  return errorToString(verify(GM));
}

/// The graph of buildRichModule: every argument kind, kwargs, non-finite
/// floats, quantized types, scopes and annotations.
void addRichGraph(GraphModule &GM) {
  Graph &G = GM.graph();
  Node *X = G.placeholder("x", TensorType{DType::F32, {1, 1, 1, 4}, {}});
  const Tensor *W = GM.lookupTensor("layer1.0.conv1.weight");
  Node *WA = G.getAttr("layer1.0.conv1.weight",
                       TensorType{DType::S8, {2, 1, 1, 2}, W->quant()});
  Node *Q = G.callFunction(
      "quantize_per_tensor",
      {X, Argument::real(0.05), Argument::integer(3), Argument::string("s8")});
  Q->setType(
      TensorType{DType::S8, {1, 1, 1, 4}, QuantParams::perTensor(0.05, 3)});
  Node *C = G.callModule(
      "layer1.0.conv1", {Q},
      {{"padding", Argument::ints({0, 0})}, {"groups", Argument::integer(1)}});
  C->setScope("layer1.0");
  C->setMeta("qconfig", Argument::string("per_channel_s8"));
  C->setMeta("odd key\t\xc3\xa9",
             Argument::list({Argument::real(NaN), Argument::real(-Inf),
                             Argument::integer(INT64_MIN), Argument::none(),
                             Argument::boolean(false), Argument::ints({})}));
  C->setMeta("", Argument::real(1.0));
  Node *F =
      G.callFunction("hardtanh", {C, Argument::real(-Inf), Argument::real(Inf)},
                     {{"nan_value", Argument::real(NaN)},
                      {"inplace", Argument::boolean(true)},
                      {"alpha", Argument::none()}});
  Node *Cat = G.callFunction(
      "cat", {Argument::list({F, C, Argument::list({X, Argument::none()})}),
              Argument::integer(-1)});
  Node *M = G.callMethod("reshape", {Cat, Argument::ints({-1, 8})});
  M->setScope("layer1.0.conv1");
  G.output(Argument::list({M, WA}));
}

/// A module that uses every part of the format: nested modules, params and
/// buffers of every dtype, quantized and declared tensors, every argument
/// kind, kwargs, non-finite floats, scopes and annotations.
std::unique_ptr<GraphModule> buildRichModule() {
  auto GM = std::make_unique<GraphModule>("ResNetLike");
  ModuleInfo &Root = GM->root();
  Root.setAttr("training", Argument::boolean(false));
  Root.setAttr("note", Argument::string("tab\tquote\" slash\\ \xc3\xa9"));
  Root.setTensor("scale_const", Tensor::fromFloats({}, {0.5f}), true);

  ModuleInfo &Conv = GM->addModule("layer1.0.conv1", "Conv2d");
  Conv.setAttr("stride", Argument::ints({1, 1}));
  Conv.setAttr("eps", Argument::real(1e-5));
  Conv.setAttr("one", Argument::real(1.0));
  Conv.setAttr("padding_mode", Argument::string("zeros"));
  Conv.setAttr("bias_attr", Argument::none());
  Conv.setAttr("nested",
               Argument::list({Argument::ints({1, 2}), Argument::list({}),
                               Argument::real(NaN)}));
  Conv.setAttr("limits",
               Argument::list({Argument::real(Inf), Argument::real(-Inf),
                               Argument::integer(INT64_MIN),
                               Argument::integer(INT64_MAX),
                               Argument::real(-0.0), Argument::real(0.1)}));
  Tensor W =
      Tensor::fromValues<int>(DType::S8, {2, 1, 1, 2}, {-128, 127, 0, 5});
  W.setQuant(QuantParams::perChannel({0.5, 0.25}, {0, -3}, 0));
  Conv.setTensor("weight", W);
  Conv.setTensor("bias", Tensor::fromFloats({2}, {0.1f, -2.5f}));
  Conv.setTensor("bias_q", Tensor::fromValues<int64_t>(DType::S32, {2},
                                                       {-2147483648LL, 7}));

  ModuleInfo &BN = GM->addModule("layer1.0.bn1", "BatchNorm2d");
  BN.setTensor("running_mean", Tensor::fromFloats({2}, {1e-30f, -0.0f}), true);
  Tensor Tracked(DType::S64, {});
  Tracked.data<int64_t>()[0] = (int64_t(1) << 62) + 1;
  BN.setTensor("num_batches_tracked", Tracked, true);

  ModuleInfo &Act = GM->addModule("layer1.0.act", "QuantStub");
  Tensor Table = Tensor::fromValues<int>(DType::U8, {3}, {0, 128, 255});
  Table.setQuant(QuantParams::perTensor(0.02, 128));
  Act.setTensor("table", Table, true);

  ModuleInfo &FC = GM->addModule("fc", "Linear");
  FC.setTensor("weight", Tensor::declared(DType::F32, {10, 1000}));
  FC.setTensor("empty", Tensor(DType::F32, {0}), true);
  addRichGraph(*GM);
  return GM;
}

bool sameFloat(double A, double B) {
  if (std::isnan(A) || std::isnan(B))
    return std::isnan(A) && std::isnan(B);
  return A == B && std::signbit(A) == std::signbit(B);
}

/// Structural equality where node references compare by name (the two
/// arguments live in different graphs).
void checkSameArgument(const Argument &A, const Argument &B) {
  REQUIRE(A.kind() == B.kind());
  switch (A.kind()) {
  case Argument::Kind::None:
    return;
  case Argument::Kind::NodeRef:
    CHECK(A.getNode()->name() == B.getNode()->name());
    return;
  case Argument::Kind::Int:
    CHECK(A.getInt() == B.getInt());
    return;
  case Argument::Kind::Float:
    CHECK(sameFloat(A.getFloat(), B.getFloat()));
    return;
  case Argument::Kind::Bool:
    CHECK(A.getBool() == B.getBool());
    return;
  case Argument::Kind::String:
    CHECK(A.getString() == B.getString());
    return;
  case Argument::Kind::List:
    REQUIRE(A.getList().size() == B.getList().size());
    for (size_t I = 0; I < A.getList().size(); ++I)
      checkSameArgument(A.getList()[I], B.getList()[I]);
    return;
  }
}

void checkSameTensor(const NamedTensor &A, const NamedTensor &B) {
  INFO("tensor " << A.Name);
  CHECK(A.Name == B.Name);
  CHECK(A.IsBuffer == B.IsBuffer);
  CHECK(A.Value.dtype() == B.Value.dtype());
  CHECK(A.Value.shape() == B.Value.shape());
  CHECK(A.Value.quant() == B.Value.quant());
  REQUIRE(A.Value.hasData() == B.Value.hasData());
  if (A.Value.hasData() && A.Value.byteSize())
    CHECK(std::memcmp(A.Value.rawData(), B.Value.rawData(),
                      A.Value.byteSize()) == 0);
}

void checkSameModule(const ModuleInfo &A, const ModuleInfo &B) {
  INFO("module kind " << A.kind().str());
  CHECK(A.kind() == B.kind());
  REQUIRE(A.attrs().size() == B.attrs().size());
  for (auto IA = A.attrs().begin(), IB = B.attrs().begin();
       IA != A.attrs().end(); ++IA, ++IB) {
    CHECK(IA->first == IB->first);
    checkSameArgument(IA->second, IB->second);
  }
  REQUIRE(A.tensors().size() == B.tensors().size());
  for (size_t I = 0; I < A.tensors().size(); ++I)
    checkSameTensor(A.tensors()[I], B.tensors()[I]);
  REQUIRE(A.children().size() == B.children().size());
  for (size_t I = 0; I < A.children().size(); ++I) {
    CHECK(A.children()[I].first == B.children()[I].first);
    checkSameModule(*A.children()[I].second, *B.children()[I].second);
  }
}

std::vector<std::string> userNames(const Node &N) {
  std::vector<std::string> Names;
  for (const Node *U : N.users())
    Names.push_back(U->name().str());
  return Names;
}

void checkSameGraph(const Graph &A, const Graph &B) {
  std::vector<const Node *> NA = A.nodes(), NB = B.nodes();
  REQUIRE(NA.size() == NB.size());
  for (size_t I = 0; I < NA.size(); ++I) {
    const Node &X = *NA[I], &Y = *NB[I];
    INFO("node " << X.name().str());
    CHECK(X.name() == Y.name());
    CHECK(X.op() == Y.op());
    CHECK(X.target() == Y.target());
    CHECK(X.scope() == Y.scope());
    CHECK(X.type() == Y.type());
    REQUIRE(X.numArgs() == Y.numArgs());
    for (size_t J = 0; J < X.numArgs(); ++J)
      checkSameArgument(X.arg(J), Y.arg(J));
    REQUIRE(X.kwargs().size() == Y.kwargs().size());
    for (size_t J = 0; J < X.kwargs().size(); ++J) {
      CHECK(X.kwargs()[J].first == Y.kwargs()[J].first);
      checkSameArgument(X.kwargs()[J].second, Y.kwargs()[J].second);
    }
    REQUIRE(X.meta().size() == Y.meta().size());
    for (auto MX = X.meta().begin(), MY = Y.meta().begin();
         MX != X.meta().end(); ++MX, ++MY) {
      CHECK(MX->first == MY->first);
      checkSameArgument(MX->second, MY->second);
    }
    CHECK(userNames(X) == userNames(Y));
  }
}

/// A fresh directory, removed with its contents on destruction.
struct TempDir {
  SmallString<128> Path;
  TempDir() {
    REQUIRE_FALSE(sys::fs::createUniqueDirectory("qfx-json-test", Path));
  }
  ~TempDir() { sys::fs::remove_directories(Path); }
  std::string file(StringRef Name) const {
    SmallString<128> P(Path);
    sys::path::append(P, Name);
    return P.str().str();
  }
  size_t numEntries() const {
    size_t N = 0;
    std::error_code EC;
    for (sys::fs::directory_iterator It(Path, EC), End; It != End && !EC;
         It.increment(EC))
      ++N;
    return N;
  }
};

/// The module of the example in docs/format.md.
std::unique_ptr<GraphModule> buildExampleModule() {
  auto GM = std::make_unique<GraphModule>("Net");
  GM->root().setAttr("k", Argument::integer(1));
  GM->root().setAttr("p", Argument::real(1.0));
  GM->root().setAttr("q", Argument::real(NaN));
  GM->root().setTensor("w", Tensor::fromFloats({2}, {1.0f, -2.0f}));
  Graph &G = GM->graph();
  Node *X = G.placeholder("x", TensorType{DType::F32, {2}, {}});
  Node *W = G.getAttr("w");
  Node *Add = G.callFunction("add", {X, W}, {{"alpha", Argument::real(1.0)}});
  Add->setScope("blocks.0");
  Add->setMeta("qconfig", Argument::string("default"));
  G.output(Add);
  return GM;
}

/// Its serialization, checked byte for byte.
const char *ExampleJson = R"({
  "format": "qfx.graph_module",
  "graph": [
    {
      "args": [],
      "name": "x",
      "op": "placeholder",
      "target": "x",
      "type": {
        "dtype": "f32",
        "shape": [
          2
        ]
      }
    },
    {
      "args": [],
      "name": "w",
      "op": "get_attr",
      "target": "w"
    },
    {
      "args": [
        {
          "node": "x"
        },
        {
          "node": "w"
        }
      ],
      "kwargs": [
        [
          "alpha",
          1.0
        ]
      ],
      "meta": {
        "qconfig": "default"
      },
      "name": "add",
      "op": "call_function",
      "scope": "blocks.0",
      "target": "add"
    },
    {
      "args": [
        {
          "node": "add"
        }
      ],
      "name": "output",
      "op": "output",
      "target": "output"
    }
  ],
  "root": {
    "attrs": {
      "k": 1,
      "p": 1.0,
      "q": {
        "float": "nan"
      }
    },
    "children": [],
    "kind": "Net",
    "tensors": [
      {
        "data": "AACAPwAAAMA=",
        "dtype": "f32",
        "name": "w",
        "role": "param",
        "shape": [
          2
        ]
      }
    ]
  },
  "version": 1
}
)";

} // namespace

TEST_CASE("json round trip keeps every part of a rich module", "[ir][json]") {
  std::unique_ptr<GraphModule> GM = buildRichModule();
  REQUIRE(verifierMessage(*GM) == "");
  std::string Text = serializeToJson(*GM);
  std::unique_ptr<GraphModule> Loaded =
      unwrap(deserializeFromJson(Text, "rich.json"));
  checkSameModule(GM->root(), Loaded->root());
  checkSameGraph(GM->graph(), Loaded->graph());
  CHECK(serializeToJson(*Loaded) == Text);
  // Declared tensors stay declared; empty tensors with storage keep it.
  CHECK_FALSE(Loaded->lookupTensor("fc.weight")->hasData());
  CHECK(Loaded->lookupTensor("fc.empty")->hasData());
  CHECK(Loaded->lookupTensor("layer1.0.bn1.num_batches_tracked")
            ->data<int64_t>()[0] == (int64_t(1) << 62) + 1);
}

TEST_CASE("json output is deterministic and matches the documented layout",
          "[ir][json]") {
  std::unique_ptr<GraphModule> Rich = buildRichModule();
  std::string First = serializeToJson(*Rich);
  CHECK(serializeToJson(*Rich) == First);
  CHECK(serializeToJson(*Rich->clone()) == First);
  CHECK(serializeToJson(*buildRichModule()) == First);

  CHECK(serializeToJson(*buildExampleModule()) == ExampleJson);
}

TEST_CASE("json ints and floats keep their kinds", "[ir][json]") {
  std::unique_ptr<GraphModule> GM =
      unwrap(deserializeFromJson(ExampleJson, "example.json"));
  const ModuleInfo &Root = GM->root();
  REQUIRE(Root.attr("k"));
  CHECK(Root.attr("k")->isInt());
  CHECK(Root.attr("k")->getInt() == 1);
  REQUIRE(Root.attr("p"));
  CHECK(Root.attr("p")->isFloat());
  CHECK(Root.attr("p")->getFloat() == 1.0);
  REQUIRE(Root.attr("q"));
  CHECK(Root.attr("q")->isFloat());
  CHECK(std::isnan(Root.attr("q")->getFloat()));
  const Node *Add = GM->graph().lookup("add");
  REQUIRE(Add);
  REQUIRE(Add->kwarg("alpha"));
  CHECK(Add->kwarg("alpha")->isFloat());
  const Tensor *W = GM->lookupTensor("w");
  REQUIRE(W);
  CHECK(W->getAsDouble(0) == 1.0);
  CHECK(W->getAsDouble(1) == -2.0);
}

TEST_CASE("node annotations round-trip through json byte for byte",
          "[ir][json]") {
  GraphModule GM("M");
  Graph &G = GM.graph();
  Node *X = G.placeholder("x");
  X->setMeta("qconfig", Argument::string("default"));
  X->setMeta("bits", Argument::list({Argument::integer(8), Argument::none()}));
  X->setMeta("scale", Argument::real(Inf));
  G.output(X);
  std::string Json = serializeToJson(GM);
  CHECK(StringRef(Json).contains(R"(
      "meta": {
        "bits": [
          8,
          null
        ],
        "qconfig": "default",
        "scale": {
          "float": "inf"
        }
      },
      "name": "x",)"));
  // The output node has no annotations, so no "meta" field at all.
  CHECK(StringRef(Json).count("\"meta\"") == 1);

  std::unique_ptr<GraphModule> Loaded =
      unwrap(deserializeFromJson(Json, "meta.json"));
  CHECK(serializeToJson(*Loaded) == Json);
  const Node *LX = Loaded->graph().lookup("x");
  REQUIRE(LX);
  REQUIRE(LX->meta("qconfig"));
  CHECK(*LX->meta("qconfig") == Argument::string("default"));
  REQUIRE(LX->meta("bits"));
  CHECK(LX->meta("bits")->getList()[0].isInt());
  CHECK(LX->meta().size() == 3);
  CHECK(Loaded->graph().lookup("output")->meta().empty());
}

TEST_CASE("tensor data of every length survives base64", "[ir][json]") {
  for (int64_t N = 0; N < 8; ++N) {
    INFO("length " << N);
    GraphModule GM;
    Tensor T(DType::U8, {N});
    for (int64_t I = 0; I < N; ++I)
      T.data<uint8_t>()[I] = static_cast<uint8_t>(I * 37 + 200);
    GM.root().setTensor("t", T);
    GM.graph().output(Argument::none());
    std::string Text = serializeToJson(GM);
    std::unique_ptr<GraphModule> Loaded =
        unwrap(deserializeFromJson(Text, "b64.json"));
    const Tensor *L = Loaded->lookupTensor("t");
    REQUIRE(L);
    REQUIRE(L->hasData());
    REQUIRE(L->numElements() == N);
    for (int64_t I = 0; I < N; ++I)
      CHECK(L->data<uint8_t>()[I] == T.data<uint8_t>()[I]);
  }
}

namespace {

const char *ValidHead = R"("format": "qfx.graph_module", "version": 1)";

const char *ValidRoot = R"({"kind": "Net", "attrs": {"k": 1},
  "tensors": [{"name": "w", "role": "param", "dtype": "f32", "shape": [2],
               "data": "AACAPwAAAMA="}],
  "children": [{"name": "conv1", "module": {"kind": "Conv2d", "attrs": {},
    "tensors": [{"name": "weight", "role": "param", "dtype": "f32",
                 "shape": [2, 3]}],
    "children": []}}]})";

const char *ValidGraph = R"([
  {"name": "x", "op": "placeholder", "target": "x", "args": [],
   "type": {"dtype": "f32", "shape": [2]}},
  {"name": "conv1", "op": "call_module", "target": "conv1",
   "args": [{"node": "x"}], "kwargs": [["k", 1]]},
  {"name": "output", "op": "output", "target": "output",
   "args": [{"node": "conv1"}]}])";

std::string makeDoc(const std::string &Root = ValidRoot,
                    const std::string &Graph = ValidGraph,
                    const std::string &Head = ValidHead) {
  return "{" + Head + ", \"root\": " + Root + ", \"graph\": " + Graph + "}";
}

/// The root with its only root tensor replaced by \p Tensor.
/// The child module ValidGraph calls.
const char *ConvChild = R"({"name": "conv1", "module": {"kind": "Conv2d",
  "attrs": {}, "tensors": [], "children": []}})";

std::string rootWithTensor(const std::string &Tensor) {
  return R"({"kind": "Net", "attrs": {}, "tensors": [)" + Tensor +
         "], \"children\": [" + ConvChild + "]}";
}

std::string rootWithAttr(const std::string &Value) {
  return R"({"kind": "Net", "attrs": {"bad": )" + Value +
         "}, \"tensors\": [], \"children\": [" + ConvChild + "]}";
}

/// A graph of x, one node "n" with the given fields, and an output of n.
std::string graphWithNode(const std::string &Fields) {
  return R"([{"name": "x", "op": "placeholder", "target": "x", "args": []},
    {"name": "n", )" +
         Fields + R"(},
    {"name": "output", "op": "output", "target": "output",
     "args": [{"node": "n"}]}])";
}

std::string nested(const std::string &Open, const std::string &Inner,
                   const std::string &Close, int Depth) {
  std::string S;
  for (int I = 0; I < Depth; ++I)
    S += Open;
  S += Inner;
  for (int I = 0; I < Depth; ++I)
    S += Close;
  return S;
}

std::string deepModules(int Depth) {
  std::string Leaf = R"({"kind": "M", "attrs": {}, "tensors": [],
    "children": []})";
  std::string Open = R"({"kind": "M", "attrs": {}, "tensors": [],
    "children": [{"name": "c", "module": )";
  return R"({"kind": "Net", "attrs": {}, "tensors": [], "children": [)" +
         std::string(ConvChild) + R"(, {"name": "c", "module": )" +
         nested(Open, Leaf, "}]}", Depth - 1) + "}]}";
}

struct BadCase {
  const char *What;
  std::string Doc;
  std::string Expected;
};

/// Broken JSON and wrong headers.
std::vector<BadCase> badEnvelopes() {
  return {
      {"truncated", "{\"format\": ", "bad.json: not valid JSON (byte "},
      {"not utf-8", makeDoc(rootWithAttr("\"\xff\"")), "not valid JSON"},
      {"number overflow", makeDoc(rootWithAttr("1e999")), "not valid JSON"},
      {"duplicate key", "{\"format\": \"qfx.graph_module\", \"format\": \"x\"}",
       "key 'format' appears twice in one object"},
      {"not an object", "[1, 2]",
       "bad.json: expected a JSON object at the top level, got array"},
      {"no format", "{\"version\": 1}", "bad.json: missing field 'format'"},
      {"wrong format",
       makeDoc(ValidRoot, ValidGraph, R"("format": "onnx", "version": 1)"),
       "bad.json: format: expected \"qfx.graph_module\", got \"onnx\""},
      {"version 2",
       makeDoc(ValidRoot, ValidGraph,
               R"("format": "qfx.graph_module", "version": 2)"),
       "bad.json: version: unsupported version 2 (this build reads "
       "version 1)"},
      {"version string",
       makeDoc(ValidRoot, ValidGraph,
               R"("format": "qfx.graph_module", "version": "1")"),
       "bad.json: version: expected an integer, got string"},
      {"no graph", "{" + std::string(ValidHead) + "}",
       "bad.json: missing field 'root'"},
  };
}

/// Problems with nodes, their arguments and the graph order.
std::vector<BadCase> badNodes() {
  std::string Call = R"("op": "call_function", "target": "relu", )";
  return {
      {"missing op",
       makeDoc(ValidRoot, graphWithNode(R"("target": "relu", "args": [])")),
       "bad.json: graph[1]: missing field 'op'"},
      {"target not a string",
       makeDoc(ValidRoot, graphWithNode(R"("op": "call_function", "target": 3,
                                "args": [])")),
       "bad.json: graph[1].target: expected a string, got integer"},
      {"args not an array",
       makeDoc(ValidRoot, graphWithNode(Call + R"("args": {})")),
       "bad.json: graph[1].args: expected an array, got object"},
      {"unknown field",
       makeDoc(ValidRoot, graphWithNode(Call + R"("args": [], "colour": 1)")),
       "bad.json: graph[1]: unknown field 'colour'"},
      {"unknown opcode",
       makeDoc(ValidRoot, graphWithNode(R"("op": "call_magic", "target": "t",
                                "args": [])")),
       "bad.json: graph[1].op: unknown opcode 'call_magic'"},
      {"unknown tensor dtype",
       makeDoc(rootWithTensor(
           R"({"name": "w", "role": "param", "dtype": "f16", "shape": []})")),
       "bad.json: root.tensors[0].dtype: unknown dtype 'f16'"},
      {"unknown type dtype",
       makeDoc(ValidRoot, graphWithNode(Call + R"("args": [],
                             "type": {"dtype": "bf16", "shape": []})")),
       "bad.json: graph[1].type.dtype: unknown dtype 'bf16'"},
      {"unknown role",
       makeDoc(rootWithTensor(
           R"({"name": "w", "role": "weight", "dtype": "f32", "shape": []})")),
       "bad.json: root.tensors[0].role: unknown role 'weight'"},
      {"duplicate node", makeDoc(ValidRoot, graphWithNode(Call + R"("args": []},
                             {"name": "n", )" + Call + R"("args": [])")),
       "bad.json: graph[2].name: duplicate node name 'n' (first defined at "
       "graph[1])"},
      {"invalid node name",
       makeDoc(ValidRoot,
               R"([{"name": "1x", "op": "placeholder", "target": "x",
                    "args": []}])"),
       "bad.json: graph[0].name: invalid node name '1x'"},
      {"dangling reference",
       makeDoc(ValidRoot, graphWithNode(Call + R"("args": [{"node": "foo"}])")),
       "bad.json: graph[1].args[0]: reference to unknown node 'foo'"},
      {"dangling kwarg reference",
       makeDoc(ValidRoot, graphWithNode(Call + R"("args": [],
                             "kwargs": [["k", [1, {"node": "foo"}]]])")),
       "bad.json: graph[1].kwargs[0][1][1]: reference to unknown node 'foo'"},
      {"cycle",
       makeDoc(ValidRoot, graphWithNode(Call + R"("args": [{"node": "m"}]},
                             {"name": "m", )" +
                                        Call + R"("args": [{"node": "n"}])")),
       "bad.json: graph: graph has a cycle through node '"},
      {"self cycle",
       makeDoc(ValidRoot, graphWithNode(Call + R"("args": [{"node": "n"}])")),
       "bad.json: graph: graph has a cycle through node 'n'"},
      {"use before definition",
       makeDoc(ValidRoot, graphWithNode(Call + R"("args": [{"node": "m"}]},
                             {"name": "m", )" +
                                        Call + R"("args": [{"node": "x"}])")),
       "bad.json: graph[1].args[0]: node 'n' uses node 'm' before its "
       "definition at graph[2]"},
      {"kwarg not a pair",
       makeDoc(ValidRoot,
               graphWithNode(Call + R"("args": [], "kwargs": [["k"]])")),
       "bad.json: graph[1].kwargs[0]: expected a [key, value] pair"},
      {"meta not an object",
       makeDoc(ValidRoot, graphWithNode(Call + R"("args": [], "meta": [])")),
       "bad.json: graph[1].meta: expected an object, got array"},
      {"duplicate kwarg", makeDoc(ValidRoot, graphWithNode(Call + R"("args": [],
                                        "kwargs": [["k", 1], ["k", 2]])")),
       "bad.json: graph[1].kwargs[1][0]: duplicate keyword argument 'k'"},
      {"verifier",
       makeDoc(ValidRoot, graphWithNode(R"("op": "get_attr", "target": "nope",
                                "args": [])")),
       "node 'n': get_attr target 'nope' is not a tensor"},
  };
}

/// Problems with modules, tensors and quantization parameters.
std::vector<BadCase> badTensors() {
  std::string T = R"("name": "w", "role": "param", "dtype": "f32")";
  std::string Call = R"("op": "call_function", "target": "relu", )";
  return {
      {"bad base64 character",
       makeDoc(rootWithTensor("{" + T + R"(, "shape": [3], "data": "AAA*"})")),
       "bad.json: root.tensors[0].data: tensor 'w': invalid base64: "
       "unexpected '*' at offset 3"},
      {"bad base64 length",
       makeDoc(rootWithTensor("{" + T + R"(, "shape": [3], "data": "AAA"})")),
       "tensor 'w': invalid base64: length 3 is not a multiple of 4"},
      {"bad base64 padding bits",
       makeDoc(rootWithTensor(
           R"({"name": "w", "role": "param", "dtype": "u8", "shape": [1],
               "data": "AR=="})")),
       "tensor 'w': invalid base64: non-zero padding bits"},
      {"data size",
       makeDoc(R"({"kind": "Net", "attrs": {}, "tensors": [], "children": [
                  {"name": "conv1", "module": {"kind": "Conv2d", "attrs": {},
                   "tensors": [{"name": "weight", "role": "param",
                     "dtype": "f32", "shape": [2, 3],
                     "data": "AAAAAAAAAAAAAA=="}],
                   "children": []}}]})"),
       "bad.json: root.children[0].module.tensors[0].data: tensor "
       "'conv1.weight': data has 10 bytes, shape [2,3] of f32 needs 24"},
      {"negative extent",
       makeDoc(rootWithTensor("{" + T + R"(, "shape": [-2, 3]})")),
       "bad.json: root.tensors[0].shape: negative extent -2 in shape [-2,3]"},
      {"too many elements",
       makeDoc(
           rootWithTensor("{" + T + R"(, "shape": [4611686018427387904, 4]})")),
       "bad.json: root.tensors[0].shape: shape [4611686018427387904,4] has "
       "too many elements"},
      {"huge extents next to a zero extent",
       makeDoc(rootWithTensor("{" + T +
                              R"(, "shape": [0, 4611686018427387904, 4]})")),
       "bad.json: root.tensors[0].shape: shape [0,4611686018427387904,4] "
       "has too many elements (limit 1099511627776)"},
      {"integer out of range",
       makeDoc(
           rootWithTensor("{" + T + R"(, "shape": [18446744073709551615]})")),
       "bad.json: root.tensors[0].shape[0]: integer 18446744073709551615 out "
       "of range"},
      {"float extent",
       makeDoc(rootWithTensor("{" + T + R"(, "shape": [2.0]})")),
       "bad.json: root.tensors[0].shape[0]: expected an integer, got float"},
      {"duplicate tensor",
       makeDoc(R"({"kind": "Net", "attrs": {}, "children": [], "tensors": [
                  {"name": "w", "role": "param", "dtype": "f32", "shape": []},
                  {"name": "w", "role": "buffer", "dtype": "f32",
                   "shape": []}]})"),
       "bad.json: root.tensors[1].name: duplicate tensor name 'w'"},
      {"dotted tensor name",
       makeDoc(rootWithTensor(
           R"({"name": "a.b", "role": "param", "dtype": "f32",
               "shape": []})")),
       "bad.json: root.tensors[0].name: tensor name 'a.b' contains '.'"},
      {"duplicate child",
       makeDoc(R"({"kind": "Net", "attrs": {}, "tensors": [], "children": [
          {"name": "conv1", "module": {"kind": "Conv2d", "attrs": {},
            "tensors": [], "children": []}},
          {"name": "conv1", "module": {"kind": "Conv2d", "attrs": {},
            "tensors": [], "children": []}}]})"),
       "bad.json: root.children[1].name: duplicate module name 'conv1'"},
      {"empty kind", makeDoc(R"({"kind": "", "attrs": {}, "tensors": [],
                  "children": []})"),
       "bad.json: root.kind: empty module kind"},
      {"modules too deep", makeDoc(deepModules(200)),
       "modules nest deeper than 128 levels"},
      {"bad scale",
       makeDoc(rootWithTensor(
           R"({"name": "w", "role": "param", "dtype": "s8", "shape": [],
               "quant": {"scheme": "per_tensor", "scale": 0,
                         "zero_point": 0}, "data": "AA=="})")),
       "bad.json: root.tensors[0].quant: tensor 'w': scale must be positive "
       "and finite, got 0"},
      {"scale count",
       makeDoc(rootWithTensor(
           R"({"name": "w", "role": "param", "dtype": "s8", "shape": [2],
               "quant": {"scheme": "per_channel", "axis": 0,
                         "scales": [0.5], "zero_points": [0, 0]}})")),
       "tensor 'w': 1 scales for 2 channels on axis 0"},
      {"unknown scheme",
       makeDoc(rootWithTensor(
           R"({"name": "w", "role": "param", "dtype": "s8", "shape": [2],
               "quant": {"scheme": "per_group"}})")),
       "bad.json: root.tensors[0].quant.scheme: unknown quantization scheme "
       "'per_group'"},
      {"bad type quant", makeDoc(ValidRoot, graphWithNode(Call + R"("args": [],
                 "type": {"dtype": "s8", "shape": [],
                          "quant": {"scheme": "per_tensor",
                                    "scale": {"float": "inf"},
                                    "zero_point": 0}})")),
       "bad.json: graph[1].type.quant: scale must be positive and finite"},
  };
}

/// Problems with argument and attribute values.
std::vector<BadCase> badValues() {
  return {
      {"node in attribute", makeDoc(rootWithAttr(R"({"node": "x"})")),
       "bad.json: root.attrs.bad: node reference not allowed in a module "
       "attribute"},
      {"unknown object value", makeDoc(rootWithAttr(R"({"nodes": "x"})")),
       "bad.json: root.attrs.bad: expected a value; an object value must be"},
      {"bad non-finite", makeDoc(rootWithAttr(R"({"float": "NaN"})")),
       "bad.json: root.attrs.bad.float: expected \"nan\", \"inf\" or "
       "\"-inf\", got 'NaN'"},
      {"lists too deep", makeDoc(rootWithAttr(nested("[", "1", "]", 200))),
       "lists nest deeper than 128 levels"},
      {"node in meta",
       makeDoc(ValidRoot, graphWithNode(R"("op": "call_function",
         "target": "relu", "args": [], "meta": {"k": {"node": "x"}})")),
       "bad.json: graph[1].meta.k: node annotations cannot refer to nodes"},
      {"node in a meta list",
       makeDoc(ValidRoot, graphWithNode(R"("op": "call_function",
         "target": "relu", "args": [], "meta": {"k": [1, [{"node": "n"}]]})")),
       "bad.json: graph[1].meta.k[1][0]: node annotations cannot refer to "
       "nodes"},
      {"bad meta value",
       makeDoc(ValidRoot, graphWithNode(R"("op": "call_function",
         "target": "relu", "args": [], "meta": {"k": {"float": "NaN"}})")),
       "bad.json: graph[1].meta.k.float: expected \"nan\", \"inf\" or "
       "\"-inf\", got 'NaN'"},
  };
}

std::vector<BadCase> badDocuments() {
  std::vector<BadCase> All;
  for (auto Group : {badEnvelopes, badNodes, badTensors, badValues})
    for (BadCase &C : Group())
      All.push_back(std::move(C));
  return All;
}

} // namespace

TEST_CASE("the documents the malformed cases start from are valid",
          "[ir][json]") {
  std::unique_ptr<GraphModule> GM =
      unwrap(deserializeFromJson(makeDoc(), "good.json"));
  CHECK(GM->graph().size() == 3);
  CHECK(GM->lookupModule("conv1"));
  REQUIRE(GM->graph().lookup("conv1"));
  CHECK(GM->graph().lookup("conv1")->kwargs().size() == 1);
  // Each helper, filled with valid content, must load too, so that the bad
  // cases fail only for the reason they were built for.
  std::string T = R"({"name": "w", "role": "param", "dtype": "f32",
                      "shape": [2, 3]})";
  std::string Call = R"("op": "call_function", "target": "relu", )";
  std::vector<std::string> Docs = {
      makeDoc(rootWithTensor(T)),
      makeDoc(rootWithAttr("[1.5, null]")),
      makeDoc(ValidRoot, graphWithNode(Call + R"("args": [{"node": "x"}])")),
      makeDoc(ValidRoot,
              graphWithNode(Call + R"("args": [], "meta": {"k": [1, "s"]})")),
      makeDoc(deepModules(100)),
      makeDoc(rootWithAttr(nested("[", "1", "]", 100)))};
  for (const std::string &D : Docs)
    CHECK(unwrap(deserializeFromJson(D, "good.json")) != nullptr);
}

TEST_CASE("an empty meta object loads and is omitted on save", "[ir][json]") {
  std::string Call = R"("op": "call_function", "target": "relu", )";
  std::unique_ptr<GraphModule> GM = unwrap(deserializeFromJson(
      makeDoc(ValidRoot,
              graphWithNode(Call + R"("args": [{"node": "x"}], "meta": {})")),
      "empty.json"));
  REQUIRE(GM->graph().lookup("n"));
  CHECK(GM->graph().lookup("n")->meta().empty());
  CHECK_FALSE(StringRef(serializeToJson(*GM)).contains("\"meta\""));
}

TEST_CASE("malformed json files are rejected with a located reason",
          "[ir][json]") {
  for (const BadCase &C : badDocuments()) {
    INFO("case: " << C.What);
    std::string Msg = errorOf(deserializeFromJson(C.Doc, "bad.json"));
    INFO("message: " << Msg);
    REQUIRE(Msg != "");
    CHECK(StringRef(Msg).startswith("bad.json: "));
    CHECK(Msg.find(C.Expected) != std::string::npos);
  }
}

TEST_CASE("saving into a missing directory fails and leaves nothing behind",
          "[ir][json]") {
  TempDir Dir;
  std::unique_ptr<GraphModule> GM = buildRichModule();
  std::string Path = Dir.file("missing/model.json");
  for (GraphFileFormat F : {GraphFileFormat::Json, GraphFileFormat::Text}) {
    std::string Msg = errorToString(saveGraphModule(*GM, Path, F));
    REQUIRE(Msg != "");
    CHECK(Msg.find("model.json") != std::string::npos);
    CHECK_FALSE(sys::fs::exists(Path));
    CHECK(Dir.numEntries() == 0);
  }
}

TEST_CASE("graph modules save and load through files", "[ir][json]") {
  TempDir Dir;
  std::unique_ptr<GraphModule> GM = buildRichModule();
  std::string Json = serializeToJson(*GM);

  std::string JsonPath = Dir.file("model.json");
  REQUIRE_FALSE(errorToString(saveGraphModule(*GM, JsonPath)).size());
  CHECK(unwrap(readFile(JsonPath)) == Json);
  CHECK(serializeToJson(*unwrap(loadGraphModule(JsonPath))) == Json);

  // Leading whitespace does not hide the JSON.
  std::string Spaced = Dir.file("spaced.json");
  REQUIRE_FALSE(
      errorToString(writeFileAtomically(Spaced, "\n  " + Json)).size());
  CHECK(serializeToJson(*unwrap(loadGraphModule(Spaced))) == Json);

  std::string TextPath = Dir.file("model.qir");
  REQUIRE_FALSE(
      errorToString(saveGraphModule(*GM, TextPath, GraphFileFormat::Text))
          .size());
  CHECK(unwrap(readFile(TextPath)).rfind("graph_module", 0) == 0);
  CHECK(serializeToJson(*unwrap(loadGraphModule(TextPath))) == Json);

  std::string Missing = errorOf(loadGraphModule(Dir.file("absent.json")));
  CHECK(Missing.find("absent.json") != std::string::npos);
}

TEST_CASE("text files are verified when loaded", "[ir][json]") {
  TempDir Dir;
  std::string Path = Dir.file("bad.qir");
  REQUIRE_FALSE(errorToString(writeFileAtomically(Path, R"(graph_module Net {
  graph {
    %a = get_attr[nope]
    %output = output[output](%a)
  }
}
)"))
                    .size());
  std::string Msg = errorOf(loadGraphModule(Path));
  CHECK(Msg.find("bad.qir: ") != std::string::npos);
  CHECK(Msg.find("node 'a'") != std::string::npos);
}

TEST_CASE("corrupted json never crashes the reader", "[ir][json]") {
  std::string Valid = serializeToJson(*buildRichModule());
  // Every truncation that drops more than the final newline loses the
  // closing brace, so it must fail.
  for (size_t Len = 0; Len + 1 < Valid.size(); Len += 97) {
    std::string Msg =
        errorOf(deserializeFromJson(StringRef(Valid).take_front(Len), "cut"));
    CHECK(StringRef(Msg).startswith("cut: "));
  }
  size_t Failed = 0, Loaded = 0;
  const unsigned char Flips[] = {0x01, 0x20, 0x80};
  const char Replacements[] = {'"', '{', ']', '0', '-', ' ', '\\'};
  for (size_t Pos = 0; Pos < Valid.size(); Pos += 5) {
    std::vector<std::string> Mutants;
    auto Mutate = [&](char NewByte) {
      Mutants.push_back(Valid);
      Mutants.back()[Pos] = NewByte;
    };
    for (unsigned char F : Flips)
      Mutate(static_cast<char>(Valid[Pos] ^ F));
    for (char C : Replacements)
      if (Valid[Pos] != C)
        Mutate(C);
    for (const std::string &M : Mutants) {
      Expected<std::unique_ptr<GraphModule>> R =
          deserializeFromJson(M, "flip.json");
      if (!R) {
        ++Failed;
        std::string Msg = toString(R.takeError());
        if (!StringRef(Msg).startswith("flip.json: "))
          FAIL("unprefixed error at byte " << Pos << ": " << Msg);
        continue;
      }
      // Whatever loads must verify and be a fixed point of save -> load.
      ++Loaded;
      REQUIRE(verifierMessage(**R) == "");
      std::string Again = serializeToJson(**R);
      CHECK(serializeToJson(*unwrap(deserializeFromJson(Again, "again"))) ==
            Again);
    }
  }
  CHECK(Failed > 0);
  CHECK(Loaded > 0);
}

TEST_CASE("very deep json nesting is rejected without exhausting the stack",
          "[ir][json]") {
  const int Depth = 100000;
  std::string Lists = errorOf(deserializeFromJson(
      makeDoc(rootWithAttr(nested("[", "", "]", Depth))), "deep.json"));
  CHECK(Lists.find("deep.json: root.attrs.bad") != std::string::npos);
  CHECK(Lists.find("lists nest deeper than 128 levels") != std::string::npos);
  std::string Objects = errorOf(deserializeFromJson(
      makeDoc(rootWithAttr(nested(R"({"a": )", "1", "}", Depth))),
      "deep.json"));
  CHECK(Objects.find("deep.json: root.attrs.bad: expected a value") !=
        std::string::npos);
  std::string Unclosed =
      errorOf(deserializeFromJson(nested("[", "", "", Depth), "deep.json"));
  CHECK(Unclosed.find("deep.json: not valid JSON") != std::string::npos);
}
