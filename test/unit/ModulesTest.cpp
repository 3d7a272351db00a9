// Unit tests for the built-in modules: kinds, attributes, initialization,
// Sequential, and eager forward compared with PyTorch's outputs.
#include "qfx/NN/Modules.h"
#include "qfx/Runtime/Interpreter.h"
#include "qfx/Runtime/Op.h"
#include "qfx/Support/Error.h"
#include "qfx/Support/Safetensors.h"
#include "qfx/Trace/SymbolicTrace.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

using namespace qfx;
using namespace qfx::nn;
using Catch::Contains;
using Catch::StartsWith;

namespace {

std::map<std::string, Tensor> golden(llvm::StringRef Name) {
  std::string Path = std::string(QFX_TEST_DATA_DIR) + "/nn/" + Name.str();
  llvm::Expected<SafetensorsFile> F = readSafetensors(Path);
  if (!F)
    FAIL(errorToString(F.takeError()));
  return F->Tensors;
}

/// Checks \p Got against \p Want elementwise, relative tolerance 1e-5 (with
/// a small absolute floor for values near zero).
void checkClose(const Tensor &Got, const Tensor &Want) {
  REQUIRE(Got.dtype() == Want.dtype());
  REQUIRE(formatShape(Got.shape()) == formatShape(Want.shape()));
  int64_t Bad = 0, First = -1;
  for (int64_t I = 0; I < Want.numElements(); ++I) {
    double G = Got.getAsDouble(I), W = Want.getAsDouble(I);
    if (!(std::fabs(G - W) <= 1e-5 * std::fabs(W) + 1e-6) && Bad++ == 0)
      First = I;
  }
  INFO("first mismatch at "
       << First << ": " << (First >= 0 ? Got.getAsDouble(First) : 0) << " vs "
       << (First >= 0 ? Want.getAsDouble(First) : 0));
  CHECK(Bad == 0);
}

/// Fails the test with \p E's message if it is an error.
void requireOk(llvm::Error E) {
  if (E)
    FAIL(errorToString(std::move(E)));
}

Tensor ones(llvm::ArrayRef<int64_t> Shape) {
  Tensor T(DType::F32, Shape);
  for (int64_t I = 0; I < T.numElements(); ++I)
    T.setFromDouble(I, 1.0);
  return T;
}

Tensor iota(llvm::ArrayRef<int64_t> Shape, double Start, double Step) {
  Tensor T(DType::F32, Shape);
  for (int64_t I = 0; I < T.numElements(); ++I)
    T.setFromDouble(I, Start + Step * I);
  return T;
}

/// The attribute \p Name of \p M; fails the test if absent.
const Argument &attr(const Module &M, const std::string &Name) {
  auto It = M.attrs().find(Name);
  if (It == M.attrs().end())
    FAIL("no attribute " << Name << " on " << M.kind().str());
  return It->second;
}

std::vector<int64_t> ints(const Module &M, const std::string &Name) {
  const Argument &A = attr(M, Name);
  REQUIRE(A.isList());
  return *A.getIntList();
}

using IntVec = std::vector<int64_t>;

/// Every built-in configuration of make_nn_golden.py's builtins(), by name.
std::vector<std::pair<std::string, std::shared_ptr<Module>>> builtins() {
  Conv2dOptions NoBias(2, 3, {3, 2});
  NoBias.Padding = {1, 0};
  NoBias.dilation(2).bias(false);
  auto DropoutEval = std::make_shared<Dropout>(0.3);
  DropoutEval->eval();
  auto BN = std::make_shared<BatchNorm2d>(2, 0.1);
  BN->eval();
  return {
      {"relu", std::make_shared<ReLU>()},
      {"relu6", std::make_shared<ReLU6>()},
      {"hardtanh", std::make_shared<Hardtanh>(-0.5, 0.25)},
      {"hardswish", std::make_shared<Hardswish>()},
      {"hardsigmoid", std::make_shared<Hardsigmoid>()},
      {"sigmoid", std::make_shared<Sigmoid>()},
      {"tanh", std::make_shared<Tanh>()},
      {"leaky_relu", std::make_shared<LeakyReLU>(0.2)},
      {"max_pool", std::make_shared<MaxPool2d>(3, 2, 1)},
      {"max_pool_ceil", std::make_shared<MaxPool2d>(2, 2, 0, 2, true)},
      {"avg_pool", std::make_shared<AvgPool2d>(3, 2, 1, true, false)},
      {"avg_pool_divisor",
       std::make_shared<AvgPool2d>(2, 1, 0, false, true, 3)},
      {"adaptive_avg_pool",
       std::make_shared<AdaptiveAvgPool2d>(std::array<int64_t, 2>{2, 3})},
      {"flatten", std::make_shared<Flatten>(1, 2)},
      {"identity", std::make_shared<Identity>()},
      {"softmax", std::make_shared<Softmax>(1)},
      {"dropout_eval", DropoutEval},
      {"conv", std::make_shared<Conv2d>(
                   Conv2dOptions(2, 4, 3).stride(2).padding(1).groups(2))},
      {"conv_nobias", std::make_shared<Conv2d>(NoBias)},
      {"linear", std::make_shared<Linear>(5, 3)},
      {"batch_norm", BN},
      {"silu", std::make_shared<SiLU>()},
  };
}

/// Sets the kernel mode for a scope, restoring the previous one.
class KernelModeScope {
public:
  explicit KernelModeScope(KernelMode M) : Saved(kernelMode()) {
    setKernelMode(M);
  }
  ~KernelModeScope() { setKernelMode(Saved); }

private:
  KernelMode Saved;
};

/// The model of small.safetensors.
class Small : public Module {
public:
  Small() : Module("Small") {
    conv = register_module(
        "conv", std::make_shared<Conv2d>(Conv2dOptions(2, 4, 3).padding(1)));
    bn = register_module("bn", std::make_shared<BatchNorm2d>(4));
    relu = register_module("relu", std::make_shared<ReLU>());
    pool = register_module("pool", std::make_shared<MaxPool2d>(2));
    head = register_module(
        "head",
        std::make_shared<Sequential>(std::vector<std::shared_ptr<Module>>{
            std::make_shared<Flatten>(), std::make_shared<Linear>(36, 5)}));
  }
  Value forward(Value X) override {
    return (*head)((*pool)((*relu)((*bn)((*conv)(X)))));
  }
  std::shared_ptr<Conv2d> conv;
  std::shared_ptr<BatchNorm2d> bn;
  std::shared_ptr<ReLU> relu;
  std::shared_ptr<MaxPool2d> pool;
  std::shared_ptr<Sequential> head;
};

} // namespace

//===----------------------------------------------------------------------===//
// Kinds and attributes
//===----------------------------------------------------------------------===//

TEST_CASE("built-in modules are leaves named like PyTorch's classes", "[nn]") {
  std::vector<std::string> Kinds;
  for (const auto &KV : builtins()) {
    CHECK(KV.second->isStandardLeaf());
    Kinds.push_back(KV.second->kind().str());
  }
  CHECK(Kinds == std::vector<std::string>{"ReLU",
                                          "ReLU6",
                                          "Hardtanh",
                                          "Hardswish",
                                          "Hardsigmoid",
                                          "Sigmoid",
                                          "Tanh",
                                          "LeakyReLU",
                                          "MaxPool2d",
                                          "MaxPool2d",
                                          "AvgPool2d",
                                          "AvgPool2d",
                                          "AdaptiveAvgPool2d",
                                          "Flatten",
                                          "Identity",
                                          "Softmax",
                                          "Dropout",
                                          "Conv2d",
                                          "Conv2d",
                                          "Linear",
                                          "BatchNorm2d",
                                          "SiLU"});
  Sequential S;
  CHECK(S.kind() == "Sequential");
  CHECK_FALSE(S.isStandardLeaf());
}

TEST_CASE("every built-in module binds to its op", "[nn]") {
  // Attribute names and types must be what the op's schema accepts.
  for (const auto &[Name, M] : builtins()) {
    INFO(Name);
    auto B = bindModuleCall(
        M->info(), {Operand(Tensor::declared(DType::F32, {1, 2, 5, 5}))});
    if (!B)
      FAIL(errorToString(B.takeError()));
    llvm::Expected<TensorType> T = B->first->Infer(B->second);
    if (!T)
      FAIL(errorToString(T.takeError()));
  }
}

TEST_CASE("Conv2d records PyTorch's attributes and initializes its tensors",
          "[nn]") {
  Conv2d C(
      Conv2dOptions(4, 6, {3, 2}).stride(2).padding(1).dilation(3).groups(2));
  CHECK(attr(C, "in_channels").getInt() == 4);
  CHECK(attr(C, "out_channels").getInt() == 6);
  CHECK(ints(C, "kernel_size") == IntVec{3, 2});
  CHECK(ints(C, "stride") == IntVec{2, 2});
  CHECK(ints(C, "padding") == IntVec{1, 1});
  CHECK(ints(C, "dilation") == IntVec{3, 3});
  CHECK(attr(C, "groups").getInt() == 2);
  CHECK(formatShape(C.weight.shape()) == "[6,2,3,2]");
  CHECK(formatShape(C.bias.shape()) == "[6]");
  // Uniform within 1/sqrt(fan_in), fan_in = 2 * 3 * 2.
  double Bound = 1 / std::sqrt(12.0), Max = 0;
  for (const Tensor *T : {&C.weight, &C.bias})
    for (int64_t I = 0; I < T->numElements(); ++I)
      Max = std::max(Max, std::fabs(T->getAsDouble(I)));
  CHECK(Max <= Bound);
  CHECK(Max > Bound / 2);
  REQUIRE(C.tensor("weight"));
  CHECK(C.tensor("weight")->rawData() == C.weight.rawData());

  Conv2d NoBias(Conv2dOptions(1, 2, 3).bias(false));
  CHECK_FALSE(NoBias.bias.hasData());
  CHECK(NoBias.tensor("bias") == nullptr);
  CHECK(NoBias.tensors().size() == 1);
}

TEST_CASE("Linear and BatchNorm2d record PyTorch's attributes and tensors",
          "[nn]") {
  Linear L(5, 3);
  CHECK(attr(L, "in_features").getInt() == 5);
  CHECK(attr(L, "out_features").getInt() == 3);
  CHECK(formatShape(L.weight.shape()) == "[3,5]");
  CHECK(formatShape(L.bias.shape()) == "[3]");
  CHECK_FALSE(Linear(5, 3, false).bias.hasData());

  BatchNorm2d BN(3, 1e-3, 0.2);
  CHECK(attr(BN, "num_features").getInt() == 3);
  CHECK(attr(BN, "eps").getFloat() == 1e-3);
  CHECK(attr(BN, "momentum").getFloat() == 0.2);
  std::vector<std::string> Names;
  for (const NamedTensor &T : BN.tensors())
    Names.push_back(T.Name + (T.IsBuffer ? "/buffer" : "/param"));
  CHECK(Names == std::vector<std::string>{
                     "weight/param", "bias/param", "running_mean/buffer",
                     "running_var/buffer", "num_batches_tracked/buffer"});
  for (int64_t I = 0; I < 3; ++I) {
    CHECK(BN.weight.getAsDouble(I) == 1);
    CHECK(BN.bias.getAsDouble(I) == 0);
    CHECK(BN.running_mean.getAsDouble(I) == 0);
    CHECK(BN.running_var.getAsDouble(I) == 1);
  }
  CHECK(BN.num_batches_tracked.dtype() == DType::S64);
  CHECK(BN.num_batches_tracked.rank() == 0);
  CHECK(BN.num_batches_tracked.getAsDouble(0) == 0);
  CHECK(BatchNorm2d(2).attrs().at("eps").getFloat() == 1e-5);
}

TEST_CASE("activation and shape modules record PyTorch's attributes", "[nn]") {
  Hardtanh H;
  CHECK(attr(H, "min_val").getFloat() == -1.0);
  CHECK(attr(H, "max_val").getFloat() == 1.0);
  CHECK(attr(LeakyReLU(), "negative_slope").getFloat() == 0.01);
  CHECK(attr(LeakyReLU(0.3), "negative_slope").getFloat() == 0.3);
  CHECK(attr(Softmax(-1), "dim").getInt() == -1);
  CHECK(attr(Dropout(), "p").getFloat() == 0.5);
  Flatten F;
  CHECK(attr(F, "start_dim").getInt() == 1);
  CHECK(attr(F, "end_dim").getInt() == -1);
  CHECK(ReLU().attrs().empty());
  CHECK(Identity().tensors().empty());
}

TEST_CASE("pooling modules record PyTorch's attributes", "[nn]") {
  MaxPool2d M(3);
  CHECK(ints(M, "kernel_size") == IntVec{3, 3});
  CHECK(ints(M, "stride") == IntVec{3, 3}); // Defaults to the kernel size.
  CHECK(ints(M, "padding") == IntVec{0, 0});
  CHECK(ints(M, "dilation") == IntVec{1, 1});
  CHECK_FALSE(attr(M, "ceil_mode").getBool());
  MaxPool2d M2(3, 1, 1, 2, true);
  CHECK(ints(M2, "stride") == IntVec{1, 1});
  CHECK(ints(M2, "dilation") == IntVec{2, 2});
  CHECK(attr(M2, "ceil_mode").getBool());

  AvgPool2d A(2);
  CHECK(ints(A, "kernel_size") == IntVec{2, 2});
  CHECK(ints(A, "stride") == IntVec{2, 2});
  CHECK(ints(A, "padding") == IntVec{0, 0});
  CHECK_FALSE(attr(A, "ceil_mode").getBool());
  CHECK(attr(A, "count_include_pad").getBool());
  CHECK(A.attrs().count("divisor_override") == 0);
  AvgPool2d A2(2, 1, 1, true, false, 5);
  CHECK(attr(A2, "divisor_override").getInt() == 5);
  CHECK_FALSE(attr(A2, "count_include_pad").getBool());

  CHECK(ints(AdaptiveAvgPool2d(1), "output_size") == IntVec{1, 1});
  CHECK(ints(AdaptiveAvgPool2d(std::array<int64_t, 2>{2, 3}), "output_size") ==
        IntVec{2, 3});
}

TEST_CASE("invalid constructor arguments throw nn::Error", "[nn]") {
  CHECK_THROWS_WITH(
      Conv2d(Conv2dOptions(3, 4, 3).groups(2)),
      "Conv2d: in_channels (3) and out_channels (4) must be divisible by "
      "groups (2)");
  CHECK_THROWS_AS(Conv2d(0, 4, 3), nn::Error);
  CHECK_THROWS_AS(Linear(0, 4), nn::Error);
  CHECK_THROWS_AS(BatchNorm2d(0), nn::Error);
  CHECK_THROWS_WITH(Dropout(1.5), "Dropout: dropout probability has to be "
                                  "between 0 and 1, but got 1.5");
  CHECK_THROWS_AS(MaxPool2d(0), nn::Error);
  CHECK_THROWS_AS(AvgPool2d(2, 1, 0, false, true, 0), nn::Error);
  CHECK_THROWS_AS(Hardtanh(1.0, -1.0), nn::Error);
}

//===----------------------------------------------------------------------===//
// Sequential
//===----------------------------------------------------------------------===//

TEST_CASE("Sequential names children by index and chains them", "[nn]") {
  Sequential S(
      {std::make_shared<Hardtanh>(-0.5, 0.25), std::make_shared<Linear>(3, 2)});
  S.push_back(std::make_shared<ReLU>());
  REQUIRE(S.size() == 3);
  CHECK(S.children()[0].first == "0");
  CHECK(S.children()[2].first == "2");
  CHECK(S.child("1")->kind() == "Linear");
  std::vector<std::string> Keys;
  for (const auto &KV : S.state_dict())
    Keys.push_back(KV.first);
  CHECK(Keys == std::vector<std::string>{"1.weight", "1.bias"});

  auto *L = static_cast<Linear *>(S.child("1"));
  // y = relu(W clamp(x) + b) with W = [[1,1,1],[-1,0,0]], b = [0,0.1].
  std::map<std::string, Tensor> State = {
      {"1.weight", Tensor::fromFloats({2, 3}, {1, 1, 1, -1, 0, 0})},
      {"1.bias", Tensor::fromFloats({2}, {0, 0.1f})}};
  requireOk(S.load_state_dict(State));
  CHECK(L->weight.getAsDouble(3) == -1);
  Tensor X = Tensor::fromFloats({1, 3}, {-2, 0.1f, 3});
  Tensor Y = S(X).tensor();
  checkClose(Y, Tensor::fromFloats({1, 2}, {0.0f, 0.6f}));
}

//===----------------------------------------------------------------------===//
// Eager forward
//===----------------------------------------------------------------------===//

TEST_CASE("built-in modules reproduce PyTorch's outputs", "[nn]") {
  std::map<std::string, Tensor> G = golden("builtin.safetensors");
  const Tensor &X = G.at("input");
  // Both kernel sets, since eager forward follows the global mode.
  for (KernelMode Mode : {KernelMode::OneDNN, KernelMode::Reference}) {
    KernelModeScope Scope(Mode);
    for (const auto &[Name, M] : builtins()) {
      INFO(Name << (Mode == KernelMode::OneDNN ? " (oneDNN)" : " (reference)"));
      std::map<std::string, Tensor> State;
      std::string Prefix = Name + ".";
      for (const auto &[Key, T] : G)
        if (llvm::StringRef(Key).startswith(Prefix) && Key != Prefix + "output")
          State[Key.substr(Prefix.size())] = T;
      requireOk(M->load_state_dict(State));
      checkClose((*M)(X).tensor(), G.at(Prefix + "output"));
    }
  }
}

TEST_CASE("a PyTorch state_dict loads and forward matches PyTorch", "[nn]") {
  Small M;
  M.eval();
  requireOk(M.load_safetensors(std::string(QFX_TEST_DATA_DIR) +
                               "/nn/small.safetensors"));
  CHECK(M.bn->num_batches_tracked.getAsDouble(0) == 3);
  std::map<std::string, Tensor> IO = golden("small_io.safetensors");
  checkClose(M(IO.at("input")).tensor(), IO.at("output"));
}

TEST_CASE("forward errors name the module kind", "[nn]") {
  Linear L(5, 3);
  CHECK_THROWS_AS(L(ones({2, 4})), nn::Error);
  CHECK_THROWS_WITH(L(ones({2, 4})), StartsWith("Linear: "));
  Conv2d C(2, 4, 3);
  CHECK_THROWS_WITH(C(ones({2, 5})), StartsWith("Conv2d: "));
}

TEST_CASE("Dropout drops only in training mode", "[nn]") {
  Tensor X = iota({1000}, 1, 0.001);
  Dropout D(0.5);
  REQUIRE(D.is_training());
  Tensor Y = D(X).tensor();
  int64_t Zeros = 0;
  for (int64_t I = 0; I < X.numElements(); ++I) {
    double V = Y.getAsDouble(I);
    if (V == 0)
      ++Zeros;
    else
      REQUIRE(V == Approx(2 * X.getAsDouble(I)));
  }
  CHECK(Zeros > 400);
  CHECK(Zeros < 600);

  D.eval();
  CHECK(D(X).tensor().identical(X));
  Dropout All(1.0);
  Tensor Z = All(X).tensor();
  for (int64_t I = 0; I < X.numElements(); ++I)
    REQUIRE(Z.getAsDouble(I) == 0);
}

//===----------------------------------------------------------------------===//
// Under tracing
//===----------------------------------------------------------------------===//

namespace {
/// "<op>:<target>" of every node but placeholders and the output.
std::vector<std::string> calls(const GraphModule &GM) {
  std::vector<std::string> R;
  for (const Node *N : GM.graph().nodes())
    if (N->op() != OpCode::Placeholder && N->op() != OpCode::Output)
      R.push_back(opcodeName(N->op()).str() + ":" + N->target().str());
  return R;
}
} // namespace

TEST_CASE("inlined built-in modules record their op on their tensors", "[nn]") {
  Small M;
  M.eval();
  requireOk(M.load_safetensors(std::string(QFX_TEST_DATA_DIR) +
                               "/nn/small.safetensors"));
  std::map<std::string, Tensor> IO = golden("small_io.safetensors");
  std::vector<InputSpec> In = {
      InputSpec::symbolic("x", DType::F32, IO.at("input").shape())};

  auto Leaves = symbolicTrace(M, In);
  if (!Leaves)
    FAIL(errorToString(Leaves.takeError()));
  CHECK(calls(**Leaves) ==
        std::vector<std::string>{"call_module:conv", "call_module:bn",
                                 "call_module:relu", "call_module:pool",
                                 "call_module:head.0", "call_module:head.1"});

  TraceOptions Inline;
  Inline.IsLeafModule = [](const Module &, llvm::StringRef) { return false; };
  auto Flat = symbolicTrace(M, In, Inline);
  if (!Flat)
    FAIL(errorToString(Flat.takeError()));
  std::vector<std::string> Calls = calls(**Flat);
  CHECK(std::count(Calls.begin(), Calls.end(), "call_function:conv2d") == 1);
  CHECK(std::count(Calls.begin(), Calls.end(), "get_attr:conv.weight") == 1);
  CHECK(std::count(Calls.begin(), Calls.end(), "get_attr:bn.running_var") == 1);
  CHECK(std::count(Calls.begin(), Calls.end(), "call_function:linear") == 1);
  CHECK(std::count_if(Calls.begin(), Calls.end(), [](const std::string &C) {
          return llvm::StringRef(C).startswith("call_module");
        }) == 0);

  // Both graphs compute what eager forward computes.
  for (const GraphModule *GM : {Leaves->get(), Flat->get()}) {
    llvm::Expected<Tensor> Y = interpret(*GM, {IO.at("input")});
    if (!Y)
      FAIL(errorToString(Y.takeError()));
    checkClose(*Y, IO.at("output"));
  }
}
