//===- ArithOpsTest.cpp - sub, div, interpolate, embedding, split/chunk ---===//
//
// Golden data: test/data/arith/, written by test/data/make_arith_golden.py
// with PyTorch 1.13. The interpolate cases below repeat the script's INTERP
// table.
//
//===----------------------------------------------------------------------===//

#include "GradCheck.h"
#include "TestUtil.h"

#include "qfx/Codegen/CompiledModule.h"
#include "qfx/Codegen/Lowering.h"
#include "qfx/IR/Parser.h"
#include "qfx/IR/Printer.h"
#include "qfx/IR/Serialization.h"
#include "qfx/NN/Functional.h"
#include "qfx/NN/Modules.h"
#include "qfx/Onnx/Export.h"
#include "qfx/Onnx/Import.h"
#include "qfx/Runtime/Interpreter.h"
#include "qfx/Runtime/KernelsArith.h"
#include "qfx/Runtime/Op.h"
#include "qfx/Support/Safetensors.h"
#include "qfx/Trace/SymbolicTrace.h"
#include "qfx/Train/ArithGradKernels.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <map>

using namespace qfx;
using namespace qfx::nn;
using namespace qfx::testutil;

namespace {

const SafetensorsFile &goldenFile(const std::string &Name) {
  static std::map<std::string, SafetensorsFile> Files;
  auto It = Files.find(Name);
  if (It != Files.end())
    return It->second;
  auto R = readSafetensors(std::string(QFX_TEST_DATA_DIR) + "/arith/" + Name);
  if (!R)
    FAIL(errorToString(R.takeError()));
  return Files.emplace(Name, std::move(*R)).first->second;
}

/// Golden tensor \p Name of \p File, with qparams from the metadata.
Tensor golden(const std::string &Name,
              const std::string &File = "golden.safetensors") {
  const SafetensorsFile &F = goldenFile(File);
  auto It = F.Tensors.find(Name);
  if (It == F.Tensors.end())
    FAIL("no golden tensor " << Name);
  Tensor T = It->second;
  auto M = F.Metadata.find(Name);
  if (M != F.Metadata.end()) {
    llvm::StringRef Spec = M->second;
    auto [S, Z] = Spec.split(';');
    double Scale = 0;
    int64_t Zp = 0;
    REQUIRE_FALSE(S.split('=').second.getAsDouble(Scale));
    REQUIRE_FALSE(Z.split('=').second.getAsInteger(10, Zp));
    T.setQuant(QuantParams::perTensor(Scale, Zp));
  }
  return T;
}

/// The largest |got - want| (in LSB for quantized tensors); types must agree.
double maxDiff(const Tensor &Got, const Tensor &Want) {
  REQUIRE(Got.dtype() == Want.dtype());
  REQUIRE(formatShape(Got.shape()) == formatShape(Want.shape()));
  REQUIRE(Got.quant() == Want.quant());
  double D = 0;
  for (int64_t I = 0; I < Want.numElements(); ++I)
    D = std::max(D, std::fabs(Got.getAsDouble(I) - Want.getAsDouble(I)));
  return D;
}

Tensor run(llvm::StringRef Op, std::vector<Operand> Args,
           std::vector<std::pair<std::string, Operand>> KW = {}) {
  return take(runOp(Op, std::move(Args), std::move(KW)));
}

Operand R(double V) { return Operand(Argument::real(V)); }
Operand I(int64_t V) { return Operand(Argument::integer(V)); }
Operand S(const char *V) { return Operand(Argument::string(V)); }
Operand B(bool V) { return Operand(Argument::boolean(V)); }
Operand Ints(std::vector<int64_t> V) { return Operand(Argument::ints(V)); }
Operand Reals(std::vector<double> V) {
  std::vector<Argument> L;
  for (double D : V)
    L.push_back(Argument::real(D));
  return Operand(Argument::list(L));
}

using KW = std::vector<std::pair<std::string, Operand>>;

/// The F.interpolate cases of make_arith_golden.py's INTERP table.
std::vector<std::pair<std::string, KW>> interpCases() {
  return {
      {"near_size", {{"size", Ints({9, 11})}}},
      {"near_x2", {{"scale_factor", I(2)}}},
      {"near_x1_7", {{"scale_factor", R(1.7)}}},
      {"near_down", {{"scale_factor", Reals({0.6, 0.5})}}},
      {"near_size_down", {{"size", Ints({3, 4})}}},
      {"bil_x2",
       {{"scale_factor", I(2)},
        {"mode", S("bilinear")},
        {"align_corners", B(false)}}},
      {"bil_size_ac",
       {{"size", Ints({9, 11})},
        {"mode", S("bilinear")},
        {"align_corners", B(true)}}},
      {"bil_size",
       {{"size", Ints({9, 11})},
        {"mode", S("bilinear")},
        {"align_corners", B(false)}}},
      {"bil_x1_5",
       {{"scale_factor", R(1.5)},
        {"mode", S("bilinear")},
        {"align_corners", B(false)}}},
      {"bil_down",
       {{"size", Ints({3, 4})},
        {"mode", S("bilinear")},
        {"align_corners", B(false)}}},
      {"bil_x1_7_rec",
       {{"scale_factor", R(1.7)},
        {"mode", S("bilinear")},
        {"align_corners", B(false)},
        {"recompute_scale_factor", B(true)}}},
      {"bil_same",
       {{"size", Ints({5, 7})},
        {"mode", S("bilinear")},
        {"align_corners", B(false)}}},
  };
}

Tensor s64(llvm::ArrayRef<int64_t> Shape, std::vector<int64_t> V) {
  Tensor T(DType::S64, Shape);
  for (size_t K = 0; K < V.size(); ++K)
    T.data<int64_t>()[K] = V[K];
  return T;
}

} // namespace

//===----------------------------------------------------------------------===//
// Forward against PyTorch
//===----------------------------------------------------------------------===//

TEST_CASE("arith: sub, rsub, div and neg match PyTorch 1.13 bit for bit, "
          "broadcasting and scalars included",
          "[arith]") {
  Tensor X = golden("sub_bcast.x");
  CHECK(maxDiff(run("sub", {X, golden("sub_bcast.b")}),
                golden("sub_bcast.y")) == 0);
  CHECK(maxDiff(run("sub", {X, golden("sub_alpha.b")}, {{"alpha", I(2)}}),
                golden("sub_alpha.y")) <= 1e-6);
  CHECK(maxDiff(run("sub", {X, R(1.7)}), golden("sub_scalar.y")) == 0);
  CHECK(maxDiff(run("rsub", {X, R(1.7)}), golden("rsub_scalar.y")) == 0);
  CHECK(maxDiff(run("div", {X, golden("div_bcast.b")}),
                golden("div_bcast.y")) == 0);
  CHECK(maxDiff(run("div", {X, R(3.3)}), golden("div_scalar.y")) <= 1e-6);
  CHECK(maxDiff(run("div", {golden("div_floor.x"), golden("div_floor.b")},
                    {{"rounding_mode", S("floor")}}),
                golden("div_floor.y")) == 0);
  CHECK(maxDiff(run("div", {golden("div_trunc.x"), golden("div_trunc.b")},
                    {{"rounding_mode", S("trunc")}}),
                golden("div_trunc.y")) == 0);
  CHECK(maxDiff(run("neg", {X}), golden("neg.y")) == 0);
}

TEST_CASE("arith: the - and / operators on Values record torch's ops and "
          "compute PyTorch's results",
          "[arith]") {
  Value X = golden("sub_bcast.x");
  CHECK(maxDiff((X - Value(golden("sub_bcast.b"))).tensor(),
                golden("sub_bcast.y")) == 0);
  CHECK(maxDiff((X - 1.7).tensor(), golden("sub_scalar.y")) == 0);
  CHECK(maxDiff((1.7 - X).tensor(), golden("rsub_scalar.y")) == 0);
  CHECK(maxDiff((-X).tensor(), golden("neg.y")) == 0);
  CHECK(maxDiff((X / Value(golden("div_bcast.b"))).tensor(),
                golden("div_bcast.y")) == 0);
  // 2.5 / x is reciprocal(x) * 2.5, as torch's __rtruediv__.
  CHECK(maxDiff((2.5 / Value(golden("rdiv_scalar.x"))).tensor(),
                golden("rdiv_scalar.y")) == 0);
}

TEST_CASE("arith: interpolate matches PyTorch 1.13 for every nearest and "
          "bilinear golden case",
          "[arith]") {
  Tensor X = golden("interp_near_size.x");
  for (const auto &[Name, Kw] : interpCases()) {
    INFO(Name);
    Tensor Got = run("interpolate", {X}, Kw);
    double Tol = Name.rfind("near", 0) == 0 ? 0.0 : 1e-6;
    CHECK(maxDiff(Got, golden("interp_" + Name + ".y")) <= Tol);
  }
}

TEST_CASE("arith: quantized interpolate keeps the input's qparams and is "
          "within 1 LSB of PyTorch's quantized kernels",
          "[arith]") {
  Tensor X = golden("qinterp_near_size.x");
  for (const auto &[Name, Kw] : interpCases()) {
    INFO(Name);
    Tensor Got = run("interpolate", {X}, Kw);
    double Tol = 0.0;
    CHECK(maxDiff(Got, golden("qinterp_" + Name + ".y")) <= Tol);
  }
}

TEST_CASE("arith: embedding picks the weight rows F.embedding picks, as a "
          "functional and as nn.Embedding",
          "[arith]") {
  Tensor W = golden("embedding.w"), Idx = golden("embedding.idx");
  REQUIRE(Idx.dtype() == DType::S64);
  CHECK(maxDiff(run("embedding", {Idx, W}), golden("embedding.y")) == 0);
  Embedding E(10, 4);
  E.weight.data<float>()[0] = 0; // storage is shared: overwrite all below
  std::memcpy(E.weight.data<float>(), W.data<float>(), W.byteSize());
  CHECK(maxDiff(E(Value(Idx)).tensor(), golden("embedding.y")) == 0);
  Embedding Padded(5, 3, 2);
  for (int64_t J = 0; J < 3; ++J)
    CHECK(Padded.weight.data<float>()[2 * 3 + J] == 0.0f);
}

TEST_CASE("arith: split and chunk give PyTorch's pieces, split sizes and "
          "uneven last pieces included",
          "[arith]") {
  Value X = golden("split3.x");
  auto Check = [](const std::string &Case, const std::vector<Value> &Got,
                  size_t Count) {
    INFO(Case);
    REQUIRE(Got.size() == Count);
    for (size_t K = 0; K < Count; ++K)
      CHECK(maxDiff(Got[K].tensor(), golden(Case + ".y" + std::to_string(K))) ==
            0);
  };
  Check("split3", F::split(X, 3, 1), 3);
  Check("split_sizes", F::split(X, std::vector<int64_t>{2, 5}, 1), 2);
  Check("chunk3", X.chunk(3, 1), 3);
  Check("chunk4_last", F::chunk(X, 4, -1), 3);
}

//===----------------------------------------------------------------------===//
// Tracing and the interpreter
//===----------------------------------------------------------------------===//

namespace {

/// Every arith op once, with an nn.Upsample and an nn.Embedding-free path
/// (embedding has its own trace test: its input is s64).
struct ArithModel : Module {
  std::shared_ptr<Upsample> up;
  ArithModel() : Module("ArithModel") {
    UpsampleOptions O;
    O.ScaleFactor = {{2.0, 2.0}};
    up = register_module("up", std::make_shared<Upsample>(O));
  }
  Value forward(Value X) override {
    std::vector<Value> P = X.split(1, 1);
    Value Y = (P[0] - P[1]) / (P[2] - 5.0) - F::chunk(X, 3, 1)[1];
    Y = 1.0 - Y / 2.0;
    Y = -(*up)(Y);
    F::InterpolateOptions O;
    O.Size = std::vector<int64_t>{7, 9};
    O.Mode = "bilinear";
    return F::interpolate(Y, O);
  }
};

struct EmbedModel : Module {
  std::shared_ptr<Embedding> emb;
  EmbedModel() : Module("EmbedModel") {
    emb = register_module("emb", std::make_shared<Embedding>(10, 4));
  }
  Value forward(Value Idx) override { return (*emb)(Idx)*2.0; }
};

} // namespace

TEST_CASE("arith: tracing records split and chunk as narrow nodes and the "
          "interpreter reproduces eager forward bit for bit",
          "[arith]") {
  ArithModel M;
  Tensor X = golden("sub_bcast.x").reshaped({2, 3, 4, 5});
  auto GM = take(
      symbolicTrace(M, {InputSpec::symbolic("x", DType::F32, {2, 3, 4, 5})}));
  std::string Text = printToString(*GM);
  CHECK_THAT(Text, Catch::Contains("call_function[narrow]"));
  CHECK_THAT(Text, Catch::Contains("call_function[rsub]"));
  CHECK_THAT(Text, Catch::Contains("call_module[up]"));
  CHECK_THAT(Text, Catch::Contains("mode=\"bilinear\""));
  Tensor Eager = M(Value(X)).tensor();
  CHECK(maxDiff(take(interpret(*GM, {X})), Eager) == 0);
}

TEST_CASE("arith: traced arith graphs (Upsample and Embedding modules "
          "included) survive the text form and JSON unchanged",
          "[arith]") {
  ArithModel M;
  auto GM = take(
      symbolicTrace(M, {InputSpec::symbolic("x", DType::F32, {2, 3, 4, 5})}));
  EmbedModel E;
  auto EG =
      take(symbolicTrace(E, {InputSpec::symbolic("idx", DType::S64, {2, 3})}));
  for (const GraphModule *G : {GM.get(), EG.get()}) {
    PrintOptions All;
    All.ElideTensorsAbove = -1;
    std::string Text = printToString(*G, All);
    auto FromText = take(parseGraphModule(Text, "arith.qir"));
    CHECK(printToString(*FromText, All) == Text);
    auto FromJson = take(deserializeFromJson(serializeToJson(*G), "a.json"));
    CHECK(printToString(*FromJson, All) == Text);
  }
}

TEST_CASE("arith: an embedding model traces with an s64 placeholder and "
          "interprets like eager",
          "[arith]") {
  EmbedModel M;
  Tensor Idx = golden("embedding.idx");
  auto GM =
      take(symbolicTrace(M, {InputSpec::symbolic("idx", DType::S64, {2, 3})}));
  CHECK(maxDiff(take(interpret(*GM, {Idx})), M(Value(Idx)).tensor()) == 0);
}

//===----------------------------------------------------------------------===//
// Bad inputs
//===----------------------------------------------------------------------===//

TEST_CASE("arith: bad operands are errors naming the op and the parameter",
          "[arith]") {
  Tensor A(DType::F32, {2, 3}), Bad(DType::F32, {4}),
      X4(DType::F32, {1, 1, 2, 2});
  Tensor W(DType::F32, {10, 4});
  std::vector<std::pair<std::function<std::string()>, std::string>> Cases = {
      {[&] {
         return errorOf(runOp("sub", {A, Bad}));
       },
       "sub: other: shape [4] does not broadcast with input shape [2,3]"},
      {[&] {
         return errorOf(runOp("div", {A, Bad}));
       },
       "div: other: shape [4] does not broadcast with input shape [2,3]"},
      {[&] {
         return errorOf(runOp("div", {A, A}, {{"rounding_mode", S("round")}}));
       },
       "div: rounding_mode: expected 'trunc', 'floor' or None, got 'round'"},
      {[&] {
         return errorOf(runOp("embedding", {s64({2}, {3, 10}), W}));
       },
       "embedding: input: index 10 is out of range for 10 embeddings"},
      {[&] {
         return errorOf(runOp("embedding", {s64({1}, {-1}), W}));
       },
       "embedding: input: index -1 is out of range for 10 embeddings"},
      {[&] {
         return errorOf(runOp("embedding", {A, W}));
       },
       "embedding: input: expected an s64 or s32 tensor of indices, got f32"},
      {[&] {
         return errorOf(runOp("interpolate", {X4},
                              {{"size", I(4)}, {"mode", S("bicubic")}}));
       },
       "interpolate: mode: 'bicubic' is not supported (expected 'nearest' "
       "or 'bilinear')"},
      {[&] { return errorOf(runOp("interpolate", {X4})); },
       "interpolate: size: either size or scale_factor should be defined"},
      {[&] {
         return errorOf(runOp("interpolate", {X4},
                              {{"size", I(4)}, {"scale_factor", R(2)}}));
       },
       "interpolate: scale_factor: only one of size or scale_factor should "
       "be defined"},
      {[&] {
         return errorOf(runOp("interpolate", {X4},
                              {{"size", I(4)}, {"align_corners", B(true)}}));
       },
       "interpolate: align_corners: align_corners option can only be set "
       "with the interpolating modes: linear | bilinear | bicubic | "
       "trilinear"},
      {[&] {
         return errorOf(runOp("interpolate", {A}, {{"size", I(4)}}));
       },
       "interpolate: input: expected a 4-d [N, C, H, W] tensor, got shape "
       "[2,3]"},
      {[&] {
         return errorOf(runOp("interpolate", {X4}, {{"scale_factor", R(1e6)}}));
       },
       "interpolate: size: output shape [1,1,2000000,2000000] is too large"},
      {[&] {
         return errorOf(runOp("narrow", {A, I(1), I(2), I(2)}));
       },
       "narrow: length: start (2) + length (2) exceeds extent 3"},
  };
  for (auto &[Fn, Want] : Cases)
    CHECK(Fn() == Want);
  auto Throws = [](const std::function<void()> &Fn) -> std::string {
    try {
      Fn();
    } catch (const nn::Error &E) {
      return E.what();
    }
    return "";
  };
  Value V = Tensor(DType::F32, {2, 7, 3});
  CHECK(Throws([&] {
          F::split(V, std::vector<int64_t>{3, 3}, 1);
        }) ==
        "split: split_size_or_sections: sizes [3,3] sum to 6 but dimension "
        "1 has extent 7");
  CHECK(Throws([&] { F::split(V, 0, 1); }) ==
        "split: split_size_or_sections: split_size must be positive, got 0");
  CHECK(Throws([&] { F::chunk(V, 0, 1); }) ==
        "chunk: chunks: must be positive, got 0");
  CHECK(Throws([&] { V.split(2, 3); }) ==
        "split: dim: dimension 3 is out of range for rank 3 (expected -3 to "
        "2)");
  CHECK(Throws([&] {
          UpsampleOptions O;
          O.Size = {{4, 4}};
          O.Mode = "area";
          Upsample U(O);
        }) == "Upsample: mode: 'area' is not supported (expected 'nearest' "
              "or 'bilinear')");
}

//===----------------------------------------------------------------------===//
// Gradients against finite differences
//===----------------------------------------------------------------------===//

using gradcheck::compareWithFiniteDifferences;
using gradcheck::randomTensor;

TEST_CASE("arith grad: sub, div and reciprocal match finite differences, "
          "broadcast operands reduced",
          "[arith][grad]") {
  Tensor A = randomTensor({2, 3, 4}, 1), Bv = randomTensor({3, 1}, 2, 0.5f, 2);
  Tensor Rr = randomTensor({2, 3, 4}, 3);
  auto GDiv = grad::divBackward(A, Bv, Rr);
  CHECK(compareWithFiniteDifferences(
            [&](const Tensor &T) { return ref::div(T, Bv); }, A, Rr, GDiv[0]) ==
        "");
  CHECK(compareWithFiniteDifferences(
            [&](const Tensor &T) { return ref::div(A, T); }, Bv, Rr, GDiv[1]) ==
        "");
  Tensor Pos = randomTensor({2, 3, 4}, 4, 0.5f, 2.0f);
  CHECK(compareWithFiniteDifferences(
            [](const Tensor &T) { return ref::reciprocal(T); }, Pos, Rr,
            grad::reciprocalBackward(ref::reciprocal(Pos), Rr)) == "");
}

TEST_CASE("arith grad: interpolate (nearest and bilinear) matches finite "
          "differences",
          "[arith][grad]") {
  Tensor X = randomTensor({1, 2, 4, 5}, 5);
  ref::InterpParams P;
  P.Size = {7, 9};
  for (auto Mode : {ref::InterpMode::Nearest, ref::InterpMode::Bilinear})
    for (bool AC : {false, true}) {
      if (Mode == ref::InterpMode::Nearest && AC)
        continue;
      P.Mode = Mode;
      P.AlignCorners = AC;
      Tensor Rr = randomTensor({1, 2, 7, 9}, 6);
      CHECK(compareWithFiniteDifferences(
                [&](const Tensor &T) { return ref::interpolate(T, P); }, X, Rr,
                grad::interpolateBackward(X.shape(), P, Rr)) == "");
    }
}

TEST_CASE("arith grad: embedding accumulates repeated rows and skips "
          "padding_idx; narrow places the gradient back",
          "[arith][grad]") {
  Tensor W = randomTensor({6, 3}, 7);
  Tensor Idx = s64({2, 2}, {1, 4, 4, 2});
  Tensor Rr = randomTensor({2, 2, 3}, 8);
  CHECK(compareWithFiniteDifferences(
            [&](const Tensor &T) { return take(ref::embedding(Idx, T)); }, W,
            Rr, grad::embeddingBackward(Idx, 6, std::nullopt, Rr)) == "");
  Tensor GP = grad::embeddingBackward(Idx, 6, 4, Rr);
  for (int64_t J = 0; J < 3; ++J)
    CHECK(GP.data<float>()[4 * 3 + J] == 0.0f);
  Tensor X = randomTensor({2, 5, 3}, 9), Rn = randomTensor({2, 2, 3}, 10);
  CHECK(compareWithFiniteDifferences(
            [](const Tensor &T) { return ref::narrow(T, 1, 2, 2); }, X, Rn,
            grad::narrowBackward(X.shape(), 1, 2, Rn)) == "");
}

//===----------------------------------------------------------------------===//
// ONNX import
//===----------------------------------------------------------------------===//

TEST_CASE("arith onnx: PyTorch's opset 13 and 17 exports of sub, div, "
          "Resize, Split and Slice import and match PyTorch's output",
          "[arith][onnx]") {
  for (const char *File : {"arith_opset13.onnx", "arith_opset17.onnx"}) {
    INFO(File);
    auto GM =
        take(importOnnx(std::string(QFX_TEST_DATA_DIR) + "/arith/" + File));
    std::string Text = printToString(*GM);
    CHECK_THAT(Text, Catch::Contains("call_function[interpolate]"));
    CHECK_THAT(Text, Catch::Contains("call_function[narrow]"));
    CHECK_THAT(Text, Catch::Contains("call_function[rsub]"));
    Tensor Got = take(interpret(*GM, {golden("x", "arith_io.safetensors")}));
    CHECK(maxDiff(Got, golden("y", "arith_io.safetensors")) <= 1e-5);
  }
}

TEST_CASE("arith onnx: a Gather from a float initializer imports as "
          "nn.Embedding",
          "[arith][onnx]") {
  auto GM = take(
      importOnnx(std::string(QFX_TEST_DATA_DIR) + "/arith/embed_opset13.onnx"));
  CHECK_THAT(printToString(*GM), Catch::Contains("Embedding"));
  Tensor Got = take(interpret(*GM, {golden("idx", "embed_io.safetensors")}));
  CHECK(maxDiff(Got, golden("y", "embed_io.safetensors")) == 0);
}

TEST_CASE("arith onnx: exporting sub, rsub, div, neg, narrow, Upsample, "
          "interpolate and embedding and importing the file back gives the "
          "same results",
          "[arith][onnx]") {
  ArithModel M;
  auto GM = take(
      symbolicTrace(M, {InputSpec::symbolic("x", DType::F32, {2, 3, 4, 5})}));
  Tensor X = golden("sub_bcast.x").reshaped({2, 3, 4, 5});
  Tensor Want = take(interpret(*GM, {X}));
  for (int Opset : {13, 17}) {
    INFO(Opset);
    OnnxExportOptions O;
    O.Opset = Opset;
    std::string Bytes = take(exportOnnxBuffer(*GM, O));
    auto Back = take(importOnnxBuffer(Bytes, "arith.onnx"));
    CHECK(maxDiff(take(interpret(*Back, {X})), Want) <= 1e-6);
  }
  // embedding: a Gather of the s64 graph input, read back as Embedding.
  EmbedModel E;
  auto EG =
      take(symbolicTrace(E, {InputSpec::symbolic("idx", DType::S64, {2, 3})}));
  Tensor Idx =
      Tensor::fromValues<int64_t>(DType::S64, {2, 3}, {9, 0, 3, 3, 7, 1});
  auto Back = take(importOnnxBuffer(take(exportOnnxBuffer(*EG)), "embed.onnx"));
  CHECK_THAT(printToString(*Back), Catch::Contains("Embedding"));
  CHECK(maxDiff(take(interpret(*Back, {Idx})), take(interpret(*EG, {Idx}))) ==
        0);
}
