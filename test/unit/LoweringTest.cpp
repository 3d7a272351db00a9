//===- LoweringTest.cpp - oneDNN lowering vs the reference interpreters ---===//

#include "LoweringTestUtil.h"

#include "qfx/Backend/OneDNN/CpuIsa.h"
#include "qfx/Codegen/Lowering.h"
#include "qfx/IR/GraphModule.h"
#include "qfx/IR/Printer.h"
#include "qfx/Models/Zoo.h"
#include "qfx/NN/Module.h"
#include "qfx/Pipeline/QuantizeFx.h"
#include "qfx/Quant/QConfigMapping.h"
#include "qfx/Runtime/Interpreter.h"
#include "qfx/Runtime/ModuleRunner.h"
#include "qfx/Runtime/Op.h"
#include "qfx/Support/Error.h"
#include "qfx/Trace/SymbolicTrace.h"

#include <catch2/catch.hpp>

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <random>
#include <string>
#include <vector>

using namespace qfx;

using namespace qfx::lowering_test;

namespace {

//===----------------------------------------------------------------------===//
// Int8 conv patterns
//===----------------------------------------------------------------------===//

struct ConvCase {
  const char *Kind;
  ConvSpec Spec;
  bool PerChannel;
  int64_t InZp;
  /// A clamp node after the conv: "", "relu6" or "hardtanh".
  const char *Clamp = "";
  bool Signed = false;
  int64_t OutZp = 100;

  std::string name() const {
    std::string S = std::string(Kind) +
                    (PerChannel ? " per-channel" : " per-tensor") +
                    " in_zp=" + std::to_string(InZp) +
                    " groups=" + std::to_string(Spec.Groups) +
                    " stride=" + std::to_string(Spec.Stride) +
                    " dil=" + std::to_string(Spec.Dil);
    if (*Clamp)
      S += std::string(" +") + Clamp;
    if (Signed)
      S += " s8";
    return S;
  }
};

/// x (-> quantize) -> conv (+ other) (-> clamp), returning the int8 result,
/// its dequantized form, or both.
Builder convGraph(const ConvCase &C, int64_t N, int64_t HW, bool Dequant) {
  Builder B;
  const ConvSpec &S = C.Spec;
  Node *X = B.input("x", {N, S.In, HW, HW});
  double InScale = C.Signed ? 1.0 / 127 : 2.0 / 255;
  Node *Q = B.quantize(X, InScale, C.Signed ? 0 : C.InZp, C.Signed);
  bool HasOther = llvm::StringRef(C.Kind).contains("Add");
  Node *Other = nullptr;
  int64_t OH = (HW + 2 * S.Pad - S.Dil * (S.K - 1) - 1) / S.Stride + 1;
  if (HasOther) {
    Node *Y = B.input("y", {N, S.Out, OH, OH});
    Other = B.quantize(Y, 1.5 / 255, C.Signed ? 0 : 77, C.Signed);
  }
  double OutScale =
      0.01 * std::sqrt(double(S.In / S.Groups * S.K * S.K)) + 0.005;
  Node *Out = qconv(B, "conv", C.Kind, Q, Other, S, OutScale,
                    C.Signed ? 0 : C.OutZp, C.PerChannel);
  if (llvm::StringRef(C.Clamp) == "relu6")
    Out = B.fn("relu6", {Out});
  else if (llvm::StringRef(C.Clamp) == "hardtanh")
    Out = B.fn("hardtanh", {Out, Argument::real(-0.3), Argument::real(0.6)});
  if (Dequant)
    B.output(B.dequantize(Out));
  else
    B.output(Out);
  return B;
}

std::vector<Tensor> convInputs(const Builder &B) {
  std::vector<Tensor> In;
  uint32_t Seed = 100;
  for (const Node *P : B.GM->graph().placeholders())
    In.push_back(randomF32(P->type()->Dims, Seed++));
  return In;
}

std::vector<ConvCase> convCases() {
  std::vector<ConvCase> R;
  const char *Kinds[] = {"QuantizedConv2d", "QuantizedConvReLU2d",
                         "QuantizedConvAdd2d", "QuantizedConvAddReLU2d"};
  for (const char *K : Kinds)
    for (bool PC : {true, false})
      for (int64_t Zp : {0, 128})
        R.push_back({K, ConvSpec(), PC, Zp});
  ConvSpec Grouped;
  Grouped.Groups = 2;
  ConvSpec Depthwise;
  Depthwise.In = Depthwise.Out = Depthwise.Groups = 16;
  ConvSpec Strided;
  Strided.Stride = 2;
  Strided.Dil = 2;
  Strided.Pad = 2;
  ConvSpec Pointwise;
  Pointwise.K = 1;
  Pointwise.Pad = 0;
  Pointwise.Out = 32;
  for (const ConvSpec &S : {Grouped, Depthwise, Strided, Pointwise})
    for (const char *K : {"QuantizedConvReLU2d", "QuantizedConvAdd2d"})
      R.push_back({K, S, true, 128});
  R.push_back({"QuantizedConv2d", ConvSpec(), true, 128, "relu6"});
  R.push_back({"QuantizedConv2d", Depthwise, true, 3, "hardtanh"});
  R.push_back({"QuantizedConvReLU2d", ConvSpec(), true, 0, "", true});
  R.push_back({"QuantizedConvAddReLU2d", ConvSpec(), true, 0, "", true});
  return R;
}

} // namespace

TEST_CASE("lowering: int8 conv patterns match the reference within 1 LSB",
          "[lowering]") {
  for (const ConvCase &C : convCases()) {
    INFO(C.name());
    Builder B = convGraph(C, 2, 9, /*Dequant=*/false);
    std::vector<Tensor> In = convInputs(B);
    std::vector<Tensor> Want = interpretAll(*B.GM, In);
    auto M = compileOrFail(*B.GM);
    std::vector<Tensor> Got = runOrFail(*M, In);
    REQUIRE(Got.size() == 1);
    double D = maxLsb(Got[0], Want[0], 1.0);
    report(C.name(), D);
    CHECK(D <= 1.0);
    // The whole pattern is one primitive between the quantize reorders.
    CHECK(countKind(*M, "conv") == 1);
    CHECK(countKind(*M, "clamp_int8") == 0);
    CHECK(countKind(*M, "fallback") == 0);
  }
}

TEST_CASE("lowering: a fused dequantize writes f32 within 1 LSB",
          "[lowering]") {
  for (const ConvCase &C : convCases()) {
    if (llvm::StringRef(C.Kind).contains("Add"))
      continue; // the identity lives in the destination: no f32 output
    INFO(C.name());
    Builder B = convGraph(C, 1, 8, /*Dequant=*/true);
    std::vector<Tensor> In = convInputs(B);
    std::vector<Tensor> Want = interpretAll(*B.GM, In);
    const GraphModule &GM = *B.GM;
    double Scale = GM.lookupModule("conv")->attr("scale")->getFloat();
    for (bool Fuse : {true, false}) {
      CompileOptions Opts;
      Opts.FuseDequantize = Fuse;
      auto M = compileOrFail(GM, Opts);
      std::vector<Tensor> Got = runOrFail(*M, In);
      double D = maxLsb(Got[0], Want[0], Scale);
      report(C.name() + (Fuse ? " (f32 dst)" : " (dequantize reorder)"), D);
      CHECK(D <= 1.0);
      CHECK(countKind(*M, "dequantize") == (Fuse ? 0u : 1u));
    }
  }
}

TEST_CASE("lowering: unfused steps give the fused results", "[lowering]") {
  ConvCase C{"QuantizedConv2d", ConvSpec(), true, 128, "relu6"};
  Builder B = convGraph(C, 1, 9, /*Dequant=*/false);
  std::vector<Tensor> In = convInputs(B);
  CompileOptions Unfused;
  Unfused.FusePostOps = false;
  auto Fused = compileOrFail(*B.GM), Plain = compileOrFail(*B.GM, Unfused);
  CHECK(countKind(*Plain, "clamp_int8") == 1);
  CHECK(countKind(*Fused, "clamp_int8") == 0);
  CHECK(maxLsb(runOrFail(*Plain, In)[0], runOrFail(*Fused, In)[0], 1.0) <= 1);
}

//===----------------------------------------------------------------------===//
// Int8 linear
//===----------------------------------------------------------------------===//

TEST_CASE("lowering: int8 linear patterns match the reference within 1 LSB",
          "[lowering]") {
  for (const char *Kind : {"QuantizedLinear", "QuantizedLinearReLU"})
    for (bool PerChannel : {true, false})
      for (int64_t Zp : {0, 131})
        for (bool Rank3 : {false, true}) {
          std::string Name = std::string(Kind) +
                             (PerChannel ? " per-channel" : " per-tensor") +
                             " in_zp=" + std::to_string(Zp) +
                             (Rank3 ? " rank 3" : "");
          INFO(Name);
          Builder B;
          Shape S = Rank3 ? Shape{2, 3, 40} : Shape{4, 40};
          Node *Q = B.quantize(B.input("x", S), 2.0 / 255, Zp);
          Node *L = qlinear(B, "fc", Kind, Q, 40, 24, 0.03, 60, PerChannel);
          B.output({L, B.dequantize(L)});
          std::vector<Tensor> In = {randomF32(S, 7)};
          std::vector<Tensor> Want = interpretAll(*B.GM, In);
          auto M = compileOrFail(*B.GM);
          std::vector<Tensor> Got = runOrFail(*M, In);
          REQUIRE(Got.size() == 2);
          double D = maxLsb(Got[0], Want[0], 1.0);
          report(Name, D);
          CHECK(D <= 1.0);
          CHECK(maxLsb(Got[1], Want[1], 0.03) <= 1.0);
          CHECK(countKind(*M, "matmul") == 1);
        }
}

TEST_CASE("lowering: dynamic linear matches the reference", "[lowering]") {
  for (bool Reduce : {true, false}) {
    INFO("reduce_range " << Reduce);
    Builder B;
    Node *X = B.input("x", {5, 64});
    ModuleInfo &Mod = B.GM->addModule("fc", "QuantizedLinearDynamic");
    Mod.setAttr("in_features", Argument::integer(64));
    Mod.setAttr("out_features", Argument::integer(32));
    Mod.setAttr("reduce_range", Argument::boolean(Reduce));
    Mod.setTensor("weight", randomWeight({32, 64}, true, 3));
    Mod.setTensor("bias", randomF32({32}, 4));
    Node *L = B.typed(B.G().callModule("fc", {X}));
    B.output(B.fn("relu", {L}));
    std::vector<Tensor> In = {randomF32({5, 64}, 9, -3.0f, 2.0f)};
    Tensor Want = interpretAll(*B.GM, In)[0];
    auto M = compileOrFail(*B.GM);
    Tensor Got = runOrFail(*M, In)[0];
    // Same integers, float output stages that differ in rounding order.
    float MaxAbs = 0.0f;
    for (int64_t I = 0; I < Want.numElements(); ++I)
      MaxAbs = std::max(MaxAbs, std::fabs(Want.data<float>()[I]));
    double Worst = 0.0;
    for (int64_t I = 0; I < Want.numElements(); ++I)
      Worst = std::max<double>(
          Worst, std::fabs(Got.data<float>()[I] - Want.data<float>()[I]));
    report(std::string("QuantizedLinearDynamic reduce_range=") +
               (Reduce ? "true" : "false") + " (relative to max |y|)",
           Worst / MaxAbs);
    CHECK(Worst <= 1e-5 * MaxAbs);
    CHECK(countKind(*M, "quantize_dynamic") == 1);
    CHECK(countKind(*M, "eltwise") == 0); // relu fused into the matmul
  }
}

//===----------------------------------------------------------------------===//
// Residual adds: in place or copied
//===----------------------------------------------------------------------===//

namespace {

/// q -> c1 -> c2 -> add(c2, c1) [-> quantized_add(.., c1) when the identity
/// must stay alive].
Builder residualGraph(bool IdentityUsedLater) {
  Builder B;
  ConvSpec S;
  S.In = S.Out = 16;
  Node *Q = B.quantize(B.input("x", {1, 16, 10, 10}), 2.0 / 255, 128);
  Node *C1 = qconv(B, "c1", "QuantizedConvReLU2d", Q, nullptr, S, 0.04, 0);
  Node *C2 = qconv(B, "c2", "QuantizedConv2d", C1, nullptr, S, 0.05, 120);
  Node *Add = qconv(B, "c3", "QuantizedConvAddReLU2d", C2, C1, S, 0.06, 0);
  Node *Out = Add;
  if (IdentityUsedLater)
    Out = B.fn("quantized_add",
               {Add, C1, Argument::real(0.07), Argument::integer(5)});
  B.output(B.dequantize(Out));
  return B;
}

} // namespace

TEST_CASE("lowering: the sum post-op is in place only when the identity dies",
          "[lowering]") {
  for (bool Alive : {false, true}) {
    INFO("identity used later: " << Alive);
    Builder B = residualGraph(Alive);
    std::vector<Tensor> In = {randomF32({1, 16, 10, 10}, 21)};
    Tensor Want = interpretAll(*B.GM, In)[0];
    auto M = compileOrFail(*B.GM);
    Tensor Got = runOrFail(*M, In)[0];
    CHECK(maxLsb(Got, Want, Alive ? 0.07 : 0.06) <= 1.0);
    const StepInfo *S = findStep(*M, "conv", "c3");
    REQUIRE(S);
    CHECK(S->Sum == (Alive ? SumMode::Copied : SumMode::InPlace));
    CHECK(countKind(*M, "copy") == (Alive ? 1u : 0u));
    if (Alive)
      CHECK(countKind(*M, "add_int8") == 1);
  }
}

TEST_CASE("lowering: a standalone int8 add equals the reference at every "
          "length and signedness",
          "[lowering][host-kernels]") {
  bool Portable = GENERATE(false, true);
  HostIsaScope Isa(Portable);
  INFO("portable host loops: " << Portable);
  // The host add has a 16-wide vector loop with a masked tail and a scalar
  // loop; both must reproduce quantized_add's rounding exactly, including
  // lengths that split into parallel chunks.
  for (int64_t N : {1, 15, 16, 17, 100, 1088, 70001})
    for (bool Signed : {false, true})
      for (const char *Op : {"quantized_add", "quantized_add_relu"}) {
        INFO(Op << " of " << N << " elements, signed " << Signed);
        Builder B;
        Node *X = B.quantize(B.input("x", {1, N}), 3.0 / 255, Signed ? 3 : 131,
                             Signed);
        Node *Y = B.quantize(B.input("y", {1, N}), 2.5 / 255, Signed ? -7 : 97,
                             Signed);
        Node *Sum = B.fn(Op, {X, Y, Argument::real(0.021),
                              Argument::integer(Signed ? -20 : 113)});
        B.output(B.dequantize(Sum));
        std::vector<Tensor> In = {randomF32({1, N}, 7, -1.6f, 1.6f),
                                  randomF32({1, N}, 8, -1.2f, 1.2f)};
        Tensor Want = interpretAll(*B.GM, In)[0];
        auto M = compileOrFail(*B.GM);
        Tensor Got = runOrFail(*M, In)[0];
        CHECK(countKind(*M, "add_int8") == 1);
        CHECK(maxLsb(Got, Want, 0.021) == 0.0);
      }
}

TEST_CASE("lowering: an instruction-set cap is refused when unknown or too "
          "late",
          "[lowering]") {
  CHECK(errorToString(setMaxCpuIsa("avx9")) ==
        "unknown instruction set 'avx9' (expected one of sse41, avx, avx2, "
        "avx2_vnni, avx512_core, avx512_core_vnni, avx512_core_bf16, "
        "avx512_core_amx, all)");
  // A compiled module fixes oneDNN's choice for the process.
  Builder B;
  B.output(B.dequantize(B.quantize(B.input("x", {1, 4}), 0.1, 3)));
  auto M = compileOrFail(*B.GM);
  std::string Isa = effectiveCpuIsa();
  REQUIRE(Isa != "unknown");
  CHECK(!errorToString(setMaxCpuIsa("all")).size());
  CHECK(!errorToString(setMaxCpuIsa(Isa)).size());
  if (Isa != "sse41")
    CHECK(errorToString(setMaxCpuIsa("sse41")) ==
          "cannot cap the instruction set at 'sse41': oneDNN already chose "
          "its kernels' (" +
              Isa + "); cap it before compiling anything");
  CHECK(effectiveCpuIsa() == Isa);
}

TEST_CASE("lowering: the host kernels leave AVX-512 to caps that admit it",
          "[lowering]") {
  Builder B;
  B.output(B.dequantize(B.quantize(B.input("x", {1, 4}), 0.1, 3)));
  auto M = compileOrFail(*B.GM);
  llvm::StringRef Isa = effectiveCpuIsa();
  // oneDNN's cap (DNNL_MAX_CPU_ISA or setMaxCpuIsa) governs them too.
  if (!Isa.startswith("avx512"))
    CHECK_FALSE(hostMayUseAvx512());
  {
    HostIsaScope Portable(true);
    CHECK_FALSE(hostMayUseAvx512());
  }
  CHECK(errorToString(setMaxHostCpuIsa("avx9")) ==
        "unknown instruction set 'avx9' (expected one of sse41, avx, avx2, "
        "avx2_vnni, avx512_core, avx512_core_vnni, avx512_core_bf16, "
        "avx512_core_amx, all)");
  if (Isa.startswith("avx512") && hostMayUseAvx512()) {
    REQUIRE(!llvm::errorToBool(setMaxHostCpuIsa("avx512_core")));
    CHECK(hostMayUseAvx512());
    REQUIRE(!llvm::errorToBool(setMaxHostCpuIsa("all")));
  }
}

TEST_CASE("lowering: a sum never overwrites its own conv's input",
          "[lowering]") {
  // conv(x) + x: the identity dies at the add, but the conv still reads it.
  ReferenceKernels Naive;
  ConvSpec S;
  S.In = S.Out = 8;
  for (bool Int8 : {true, false}) {
    INFO("int8: " << Int8);
    Builder B;
    Node *X = B.input("x", {1, 8, 6, 6});
    if (Int8) {
      Node *Q = B.quantize(X, 2.0 / 255, 128);
      Node *C = qconv(B, "c", "QuantizedConvAddReLU2d", Q, Q, S, 0.05, 0);
      B.output(C);
    } else {
      Node *N1 = fconv(B, "c0", "ConvReLU2d", X, nullptr, S);
      Node *C = fconv(B, "c", "Conv2d", N1, nullptr, S);
      B.output(B.fn("add", {C, N1}));
    }
    std::vector<Tensor> In = {randomF32({1, 8, 6, 6}, 13)};
    Tensor Want = interpretAll(*B.GM, In)[0];
    auto M = compileOrFail(*B.GM);
    Tensor Got = runOrFail(*M, In)[0];
    if (Int8)
      CHECK(maxLsb(Got, Want, 1.0) <= 1.0);
    else
      CHECK(closeF32(Got, Want));
    const StepInfo *St = findStep(*M, "conv", Int8 ? "c" : "c+add");
    REQUIRE(St);
    CHECK(St->Sum == SumMode::Copied);
  }
}

//===----------------------------------------------------------------------===//
// Pools, adds, concatenation, views, fallbacks
//===----------------------------------------------------------------------===//

TEST_CASE("lowering: an int8 network of pools, adds, cat and views",
          "[lowering]") {
  for (bool Divisible : {true, false}) {
    INFO("adaptive pool divides: " << Divisible);
    Builder B;
    ConvSpec S;
    Node *Q = B.quantize(B.input("x", {2, 8, 12, 12}), 2.0 / 255, 128);
    Node *C = qconv(B, "c1", "QuantizedConvReLU2d", Q, nullptr, S, 0.05, 0);
    Node *MP = B.fn("max_pool2d", {C, Argument::integer(2)});
    Node *AP = B.fn(
        "avg_pool2d",
        {C, Argument::integer(3), Argument::integer(2), Argument::integer(1)},
        {{"count_include_pad", Argument::boolean(false)}});
    Node *Sum = B.fn("quantized_add_relu",
                     {MP, AP, Argument::real(0.08), Argument::integer(10)});
    Node *Cat =
        B.fn("quantized_cat", {Argument::list({MP, MP}), Argument::integer(1),
                               Argument::real(0.05), Argument::integer(0)});
    Node *Pool =
        B.fn("adaptive_avg_pool2d",
             {Cat, Argument::ints(Divisible ? std::vector<int64_t>{3, 3}
                                            : std::vector<int64_t>{4, 4})});
    Node *Flat = B.fn("flatten", {Pool, Argument::integer(1)});
    int64_t Features = 32 * (Divisible ? 9 : 16);
    Node *FC = qlinear(B, "fc", "QuantizedLinear", Flat, Features, 10, 0.1, 64);
    B.output({B.dequantize(FC), B.dequantize(Sum)});
    std::vector<Tensor> In = {randomF32({2, 8, 12, 12}, 5)};
    std::vector<Tensor> Want = interpretAll(*B.GM, In);
    auto M = compileOrFail(*B.GM);
    std::vector<Tensor> Got = runOrFail(*M, In);
    double D0 = maxLsb(Got[0], Want[0], 0.1),
           D1 = maxLsb(Got[1], Want[1], 0.08);
    report(std::string("pool/add/cat/flatten network, adaptive ") +
               (Divisible ? "divisible" : "fallback"),
           std::max(D0, D1));
    CHECK(D0 <= 1.0);
    CHECK(D1 <= 1.0);
    CHECK(countKind(*M, "pool") == (Divisible ? 3u : 2u));
    CHECK(countKind(*M, "fallback") == (Divisible ? 0u : 1u));
    CHECK(countKind(*M, "concat") == 1);
    CHECK(countKind(*M, "add_int8") == 1);
    // flatten is a view: no step names it.
    for (const StepInfo &St : M->steps())
      CHECK(St.Name.find("flatten") == std::string::npos);
  }
}

TEST_CASE("lowering: ops without a lowering run through the op table",
          "[lowering]") {
  Builder B;
  ConvSpec S;
  Node *Q = B.quantize(B.input("x", {1, 8, 6, 6}), 2.0 / 255, 128);
  Node *C = qconv(B, "c1", "QuantizedConv2d", Q, nullptr, S, 0.05, 128);
  Node *Sig = B.fn(
      "quantized_leaky_relu",
      {C, Argument::real(0.1), Argument::real(0.04), Argument::integer(20)});
  Node *F = B.fn("leaky_relu", {B.dequantize(Sig)});
  B.output(F);
  std::vector<Tensor> In = {randomF32({1, 8, 6, 6}, 8)};
  Tensor Want = interpretAll(*B.GM, In)[0];
  auto M = compileOrFail(*B.GM);
  Tensor Got = runOrFail(*M, In)[0];
  CHECK(closeF32(Got, Want));
  CHECK(countKind(*M, "fallback") == 2);
}

TEST_CASE("lowering: flattening NHWC activations for linears copies nothing",
          "[lowering]") {
  ReferenceKernels Naive;
  for (bool Int8 : {true, false}) {
    INFO("int8: " << Int8);
    Builder B;
    ConvSpec S;
    S.Stride = 3;
    Node *X = B.input("x", {2, 8, 9, 9});
    Node *Flat, *FC;
    if (Int8) {
      Node *Q = B.quantize(X, 2.0 / 255, 128);
      Node *C = qconv(B, "c", "QuantizedConvReLU2d", Q, nullptr, S, 0.05, 0);
      Flat = B.fn("flatten", {C, Argument::integer(1)});
      FC = B.dequantize(
          qlinear(B, "fc", "QuantizedLinear", Flat, 16 * 9, 10, 0.1, 64));
    } else {
      Node *C = fconv(B, "c", "ConvReLU2d", X, nullptr, S);
      Flat = B.fn("flatten", {C, Argument::integer(1)});
      FC = flinear(B, "fc", Flat, 16 * 9, 10);
    }
    B.output(FC);
    std::vector<Tensor> In = {randomF32({2, 8, 9, 9}, 31)};
    Tensor Want = interpretAll(*B.GM, In)[0];
    auto M = compileOrFail(*B.GM);
    Tensor Got = runOrFail(*M, In)[0];
    if (Int8)
      CHECK(maxLsb(Got, Want, 0.1) <= 1.0);
    else
      CHECK(closeF32(Got, Want));
    // The only layout change is the float input's, to NHWC.
    CHECK(countKind(*M, "reorder") == (Int8 ? 0u : 1u));
    for (const StepInfo &St : M->steps())
      CHECK(!llvm::StringRef(St.Name).endswith(".nchw"));
    CHECK(countKind(*M, "matmul") == 1);
  }
}

//===----------------------------------------------------------------------===//
// Float graphs
//===----------------------------------------------------------------------===//

TEST_CASE("lowering: float graphs fuse like int8 and match the interpreter",
          "[lowering]") {
  ReferenceKernels Naive;
  Builder B;
  ConvSpec S;
  S.Out = 8;
  Node *X = B.input("x", {2, 8, 10, 10});
  Node *C1 = fconv(B, "c1", "ConvReLU2d", X, nullptr, S);
  Node *C2 = fconv(B, "c2", "Conv2d", C1, nullptr, S);
  Node *Add = B.fn("add", {C2, C1});
  Node *R = B.fn("relu", {Add});
  ConvSpec D;
  D.In = D.Out = D.Groups = 16;
  D.Stride = 2;
  Node *C3 = fconv(B, "c3", "Conv2d",
                   B.fn("cat", {Argument::list({R, C1}), Argument::integer(1)}),
                   nullptr, D);
  Node *C4 = B.fn("hardtanh", {C3, Argument::real(-0.2), Argument::real(0.3)});
  Node *MP = B.fn("max_pool2d", {C4, Argument::integer(2)});
  Node *AP = B.fn("avg_pool2d", {C4, Argument::integer(2)});
  Node *Sum = B.fn("relu6", {B.fn("add", {MP, AP})});
  Node *Flat = B.fn("flatten", {Sum, Argument::integer(1)});
  Node *FC = flinear(B, "fc", Flat, 16 * 2 * 2, 10);
  B.output({FC, C1});
  std::vector<Tensor> In = {randomF32({2, 8, 10, 10}, 3)};
  std::vector<Tensor> Want = interpretAll(*B.GM, In);
  auto M = compileOrFail(*B.GM);
  std::vector<Tensor> Got = runOrFail(*M, In);
  REQUIRE(Got.size() == 2);
  CHECK(closeF32(Got[0], Want[0]));
  CHECK(closeF32(Got[1], Want[1]));
  // c2 + add + relu is one conv with sum and relu post-ops; c1 stays alive
  // (cat and the output read it), so the sum works on a copy.
  const StepInfo *C2Step = findStep(*M, "conv", "c2");
  REQUIRE(C2Step);
  CHECK(C2Step->Name == "c2+add+relu");
  CHECK(C2Step->Sum == SumMode::Copied);
  const StepInfo *C3Step = findStep(*M, "conv", "c3");
  REQUIRE(C3Step);
  CHECK(C3Step->Name == "c3+hardtanh");
  const StepInfo *AddStep = findStep(*M, "binary", "add");
  REQUIRE(AddStep);
  CHECK(llvm::StringRef(AddStep->Name).endswith("relu6"));
  CHECK(countKind(*M, "eltwise") == 0);
  CHECK(countKind(*M, "fallback") == 0);
}

TEST_CASE("lowering: a float residual whose identity dies sums in place",
          "[lowering]") {
  ReferenceKernels Naive;
  Builder B;
  ConvSpec S;
  S.In = S.Out = 8;
  Node *X = B.input("x", {1, 8, 7, 7});
  Node *C1 = fconv(B, "c1", "Conv2d", X, nullptr, S);
  Node *C2 = fconv(B, "c2", "ConvReLU2d", C1, nullptr, S);
  Node *C3 = fconv(B, "c3", "ConvAddReLU2d", C2, C1, S);
  B.output(C3);
  std::vector<Tensor> In = {randomF32({1, 8, 7, 7}, 4)};
  Tensor Want = interpretAll(*B.GM, In)[0];
  auto M = compileOrFail(*B.GM);
  CHECK(closeF32(runOrFail(*M, In)[0], Want));
  const StepInfo *C3Step = findStep(*M, "conv", "c3");
  REQUIRE(C3Step);
  CHECK(C3Step->Sum == SumMode::InPlace);
  CHECK(countKind(*M, "copy") == 0);
}

/// Gives the BatchNorm module at \p Path running statistics and an affine
/// transform over \p C channels.
static void setBatchNorm(Builder &B, llvm::StringRef Path, int64_t C) {
  ModuleInfo &M = *B.GM->lookupModule(Path);
  M.setAttr("num_features", Argument::integer(C));
  M.setAttr("eps", Argument::real(1e-5));
  M.setTensor("running_mean", randomF32({C}, B.Seed++), true);
  M.setTensor("running_var", randomF32({C}, B.Seed++, 0.5f, 2.0f), true);
  M.setTensor("weight", randomF32({C}, B.Seed++));
  M.setTensor("bias", randomF32({C}, B.Seed++));
}

static Node *callBatchNorm(Builder &B, llvm::StringRef Path,
                           llvm::StringRef Kind, Node *X, int64_t C) {
  B.GM->addModule(Path, Kind.str());
  setBatchNorm(B, Path, C);
  return B.typed(B.G().callModule(Path, {X}));
}

TEST_CASE("lowering: float batch norms left unfused are primitives",
          "[lowering]") {
  ReferenceKernels Naive;
  Builder B;
  ConvSpec S;
  Node *X = B.input("x", {2, 8, 6, 6});
  Node *C = fconv(B, "c", "Conv2d", X, nullptr, S);
  Node *BN1 = B.fn("relu", {callBatchNorm(B, "bn1", "BatchNorm2d", C, 16)});
  B.GM->addModule("bn2", "BNReLU2d");
  B.GM->addModule("bn2.0", "BatchNorm2d");
  B.GM->addModule("bn2.1", "ReLU");
  setBatchNorm(B, "bn2.0", 16);
  Node *BN2 = B.typed(B.G().callModule("bn2", {BN1}));
  B.output(B.fn("relu6", {callBatchNorm(B, "bn3", "BatchNorm2d", BN2, 16)}));
  std::vector<Tensor> In = {randomF32({2, 8, 6, 6}, 17)};
  Tensor Want = interpretAll(*B.GM, In)[0];
  CompileOptions Opts;
  Opts.FoldBatchNorm = false;
  auto M = compileOrFail(*B.GM, Opts);
  CHECK(closeF32(runOrFail(*M, In)[0], Want));
  CHECK(countKind(*M, "batch_norm") == 3);
  CHECK(countKind(*M, "fallback") == 0);
  // relu fuses into the batch norm; relu6 has no batch-norm fusion.
  CHECK(findStep(*M, "batch_norm", "bn1+relu"));
  CHECK(countKind(*M, "eltwise") == 1);
}

TEST_CASE("lowering: a float batch norm folds into the conv or linear before "
          "it, which then fuses its relu",
          "[lowering]") {
  ReferenceKernels Naive;
  Builder B;
  ConvSpec S;
  S.In = 8;
  S.Out = 8;
  Node *X = B.input("x", {2, 8, 6, 6});
  // Folds: c1 -> bn1 -> relu is one conv with a relu post-op.
  Node *C1 = fconv(B, "c1", "Conv2d", X, nullptr, S);
  Node *R1 = B.fn("relu", {callBatchNorm(B, "bn1", "BatchNorm2d", C1, 8)});
  // Does not fold: c2's output is also an output of the graph.
  Node *C2 = fconv(B, "c2", "Conv2d", R1, nullptr, S);
  Node *BN2 = callBatchNorm(B, "bn2", "BatchNorm2d", C2, 8);
  // Does not fold: c3 is called twice (its weights are shared).
  Node *C3 = fconv(B, "c3", "Conv2d", BN2, nullptr, S);
  Node *BN3 = callBatchNorm(B, "bn3", "BatchNorm2d", C3, 8);
  Node *C3Again = B.typed(B.G().callModule("c3", {BN3}));
  // Folds: a linear on [N, C] and BatchNorm1d.
  Node *Flat = B.fn("flatten", {C3Again, Argument::integer(1)});
  Node *FC = flinear(B, "fc", Flat, 8 * 6 * 6, 10);
  Node *BN4 = callBatchNorm(B, "bn4", "BatchNorm1d", FC, 10);
  B.output({BN4, C2});
  std::vector<Tensor> In = {randomF32({2, 8, 6, 6}, 5)};
  std::vector<Tensor> Want = interpretAll(*B.GM, In);
  std::string Before = printToString(*B.GM);
  const Tensor &W1 = *B.GM->lookupModule("c1")->tensor("weight");
  std::vector<float> W1Before(W1.data<float>(),
                              W1.data<float>() + W1.numElements());
  auto M = compileOrFail(*B.GM);
  std::vector<Tensor> Got = runOrFail(*M, In);
  REQUIRE(Got.size() == 2);
  CHECK(closeF32(Got[0], Want[0]));
  CHECK(closeF32(Got[1], Want[1]));
  CHECK(findStep(*M, "conv", "c1+relu"));
  CHECK(countKind(*M, "batch_norm") == 2); // bn2, bn3
  CHECK(countKind(*M, "eltwise") == 0);
  // The caller's module is left as it was.
  CHECK(printToString(*B.GM) == Before);
  CHECK(std::equal(W1Before.begin(), W1Before.end(), W1.data<float>()));
  // Off, every batch norm is a step.
  CompileOptions Unfolded;
  Unfolded.FoldBatchNorm = false;
  auto U = compileOrFail(*B.GM, Unfolded);
  CHECK(countKind(*U, "batch_norm") == 4);
  std::vector<Tensor> GotU = runOrFail(*U, In);
  CHECK(closeF32(GotU[0], Want[0]));
}

/// \p E's model calibrated on two random batches of its small input and
/// converted to a reference int8 graph with the x86 preset.
static std::unique_ptr<GraphModule> zooReference(const models::ZooEntry &E) {
  Shape S = smallZooInput(E);
  auto Model = E.Create();
  Model->eval();
  auto P = QConfig::preset("x86");
  if (!P)
    FAIL(errorToString(P.takeError()));
  QConfigMapping Map;
  Map.setGlobal(*P);
  auto Obs = prepare_fx(*Model, Map, {InputSpec::symbolic("x", DType::F32, S)});
  if (!Obs)
    FAIL(errorToString(Obs.takeError()));
  for (uint32_t I = 0; I < 2; ++I)
    if (auto Out = (*Obs)({randomF32(S, 40 + I)}); !Out)
      FAIL(errorToString(Out.takeError()));
  auto Ref = convert_to_reference_fx(Obs->graphModule());
  if (!Ref)
    FAIL(errorToString(Ref.takeError()));
  return std::move(*Ref);
}

/// The scale of a reference graph's output, the dequantized last linear.
static double outputScale(const GraphModule &Ref) {
  const Node *Deq = Ref.graph().outputNode()->arg(0).getNode();
  return Deq->arg(0).getNode()->type()->Quant.Scale;
}

TEST_CASE("lowering: zoo models end to end within 1 LSB", "[lowering]") {
  for (const models::ZooEntry &E : models::zoo()) {
    INFO(E.Name);
    std::unique_ptr<GraphModule> Ref = zooReference(E);
    std::vector<Tensor> In = {randomF32(smallZooInput(E), 50)};
    Tensor Want = interpretAll(*Ref, In)[0];
    auto M = compileOrFail(*Ref);
    Tensor Got = runOrFail(*M, In)[0];
    double D = maxLsb(Got, Want, outputScale(*Ref));
    report("zoo " + E.Name, D);
    CHECK(D <= 1.0);
    CHECK(countKind(*M, "fallback") == 0);
    CHECK(M->peakActivationBytes() < M->totalActivationBytes());
  }
}

TEST_CASE("lowering: a convolution leaves oneDNN's AMX kernel only for "
          "another instruction set's, which computes the same",
          "[lowering]") {
  auto E = llvm::find_if(models::zoo(), [](const models::ZooEntry &Z) {
    return Z.Name == "mobilenet_v3_cnn";
  });
  REQUIRE(E != models::zoo().end());
  std::unique_ptr<GraphModule> Ref = zooReference(*E);
  std::vector<Tensor> In = {randomF32(smallZooInput(*E), 51)};
  Tensor Want = interpretAll(*Ref, In)[0];
  std::vector<std::vector<std::string>> Impls;
  for (ImplChoice C :
       {ImplChoice::First, ImplChoice::Alternative, ImplChoice::Measure}) {
    CompileOptions Opts;
    Opts.Implementations = C;
    auto M = compileOrFail(*Ref, Opts);
    CHECK(maxLsb(runOrFail(*M, In)[0], Want, outputScale(*Ref)) <= 1.0);
    Impls.emplace_back();
    for (const StepInfo &S : M->steps())
      if (S.Kind == "conv")
        Impls.back().push_back(S.Impl);
  }
  const auto &First = Impls[0], &Alt = Impls[1], &Measured = Impls[2];
  REQUIRE(First.size() == Alt.size());
  REQUIRE(First.size() == Measured.size());
  size_t Moved = 0, Amx = 0;
  for (size_t I = 0; I < First.size(); ++I) {
    INFO(First[I] << " / " << Alt[I] << " / " << Measured[I]);
    bool IsAmx = llvm::StringRef(First[I]).contains("amx");
    Amx += IsAmx;
    if (!IsAmx)
      CHECK(Alt[I] == First[I]);
    CHECK(!llvm::StringRef(Alt[I]).contains("amx"));
    CHECK(!llvm::StringRef(Alt[I]).startswith("ref"));
    CHECK((Measured[I] == First[I] || Measured[I] == Alt[I]));
    Moved += Alt[I] != First[I];
  }
  // On a CPU with AMX the other kernels ran above; elsewhere nothing moves.
  WARN(Amx << " of " << First.size() << " convs on AMX kernels by default");
  CHECK(Moved == Amx);
}

//===----------------------------------------------------------------------===//
// Memory plan, weights, options, reports, errors
//===----------------------------------------------------------------------===//

TEST_CASE("lowering: the memory plan reuses dead activations", "[lowering]") {
  Builder B;
  ConvSpec S;
  S.In = S.Out = 16;
  Node *V = B.quantize(B.input("x", {1, 16, 14, 14}), 2.0 / 255, 128);
  for (int I = 0; I < 6; ++I)
    V = qconv(B, "c" + std::to_string(I), "QuantizedConvReLU2d", V, nullptr, S,
              0.05, 0);
  B.output(V);
  std::vector<Tensor> In = {randomF32({1, 16, 14, 14}, 2)};
  Tensor Want = interpretAll(*B.GM, In)[0];
  auto M = compileOrFail(*B.GM);
  // Seven u8 activations of 3136 bytes, each live from its producer to its
  // consumer: two at a time (the output is the caller's tensor).
  size_t One = 16 * 14 * 14;
  CHECK(M->totalActivationBytes() >= 7 * One);
  CHECK(M->peakActivationBytes() < M->totalActivationBytes());
  CHECK(M->peakActivationBytes() <= 2 * ((One + 63) / 64 * 64));
  // Reuse must not corrupt anything: twice, the same answer as the
  // reference.
  for (int Run = 0; Run < 2; ++Run)
    CHECK(maxLsb(runOrFail(*M, In)[0], Want, 1.0) <= 1.0);
}

TEST_CASE("lowering: reordered weights compute what naive weights do",
          "[lowering]") {
  // Blocked oneDNN layouts (and the compensation oneDNN keeps next to s8
  // weights for zero-point inputs) against the naive reference kernels.
  ReferenceKernels Naive;
  for (int64_t Out : {3, 32, 64}) {
    INFO("out channels " << Out);
    Builder B;
    ConvSpec S;
    S.In = 24;
    S.Out = Out;
    S.K = 5;
    S.Pad = 2;
    Node *X = B.input("x", {1, 24, 11, 11});
    Node *F = fconv(B, "f", "Conv2d", X, nullptr, S);
    Node *Q = qconv(B, "q", "QuantizedConv2d", B.quantize(X, 2.0 / 255, 128),
                    nullptr, S, 0.05, 128);
    B.output({F, Q});
    std::vector<Tensor> In = {randomF32({1, 24, 11, 11}, 6)};
    std::vector<Tensor> Want = interpretAll(*B.GM, In);
    auto M = compileOrFail(*B.GM);
    std::vector<Tensor> Got = runOrFail(*M, In);
    CHECK(closeF32(Got[0], Want[0]));
    CHECK(maxLsb(Got[1], Want[1], 1.0) <= 1.0);
    CHECK(M->constantBytes() > 0);
  }
}

TEST_CASE("lowering: batch override, threads, profile and summary",
          "[lowering]") {
  ConvCase C{"QuantizedConvReLU2d", ConvSpec(), true, 128};
  Builder B = convGraph(C, 1, 9, /*Dequant=*/true);
  CompileOptions Opts;
  Opts.BatchSize = 3;
  Opts.NumThreads = 1;
  Opts.Profile = true;
  // The module's thread count applies to its own primitives only.
  int Threads = omp_get_max_threads();
  auto M = compileOrFail(*B.GM, Opts);
  CHECK(omp_get_max_threads() == Threads);
  REQUIRE(M->inputShapes().size() == 1);
  CHECK(M->inputShapes()[0] == Shape{3, 8, 9, 9});
  std::vector<Tensor> In = {randomF32({3, 8, 9, 9}, 12)};
  Tensor Want = interpretAll(*B.GM, In)[0];
  double Scale = B.GM->lookupModule("conv")->attr("scale")->getFloat();
  for (int Run = 0; Run < 3; ++Run)
    CHECK(maxLsb(runOrFail(*M, In)[0], Want, Scale) <= 1.0);
  CHECK(omp_get_max_threads() == Threads);
  CHECK(M->summary().find("threads: 1") != std::string::npos);
  std::vector<StepTime> P = M->profile();
  REQUIRE(P.size() == M->steps().size());
  size_t Prims = 0;
  for (const StepTime &T : P) {
    CHECK(T.Samples == 3);
    CHECK(T.MedianMs >= 0.0);
    Prims += T.IsPrimitive;
  }
  CHECK(Prims == M->numPrimitives());
  // quantize reorder, conv (f32 NHWC dst), reorder to the caller's NCHW.
  CHECK(M->numPrimitives() == 3);
  CHECK(countKind(*M, "output") == 1);
  CHECK(M->primitiveTimeSum() > 0.0);
  std::string Sum = M->summary();
  CHECK(Sum.find("conv+dequantize") != std::string::npos);
  CHECK(Sum.find("activation arena") != std::string::npos);
  M->resetProfile();
  CHECK(M->profile()[0].Samples == 0);
}

TEST_CASE("lowering: errors name the node or the input", "[lowering]") {
  ConvCase C{"QuantizedConv2d", ConvSpec(), true, 128};
  {
    Builder B = convGraph(C, 1, 9, false);
    B.GM->lookupModule("conv")->setTensor(
        "weight", Tensor::declared(DType::S8, {16, 8, 3, 3}));
    auto M = compile(*B.GM);
    REQUIRE(!M);
    std::string E = errorToString(M.takeError());
    CHECK(E.find("node 'conv'") != std::string::npos);
  }
  {
    Builder B = convGraph(C, 1, 9, false);
    Tensor W = randomWeight({16, 8, 3, 3}, true, 1);
    QuantParams Q = W.quant();
    Q.ZeroPoints[3] = 1;
    W.setQuant(Q);
    B.GM->lookupModule("conv")->setTensor("weight", W);
    auto M = compile(*B.GM);
    REQUIRE(!M);
    CHECK(errorToString(M.takeError()).find("symmetric") != std::string::npos);
  }
  {
    Builder B = convGraph(C, 1, 9, false);
    auto M = compileOrFail(*B.GM);
    auto R = M->run({randomF32({2, 8, 9, 9}, 1)});
    REQUIRE(!R);
    CHECK(errorToString(R.takeError()).find("input 'x'") != std::string::npos);
  }
}

/// Int8 ops without a oneDNN lowering after a quantized conv: two leaky
/// relus on the host, and a mul of both that is lowered (a host loop on
/// their layout, not the op table).
Builder slowTailGraph() {
  Builder B;
  ConvSpec S;
  Node *Q = B.quantize(B.input("x", {1, 8, 6, 6}), 2.0 / 255, 128);
  Node *C = qconv(B, "c1", "QuantizedConv2d", Q, nullptr, S, 0.05, 128);
  Node *L1 = B.fn(
      "quantized_leaky_relu",
      {C, Argument::real(0.1), Argument::real(0.04), Argument::integer(20)});
  Node *L2 = B.fn(
      "quantized_leaky_relu",
      {L1, Argument::real(0.2), Argument::real(0.04), Argument::integer(20)});
  Node *Mul = B.fn("quantized_mul",
                   {L1, L2, Argument::real(0.03), Argument::integer(10)});
  B.output(B.dequantize(Mul));
  return B;
}

TEST_CASE("lowering: nodes on reference kernels are reported with reasons",
          "[lowering]") {
  Builder B = slowTailGraph();
  auto M = compileOrFail(*B.GM);
  std::vector<FallbackInfo> F = M->fallbacks();
  REQUIRE(F.size() == 2);
  CHECK(F[0].NodeName == "quantized_leaky_relu");
  CHECK(F[0].Op == "quantized_leaky_relu");
  // The conv writes NHWC: the leaky relu reads a reordered copy.
  CHECK(F[0].Reason ==
        "no oneDNN lowering for 'quantized_leaky_relu' (quint8 input); runs "
        "the op-table kernel on the host with reorders to plain layout");
  CHECK(F[1].NodeName == "quantized_leaky_relu_1");
  CHECK(formatFallback(F[1]) ==
        "node 'quantized_leaky_relu_1' (quantized_leaky_relu): no oneDNN "
        "lowering for 'quantized_leaky_relu' (quint8 input); runs the "
        "op-table kernel on the host");
  CHECK(countKind(*M, "fallback") == F.size());
  CHECK(countKind(*M, "mul_int8") == 1);
  std::string Sum = M->summary();
  CHECK(Sum.find("reference kernels: 2 node(s) without a oneDNN lowering\n"
                 "  node 'quantized_leaky_relu' (quantized_leaky_relu): ") !=
        std::string::npos);
  CHECK(Sum.find("  node 'quantized_leaky_relu_1' (quantized_leaky_relu): ") !=
        std::string::npos);
  // A module kind is named by its kind; the float path has its own reason.
  Builder FB;
  Node *X = FB.input("x", {1, 8, 6, 6});
  FB.GM->addModule("act", "LeakyReLU");
  FB.GM->lookupModule("act")->setAttr("negative_slope", Argument::real(0.1));
  Node *A = FB.typed(FB.G().callModule("act", {X}));
  Node *Add =
      FB.fn("quantized_add", {FB.quantize(A, 0.1, 0), FB.quantize(X, 0.1, 0),
                              Argument::real(0.1), Argument::integer(0)});
  FB.output(FB.dequantize(Add));
  auto FM = compileOrFail(*FB.GM);
  std::vector<FallbackInfo> FF = FM->fallbacks();
  REQUIRE(FF.size() == 1);
  CHECK(FF[0].NodeName == "act");
  CHECK(FF[0].Op == "LeakyReLU");
  CHECK(FF[0].Reason == "no oneDNN lowering for 'LeakyReLU' (float input); "
                        "runs the op-table kernel on the host");
}

TEST_CASE("lowering: strict mode rejects reference kernels, naming each",
          "[lowering]") {
  Builder B = slowTailGraph();
  CompileOptions Opts;
  Opts.RejectFallbacks = true;
  auto M = compile(*B.GM, Opts);
  REQUIRE(!M);
  std::string E = errorToString(M.takeError());
  CHECK(E.rfind("strict lowering: 2 nodes would run on reference kernels:\n"
                "  node 'quantized_leaky_relu' (quantized_leaky_relu): no "
                "oneDNN lowering for 'quantized_leaky_relu' (quint8 input)",
                0) == 0);
  CHECK(E.find("\n  node 'quantized_leaky_relu_1' (quantized_leaky_relu): ") !=
        std::string::npos);
  // Without strict mode the same graph compiles and runs.
  CHECK(compileOrFail(*B.GM)->fallbacks().size() == 2);
}

TEST_CASE("lowering: a fully lowered graph reports no reference kernels",
          "[lowering]") {
  ConvCase C{"QuantizedConvReLU2d", ConvSpec(), true, 128};
  Builder B = convGraph(C, 1, 9, /*Dequant=*/true);
  CompileOptions Opts;
  Opts.RejectFallbacks = true;
  auto M = compileOrFail(*B.GM, Opts);
  CHECK(M->fallbacks().empty());
  CHECK(countKind(*M, "fallback") == 0);
  CHECK(M->summary().find("reference kernels") == std::string::npos);
}

TEST_CASE("lowering: a graph with observers is rejected before lowering",
          "[lowering]") {
  Builder B;
  Node *X = B.input("x", {1, 8, 6, 6});
  B.GM->addModule("activation_post_process_0", "HistogramObserver");
  Node *Obs = B.G().callModule("activation_post_process_0", {X});
  Obs->setType(*X->type());
  B.output(B.fn("relu", {Obs}));
  for (int64_t Batch : {0, 4}) {
    CompileOptions Opts;
    Opts.BatchSize = Batch;
    auto M = compile(*B.GM, Opts);
    REQUIRE(!M);
    CHECK(errorToString(M.takeError()) ==
          "graph still has observers (e.g. 'activation_post_process_0', "
          "HistogramObserver): run convert (convert_fx / qopt "
          "--passes=convert) before compiling");
  }
}

//===----------------------------------------------------------------------===//
// MobileNetV3 family: activations and mul (LowerEltwise.cpp)
//===----------------------------------------------------------------------===//

/// The share of elements of two int8 tensors (or their dequantized forms,
/// in steps of \p Lsb) within one step of each other.
double shareWithinOneStep(const Tensor &Got, const Tensor &Want, double Lsb) {
  REQUIRE(Got.shape() == Want.shape());
  int64_t Ok = 0;
  for (int64_t I = 0; I < Want.numElements(); ++I)
    Ok += std::fabs(Got.getAsDouble(I) - Want.getAsDouble(I)) / Lsb <= 1.0001;
  return double(Ok) / double(Want.numElements());
}

/// An int8 placeholder, for graphs whose input is already quantized.
Node *int8Input(Builder &B, llvm::StringRef Name, llvm::ArrayRef<int64_t> S,
                double Scale, int64_t Zp) {
  return B.G().placeholder(Name,
                           TensorType{DType::U8, Shape(S.begin(), S.end()),
                                      QuantParams::perTensor(Scale, Zp)});
}

Tensor randomU8(llvm::ArrayRef<int64_t> S, uint32_t Seed, double Scale,
                int64_t Zp) {
  std::mt19937 Gen(Seed);
  Tensor T(DType::U8, S);
  for (int64_t I = 0; I < T.numElements(); ++I)
    T.data<uint8_t>()[I] = static_cast<uint8_t>(Gen() & 255);
  T.setQuant(QuantParams::perTensor(Scale, Zp));
  return T;
}

TEST_CASE("lowering: int8 activations after a conv or linear are post-ops "
          "within 1 step of the reference on >= 99.9% of elements",
          "[lowering][mnv3]") {
  struct Case {
    const char *Anchor, *Act;
    double Scale;
    int64_t Zp;
  };
  // hardswish keeps its observed qparams; the others are PyTorch's fixed
  // ones (1/256 for [0, 1), 2/256 centred for tanh), which the op infers.
  for (Case C : {Case{"QuantizedConv2d", "quantized_hardswish", 0.03, 20},
                 Case{"QuantizedConvReLU2d", "quantized_hardsigmoid", 0, 0},
                 Case{"QuantizedConv2d", "quantized_sigmoid", 0, 0},
                 Case{"QuantizedConv2d", "quantized_tanh", 0, 0},
                 Case{"QuantizedLinear", "quantized_hardswish", 0.02, 30}}) {
    for (bool Dequant : {false, true}) {
      INFO(C.Anchor << " + " << C.Act << (Dequant ? " + dequantize" : ""));
      Builder B;
      bool Linear = llvm::StringRef(C.Anchor).contains("Linear");
      Shape InShape = Linear ? Shape{4, 40} : Shape{2, 8, 9, 9};
      Node *Q = B.quantize(B.input("x", InShape), 2.0 / 255, 128);
      ConvSpec S;
      Node *A = Linear ? qlinear(B, "a", C.Anchor, Q, 40, 24, 0.05, 120)
                       : qconv(B, "a", C.Anchor, Q, nullptr, S, 0.05, 120);
      std::vector<Argument> Args = {A};
      if (C.Scale > 0) {
        Args.push_back(Argument::real(C.Scale));
        Args.push_back(Argument::integer(C.Zp));
      }
      Node *Act = B.fn(C.Act, Args);
      B.output(Dequant ? B.dequantize(Act) : Act);
      std::vector<Tensor> In = {randomF32(InShape, 77, -1.5f, 1.5f)};
      Tensor Want = interpretAll(*B.GM, In)[0];
      auto M = compileOrFail(*B.GM);
      Tensor Got = runOrFail(*M, In)[0];
      double Lsb = Dequant ? Act->type()->Quant.Scale : 1.0;
      double Share = shareWithinOneStep(Got, Want, Lsb);
      report(std::string(C.Anchor) + " + " + C.Act, maxLsb(Got, Want, Lsb));
      CHECK(Share >= 0.999);
      CHECK(maxLsb(Got, Want, Lsb) <= 2.0);
      // One primitive: the activation (and dequantize) are post-ops.
      std::string Name = std::string("a+") + Act->name().str() +
                         (Dequant ? "+dequantize" : "");
      CHECK(findStep(*M, Linear ? "matmul" : "conv", Name));
      CHECK(M->fallbacks().empty());
      CHECK(countKind(*M, "table_int8") == 0);
    }
  }
}

TEST_CASE("lowering: an int8 activation alone is the op table's kernel as a "
          "table, exact, on its input's layout",
          "[lowering][mnv3]") {
  for (const char *Op : {"quantized_hardswish", "quantized_hardsigmoid",
                         "quantized_sigmoid", "quantized_tanh"}) {
    INFO(Op);
    Builder B;
    Node *X = int8Input(B, "x", {2, 3, 5, 5}, 0.05, 100);
    std::vector<Argument> Args = {X};
    if (llvm::StringRef(Op) == "quantized_hardswish") {
      Args.push_back(Argument::real(0.04));
      Args.push_back(Argument::integer(10));
    }
    B.output(B.fn(Op, Args));
    std::vector<Tensor> In = {randomU8({2, 3, 5, 5}, 5, 0.05, 100)};
    Tensor Want = interpretAll(*B.GM, In)[0];
    auto M = compileOrFail(*B.GM);
    CHECK(maxLsb(runOrFail(*M, In)[0], Want, 1.0) == 0.0);
    CHECK(countKind(*M, "table_int8") == 1);
    CHECK(M->fallbacks().empty());
  }
  // After an int8 add (a host kernel) on NHWC conv outputs: no reorder.
  Builder B;
  ConvSpec S;
  S.Out = 8;
  Node *Q = B.quantize(B.input("x", {1, 8, 7, 7}), 2.0 / 255, 128);
  Node *C1 = qconv(B, "c1", "QuantizedConv2d", Q, nullptr, S, 0.05, 120);
  Node *C2 = qconv(B, "c2", "QuantizedConv2d", C1, nullptr, S, 0.05, 120);
  Node *Add = B.fn("quantized_add",
                   {C1, C2, Argument::real(0.08), Argument::integer(110)});
  Node *HS = B.fn("quantized_hardswish",
                  {Add, Argument::real(0.06), Argument::integer(15)});
  Node *C3 = qconv(B, "c3", "QuantizedConv2d", HS, nullptr, S, 0.05, 120);
  B.output(B.dequantize(C3));
  std::vector<Tensor> In = {randomF32({1, 8, 7, 7}, 9)};
  Tensor Want = interpretAll(*B.GM, In)[0];
  auto M = compileOrFail(*B.GM);
  CHECK(shareWithinOneStep(runOrFail(*M, In)[0], Want, 0.05) >= 0.999);
  CHECK(countKind(*M, "table_int8") == 1);
  CHECK(countKind(*M, "reorder") == 0);
  CHECK(M->fallbacks().empty());
}

TEST_CASE("lowering: int8 mul, same shape or a squeeze-excitation gate, is "
          "exact on its operands' layout",
          "[lowering][mnv3]") {
  {
    // Exact against the reference on int8 inputs, the gate either side.
    for (bool GateFirst : {true, false}) {
      Builder B;
      Node *X = int8Input(B, "x", {2, 6, 4, 5}, 0.05, 100);
      Node *G = int8Input(B, "g", {2, 6, 1, 1}, 1.0 / 256, 0);
      Node *Y = int8Input(B, "y", {2, 6, 4, 5}, 0.03, 128);
      Node *M1 =
          B.fn("quantized_mul", {GateFirst ? G : X, GateFirst ? X : G,
                                 Argument::real(0.04), Argument::integer(90)});
      Node *M2 = B.fn("quantized_mul",
                      {M1, Y, Argument::real(0.05), Argument::integer(128)});
      B.output(M2);
      std::vector<Tensor> In = {randomU8({2, 6, 4, 5}, 1, 0.05, 100),
                                randomU8({2, 6, 1, 1}, 2, 1.0 / 256, 0),
                                randomU8({2, 6, 4, 5}, 3, 0.03, 128)};
      Tensor Want = interpretAll(*B.GM, In)[0];
      auto M = compileOrFail(*B.GM);
      CHECK(maxLsb(runOrFail(*M, In)[0], Want, 1.0) == 0.0);
      CHECK(countKind(*M, "mul_int8") == 2);
      CHECK(M->fallbacks().empty());
    }
  }
  // A MobileNetV3 squeeze-excitation block on NHWC conv outputs: pool, fc1
  // (+relu), fc2 + hardsigmoid, the gate times the block input, the
  // projection conv; no layout change anywhere.
  Builder B;
  ConvSpec S;
  S.Out = 16;
  Node *Q = B.quantize(B.input("x", {2, 8, 10, 10}), 2.0 / 255, 128);
  Node *X = qconv(B, "dw", "QuantizedConvReLU2d", Q, nullptr, S, 0.04, 0);
  Node *Pool = B.fn("adaptive_avg_pool2d", {X, Argument::ints({1, 1})});
  ConvSpec F1;
  F1.In = 16;
  F1.Out = 8;
  F1.K = 1;
  F1.Pad = 0;
  Node *Fc1 =
      qconv(B, "fc1", "QuantizedConvReLU2d", Pool, nullptr, F1, 0.02, 0);
  ConvSpec F2 = F1;
  F2.In = 8;
  F2.Out = 16;
  Node *Fc2 = qconv(B, "fc2", "QuantizedConv2d", Fc1, nullptr, F2, 0.05, 128);
  Node *Gate = B.fn("quantized_hardsigmoid", {Fc2});
  Node *Mul = B.fn("quantized_mul",
                   {Gate, X, Argument::real(0.03), Argument::integer(0)});
  ConvSpec P = F1;
  P.In = 16;
  Node *Proj = qconv(B, "proj", "QuantizedConv2d", Mul, nullptr, P, 0.05, 128);
  B.output(B.dequantize(Proj));
  std::vector<Tensor> In = {randomF32({2, 8, 10, 10}, 21)};
  Tensor Want = interpretAll(*B.GM, In)[0];
  auto M = compileOrFail(*B.GM);
  Tensor Got = runOrFail(*M, In)[0];
  report("squeeze-excitation block", maxLsb(Got, Want, 0.05));
  CHECK(shareWithinOneStep(Got, Want, 0.05) >= 0.999);
  CHECK(findStep(*M, "conv", "fc2+quantized_hardsigmoid"));
  CHECK(countKind(*M, "mul_int8") == 1);
  CHECK(countKind(*M, "reorder") == 0);
  CHECK(M->fallbacks().empty());
}

TEST_CASE("lowering: float activations fuse into conv, linear and add, and "
          "alone are primitives; float mul broadcasts",
          "[lowering][mnv3]") {
  ReferenceKernels Naive;
  Builder B;
  ConvSpec S;
  S.Out = 8;
  Node *X = B.input("x", {2, 8, 6, 6});
  B.GM->addModule("hs", "Hardswish");
  Node *C1 = fconv(B, "c1", "Conv2d", X, nullptr, S);
  Node *H = B.typed(B.G().callModule("hs", {C1}));
  Node *C2 = B.fn("silu", {fconv(B, "c2", "Conv2d", H, nullptr, S)});
  Node *C3 = B.fn("hardsigmoid", {fconv(B, "c3", "Conv2d", C2, nullptr, S)});
  Node *Sum = B.fn("sigmoid", {B.fn("add", {C3, C2})});
  // Alone (after a pool): every activation, and x * sigmoid(x) unfused.
  Node *MP = B.fn("max_pool2d", {Sum, Argument::integer(2)});
  Node *A1 = B.fn("hardswish", {MP});
  Node *A2 = B.fn("hardsigmoid", {A1});
  Node *A3 = B.fn("tanh", {A2});
  Node *A4 = B.fn("silu", {A3});
  Node *Sig = B.fn("sigmoid", {A4});
  Node *XS = B.fn("mul", {A4, Sig});
  // A squeeze-excitation gate, first operand broadcast, then a scalar.
  Node *Gate = B.fn("adaptive_avg_pool2d", {XS, Argument::ints({1, 1})});
  Node *SE = B.fn("mul", {Gate, XS});
  Node *Half = B.fn("mul", {SE, Argument::real(0.5)});
  Node *Flat = B.fn("flatten", {Half, Argument::integer(1)});
  Node *FC = B.fn("tanh", {flinear(B, "fc", Flat, 8 * 3 * 3, 10)});
  B.output(FC);
  std::vector<Tensor> In = {randomF32({2, 8, 6, 6}, 13, -4.0f, 4.0f)};
  Tensor Want = interpretAll(*B.GM, In)[0];
  auto M = compileOrFail(*B.GM);
  CHECK(closeF32(runOrFail(*M, In)[0], Want));
  CHECK(findStep(*M, "conv", "c1+hs"));
  CHECK(findStep(*M, "conv", "c2+silu"));
  CHECK(findStep(*M, "conv", "c3+hardsigmoid"));
  CHECK(findStep(*M, "binary", "add+sigmoid"));
  CHECK(findStep(*M, "matmul", "fc+tanh"));
  CHECK(countKind(*M, "eltwise") == 5);
  CHECK(countKind(*M, "hardsigmoid_f32") == 1);
  CHECK(countKind(*M, "binary") == 3);
  CHECK(M->fallbacks().empty());
}

TEST_CASE("lowering: an int8 conv, then silu kept float between dequantize "
          "and quantize, is one conv within 1 step on >= 99.9% of elements",
          "[lowering][mnv3]") {
  Builder B;
  ConvSpec S;
  Node *Q = B.quantize(B.input("x", {2, 8, 9, 9}), 2.0 / 255, 128);
  Node *C = qconv(B, "c", "QuantizedConv2d", Q, nullptr, S, 0.05, 120);
  // PyTorch 1.13's x86 config keeps silu float: convert_fx leaves it between
  // a dequantize and the next quantize_per_tensor.
  Node *Silu = B.fn("silu", {B.dequantize(C)});
  Node *Requant = B.quantize(Silu, 0.03, 10);
  B.output(B.dequantize(Requant));
  std::vector<Tensor> In = {randomF32({2, 8, 9, 9}, 91, -1.5f, 1.5f)};
  Tensor Want = interpretAll(*B.GM, In)[0];
  auto M = compileOrFail(*B.GM);
  Tensor Got = runOrFail(*M, In)[0];
  report("conv + float silu island", maxLsb(Got, Want, 0.03));
  CHECK(shareWithinOneStep(Got, Want, 0.03) >= 0.999);
  CHECK(findStep(*M, "conv", "c+dequantize+silu+quantize_per_tensor"));
  CHECK(countKind(*M, "eltwise") == 0);
  CHECK(M->fallbacks().empty());
}
