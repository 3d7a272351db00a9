//===- FuseTest.cpp - The fuse pass: BN folding, numerics, fused modules --===//

#include "qfx/Transforms/Fuse.h"
#include "qfx/IR/GraphModule.h"
#include "qfx/IR/Verifier.h"
#include "qfx/Runtime/Interpreter.h"
#include "qfx/Runtime/ModuleRunner.h"
#include "qfx/Support/Error.h"
#include "qfx/Support/Npy.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

using namespace qfx;

namespace {

TensorType f32(std::initializer_list<int64_t> Dims) {
  return TensorType{DType::F32, Shape(Dims), {}};
}

/// Golden tensor \p Name ("conv_bn.fused_w") made by make_fuse_golden.py.
Tensor golden(const std::string &Name) {
  std::string Path = std::string(QFX_TEST_DATA_DIR) + "/fuse/" + Name + ".npy";
  llvm::Expected<Tensor> T = readNpy(Path);
  if (!T)
    FAIL(errorToString(T.takeError()));
  REQUIRE(T->dtype() == DType::F32);
  return *T;
}

/// The largest |got - want| / |want| (|want| below 1e-30 counts as 1e-30).
double maxRelativeError(const Tensor &Got, const Tensor &Want) {
  REQUIRE(formatShape(Got.shape()) == formatShape(Want.shape()));
  REQUIRE(Got.hasData());
  double Max = 0;
  for (int64_t I = 0; I < Want.numElements(); ++I) {
    double W = Want.getAsDouble(I), G = Got.getAsDouble(I);
    Max = std::max(Max, std::fabs(G - W) / std::max(std::fabs(W), 1e-30));
  }
  return Max;
}

/// The largest |got - want| relative to the largest |want| of the tensor.
double maxNormwiseError(const Tensor &Got, const Tensor &Want) {
  REQUIRE(formatShape(Got.shape()) == formatShape(Want.shape()));
  double Scale = 0, Max = 0;
  for (int64_t I = 0; I < Want.numElements(); ++I)
    Scale = std::max(Scale, std::fabs(Want.getAsDouble(I)));
  for (int64_t I = 0; I < Want.numElements(); ++I)
    Max = std::max(Max, std::fabs(Got.getAsDouble(I) - Want.getAsDouble(I)));
  return Max / std::max(Scale, 1e-30);
}

Tensor randomTensor(std::mt19937 &Rng, llvm::ArrayRef<int64_t> S, float Lo = -1,
                    float Hi = 1) {
  std::uniform_real_distribution<float> D(Lo, Hi);
  Tensor T(DType::F32, S);
  for (int64_t I = 0; I < T.numElements(); ++I)
    T.data<float>()[I] = D(Rng);
  return T;
}

/// Fails the test on an error.
void requireOk(llvm::Error E) {
  if (E)
    FAIL(errorToString(std::move(E)));
}

/// The value, failing the test on an error.
template <typename T> T take(llvm::Expected<T> V) {
  if (!V)
    FAIL(errorToString(V.takeError()));
  return std::move(*V);
}

void runFuse(GraphModule &GM, PassContext &Ctx) {
  Fuse F;
  requireOk(F.run(GM, Ctx));
}

//===----------------------------------------------------------------------===//
// Model builders
//===----------------------------------------------------------------------===//

void addConv(GraphModule &GM, llvm::StringRef Path, int64_t In, int64_t Out,
             int64_t K, std::mt19937 &Rng, bool Bias = true) {
  ModuleInfo &M = GM.addModule(Path, "Conv2d");
  M.setAttr("in_channels", Argument::integer(In));
  M.setAttr("out_channels", Argument::integer(Out));
  M.setAttr("kernel_size", Argument::ints({K, K}));
  M.setAttr("stride", Argument::ints({1, 1}));
  M.setAttr("padding", Argument::ints({K / 2, K / 2}));
  M.setAttr("dilation", Argument::ints({1, 1}));
  M.setAttr("groups", Argument::integer(1));
  M.setTensor("weight", randomTensor(Rng, {Out, In, K, K}));
  if (Bias)
    M.setTensor("bias", randomTensor(Rng, {Out}));
}

void addLinear(GraphModule &GM, llvm::StringRef Path, int64_t In, int64_t Out,
               std::mt19937 &Rng) {
  ModuleInfo &M = GM.addModule(Path, "Linear");
  M.setAttr("in_features", Argument::integer(In));
  M.setAttr("out_features", Argument::integer(Out));
  M.setTensor("weight", randomTensor(Rng, {Out, In}));
  M.setTensor("bias", randomTensor(Rng, {Out}));
}

void addBatchNorm(GraphModule &GM, llvm::StringRef Path, llvm::StringRef Kind,
                  int64_t C, std::mt19937 &Rng) {
  ModuleInfo &M = GM.addModule(Path, Kind.str());
  M.setAttr("num_features", Argument::integer(C));
  M.setAttr("eps", Argument::real(1e-5));
  M.setAttr("momentum", Argument::real(0.1));
  M.setTensor("weight", randomTensor(Rng, {C}, 0.5f, 2.0f));
  M.setTensor("bias", randomTensor(Rng, {C}));
  M.setTensor("running_mean", randomTensor(Rng, {C}), /*IsBuffer=*/true);
  M.setTensor("running_var", randomTensor(Rng, {C}, 0.1f, 3.0f), true);
}

/// How a relu is called.
enum class ReLUForm { Module, Function, Method };

Node *addReLU(GraphModule &GM, Node *In, ReLUForm Form,
              llvm::StringRef Path = "relu") {
  Graph &G = GM.graph();
  Node *R = nullptr;
  switch (Form) {
  case ReLUForm::Module:
    if (!GM.lookupModule(Path))
      GM.addModule(Path, "ReLU");
    R = G.callModule(Path, {In});
    break;
  case ReLUForm::Function:
    R = G.callFunction("relu", {In});
    break;
  case ReLUForm::Method:
    R = G.callMethod("relu", {In});
    break;
  }
  R->setType(In->type());
  return R;
}

Node *addCall(Graph &G, llvm::StringRef Path, Node *In, TensorType T) {
  Node *N = G.callModule(Path, {In});
  N->setType(T);
  return N;
}

/// One pattern instance: builds the unfused model and says what fusion
/// should make of the module at "m1".
struct PatternCase {
  const char *Name;
  std::vector<Tensor> (*Inputs)(std::mt19937 &);
  std::function<void(GraphModule &, std::mt19937 &)> Build;
  const char *EvalKind;
  const char *QATKind;
};

std::vector<Tensor> convInput(std::mt19937 &R) {
  return {randomTensor(R, {2, 3, 6, 6})};
}
std::vector<Tensor> convAddInputs(std::mt19937 &R) {
  return {randomTensor(R, {2, 3, 6, 6}), randomTensor(R, {2, 4, 6, 6})};
}
std::vector<Tensor> linearInput(std::mt19937 &R) {
  return {randomTensor(R, {3, 5})};
}

/// x -> conv "m1" (3 -> 4 channels, 3x3, padding 1) [-> bn "m2"].
Node *convPrefix(GraphModule &GM, std::mt19937 &R, bool WithBN) {
  Graph &G = GM.graph();
  addConv(GM, "m1", 3, 4, 3, R);
  Node *X = G.placeholder("x", f32({2, 3, 6, 6}));
  Node *N = addCall(G, "m1", X, f32({2, 4, 6, 6}));
  if (WithBN) {
    addBatchNorm(GM, "m2", "BatchNorm2d", 4, R);
    N = addCall(G, "m2", N, f32({2, 4, 6, 6}));
  }
  return N;
}

/// conv "m1" + y, the conv result on the \p ConvFirst side of the add.
Node *convAdd(GraphModule &GM, std::mt19937 &R, bool ConvFirst) {
  Node *C = convPrefix(GM, R, /*WithBN=*/false);
  Node *Y = GM.graph().placeholder("y", f32({2, 4, 6, 6}));
  std::vector<Argument> Args = {C, Y};
  if (!ConvFirst)
    std::swap(Args[0], Args[1]);
  Node *A = GM.graph().callFunction("add", Args);
  A->setType(C->type());
  return A;
}

std::vector<PatternCase> patternCases() {
  auto Out = [](GraphModule &GM, Node *N) { GM.graph().output(N); };
  return {
      {"conv-bn-relu (module relu)", convInput,
       [=](GraphModule &GM, std::mt19937 &R) {
         Out(GM, addReLU(GM, convPrefix(GM, R, true), ReLUForm::Module));
       },
       "ConvReLU2d", "ConvBnReLU2d"},
      {"conv-bn", convInput,
       [=](GraphModule &GM, std::mt19937 &R) {
         Out(GM, convPrefix(GM, R, true));
       },
       "Conv2d", "ConvBn2d"},
      {"conv-relu (function relu)", convInput,
       [=](GraphModule &GM, std::mt19937 &R) {
         Out(GM, addReLU(GM, convPrefix(GM, R, false), ReLUForm::Function));
       },
       "ConvReLU2d", "ConvReLU2d"},
      {"conv-add (conv first)", convAddInputs,
       [=](GraphModule &GM, std::mt19937 &R) { Out(GM, convAdd(GM, R, true)); },
       "ConvAdd2d", "ConvAdd2d"},
      {"conv-add-relu (conv second, method relu)", convAddInputs,
       [=](GraphModule &GM, std::mt19937 &R) {
         Out(GM, addReLU(GM, convAdd(GM, R, false), ReLUForm::Method));
       },
       "ConvAddReLU2d", "ConvAddReLU2d"},
      {"linear-bn", linearInput,
       [=](GraphModule &GM, std::mt19937 &R) {
         addLinear(GM, "m1", 5, 3, R);
         addBatchNorm(GM, "m2", "BatchNorm1d", 3, R);
         Graph &G = GM.graph();
         Node *X = G.placeholder("x", f32({3, 5}));
         Out(GM,
             addCall(G, "m2", addCall(G, "m1", X, f32({3, 3})), f32({3, 3})));
       },
       "Linear", "LinearBn1d"},
      {"linear-relu (module relu)", linearInput,
       [=](GraphModule &GM, std::mt19937 &R) {
         addLinear(GM, "m1", 5, 3, R);
         Graph &G = GM.graph();
         Node *X = G.placeholder("x", f32({3, 5}));
         Out(GM,
             addReLU(GM, addCall(G, "m1", X, f32({3, 3})), ReLUForm::Module));
       },
       "LinearReLU", "LinearReLU"},
      {"bn-relu (method relu)", convInput,
       [=](GraphModule &GM, std::mt19937 &R) {
         addBatchNorm(GM, "m1", "BatchNorm2d", 3, R);
         Graph &G = GM.graph();
         Node *X = G.placeholder("x", f32({2, 3, 6, 6}));
         Out(GM, addReLU(GM, addCall(G, "m1", X, f32({2, 3, 6, 6})),
                         ReLUForm::Method));
       },
       "BNReLU2d", "BNReLU2d"},
  };
}

size_t numComputeNodes(const Graph &G) {
  size_t N = 0;
  for (const Node &Nd : G)
    N += Nd.op() != OpCode::Placeholder && Nd.op() != OpCode::Output;
  return N;
}

} // namespace

//===----------------------------------------------------------------------===//
// BatchNorm folding vs PyTorch
//===----------------------------------------------------------------------===//

namespace {

/// A conv/linear "m1" followed by BatchNorm "m2", both filled from golden
/// case \p Case; fuses (without QAT) and compares with PyTorch.
void foldGoldenCase(const std::string &Case, bool IsConv, bool HasBias,
                    bool HasAffine, double Eps, int64_t Groups) {
  GraphModule GM;
  Tensor W = golden(Case + ".w");
  int64_t C = W.dim(0);
  ModuleInfo &L = GM.addModule("m1", IsConv ? "Conv2d" : "Linear");
  L.setTensor("weight", W);
  if (HasBias)
    L.setTensor("bias", golden(Case + ".b"));
  ModuleInfo &BN = GM.addModule("m2", IsConv ? "BatchNorm2d" : "BatchNorm1d");
  BN.setAttr("eps", Argument::real(Eps));
  if (HasAffine) {
    BN.setTensor("weight", golden(Case + ".weight"));
    BN.setTensor("bias", golden(Case + ".bias"));
  }
  BN.setTensor("running_mean", golden(Case + ".mean"), true);
  BN.setTensor("running_var", golden(Case + ".var"), true);
  Graph &G = GM.graph();
  TensorType In =
      IsConv ? f32({1, W.dim(1) * Groups, 4, 4}) : f32({2, W.dim(1)});
  TensorType Out = IsConv ? f32({1, C, 4, 4}) : f32({2, C});
  if (IsConv) {
    L.setAttr("groups", Argument::integer(Groups));
    L.setAttr("kernel_size", Argument::ints({W.dim(2), W.dim(3)}));
    L.setAttr("padding", Argument::ints({W.dim(2) / 2, W.dim(3) / 2}));
  }
  Node *X = G.placeholder("x", In);
  G.output(addCall(G, "m2", addCall(G, "m1", X, Out), Out));

  Tensor OrigW = W.clone();
  PassContext Ctx;
  runFuse(GM, Ctx);
  requireOk(verify(GM));
  const ModuleInfo *F = GM.lookupModule("m1");
  REQUIRE(F);
  CHECK(F->kind() == (IsConv ? "Conv2d" : "Linear"));
  CHECK_FALSE(GM.lookupModule("m2"));
  REQUIRE(F->tensor("weight"));
  REQUIRE(F->tensor("bias"));
  double ErrW =
      maxRelativeError(*F->tensor("weight"), golden(Case + ".fused_w"));
  double ErrB = maxRelativeError(*F->tensor("bias"), golden(Case + ".fused_b"));
  CHECK(ErrW <= 1e-6);
  CHECK(ErrB <= 1e-6);
  // The same float32 operations in the same order give the same bits; the
  // golden cases have enough channels for another order to differ.
  CHECK(F->tensor("weight")->identical(golden(Case + ".fused_w")));
  CHECK(F->tensor("bias")->identical(golden(Case + ".fused_b")));
  // The original weight (shared storage) is left as it was.
  CHECK(W.identical(OrigW));
  // Parameters keep PyTorch's order: weight, then bias.
  REQUIRE(F->tensors().size() == 2);
  CHECK(F->tensors()[0].Name == "weight");
  CHECK(F->tensors()[1].Name == "bias");
  CHECK_FALSE(F->tensors()[1].IsBuffer);
}

} // namespace

TEST_CASE("fuse: conv + bn folds like fuse_conv_bn_eval", "[fuse]") {
  SECTION("with bias and affine") {
    foldGoldenCase("conv_bn", true, true, true, 1e-5, 1);
  }
  SECTION("no conv bias, no bn affine, groups 2, eps 1e-3") {
    foldGoldenCase("conv_nobias_bn_noaffine", true, false, false, 1e-3, 2);
  }
}

TEST_CASE("fuse: linear + bn folds like fuse_linear_bn_eval", "[fuse]") {
  SECTION("with bias") {
    foldGoldenCase("linear_bn", false, true, true, 1e-5, 1);
  }
  SECTION("no linear bias, eps 1e-4") {
    foldGoldenCase("linear_nobias_bn", false, false, true, 1e-4, 1);
  }
}

//===----------------------------------------------------------------------===//
// Fused graphs compute what the unfused ones did
//===----------------------------------------------------------------------===//

TEST_CASE("fuse: fused graphs match unfused graphs numerically", "[fuse]") {
  for (bool QAT : {false, true}) {
    for (const PatternCase &PC : patternCases()) {
      DYNAMIC_SECTION(PC.Name << (QAT ? " (QAT)" : "")) {
        std::mt19937 Rng(1234);
        GraphModule GM;
        PC.Build(GM, Rng);
        requireOk(verify(GM));
        std::unique_ptr<GraphModule> Fused = GM.clone();
        PassContext Ctx;
        Ctx.QAT = QAT;
        Fuse F;
        requireOk(F.run(*Fused, Ctx));
        requireOk(verify(*Fused));
        CHECK(F.numFused() == 1);
        REQUIRE(Fused->lookupModule("m1"));
        CHECK(Fused->lookupModule("m1")->kind() ==
              (QAT ? PC.QATKind : PC.EvalKind));
        CHECK(numComputeNodes(Fused->graph()) == 1);
        CHECK_FALSE(Fused->lookupModule("m2"));

        std::vector<Tensor> In = PC.Inputs(Rng);
        Tensor Want = take(interpret(GM, In));
        Tensor Got = take(interpret(*Fused, In));
        CHECK(maxNormwiseError(Got, Want) <= 1e-5);
        // The fused node keeps the type of the chain's result.
        const Node *Out = Fused->graph().outputNode();
        const Node *FusedNode = Out->arg(0).getNode();
        REQUIRE(FusedNode->type());
        CHECK(formatShape(FusedNode->type()->Dims) == formatShape(Got.shape()));
      }
    }
  }
}

//===----------------------------------------------------------------------===//
// Remarks and the originals
//===----------------------------------------------------------------------===//

TEST_CASE("fuse: remarks say what was fused and why not", "[fuse]") {
  std::mt19937 Rng(7);
  GraphModule GM;
  Graph &G = GM.graph();
  // conv1 -> bn1 -> relu is fused; conv2 also feeds the output directly.
  Node *C1 = convPrefix(GM, Rng, /*WithBN=*/true);
  Node *R1 = addReLU(GM, C1, ReLUForm::Function);
  addConv(GM, "c2", 4, 4, 3, Rng);
  Node *C2 = addCall(G, "c2", R1, f32({2, 4, 6, 6}));
  Node *R2 = addReLU(GM, C2, ReLUForm::Module);
  G.output(Argument::list({R2, C2}));
  requireOk(verify(GM));

  PassContext Ctx;
  runFuse(GM, Ctx);
  requireOk(verify(GM));
  REQUIRE(Ctx.Remarks.size() == 2);
  CHECK(Ctx.Remarks[0].Pass == "fuse");
  CHECK(Ctx.Remarks[0].Node == "m1");
  CHECK(Ctx.Remarks[0].Message ==
        "fused m1 + m2 + relu into ConvReLU2d (bn folded)");
  CHECK(Ctx.Remarks[1].Node == "c2");
  CHECK(Ctx.Remarks[1].Message ==
        "not fused (conv-relu): c2 -> relu_1: 'c2' is also a graph output");
}

TEST_CASE("fuse: near misses name the extra user", "[fuse]") {
  std::mt19937 Rng(8);
  GraphModule GM;
  Graph &G = GM.graph();
  Node *C = convPrefix(GM, Rng, /*WithBN=*/false);
  addBatchNorm(GM, "bn", "BatchNorm2d", 4, Rng);
  Node *B = addCall(G, "bn", C, f32({2, 4, 6, 6}));
  Node *S = G.callFunction("sigmoid", {C});
  S->setType(C->type());
  G.output(Argument::list({B, S}));

  PassContext Ctx;
  Fuse F;
  requireOk(F.run(GM, Ctx));
  CHECK(F.numFused() == 0);
  REQUIRE(Ctx.Remarks.size() == 1);
  CHECK(Ctx.Remarks[0].Message ==
        "not fused (conv-bn-relu): m1 -> bn: 'm1' has 2 users");
}

TEST_CASE("fuse: original tensors are never written", "[fuse]") {
  std::mt19937 Rng(9);
  GraphModule GM;
  Node *C = convPrefix(GM, Rng, /*WithBN=*/true);
  GM.graph().output(C);
  // Tensor copies share storage, like the user's model sharing parameters.
  std::vector<std::pair<Tensor, Tensor>> Kept;
  for (const auto &NT : GM.namedTensors())
    Kept.emplace_back(*NT.second, NT.second->clone());
  PassContext Ctx;
  runFuse(GM, Ctx);
  REQUIRE(GM.lookupModule("m1")->kind() == "Conv2d");
  CHECK_FALSE(GM.lookupModule("m2"));
  for (const auto &KV : Kept)
    CHECK(KV.first.identical(KV.second));
  // The folded weight is new storage.
  CHECK(GM.lookupTensor("m1.weight")->rawData() != Kept[0].first.rawData());
}

//===----------------------------------------------------------------------===//
// Running fused modules
//===----------------------------------------------------------------------===//

TEST_CASE("fused kinds: table and runtime errors", "[fuse]") {
  for (const FusedKindDef &D : allFusedKinds())
    CHECK(lookupFusedKind(D.Kind) == &D);
  CHECK_FALSE(lookupFusedKind("Conv2d"));
  REQUIRE(lookupFusedKind("ConvAddReLU2d"));
  auto Children = lookupFusedKind("ConvAddReLU2d")->children();
  REQUIRE(Children.size() == 2);
  CHECK(std::string(Children[0].first) == "0");
  CHECK(std::string(Children[1].second) == "ReLU");

  std::mt19937 Rng(3);
  GraphModule GM;
  ModuleInfo &F = GM.addModule("f", "ConvAdd2d");
  addConv(GM, "f.0", 3, 4, 3, Rng);
  Tensor X = randomTensor(Rng, {1, 3, 5, 5});
  Tensor Y = randomTensor(Rng, {1, 4, 5, 5});

  // conv(x) + y, and the types agree.
  Tensor Got = take(runModule(GM, "f", {Operand(X), Operand(Y)}));
  Tensor Conv = take(runModule(GM, "f.0", {Operand(X)}));
  Tensor Want = take(runOp("add", {Operand(Conv), Operand(Y)}));
  CHECK(Got.identical(Want));
  TensorType T =
      take(inferModule(GM, "f",
                       {Operand(Tensor::declared(DType::F32, {1, 3, 5, 5})),
                        Operand(Tensor::declared(DType::F32, {1, 4, 5, 5}))}));
  CHECK(formatShape(T.Dims) == "[1,4,5,5]");

  auto ErrorOf = [](llvm::Expected<Tensor> R) {
    return R ? std::string() : errorToString(R.takeError());
  };
  CHECK(ErrorOf(runModule(GM, "f", {Operand(X)})) ==
        "ConvAdd2d 'f' takes 2 inputs, got 1");
  CHECK(ErrorOf(runModule(GM, "g", {Operand(X)})) == "no module 'g'");
  F.setKind("ConvReLU2d");
  CHECK(ErrorOf(runModule(GM, "f", {Operand(X)})) ==
        "ConvReLU2d 'f' has no child '1'");
  F.addChild("1", "Sigmoid");
  CHECK(ErrorOf(runModule(GM, "f", {Operand(X)})) ==
        "ConvReLU2d 'f': child '1' is a Sigmoid, expected ReLU");
}

TEST_CASE("standard kinds run as before; BatchNorm1d runs", "[fuse]") {
  std::mt19937 Rng(5);
  GraphModule GM;
  addBatchNorm(GM, "bn", "BatchNorm1d", 3, Rng);
  Tensor X = randomTensor(Rng, {4, 3});
  Tensor Got = take(runModule(GM, "bn", {Operand(X)}));
  auto Call = take(bindModuleCall(*GM.lookupModule("bn"), {Operand(X)}));
  Tensor Want = take(Call.first->Run(Call.second));
  CHECK(Got.identical(Want));
  // Not the identity: the statistics were applied.
  CHECK_FALSE(Got.identical(X));
  TensorType T = take(inferModule(GM, "bn", {Operand(X)}));
  CHECK(formatShape(T.Dims) == "[4,3]");
}
