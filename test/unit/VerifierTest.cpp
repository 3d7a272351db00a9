//===- VerifierTest.cpp - One test per class of malformed GraphModule -----===//

#include "qfx/IR/Verifier.h"
#include "qfx/IR/GraphModule.h"
#include "qfx/Support/Error.h"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using namespace qfx;

namespace {

using Lines = std::vector<std::string>;

TensorType f32(Shape Dims) { return TensorType{DType::F32, Dims, {}}; }

/// A small Net: placeholder, get_attr, call_module, call_function,
/// call_method, call_module, call_function and output.
struct Net {
  GraphModule GM{"Net"};
  Node *X, *Offset, *Conv1, *Relu, *Reshape, *Fc, *Add, *Out;

  Net() {
    ModuleInfo &Conv = GM.addModule("conv1", "Conv2d");
    Conv.setAttr("kernel_size", Argument::ints({3, 3}));
    Conv.setTensor("weight", Tensor(DType::F32, {4, 1, 3, 3}));
    Conv.setTensor("bias", Tensor(DType::F32, {4}));
    ModuleInfo &Lin = GM.addModule("fc", "Linear");
    Lin.setTensor("weight", Tensor(DType::F32, {10, 16}));
    Lin.setTensor("bias", Tensor(DType::F32, {10}));
    GM.root().setTensor("offset", Tensor(DType::F32, {1, 10}));

    Graph &G = GM.graph();
    X = G.placeholder("x", f32({1, 1, 4, 4}));
    Offset = G.getAttr("offset", f32({1, 10}));
    Conv1 = G.callModule("conv1", {X});
    Conv1->setType(f32({1, 4, 2, 2}));
    Relu = G.callFunction("relu", {Conv1});
    Relu->setType(f32({1, 4, 2, 2}));
    Reshape = G.callMethod("reshape", {Relu, Argument::ints({-1, 16})});
    Reshape->setType(f32({1, 16}));
    Fc = G.callModule("fc", {Reshape});
    Fc->setType(f32({1, 10}));
    Add = G.callFunction("add", {Fc, Offset}, {{"alpha", Argument::real(1)}});
    Add->setType(f32({1, 10}));
    Out = G.output(Add);
  }

  Graph &graph() { return GM.graph(); }
  Lines errors() const { return collectVerifierErrors(GM); }
};

std::string verifyText(const GraphModule &GM) {
  llvm::Error E = verify(GM);
  return E ? errorToString(std::move(E)) : std::string();
}

} // namespace

TEST_CASE("a well-formed graph verifies", "[ir][verifier]") {
  Net N;
  CHECK(N.errors().empty());
  CHECK(verifyText(N.GM).empty());

  // Quantized types and tensors with valid parameters are fine too.
  Tensor Q(DType::S8, {10, 16});
  Q.setQuant(QuantParams::perChannel(std::vector<double>(10, 0.1),
                                     std::vector<int64_t>(10, 0), 0));
  N.GM.lookupModule("fc")->setTensor("weight", Q);
  N.Relu->setType(
      TensorType{DType::U8, {1, 4, 2, 2}, QuantParams::perTensor(0.05, 128)});
  N.Conv1->setType(TensorType{
      DType::S8,
      {1, 4, 2, 2},
      QuantParams::perChannel({0.1, 0.2, 0.3, 0.4}, {0, 0, 0, 0}, 1)});
  // A placeholder may carry its default value.
  N.X->setArgs({Argument::none()});
  CHECK(N.errors().empty());
  // An empty module with only an output is well-formed.
  GraphModule Empty;
  Empty.graph().output(Argument::none());
  CHECK(collectVerifierErrors(Empty).empty());
}

TEST_CASE("verifier: use before definition", "[ir][verifier]") {
  Net N;
  SECTION("created before its input") {
    N.graph().setInsertPoint(N.Conv1);
    N.graph().callFunction("tanh", {N.Relu});
    CHECK(N.errors() == Lines{"node 'tanh': uses 'relu' before it is defined"});
  }
  SECTION("moved before its input") {
    N.graph().moveBefore(N.Reshape, N.Relu);
    CHECK(N.errors() ==
          Lines{"node 'reshape': uses 'relu' before it is defined"});
  }
  SECTION("a kwarg inside a list") {
    N.Conv1->setKwarg("extra", Argument::list({Argument(N.Fc)}));
    CHECK(N.errors() == Lines{"node 'conv1': uses 'fc' before it is defined"});
  }
  SECTION("itself") {
    N.Relu->setArg(0, Argument(N.Relu));
    CHECK(N.errors() == Lines{"node 'relu': uses itself"});
  }
}

TEST_CASE("verifier: use of a node from another graph", "[ir][verifier]") {
  Graph Other;
  Node *Y = Other.placeholder("y");
  Net N;
  N.Add->setArg(1, Argument(Y));
  Lines E = N.errors();
  REQUIRE(E.size() == 1);
  CHECK(E[0] == "node 'add': uses 'y', which is not in this graph");
  // Undo, so that neither graph outlives a reference into the other.
  N.Add->setArg(1, Argument(N.Offset));
  CHECK_FALSE(Y->hasUsers());
  CHECK(N.errors().empty());
}

TEST_CASE("verifier: missing output", "[ir][verifier]") {
  Net N;
  N.graph().erase(N.Out);
  CHECK(N.errors() == Lines{"graph: no output node"});
}

TEST_CASE("verifier: two outputs", "[ir][verifier]") {
  Net N;
  N.graph().output(N.Fc);
  CHECK(N.errors() == Lines{"graph: has 2 output nodes, expected one"});
}

TEST_CASE("verifier: output not last", "[ir][verifier]") {
  Net N;
  N.graph().callFunction("tanh", {N.X});
  CHECK(N.errors() == Lines{"node 'output': output must be the last node"});
}

TEST_CASE("verifier: output with users", "[ir][verifier]") {
  Net N;
  N.graph().callFunction("tanh", {N.Out});
  CHECK(N.errors() == Lines{"node 'output': output node has users",
                            "node 'output': output must be the last node",
                            "node 'tanh': uses the output node 'output'"});
}

TEST_CASE("verifier: output arguments", "[ir][verifier]") {
  Net N;
  N.Out->setArgs({Argument(N.Fc), Argument(N.Add)});
  CHECK(N.errors() == Lines{"node 'output': output takes exactly one "
                            "argument"});
  N.Out->setArgs({Argument(N.Add)});
  N.Out->setKwarg("extra", Argument::integer(1));
  CHECK(N.errors() == Lines{"node 'output': output takes exactly one "
                            "argument"});
}

TEST_CASE("verifier: placeholder arguments", "[ir][verifier]") {
  Net N;
  const std::string Msg =
      "node 'x': placeholder takes at most one argument (its default)";
  SECTION("kwargs") {
    N.X->setKwarg("default", Argument::integer(1));
    CHECK(N.errors() == Lines{Msg});
  }
  SECTION("two args") {
    N.X->setArgs({Argument::integer(1), Argument::integer(2)});
    CHECK(N.errors() == Lines{Msg});
  }
  SECTION("empty target") {
    N.X->setTarget("");
    CHECK(N.errors() == Lines{"node 'x': placeholder has an empty target"});
  }
}

TEST_CASE("verifier: get_attr targets", "[ir][verifier]") {
  Net N;
  SECTION("missing tensor of an existing module") {
    N.Offset->setTarget("conv1.running_mean");
    CHECK(N.errors() == Lines{"node 'offset': get_attr target "
                              "'conv1.running_mean' is not a tensor"});
  }
  SECTION("missing module") {
    N.Offset->setTarget("conv2.weight");
    CHECK(N.errors() == Lines{"node 'offset': get_attr target "
                              "'conv2.weight' is not a tensor"});
  }
  SECTION("a module is not a tensor") {
    N.Offset->setTarget("conv1");
    CHECK(N.errors() ==
          Lines{"node 'offset': get_attr target 'conv1' is not a tensor"});
  }
  SECTION("arguments") {
    N.Offset->setArgs({Argument::integer(0)});
    CHECK(N.errors() == Lines{"node 'offset': get_attr takes no arguments"});
  }
}

TEST_CASE("verifier: get_attr type differs from the tensor", "[ir][verifier]") {
  Net N;
  SECTION("dtype") {
    N.Offset->setType(TensorType{DType::S8, {1, 10}, {}});
    CHECK(N.errors() ==
          Lines{"node 'offset': type s8[1,10] does not match tensor 'offset' "
                "of type f32[1,10]"});
  }
  SECTION("shape") {
    N.Offset->setType(f32({10}));
    CHECK(N.errors() ==
          Lines{"node 'offset': type f32[10] does not match tensor 'offset' "
                "of type f32[1,10]"});
  }
  SECTION("quantization parameters") {
    Tensor T(DType::S8, {1, 10});
    T.setQuant(QuantParams::perTensor(0.5, 0));
    N.GM.root().setTensor("offset", T);
    N.Offset->setType(
        TensorType{DType::S8, {1, 10}, QuantParams::perTensor(0.25, 0)});
    CHECK(N.errors() == Lines{"node 'offset': quantization parameters differ "
                              "from those of tensor 'offset'"});
    N.Offset->setType(
        TensorType{DType::S8, {1, 10}, QuantParams::perTensor(0.5, 0)});
    CHECK(N.errors().empty());
  }
  SECTION("an untyped get_attr is fine") {
    N.Offset->setType(std::nullopt);
    CHECK(N.errors().empty());
  }
}

TEST_CASE("verifier: call_module of a missing module", "[ir][verifier]") {
  Net N;
  SECTION("missing") {
    N.Fc->setTarget("fc2");
    CHECK(N.errors() ==
          Lines{"node 'fc': call_module target 'fc2' is not a module"});
  }
  SECTION("a tensor is not a module") {
    N.Fc->setTarget("fc.weight");
    CHECK(N.errors() ==
          Lines{"node 'fc': call_module target 'fc.weight' is not a module"});
  }
  SECTION("the root is not a callable module") {
    N.Fc->setTarget("");
    CHECK(N.errors() ==
          Lines{"node 'fc': call_module target '' is not a module"});
  }
  SECTION("the module was erased") {
    N.GM.eraseModule("conv1");
    CHECK(N.errors() ==
          Lines{"node 'conv1': call_module target 'conv1' is not a module"});
  }
}

TEST_CASE("verifier: call_function and call_method", "[ir][verifier]") {
  Net N;
  SECTION("call_method without the object") {
    N.graph().setInsertPoint(N.Out);
    N.graph().callMethod("view", {});
    CHECK(N.errors() ==
          Lines{"node 'view': call_method needs the object as its first "
                "argument"});
  }
  SECTION("empty targets") {
    N.Relu->setTarget("");
    N.Reshape->setTarget("");
    CHECK(N.errors() ==
          Lines{"node 'relu': call_function has an empty target",
                "node 'reshape': call_method has an empty target"});
  }
  SECTION("unknown ops") {
    // These loaded and failed only when run or compiled.
    N.Relu->setTarget("frobnicate");
    N.Reshape->setTarget("twist");
    CHECK(N.errors() ==
          Lines{"node 'relu': call_function target 'frobnicate' is not a "
                "known op",
                "node 'reshape': call_method target 'twist' is not a known "
                "op"});
  }
}

TEST_CASE("verifier: types", "[ir][verifier]") {
  Net N;
  SECTION("quantization parameters on an f32 type") {
    N.Relu->setType(
        TensorType{DType::F32, {1, 4, 2, 2}, QuantParams::perTensor(0.1, 0)});
    CHECK(N.errors() ==
          Lines{"node 'relu': quantization parameters on a f32 type"});
  }
  SECTION("per-channel axis out of range") {
    N.Fc->setType(
        TensorType{DType::S8, {1, 10}, QuantParams::perChannel({0.1}, {0}, 2)});
    CHECK(N.errors() ==
          Lines{"node 'fc': invalid quantization parameters: per-channel "
                "axis 2 out of range for rank 2"});
  }
  SECTION("negative per-channel axis") {
    N.Fc->setType(TensorType{
        DType::S8, {1, 10}, QuantParams::perChannel({0.1}, {0}, -1)});
    Lines E = N.errors();
    REQUIRE(E.size() == 1);
    CHECK_THAT(E[0], Catch::StartsWith("node 'fc': invalid quantization "
                                       "parameters: per-channel axis -1"));
  }
  SECTION("wrong number of scales") {
    N.Fc->setType(TensorType{
        DType::S8, {1, 10}, QuantParams::perChannel({0.1, 0.1}, {0, 0}, 1)});
    CHECK(N.errors() ==
          Lines{"node 'fc': invalid quantization parameters: 2 scales for 10 "
                "channels on axis 1"});
  }
  SECTION("wrong number of zero points") {
    N.Fc->setType(TensorType{
        DType::S8, {1, 2}, QuantParams::perChannel({0.1, 0.1}, {0}, 1)});
    CHECK(N.errors() ==
          Lines{"node 'fc': invalid quantization parameters: 1 zero points "
                "for 2 channels on axis 1"});
  }
  SECTION("zero scale") {
    N.Fc->setType(
        TensorType{DType::U8, {1, 10}, QuantParams::perTensor(0.0, 0)});
    Lines E = N.errors();
    REQUIRE(E.size() == 1);
    CHECK_THAT(E[0], Catch::StartsWith("node 'fc': invalid quantization "
                                       "parameters: scale must be positive"));
  }
  SECTION("negative per-channel scale") {
    N.Fc->setType(TensorType{
        DType::S8, {1, 2}, QuantParams::perChannel({0.1, -0.1}, {0, 0}, 1)});
    Lines E = N.errors();
    REQUIRE(E.size() == 1);
    CHECK_THAT(E[0], Catch::StartsWith("node 'fc': invalid quantization "
                                       "parameters: channel 1 scale"));
  }
  SECTION("f32 type with invalid parameters gives both problems") {
    N.Fc->setType(
        TensorType{DType::F32, {1, 10}, QuantParams::perTensor(-1.0, 0)});
    Lines E = N.errors();
    REQUIRE(E.size() == 2);
    CHECK(E[0] == "node 'fc': quantization parameters on a f32 type");
    CHECK_THAT(E[1], Catch::StartsWith("node 'fc': invalid quantization"));
  }
  SECTION("negative extent") {
    N.Relu->setType(f32({1, -4}));
    CHECK(N.errors() ==
          Lines{"node 'relu': type has a negative extent in [1,-4]"});
  }
}

TEST_CASE("verifier: module tensors", "[ir][verifier]") {
  Net N;
  SECTION("invalid quantization parameters") {
    Tensor W(DType::S8, {4, 1, 3, 3});
    W.setQuant(QuantParams::perChannel({0.1, 0.1, 0.1}, {0, 0, 0}, 0));
    N.GM.lookupModule("conv1")->setTensor("weight", W);
    CHECK(N.errors() ==
          Lines{"tensor 'conv1.weight': invalid quantization parameters: 3 "
                "scales for 4 channels on axis 0"});
  }
  SECTION("invalid quantization parameters on a root tensor") {
    Tensor T(DType::S8, {1, 10});
    T.setQuant(QuantParams::perTensor(0.0, 0));
    N.GM.root().setTensor("offset", T);
    N.Offset->setType(TensorType{DType::S8, {1, 10}, T.quant()});
    Lines E = N.errors();
    // The tensor and the type describing it are both wrong.
    REQUIRE(E.size() == 2);
    CHECK_THAT(E[0], Catch::StartsWith("tensor 'offset': invalid "
                                       "quantization parameters: scale"));
    CHECK_THAT(E[1], Catch::StartsWith("node 'offset': invalid "
                                       "quantization parameters: scale"));
  }
  SECTION("quantization parameters on an f32 tensor") {
    Tensor B(DType::F32, {10});
    B.setQuant(QuantParams::perTensor(0.1, 0));
    N.GM.lookupModule("fc")->setTensor("bias", B);
    CHECK(N.errors() ==
          Lines{"tensor 'fc.bias': quantization parameters on a f32 tensor"});
  }
}

TEST_CASE("verifier reports every problem in graph order", "[ir][verifier]") {
  Net N;
  Graph &G = N.graph();
  // Three independent problems at three places in the graph.
  N.Offset->setTarget("missing");
  G.setInsertPoint(N.Fc);
  G.callMethod("view", {});
  G.setInsertPoint(N.Out);
  G.callModule("conv2", {N.Add});

  Lines E = N.errors();
  CHECK(E == Lines{"node 'offset': get_attr target 'missing' is not a tensor",
                   "node 'view': call_method needs the object as its first "
                   "argument",
                   "node 'conv2': call_module target 'conv2' is not a "
                   "module"});

  std::string Msg = verifyText(N.GM);
  CHECK(Msg == "graph verification failed:\n  " + E[0] + "\n  " + E[1] +
                   "\n  " + E[2]);

  // A problem of the output node comes after those of earlier nodes.
  G.setInsertPointToEnd();
  G.callFunction("sigmoid", {N.X});
  Lines More = N.errors();
  CHECK(More ==
        Lines{E[0], E[1], E[2], "node 'output': output must be the last node"});

  // Graph-level problems come first.
  G.setInsertPoint(N.X);
  G.output(Argument::none());
  CHECK(N.errors() == Lines{"graph: has 2 output nodes, expected one", E[0],
                            E[1], E[2],
                            "node 'output': output must be the last node"});
}

TEST_CASE("verifier: names", "[ir][verifier]") {
  // The API keeps names valid and unique; renaming through it keeps the
  // verifier happy.
  Net N;
  REQUIRE_FALSE(static_cast<bool>(N.graph().rename(N.Relu, "act")));
  CHECK(N.errors().empty());
  CHECK(N.graph().lookup("act") == N.Relu);
}
