//===- ArithLoweringTest.cpp - arith ops compiled, trained, quantized -----===//
//
// sub / div / interpolate / embedding / narrow through compile() (no
// fallback, results equal to the interpreter's), through the training tape
// (gradients against finite differences), and PyTorch 1.13 FX's
// quantization of interpolate (shared qparams, int8 in and out) against
// test/data/arith/fx_interp.safetensors from make_arith_golden.py.
//
//===----------------------------------------------------------------------===//

#include "GradCheck.h"
#include "TestUtil.h"

#include "qfx/Codegen/CompiledModule.h"
#include "qfx/Codegen/Lowering.h"
#include "qfx/IR/Printer.h"
#include "qfx/NN/Functional.h"
#include "qfx/NN/Modules.h"
#include "qfx/Pipeline/QuantizeFx.h"
#include "qfx/Pipeline/QuantizedModule.h"
#include "qfx/Quant/QConfig.h"
#include "qfx/Quant/QConfigMapping.h"
#include "qfx/Runtime/Interpreter.h"
#include "qfx/Runtime/Op.h"
#include "qfx/Support/Safetensors.h"
#include "qfx/Trace/SymbolicTrace.h"
#include "qfx/Train/Tape.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <random>

using namespace qfx;
using namespace qfx::nn;
using namespace qfx::testutil;

namespace {

Tensor randomInput(llvm::ArrayRef<int64_t> S, uint64_t Seed, float Lo = -1,
                   float Hi = 1) {
  Tensor T(DType::F32, S);
  std::mt19937_64 R(Seed);
  std::uniform_real_distribution<float> U(Lo, Hi);
  for (int64_t I = 0; I < T.numElements(); ++I)
    T.data<float>()[I] = U(R);
  return T;
}

double maxAbsDiff(const Tensor &A, const Tensor &B) {
  REQUIRE(A.dtype() == B.dtype());
  REQUIRE(formatShape(A.shape()) == formatShape(B.shape()));
  double D = 0;
  for (int64_t I = 0; I < A.numElements(); ++I)
    D = std::max(D, std::fabs(A.getAsDouble(I) - B.getAsDouble(I)));
  return D;
}

/// conv -> every arith op -> conv, so that values arrive in oneDNN's NHWC
/// layout and leave it again.
struct ConvArith : Module {
  std::shared_ptr<Conv2d> conv1, conv2;
  std::shared_ptr<Upsample> up;
  std::string Mode;
  ConvArith(std::string Mode) : Module("ConvArith"), Mode(Mode) {
    conv1 = register_module(
        "conv1", std::make_shared<Conv2d>(Conv2dOptions(3, 6, 3).padding(1)));
    conv2 = register_module(
        "conv2", std::make_shared<Conv2d>(Conv2dOptions(2, 4, 3).padding(1)));
    UpsampleOptions O;
    O.ScaleFactor = {{2.0, 2.0}};
    O.Mode = Mode;
    up = register_module("up", std::make_shared<Upsample>(O));
  }
  Value forward(Value X) override {
    X = (*conv1)(X);
    std::vector<Value> P = X.chunk(3, 1);
    Value Y = (P[0] - P[1]) / (P[2] - 5.0);
    Y = (1.0 - Y) / 3.0 - 0.5;
    Y = -(*up)(Y);
    F::InterpolateOptions O;
    O.Size = std::vector<int64_t>{7, 9};
    O.Mode = "bilinear";
    O.AlignCorners = true;
    Y = F::interpolate(Y, O);
    F::InterpolateOptions D;
    D.ScaleFactor = std::vector<double>{0.6, 0.5};
    return (*conv2)(F::interpolate(Y, D));
  }
};

struct EmbedSub : Module {
  std::shared_ptr<Embedding> emb;
  EmbedSub() : Module("EmbedSub") {
    emb = register_module("emb", std::make_shared<Embedding>(10, 4));
  }
  Value forward(Value Idx) override {
    Value E = (*emb)(Idx);
    std::vector<Value> H = E.split(2, -1);
    return H[0] - H[1];
  }
};

std::string fallbackList(const CompiledModule &C) {
  std::string S;
  for (const FallbackInfo &F : C.fallbacks())
    S += F.NodeName + " (" + F.Op + "): " + F.Reason + "\n";
  return S;
}

} // namespace

TEST_CASE("arith lowering: sub, div, neg, chunk and interpolate compile "
          "with no host fallback and match the interpreter",
          "[arith][lowering]") {
  for (const char *Mode : {"nearest", "bilinear"}) {
    INFO(Mode);
    ConvArith M(Mode);
    auto GM = take(
        symbolicTrace(M, {InputSpec::symbolic("x", DType::F32, {2, 3, 5, 6})}));
    CompileOptions Opts;
    Opts.NumThreads = 1;
    auto C = take(compile(*GM, Opts));
    CHECK(fallbackList(*C) == "");
    std::string Report;
    llvm::raw_string_ostream OS(Report);
    C->print(OS);
    OS.flush();
    // The x2 Upsample is oneDNN's resampling; sub / div / neg with scalars
    // are eltwise_linear or binary primitives.
    CHECK_THAT(Report, Catch::Contains("resampling  up"));
    CHECK_THAT(Report, Catch::Contains("binary  div_1  [div by scalar]"));
    CHECK_THAT(Report, Catch::Contains("eltwise  rsub  [linear]"));
    Tensor X = randomInput({2, 3, 5, 6}, 11);
    Tensor Want = take(interpret(*GM, {X}));
    auto Got = take(C->run({X}));
    CHECK(maxAbsDiff(Got[0], Want) <= 1e-5);
  }
}

TEST_CASE("arith lowering: an embedding model with an s64 input compiles "
          "with no fallback, and a bad index is a run error naming the op",
          "[arith][lowering]") {
  EmbedSub M;
  auto GM =
      take(symbolicTrace(M, {InputSpec::symbolic("idx", DType::S64, {2, 3})}));
  auto C = take(compile(*GM));
  CHECK(fallbackList(*C) == "");
  Tensor Idx(DType::S64, {2, 3});
  for (int64_t I = 0; I < 6; ++I)
    Idx.data<int64_t>()[I] = (I * 7) % 10;
  auto Got = take(C->run({Idx}));
  CHECK(maxAbsDiff(Got[0], take(interpret(*GM, {Idx}))) == 0);
  Idx.data<int64_t>()[4] = 12;
  CHECK_THAT(
      errorOf(C->run({Idx})),
      Catch::Contains("embedding: input: index 12 is out of range for 10 "
                      "embeddings"));
}

TEST_CASE("arith lowering: quantized interpolate (resampling primitive or "
          "host kernel) equals the op table for nearest and bilinear, up and "
          "down",
          "[arith][lowering]") {
  struct Case {
    const char *Name;
    Kwargs KW;
  };
  auto Reals = [](double A, double B) {
    return Argument::list({Argument::real(A), Argument::real(B)});
  };
  std::vector<Case> Cases = {
      {"nearest x2", {{"scale_factor", Reals(2, 2)}}},
      {"nearest size", {{"size", Argument::ints({9, 11})}}},
      {"nearest down", {{"scale_factor", Reals(0.6, 0.5)}}},
      {"bilinear x2",
       {{"scale_factor", Reals(2, 2)},
        {"mode", Argument::string("bilinear")},
        {"align_corners", Argument::boolean(false)}}},
      {"bilinear x1.5",
       {{"scale_factor", Reals(1.5, 1.5)},
        {"mode", Argument::string("bilinear")},
        {"align_corners", Argument::boolean(false)}}},
      {"bilinear align_corners",
       {{"size", Argument::ints({9, 11})},
        {"mode", Argument::string("bilinear")},
        {"align_corners", Argument::boolean(true)}}},
  };
  QuantParams Q = QuantParams::perTensor(0.02, 71);
  Tensor X = randomInput({2, 3, 5, 7}, 12, -1.4f, 3.6f);
  Tensor Xq(DType::U8, {2, 3, 5, 7});
  for (int64_t I = 0; I < X.numElements(); ++I)
    Xq.data<uint8_t>()[I] = static_cast<uint8_t>(std::lround(
        std::min(255.0, std::max(0.0, X.getAsDouble(I) / 0.02 + 71))));
  Xq.setQuant(Q);
  for (const Case &C : Cases) {
    INFO(C.Name);
    GraphModule GM;
    Graph &G = GM.graph();
    Node *In = G.placeholder("x", TensorType{DType::U8, {2, 3, 5, 7}, Q});
    Node *Out = G.callFunction("interpolate", {Argument(In)}, C.KW);
    G.output(Argument(Out));
    std::vector<std::pair<std::string, Operand>> KW;
    for (const auto &KV : C.KW)
      KW.emplace_back(KV.first, Operand(KV.second));
    Tensor Want = take(runOp("interpolate", {Xq}, KW));
    Out->setType(TensorType{Want.dtype(),
                            Shape(Want.shape().begin(), Want.shape().end()),
                            Want.quant()});
    auto Compiled = take(compile(GM));
    CHECK(fallbackList(*Compiled) == "");
    std::string Report;
    llvm::raw_string_ostream OS(Report);
    Compiled->print(OS);
    OS.flush();
    // int8 nearest x2 is oneDNN's resampling; int8 bilinear is the host
    // kernel of PyTorch's quantized rounding.
    if (llvm::StringRef(C.Name) == "nearest x2")
      CHECK_THAT(Report, Catch::Contains("resampling  interpolate"));
    if (llvm::StringRef(C.Name).startswith("bilinear"))
      CHECK_THAT(Report, Catch::Contains("interpolate  interpolate"));
    Tensor Got = take(Compiled->run({Xq}))[0];
    CHECK(Got.quant() == Q);
    CHECK(maxAbsDiff(Got, Want) == 0);
  }
}

TEST_CASE("arith lowering: sub and div broadcasting either operand are "
          "binary primitives equal to the op table",
          "[arith][lowering]") {
  TensorType Small{DType::F32, {2, 1, 4, 1}, {}},
      Big{DType::F32, {2, 3, 4, 5}, {}};
  Tensor A = randomInput({2, 1, 4, 1}, 19, 0.5f, 2.0f);
  Tensor B = randomInput({2, 3, 4, 5}, 20, 0.5f, 2.0f);
  for (const char *Op : {"sub", "div", "rsub"})
    for (bool SmallFirst : {false, true}) {
      INFO(Op << (SmallFirst ? " small first" : " big first"));
      GraphModule GM;
      Graph &G = GM.graph();
      Node *X = G.placeholder("x", SmallFirst ? Small : Big);
      Node *Y = G.placeholder("y", SmallFirst ? Big : Small);
      Node *Out = G.callFunction(Op, {Argument(X), Argument(Y)});
      Out->setType(Big);
      G.output(Argument(Out));
      std::vector<Tensor> In =
          SmallFirst ? std::vector<Tensor>{A, B} : std::vector<Tensor>{B, A};
      Tensor Want = take(interpret(GM, In));
      auto C = take(compile(GM));
      // div by a broadcast first operand has no oneDNN form.
      bool Lowered = !(SmallFirst && llvm::StringRef(Op) == "div");
      CHECK((fallbackList(*C) == "") == Lowered);
      CHECK(maxAbsDiff(take(C->run(In))[0], Want) == 0);
    }
}

TEST_CASE("arith lowering: reciprocal (what s / x records) is an eltwise "
          "primitive within 1 ulp of 1 / x",
          "[arith][lowering]") {
  GraphModule GM;
  Graph &G = GM.graph();
  TensorType T{DType::F32, {2, 3, 4, 5}, {}};
  Node *In = G.placeholder("x", T);
  Node *Out = G.callFunction("reciprocal", {Argument(In)});
  Out->setType(T);
  G.output(Argument(Out));
  auto C = take(compile(GM));
  CHECK(fallbackList(*C) == "");
  Tensor X = randomInput({2, 3, 4, 5}, 13, 0.1f, 9.0f);
  for (int64_t I = 0; I < X.numElements(); I += 2)
    X.data<float>()[I] = -X.data<float>()[I];
  Tensor Got = take(C->run({X}))[0];
  for (int64_t I = 0; I < X.numElements(); ++I) {
    float Want = 1.0f / X.data<float>()[I];
    CHECK(std::fabs(Got.data<float>()[I] - Want) <= std::fabs(Want) * 1.2e-7f);
  }
}

TEST_CASE("arith lowering: add by a scalar (with alpha) and mul by a scalar "
          "are eltwise primitives equal to the interpreter",
          "[arith][lowering]") {
  GraphModule GM;
  Graph &G = GM.graph();
  TensorType T{DType::F32, {2, 3, 4, 5}, {}};
  Node *X = G.placeholder("x", T);
  Node *A = G.callFunction("add", {Argument(X), Argument::real(0.3)});
  Node *B = G.callFunction("add", {Argument(A), Argument::real(-1.5)},
                           {{"alpha", Argument::real(0.5)}});
  Node *C = G.callMethod("add", {Argument(B), Argument::integer(2)},
                         {{"alpha", Argument::integer(3)}});
  Node *D = G.callFunction("mul", {Argument(C), Argument::integer(2)});
  Node *E = G.callMethod("mul", {Argument(D), Argument::real(-0.25)});
  for (Node *N : {A, B, C, D, E})
    N->setType(T);
  G.output(Argument(E));
  auto Compiled = take(compile(GM));
  CHECK(fallbackList(*Compiled) == "");
  size_t Eltwise = 0;
  for (const StepInfo &S : Compiled->steps())
    Eltwise += S.Kind == "eltwise";
  CHECK(Eltwise == 5);
  Tensor In = randomInput({2, 3, 4, 5}, 21, -4.0f, 4.0f);
  Tensor Got = take(Compiled->run({In}))[0];
  Tensor Want = take(interpret(GM, {In}));
  for (int64_t I = 0; I < In.numElements(); ++I)
    CHECK(Got.data<float>()[I] == Want.data<float>()[I]);
}

TEST_CASE("arith train: the tape differentiates chunk, sub, div, rsub, "
          "neg, Upsample and interpolate end to end (input gradient against "
          "finite differences)",
          "[arith][grad]") {
  for (const char *Mode : {"nearest", "bilinear"}) {
    INFO(Mode);
    ConvArith M(Mode);
    auto GM = take(
        symbolicTrace(M, {InputSpec::symbolic("x", DType::F32, {1, 3, 5, 6})}));
    TapeOptions O;
    O.InputGradients = true;
    Tape T(*GM, O);
    Tensor X = randomInput({1, 3, 5, 6}, 14);
    Tensor Out = take(T.forward({X}))[0];
    Tensor Rr = gradcheck::randomTensor(Out.shape(), 15);
    REQUIRE(!T.backward({Rr}));
    CHECK(T.grads().count("conv1.weight"));
    CHECK(gradcheck::compareWithFiniteDifferences(
              [&](const Tensor &In) { return take(interpret(*GM, {In})); }, X,
              Rr, T.inputGrad(0), 1e-2, 2e-3, 2e-2, 64) == "");
  }
}

TEST_CASE("arith train: the tape gives nn.Embedding's weight gradient "
          "through split and sub",
          "[arith][grad]") {
  EmbedSub M;
  auto GM =
      take(symbolicTrace(M, {InputSpec::symbolic("idx", DType::S64, {2, 3})}));
  Tensor Idx(DType::S64, {2, 3});
  for (int64_t I = 0; I < 6; ++I)
    Idx.data<int64_t>()[I] = (I * 3) % 5;
  Tape T(*GM);
  Tensor Out = take(T.forward({Idx}))[0];
  Tensor Rr = gradcheck::randomTensor(Out.shape(), 16);
  REQUIRE(!T.backward({Rr}));
  REQUIRE(T.grads().count("emb.weight"));
  Tensor W0 = M.emb->weight.clone();
  CHECK(gradcheck::compareWithFiniteDifferences(
            [&](const Tensor &W) {
              std::memcpy(M.emb->weight.rawData(), W.rawData(), W.byteSize());
              return take(interpret(*GM, {Idx}));
            },
            W0, Rr, T.grads().at("emb.weight")) == "");
}

namespace {

/// make_arith_golden.py's InterpNet.
struct InterpNet : Module {
  std::shared_ptr<Conv2d> conv1, conv2;
  InterpNet() : Module("InterpNet") {
    conv1 = register_module(
        "conv1", std::make_shared<Conv2d>(Conv2dOptions(2, 3, 3).padding(1)));
    conv2 = register_module(
        "conv2", std::make_shared<Conv2d>(Conv2dOptions(3, 2, 3).padding(1)));
  }
  Value forward(Value X) override {
    X = (*conv1)(X);
    F::InterpolateOptions B;
    B.ScaleFactor = std::vector<double>{2.0, 2.0};
    B.Mode = "bilinear";
    B.AlignCorners = false;
    X = F::interpolate(X, B);
    F::InterpolateOptions N;
    N.Size = std::vector<int64_t>{9, 11};
    X = F::interpolate(X, N);
    return (*conv2)(X);
  }
};

} // namespace

namespace {

/// make_arith_golden.py's FloatIslandNet.
struct FloatIslandNet : Module {
  std::shared_ptr<Conv2d> conv1, conv2;
  std::shared_ptr<Upsample> up;
  FloatIslandNet() : Module("FloatIslandNet") {
    conv1 = register_module(
        "conv1", std::make_shared<Conv2d>(Conv2dOptions(2, 3, 3).padding(1)));
    UpsampleOptions O;
    O.ScaleFactor = {{2.0, 2.0}};
    up = register_module("up", std::make_shared<Upsample>(O));
    conv2 = register_module(
        "conv2", std::make_shared<Conv2d>(Conv2dOptions(2, 2, 3).padding(1)));
  }
  Value forward(Value X) override {
    X = (*conv1)(X);
    X = (X - 0.25) / 1.5;
    X = (*up)(X);
    return (*conv2)(F::split(X, std::vector<int64_t>{1, 2}, 1)[1]);
  }
};

/// Copies conv1's and conv2's tensors of \p File into \p C1, \p C2.
void loadConvs(const SafetensorsFile &File, Conv2d &C1, Conv2d &C2) {
  for (auto [Name, T] :
       {std::pair<const char *, Tensor *>{"conv1.weight", &C1.weight},
        {"conv1.bias", &C1.bias},
        {"conv2.weight", &C2.weight},
        {"conv2.bias", &C2.bias}}) {
    const Tensor &G = File.Tensors.at(Name);
    REQUIRE(G.byteSize() == T->byteSize());
    std::memcpy(T->rawData(), G.rawData(), G.byteSize());
  }
}

} // namespace

TEST_CASE("arith quant: sub, div, Upsample and split stay float between "
          "quantized convs, as in PyTorch 1.13's x86 config, and the "
          "converted model matches PyTorch FX's",
          "[arith][quant]") {
  auto File = take(readSafetensors(std::string(QFX_TEST_DATA_DIR) +
                                   "/arith/fx_float.safetensors"));
  FloatIslandNet M;
  loadConvs(File, *M.conv1, *M.conv2);
  M.eval();
  Tensor X = File.Tensors.at("x");
  QConfigMapping Map;
  Map.setGlobal(take(QConfig::preset("x86")));
  auto Obs = take(
      prepare_fx(M, Map, {InputSpec::symbolic("x", DType::F32, {2, 2, 5, 6})}));
  take(Obs({X}));
  auto Q = take(convert_fx(Obs.graphModule()));
  std::string Text;
  llvm::raw_string_ostream OS(Text);
  Q.print(OS);
  OS.flush();
  // Float from conv1's dequantize to the quantize in front of conv2.
  CHECK_THAT(Text, Catch::Contains("f32[2,3,5,6] = call_method[dequantize]"));
  CHECK_THAT(Text, Catch::Contains("f32[2,3,5,6] = call_function[sub]"));
  CHECK_THAT(Text, Catch::Contains("f32[2,3,10,12] = call_module[up]"));
  CHECK_THAT(Text, Catch::Contains("f32[2,2,10,12] = call_function[narrow]"));
  CHECK_THAT(Text,
             Catch::Contains("call_function[quantize_per_tensor](%narrow"));
  Tensor Want = File.Tensors.at("y");
  double Range = 0;
  for (int64_t I = 0; I < Want.numElements(); ++I)
    Range = std::max(Range, std::fabs(Want.getAsDouble(I)));
  CHECK(maxAbsDiff(take(Q.runReference({X}))[0], Want) <= 2 * Range / 128);
  CHECK(maxAbsDiff(take(Q.run({X}))[0], Want) <= 4 * Range / 128);
}

TEST_CASE("arith quant: interpolate shares its input's qparams as in "
          "PyTorch 1.13's x86 config and the converted model matches "
          "PyTorch FX's convert output",
          "[arith][quant]") {
  auto File = take(readSafetensors(std::string(QFX_TEST_DATA_DIR) +
                                   "/arith/fx_interp.safetensors"));
  InterpNet M;
  for (auto [Name, T] :
       {std::pair<const char *, Tensor *>{"conv1.weight", &M.conv1->weight},
        {"conv1.bias", &M.conv1->bias},
        {"conv2.weight", &M.conv2->weight},
        {"conv2.bias", &M.conv2->bias}}) {
    const Tensor &G = File.Tensors.at(Name);
    REQUIRE(G.byteSize() == T->byteSize());
    std::memcpy(T->rawData(), G.rawData(), G.byteSize());
  }
  M.eval();
  Tensor X = File.Tensors.at("x");
  QConfigMapping Map;
  Map.setGlobal(take(QConfig::preset("x86")));
  auto Obs = take(
      prepare_fx(M, Map, {InputSpec::symbolic("x", DType::F32, {2, 2, 5, 6})}));
  take(Obs({X}));
  auto Q = take(convert_fx(Obs.graphModule()));
  std::string Text;
  llvm::raw_string_ostream OS(Text);
  Q.print(OS);
  OS.flush();
  // Both interpolates run on quint8 (no dequantize between the convs).
  CHECK_THAT(Text, Catch::Contains("u8[2,3,10,12]"));
  CHECK_THAT(Text, Catch::Contains("u8[2,3,9,11]"));
  Tensor Want = File.Tensors.at("y");
  Tensor Got = take(Q.run({X}))[0];
  Tensor Ref = take(Q.runReference({X}))[0];
  double Range = 0;
  for (int64_t I = 0; I < Want.numElements(); ++I)
    Range = std::max(Range, std::fabs(Want.getAsDouble(I)));
  // One output step of conv2 is about Range / 128: the reference graph is
  // within two of PyTorch; the compiled one, whose int8 convs and
  // resampling may each round an input differently by 1 LSB (amplified by
  // conv2's 27 taps), within four.
  CHECK(maxAbsDiff(Ref, Want) <= 2 * Range / 128);
  CHECK(maxAbsDiff(Got, Want) <= 4 * Range / 128);
}

TEST_CASE("arith qat: prepare_qat_fx -> a training step through "
          "interpolate -> convert_fx works, interpolate staying int8",
          "[arith][quant][grad]") {
  InterpNet M;
  M.train();
  QConfigMapping Map;
  Map.setGlobal(take(QConfig::preset("qat_x86")));
  auto Obs = take(prepare_qat_fx(
      M, Map, {InputSpec::symbolic("x", DType::F32, {2, 2, 5, 6})}));
  Tensor X = randomInput({2, 2, 5, 6}, 17);
  Tape T(Obs.graphModule());
  Tensor Out = take(T.forward({X}))[0];
  REQUIRE(!T.backward({gradcheck::randomTensor(Out.shape(), 18)}));
  CHECK(T.grads().count("conv1.weight"));
  CHECK(T.grads().count("conv2.weight"));
  auto Q = take(convert_fx(Obs.graphModule()));
  std::string Text;
  llvm::raw_string_ostream OS(Text);
  Q.print(OS);
  OS.flush();
  CHECK_THAT(Text, Catch::Contains("u8[2,3,10,12]"));
  Tensor Ref = take(Q.runReference({X}))[0];
  double Range = 0;
  for (int64_t I = 0; I < Ref.numElements(); ++I)
    Range = std::max(Range, std::fabs(Ref.getAsDouble(I)));
  // Compiled against the reference graph: a few output steps, as above.
  CHECK(maxAbsDiff(take(Q.run({X}))[0], Ref) <= 4 * Range / 128);
}
