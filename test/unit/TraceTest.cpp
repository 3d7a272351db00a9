//===- TraceTest.cpp - symbolic_trace: recording, scopes, errors ----------===//

#include "qfx/IR/Printer.h"
#include "qfx/NN/Functional.h"
#include "qfx/NN/Modules.h"
#include "qfx/Runtime/Interpreter.h"
#include "qfx/Runtime/Op.h"
#include "qfx/Support/Error.h"
#include "qfx/Trace/SymbolicTrace.h"

#include <catch2/catch.hpp>

#include <cstring>
#include <set>

using namespace qfx;
using namespace qfx::nn;

namespace {

/// The seed Net of PyTorch's quantization notes, with functional relu and
/// max_pool2d as there.
struct SeedNet : Module {
  std::shared_ptr<Conv2d> conv1, conv2;
  std::shared_ptr<Linear> fc;
  SeedNet() : Module("Net") {
    conv1 = register_module("conv1", std::make_shared<Conv2d>(1, 40, 3));
    conv2 = register_module("conv2", std::make_shared<Conv2d>(40, 40, 3));
    fc = register_module("fc", std::make_shared<Linear>(1000, 10));
  }
  Value forward(Value X) override {
    X = F::max_pool2d(F::relu((*conv1)(X)), 2, 2);
    X = F::max_pool2d(F::relu((*conv2)(X)), 2, 2);
    X = X.reshape({-1, 5 * 5 * 40});
    return (*fc)(X);
  }
};

/// A non-leaf block whose functional ops must carry its scope.
struct Block : Module {
  std::shared_ptr<Conv2d> conv;
  std::shared_ptr<BatchNorm2d> bn;
  Block() : Module("Block") {
    conv = register_module(
        "conv", std::make_shared<Conv2d>(Conv2dOptions(4, 4, 3).padding(1)));
    bn = register_module("bn", std::make_shared<BatchNorm2d>(4));
  }
  Value forward(Value X) override { return F::relu((*bn)((*conv)(X)) + X); }
};

struct TwoBlocks : Module {
  std::shared_ptr<Sequential> layer1;
  TwoBlocks() : Module("TwoBlocks") {
    layer1 = register_module("layer1", std::make_shared<Sequential>());
    layer1->push_back(std::make_shared<Block>());
    layer1->push_back(std::make_shared<Block>());
  }
  Value forward(Value X) override { return (*layer1)(X); }
};

Tensor seeded(llvm::ArrayRef<int64_t> Shape, uint32_t Seed) {
  Tensor T(DType::F32, Shape);
  uint32_t S = Seed;
  for (int64_t I = 0; I < T.numElements(); ++I) {
    S = S * 1664525u + 1013904223u;
    T.data<float>()[I] = static_cast<float>(S >> 8) / 16777216.0f - 0.5f;
  }
  return T;
}

std::unique_ptr<GraphModule> traceOrFail(Module &M,
                                         std::vector<InputSpec> Specs) {
  auto GM = symbolicTrace(M, Specs);
  if (!GM)
    FAIL(errorToString(GM.takeError()));
  return std::move(*GM);
}

} // namespace

TEST_CASE("the seed Net traces like torch.fx records it", "[trace]") {
  SeedNet Net;
  auto GM =
      traceOrFail(Net, {InputSpec::symbolic("x", DType::F32, {1, 1, 28, 28})});
  std::string Text = printToString(*GM);
  CHECK(Text.find("%x : f32[1,1,28,28] = placeholder[x]") != std::string::npos);
  CHECK(Text.find("%conv1 : f32[1,40,26,26] = call_module[conv1](%x)") !=
        std::string::npos);
  CHECK(Text.find("%relu : f32[1,40,26,26] = call_function[relu](%conv1)") !=
        std::string::npos);
  CHECK(Text.find("%max_pool2d : f32[1,40,13,13] = "
                  "call_function[max_pool2d](%relu, 2, 2)") !=
        std::string::npos);
  CHECK(Text.find("%reshape : f32[1,1000] = "
                  "call_method[reshape](%max_pool2d_1, [-1, 1000])") !=
        std::string::npos);
  CHECK(Text.find("%output = output[output](%fc)") != std::string::npos);
  CHECK(GM->graph().size() == 10);
  CHECK(GM->root().kind() == "Net");
  CHECK(GM->lookupModule("conv1")->kind() == "Conv2d");
}

TEST_CASE("inlined modules give their ops a scope and qualified names",
          "[trace]") {
  TwoBlocks M;
  M.eval();
  auto GM =
      traceOrFail(M, {InputSpec::symbolic("x", DType::F32, {1, 4, 6, 6})});
  Node *Conv = GM->graph().lookup("layer1_0_conv");
  REQUIRE(Conv);
  CHECK(Conv->op() == OpCode::CallModule);
  CHECK(Conv->target() == "layer1.0.conv");
  CHECK(Conv->scope() == "layer1.0");
  Node *Add = GM->graph().lookup("add_1");
  REQUIRE(Add);
  CHECK(Add->scope() == "layer1.1");
  CHECK(Add->target() == "add");
  CHECK(GM->lookupModule("layer1")->kind() == "Sequential");
  CHECK(GM->lookupModule("layer1.1.bn")->kind() == "BatchNorm2d");
}

TEST_CASE("the leaf policy is overridable", "[trace]") {
  TwoBlocks M;
  M.eval();
  TraceOptions Opts;
  Opts.IsLeafModule = [](const Module &Mod, llvm::StringRef Path) {
    return Mod.kind() == "Block" || isStandardLeafModule(Mod, Path);
  };
  auto GM = symbolicTrace(
      M, {InputSpec::symbolic("x", DType::F32, {1, 4, 6, 6})}, Opts);
  REQUIRE(bool(GM));
  std::string Text = printToString(**GM);
  CHECK(Text.find("call_module[layer1.0](%x)") != std::string::npos);
  CHECK(Text.find("call_module[layer1.1](%layer1_0)") != std::string::npos);
  CHECK(Text.find("relu") == std::string::npos);
  // The type of a user leaf comes from running it on zeros.
  CHECK((*GM)->graph().lookup("layer1_1")->type()->Dims == Shape{1, 4, 6, 6});
}

namespace {
struct Branchy : Module {
  std::shared_ptr<ReLU> act;
  bool UseAct;
  explicit Branchy(bool UseAct) : Module("Branchy"), UseAct(UseAct) {
    act = register_module("act", std::make_shared<ReLU>());
  }
  Value forward(Value X) override {
    if (UseAct && X.size(1) == 3) // attribute and shape branches are fine
      X = (*act)(X);
    if (X.mean({0, 1}).item() > 0) // data-dependent: not traceable
      return X;
    return X * 2.0;
  }
};

struct ReuseTwice : Module {
  std::shared_ptr<ReLU> act;
  ReuseTwice() : Module("ReuseTwice") {
    act = register_module("act", std::make_shared<ReLU>());
  }
  Value forward(Value X) override { return (*act)((*act)(X) + 1.0); }
};

struct UsesParam : Module {
  Tensor scale;
  UsesParam() : Module("UsesParam") {
    scale = register_parameter("scale", Tensor::fromFloats({3}, {1, 2, 3}));
  }
  Value forward(Value X) override { return X * Value(scale); }
};
} // namespace

TEST_CASE("control flow on symbolic values names the op and module",
          "[trace]") {
  Branchy M(true);
  auto GM = symbolicTrace(M, {InputSpec::symbolic("x", DType::F32, {2, 3})});
  REQUIRE(!GM);
  std::string Msg = errorToString(GM.takeError());
  CHECK(Msg.find("symbolically traced variables cannot be used as inputs to "
                 "control flow") != std::string::npos);
  CHECK(Msg.find("'item'") != std::string::npos);
  CHECK(Msg.find("Branchy") != std::string::npos);
}

TEST_CASE("concrete args specialize the trace", "[trace]") {
  Branchy M(true);
  Tensor Positive = Tensor::fromFloats({2, 3}, {1, 2, 3, 4, 5, 6});
  auto GM = symbolicTrace(M, {InputSpec::concrete("x", Positive)});
  REQUIRE(bool(GM));
  // Everything was computed from the constant: the graph returns it.
  CHECK((*GM)->graph().placeholders().empty());
  CHECK((*GM)->lookupTensor("_tensor_constant0"));
}

TEST_CASE("reusing a module records two calls of one target", "[trace]") {
  ReuseTwice M;
  auto GM = traceOrFail(M, {InputSpec::symbolic("x", DType::F32, {2, 2})});
  int Calls = 0;
  for (const Node &N : GM->graph())
    Calls += N.op() == OpCode::CallModule && N.target() == "act";
  CHECK(Calls == 2);
  CHECK(GM->graph().lookup("act_1"));
}

TEST_CASE("parameters read in forward become get_attr", "[trace]") {
  UsesParam M;
  auto GM = traceOrFail(M, {InputSpec::symbolic("x", DType::F32, {2, 3})});
  Node *Attr = GM->graph().lookup("scale");
  REQUIRE(Attr);
  CHECK(Attr->op() == OpCode::GetAttr);
  CHECK(Attr->target() == "scale");
  Node *Mul = GM->graph().lookup("mul");
  REQUIRE(Mul);
  CHECK(Mul->arg(1).getNode() == Attr);
}

TEST_CASE("shape errors during tracing name the module", "[trace]") {
  SeedNet Net;
  auto GM = symbolicTrace(
      Net, {InputSpec::symbolic("x", DType::F32, {1, 3, 28, 28})});
  REQUIRE(!GM);
  std::string Msg = errorToString(GM.takeError());
  CHECK(Msg.find("conv1") != std::string::npos);
  CHECK(Msg.find("channels") != std::string::npos);
}

TEST_CASE("interpreting the traced graph equals eager forward bitwise",
          "[trace][runtime]") {
  for (KernelMode Mode : {KernelMode::Reference, KernelMode::OneDNN}) {
    setKernelMode(Mode);
    SeedNet Net;
    Net.eval();
    Tensor X = seeded({2, 1, 28, 28}, 7);
    Tensor Eager = Net(X).tensor();
    auto GM = traceOrFail(
        Net, {InputSpec::symbolic("x", DType::F32, {2, 1, 28, 28})});
    auto Out = interpret(*GM, {X});
    REQUIRE(bool(Out));
    REQUIRE(Out->shape() == Eager.shape());
    CHECK(std::memcmp(Out->rawData(), Eager.rawData(), Eager.byteSize()) == 0);

    TwoBlocks Blocks;
    Blocks.eval();
    Tensor Y = seeded({1, 4, 6, 6}, 9);
    Tensor EagerB = Blocks(Y).tensor();
    auto GMB = traceOrFail(
        Blocks, {InputSpec::symbolic("x", DType::F32, {1, 4, 6, 6})});
    auto OutB = interpret(*GMB, {Y});
    REQUIRE(bool(OutB));
    CHECK(std::memcmp(OutB->rawData(), EagerB.rawData(), EagerB.byteSize()) ==
          0);
  }
  setKernelMode(KernelMode::OneDNN);
}

TEST_CASE("the interpreter rejects inputs of the wrong shape", "[runtime]") {
  SeedNet Net;
  auto GM =
      traceOrFail(Net, {InputSpec::symbolic("x", DType::F32, {1, 1, 28, 28})});
  auto Out = interpret(*GM, {Tensor(DType::F32, {1, 1, 27, 28})});
  REQUIRE(!Out);
  CHECK(errorToString(Out.takeError())
            .find("input 'x': expected "
                  "f32[1,1,28,28]") != std::string::npos);
  auto Two = Interpreter(*GM).run({});
  REQUIRE(!Two);
  CHECK(errorToString(Two.takeError()) == "expected 1 inputs, got 0");
}

namespace {
/// Uses every functional op and tensor method once.
struct EveryOp : Module {
  std::shared_ptr<Conv2d> conv;
  std::shared_ptr<Linear> fc;
  std::shared_ptr<BatchNorm2d> bn;
  Tensor w2;
  EveryOp() : Module("EveryOp") {
    w2 = register_parameter("w2", uniformInit({4, 4, 1, 1}, 0.5));
    conv = register_module(
        "conv", std::make_shared<Conv2d>(Conv2dOptions(3, 4, 3).padding(1)));
    fc = register_module("fc", std::make_shared<Linear>(16, 5));
    bn = register_module("bn", std::make_shared<BatchNorm2d>(4));
  }
  Value forward(Value X) override {
    Value C = (*conv)(X); // [2,4,8,8]
    Value A = F::relu(C) + F::relu6(C) * F::hardtanh(C, -0.5, 0.5);
    A = F::hardswish(A) + F::hardsigmoid(A) + F::sigmoid(A) * F::tanh(A);
    A = F::leaky_relu(A, 0.2) * 2.0 + 1.0;
    A = F::batch_norm(A, Value(bn->running_mean), Value(bn->running_var),
                      Value(bn->weight), Value(bn->bias));
    A = F::conv2d(A, Value(w2)).permute({0, 1, 3, 2});
    Value P = F::max_pool2d(A, 2, 2); // [2,4,4,4]
    Value Q = F::avg_pool2d(A, {2}, {2}, {0}, false, false);
    Value R = F::adaptive_avg_pool2d(A, {4, 4});
    Value S = F::cat({P, Q, R}, 1); // [2,12,4,4]
    S = F::dropout(S, 0.5, false);
    Value T = S.transpose(2, 3).contiguous().mean({1}, false); // [2,4,4]
    Value U = T.flatten(1).view({2, 16});
    U = F::linear(U, Value(fc->weight), Value(fc->bias)) + (*fc)(U);
    return F::softmax(F::flatten(U.reshape({2, 5, 1}), 1), 1);
  }
};
} // namespace

TEST_CASE("every functional op and method traces and interprets bitwise",
          "[trace][runtime]") {
  EveryOp M;
  M.eval();
  auto GM =
      traceOrFail(M, {InputSpec::symbolic("x", DType::F32, {2, 3, 8, 8})});
  std::set<std::string> Functions, Methods;
  for (const Node &N : GM->graph()) {
    if (N.op() == OpCode::CallFunction)
      Functions.insert(N.target().str());
    if (N.op() == OpCode::CallMethod)
      Methods.insert(N.target().str());
  }
  for (const char *Fn : {"relu",
                         "relu6",
                         "hardtanh",
                         "hardswish",
                         "hardsigmoid",
                         "sigmoid",
                         "tanh",
                         "leaky_relu",
                         "batch_norm",
                         "conv2d",
                         "max_pool2d",
                         "avg_pool2d",
                         "adaptive_avg_pool2d",
                         "cat",
                         "dropout",
                         "linear",
                         "softmax",
                         "flatten",
                         "add",
                         "mul"})
    CHECK(Functions.count(Fn) == 1);
  for (const char *Me : {"reshape", "view", "flatten", "permute", "transpose",
                         "contiguous", "mean"})
    CHECK(Methods.count(Me) == 1);
  CHECK(GM->graph().lookup("w2")->op() == OpCode::GetAttr);
  CHECK(GM->graph().lookup("bn_running_mean")->op() == OpCode::GetAttr);
  Tensor X = seeded({2, 3, 8, 8}, 11);
  Tensor Eager = M(X).tensor();
  auto Out = interpret(*GM, {X});
  REQUIRE(bool(Out));
  REQUIRE(Out->shape() == Eager.shape());
  CHECK(std::memcmp(Out->rawData(), Eager.rawData(), Eager.byteSize()) == 0);
}
