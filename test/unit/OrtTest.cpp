//===- OrtTest.cpp - The ONNX Runtime client itself works -----------------===//
//
// [ort] tests: ONNX Runtime (test/unit/OrtClient.h) runs PyTorch's own ONNX
// exports of the seed Net and reproduces PyTorch's outputs, and a broken
// model is an error. They exist only when CMake found the client
// (QFX_ORT_TESTS, test/ort/CMakeLists.txt).
//
//===----------------------------------------------------------------------===//

#ifdef QFX_ORT_ENABLED

#include "OrtClient.h"
#include "TestUtil.h"

#include "qfx/Support/FileIO.h"
#include "qfx/Support/Npy.h"

#include "onnx/onnx_pb.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

using namespace qfx;
using namespace qfx::testutil;

namespace {

/// A one-node model y = Relu(x) over float [N, 3], built with ONNX's types so
/// that the client is tested independently of qfx's exporter.
std::string reluModel() {
  onnx::ModelProto M;
  M.set_ir_version(7);
  M.add_opset_import()->set_version(13);
  onnx::GraphProto *G = M.mutable_graph();
  G->set_name("relu");
  onnx::NodeProto *N = G->add_node();
  N->set_op_type("Relu");
  N->add_input("x");
  N->add_output("y");
  for (auto [Info, Name] : {std::make_pair(G->add_input(), "x"),
                            std::make_pair(G->add_output(), "y")}) {
    Info->set_name(Name);
    onnx::TypeProto_Tensor *T = Info->mutable_type()->mutable_tensor_type();
    T->set_elem_type(onnx::TensorProto::FLOAT);
    T->mutable_shape()->add_dim()->set_dim_param("N");
    T->mutable_shape()->add_dim()->set_dim_value(3);
  }
  return M.SerializeAsString();
}

} // namespace

TEST_CASE("ONNX Runtime runs a one-node Relu model and returns its output",
          "[ort]") {
  TempDir Dir;
  std::string Model = Dir.file("relu.onnx");
  REQUIRE_FALSE(errorToString(writeFileAtomically(Model, reluModel())).size());
  Tensor X = Tensor::fromFloats({2, 3}, {-1, 2, -3, 4, -5, 6});
  OrtRunOptions Opts;
  Opts.WantOptimizedOps = true;
  OrtResult R = take(runOrtFull(Model, {{"x", X}}, Opts));
  REQUIRE(R.Outputs.size() == 1);
  CHECK(R.OutputNames[0] == "y");
  Tensor Expected = Tensor::fromFloats({2, 3}, {0, 2, 0, 4, 0, 6});
  CHECK(R.Outputs[0].identical(Expected));
  REQUIRE(R.OptimizedOps.size() == 1);
  CHECK(R.OptimizedOps[0].str() == "Relu");
}

TEST_CASE("a malformed model makes runOrt return an error", "[ort]") {
  TempDir Dir;
  Tensor X = Tensor::fromFloats({1, 3}, {1, 2, 3});
  struct Case {
    const char *Name;
    std::string Bytes;
    const char *Message;
  };
  std::string Truncated = reluModel();
  Truncated.resize(Truncated.size() / 2);
  std::vector<Case> Cases = {
      {"garbage.onnx", "this is not a protobuf\n",
       "ONNX Runtime cannot load the model"},
      {"truncated.onnx", Truncated, "ONNX Runtime cannot load the model"},
      {"empty.onnx", "", "ONNX Runtime cannot load the model"},
  };
  for (const Case &C : Cases) {
    std::string Model = Dir.file(C.Name);
    REQUIRE_FALSE(errorToString(writeFileAtomically(Model, C.Bytes)).size());
    std::string Err = errorOf(runOrt(Model, {{"x", X}}));
    INFO(Err);
    CHECK(llvm::StringRef(Err).contains(C.Message));
    CHECK(llvm::StringRef(Err).contains(C.Name));
  }
}

TEST_CASE("runOrt rejects inputs the model does not have", "[ort]") {
  TempDir Dir;
  std::string Model = Dir.file("relu.onnx");
  REQUIRE_FALSE(errorToString(writeFileAtomically(Model, reluModel())).size());
  Tensor X = Tensor::fromFloats({1, 3}, {1, 2, 3});
  CHECK(llvm::StringRef(errorOf(runOrt(Model, {{"z", X}})))
            .contains("the model has no input 'z' (inputs: x)"));
  CHECK(llvm::StringRef(errorOf(runOrt(Model, {})))
            .contains("missing --input for model input(s): x"));
}

#endif // QFX_ORT_ENABLED
