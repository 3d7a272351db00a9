//===- LoweringTransformerTest.cpp - Transformer ops' int8 lowering -------===//
//
// Attention's int8 matmuls, softmax, layer norm and the MLP's linear + gelu
// against the reference interpreter, and the steps they lower to.
//
//===----------------------------------------------------------------------===//

#include "LoweringTestUtil.h"

#include <random>
#include <tuple>

using namespace qfx;
using namespace qfx::lowering_test;

TEST_CASE("lowering: an int8 matmul of two activations matches the "
          "reference, as exact f32 when its depth allows",
          "[lowering][host-kernels]") {
  bool Portable = GENERATE(false, true);
  HostIsaScope Isa(Portable);
  INFO("portable host loops: " << Portable);
  // Attention's shapes: q [N, H, T, D] and k^T as permuted views; depth D
  // small enough for an exact float accumulator, and a depth past it that
  // takes oneDNN's int8 matmul.
  for (int64_t D : {16, 300})
    for (bool Dequant : {false, true}) {
      INFO("depth " << D << ", fused dequantize " << Dequant);
      Builder B;
      Node *Q = B.quantize(B.input("q", {2, 5, 3, D}), 2.0 / 255, 117);
      Node *K = B.quantize(B.input("k", {2, 5, 3, D}), 1.5 / 255, 140);
      Node *QP = B.fn("permute", {Q, Argument::ints({0, 2, 1, 3})});
      Node *KP = B.fn("permute", {K, Argument::ints({0, 2, 3, 1})});
      Node *S = B.fn("quantized_matmul",
                     {QP, KP, Argument::real(0.05), Argument::integer(121)});
      Node *Out = B.dequantize(S);
      if (Dequant)
        Out = B.fn("mul", {Out, Argument::real(0.25)});
      else
        Out = B.dequantize(B.fn("permute", {S, Argument::ints({0, 2, 1, 3})}));
      B.output(Out);
      std::vector<Tensor> In = {randomF32({2, 5, 3, D}, 31),
                                randomF32({2, 5, 3, D}, 32)};
      Tensor Want = interpretAll(*B.GM, In)[0];
      auto M = compileOrFail(*B.GM);
      Tensor Got = runOrFail(*M, In)[0];
      double Lsb = Dequant ? 0.05 * 0.25 : 0.05;
      CHECK(maxLsb(Got, Want, Lsb) <= 1.0);
      // The reference sums float products: only values within rounding
      // error of a tie may land one step away.
      int64_t Same = 0;
      for (int64_t I = 0; I < Want.numElements(); ++I)
        Same += std::fabs(Got.getAsDouble(I) - Want.getAsDouble(I)) < Lsb / 2;
      CHECK(double(Same) / double(Want.numElements()) >= 0.98);
      CHECK(countKind(*M, "fallback") == 0);
      const StepInfo *MM = findStep(*M, "matmul", "");
      REQUIRE(MM);
      CHECK(llvm::StringRef(MM->Detail).contains("exact f32") == (D <= 258));
    }
}

TEST_CASE("lowering: attention's q / k / v projections write f32 codes that "
          "the exact-f32 matmuls read in place",
          "[lowering]") {
  // PyTorch's converted attention head split: linear -> reshape -> permute
  // (-> transpose for k) -> quantized_matmul. The projections write their
  // codes less the zero point as f32, so no matmul operand is converted;
  // a projection also read elsewhere keeps its int8 output.
  for (bool AlsoOutput : {false, true}) {
    INFO("projection also an output: " << AlsoOutput);
    Builder B;
    Node *X = B.quantize(B.input("x", {2, 17, 32}), 4.0 / 255, 128);
    Node *Q = qlinear(B, "q_proj", "QuantizedLinear", X, 32, 32, 0.06, 64);
    Node *K = qlinear(B, "k_proj", "QuantizedLinear", X, 32, 32, 0.07, 70);
    auto Heads = [&](Node *P) {
      Node *R = B.fn("reshape", {P, Argument::ints({2, 17, 2, 16})});
      return B.fn("permute", {R, Argument::ints({0, 2, 1, 3})});
    };
    Node *KT = B.fn("transpose",
                    {Heads(K), Argument::integer(-2), Argument::integer(-1)});
    Node *S = B.fn("quantized_matmul",
                   {Heads(Q), KT, Argument::real(0.4), Argument::integer(60)});
    std::vector<Argument> Outs = {B.dequantize(S)};
    if (AlsoOutput)
      Outs.push_back(B.dequantize(Q));
    B.output(Outs);
    std::vector<Tensor> In = {randomF32({2, 17, 32}, 41, -2.0f, 2.0f)};
    std::vector<Tensor> Want = interpretAll(*B.GM, In);
    auto M = compileOrFail(*B.GM);
    std::vector<Tensor> Got = runOrFail(*M, In);
    CHECK(maxLsb(Got[0], Want[0], 0.4) <= 1.0);
    int64_t Same = 0;
    for (int64_t I = 0; I < Want[0].numElements(); ++I)
      Same += Got[0].getAsDouble(I) == Want[0].getAsDouble(I);
    CHECK(double(Same) / double(Want[0].numElements()) >= 0.98);
    const StepInfo *QS = findStep(*M, "matmul", "q_proj");
    const StepInfo *KS = findStep(*M, "matmul", "k_proj");
    REQUIRE(QS);
    REQUIRE(KS);
    CHECK(llvm::StringRef(QS->Detail).endswith("f32 codes") == !AlsoOutput);
    CHECK(llvm::StringRef(KS->Detail).endswith("f32 codes"));
    // Only q's codes, when it stays int8, are converted for the matmul.
    size_t Converted = 0;
    for (const StepInfo &St : M->steps())
      Converted += llvm::StringRef(St.Name).endswith("_f32");
    CHECK(Converted == (AlsoOutput ? 1u : 0u));
  }
}

TEST_CASE("lowering: a float softmax writes the quantize after it itself",
          "[lowering][host-kernels]") {
  bool Portable = GENERATE(false, true);
  HostIsaScope Isa(Portable);
  INFO("portable host loops: " << Portable);
  // PyTorch keeps softmax float and observes its output with fixed qparams:
  // the quantize joins the softmax step.
  Builder B;
  Node *X = B.input("x", {2, 4, 17, 17});
  Node *S = B.fn("softmax", {X, Argument::integer(-1)});
  Node *Q = B.quantize(S, 1.0 / 256, 0);
  B.output(B.dequantize(Q));
  std::vector<Tensor> In = {randomF32({2, 4, 17, 17}, 41, -4.0f, 4.0f)};
  Tensor Want = interpretAll(*B.GM, In)[0];
  auto M = compileOrFail(*B.GM);
  Tensor Got = runOrFail(*M, In)[0];
  CHECK(maxLsb(Got, Want, 1.0 / 256) <= 1.0);
  CHECK(countKind(*M, "quantize") == 0);
  const StepInfo *Step = findStep(*M, "softmax", "quantize_per_tensor");
  REQUIRE(Step);
  CHECK(Step->Detail == "int8 dst");
}

TEST_CASE("lowering: a gelu between a dequantize and a quantize is a "
          "table, exactly the reference's",
          "[lowering][host-kernels]") {
  bool Portable = GENERATE(false, true);
  HostIsaScope Isa(Portable);
  INFO("portable host loops: " << Portable);
  // A transformer MLP as PyTorch converts it: gelu (and an eval dropout)
  // stay float between a dequantize and a quantize. A function of one byte
  // is a 256-entry table; oneDNN's gelu post-op on the int8 linear cost
  // more than the linear.
  for (const char *Approx : {"none", "tanh"}) {
    INFO("gelu approximate=" << Approx);
    Builder B;
    Node *X = B.quantize(B.input("x", {2, 17, 64}), 4.0 / 255, 128);
    Node *L1 = qlinear(B, "fc1", "QuantizedLinear", X, 64, 128, 0.09, 65);
    Node *G = B.fn("gelu", {B.dequantize(L1)},
                   {{"approximate", Argument::string(Approx)}});
    Node *D = B.fn("dropout", {G, Argument::real(0.1)});
    Node *Q = B.quantize(D, 0.05, 3);
    Node *L2 = qlinear(B, "fc2", "QuantizedLinear", Q, 128, 64, 0.1, 55);
    B.output({B.dequantize(Q), B.dequantize(L2)});
    std::vector<Tensor> In = {randomF32({2, 17, 64}, 51, -2.0f, 2.0f)};
    std::vector<Tensor> Want = interpretAll(*B.GM, In);
    auto M = compileOrFail(*B.GM);
    std::vector<Tensor> Got = runOrFail(*M, In);
    // The linear's int8 output may differ from the reference's by a step
    // (oneDNN's rounding); the table maps each byte exactly.
    CHECK(maxLsb(Got[0], Want[0], 0.05) <= 1.0);
    CHECK(maxLsb(Got[1], Want[1], 0.1) <= 1.0);
    CHECK(countKind(*M, "table_int8") == 1);
    const StepInfo *S = findStep(*M, "table_int8", "quantize_per_tensor");
    REQUIRE(S);
    CHECK(S->Detail == "2 float ops, out scale=0.05 zp=3");
    const StepInfo *Fc1 = findStep(*M, "matmul", "fc1");
    REQUIRE(Fc1);
    CHECK(Fc1->Name == "fc1");
  }
  // On int8 input, every one of the 256 codes maps exactly as the
  // reference maps it (273 bytes: whole vectors and a tail).
  Builder B;
  QuantParams InQ = QuantParams::perTensor(0.09, 65);
  Node *X = B.G().placeholder("x", TensorType{DType::U8, Shape{3, 91}, InQ});
  Node *G = B.fn("gelu", {B.dequantize(X)});
  B.output(B.dequantize(B.quantize(G, 0.05, 3)));
  Tensor Codes(DType::U8, {3, 91});
  for (int I = 0; I < 273; ++I)
    Codes.data<uint8_t>()[I] = static_cast<uint8_t>(I * 7);
  Codes.setQuant(InQ);
  Tensor Want = interpretAll(*B.GM, {Codes})[0];
  auto M = compileOrFail(*B.GM);
  Tensor Got = runOrFail(*M, {Codes})[0];
  CHECK(maxLsb(Got, Want, 0.05) == 0.0);
  CHECK(countKind(*M, "table_int8") == 1);
}

TEST_CASE("lowering: an int8 layer norm runs int8 to int8 and matches the "
          "reference",
          "[lowering][host-kernels]") {
  bool Portable = GENERATE(false, true);
  HostIsaScope Isa(Portable);
  INFO("portable host loops: " << Portable);
  // Rows of 64 (whole vectors) and 50 (a tail), with and without the affine
  // transform, u8 and s8.
  for (int64_t M : {64, 50})
    for (bool Affine : {true, false})
      for (bool Signed : {false, true}) {
        INFO("rows of " << M << ", affine " << Affine << ", signed " << Signed);
        Builder B;
        Node *X = B.quantize(B.input("x", {3, 17, M}), 6.0 / 255,
                             Signed ? 2 : 130, Signed);
        std::vector<Argument> Args = {X, Argument::ints({M})};
        if (Affine) {
          for (auto [Name, Lo, Hi] : {std::make_tuple("w", 0.5f, 1.5f),
                                      std::make_tuple("b", -0.3f, 0.3f)}) {
            REQUIRE(errorToString(B.GM->setTensor(
                        Name, randomF32({M}, Lo > 0 ? 61 : 62, Lo, Hi))) == "");
            Args.push_back(
                B.G().getAttr(Name, TensorType{DType::F32, Shape{M}, {}}));
          }
        } else {
          Args.push_back(Argument::none());
          Args.push_back(Argument::none());
        }
        Args.push_back(Argument::real(1e-6));
        Args.push_back(Argument::real(0.02));
        Args.push_back(Argument::integer(Signed ? -3 : 125));
        Node *LN = B.fn("quantized_layer_norm", Args);
        B.output(B.dequantize(LN));
        std::vector<Tensor> In = {randomF32({3, 17, M}, 63, -3.0f, 3.0f)};
        Tensor Want = interpretAll(*B.GM, In)[0];
        auto Mod = compileOrFail(*B.GM);
        Tensor Got = runOrFail(*Mod, In)[0];
        CHECK(maxLsb(Got, Want, 0.02) <= 1.0);
        // Float statistics instead of double move only near-ties.
        int64_t Same = 0;
        for (int64_t I = 0; I < Want.numElements(); ++I)
          Same += Got.getAsDouble(I) == Want.getAsDouble(I);
        CHECK(double(Same) / double(Want.numElements()) >= 0.999);
        CHECK(countKind(*Mod, "layer_norm_int8") == 1);
        CHECK(countKind(*Mod, "layer_norm") == 0);
      }
}

TEST_CASE("lowering: attention's int8 scores through softmax are one host "
          "step from int8 to int8",
          "[lowering][host-kernels]") {
  bool Portable = GENERATE(false, true);
  HostIsaScope Isa(Portable);
  INFO("portable host loops: " << Portable);
  // PyTorch's converted attention: quantized_matmul -> dequantize -> * c ->
  // softmax -> quantize (fixed qparams). Rows of 17 (a vector and a tail)
  // and of 40 (past the vector form: the scalar loop).
  for (int64_t T : {17, 40}) {
    INFO("rows of " << T);
    Builder B;
    Node *S =
        B.G().placeholder("s", TensorType{DType::U8, Shape{2, 4, T, T},
                                          QuantParams::perTensor(0.11, 131)});
    Node *Scaled = B.fn("mul", {B.dequantize(S), Argument::real(0.25)});
    Node *P = B.fn("softmax", {Scaled, Argument::integer(-1)});
    Node *Q = B.quantize(P, 1.0 / 256, 0);
    B.output(B.dequantize(Q));
    Tensor Codes(DType::U8, {2, 4, T, T});
    std::mt19937 Gen(71);
    for (int64_t I = 0; I < Codes.numElements(); ++I)
      Codes.data<uint8_t>()[I] = static_cast<uint8_t>(Gen() % 256);
    Codes.setQuant(QuantParams::perTensor(0.11, 131));
    Tensor Want = interpretAll(*B.GM, {Codes})[0];
    auto M = compileOrFail(*B.GM);
    Tensor Got = runOrFail(*M, {Codes})[0];
    CHECK(maxLsb(Got, Want, 1.0 / 256) <= 1.0);
    // The exponentials come from a table of exp(-c d): only values within
    // float rounding of a tie may move.
    int64_t Same = 0;
    for (int64_t I = 0; I < Want.numElements(); ++I)
      Same += Got.getAsDouble(I) == Want.getAsDouble(I);
    CHECK(double(Same) / double(Want.numElements()) >= 0.995);
    CHECK(countKind(*M, "softmax_int8") == 1);
    CHECK(countKind(*M, "softmax") == 0);
  }
  // After an exact-f32 matmul of two activations (q k^T) the island reads
  // the matmul's float integers q - zp: no int8 scores are made.
  for (int64_t T : {17, 40}) {
    INFO("scores from a matmul, rows of " << T);
    Builder B;
    Node *Q = B.quantize(B.input("q", {2, 3, T, 16}), 2.0 / 255, 117);
    Node *K = B.quantize(B.input("k", {2, 3, 16, T}), 1.5 / 255, 140);
    Node *S = B.fn("quantized_matmul",
                   {Q, K, Argument::real(0.05), Argument::integer(121)});
    Node *Scaled = B.fn("mul", {B.dequantize(S), Argument::real(0.25)});
    Node *P = B.fn("softmax", {Scaled, Argument::integer(-1)});
    B.output(B.dequantize(B.quantize(P, 1.0 / 256, 0)));
    std::vector<Tensor> In = {randomF32({2, 3, T, 16}, 33),
                              randomF32({2, 3, 16, T}, 34)};
    Tensor Want = interpretAll(*B.GM, In)[0];
    auto M = compileOrFail(*B.GM);
    Tensor Got = runOrFail(*M, In)[0];
    // A score a step away from the reference's (a product sum at a tie)
    // moves its row's probabilities by about a step of theirs.
    CHECK(maxLsb(Got, Want, 1.0 / 256) <= 2.0);
    int64_t Same = 0;
    for (int64_t I = 0; I < Want.numElements(); ++I)
      Same += Got.getAsDouble(I) == Want.getAsDouble(I);
    CHECK(double(Same) / double(Want.numElements()) >= 0.98);
    const StepInfo *MM = findStep(*M, "matmul", "");
    REQUIRE(MM);
    CHECK(MM->Detail == "int8 as exact f32, f32 integers");
    CHECK(countKind(*M, "quantize") == 2); // the two inputs only
    CHECK(countKind(*M, "softmax_int8") == 1);
  }
}
