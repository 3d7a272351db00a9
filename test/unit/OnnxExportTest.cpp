//===- OnnxExportTest.cpp - ONNX and QDQ ONNX export ----------------------===//

#include "OrtClient.h"
#include "TestUtil.h"

#include "onnx/onnx_pb.h"

#include "qfx/IR/GraphModule.h"
#include "qfx/IR/Parser.h"
#include "qfx/IR/Serialization.h"
#include "qfx/Models/Zoo.h"
#include "qfx/Onnx/Export.h"
#include "qfx/Pipeline/QuantizeFx.h"
#include "qfx/Quant/QConfigMapping.h"
#include "qfx/Runtime/Interpreter.h"
#include "qfx/Runtime/Op.h"
#include "qfx/Support/Npy.h"
#include "qfx/Trace/SymbolicTrace.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>

using namespace qfx;
using namespace qfx::testutil;

namespace {

/// A zoo model at a small input size (ORT runs it at batch 2, the trace is
/// at batch 1, so the dynamic batch is exercised).
struct ZooCase {
  const char *Name;
  std::function<std::shared_ptr<nn::Module>()> Make;
  Shape Input; // batch 1
};

const std::vector<ZooCase> &zooCases() {
  static const std::vector<ZooCase> Cases = {
      {"net", [] { return std::make_shared<models::Net>(); }, {1, 1, 28, 28}},
      {"resnet18", [] { return models::resnet18(10); }, {1, 3, 32, 32}},
      {"mobilenet_v2", [] { return models::mobilenet_v2(10); }, {1, 3, 32, 32}},
  };
  return Cases;
}

/// Uniform floats in [-1, 1) of shape \p S.
Tensor randomInput(llvm::ArrayRef<int64_t> S, uint32_t Seed) {
  std::mt19937 Gen(Seed);
  Tensor T(DType::F32, S);
  for (int64_t I = 0; I < T.numElements(); ++I)
    T.data<float>()[I] = -1.0f + 2.0f * float(Gen() >> 8) / 16777216.0f;
  return T;
}

Shape withBatch(const Shape &S, int64_t B) {
  Shape R = S;
  R[0] = B;
  return R;
}

void requireOk(llvm::Error E) {
  if (E)
    FAIL(errorToString(std::move(E)));
}

/// The model's weights come from a fixed seed, so they do not depend on
/// which tests ran before.
std::shared_ptr<nn::Module> make(const ZooCase &Z, uint64_t Seed = 1) {
  nn::manual_seed(Seed);
  return Z.Make();
}

std::unique_ptr<GraphModule> tracedFloat(const ZooCase &Z) {
  std::shared_ptr<nn::Module> M = make(Z);
  M->eval();
  return take(
      symbolicTrace(*M, {InputSpec::symbolic("x", DType::F32, Z.Input)}));
}

QConfigMapping x86() {
  QConfigMapping Map;
  Map.setGlobal(take(QConfig::preset("x86")));
  return Map;
}

/// The model prepared with the x86 preset (QAT: fake-quant) and calibrated
/// on 8 deterministic images.
ObservedModule observed(const ZooCase &Z, bool QAT, uint64_t Seed = 1) {
  std::shared_ptr<nn::Module> M = make(Z, Seed);
  M->eval();
  std::vector<InputSpec> Specs = {
      InputSpec::symbolic("x", DType::F32, Z.Input)};
  ObservedModule Obs = QAT ? take(prepare_qat_fx(*M, x86(), Specs))
                           : take(prepare_fx(*M, x86(), Specs));
  requireOk(Obs.calibrate(randomInput(withBatch(Z.Input, 8), 11), 4));
  return Obs;
}

/// Whether the serialized model mentions \p S (op types, names).
bool mentions(const std::string &Bytes, llvm::StringRef S) {
  return Bytes.find(S.str()) != std::string::npos;
}

} // namespace

//===----------------------------------------------------------------------===//
// Without ONNX Runtime
//===----------------------------------------------------------------------===//

TEST_CASE("onnx export: a float zoo model passes the checker and names its "
          "input and output",
          "[onnx-export]") {
  for (const ZooCase &Z : zooCases()) {
    INFO(Z.Name);
    std::unique_ptr<GraphModule> GM = tracedFloat(Z);
    std::string Bytes = take(exportOnnxBuffer(*GM));
    CHECK(mentions(Bytes, "Conv"));
    CHECK(mentions(Bytes, "batch"));
    CHECK(mentions(Bytes, "output"));
    CHECK_FALSE(mentions(Bytes, "QuantizeLinear"));
  }
}

TEST_CASE("onnx export: every op of the op table has an export decision",
          "[onnx-export]") {
  for (const OpDef &Op : allOps()) {
    INFO("op " << Op.Name);
    CHECK(onnxExportDecision(Op.Name));
  }
  CHECK(onnxExportDecision("quantized_conv2d") == std::string());
  CHECK_FALSE(onnxExportDecision("no_such_op"));
}

TEST_CASE("onnx export: the same graph always writes the same bytes",
          "[onnx-export]") {
  const ZooCase &Z = zooCases()[0];
  std::unique_ptr<GraphModule> GM = tracedFloat(Z);
  CHECK(take(exportOnnxBuffer(*GM)) == take(exportOnnxBuffer(*GM)));
  QuantizedModule Q = take(convert_fx(observed(Z, false).graphModule()));
  std::string A = take(exportOnnxBuffer(Q.graphModule()));
  std::string B = take(exportOnnxBuffer(*Q.graphModule().clone()));
  CHECK(A == B);
}

TEST_CASE("onnx export: a reference quantized graph becomes QDQ with int8 "
          "weights and int32 bias",
          "[onnx-export]") {
  QuantizedModule Q =
      take(convert_fx(observed(zooCases()[0], false).graphModule()));
  std::string Bytes = take(exportOnnxBuffer(Q.graphModule()));
  CHECK(mentions(Bytes, "QuantizeLinear"));
  CHECK(mentions(Bytes, "DequantizeLinear"));
  CHECK(mentions(Bytes, "conv1.weight_scale"));
  CHECK(mentions(Bytes, "conv1.bias_quantized"));
  CHECK(mentions(Bytes, "Gemm"));
}

TEST_CASE("onnx export: a graph with an op without ONNX form is an error "
          "naming the node",
          "[onnx-export]") {
  struct Case {
    const char *IR;
    OnnxExportOptions Opts;
    const char *Message;
  };
  const char *Divisor = R"(graph_module M {
  graph {
    %x : f32[1,1,4,4] = placeholder[x]
    %p : f32[1,1,2,2] = call_function[avg_pool2d](%x, 2, 2, 0, false, true, 3)
    %output = output[output](%p)
  }
})";
  const char *Untyped = R"(graph_module M {
  graph {
    %x = placeholder[x]
    %relu = call_function[relu](%x)
    %output = output[output](%relu)
  }
})";
  const char *Alpha = R"(graph_module M {
  graph {
    %x : f32[1,4] = placeholder[x]
    %add : f32[1,4] = call_function[add](%x, %x, 2)
    %output = output[output](%add)
  }
})";
  OnnxExportOptions Opset12;
  Opset12.Opset = 12;
  const Case Cases[] = {
      {Divisor,
       {},
       "node 'p' (call_function[avg_pool2d]): avg_pool2d with "
       "divisor_override has no ONNX form"},
      {Untyped,
       {},
       "node 'x' (placeholder[x]): the input has no type; give its shape "
       "(trace with input specs or --input-shape)"},
      {Alpha,
       {},
       "node 'add' (call_function[add]): add with alpha 2.000000 has no ONNX "
       "form"},
      {Alpha, Opset12, "opset 12 is not supported for export (13..17)"},
  };
  for (const Case &C : Cases) {
    INFO(C.IR);
    std::unique_ptr<GraphModule> GM = take(parseGraphModule(C.IR, "test.qir"));
    CHECK(errorOf(exportOnnxBuffer(*GM, C.Opts)) == C.Message);
  }
}

TEST_CASE("onnx export: exportOnnx writes the buffer's bytes and leaves "
          "nothing behind on error",
          "[onnx-export]") {
  TempDir Dir;
  std::string Path = Dir.file("net.onnx");
  std::unique_ptr<GraphModule> GM = tracedFloat(zooCases()[0]);
  requireOk(exportOnnx(*GM, Path));
  auto Buf = llvm::MemoryBuffer::getFile(Path);
  REQUIRE(Buf);
  CHECK((*Buf)->getBuffer() == take(exportOnnxBuffer(*GM)));
  OnnxExportOptions Bad;
  Bad.Opset = 99;
  std::string BadPath = Dir.file("bad.onnx");
  CHECK(errorToString(exportOnnx(*GM, BadPath, Bad)) ==
        BadPath + ": opset 99 is not supported for export (13..17)");
  CHECK_FALSE(llvm::sys::fs::exists(BadPath));
}

namespace {

/// The model \p Bytes parse to (tests read the emitted protobuf directly).
onnx::ModelProto parseModel(const std::string &Bytes) {
  onnx::ModelProto M;
  REQUIRE(M.ParseFromString(Bytes));
  return M;
}

std::vector<std::string> opTypes(const onnx::ModelProto &M) {
  std::vector<std::string> Ops;
  for (const onnx::NodeProto &N : M.graph().node())
    Ops.push_back(N.op_type());
  return Ops;
}

const onnx::TensorProto &initializer(const onnx::ModelProto &M,
                                     llvm::StringRef Name) {
  for (const onnx::TensorProto &T : M.graph().initializer())
    if (T.name() == Name)
      return T;
  FAIL("no initializer " << Name.str());
  return M.graph().initializer(0);
}

template <typename T> std::vector<T> values(const onnx::TensorProto &P) {
  std::vector<T> V(P.raw_data().size() / sizeof(T));
  std::memcpy(V.data(), P.raw_data().data(), V.size() * sizeof(T));
  return V;
}

} // namespace

TEST_CASE("onnx export: a quantized conv is ORT's unit DQ(x), DQ(W), DQ(b) "
          "-> Conv -> Q with an int32 bias at scale s_in * s_w",
          "[onnx-export]") {
  // convert's output for test/Transforms/Convert/conv.qir.
  const char *IR = R"(graph_module M {
  module conv : QuantizedConv2d {dilation = [1, 1], groups = 1, in_channels = 1, kernel_size = [1, 1], out_channels = 2, padding = [0, 0], scale = 0.015625, stride = [1, 1], zero_point = 0} {
    param weight : s8[2,1,1,1]<axis=0, scales=[0.0078125, 0.00390625], zero_points=[0, 0]> = dense<[127, -128]>
    param bias : f32[2] = dense<[0.25, -0.5001]>
  }
  graph {
    %x : f32[1,1,4,4] = placeholder[x]
    %q : u8[1,1,4,4]<scale=0.0078125, zero_point=128> = call_function[quantize_per_tensor](%x, 0.0078125, 128, "quint8")
    %conv : u8[1,2,4,4]<scale=0.015625, zero_point=0> = call_module[conv](%q)
    %dq : f32[1,2,4,4] = call_method[dequantize](%conv)
    %output = output[output](%dq)
  }
})";
  std::unique_ptr<GraphModule> GM = take(parseGraphModule(IR, "test.qir"));
  onnx::ModelProto M = parseModel(take(exportOnnxBuffer(*GM)));
  CHECK(opTypes(M) == std::vector<std::string>{
                          "QuantizeLinear", "DequantizeLinear",
                          "DequantizeLinear", "DequantizeLinear", "Conv",
                          "QuantizeLinear", "DequantizeLinear", "Identity"});
  CHECK(M.opset_import(0).version() == 13);
  const onnx::GraphProto &G = M.graph();
  // The weight DQ and the bias DQ are per channel on axis 0.
  for (int I : {2, 3}) {
    REQUIRE(G.node(I).attribute_size() == 1);
    CHECK(G.node(I).attribute(0).name() == "axis");
    CHECK(G.node(I).attribute(0).i() == 0);
  }
  CHECK(G.node(4).input(1) == G.node(2).output(0));
  CHECK(G.node(4).input(2) == G.node(3).output(0));
  const onnx::TensorProto &W = initializer(M, "conv.weight");
  CHECK(W.data_type() == onnx::TensorProto::INT8);
  CHECK(values<int8_t>(W) == std::vector<int8_t>{127, -128});
  // round(0.25 / (2^-7 * 2^-7)) and round(-0.5001 / (2^-7 * 2^-8)): the
  // second is -16387.2768 -> -16387, 0.28 accumulator units from qfx's
  // float bias.
  const onnx::TensorProto &B = initializer(M, "conv.bias_quantized");
  CHECK(B.data_type() == onnx::TensorProto::INT32);
  CHECK(values<int32_t>(B) == std::vector<int32_t>{4096, -16387});
  CHECK(values<float>(initializer(M, "conv.bias_quantized_scale")) ==
        std::vector<float>{1.0f / 16384, 1.0f / 32768});
  CHECK(values<int32_t>(initializer(M, "conv.bias_quantized_zero_point")) ==
        std::vector<int32_t>{0, 0});
  // Activation qparams: f32 and u8 scalars.
  const onnx::TensorProto &Z = initializer(M, "conv_zero_point");
  CHECK(Z.data_type() == onnx::TensorProto::UINT8);
  CHECK(Z.dims_size() == 0);
  CHECK(values<float>(initializer(M, "q_scale")) ==
        std::vector<float>{0.0078125f});
  // The graph input and output have a symbolic batch.
  CHECK(G.input(0).type().tensor_type().shape().dim(0).dim_param() == "batch");
  CHECK(G.output(0).name() == "output");
  CHECK(G.output(0).type().tensor_type().shape().dim(0).dim_param() == "batch");
}

TEST_CASE("onnx export: relu6 on int8 is a Clip of the integers and a "
          "literal batch in a view becomes -1",
          "[onnx-export]") {
  const char *IR = R"(graph_module M {
  graph {
    %x : f32[1,2,4] = placeholder[x]
    %q : u8[1,2,4]<scale=0.05, zero_point=100> = call_function[quantize_per_tensor](%x, 0.05, 100, "quint8")
    %r : u8[1,2,4]<scale=0.05, zero_point=100> = call_function[relu6](%q)
    %v : u8[1,8]<scale=0.05, zero_point=100> = call_method[view](%r, [1, 8])
    %dq : f32[1,8] = call_method[dequantize](%v)
    %output = output[output](%dq)
  }
})";
  std::unique_ptr<GraphModule> GM = take(parseGraphModule(IR, "test.qir"));
  onnx::ModelProto M = parseModel(take(exportOnnxBuffer(*GM)));
  CHECK(opTypes(M) == std::vector<std::string>{"QuantizeLinear", "Clip",
                                               "DequantizeLinear", "Reshape",
                                               "QuantizeLinear",
                                               "DequantizeLinear", "Identity"});
  const onnx::NodeProto &Clip = M.graph().node(1);
  CHECK(Clip.input(0) == M.graph().node(0).output(0));
  // clamp(round(0 / 0.05) + 100) and clamp(round(6 / 0.05) + 100, 255).
  CHECK(values<uint8_t>(initializer(M, Clip.input(1))) ==
        std::vector<uint8_t>{100});
  CHECK(values<uint8_t>(initializer(M, Clip.input(2))) ==
        std::vector<uint8_t>{220});
  CHECK(values<int64_t>(initializer(M, M.graph().node(3).input(1))) ==
        std::vector<int64_t>{-1, 8});
  OnnxExportOptions Static;
  Static.DynamicBatch = false;
  onnx::ModelProto S = parseModel(take(exportOnnxBuffer(*GM, Static)));
  CHECK(values<int64_t>(initializer(S, S.graph().node(3).input(1))) ==
        std::vector<int64_t>{1, 8});
  CHECK(S.graph().input(0).type().tensor_type().shape().dim(0).dim_value() ==
        1);
}

//===----------------------------------------------------------------------===//
// Checked by ONNX Runtime (test/unit/OrtClient.h)
//===----------------------------------------------------------------------===//

#ifdef QFX_ORT_ENABLED

namespace {

/// How ORT's output compares with qfx's.
struct Agreement {
  double MaxDiff = 0;
  double MaxAbs = 0;
  /// The fraction of elements within \p Step (QDQ comparisons).
  double WithinStep = 0;
};

Agreement compare(const Tensor &Got, const Tensor &Want, double Step) {
  REQUIRE(Got.shape() == Want.shape());
  Agreement A;
  int64_t Within = 0;
  for (int64_t I = 0; I < Want.numElements(); ++I) {
    double D = std::fabs(Got.getAsDouble(I) - Want.getAsDouble(I));
    A.MaxDiff = std::max(A.MaxDiff, D);
    A.MaxAbs = std::max(A.MaxAbs, std::fabs(Want.getAsDouble(I)));
    // A hair of slack: the two sides dequantize in f32 differently.
    if (D <= Step * (1 + 1e-5))
      ++Within;
  }
  A.WithinStep = double(Within) / double(Want.numElements());
  return A;
}

/// convert_fx's module with an int8 output like the exported model's: the
/// last conv / linear requantizes instead of writing f32 itself (which
/// would be up to half a step from any int8 result).
CompileOptions int8Output() {
  CompileOptions Opts;
  Opts.FuseDequantize = false;
  return Opts;
}

/// The scale of the int8 value the graph's output dequantizes: one
/// quantization step of the output.
double outputStep(const GraphModule &Ref) {
  const Node *Deq = Ref.graph().outputNode()->arg(0).getNode();
  REQUIRE(Deq->target() == "dequantize");
  return Deq->arg(0).getNode()->type()->Quant.Scale;
}

bool hasOp(const OrtResult &R, llvm::StringRef OpType) {
  return llvm::any_of(R.OptimizedOps,
                      [&](const OrtNodeType &T) { return T.OpType == OpType; });
}

/// Exports \p Exported, runs it in ORT on \p X and checks it against the
/// compiled module \p Q: within one output step on >= 99.9% of elements,
/// and ORT's optimized graph runs int8 convolutions and gemms.
void checkQdq(const GraphModule &Exported, const QuantizedModule &Q,
              const Tensor &X, const char *Name) {
  TempDir Dir;
  std::string Path = Dir.file(std::string(Name) + ".int8.onnx");
  requireOk(exportOnnx(Exported, Path));
  OrtRunOptions Opts;
  Opts.WantOptimizedOps = true;
  OrtResult R = take(runOrtFull(Path, {{"x", X}}, Opts));
  REQUIRE(R.Outputs.size() == 1);
  Tensor Want = take(Q({X}))[0];
  double Step = outputStep(Q.graphModule());
  Agreement A = compare(R.Outputs[0], Want, Step);
  Tensor Ref = take(Q.runReference({X}))[0];
  Agreement B = compare(R.Outputs[0], Ref, Step);
  INFO(Name << ": step " << Step << "; compiled: " << A.WithinStep
            << " within one step, max " << A.MaxDiff / Step
            << " steps; reference interpreter: " << B.WithinStep
            << " within one step, max " << B.MaxDiff / Step << " steps");
  CHECK(A.WithinStep >= 0.999);
  CHECK(B.WithinStep >= 0.999);
  CHECK(hasOp(R, "QLinearConv"));
  CHECK(hasOp(R, "QGemm"));
}

} // namespace

TEST_CASE("onnx export [ort]: float zoo models give qfx's outputs in ONNX "
          "Runtime at another batch size",
          "[onnx-export][ort]") {
  for (const ZooCase &Z : zooCases()) {
    std::unique_ptr<GraphModule> GM = tracedFloat(Z);
    TempDir Dir;
    std::string Path = Dir.file(std::string(Z.Name) + ".onnx");
    requireOk(exportOnnx(*GM, Path));
    Tensor X = randomInput(withBatch(Z.Input, 3), 5);
    std::vector<Tensor> Got = take(runOrt(Path, {{"x", X}}));
    REQUIRE(Got.size() == 1);
    Tensor Want = take(Interpreter(*GM).run({X}))[0];
    Agreement A = compare(Got[0], Want, 0);
    INFO(Z.Name << ": max diff " << A.MaxDiff << ", relative to the largest "
                << "output " << A.MaxDiff / A.MaxAbs);
    CHECK(A.MaxDiff <= 1e-5 * A.MaxAbs);
  }
}

namespace {

/// Zoo model \p K prepared (QAT: fake-quant), calibrated, converted by
/// convert_fx and exported (the observed graph itself under QAT, which the
/// exporter converts), checked against the compiled module.
void checkZooQdq(size_t K, bool QAT) {
  const ZooCase &Z = zooCases()[K];
  ObservedModule Obs = observed(Z, QAT);
  QuantizedModule Q = take(convert_fx(Obs.graphModule(), int8Output()));
  checkQdq(QAT ? Obs.graphModule() : Q.graphModule(), Q,
           randomInput(withBatch(Z.Input, 16), QAT ? 22 : 21), Z.Name);
}

} // namespace

// One test case per model keeps each a few seconds.
TEST_CASE("onnx export [ort]: QDQ Net runs int8 in ONNX Runtime within one "
          "step of convert_fx's module",
          "[onnx-export][ort]") {
  checkZooQdq(0, false);
}
TEST_CASE("onnx export [ort]: QDQ ResNet-18 runs int8 in ONNX Runtime within "
          "one step of convert_fx's module",
          "[onnx-export][ort]") {
  checkZooQdq(1, false);
}
TEST_CASE("onnx export [ort]: QDQ MobileNetV2 runs int8 in ONNX Runtime "
          "within one step of convert_fx's module",
          "[onnx-export][ort]") {
  checkZooQdq(2, false);
}
TEST_CASE("onnx export [ort]: QAT-prepared Net exports as convert would "
          "quantize it",
          "[onnx-export][ort]") {
  checkZooQdq(0, true);
}
TEST_CASE("onnx export [ort]: QAT-prepared ResNet-18 exports as convert "
          "would quantize it",
          "[onnx-export][ort]") {
  checkZooQdq(1, true);
}
TEST_CASE("onnx export [ort]: QAT-prepared MobileNetV2 exports as convert "
          "would quantize it",
          "[onnx-export][ort]") {
  checkZooQdq(2, true);
}

TEST_CASE("onnx export [ort]: general int8 ops and weight-only linears give "
          "the reference interpreter's outputs",
          "[onnx-export][ort]") {
  // add_relu, mul, hardswish (opset 13 and 14 forms), sigmoid, cat.
  const char *General = R"(graph_module M {
  graph {
    %x : f32[1,4] = placeholder[x]
    %q : u8[1,4]<scale=0.0078125, zero_point=128> = call_function[quantize_per_tensor](%x, 0.0078125, 128, "quint8")
    %add : u8[1,4]<scale=0.0078125, zero_point=0> = call_function[quantized_add_relu](%q, %q, 0.0078125, 0)
    %mul : u8[1,4]<scale=0.015625, zero_point=128> = call_function[quantized_mul](%add, %q, 0.015625, 128)
    %sig : u8[1,4]<scale=0.00390625, zero_point=0> = call_function[quantized_sigmoid](%mul)
    %hs : u8[1,4]<scale=0.015625, zero_point=128> = call_function[quantized_hardswish](%mul, 0.015625, 128)
    %cat : u8[1,8]<scale=0.015625, zero_point=128> = call_function[quantized_cat]([%hs, %sig], 1, 0.015625, 128)
    %dq : f32[1,8] = call_method[dequantize](%cat)
    %output = output[output](%dq)
  }
})";
  // Weight-only (u8 per-channel weights with zero points) in a LinearReLU.
  const char *WeightOnly = R"(graph_module M {
  module fc : LinearReLU
  module fc.0 : Linear {in_features = 4, out_features = 2} {
    param weight : u8[2,4]<axis=0, scales=[0.0058823530562222, 0.006862745154649019], zero_points=[85, 109]> = dense<[106, 43, 170, 213, 0, 127, 255, 64]>
    param bias : f32[2] = dense<[0.1, -0.2]>
  }
  module fc.1 : ReLU
  graph {
    %x : f32[1,4] = placeholder[x]
    %fc : f32[1,2] = call_module[fc](%x)
    %output = output[output](%fc)
  }
})";
  for (const char *IR : {General, WeightOnly})
    for (int Opset : {13, 14}) {
      INFO(IR << "\nopset " << Opset);
      std::unique_ptr<GraphModule> GM = take(parseGraphModule(IR, "test.qir"));
      TempDir Dir;
      std::string Path = Dir.file("m.onnx");
      OnnxExportOptions Opts;
      Opts.Opset = Opset;
      requireOk(exportOnnx(*GM, Path, Opts));
      Tensor X = randomInput({64, 4}, 3);
      for (int64_t I = 0; I < X.numElements(); ++I)
        X.data<float>()[I] *= 2; // [-2, 2): saturates some values
      std::vector<Tensor> Got = take(runOrt(Path, {{"x", X}}));
      Tensor Want = take(Interpreter(*GM).run({X}))[0];
      Agreement A = compare(Got[0], Want, 0.015625);
      CHECK(A.WithinStep == 1.0);
    }
}

TEST_CASE("onnx export [ort]: a dynamic linear runs as ORT's dynamic "
          "quantizer writes it, within both sides' activation rounding",
          "[onnx-export][ort]") {
  const char *IR = R"(graph_module M {
  module fc : QuantizedLinearDynamic {reduce_range = true} {
    param weight : s8[3,4]<axis=0, scales=[0.01, 0.02, 0.005], zero_points=[0, 0, 0]> = dense<[100, -50, 20, 127, -128, 3, 60, -7, 90, 45, -100, 11]>
    param bias : f32[3] = dense<[0.1, -0.2, 0.3]>
  }
  graph {
    %x : f32[1,4] = placeholder[x]
    %fc : f32[1,3] = call_module[fc](%x)
    %output = output[output](%fc)
  }
})";
  std::unique_ptr<GraphModule> GM = take(parseGraphModule(IR, "test.qir"));
  TempDir Dir;
  std::string Path = Dir.file("dynamic.onnx");
  requireOk(exportOnnx(*GM, Path));
  Tensor X = randomInput({64, 4}, 9);
  for (int64_t I = 0; I < X.numElements(); ++I)
    X.data<float>()[I] *= 2;
  OrtRunOptions Opts;
  Opts.WantOptimizedOps = true;
  OrtResult R = take(runOrtFull(Path, {{"x", X}}, Opts));
  Tensor Want = take(Interpreter(*GM).run({X}))[0];
  CHECK(hasOp(R, "DynamicQuantizeMatMul"));
  // qfx quantizes x over [min, max] to 0..127 (reduce_range), ORT to
  // 0..255: each output is off by at most half of each step times sum |w|.
  double Lo = 0, Hi = 0;
  for (int64_t I = 0; I < X.numElements(); ++I) {
    Lo = std::min(Lo, X.getAsDouble(I));
    Hi = std::max(Hi, X.getAsDouble(I));
  }
  double Bound = 0.5 * (Hi - Lo) * (1.0 / 127 + 1.0 / 255);
  const Tensor &W = *GM->lookupTensor("fc.weight");
  for (int64_t Row = 0; Row < 64; ++Row)
    for (int64_t O = 0; O < 3; ++O) {
      double SumW = 0;
      for (int64_t I = 0; I < 4; ++I)
        SumW += std::fabs(W.getAsDouble(O * 4 + I)) * W.quant().Scales[O];
      INFO("row " << Row << " output " << O);
      CHECK(std::fabs(R.Outputs[0].getAsDouble(Row * 3 + O) -
                      Want.getAsDouble(Row * 3 + O)) <= Bound * SumW + 1e-5);
    }
}

TEST_CASE("onnx export [ort]: graphs loaded from files export as they "
          "run, float and converted by the fuse-prepare-calibrate-convert "
          "pipeline",
          "[onnx-export][ort]") {
  for (const char *File : {"model.ir", "residual.ir"}) {
    INFO(File);
    std::unique_ptr<GraphModule> GM =
        take(loadGraphModule(std::string(QFX_TEST_DATA_DIR "/qopt/") + File));
    Tensor X = randomInput(
        withBatch(GM->graph().placeholders()[0]->type()->Dims, 8), 4);
    TempDir Dir;
    std::string Path = Dir.file("float.onnx");
    requireOk(exportOnnx(*GM, Path));
    Tensor Want = take(Interpreter(*GM).run({X}))[0];
    Agreement A = compare(take(runOrt(Path, {{"x", X}}))[0], Want, 0);
    CHECK(A.MaxDiff <= 1e-5 * A.MaxAbs);

    // prepare_fx's pipeline on the loaded graph, then convert.
    requireOk(prepareGraph(*GM, x86(), false));
    requireOk(runObserved(*GM, {X}).takeError());
    std::unique_ptr<GraphModule> Ref = take(convert_to_reference_fx(*GM));
    std::string QPath = Dir.file("int8.onnx");
    requireOk(exportOnnx(*GM, QPath)); // the observed graph, converted
    QuantizedModule Q(std::move(Ref), int8Output());
    Tensor QWant = take(Q({X}))[0];
    Agreement B = compare(take(runOrt(QPath, {{"x", X}}))[0], QWant,
                          outputStep(Q.graphModule()));
    CHECK(B.WithinStep == 1.0);
  }
}

#endif // QFX_ORT_ENABLED
