//===- TransformerTest.cpp - Transformer ops and the zoo ViT vs PyTorch ---===//
//
// Goldens come from test/data/make_transformer_golden.py (PyTorch 1.13).
//
//===----------------------------------------------------------------------===//

#include "GradCheck.h"
#include "TestUtil.h"

#include "qfx/Codegen/CompiledModule.h"
#include "qfx/Codegen/Lowering.h"
#include "qfx/Models/Zoo.h"
#include "qfx/NN/Functional.h"
#include "qfx/Onnx/Import.h"
#include "qfx/Pipeline/QuantizeFx.h"
#include "qfx/Quant/QConfig.h"
#include "qfx/Quant/QConfigMapping.h"
#include "qfx/Runtime/Interpreter.h"
#include "qfx/Runtime/Op.h"
#include "qfx/Support/Npy.h"
#include "qfx/Support/Safetensors.h"
#include "qfx/Trace/SymbolicTrace.h"
#include "qfx/Train/GradKernels.h"
#include "qfx/Train/Optim.h"
#include "qfx/Train/Tape.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <string>
#include <vector>

using namespace qfx;
using namespace qfx::testutil;

namespace {

Tensor golden(const std::string &File) {
  return take(readNpy(std::string(QFX_TEST_DATA_DIR) + "/transformer/" + File));
}

/// Largest |a - b| / (1 + |b|).
double relError(const Tensor &A, const Tensor &B) {
  REQUIRE(A.shape() == B.shape());
  double E = 0;
  for (int64_t I = 0; I < A.numElements(); ++I) {
    double X = A.getAsDouble(I), Y = B.getAsDouble(I);
    E = std::max(E, std::fabs(X - Y) / (1.0 + std::fabs(Y)));
  }
  return E;
}

Tensor run(llvm::StringRef Op, std::vector<Operand> Args,
           std::vector<std::pair<std::string, Operand>> Kw = {}) {
  return take(runOp(Op, std::move(Args), std::move(Kw)));
}

/// make_zoo_golden.py's hash_fill (as ZooTest.cpp's hashFill).
Tensor hashFill(size_t K, llvm::StringRef Name, llvm::ArrayRef<int64_t> Shape) {
  Tensor T(DType::F32, Shape);
  int64_t N = T.numElements();
  double Scale = 0.1;
  if (Shape.size() >= 2)
    Scale = std::sqrt(6.0 / double(N / Shape[0]));
  bool Positive = Shape.size() < 2 && Name.endswith("weight");
  float *Data = T.data<float>();
  for (int64_t I = 0; I < N; ++I) {
    uint64_t H =
        (uint64_t(I) * 2654435761ull + uint64_t(K) * 40503ull + 12345ull) &
        0xFFFFFFFFull;
    double U = double(H) / 4294967296.0;
    Data[I] = static_cast<float>(Positive ? 0.5 + U : (2.0 * U - 1.0) * Scale);
  }
  return T;
}

std::shared_ptr<nn::Module> hashFilledVit() {
  auto M = models::vit_fashion();
  M->eval();
  std::map<std::string, Tensor> State;
  size_t K = 0;
  for (const auto &KV : M->state_dict())
    State[KV.first] = hashFill(K++, KV.first, KV.second.shape());
  if (llvm::Error E = M->load_state_dict(State))
    FAIL(errorToString(std::move(E)));
  return M;
}

std::unique_ptr<GraphModule> traceVit(nn::Module &M, int64_t Batch) {
  return take(symbolicTrace(
      M, {InputSpec::symbolic("x", DType::F32, {Batch, 1, 28, 28})}));
}

std::unique_ptr<CompiledModule> compileVit(const GraphModule &GM,
                                           int64_t Batch) {
  CompileOptions O;
  O.BatchSize = Batch;
  O.NumThreads = 1;
  return take(compile(GM, O));
}

std::string fallbacksOf(const CompiledModule &M) {
  std::string S;
  for (const FallbackInfo &F : M.fallbacks())
    S += formatFallback(F) + "\n";
  return S;
}

/// A batch of \p N inputs (the golden input repeated).
Tensor batchOf(int64_t N) {
  Tensor X = golden("vit_input.npy");
  Tensor R(DType::F32, {N, 1, 28, 28});
  for (int64_t I = 0; I < N; ++I)
    std::memcpy(R.data<float>() + I * 784, X.data<float>() + (I % 2) * 784,
                784 * sizeof(float));
  return R;
}

/// The ViT quantized with preset \p Preset (calibrated on two batches), as
/// its reference quantized graph.
std::unique_ptr<GraphModule> quantizedVit(nn::Module &M, const char *Preset) {
  QConfigMapping Map;
  Map.setGlobal(take(QConfig::preset(Preset)));
  auto Obs = take(prepare_fx(
      M, Map, {InputSpec::symbolic("x", DType::F32, {2, 1, 28, 28})}));
  for (int64_t I = 0; I < 2; ++I)
    take(Obs({batchOf(2)}));
  return take(convert_to_reference_fx(Obs.graphModule()));
}

/// The trained weights scripts/train_vit_pytorch.py wrote (models/).
std::string trainedVitWeights() {
  return QFX_TEST_DATA_DIR "/../../models/vit_fashion.safetensors";
}

Tensor zooGolden(const std::string &File) {
  return take(readNpy(std::string(QFX_TEST_DATA_DIR) + "/zoo/" + File));
}

/// The index of the largest element of each row of a [N, C] tensor.
std::vector<int64_t> argmaxRows(const Tensor &Logits) {
  std::vector<int64_t> Best;
  int64_t C = Logits.dim(1);
  for (int64_t R = 0; R < Logits.dim(0); ++R) {
    int64_t B = 0;
    for (int64_t J = 1; J < C; ++J)
      if (Logits.getAsDouble(R * C + J) > Logits.getAsDouble(R * C + B))
        B = J;
    Best.push_back(B);
  }
  return Best;
}

} // namespace

TEST_CASE("layer_norm matches PyTorch with and without an affine transform",
          "[transformer]") {
  Tensor X = golden("ln_x.npy"), W = golden("ln_w.npy"), B = golden("ln_b.npy");
  Tensor Y = run("layer_norm", {X, Argument::ints({8}), W, B},
                 {{"eps", Argument::real(1e-6)}});
  CHECK(relError(Y, golden("ln_out.npy")) < 1e-5);
  Tensor Y2 = run("layer_norm", {X, Argument::ints({5, 8})});
  CHECK(relError(Y2, golden("ln2_out.npy")) < 1e-5);
  nn::LayerNorm M({8}, 1e-6);
  M.weight.data<float>()[0] = 1.0f;
  CHECK(relError(M(X).tensor(), run("layer_norm", {X, Argument::ints({8})},
                                    {{"eps", Argument::real(1e-6)}})) < 1e-7);
}

TEST_CASE("gelu matches PyTorch in its erf and tanh forms", "[transformer]") {
  Tensor X = golden("gelu_x.npy");
  CHECK(relError(nn::F::gelu(X).tensor(), golden("gelu_erf.npy")) < 1e-6);
  CHECK(relError(nn::F::gelu(X, "tanh").tensor(), golden("gelu_tanh.npy")) <
        1e-6);
  CHECK(relError(nn::GELU("tanh")(X).tensor(), golden("gelu_tanh.npy")) < 1e-6);
}

TEST_CASE("matmul broadcasts like torch.matmul", "[transformer]") {
  for (const char *Case : {"4x4", "3x2", "1x3", "3x1", "bcast"}) {
    INFO(Case);
    std::string P = std::string("mm_") + Case;
    Tensor Y =
        nn::F::matmul(golden(P + "_a.npy"), golden(P + "_b.npy")).tensor();
    CHECK(relError(Y, golden(P + "_out.npy")) < 1e-5);
  }
  Tensor A = golden("mm_4x4_a.npy").reshaped({6, 4, 5});
  Tensor B = golden("mm_4x4_b.npy").reshaped({6, 5, 6});
  CHECK(relError(nn::F::bmm(A, B).tensor(),
                 golden("mm_4x4_out.npy").reshaped({6, 4, 6})) < 1e-5);
}

TEST_CASE("expand and select move elements as PyTorch does", "[transformer]") {
  Tensor X = Tensor::fromFloats({1, 1, 3}, {1, 2, 3});
  Tensor Y = run("expand", {X, Argument::ints({2, -1, -1})});
  REQUIRE(Y.shape() == llvm::ArrayRef<int64_t>({2, 1, 3}));
  CHECK(Y.data<float>()[4] == 2.0f);
  // batch_like overrides size[0], so a traced graph runs at any batch.
  Tensor Like(DType::F32, {5, 7});
  CHECK(run("expand", {X, Argument::ints({2, -1, -1})}, {{"batch_like", Like}})
            .dim(0) == 5);
  Tensor Z = Tensor::fromFloats({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor S = run("select", {Z, Argument::integer(1), Argument::integer(-1)});
  REQUIRE(S.shape() == llvm::ArrayRef<int64_t>({2}));
  CHECK(S.data<float>()[1] == 6.0f);
}

TEST_CASE("transformer ops reject bad operands with exact messages",
          "[transformer]") {
  Tensor A(DType::F32, {2, 3}), B(DType::F32, {4, 5}), V(DType::F32, {3});
  struct Case {
    const char *Op;
    std::vector<Operand> Args;
    const char *Msg;
  };
  std::vector<Case> Cases = {
      {"matmul",
       {A, B},
       "matmul: shapes [2,3] and [4,5] cannot be "
       "multiplied (3 vs 4)"},
      {"bmm", {A, B}, "bmm: expected 3-d tensors, got [2,3] and [4,5]"},
      {"expand",
       {A, Argument::ints({3})},
       "expand: the number of sizes (1) must be at least the tensor's rank "
       "(2)"},
      {"expand",
       {A, Argument::ints({4, 3})},
       "expand: cannot expand [2,3] to [4,3]"},
      {"select",
       {A, Argument::integer(1), Argument::integer(3)},
       "select: index 3 out of range for dimension 1 of size 3"},
      {"layer_norm",
       {A, Argument::ints({2})},
       "layer_norm: input [2,3] does not end in normalized_shape [2]"},
      {"gelu",
       {V, Argument::string("fast")},
       "gelu: approximate: expected 'none' or 'tanh', got 'fast'"},
  };
  for (Case &C : Cases) {
    INFO(C.Op);
    CHECK(errorOf(runOp(C.Op, C.Args)) == C.Msg);
  }
}

TEST_CASE("the ViT has the PyTorch twin's state_dict", "[transformer][zoo]") {
  std::ifstream In(std::string(QFX_TEST_DATA_DIR) +
                   "/transformer/vit_state_dict.txt");
  REQUIRE(In.good());
  auto M = models::vit_fashion();
  auto SD = M->state_dict();
  size_t I = 0;
  for (std::string L; std::getline(In, L); ++I) {
    REQUIRE(I < SD.size());
    std::string Dims;
    for (int64_t D : SD[I].second.shape())
      Dims += (Dims.empty() ? "" : ",") + std::to_string(D);
    CHECK(SD[I].first + " " + Dims == L);
  }
  CHECK(I == SD.size());
}

TEST_CASE("the ViT matches its PyTorch twin eagerly and traced at another "
          "batch size",
          "[transformer][zoo]") {
  auto M = hashFilledVit();
  Tensor X = golden("vit_input.npy"), Want = golden("vit_output.npy");
  CHECK(relError((*M)(X).tensor(), Want) < 1e-4);
  // Traced at batch 1, run at batch 2: reshape(-1, ...) and expand's
  // batch_like carry the batch.
  auto GM = traceVit(*M, 1);
  CHECK(relError(take(interpret(*GM, {X})), Want) < 1e-4);
}

TEST_CASE("the trained ViT gives PyTorch's logits and labels eagerly, "
          "interpreted and compiled",
          "[transformer][zoo][vit]") {
  auto M = models::vit_fashion();
  M->eval();
  if (llvm::Error E = M->load_safetensors(trainedVitWeights()))
    FAIL(errorToString(std::move(E)));
  Tensor X = zooGolden("vit_fashion_trained_input.npy");
  Tensor Want = zooGolden("vit_fashion_trained_output.npy");
  Tensor Labels = zooGolden("vit_fashion_trained_labels.npy");
  std::vector<int64_t> WantLabels;
  for (int64_t I = 0; I < Labels.numElements(); ++I)
    WantLabels.push_back(static_cast<int64_t>(Labels.getAsDouble(I)));
  REQUIRE(X.dim(0) == 8);
  // Traced at batch 1 and run at batch 8, as qfx-demo does.
  auto GM = traceVit(*M, 1);
  std::vector<std::pair<const char *, Tensor>> Runs = {
      {"eager", (*M)(X).tensor()},
      {"interpreted", take(interpret(*GM, {X}))},
      {"compiled", take(compileVit(*GM, 8)->run({X}))[0]}};
  for (const auto &[How, Got] : Runs) {
    INFO(How);
    CHECK(relToLargest(Got, Want) < 1e-4);
    CHECK(argmaxRows(Got) == WantLabels);
  }
}

TEST_CASE("the trained ViT quantized with x86 compiles to what the reference "
          "int8 graph computes",
          "[transformer][zoo][vit][quant]") {
  // Its position embedding is quantized at run time into a [N, 17, 64]
  // value feeding an int8 add, a reorder oneDNN 2.6 got wrong (the zero
  // point was dropped, moving every logit by up to 4).
  auto M = models::vit_fashion();
  M->eval();
  if (llvm::Error E = M->load_safetensors(trainedVitWeights()))
    FAIL(errorToString(std::move(E)));
  Tensor X = zooGolden("vit_fashion_trained_input.npy");
  Tensor Want = zooGolden("vit_fashion_trained_output.npy");
  QConfigMapping Map;
  Map.setGlobal(take(QConfig::preset("x86")));
  auto Obs = take(prepare_fx(
      *M, Map, {InputSpec::symbolic("x", DType::F32, {8, 1, 28, 28})}));
  take(Obs({X}));
  auto Q = take(convert_to_reference_fx(Obs.graphModule()));
  Tensor Ref = take(interpret(*Q, {X}));
  Tensor Got = take(compileVit(*Q, 8)->run({X}))[0];
  // Rounding ties may go the other way in a few int8 values (enough to swap
  // a close argmax: 8 calibration images give coarse scales); a dropped zero
  // point is off by 0.45.
  INFO("compiled vs reference " << relToLargest(Got, Ref)
                                << ", reference vs float "
                                << relToLargest(Ref, Want));
  CHECK(relToLargest(Got, Ref) < 0.02);
  CHECK(relToLargest(Ref, Want) < 0.25);
}

TEST_CASE("loading ViT weights with a missing or mis-shaped tensor names it",
          "[transformer][zoo][vit]") {
  SafetensorsFile F = take(readSafetensors(trainedVitWeights()));
  F.Tensors.erase("heads.head.bias");
  F.Tensors["encoder.pos_embedding"] = Tensor(DType::F32, {1, 16, 64});
  TempDir Dir;
  std::string Path = Dir.file("vit.safetensors");
  if (llvm::Error E = writeSafetensors(Path, F))
    FAIL(errorToString(std::move(E)));
  auto M = models::vit_fashion();
  llvm::Error E = M->load_safetensors(Path);
  std::string Message = E ? errorToString(std::move(E)) : "no error";
  CHECK(Message ==
        Path +
            ": error(s) in loading state_dict for VisionTransformer: missing "
            "keys: 'heads.head.bias'; size mismatch for "
            "encoder.pos_embedding: copying a param with shape [1,16,64] "
            "from checkpoint, the shape in current model is [1,17,64]");
}

TEST_CASE("transformer gradients agree with finite differences",
          "[transformer][grad]") {
  using gradcheck::compareWithFiniteDifferences;
  using gradcheck::randomTensor;
  auto Check = [](const std::function<Tensor(const Tensor &)> &F,
                  const Tensor &X,
                  const std::function<Tensor(const Tensor &)> &Analytic) {
    Tensor R = randomTensor(F(X).shape(), 7);
    return compareWithFiniteDifferences(F, X, R, Analytic(R));
  };
  Tensor X = randomTensor({3, 2, 6}, 1, -2.0f, 2.0f);
  Tensor W = randomTensor({6}, 2, 0.5f, 1.5f), B = randomTensor({6}, 3);
  for (bool Tanh : {false, true}) {
    INFO("gelu tanh " << Tanh);
    CHECK(Check(
              [&](const Tensor &T) {
                return nn::F::gelu(T, Tanh ? "tanh" : "none").tensor();
              },
              X,
              [&](const Tensor &R) {
                return grad::geluBackward(X, Tanh, R);
              }) == "");
  }
  auto LN = [&](const Tensor &T, const Tensor &Wt, const Tensor &Bt) {
    return take(runOp("layer_norm", {T, Argument::ints({6}), Wt, Bt}));
  };
  CHECK(Check([&](const Tensor &T) { return LN(T, W, B); }, X,
              [&](const Tensor &R) {
                return grad::layerNormBackward(X, 6, &W, true, 1e-5, R).X;
              }) == "");
  CHECK(Check([&](const Tensor &T) { return LN(X, T, B); }, W,
              [&](const Tensor &R) {
                return grad::layerNormBackward(X, 6, &W, true, 1e-5, R).W;
              }) == "");
  CHECK(Check([&](const Tensor &T) { return LN(X, W, T); }, B,
              [&](const Tensor &R) {
                return grad::layerNormBackward(X, 6, &W, true, 1e-5, R).Bias;
              }) == "");
  // matmul with broadcasting and 1-d operands, both gradients.
  std::vector<std::pair<Shape, Shape>> Cases = {{{2, 3, 4, 5}, {2, 3, 5, 2}},
                                                {{2, 1, 4, 5}, {3, 5, 2}},
                                                {{5}, {2, 5, 3}},
                                                {{2, 4, 5}, {5}}};
  for (auto &[SA, SB] : Cases) {
    INFO(formatShape(SA) << " x " << formatShape(SB));
    Tensor A = randomTensor(SA, 4), Bm = randomTensor(SB, 5);
    auto MM = [](const Tensor &P, const Tensor &Q) {
      return take(runOp("matmul", {P, Q}));
    };
    CHECK(Check([&](const Tensor &T) { return MM(T, Bm); }, A,
                [&](const Tensor &R) {
                  return grad::matmulBackward(A, Bm, R)[0];
                }) == "");
    CHECK(Check([&](const Tensor &T) { return MM(A, T); }, Bm,
                [&](const Tensor &R) {
                  return grad::matmulBackward(A, Bm, R)[1];
                }) == "");
  }
  Tensor C = randomTensor({1, 1, 4}, 6);
  CHECK(Check(
            [](const Tensor &T) {
              return take(runOp("expand", {T, Argument::ints({3, 2, -1})}));
            },
            C,
            [&](const Tensor &R) {
              return grad::expandBackward(C.shape(), R);
            }) == "");
  CHECK(Check(
            [](const Tensor &T) {
              return take(runOp(
                  "select", {T, Argument::integer(1), Argument::integer(1)}));
            },
            X,
            [&](const Tensor &R) {
              return grad::selectBackward(X.shape(), 1, 1, R);
            }) == "");
}

TEST_CASE("the float ViT compiles with no fallback at batch 1, 2 and 32",
          "[transformer][lowering]") {
  auto M = hashFilledVit();
  auto GM = traceVit(*M, 1);
  Tensor Want = golden("vit_output.npy");
  for (int64_t Batch : {1, 2, 32}) {
    INFO("batch " << Batch);
    auto C = compileVit(*GM, Batch);
    CHECK(fallbacksOf(*C) == "");
    Tensor X = batchOf(Batch);
    Tensor Got = take(C->run({X}))[0];
    Tensor Ref = take(interpret(*GM, {X}));
    CHECK(relError(Got, Ref) < 1e-4);
    if (Batch == 2)
      CHECK(relError(Got, Want) < 1e-4);
  }
}

TEST_CASE("the ViT quantizes statically and dynamically and compiles with "
          "no fallback",
          "[transformer][lowering][quant]") {
  auto M = hashFilledVit();
  Tensor Float = golden("vit_output.npy");
  for (const char *Preset : {"x86", "dynamic"}) {
    INFO(Preset);
    auto Q = quantizedVit(*M, Preset);
    Tensor X = batchOf(2);
    Tensor Ref = take(interpret(*Q, {X}));
    // Quantization moves the logits a little, not everywhere.
    CHECK(relError(Ref, Float) < 0.25);
    for (int64_t Batch : {2, 32}) {
      INFO("batch " << Batch);
      auto C = compileVit(*Q, Batch);
      CHECK(fallbacksOf(*C) == "");
      Tensor XB = batchOf(Batch);
      CHECK(relError(take(C->run({XB}))[0], take(interpret(*Q, {XB}))) < 0.01);
    }
  }
}

TEST_CASE("prepare_qat_fx, training steps and convert_fx work on the ViT",
          "[transformer][qat]") {
  auto M = hashFilledVit();
  QConfigMapping Map;
  Map.setGlobal(take(QConfig::preset("qat_x86")));
  auto Obs = take(prepare_qat_fx(
      *M, Map, {InputSpec::symbolic("x", DType::F32, {4, 1, 28, 28})}));
  GraphModule &GM = Obs.graphModule();
  Tape T(GM);
  T.setTraining(true);
  SGDOptions O;
  O.LR = 1e-3;
  auto Opt = take(SGD::create(O));
  Tensor X = batchOf(4);
  std::vector<int64_t> Labels = {0, 1, 2, 3};
  double First = 0, Last = 0;
  for (int Step = 0; Step < 4; ++Step) {
    auto Out = take(T.forward({X}));
    auto L = take(grad::crossEntropy(Out[0], Labels));
    if (Step == 0)
      First = L.Loss;
    Last = L.Loss;
    T.zeroGrad();
    if (llvm::Error E = T.backward({L.GradLogits}))
      FAIL(errorToString(std::move(E)));
    // Every trained tensor of the new ops gets a gradient.
    for (const char *P : {"class_token", "encoder.pos_embedding",
                          "encoder.layers.encoder_layer_0.ln_1.weight",
                          "encoder.layers.encoder_layer_3.mlp.0.weight"})
      CHECK(T.grads().count(P) == 1);
    if (llvm::Error E = Opt.step(GM, T.grads()))
      FAIL(errorToString(std::move(E)));
  }
  INFO("loss " << First << " -> " << Last);
  CHECK(Last < First);
  auto Q = take(convert_to_reference_fx(GM));
  auto C = compileVit(*Q, 4);
  CHECK(fallbacksOf(*C) == "");
  CHECK(relError(take(C->run({X}))[0], take(interpret(*Q, {X}))) < 0.01);
}

TEST_CASE("PyTorch's ONNX export of attention imports, runs and compiles",
          "[transformer][onnx]") {
  // LayerNormalization (opset 17), MatMul of two activations, Transpose,
  // Softmax and Gather of x[:, 0].
  auto GM = take(importOnnx(std::string(QFX_TEST_DATA_DIR) +
                            "/transformer/attention_opset17.onnx"));
  Tensor X = golden("attention_input.npy"),
         Want = golden("attention_output.npy");
  CHECK(relError(take(interpret(*GM, {X})), Want) < 1e-4);
  auto C = compileVit(*GM, 2);
  CHECK(fallbacksOf(*C) == "");
  CHECK(relError(take(C->run({X}))[0], Want) < 1e-4);
}
