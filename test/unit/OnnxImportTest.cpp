//===- OnnxImportTest.cpp - Tests of the ONNX importer --------------------===//
//
// Names as torch.onnx.export writes them, bad models with their exact
// messages, external data, the symbolic batch, and the seed Net imported
// from ONNX quantizing exactly like the traced C++ Net.
//
//===----------------------------------------------------------------------===//

#include "TestUtil.h"

#include "qfx/IR/GraphModule.h"
#include "qfx/IR/Verifier.h"
#include "qfx/Models/Zoo.h"
#include "qfx/Onnx/Import.h"
#include "qfx/Pipeline/QuantizeFx.h"
#include "qfx/Pipeline/QuantizedModule.h"
#include "qfx/Quant/QConfigMapping.h"
#include "qfx/Runtime/Interpreter.h"
#include "qfx/Runtime/Kernels.h"
#include "qfx/Support/Error.h"
#include "qfx/Support/Npy.h"
#include "qfx/Trace/SymbolicTrace.h"
#include "qfx/Transforms/Pass.h"

#include "onnx/defs/parser.h"
#include "onnx/onnx_pb.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

using namespace qfx;
using namespace qfx::testutil;

namespace {

void requireOk(llvm::Error E) {
  if (E)
    FAIL(errorToString(std::move(E)));
}

/// A model from ONNX's textual syntax.
onnx::ModelProto parseModel(const std::string &Text) {
  onnx::ModelProto M;
  onnx::OnnxParser Parser(Text.c_str());
  auto Status = Parser.Parse(M);
  INFO(Status.ErrorMessage());
  REQUIRE(Status.IsOK());
  return M;
}

std::string bytesOf(const onnx::ModelProto &M) {
  std::string B;
  REQUIRE(M.SerializeToString(&B));
  return B;
}

/// Renames value \p From to \p To everywhere (the text syntax has no dots
/// or colons in names, torch's names have both).
void renameValue(onnx::ModelProto &M, const std::string &From,
                 const std::string &To) {
  onnx::GraphProto &G = *M.mutable_graph();
  for (auto &T : *G.mutable_initializer())
    if (T.name() == From)
      T.set_name(To);
  for (auto &N : *G.mutable_node()) {
    for (auto &In : *N.mutable_input())
      if (In == From)
        In = To;
    for (auto &Out : *N.mutable_output())
      if (Out == From)
        Out = To;
  }
}

/// Gives the nodes torch-style names, in order.
void nameNodes(onnx::ModelProto &M, const std::vector<std::string> &Names) {
  for (size_t I = 0; I < Names.size(); ++I)
    M.mutable_graph()->mutable_node(I)->set_name(Names[I]);
}

const Node *findNode(const GraphModule &GM, llvm::StringRef Name) {
  return GM.graph().lookup(Name);
}

void addInitializer(onnx::GraphProto &G, const std::string &Name,
                    const Tensor &T) {
  onnx::TensorProto *P = G.add_initializer();
  P->set_name(Name);
  P->set_data_type(onnx::TensorProto::FLOAT);
  for (int64_t D : T.shape())
    P->add_dims(D);
  P->set_raw_data(
      std::string(static_cast<const char *>(T.rawData()), T.byteSize()));
}

const char *BlockText = R"(<
  ir_version: 8,
  opset_import: ["" : 13]
>
g (float[N,2,4,4] x) => (float[N,3] y)
{
  c = Conv <pads = [1, 1, 1, 1]> (x, w1, b1)
  r = Relu (c)
  a = Add (r, x)
  r2 = Relu (a)
  f = Flatten (r2)
  y = Gemm <transB = 1> (f, fw, fb)
}
)";

/// BlockText with torch.onnx.export's names (BN folded into the conv, so
/// its weight is "onnx::Conv_193").
onnx::ModelProto namedBlock() {
  onnx::ModelProto M = parseModel(BlockText);
  onnx::GraphProto &G = *M.mutable_graph();
  for (auto [Name, Dims] :
       std::vector<std::pair<const char *, std::vector<int64_t>>>{
           {"w1", {2, 2, 3, 3}}, {"b1", {2}}, {"fw", {3, 32}}, {"fb", {3}}}) {
    Tensor T(DType::F32, Dims);
    for (int64_t I = 0; I < T.numElements(); ++I)
      T.data<float>()[I] = 0.25f;
    addInitializer(G, Name, T);
  }
  renameValue(M, "w1", "onnx::Conv_193");
  renameValue(M, "b1", "onnx::Conv_194");
  renameValue(M, "fw", "fc.weight");
  renameValue(M, "fb", "fc.bias");
  nameNodes(M, {"/layer1/layer1.0/conv1/Conv", "/layer1/layer1.0/relu/Relu",
                "/layer1/layer1.0/Add", "/layer1/layer1.0/relu_1/Relu",
                "/Flatten", "/fc/Gemm"});
  return M;
}

} // namespace

TEST_CASE("onnx import: torch.onnx.export's node names give the module "
          "paths, node names and scopes the tracer would") {
  auto GM = take(importOnnxBuffer(bytesOf(namedBlock()), "m.onnx"));
  requireOk(verify(*GM));
  // The node name wins over the folded weight's "onnx::Conv_193".
  REQUIRE(GM->lookupModule("layer1.0.conv1"));
  CHECK(GM->lookupModule("layer1.0.conv1")->kind() == "Conv2d");
  REQUIRE(GM->lookupModule("fc"));
  CHECK(GM->lookupModule("fc")->kind() == "Linear");
  struct Expect {
    const char *Name, *Target, *Scope, *OnnxName;
  };
  for (const Expect &E :
       {Expect{"layer1_0_conv1", "layer1.0.conv1", "layer1.0",
               "/layer1/layer1.0/conv1/Conv"},
        Expect{"layer1_0_relu", "relu", "layer1.0.relu",
               "/layer1/layer1.0/relu/Relu"},
        // An op of a container's forward is named after the op, as traced.
        Expect{"add", "add", "layer1.0", "/layer1/layer1.0/Add"},
        // The second call of module relu is "relu_1" in ONNX; its scope is
        // the module, so module_name rules for "layer1.0.relu" apply.
        Expect{"layer1_0_relu_1", "relu", "layer1.0.relu",
               "/layer1/layer1.0/relu_1/Relu"},
        Expect{"flatten", "flatten", "", "/Flatten"},
        Expect{"fc", "fc", "", "/fc/Gemm"}}) {
    INFO(E.Name);
    const Node *N = findNode(*GM, E.Name);
    REQUIRE(N);
    CHECK(N->target() == E.Target);
    CHECK(N->scope() == E.Scope);
    REQUIRE(N->meta("onnx_name"));
    CHECK(N->meta("onnx_name")->getString() == E.OnnxName);
  }
}

TEST_CASE("onnx import: a PyTorch user's module_name and module_name_regex "
          "rules apply to the imported graph unchanged") {
  auto GM = take(importOnnxBuffer(bytesOf(namedBlock()), "m.onnx"));
  auto X86 = cantFail(QConfig::preset("x86"));
  auto Mapping = std::make_shared<QConfigMapping>();
  Mapping->setGlobal(X86)
      .setModuleNameRegex("layer1\\.0\\.conv.*", std::nullopt)
      .setModuleName("layer1.0.relu", std::nullopt);
  PassContext Ctx;
  Ctx.QConfigs = Mapping;
  const PassInfo *P = lookupPass("qconfig-propagation");
  REQUIRE(P);
  requireOk(P->Create()->run(*GM, Ctx));
  auto Rule = [&](const char *Name) {
    const Node *N = GM->graph().lookup(Name);
    REQUIRE(N);
    REQUIRE(N->meta("qconfig_rule"));
    return N->meta("qconfig_rule")->getString();
  };
  CHECK(Rule("layer1_0_conv1") == "module_name_regex:layer1\\.0\\.conv.*");
  // Both calls of module layer1.0.relu.
  CHECK(Rule("layer1_0_relu") == "module_name:layer1.0.relu");
  CHECK(Rule("layer1_0_relu_1") == "module_name:layer1.0.relu");
  CHECK(Rule("add") == "global");
  CHECK(Rule("fc") == "global");
}

TEST_CASE("onnx import: module paths come from the weight's name, else the "
          "op, when the node has no name, and are made unique") {
  onnx::ModelProto M = namedBlock();
  nameNodes(M, {"", "", "", "", "", ""});
  renameValue(M, "onnx::Conv_193", "stem.weight");
  auto GM = take(importOnnxBuffer(bytesOf(M), "m.onnx"));
  CHECK(GM->lookupModule("stem"));
  CHECK(GM->lookupModule("fc"));
  // Two convs whose weights have no module name: "conv", "conv_1".
  onnx::ModelProto Two = parseModel(R"(<
    ir_version: 8, opset_import: ["" : 13]>
    g (float[1,1,4,4] x) => (float[1,1,4,4] y)
    <float[1,1,1,1] w = {2}>
    { a = Conv (x, w)
      y = Conv (a, w) })");
  auto GM2 = take(importOnnxBuffer(bytesOf(Two), "m.onnx"));
  CHECK(GM2->lookupModule("conv"));
  CHECK(GM2->lookupModule("conv_1"));
}

TEST_CASE("onnx import: bad models fail with one error naming the file and, "
          "when one is at fault, the node") {
  using Mutate = std::function<std::string()>;
  auto Edit = [](std::function<void(onnx::ModelProto &)> F) -> Mutate {
    return [F] {
      onnx::ModelProto M = namedBlock();
      F(M);
      return bytesOf(M);
    };
  };
  struct Case {
    const char *What;
    Mutate Bytes;
    const char *Message;
  };
  std::vector<Case> Cases = {
      {"an empty file", [] { return std::string(); },
       "m.onnx: opset 0 of domain 'ai.onnx' is not supported (opsets 7 to "
       "17 are)"},
      {"a truncated file",
       [] {
         std::string B = bytesOf(namedBlock());
         return B.substr(0, B.size() - 7);
       },
       "m.onnx: not a valid ONNX model (the protobuf does not parse; "
       "truncated or not ONNX)"},
      {"unsupported ops", Edit([](onnx::ModelProto &M) {
         M.mutable_graph()->mutable_node(1)->set_op_type("LSTM");
         M.mutable_graph()->mutable_node(1)->set_name("/rnn/LSTM");
         M.mutable_graph()->mutable_node(3)->set_op_type("LSTM");
         M.mutable_graph()->mutable_node(3)->set_name("/rnn2/LSTM");
         M.mutable_graph()->mutable_node(4)->set_op_type("Einsum");
         M.mutable_graph()->mutable_node(4)->set_name("/attn/Einsum");
       }),
       "m.onnx: unsupported ops: LSTM x2 ('/rnn/LSTM', '/rnn2/LSTM'), Einsum "
       "x1 ('/attn/Einsum')"},
      {"an initializer of the wrong size", Edit([](onnx::ModelProto &M) {
         auto *T = M.mutable_graph()->mutable_initializer(2);
         T->clear_float_data();
         T->set_raw_data(std::string(20, '\0'));
       }),
       "m.onnx: initializer 'fc.weight': has 20 bytes of data, dims [3,32] "
       "need 384"},
      {"an int8 initializer with a value out of range",
       Edit([](onnx::ModelProto &M) {
         auto *T = M.mutable_graph()->add_initializer();
         T->set_name("q");
         T->set_data_type(onnx::TensorProto::INT8);
         T->add_dims(2);
         T->add_int32_data(-128);
         T->add_int32_data(300);
       }),
       "m.onnx: initializer 'q': int32_data value 300 is out of range for s8"},
      {"a cycle", Edit([](onnx::ModelProto &M) {
         *M.mutable_graph()->mutable_node(1)->mutable_input(0) = "a";
       }),
       "m.onnx: node 1 '/layer1/layer1.0/relu/Relu' (Relu, opset 13): input "
       "'a' is not defined by an earlier node, an initializer or a graph "
       "input"},
      {"a dangling input", Edit([](onnx::ModelProto &M) {
         *M.mutable_graph()->mutable_node(2)->mutable_input(1) = "nowhere";
       }),
       "m.onnx: node 2 '/layer1/layer1.0/Add' (Add, opset 13): input "
       "'nowhere' is not defined by an earlier node, an initializer or a "
       "graph input"},
      {"an unsupported attribute value", Edit([](onnx::ModelProto &M) {
         auto *A = M.mutable_graph()->mutable_node(0)->add_attribute();
         A->set_name("group");
         A->set_type(onnx::AttributeProto::INT);
         A->set_i(3);
       }),
       "m.onnx: node 0 '/layer1/layer1.0/conv1/Conv' (Conv, opset 13): group "
       "3 does not divide 2 output channels"},
      {"an attribute of the wrong type", Edit([](onnx::ModelProto &M) {
         auto *A = M.mutable_graph()->mutable_node(4)->add_attribute();
         A->set_name("axis");
         A->set_type(onnx::AttributeProto::FLOAT);
         A->set_f(1);
       }),
       "m.onnx: node 4 '/Flatten' (Flatten, opset 13): invalid node: "
       "Mismatched attribute type in '/Flatten : axis'"},
      {"external data without a model folder", Edit([](onnx::ModelProto &M) {
         auto *T = M.mutable_graph()->mutable_initializer(3);
         T->clear_raw_data();
         T->set_data_location(onnx::TensorProto::EXTERNAL);
         auto *E = T->add_external_data();
         E->set_key("location");
         E->set_value("fc.bin");
       }),
       "m.onnx: initializer 'fc.bias': external data is not allowed without "
       "a model folder"},
      {"a second symbolic dim", Edit([](onnx::ModelProto &M) {
         M.mutable_graph()
             ->mutable_input(0)
             ->mutable_type()
             ->mutable_tensor_type()
             ->mutable_shape()
             ->mutable_dim(2)
             ->set_dim_param("H");
       }),
       "m.onnx: input 'x': dimension 2 is symbolic ('H'); only the batch "
       "dimension (0) may be"},
  };
  for (const Case &C : Cases) {
    INFO(C.What);
    CHECK(errorOf(importOnnxBuffer(C.Bytes(), "m.onnx")) == C.Message);
  }
}

TEST_CASE("onnx import: external data is read relative to the model's "
          "folder and may not leave it") {
  TempDir Dir;
  onnx::ModelProto M = namedBlock();
  auto *T = M.mutable_graph()->mutable_initializer(3); // fc.bias, [3]
  T->clear_raw_data();
  T->set_data_location(onnx::TensorProto::EXTERNAL);
  auto *E = T->add_external_data();
  E->set_key("location");
  E->set_value("fc.bin");
  float Bias[3] = {1.5f, -2.0f, 0.25f};
  {
    std::ofstream Out(Dir.file("fc.bin"), std::ios::binary);
    Out.write(reinterpret_cast<const char *>(Bias), sizeof(Bias));
  }
  {
    std::ofstream Out(Dir.file("m.onnx"), std::ios::binary);
    Out << bytesOf(M);
  }
  auto GM = take(importOnnx(Dir.file("m.onnx")));
  const Tensor *B = GM->lookupTensor("fc.bias");
  REQUIRE(B);
  CHECK(B->getAsDouble(0) == 1.5);
  CHECK(B->getAsDouble(1) == -2.0);

  struct Case {
    const char *Location, *Offset, *Message;
  };
  for (const Case &C :
       {Case{"../fc.bin", "0",
             "external data location '../fc.bin' leaves "
             "the model's folder"},
        Case{"/etc/passwd", "0",
             "external data location '/etc/passwd' leaves the model's folder"},
        Case{"missing.bin", "0",
             "external data file 'missing.bin' cannot be found"},
        Case{"fc.bin", "8",
             "external data file 'fc.bin' is shorter than 20 "
             "bytes"},
        Case{"fc.bin", "-1",
             "external data offset '-1' is not a "
             "non-negative integer"}}) {
    INFO(C.Location);
    T->clear_external_data();
    auto *L = T->add_external_data();
    L->set_key("location");
    L->set_value(C.Location);
    auto *O = T->add_external_data();
    O->set_key("offset");
    O->set_value(C.Offset);
    {
      std::ofstream Out(Dir.file("m.onnx"), std::ios::binary);
      Out << bytesOf(M);
    }
    CHECK(errorOf(importOnnx(Dir.file("m.onnx"))) ==
          Dir.file("m.onnx") + ": initializer 'fc.bias': " + C.Message);
  }
}

TEST_CASE("onnx import: looksLikeOnnx tells a model from JSON and text IR") {
  CHECK(looksLikeOnnx(bytesOf(namedBlock())));
  CHECK_FALSE(looksLikeOnnx("{\"graph\": []}"));
  CHECK_FALSE(looksLikeOnnx("graph_module M {"));
  CHECK_FALSE(looksLikeOnnx(""));
}

//===----------------------------------------------------------------------===//
// The seed Net, imported and traced
//===----------------------------------------------------------------------===//

namespace {

onnx::NodeProto &addNode(onnx::GraphProto &G, const std::string &Op,
                         const std::string &Name,
                         std::vector<std::string> Inputs,
                         const std::string &Output) {
  onnx::NodeProto &N = *G.add_node();
  N.set_op_type(Op);
  N.set_name(Name);
  for (const std::string &In : Inputs)
    N.add_input(In);
  N.add_output(Output);
  return N;
}

void addInts(onnx::NodeProto &N, const std::string &Name,
             std::vector<int64_t> V) {
  auto *A = N.add_attribute();
  A->set_name(Name);
  A->set_type(onnx::AttributeProto::INTS);
  for (int64_t X : V)
    A->add_ints(X);
}

void setDims(onnx::ValueInfoProto &V, std::vector<std::string> Dims) {
  auto *T = V.mutable_type()->mutable_tensor_type();
  T->set_elem_type(onnx::TensorProto::FLOAT);
  for (const std::string &D : Dims) {
    auto *Dim = T->mutable_shape()->add_dim();
    if (D == "N")
      Dim->set_dim_param("N");
    else
      Dim->set_dim_value(std::stoll(D));
  }
}

/// The seed Net as torch.onnx.export (opset 13, dynamic batch) writes it.
std::string netOnnx(models::Net &Net) {
  onnx::ModelProto M;
  M.set_ir_version(8);
  M.add_opset_import()->set_version(13);
  onnx::GraphProto &G = *M.mutable_graph();
  G.set_name("main_graph");
  for (const auto &[Name, T] : Net.state_dict())
    addInitializer(G, Name, T);
  setDims(*G.add_input(), {"N", "1", "28", "28"});
  G.mutable_input(0)->set_name("x");
  setDims(*G.add_output(), {"N", "10"});
  G.mutable_output(0)->set_name("y");
  addNode(G, "Conv", "/conv1/Conv", {"x", "conv1.weight", "conv1.bias"}, "c1");
  addNode(G, "Relu", "/Relu", {"c1"}, "r1");
  onnx::NodeProto &P1 = addNode(G, "MaxPool", "/MaxPool", {"r1"}, "p1");
  addInts(P1, "kernel_shape", {2, 2});
  addInts(P1, "strides", {2, 2});
  addNode(G, "Conv", "/conv2/Conv", {"p1", "conv2.weight", "conv2.bias"}, "c2");
  addNode(G, "Relu", "/Relu_1", {"c2"}, "r2");
  onnx::NodeProto &P2 = addNode(G, "MaxPool", "/MaxPool_1", {"r2"}, "p2");
  addInts(P2, "kernel_shape", {2, 2});
  addInts(P2, "strides", {2, 2});
  onnx::NodeProto &C = addNode(G, "Constant", "/Constant", {}, "shape");
  auto *A = C.add_attribute();
  A->set_name("value");
  A->set_type(onnx::AttributeProto::TENSOR);
  A->mutable_t()->set_data_type(onnx::TensorProto::INT64);
  A->mutable_t()->add_dims(2);
  A->mutable_t()->add_int64_data(-1);
  A->mutable_t()->add_int64_data(1000);
  addNode(G, "Reshape", "/Reshape", {"p2", "shape"}, "flat");
  onnx::NodeProto &Fc =
      addNode(G, "Gemm", "/fc/Gemm", {"flat", "fc.weight", "fc.bias"}, "y");
  auto *T = Fc.add_attribute();
  T->set_name("transB");
  T->set_type(onnx::AttributeProto::INT);
  T->set_i(1);
  return bytesOf(M);
}

Tensor randomInput(int64_t N, unsigned Seed) {
  std::mt19937 Gen(Seed);
  std::uniform_real_distribution<float> U(-1.0f, 1.0f);
  Tensor X(DType::F32, {N, 1, 28, 28});
  for (int64_t I = 0; I < X.numElements(); ++I)
    X.data<float>()[I] = U(Gen);
  return X;
}

/// prepare (x86 qconfig), calibrate on \p Calib, convert to the reference
/// quantized graph.
std::unique_ptr<GraphModule> quantize(const GraphModule &Float,
                                      const Tensor &Calib) {
  std::unique_ptr<GraphModule> GM = Float.clone();
  auto Mapping = QConfigMapping().setGlobal(cantFail(QConfig::preset("x86")));
  requireOk(prepareGraph(*GM, Mapping, /*QAT=*/false));
  take(runObserved(*GM, {Calib}));
  return take(convert_to_reference_fx(*GM));
}

} // namespace

TEST_CASE("onnx import: the seed Net imported from ONNX computes and "
          "quantizes exactly like the traced C++ Net, at any batch size") {
  models::Net Net;
  auto Traced = take(symbolicTrace(
      Net, {InputSpec::symbolic("x", DType::F32, {1, 1, 28, 28})}));
  auto Imported = take(importOnnxBuffer(netOnnx(Net), "net.onnx"));
  requireOk(verify(*Imported));

  // Float: the same kernels on the same weights.
  for (int64_t N : {1, 3}) {
    INFO("batch " << N);
    Tensor X = randomInput(N, 7);
    Tensor A = take(interpret(*Traced, {X})),
           B = take(interpret(*Imported, {X}));
    REQUIRE(A.shape() == B.shape());
    for (int64_t I = 0; I < A.numElements(); ++I)
      REQUIRE(std::fabs(A.getAsDouble(I) - B.getAsDouble(I)) <= 1e-5);
  }

  // Int8: the same observers see the same values, so the reference
  // quantized graphs agree bit for bit.
  Tensor Calib = randomInput(16, 11);
  auto QT = quantize(*Traced, Calib), QI = quantize(*Imported, Calib);
  for (int64_t N : {1, 5}) {
    INFO("batch " << N);
    Tensor X = randomInput(N, 13);
    Tensor A = take(interpret(*QT, {X})), B = take(interpret(*QI, {X}));
    REQUIRE(A.identical(B));
  }

  // convert_fx compiles the imported graph for other batch sizes: the
  // reshape target kept -1 for the symbolic batch.
  auto Observed = Imported->clone();
  auto Mapping = QConfigMapping().setGlobal(cantFail(QConfig::preset("x86")));
  requireOk(prepareGraph(*Observed, Mapping, false));
  take(runObserved(*Observed, {Calib}));
  QuantizedModule QM = take(convert_fx(*Observed));
  for (int64_t N : {1, 4}) {
    INFO("batch " << N);
    Tensor X = randomInput(N, 17);
    std::vector<Tensor> Out = take(QM.run({X}));
    REQUIRE(Out.size() == 1);
    CHECK(Out[0].shape() == llvm::ArrayRef<int64_t>({N, 10}));
  }
}

//===----------------------------------------------------------------------===//
// torchvision models exported by PyTorch (local, see docs/onnx.md)
//===----------------------------------------------------------------------===//

TEST_CASE("onnx import: torchvision models exported by PyTorch compute "
          "PyTorch's outputs at batch 1 and 2 and quantize",
          "[.][onnx-models]") {
  const char *Dir = std::getenv("QFX_ONNX_MODELS");
  if (!Dir) {
    WARN("QFX_ONNX_MODELS is not set: run "
         "test/data/onnx/make_torchvision_onnx.py DIR first");
    return;
  }
  auto Path = [&](const std::string &Name) {
    return std::string(Dir) + "/" + Name;
  };
  for (const char *Model : {"resnet18", "mobilenet_v2", "mobilenet_v3_small"})
    for (int Opset : {13, 17}) {
      INFO(Model << " opset " << Opset);
      auto GM = take(importOnnx(
          Path(std::string(Model) + "_" + std::to_string(Opset) + ".onnx")));
      Tensor X = take(readNpy(Path(std::string(Model) + "_in.npy")));
      Tensor Want = take(readNpy(Path(std::string(Model) + "_out.npy")));
      Tensor Got = take(interpret(*GM, {X}));
      REQUIRE(Got.shape() == Want.shape());
      double MaxDiff = 0;
      for (int64_t I = 0; I < Got.numElements(); ++I)
        MaxDiff = std::max(MaxDiff,
                           std::fabs(Got.getAsDouble(I) - Want.getAsDouble(I)));
      CHECK(MaxDiff < 1e-4);
      Tensor One = take(interpret(*GM, {sliceRows(X, 0, 1)}));
      for (int64_t I = 0; I < One.numElements(); ++I)
        REQUIRE(std::fabs(One.getAsDouble(I) - Want.getAsDouble(I)) < 1e-4);
      // The pipeline takes it unchanged: prepare, calibrate, convert_fx and
      // a compiled run at batch 2.
      auto Mapping =
          QConfigMapping().setGlobal(cantFail(QConfig::preset("x86")));
      requireOk(prepareGraph(*GM, Mapping, false));
      take(runObserved(*GM, {X}));
      QuantizedModule QM = take(convert_fx(*GM));
      std::vector<Tensor> Q = take(QM.run({X}));
      REQUIRE(Q[0].shape() == Want.shape());
    }
}

TEST_CASE("onnx import: torchvision models imported from ONNX quantize like "
          "the C++ zoo models with the same weights",
          "[.][onnx-models]") {
  const char *Dir = std::getenv("QFX_ONNX_MODELS");
  if (!Dir) {
    WARN("QFX_ONNX_MODELS is not set");
    return;
  }
  std::string D = std::string(Dir) + "/";
  for (const models::ZooEntry &E : models::zoo()) {
    if (E.Name == "net")
      continue;
    INFO(E.Name);
    std::shared_ptr<nn::Module> Model = E.Create();
    requireOk(Model->load_safetensors(D + E.Name + ".safetensors"));
    Model->eval();
    auto Traced = take(symbolicTrace(
        *Model, {InputSpec::symbolic("x", DType::F32, {1, 3, 224, 224})}));
    auto Imported = take(importOnnx(D + E.Name + "_13.onnx"));
    Tensor X = take(readNpy(D + E.Name + "_in.npy"));
    // The exporter folded BatchNorm into the convs; fuse folds it for the
    // traced model: the float weights differ by rounding only, so the
    // observers, and the int8 outputs, agree up to a step or two.
    Tensor A = take(interpret(*quantize(*Traced, X), {X}));
    Tensor B = take(interpret(*quantize(*Imported, X), {X}));
    REQUIRE(A.shape() == B.shape());
    double MaxDiff = 0, Range = 0;
    for (int64_t I = 0; I < A.numElements(); ++I) {
      MaxDiff =
          std::max(MaxDiff, std::fabs(A.getAsDouble(I) - B.getAsDouble(I)));
      Range = std::max(Range, std::fabs(A.getAsDouble(I)));
    }
    WARN(E.Name << ": int8 outputs differ by at most " << MaxDiff
                << " (largest output " << Range << ")");
    int64_t C = A.dim(1);
    for (int64_t R = 0; R < A.dim(0); ++R) {
      int64_t TA = 0, TB = 0;
      for (int64_t J = 1; J < C; ++J) {
        if (A.getAsDouble(R * C + J) > A.getAsDouble(R * C + TA))
          TA = J;
        if (B.getAsDouble(R * C + J) > B.getAsDouble(R * C + TB))
          TB = J;
      }
      CHECK(TA == TB);
    }
  }
}

//===----------------------------------------------------------------------===//
// PyTorch's own exports of the trained seed Net
// (test/data/make_onnx_goldens.py)
//===----------------------------------------------------------------------===//

TEST_CASE("onnx import: PyTorch's exports of the trained Net compute "
          "PyTorch's outputs and quantize exactly like the C++ Net") {
  std::string Data = QFX_TEST_DATA_DIR "/onnx/";
  Tensor X = take(readNpy(Data + "net_input.npy"));
  Tensor Want = take(readNpy(Data + "net_output.npy"));

  // The C++ Net with the same weights, traced, quantized with the x86
  // qconfig and calibrated on the same images.
  models::Net Net;
  requireOk(Net.load_safetensors(QFX_TEST_DATA_DIR
                                 "/../../models/net_fashion.safetensors"));
  Net.eval();
  auto Traced = take(symbolicTrace(
      Net, {InputSpec::symbolic("input", DType::F32, {1, 1, 28, 28})}));
  auto QTraced = quantize(*Traced, X);
  Tensor Int8Traced = take(interpret(*QTraced, {X}));

  // reshape(-1, 1000), opset 13 and 17; view(x.size(0), -1) (a shape
  // subgraph folded to reshape(-1, 1000)); torch.flatten(x, 1).
  for (const char *File :
       {"net_opset13.onnx", "net_opset17.onnx", "net_view_opset13.onnx",
        "net_flatten_opset13.onnx"}) {
    INFO(File);
    auto GM = take(importOnnx(Data + File));
    // The graph the tracer records for the C++ Net: same ops, names,
    // targets and non-tensor arguments (the flatten variant apart).
    if (llvm::StringRef(File) != "net_flatten_opset13.onnx") {
      std::vector<const Node *> A, B;
      for (const Node &N : Traced->graph())
        A.push_back(&N);
      for (const Node &N : GM->graph())
        B.push_back(&N);
      REQUIRE(A.size() == B.size());
      for (size_t I = 0; I < A.size(); ++I) {
        INFO("node " << A[I]->name().str());
        CHECK(A[I]->op() == B[I]->op());
        CHECK(A[I]->name() == B[I]->name());
        if (A[I]->op() == OpCode::Placeholder)
          continue;
        CHECK(A[I]->target() == B[I]->target());
        REQUIRE(A[I]->numArgs() == B[I]->numArgs());
        for (size_t J = 1; J < A[I]->numArgs(); ++J)
          CHECK(A[I]->arg(J) == B[I]->arg(J));
      }
    }
    Tensor Got = take(interpret(*GM, {X}));
    REQUIRE(Got.shape() == Want.shape());
    for (int64_t I = 0; I < Got.numElements(); ++I)
      REQUIRE(std::fabs(Got.getAsDouble(I) - Want.getAsDouble(I)) <= 1e-5);

    // Same observers on the same values: the same int8 graph, bit for bit,
    // so the same top-1.
    auto Q = quantize(*GM, X);
    Tensor Int8 = take(interpret(*Q, {X}));
    REQUIRE(Int8.identical(Int8Traced));

    // convert_fx runs the compiled int8 module at batch 4 and batch 1 with
    // the reference graph's results.
    auto Observed = GM->clone();
    auto Mapping = QConfigMapping().setGlobal(cantFail(QConfig::preset("x86")));
    requireOk(prepareGraph(*Observed, Mapping, false));
    take(runObserved(*Observed, {X}));
    QuantizedModule QM = take(convert_fx(*Observed));
    for (int64_t N : {4, 1}) {
      Tensor In = sliceRows(X, 0, N);
      Tensor Compiled = take(QM.run({In}))[0];
      Tensor Ref = take(QM.runReference({In}))[0];
      REQUIRE(Compiled.shape() == Ref.shape());
      for (int64_t R = 0; R < N; ++R) {
        auto ArgMax = [&](const Tensor &T) {
          int64_t Best = 0;
          for (int64_t C = 1; C < 10; ++C)
            if (T.getAsDouble(R * 10 + C) > T.getAsDouble(R * 10 + Best))
              Best = C;
          return Best;
        };
        CHECK(ArgMax(Compiled) == ArgMax(Ref));
        CHECK(ArgMax(Ref) == ArgMax(Int8Traced));
      }
    }
  }
}

TEST_CASE("onnx import: x * Sigmoid(x), how torch.onnx.export writes SiLU, "
          "becomes one silu at opsets 13 and 17") {
  for (int Opset : {13, 17}) {
    INFO("opset " << Opset);
    std::string Text = "<\n  ir_version: 8,\n  opset_import: [\"\" : " +
                       std::to_string(Opset) + R"(]
>
g (float[1,3,4,4] x) => (float[1,3,4,4] y, float[1,3,4,4] z)
{
  s = Sigmoid (x)
  y = Mul (x, s)
  t = Sigmoid (y)
  u = Mul (t, y)
  z = Add (u, t)
}
)";
    auto GM = take(importOnnxBuffer(bytesOf(parseModel(Text)), "m.onnx"));
    std::vector<std::string> Targets;
    for (const Node &N : GM->graph())
      if (N.op() == OpCode::CallFunction)
        Targets.push_back(N.target().str());
    // The second gate has another reader (the add): it stays a sigmoid and
    // a mul, as PyTorch computes and quantizes them.
    CHECK(Targets == std::vector<std::string>{"silu", "sigmoid", "mul", "add"});
    Tensor X(DType::F32, {1, 3, 4, 4});
    for (int64_t I = 0; I < X.numElements(); ++I)
      X.data<float>()[I] = -6.0f + 0.25f * static_cast<float>(I);
    auto Got = Interpreter(*GM).run({X});
    if (!Got)
      FAIL(errorToString(Got.takeError()));
    Tensor Want = ref::silu(X);
    for (int64_t I = 0; I < X.numElements(); ++I)
      CHECK((*Got)[0].data<float>()[I] == Want.data<float>()[I]);
  }
}
