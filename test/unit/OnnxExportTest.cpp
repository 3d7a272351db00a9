//===- OnnxExportTest.cpp - ONNX and QDQ ONNX export ----------------------===//

#include "TestUtil.h"

#include "qfx/IR/GraphModule.h"
#include "qfx/IR/Parser.h"
#include "qfx/Models/Zoo.h"
#include "qfx/Onnx/Export.h"
#include "qfx/Pipeline/QuantizeFx.h"
#include "qfx/Quant/QConfigMapping.h"
#include "qfx/Runtime/Interpreter.h"
#include "qfx/Support/Npy.h"
#include "qfx/Trace/SymbolicTrace.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include <catch2/catch.hpp>

#include <cstdlib>
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

std::unique_ptr<GraphModule> tracedFloat(const ZooCase &Z) {
  std::shared_ptr<nn::Module> M = Z.Make();
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
ObservedModule observed(const ZooCase &Z, bool QAT) {
  std::shared_ptr<nn::Module> M = Z.Make();
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
  const char *Dynamic = R"(graph_module M {
  module fc : QuantizedLinearDynamic {reduce_range = true} {
    param weight : s8[2,4]<axis=0, scales=[0.5, 0.25], zero_points=[0, 0]> = dense<[1, 2, 3, 4, 5, 6, 7, 8]>
  }
  graph {
    %x : f32[1,4] = placeholder[x]
    %fc : f32[1,2] = call_module[fc](%x)
    %output = output[output](%fc)
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
      {Dynamic,
       {},
       "node 'fc' (call_module[fc]): op 'quantized_linear_dynamic' has no "
       "ONNX form: dynamic quantization (DynamicQuantizeLinear + "
       "MatMulInteger) is not exported yet; qfx's reduce_range activations "
       "differ from ORT's full-range DynamicQuantizeLinear"},
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
  llvm::SmallString<128> Dir;
  REQUIRE(!llvm::sys::fs::createUniqueDirectory("qfx-onnx-export", Dir));
  std::string Path = (Dir + "/net.onnx").str();
  std::unique_ptr<GraphModule> GM = tracedFloat(zooCases()[0]);
  requireOk(exportOnnx(*GM, Path));
  auto Buf = llvm::MemoryBuffer::getFile(Path);
  REQUIRE(Buf);
  CHECK((*Buf)->getBuffer() == take(exportOnnxBuffer(*GM)));
  OnnxExportOptions Bad;
  Bad.Opset = 99;
  std::string BadPath = (Dir + "/bad.onnx").str();
  CHECK(errorToString(exportOnnx(*GM, BadPath, Bad)) ==
        BadPath + ": opset 99 is not supported for export (13..17)");
  CHECK_FALSE(llvm::sys::fs::exists(BadPath));
  llvm::sys::fs::remove(Path);
  llvm::sys::fs::remove(Dir);
}

//===----------------------------------------------------------------------===//
// Development dump (hidden): models, inputs and qfx's outputs for a manual
// ONNX Runtime run; QFX_ONNX_DUMP names the directory.
//===----------------------------------------------------------------------===//

TEST_CASE("onnx export: dump models for a manual ORT run", "[.dump]") {
  const char *Dir = std::getenv("QFX_ONNX_DUMP");
  REQUIRE(Dir);
  for (const ZooCase &Z : zooCases()) {
    std::string Base = std::string(Dir) + "/" + Z.Name;
    Tensor X = randomInput(withBatch(Z.Input, 2), 5);
    requireOk(writeNpy(Base + ".x.npy", X));
    std::unique_ptr<GraphModule> GM = tracedFloat(Z);
    requireOk(exportOnnx(*GM, Base + ".float.onnx"));
    Interpreter I(*GM);
    requireOk(writeNpy(Base + ".float.y.npy", take(I.run({X}))[0]));
    for (bool QAT : {false, true}) {
      ObservedModule Obs = observed(Z, QAT);
      QuantizedModule Q = take(convert_fx(Obs.graphModule()));
      std::string Kind = QAT ? ".qat" : ".qdq";
      requireOk(exportOnnx(QAT ? Obs.graphModule() : Q.graphModule(),
                           Base + Kind + ".onnx"));
      requireOk(writeNpy(Base + Kind + ".y.npy", take(Q({X}))[0]));
      const Node *Out = Q.graphModule().graph().outputNode();
      const Node *Deq = Out->arg(0).getNode();
      double Step = Deq->arg(0).getNode()->type()->Quant.Scale;
      llvm::outs() << Z.Name << Kind << " step " << Step << "\n";
    }
  }
}
