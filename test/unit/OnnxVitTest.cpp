//===- OnnxVitTest.cpp - PyTorch's ONNX exports of the zoo ViT ------------===//
//
// test/data/make_vit_onnx_golden.py exports the trained ViT at opsets 13
// and 17: GELU as its Erf decomposition, LayerNorm decomposed (13) or as
// LayerNormalization (17), class_token.expand as Shape / Equal / Where /
// Expand. The imports must be the graph the tracer records for the C++ zoo
// ViT, compute PyTorch's logits and quantize and compile like it.
//
//===----------------------------------------------------------------------===//

#include "TestUtil.h"

#include "qfx/Codegen/CompiledModule.h"
#include "qfx/Codegen/Lowering.h"
#include "qfx/IR/GraphModule.h"
#include "qfx/IR/Verifier.h"
#include "qfx/Models/Zoo.h"
#include "qfx/NN/Module.h"
#include "qfx/Onnx/Import.h"
#include "qfx/Pipeline/QuantizeFx.h"
#include "qfx/Quant/QConfig.h"
#include "qfx/Quant/QConfigMapping.h"
#include "qfx/Runtime/Interpreter.h"
#include "qfx/Support/Npy.h"
#include "qfx/Trace/SymbolicTrace.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <map>
#include <string>

using namespace qfx;
using namespace qfx::testutil;

namespace {

std::string onnxData(const std::string &File) {
  return std::string(QFX_TEST_DATA_DIR) + "/onnx/" + File;
}

/// The zoo ViT with the trained weights, traced (symbolic batch).
std::unique_ptr<GraphModule> tracedVit() {
  auto M = models::vit_fashion();
  M->eval();
  if (llvm::Error E = M->load_safetensors(
          QFX_TEST_DATA_DIR "/../../models/vit_fashion.safetensors"))
    FAIL(errorToString(std::move(E)));
  return take(symbolicTrace(
      *M, {InputSpec::symbolic("input", DType::F32, {1, 1, 28, 28})}));
}

/// prepare with \p Map, calibrate on \p X, convert to the reference
/// quantized graph.
std::unique_ptr<GraphModule>
quantize(const GraphModule &Float, const QConfigMapping &Map, const Tensor &X) {
  std::unique_ptr<GraphModule> GM = Float.clone();
  if (llvm::Error E = prepareGraph(*GM, Map, /*QAT=*/false))
    FAIL(errorToString(std::move(E)));
  take(runObserved(*GM, {X}));
  return take(convert_to_reference_fx(*GM));
}

Tensor compiledRun(const GraphModule &GM, const Tensor &X) {
  CompileOptions O;
  O.BatchSize = X.dim(0);
  O.NumThreads = 1;
  O.RejectFallbacks = true;
  return take(take(compile(GM, O))->run({X}))[0];
}

} // namespace

TEST_CASE("onnx import: PyTorch's opset 13 and 17 exports of the trained ViT "
          "import as gelu and LayerNorm nodes and compute PyTorch's logits",
          "[onnx][vit]") {
  Tensor X = take(readNpy(onnxData("vit_input.npy")));
  Tensor Want = take(readNpy(onnxData("vit_output.npy")));
  auto Traced = tracedVit();
  for (const char *File : {"vit_opset13.onnx", "vit_opset17.onnx"}) {
    INFO(File);
    auto GM = take(importOnnx(onnxData(File)));
    if (llvm::Error E = verify(*GM))
      FAIL(errorToString(std::move(E)));
    // The tracer's node kinds: 4 gelu, 9 LayerNorm modules, no trace of
    // the decompositions.
    std::map<std::string, int> C = opCounts(*GM);
    CHECK(C["gelu"] == 4);
    CHECK(C["LayerNorm"] == 9);
    CHECK(C["expand"] == 1);
    for (const char *Gone : {"mean", "sub", "div", "layer_norm"})
      CHECK(C.count(Gone) == 0);
    // Every module has the traced model's path and kind; nn.GELU is a gelu
    // in the module's scope (the exporter's names cannot tell it from an
    // F.gelu call, so it imports as silu and relu do).
    for (const Node &N : Traced->graph()) {
      if (N.op() != OpCode::CallModule)
        continue;
      INFO("module " << N.target().str());
      const ModuleInfo *A = Traced->lookupModule(N.target());
      if (A->kind() == "Dropout")
        continue; // Not in an eval-mode export.
      if (A->kind() == "GELU") {
        const Node *G = GM->graph().lookup(N.name());
        REQUIRE(G);
        CHECK(G->target() == "gelu");
        CHECK(G->scope() == N.target());
        continue;
      }
      const ModuleInfo *B = GM->lookupModule(N.target());
      REQUIRE(B);
      CHECK(A->kind() == B->kind());
      if (A->kind() == "LayerNorm")
        for (const char *Attr : {"eps", "normalized_shape"})
          CHECK(*A->attr(Attr) == *B->attr(Attr));
    }
    // PyTorch's float32 logits: within 1e-5 of the largest logit, at batch
    // 4 and at batch 1 (the batch is symbolic, expand's batch_like too).
    CHECK(relToLargest(take(interpret(*GM, {X})), Want) < 1e-5);
    Tensor One = sliceRows(X, 0, 1);
    CHECK(relToLargest(take(interpret(*GM, {One})), sliceRows(Want, 0, 1)) <
          1e-5);
    // Compiled float, with no reference-kernel fallback.
    CHECK(relToLargest(compiledRun(*GM, X), Want) < 1e-4);
  }
}

TEST_CASE("onnx import: the ViT imported from ONNX quantizes with x86 and "
          "compiles without fallback to the C++ zoo ViT's int8 output",
          "[onnx][vit][quant]") {
  Tensor X = take(readNpy(onnxData("vit_input.npy")));
  Tensor Want = take(readNpy(onnxData("vit_output.npy")));
  auto Traced = tracedVit();
  QConfigMapping Map;
  Map.setGlobal(take(QConfig::preset("x86")));
  // module_name rules on paths the importer recovered from node names (a
  // Linear from MatMul + Add, a LayerNorm from its opset 13 decomposition
  // or from LayerNormalization).
  Map.setModuleName("encoder.layers.encoder_layer_3.mlp.3", std::nullopt);
  Map.setModuleName("encoder.layers.encoder_layer_1.ln_2", std::nullopt);
  auto QT = quantize(*Traced, Map, X);
  Tensor Int8Traced = compiledRun(*QT, X);
  for (const char *File : {"vit_opset13.onnx", "vit_opset17.onnx"}) {
    INFO(File);
    auto GM = take(importOnnx(onnxData(File)));
    auto QI = quantize(*GM, Map, X);
    // The rules kept those modules float in both, and only them.
    for (const GraphModule *Q : {QT.get(), QI.get()}) {
      std::map<std::string, std::string> Kinds;
      for (const char *M : {"encoder.layers.encoder_layer_3.mlp.3",
                            "encoder.layers.encoder_layer_3.mlp.0",
                            "encoder.layers.encoder_layer_1.ln_2",
                            "encoder.layers.encoder_layer_1.ln_1"}) {
        const ModuleInfo *Info = Q->lookupModule(M);
        REQUIRE(Info);
        Kinds[M] = Info->kind().str();
      }
      CHECK(Kinds ==
            std::map<std::string, std::string>{
                {"encoder.layers.encoder_layer_3.mlp.3", "Linear"},
                {"encoder.layers.encoder_layer_3.mlp.0", "QuantizedLinear"},
                {"encoder.layers.encoder_layer_1.ln_2", "LayerNorm"},
                {"encoder.layers.encoder_layer_1.ln_1", "QuantizedLayerNorm"}});
    }
    // The reference int8 graphs agree bit for bit (same observers on the
    // same values), and so do the compiled ones; fused steps round a few
    // int8 values differently from the reference (as for the traced ViT).
    Tensor RefI = take(interpret(*QI, {X})), RefT = take(interpret(*QT, {X}));
    CHECK(RefI.identical(RefT));
    Tensor Int8 = compiledRun(*QI, X);
    double VsRef = relToLargest(Int8, RefI);
    double VsTraced = relToLargest(Int8, Int8Traced);
    double VsFloat = relToLargest(Int8, Want);
    INFO("compiled int8 vs its reference " << VsRef
                                           << ", vs the compiled "
                                              "traced ViT "
                                           << VsTraced << ", vs float "
                                           << VsFloat);
    CHECK(VsTraced < 1e-6);
    CHECK(VsRef < 0.02);
    CHECK(VsFloat < 0.25);
  }
}

TEST_CASE("lowering: an int8 matmul whose u8 right operand is a permute(0, 2, "
          "3, 1) view computes its reference",
          "[onnx][vit][quant]") {
  // The attention scores of torch.onnx.export's ViT: q and k^T as views of
  // one [N, 17, 4, D] buffer. oneDNN 2.6's u8 -> s8 reorder dropped the
  // zero point for that view, moving every score. Head sizes 16 (the ViT's)
  // and 272 (deeper than an exact f32 matmul of q - zero_point covers).
  for (int64_t D : {16, 272}) {
    INFO("head size " << D);
    std::string Text = R"(<
  ir_version: 8,
  opset_import: ["" : 13]
>
g (float[N,17,)" + std::to_string(4 * D) +
                       R"(] x) => (float[N,4,17,17] y)
{
  s = Constant <value = int64[4] {-1, 17, 4, )" +
                       std::to_string(D) + R"(}> ()
  r = Reshape (x, s)
  q = Transpose <perm = [0, 2, 1, 3]> (r)
  k = Transpose <perm = [0, 2, 3, 1]> (r)
  y = MatMul (q, k)
}
)";
    auto GM = take(importOnnxText(Text, "attention.onnx"));
    Tensor X(DType::F32, {2, 17, 4 * D});
    for (int64_t I = 0; I < X.numElements(); ++I)
      X.data<float>()[I] = std::sin(0.37 * static_cast<double>(I)) + 0.3;
    QConfigMapping Map;
    Map.setGlobal(take(QConfig::preset("x86")));
    auto Q = quantize(*GM, Map, X);
    CHECK(relToLargest(compiledRun(*Q, X), take(interpret(*Q, {X}))) < 1e-6);
  }
}
