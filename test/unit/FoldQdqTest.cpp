//===- FoldQdqTest.cpp - QDQ graphs folded into int8 graphs ---------------===//
//
// fold-qdq on QDQ graphs built here: folded graphs run by the interpreter and
// by compile() agree with the QDQ graph within one quantization step, the
// int8 ops lower without fallbacks, refusals are remarks, and a zoo model's
// reference graph, unfolded into QDQ form, folds back to itself.
//
//===----------------------------------------------------------------------===//

#include "TestUtil.h"

#include "qfx/Codegen/Lowering.h"
#include "qfx/IR/GraphModule.h"
#include "qfx/IR/Parser.h"
#include "qfx/IR/Printer.h"
#include "qfx/IR/Verifier.h"
#include "qfx/Models/Zoo.h"
#include "qfx/Pipeline/QuantizeFx.h"
#include "qfx/Quant/QConfigMapping.h"
#include "qfx/Quant/Quantize.h"
#include "qfx/Runtime/Interpreter.h"
#include "qfx/Trace/SymbolicTrace.h"
#include "qfx/Transforms/FoldQdq.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <random>

using namespace qfx;
using namespace qfx::testutil;

namespace {

void requireOk(llvm::Error E) {
  if (E)
    FAIL(errorToString(std::move(E)));
}

/// Uniform floats in [Lo, Hi) of shape \p S.
Tensor uniform(llvm::ArrayRef<int64_t> S, uint32_t Seed, float Lo = -1.0f,
               float Hi = 1.0f) {
  std::mt19937 Gen(Seed);
  Tensor T(DType::F32, S);
  for (int64_t I = 0; I < T.numElements(); ++I)
    T.data<float>()[I] = Lo + (Hi - Lo) * float(Gen() >> 8) / 16777216.0f;
  return T;
}

double maxDiff(const Tensor &A, const Tensor &B) {
  REQUIRE(A.shape() == B.shape());
  double M = 0;
  for (int64_t I = 0; I < A.numElements(); ++I)
    M = std::max(M, std::fabs(A.getAsDouble(I) - B.getAsDouble(I)));
  return M;
}

TensorType f32(llvm::ArrayRef<int64_t> S) {
  return TensorType{DType::F32, Shape(S.begin(), S.end()), {}};
}

TensorType int8(DType T, llvm::ArrayRef<int64_t> S, double Scale, int64_t Zp) {
  return TensorType{T, Shape(S.begin(), S.end()),
                    QuantParams::perTensor(Scale, Zp)};
}

/// Builds QDQ graphs the way the ONNX importer emits them.
struct QdqBuilder {
  std::unique_ptr<GraphModule> GM = std::make_unique<GraphModule>();
  Graph &G = GM->graph();

  Node *typed(Node *N, TensorType T) {
    N->setType(std::move(T));
    return N;
  }
  /// Activations' dtype: quint8 (ONNX Runtime's default) or qint8, whose
  /// zero points are the quint8 ones minus 128.
  DType Act = DType::U8;

  /// quantize_per_tensor with quint8 zero point \p Zp (shifted for qint8).
  Node *quantize(Node *X, double Scale, int64_t Zp) {
    if (Act == DType::S8)
      Zp -= 128;
    Node *Q = G.callFunction(
        "quantize_per_tensor",
        {X, Argument::real(Scale), Argument::integer(Zp),
         Argument::string(Act == DType::U8 ? "quint8" : "qint8")});
    return typed(Q, int8(Act, X->type()->Dims, Scale, Zp));
  }
  Node *dequantize(Node *Q) {
    return typed(G.callMethod("dequantize", {Q}), f32(Q->type()->Dims));
  }
  /// A constant at \p Path read through get_attr (dequantized if it is
  /// quantized).
  Node *constant(const std::string &Path, Tensor T) {
    requireOk(GM->setTensor(Path, T));
    Node *A = G.getAttr(
        Path, TensorType{T.dtype(), Shape(T.shape().begin(), T.shape().end()),
                         T.quant()});
    return T.quant().isNone() ? A : dequantize(A);
  }
  /// s8 symmetric weights per channel (or per tensor) and an s32 bias with
  /// scales InScale * w_scale, as ONNX Runtime's quantizer writes them.
  std::pair<Node *, Node *> weights(const std::string &Module, Tensor W,
                                    double InScale, bool PerChannel,
                                    uint32_t Seed) {
    GM->addModule(Module, "Module");
    int64_t O = W.dim(0), PerCh = W.numElements() / O;
    std::vector<double> Scales(O);
    for (int64_t C = 0; C < O; ++C) {
      double M = 0;
      for (int64_t I = 0; I < (PerChannel ? PerCh : W.numElements()); ++I)
        M = std::max(
            M, std::fabs(W.getAsDouble((PerChannel ? C * PerCh : 0) + I)));
      Scales[C] = M / 127.0;
    }
    Tensor QW = PerChannel
                    ? quantizePerChannel(W, Scales, std::vector<int64_t>(O, 0),
                                         0, DType::S8)
                    : quantizePerTensor(W, Scales[0], 0, DType::S8);
    Tensor B = uniform({O}, Seed, -0.2f, 0.2f);
    std::vector<double> BScales;
    for (double S : Scales)
      BScales.push_back(S * InScale);
    Tensor QB = quantizePerChannel(B, BScales, std::vector<int64_t>(O, 0), 0,
                                   DType::S32);
    return {constant(Module + ".weight", QW), constant(Module + ".bias", QB)};
  }
  Node *conv(const std::string &Module, Node *X, double InScale, int64_t Out,
             bool PerChannel, uint32_t Seed) {
    const Shape &S = X->type()->Dims;
    auto [W, B] = weights(Module, uniform({Out, S[1], 3, 3}, Seed, -0.5f, 0.5f),
                          InScale, PerChannel, Seed + 1);
    Node *C = G.callFunction(
        "conv2d", {X, W, B, Argument::ints({1, 1}), Argument::ints({1, 1}),
                   Argument::ints({1, 1}), Argument::integer(1)});
    C->setScope(Module);
    return typed(C, f32({S[0], Out, S[2], S[3]}));
  }
};

/// x -> conv1 -> relu -> q -> dq -> conv2 -> add(dq x1) -> relu -> q ->
/// max_pool2d (q, same qparams) -> conv3 (per-tensor weight) -> q, and the
/// add of two branches through quantized_add -> flatten -> linear -> q.
std::unique_ptr<GraphModule> smallQdqGraph(DType Act = DType::U8) {
  QdqBuilder B;
  B.Act = Act;
  Graph &G = B.G;
  Node *X = B.typed(G.placeholder("x"), f32({1, 3, 8, 8}));
  const double SX = 2.0 / 255, S1 = 4.0 / 255, S2 = 6.0 / 255, S3 = 5.0 / 255,
               S4 = 8.0 / 255, SL = 10.0 / 255;
  Node *QX = B.quantize(X, SX, 128);
  Node *C1 = B.conv("conv1", B.dequantize(QX), SX, 4, true, 1);
  Node *R1 = B.typed(G.callFunction("relu", {C1}), *C1->type());
  R1->setScope("conv1");
  Node *Q1 = B.quantize(R1, S1, 0);
  Node *C2 = B.conv("conv2", B.dequantize(Q1), S1, 4, true, 3);
  Node *Add =
      B.typed(G.callFunction("add", {C2, B.dequantize(Q1)}), *C2->type());
  Node *R2 = B.typed(G.callFunction("relu", {Add}), *C2->type());
  Node *Q2 = B.quantize(R2, S2, 0);
  Node *Pool = B.typed(
      G.callFunction("max_pool2d", {B.dequantize(Q2), Argument::integer(2)}),
      f32({1, 4, 4, 4}));
  Node *QP = B.quantize(Pool, S2, 0);
  Node *C3 = B.conv("conv3", B.dequantize(QP), S2, 4, false, 5);
  Node *Q3 = B.quantize(C3, S3, 128);
  Node *Sum =
      B.typed(G.callFunction("add", {B.dequantize(Q3), B.dequantize(QP)}),
              f32({1, 4, 4, 4}));
  Node *QS = B.quantize(Sum, S4, 128);
  Node *Flat = B.typed(
      G.callFunction("flatten", {B.dequantize(QS), Argument::integer(1)}),
      f32({1, 64}));
  Node *QF = B.quantize(Flat, S4, 128);
  auto [W, Bias] =
      B.weights("fc", uniform({10, 64}, 7, -0.2f, 0.2f), S4, true, 8);
  Node *L = B.typed(G.callFunction("linear", {B.dequantize(QF), W, Bias}),
                    f32({1, 10}));
  L->setScope("fc");
  Node *QL = B.quantize(L, SL, 128);
  G.output(B.dequantize(QL));
  requireOk(verify(*B.GM));
  return std::move(B.GM);
}

std::vector<std::string> moduleKinds(const GraphModule &GM) {
  std::vector<std::string> R;
  for (const std::string &P : GM.moduleNames())
    R.push_back(P + ":" + GM.lookupModule(P)->kind().str());
  return R;
}

std::vector<std::string> targets(const GraphModule &GM) {
  std::vector<std::string> R;
  for (const Node &N : GM.graph())
    if (N.op() != OpCode::Placeholder && N.op() != OpCode::Output)
      R.push_back(N.name().str() + "=" + N.target().str());
  return R;
}

/// The scale of the int8 value the output dequantizes.
double outputStep(const GraphModule &GM) {
  const Node *Deq = GM.graph().outputNode()->arg(0).getNode();
  return Deq->arg(0).getNode()->type()->Quant.Scale;
}

//===----------------------------------------------------------------------===//
// Unfolding a reference quantized graph into QDQ form
//===----------------------------------------------------------------------===//

/// The float op, relu and add of each quantized module kind.
struct Unfolded {
  const char *Kind, *Op;
  bool Add, Relu;
};
const Unfolded UnfoldTable[] = {
    {"QuantizedConv2d", "conv2d", false, false},
    {"QuantizedConvReLU2d", "conv2d", false, true},
    {"QuantizedConvAdd2d", "conv2d", true, false},
    {"QuantizedConvAddReLU2d", "conv2d", true, true},
    {"QuantizedLinear", "linear", false, false},
    {"QuantizedLinearReLU", "linear", false, true},
};

/// Rewrites every int8 node of \p GM (a convert_to_reference_fx result) as
/// dequantize -> float op -> quantize_per_tensor, the form a QDQ ONNX model
/// imports as: quantized modules become functional conv2d / linear reading
/// their weight through get_attr + dequantize (the module becomes a plain
/// holder of its tensors), quantized_* functions their float op, and ops on
/// int8 values (pools, reshapes) run on a dequantized copy followed by a
/// quantize with the same qparams. Returns how many int8 nodes it unfolded.
size_t unfoldToQdq(GraphModule &GM) {
  Graph &G = GM.graph();
  size_t Count = 0;
  for (Node *N : G.nodes()) {
    if (N->op() == OpCode::Placeholder || N->op() == OpCode::Output ||
        N->op() == OpCode::GetAttr || N->target() == "quantize_per_tensor" ||
        N->target() == "dequantize" || !N->type() || N->type()->Quant.isNone())
      continue;
    G.setInsertPoint(N);
    const TensorType Out = *N->type();
    auto Deq = [&](Node *In) {
      Node *D = G.callMethod("dequantize", {In});
      D->setType(f32(In->type()->Dims));
      return D;
    };
    auto Float = [&](Node *F) {
      F->setType(f32(Out.Dims));
      F->setScope(N->scope().str());
      return F;
    };
    Node *Last = nullptr, *Main = nullptr;
    ModuleInfo *M =
        N->op() == OpCode::CallModule ? GM.lookupModule(N->target()) : nullptr;
    const Unfolded *U = nullptr;
    for (const Unfolded &E : UnfoldTable)
      if (M && M->kind() == E.Kind)
        U = &E;
    if (U) {
      std::string P = N->target().str();
      Node *W = G.getAttr(P + ".weight");
      const Tensor *WT = M->tensor("weight");
      W->setType(TensorType{DType::S8,
                            Shape(WT->shape().begin(), WT->shape().end()),
                            WT->quant()});
      std::vector<Argument> Args = {Deq(N->arg(0).getNode()), Deq(W)};
      if (const Tensor *B = M->tensor("bias")) {
        Node *BN = G.getAttr(P + ".bias");
        BN->setType(f32(B->shape()));
        Args.push_back(BN);
      } else {
        Args.push_back(Argument::none());
      }
      if (llvm::StringRef(U->Op) == "conv2d")
        for (const char *A : {"stride", "padding", "dilation", "groups"})
          Args.push_back(*M->attr(A));
      Last = Main = Float(G.callFunction(U->Op, std::move(Args)));
      if (U->Add)
        Last = Float(G.callFunction("add", {Last, Deq(N->arg(1).getNode())}));
      if (U->Relu)
        Last = Float(G.callFunction("relu", {Last}));
      std::vector<std::string> Attrs;
      for (const auto &KV : M->attrs())
        Attrs.push_back(KV.first);
      for (const std::string &A : Attrs)
        M->eraseAttr(A);
      M->setKind("Module");
    } else {
      // Functions: quantized_* become their float op; the rest (and modules
      // such as MaxPool2d) run on a dequantized input.
      llvm::StringRef T = N->target();
      std::vector<Argument> Args(N->args().begin(), N->args().end());
      for (Argument &A : Args)
        if (A.isNode() && A.getNode()->type() &&
            !A.getNode()->type()->Quant.isNone())
          A = Deq(A.getNode());
      if (T.consume_front("quantized_")) {
        bool Relu = T.consume_back("_relu");
        REQUIRE((T == "add" || T == "mul"));
        Last = Main = Float(G.callFunction(T, {Args[0], Args[1]}));
        if (Relu)
          Last = Float(G.callFunction("relu", {Last}));
      } else {
        Last = Main = Float(G.create(N->op(), N->name(), N->target(),
                                     std::move(Args), N->kwargs()));
      }
    }
    Node *Q = G.callFunction(
        "quantize_per_tensor",
        {Last, Argument::real(Out.Quant.Scale),
         Argument::integer(Out.Quant.ZeroPoint),
         Argument::string(Out.Dtype == DType::U8 ? "quint8" : "qint8")});
    Q->setType(Out);
    for (const auto &KV : N->meta())
      Main->setMeta(KV.first, KV.second);
    N->replaceAllUsesWith(Q);
    std::string Name = N->name().str();
    G.erase(N);
    requireOk(G.rename(Main, Name));
    ++Count;
  }
  G.setInsertPointToEnd();
  return Count;
}

TEST_CASE("fold-qdq: a QDQ conv/relu/add/pool/linear graph becomes int8 "
          "modules and functions",
          "[fold-qdq]") {
  std::unique_ptr<GraphModule> GM = smallQdqGraph();
  PassContext Ctx;
  FoldQdq P;
  requireOk(P.run(*GM, Ctx));
  requireOk(verify(*GM));
  CHECK(P.numFolded() == 7);
  CHECK(moduleKinds(*GM) == std::vector<std::string>{
                                "conv1:QuantizedConvReLU2d",
                                "conv2:QuantizedConvAddReLU2d",
                                "conv3:QuantizedConv2d", "fc:QuantizedLinear"});
  CHECK(targets(*GM) ==
        std::vector<std::string>{"quantize_per_tensor=quantize_per_tensor",
                                 "conv2d=conv1", "conv2d_1=conv2",
                                 "max_pool2d=max_pool2d", "conv2d_2=conv3",
                                 "add_1=quantized_add", "flatten=flatten",
                                 "linear=fc", "dequantize_17=dequantize"});
}

TEST_CASE("fold-qdq: the folded graph, interpreted and compiled, agrees with "
          "the QDQ graph within one quantization step",
          "[fold-qdq][lowering]") {
  DType Act = GENERATE(DType::U8, DType::S8);
  INFO("activations " << dtypeName(Act).str());
  std::unique_ptr<GraphModule> Qdq = smallQdqGraph(Act);
  std::unique_ptr<GraphModule> Folded = Qdq->clone();
  PassContext Ctx;
  requireOk(FoldQdq().run(*Folded, Ctx));
  CompileOptions Opts;
  Opts.RejectFallbacks = true;
  std::unique_ptr<CompiledModule> C = take(compile(*Folded, Opts));
  CHECK(C->fallbacks().empty());
  double Step = outputStep(*Folded);
  double WorstInterp = 0, WorstCompiled = 0;
  for (uint32_t Seed = 0; Seed < 8; ++Seed) {
    Tensor X = uniform({1, 3, 8, 8}, 100 + Seed);
    Tensor Ref = take(interpret(*Qdq, {X}));
    WorstInterp =
        std::max(WorstInterp, maxDiff(Ref, take(interpret(*Folded, {X}))));
    WorstCompiled = std::max(WorstCompiled, maxDiff(Ref, take(C->run({X}))[0]));
  }
  INFO("interpreter " << WorstInterp / Step << " steps, compiled "
                      << WorstCompiled / Step << " steps");
  CHECK(WorstInterp <= Step * 1.0001);
  CHECK(WorstCompiled <= Step * 1.0001);
}

/// Quantizes \p Model (x86 preset, calibrated on random data of shape
/// \p In), unfolds the reference graph into QDQ form and checks that
/// fold-qdq restores it: the same text, outputs equal to the reference's,
/// int8 lowering without fallbacks within one output step. The QDQ graph
/// itself (float ops between dequantize and quantize) agrees with the
/// reference within \p QdqSteps output steps.
void checkRoundTrip(nn::Module &Model, Shape In, double QdqSteps) {
  Model.eval();
  QConfigMapping Map;
  Map.setGlobal(take(QConfig::preset("x86")));
  auto Obs =
      take(prepare_fx(Model, Map, {InputSpec::symbolic("x", DType::F32, In)}));
  Shape Calib = In;
  Calib[0] = 8;
  requireOk(Obs.calibrate(uniform(Calib, 1), 4));
  std::unique_ptr<GraphModule> Ref =
      take(convert_to_reference_fx(Obs.graphModule()));
  std::unique_ptr<GraphModule> Qdq = Ref->clone();
  size_t Unfolded = unfoldToQdq(*Qdq);
  requireOk(verify(*Qdq));
  for (const std::string &P : Qdq->moduleNames())
    CHECK_FALSE(Qdq->lookupModule(P)->kind().startswith("Quantized"));

  std::unique_ptr<GraphModule> Folded = Qdq->clone();
  PassContext Ctx;
  FoldQdq P;
  requireOk(P.run(*Folded, Ctx));
  requireOk(verify(*Folded));
  CHECK(P.numFolded() == Unfolded);
  CHECK(printToString(*Folded) == printToString(*Ref));

  CompileOptions Opts;
  Opts.RejectFallbacks = true;
  std::unique_ptr<CompiledModule> C = take(compile(*Folded, Opts));
  CHECK(C->fallbacks().empty());
  double Step = outputStep(*Ref);
  for (uint32_t Seed = 0; Seed < 2; ++Seed) {
    Tensor X = uniform(In, 50 + Seed);
    Tensor Want = take(interpret(*Ref, {X}));
    CHECK(maxDiff(Want, take(interpret(*Folded, {X}))) == 0.0);
    CHECK(maxDiff(Want, take(interpret(*Qdq, {X}))) <= Step * QdqSteps);
    CHECK(maxDiff(Want, take(C->run({X}))[0]) <= Step * 1.0001);
  }
}

} // namespace

TEST_CASE("fold-qdq: Net's reference graph, unfolded into QDQ form, folds "
          "back to itself",
          "[fold-qdq][zoo]") {
  models::Net Net;
  checkRoundTrip(Net, {1, 1, 28, 28}, 1.0001);
}

TEST_CASE("fold-qdq: ResNet-18's reference graph, unfolded into QDQ form, "
          "folds back to itself",
          "[fold-qdq][zoo]") {
  std::shared_ptr<nn::Module> M = models::resnet18(10);
  // Over 20 layers the float ops of the QDQ graph and the integer kernels
  // of the reference (residual adds, average pooling) round differently
  // now and then: up to two output steps apart, while the folded graph is
  // the reference exactly.
  checkRoundTrip(*M, {1, 3, 32, 32}, 2.0001);
}

TEST_CASE("fold-qdq: weights the int8 kernels cannot take stay QDQ, each "
          "with a remark",
          "[fold-qdq]") {
  struct Case {
    const char *Name;
    QuantParams Q;
    DType Dtype;
    const char *Remark;
  };
  const Case Cases[] = {
      {"u8 weight", QuantParams::perTensor(0.01, 128), DType::U8,
       "left as QDQ: weight 'conv.weight' is u8: qfx's int8 conv / linear "
       "take s8 weights"},
      {"nonzero zero point", QuantParams::perChannel({0.01, 0.02}, {0, 3}, 0),
       DType::S8,
       "left as QDQ: weight 'conv.weight' has nonzero zero points: qfx's "
       "int8 kernels take symmetric weights"},
      {"axis 1", QuantParams::perChannel({0.01}, {0}, 1), DType::S8,
       "left as QDQ: weight 'conv.weight' is quantized per channel along "
       "axis 1: qfx's int8 kernels take per-channel weights along axis 0"},
  };
  for (const Case &K : Cases) {
    SECTION(K.Name) {
      QdqBuilder B;
      Node *X = B.typed(B.G.placeholder("x"), f32({1, 1, 4, 4}));
      Tensor W = Tensor::zeros(K.Dtype, {2, 1, 1, 1});
      W.setQuant(K.Q);
      B.GM->addModule("conv", "Module");
      Node *C = B.typed(
          B.G.callFunction("conv2d", {B.dequantize(B.quantize(X, 0.01, 128)),
                                      B.constant("conv.weight", W)}),
          f32({1, 2, 4, 4}));
      B.G.output(B.dequantize(B.quantize(C, 0.02, 128)));
      std::string Before = printToString(*B.GM);
      PassContext Ctx;
      FoldQdq P;
      requireOk(P.run(*B.GM, Ctx));
      CHECK(P.numFolded() == 0);
      CHECK(printToString(*B.GM) == Before);
      REQUIRE(Ctx.Remarks.size() == 1);
      CHECK(Ctx.Remarks[0].Node == "conv2d");
      CHECK(Ctx.Remarks[0].Message == K.Remark);
    }
  }
}

TEST_CASE("fold-qdq: every near miss is a remark naming the op and the "
          "reason",
          "[fold-qdq]") {
  // Each graph: x quantized, dequantized, then the op under test, quantized
  // with the given qparams and dequantized into the output.
  struct Case {
    const char *Ops;
    const char *Node, *Remark;
  };
  const Case Cases[] = {
      {"%w : s8[2,2]<scale=0.0078125, zero_point=0> = get_attr[w]\n"
       "%wdq : f32[2,2] = call_method[dequantize](%w)\n"
       "%fc : f32[1,2] = call_function[linear](%dq, %wdq)\n"
       "%y : f32[1,2] = call_function[add](%fc, %dq)\n",
       "fc",
       "left as QDQ: 'fc' -> 'y': QuantizedLinear has no residual add form"},
      {"%y : f32[1,2] = call_function[mul](%dq, 2.0)\n", "y",
       "left as QDQ: 'y' has a scalar operand: no int8 form"},
      {"%y : f32[1,2] = call_function[sigmoid](%dq)\n", "y",
       "left as QDQ: 'y' is quantized to quint8 scale 0.015625, zp 128, not "
       "sigmoid's fixed quint8 scale 0.00390625, zp 0"},
      {"%y : f32[1,2] = call_function[flatten](%dq)\n", "y",
       "left as QDQ: 'y' is quantized to quint8 scale 0.015625, zp 128 but "
       "its input has quint8 scale 0.0078125, zp 128; flatten shares its "
       "input's qparams"},
      {"%y : f32[1,2] = call_function[softplus](%dq)\n", "y",
       "left as QDQ: 'softplus' has no int8 form"},
      {"%y : f32[1,2] = call_function[add](%dq, %x)\n", "y",
       "left as QDQ: the other operand of 'y' is not a dequantized int8 "
       "value"},
      {"%y : f32[1,2] = call_function[relu](%dq)\n"
       "%z : f32[1,2] = call_function[relu](%y)\n",
       "z", "left as QDQ: the input of 'z' is not a dequantized int8 value"},
      {"%w : s8[2,1,1,1]<scale=0.0078125, zero_point=0> = get_attr[w4]\n"
       "%wdq : f32[2,1,1,1] = call_method[dequantize](%w)\n"
       "%y : f32[1,2] = call_function[conv2d](%dq, %wdq, none, 1, \"same\")\n",
       "y",
       "left as QDQ: 'y' has a padding that is not an int or a pair of "
       "ints"},
      {"%w : s8[2,2]<scale=0.0078125, zero_point=0> = get_attr[w]\n"
       "%wdq : f32[2,2] = call_method[dequantize](%w)\n"
       "%y : f32[1,2] = call_function[linear](%dq, %wdq, %x)\n",
       "y",
       "left as QDQ: the bias of 'y' is not a constant (f32, or "
       "dequantized)"},
      {"%w : s8[2,1,1,1]<axis=0, scales=[0.0078125, 0.0078125], "
       "zero_points=[0, 0]> = get_attr[w4c]\n"
       "%wdq : f32[2,1,1,1] = call_method[dequantize](%w)\n"
       "%y : f32[1,2] = call_function[conv_transpose2d](%dq, %wdq)\n",
       "y",
       "left as QDQ: weight 'w4c' is quantized per channel along axis 0: "
       "qfx's int8 conv_transpose2d takes per-channel weights along axis 1"},
      {"%y : f32[1,2] = call_method[dequantize](%q)\n", "y",
       "left as QDQ: a requantization from quint8 scale 0.0078125, zp 128 "
       "to quint8 scale 0.015625, zp 128 stays"},
  };
  for (const Case &K : Cases) {
    std::string Text =
        std::string("graph_module M {\n"
                    "  param w : s8[2,2]<scale=0.0078125, zero_point=0> = "
                    "dense<[1, 2, 3, 4]>\n"
                    "  param w4 : s8[2,1,1,1]<scale=0.0078125, zero_point=0> "
                    "= dense<[1, 2]>\n"
                    "  param w4c : s8[2,1,1,1]<axis=0, scales=[0.0078125, "
                    "0.0078125], zero_points=[0, 0]> = dense<[1, 2]>\n"
                    "  graph {\n"
                    "%x : f32[1,2] = placeholder[x]\n"
                    "%q : u8[1,2]<scale=0.0078125, zero_point=128> = "
                    "call_function[quantize_per_tensor](%x, 0.0078125, 128, "
                    "\"quint8\")\n"
                    "%dq : f32[1,2] = call_method[dequantize](%q)\n") +
        K.Ops +
        "%last : u8[1,2]<scale=0.015625, zero_point=128> = "
        "call_function[quantize_per_tensor](%" +
        (llvm::StringRef(K.Ops).contains("%z") ? "z" : "y") +
        ", 0.015625, 128, \"quint8\")\n"
        "%out : f32[1,2] = call_method[dequantize](%last)\n"
        "%output = output[output](%out)\n  }\n}\n";
    INFO(Text);
    std::unique_ptr<GraphModule> GM = take(parseGraphModule(Text, "case"));
    PassContext Ctx;
    FoldQdq P;
    requireOk(P.run(*GM, Ctx));
    CHECK(P.numFolded() == 0);
    REQUIRE(Ctx.Remarks.size() == 1);
    CHECK(Ctx.Remarks[0].Pass == "fold-qdq");
    CHECK(Ctx.Remarks[0].Node == K.Node);
    CHECK(Ctx.Remarks[0].Message == K.Remark);
  }
}

TEST_CASE("fold-qdq: a folded graph is left as it is by a second run",
          "[fold-qdq]") {
  std::unique_ptr<GraphModule> GM = smallQdqGraph();
  PassContext Ctx;
  requireOk(FoldQdq().run(*GM, Ctx));
  std::string Once = printToString(*GM);
  FoldQdq Again;
  requireOk(Again.run(*GM, Ctx));
  CHECK(Again.numFolded() == 0);
  CHECK(Again.numCancelled() == 0);
  CHECK(printToString(*GM) == Once);
}

TEST_CASE("fold-qdq: MobileNetV2's reference graph, unfolded into QDQ form, "
          "folds back to itself",
          "[fold-qdq][zoo]") {
  std::shared_ptr<nn::Module> M = models::mobilenet_v2(10);
  checkRoundTrip(*M, {1, 3, 32, 32}, 2.0001);
}

TEST_CASE("fold-qdq: every case of the text-IR tests computes what its QDQ "
          "graph computes, within one step of each output",
          "[fold-qdq]") {
  llvm::SmallString<128> Dir(QFX_TEST_DATA_DIR);
  llvm::sys::path::append(Dir, "..", "Transforms", "FoldQdq");
  std::error_code EC;
  std::vector<std::string> Files;
  for (llvm::sys::fs::directory_iterator It(Dir, EC), End; It != End && !EC;
       It.increment(EC))
    if (llvm::StringRef(It->path()).endswith(".qir"))
      Files.push_back(It->path());
  std::sort(Files.begin(), Files.end());
  REQUIRE(Files.size() >= 8);
  size_t Cases = 0;
  for (const std::string &F : Files) {
    auto Buf = llvm::MemoryBuffer::getFile(F);
    REQUIRE(Buf);
    llvm::SmallVector<llvm::StringRef, 4> Parts;
    (*Buf)->getBuffer().split(Parts, "// -----\n");
    for (llvm::StringRef Text : Parts) {
      INFO(F << ":\n" << Text.str());
      std::unique_ptr<GraphModule> Qdq = take(parseGraphModule(Text, F));
      std::unique_ptr<GraphModule> Folded = Qdq->clone();
      PassContext Ctx;
      requireOk(FoldQdq().run(*Folded, Ctx));
      std::vector<Tensor> In;
      for (Node *P : Qdq->graph().placeholders())
        In.push_back(uniform(P->type()->Dims, 7 + uint32_t(In.size())));
      std::vector<Tensor> Want = take(Interpreter(*Qdq).run(In));
      std::vector<Tensor> Got = take(Interpreter(*Folded).run(In));
      REQUIRE(Got.size() == Want.size());
      // The step of each output: the scale of the int8 value a dequantize
      // output reads (0 for outputs that stay float).
      const Argument &OutArg = Folded->graph().outputNode()->arg(0);
      std::vector<Argument> Outs =
          OutArg.isList() ? OutArg.getList() : std::vector<Argument>{OutArg};
      for (size_t I = 0; I < Want.size(); ++I) {
        const Node *O = Outs[I].getNode();
        double Step = 0;
        if (O->target() == "dequantize")
          Step = O->arg(0).getNode()->type()->Quant.Scale;
        CHECK(maxDiff(Want[I], Got[I]) <= Step * 1.0001);
      }
      ++Cases;
    }
  }
  CHECK(Cases >= 20);
}
