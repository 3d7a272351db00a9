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

const std::string OnnxDir = QFX_TEST_DATA_DIR "/onnx/";

/// max |A - B| / max |B|: the error relative to the output's scale, so that
/// logits near zero do not demand more than the largest ones.
double relativeError(const Tensor &A, const Tensor &B) {
  REQUIRE(A.dtype() == DType::F32);
  REQUIRE(B.dtype() == DType::F32);
  REQUIRE(A.shape() == B.shape());
  double MaxDiff = 0, MaxRef = 0;
  for (int64_t I = 0; I < B.numElements(); ++I) {
    MaxDiff = std::max(
        MaxDiff, std::fabs(A.data<float>()[I] - double(B.data<float>()[I])));
    MaxRef = std::max(MaxRef, std::fabs(double(B.data<float>()[I])));
  }
  REQUIRE(MaxRef > 0);
  return MaxDiff / MaxRef;
}

/// Rows [Begin, End) of \p T along its first axis.
Tensor rows(const Tensor &T, int64_t Begin, int64_t End) {
  std::vector<int64_t> Shape(T.shape().begin(), T.shape().end());
  int64_t RowSize = T.numElements() / Shape[0];
  Shape[0] = End - Begin;
  Tensor R(T.dtype(), Shape);
  std::copy_n(T.data<float>() + Begin * RowSize, (End - Begin) * RowSize,
              R.data<float>());
  return R;
}

} // namespace

TEST_CASE("ONNX Runtime reproduces PyTorch's outputs on PyTorch's ONNX "
          "exports of Net, at batch 4 and batch 1",
          "[ort]") {
  Tensor Input = take(readNpy(OnnxDir + "net_input.npy"));
  Tensor Expected = take(readNpy(OnnxDir + "net_output.npy"));
  REQUIRE(Input.shape() == llvm::ArrayRef<int64_t>({4, 1, 28, 28}));
  for (const char *Name :
       {"net_opset13.onnx", "net_opset17.onnx", "net_view_opset13.onnx",
        "net_flatten_opset13.onnx"}) {
    INFO(Name);
    std::vector<Tensor> Out = take(runOrt(OnnxDir + Name, {{"input", Input}}));
    REQUIRE(Out.size() == 1);
    CHECK(relativeError(Out[0], Expected) <= 1e-5);
    // The batch axis is dynamic: one image gives the first row.
    std::vector<Tensor> One =
        take(runOrt(OnnxDir + Name, {{"input", rows(Input, 0, 1)}}));
    REQUIRE(One.size() == 1);
    CHECK(relativeError(One[0], rows(Expected, 0, 1)) <= 1e-5);
  }
}

TEST_CASE("the view golden carries the Shape, Gather, Unsqueeze, Concat, "
          "Reshape subgraph the importer must fold",
          "[ort]") {
  std::vector<OrtNodeType> Types =
      take(readOnnxNodeTypes(OnnxDir + "net_view_opset13.onnx"));
  std::vector<std::string> Ops;
  for (const OrtNodeType &T : Types)
    if (T.OpType != "Constant")
      Ops.push_back(T.str());
  CHECK(Ops == std::vector<std::string>{"Conv", "Relu", "MaxPool", "Conv",
                                        "Relu", "MaxPool", "Shape", "Gather",
                                        "Unsqueeze", "Concat", "Reshape",
                                        "Gemm"});
}

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

TEST_CASE("runOrt kills a client that does not finish and fails in time",
          "[ort]") {
  TempDir Dir;
  std::string Model = Dir.file("relu.onnx");
  REQUIRE_FALSE(errorToString(writeFileAtomically(Model, reluModel())).size());
  // A stand-in for the runner that never exits.
  std::string Hang = Dir.file("hang.mjs");
  REQUIRE_FALSE(
      errorToString(writeFileAtomically(Hang, "setInterval(() => {}, 1000);\n"))
          .size());
  OrtRunOptions Opts;
  Opts.Runner = Hang;
  Opts.TimeoutSeconds = 1;
  Tensor X = Tensor::fromFloats({1, 3}, {1, 2, 3});
  std::string Err = errorOf(runOrt(Model, {{"x", X}}, Opts));
  CHECK(llvm::StringRef(Err).contains("ONNX Runtime client did not finish"));
  CHECK(llvm::StringRef(Err).contains("(timeout 1 s)"));
}

TEST_CASE("runOrt reports a missing node executable", "[ort]") {
  TempDir Dir;
  OrtRunOptions Opts;
  Opts.NodePath = Dir.file("no-such-node");
  Tensor X = Tensor::fromFloats({1, 3}, {1, 2, 3});
  std::string Err = errorOf(runOrt(Dir.file("m.onnx"), {{"x", X}}, Opts));
  CHECK(llvm::StringRef(Err).contains("cannot run " + Opts.NodePath));
}

#endif // QFX_ORT_ENABLED
