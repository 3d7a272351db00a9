//===- OnnxChainTest.cpp - Export, import, fold-qdq and qopt end to end ---===//
//
// The ONNX layer's parts chained as a user chains them: a qfx model exported
// and imported again (float and QDQ, fold-qdq on), and qopt's one-line
// quantization of an ONNX file checked against ONNX Runtime and qfx.
//
//===----------------------------------------------------------------------===//

#include "OrtClient.h"
#include "TestUtil.h"

#include "qfx/Codegen/CompiledModule.h"
#include "qfx/Codegen/Lowering.h"
#include "qfx/IR/GraphModule.h"
#include "qfx/IR/Printer.h"
#include "qfx/IR/Serialization.h"
#include "qfx/Models/Zoo.h"
#include "qfx/Onnx/Export.h"
#include "qfx/Onnx/Import.h"
#include "qfx/Pipeline/QuantizeFx.h"
#include "qfx/Quant/QConfigMapping.h"
#include "qfx/Runtime/Interpreter.h"
#include "qfx/Support/FileIO.h"
#include "qfx/Support/Npy.h"
#include "qfx/Trace/SymbolicTrace.h"

#include "llvm/ADT/Optional.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Program.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <vector>

using namespace qfx;
using namespace qfx::testutil;

namespace {

/// A zoo model traced at a small input size (batch 1; the chains run it at
/// other batch sizes).
struct ChainCase {
  const char *Name;
  std::function<std::shared_ptr<nn::Module>()> Make;
  Shape Input;
};

const std::vector<ChainCase> &chainCases() {
  static const std::vector<ChainCase> Cases = {
      {"net", [] { return std::make_shared<models::Net>(); }, {1, 1, 28, 28}},
      {"resnet18", [] { return models::resnet18(10); }, {1, 3, 32, 32}},
      {"mobilenet_v2", [] { return models::mobilenet_v2(10); }, {1, 3, 32, 32}},
  };
  return Cases;
}

/// Uniform floats in [-1, 1) of shape \p S.
Tensor uniformInput(llvm::ArrayRef<int64_t> S, uint32_t Seed) {
  std::mt19937 Gen(Seed);
  Tensor T(DType::F32, S);
  for (int64_t I = 0; I < T.numElements(); ++I)
    T.data<float>()[I] = -1.0f + 2.0f * float(Gen() >> 8) / 16777216.0f;
  return T;
}

Shape batched(const Shape &S, int64_t B) {
  Shape R = S;
  R[0] = B;
  return R;
}

void check(llvm::Error E) {
  if (E)
    FAIL(errorToString(std::move(E)));
}

/// The model with weights from a fixed seed, in eval mode.
std::shared_ptr<nn::Module> build(const ChainCase &C) {
  nn::manual_seed(1);
  std::shared_ptr<nn::Module> M = C.Make();
  M->eval();
  return M;
}

QConfigMapping x86Mapping() {
  QConfigMapping Map;
  Map.setGlobal(take(QConfig::preset("x86")));
  return Map;
}

/// Prepared with the x86 preset (QAT: fake-quant) and calibrated on 8
/// deterministic images.
ObservedModule calibrated(const ChainCase &C, bool QAT) {
  std::shared_ptr<nn::Module> M = build(C);
  std::vector<InputSpec> Specs = {
      InputSpec::symbolic("x", DType::F32, C.Input)};
  ObservedModule Obs = QAT ? take(prepare_qat_fx(*M, x86Mapping(), Specs))
                           : take(prepare_fx(*M, x86Mapping(), Specs));
  check(Obs.calibrate(uniformInput(batched(C.Input, 8), 11), 4));
  return Obs;
}

/// Exports \p GM and imports the bytes again (fold-qdq on).
std::unique_ptr<GraphModule> roundTrip(const GraphModule &GM,
                                       llvm::StringRef Name) {
  std::string Bytes = take(exportOnnxBuffer(GM));
  return take(importOnnxBuffer(Bytes, Name));
}

/// Compile options for comparing int8 results: the last conv / linear
/// requantizes (as an exported model does) instead of writing f32 itself,
/// and a node without a oneDNN lowering is an error, so a compiled module
/// proves the graph is int8 throughout.
CompileOptions strictInt8() {
  CompileOptions Opts;
  Opts.FuseDequantize = false;
  Opts.RejectFallbacks = true;
  return Opts;
}

/// The scale of the int8 value the graph's output dequantizes.
double outputStep(const GraphModule &Ref) {
  const Node *Deq = Ref.graph().outputNode()->arg(0).getNode();
  REQUIRE(Deq->target() == "dequantize");
  return Deq->arg(0).getNode()->type()->Quant.Scale;
}

struct Agreement {
  double MaxDiff = 0;
  double MaxAbs = 0;
  /// The fraction of elements at most Step apart.
  double Within = 0;
  /// The fraction of elements that are equal.
  double Equal = 0;
};

Agreement agreement(const Tensor &Got, const Tensor &Want, double Step) {
  REQUIRE(Got.shape() == Want.shape());
  Agreement A;
  int64_t N = 0, Eq = 0;
  for (int64_t I = 0; I < Want.numElements(); ++I) {
    double D = std::fabs(Got.getAsDouble(I) - Want.getAsDouble(I));
    A.MaxDiff = std::max(A.MaxDiff, D);
    A.MaxAbs = std::max(A.MaxAbs, std::fabs(Want.getAsDouble(I)));
    // A hair of slack: both sides dequantize in f32, in different orders.
    if (D <= Step * (1 + 1e-5))
      ++N;
    if (D == 0)
      ++Eq;
  }
  A.Equal = double(Eq) / double(std::max<int64_t>(1, Want.numElements()));
  A.Within = double(N) / double(std::max<int64_t>(1, Want.numElements()));
  return A;
}

/// The index of the largest element of each row of a [N, K] tensor.
std::vector<int64_t> top1(const Tensor &T) {
  REQUIRE(T.shape().size() == 2);
  int64_t N = T.shape()[0], K = T.shape()[1];
  std::vector<int64_t> R;
  for (int64_t I = 0; I < N; ++I) {
    int64_t Best = 0;
    for (int64_t J = 1; J < K; ++J)
      if (T.getAsDouble(I * K + J) > T.getAsDouble(I * K + Best))
        Best = J;
    R.push_back(Best);
  }
  return R;
}

/// Float convolutions or linears left in \p GM (as modules or functions):
/// QDQ groups fold-qdq did not turn into quantized modules.
std::vector<std::string> floatConvsAndLinears(const GraphModule &GM) {
  std::vector<std::string> R;
  for (const Node &N : GM.graph()) {
    llvm::StringRef T = N.target();
    bool Float = false;
    if (N.op() == OpCode::CallFunction)
      Float = T == "conv2d" || T == "linear";
    else if (N.op() == OpCode::CallModule) {
      const ModuleInfo *M = GM.lookupModule(T);
      llvm::StringRef Kind = M ? M->kind() : "";
      Float = Kind == "Conv2d" || Kind == "Linear" || Kind == "ConvReLU2d" ||
              Kind == "LinearReLU";
    }
    if (Float)
      R.push_back(N.name().str());
  }
  return R;
}

/// The module calls of \p GM whose modules hold tensors (weighted ops), as
/// "node = path : Kind", in graph order.
std::vector<std::string> weightedCalls(const GraphModule &GM) {
  std::vector<std::string> R;
  for (const Node &N : GM.graph())
    if (N.op() == OpCode::CallModule)
      if (const ModuleInfo *M = GM.lookupModule(N.target()))
        if (!M->tensors().empty())
          R.push_back(N.name().str() + " = " + N.target().str() + " : " +
                      M->kind().str());
  return R;
}

/// Whether every tensor of the modules \p A calls is in \p B under the same
/// path with the same values (biases too unless \p SkipBias).
bool sameWeights(const GraphModule &A, const GraphModule &B,
                 bool SkipBias = false) {
  for (const Node &N : A.graph()) {
    if (N.op() != OpCode::CallModule)
      continue;
    for (const auto &KV : A.lookupModule(N.target())->tensors()) {
      if (SkipBias && KV.Name == "bias")
        continue;
      std::string Path = N.target().str() + "." + KV.Name;
      const Tensor *T = B.lookupTensor(Path);
      if (!T || T->shape() != KV.Value.shape()) {
        UNSCOPED_INFO("tensor " << Path << " is missing or differs in shape");
        return false;
      }
      for (int64_t I = 0; I < T->numElements(); ++I)
        if (T->getAsDouble(I) != KV.Value.getAsDouble(I)) {
          UNSCOPED_INFO("tensor " << Path << " differs at " << I);
          return false;
        }
    }
  }
  return true;
}

/// Checks that \p Imported (a reimported QDQ model) is a reference quantized
/// graph that compiles to int8 without fallbacks and computes \p Q's
/// compiled outputs on \p X within one output step on >= 99.9% of elements.
void checkReimportedInt8(std::unique_ptr<GraphModule> Imported,
                         const QuantizedModule &Q, const Tensor &X,
                         llvm::StringRef Name) {
  INFO(Name.str());
  CHECK(floatConvsAndLinears(*Imported).empty());
  // The quantized modules keep their module paths and node names.
  CHECK(weightedCalls(*Imported) == weightedCalls(Q.graphModule()));
  // The same int8 weights; the biases went through ONNX's int32 grid (scale
  // s_in * s_w), so they may differ by half a unit of it (docs/onnx.md).
  CHECK(sameWeights(Q.graphModule(), *Imported, /*SkipBias=*/true));
  double Step = outputStep(Q.graphModule());
  CHECK(outputStep(*Imported) == Step);
  // Strict lowering: every node has a oneDNN (or dedicated int8) lowering.
  CHECK(take(compile(*Imported, strictInt8()))->fallbacks().empty());
  QuantizedModule QI(std::move(Imported), strictInt8());
  Tensor Got = take(QI({X}))[0];
  Tensor Want = take(Q({X}))[0];
  Agreement A = agreement(Got, Want, Step);
  INFO(Name.str() << ": step " << Step << ", " << A.Within
                  << " within one step, max " << A.MaxDiff / Step << " steps");
  if (std::getenv("QFX_CHAIN_FIGURES"))
    WARN(Name.str() << ": " << A.Equal << " equal, " << A.Within
                    << " within one step, max " << A.MaxDiff / Step
                    << " steps");
  CHECK(A.Within >= 0.999);
  CHECK(top1(Got) == top1(Want));
}

} // namespace

//===----------------------------------------------------------------------===//
// Float: export, import
//===----------------------------------------------------------------------===//

TEST_CASE("a float zoo model exported to ONNX and imported again computes "
          "the original's outputs bit for bit with the same weighted modules",
          "[onnx-chain]") {
  for (const ChainCase &C : chainCases()) {
    INFO(C.Name);
    std::shared_ptr<nn::Module> M = build(C);
    std::unique_ptr<GraphModule> GM = take(
        symbolicTrace(*M, {InputSpec::symbolic("x", DType::F32, C.Input)}));
    std::unique_ptr<GraphModule> Back = roundTrip(*GM, C.Name);
    Tensor X = uniformInput(batched(C.Input, 2), 5);
    Tensor Want = take(Interpreter(*GM).run({X}))[0];
    Tensor Got = take(Interpreter(*Back).run({X}))[0];
    Agreement A = agreement(Got, Want, 0);
    INFO(C.Name << ": max diff " << A.MaxDiff);
    CHECK(A.MaxDiff == 0);
    // Conv2d, BatchNorm2d and Linear come back under their module paths
    // with their weights. The printed graphs differ: ONNX has no modules, so
    // ReLU / MaxPool2d modules come back as relu / max_pool2d calls.
    CHECK(weightedCalls(*Back) == weightedCalls(*GM));
    CHECK(sameWeights(*GM, *Back));
  }
}

//===----------------------------------------------------------------------===//
// QDQ: convert, export, import with fold-qdq, compile
//===----------------------------------------------------------------------===//

namespace {

/// Zoo model \p K calibrated (QAT: fake-quant), converted, exported as QDQ
/// (the observed graph itself under QAT) and imported with fold-qdq.
void checkQdqRoundTrip(size_t K, bool QAT) {
  const ChainCase &C = chainCases()[K];
  ObservedModule Obs = calibrated(C, QAT);
  QuantizedModule Q = take(convert_fx(Obs.graphModule(), strictInt8()));
  std::unique_ptr<GraphModule> Back =
      roundTrip(QAT ? Obs.graphModule() : Q.graphModule(), C.Name);
  checkReimportedInt8(std::move(Back), Q,
                      uniformInput(batched(C.Input, 16), QAT ? 22 : 21),
                      C.Name);
}

} // namespace

TEST_CASE("a quantized Net exported as QDQ and imported again compiles to "
          "int8 and gives the original's int8 outputs",
          "[onnx-chain]") {
  checkQdqRoundTrip(0, false);
}

TEST_CASE("a quantized ResNet-18 exported as QDQ and imported again compiles "
          "to int8 and gives the original's int8 outputs",
          "[onnx-chain]") {
  checkQdqRoundTrip(1, false);
}

TEST_CASE("a quantized MobileNetV2 exported as QDQ and imported again "
          "compiles to int8 and gives the original's int8 outputs",
          "[onnx-chain]") {
  checkQdqRoundTrip(2, false);
}

TEST_CASE("a QAT-prepared Net exported as QDQ and imported again compiles to "
          "int8 and gives convert_fx's int8 outputs",
          "[onnx-chain]") {
  checkQdqRoundTrip(0, true);
}

//===----------------------------------------------------------------------===//
// qopt's one-liner on an ONNX file
//===----------------------------------------------------------------------===//

namespace {

/// Runs the built qopt with \p Args; fails the test with its stderr unless
/// it succeeds.
void runQopt(const TempDir &Dir, std::vector<std::string> Args) {
  Args.insert(Args.begin(), QFX_QOPT_PATH);
  std::vector<llvm::StringRef> Refs(Args.begin(), Args.end());
  std::string Out = Dir.file("qopt.out"), Err = Dir.file("qopt.err");
  llvm::sys::fs::remove(Out);
  llvm::sys::fs::remove(Err);
  llvm::Optional<llvm::StringRef> Redirects[] = {
      llvm::StringRef(""), llvm::StringRef(Out), llvm::StringRef(Err)};
  std::string Msg;
  int Status = llvm::sys::ExecuteAndWait(QFX_QOPT_PATH, Refs, llvm::None,
                                         Redirects, 120, 0, &Msg);
  INFO(Msg << take(readFile(Err)));
  REQUIRE(Status == 0);
}

/// The seed Net as torch.onnx.export wrote it, quantized by qopt's one-line
/// form into \p Dir: net.int8.onnx and net.int8.json, from the x86 preset
/// and 16 deterministic calibration images.
void quantizeNetWithQopt(const TempDir &Dir) {
  std::string QConfig = Dir.file("x86.json");
  check(writeFileAtomically(QConfig, "{\"\": \"x86\"}\n"));
  std::string Calib = Dir.file("calib.npy");
  check(writeNpy(Calib, uniformInput({16, 1, 28, 28}, 3)));
  std::string Model = QFX_TEST_DATA_DIR "/onnx/net_opset13.onnx";
  for (const char *Out : {"net.int8.onnx", "net.int8.json"})
    runQopt(Dir, {Model, "--qconfig", QConfig, "--calibrate", Calib, "-o",
                  Dir.file(Out)});
}

Tensor goldenInput() {
  return take(readNpy(QFX_TEST_DATA_DIR "/onnx/net_input.npy"));
}

} // namespace

TEST_CASE("qopt's one-line quantization of an ONNX model writes QDQ ONNX "
          "that imports back to the int8 graph it wrote as JSON",
          "[onnx-chain]") {
  TempDir Dir;
  quantizeNetWithQopt(Dir);
  QuantizedModule Q(take(loadGraphModule(Dir.file("net.int8.json"))),
                    strictInt8());
  std::unique_ptr<GraphModule> Back =
      take(importOnnx(Dir.file("net.int8.onnx")));
  checkReimportedInt8(std::move(Back), Q, goldenInput(), "net.int8.onnx");
}

#ifdef QFX_ORT_ENABLED

TEST_CASE("ONNX Runtime runs qopt's one-line quantization of an ONNX model "
          "in int8 kernels with qfx's int8 outputs and top-1",
          "[onnx-chain][ort]") {
  TempDir Dir;
  quantizeNetWithQopt(Dir);
  QuantizedModule Q(take(loadGraphModule(Dir.file("net.int8.json"))),
                    strictInt8());
  Tensor X = goldenInput();
  OrtRunOptions Opts;
  Opts.WantOptimizedOps = true;
  OrtResult R =
      take(runOrtFull(Dir.file("net.int8.onnx"), {{"input", X}}, Opts));
  REQUIRE(R.Outputs.size() == 1);
  auto Has = [&](llvm::StringRef Op) {
    return llvm::any_of(R.OptimizedOps,
                        [&](const OrtNodeType &T) { return T.OpType == Op; });
  };
  CHECK(Has("QLinearConv"));
  CHECK(Has("QGemm"));
  Tensor Want = take(Q({X}))[0];
  double Step = outputStep(Q.graphModule());
  Agreement A = agreement(R.Outputs[0], Want, Step);
  INFO("net.int8.onnx in ONNX Runtime vs qfx compiled int8: step "
       << Step << ", " << A.Within << " within one step, max "
       << A.MaxDiff / Step << " steps");
  CHECK(A.Within >= 0.999);
  CHECK(top1(R.Outputs[0]) == top1(Want));
}

#endif // QFX_ORT_ENABLED
