//===- OrtTest.cpp - The ONNX Runtime client itself works -----------------===//
//
// [ort] tests: ONNX Runtime (test/unit/OrtClient.h) runs PyTorch's own ONNX
// exports of the seed Net and reproduces PyTorch's outputs, tensors of every
// dtype survive the trip, and broken models and inputs are errors. They exist
// only when CMake found the client (QFX_ORT_TESTS, test/ort/CMakeLists.txt).
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

/// A one-node model y = Op(x) over [N, 3] tensors of \p Elem, built with
/// ONNX's types so that the client is tested independently of qfx's
/// exporter.
std::string oneNodeModel(const char *Op, int Elem) {
  onnx::ModelProto M;
  M.set_ir_version(7);
  M.add_opset_import()->set_version(13);
  onnx::GraphProto *G = M.mutable_graph();
  G->set_name(Op);
  onnx::NodeProto *N = G->add_node();
  N->set_op_type(Op);
  N->add_input("x");
  N->add_output("y");
  for (auto [Info, Name] : {std::make_pair(G->add_input(), "x"),
                            std::make_pair(G->add_output(), "y")}) {
    Info->set_name(Name);
    onnx::TypeProto_Tensor *T = Info->mutable_type()->mutable_tensor_type();
    T->set_elem_type(Elem);
    T->mutable_shape()->add_dim()->set_dim_param("N");
    T->mutable_shape()->add_dim()->set_dim_value(3);
  }
  return M.SerializeAsString();
}

std::string reluModel() {
  return oneNodeModel("Relu", onnx::TensorProto::FLOAT);
}

/// A .npy file: magic, format version \p Major.0, the header padded with
/// spaces to a multiple of 64 bytes and ended by '\n', then \p Data.
std::string npyBytes(const std::string &Header, const std::string &Data,
                     int Major = 1) {
  size_t Prefix = Major == 1 ? 10 : 12;
  std::string H = Header;
  while ((Prefix + H.size() + 1) % 64)
    H += ' ';
  H += '\n';
  std::string R = "\x93NUMPY";
  R += char(Major);
  R += char(0);
  for (size_t I = 0; I < Prefix - 8; ++I)
    R += char((H.size() >> (8 * I)) & 0xff);
  return R + H + Data;
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

TEST_CASE("tensors of every dtype qfx's .npy writer supports round-trip "
          "through ONNX Runtime",
          "[ort]") {
  TempDir Dir;
  struct Case {
    DType D;
    int Elem;
    std::vector<double> Values;
  } Cases[] = {
      {DType::U8, onnx::TensorProto::UINT8, {0, 1, 2, 128, 200, 255}},
      {DType::S8, onnx::TensorProto::INT8, {-128, -1, 0, 1, 100, 127}},
      {DType::S32,
       onnx::TensorProto::INT32,
       {-2147483648.0, -1, 0, 1, 65536, 2147483647.0}},
      {DType::S64,
       onnx::TensorProto::INT64,
       {-1e12, -1, 0, 1, 3e12, 4503599627370496.0}},
      {DType::F32, onnx::TensorProto::FLOAT, {-1.5, -0.0, 0, 1e-30, 3e38, 2}},
  };
  for (const Case &C : Cases) {
    INFO(dtypeName(C.D).str());
    std::string Model = Dir.file("identity.onnx");
    REQUIRE_FALSE(errorToString(writeFileAtomically(
                                    Model, oneNodeModel("Identity", C.Elem)))
                      .size());
    Tensor X = Tensor::fromValues<double>(C.D, {2, 3}, C.Values);
    std::vector<Tensor> Out = take(runOrt(Model, {{"x", X}}));
    REQUIRE(Out.size() == 1);
    CHECK(Out[0].identical(X));
  }
}

TEST_CASE("the runner rejects malformed .npy inputs with the reason", "[ort]") {
  TempDir Dir;
  std::string Model = Dir.file("relu.onnx");
  REQUIRE_FALSE(errorToString(writeFileAtomically(Model, reluModel())).size());
  std::string F12(12, '\0'), F8(8, '\0');
  const char *Good =
      "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 3), }";
  struct Case {
    std::string Bytes;
    std::string Message;
  } Cases[] = {
      {"not a numpy file", "not a .npy file (bad magic)"},
      {npyBytes(Good, F12).substr(0, 40), "truncated header"},
      {npyBytes(Good, F12, 4), "unsupported .npy format version 4.0"},
      {npyBytes("{'descr': '<f4', 'fortran_order': False}", F12),
       "malformed header '{'descr': '<f4', 'fortran_order': False}'"},
      {npyBytes("{'descr': '<f4', 'fortran_order': True, 'shape': (1, 3), }",
                F12),
       "Fortran order is not supported (save with C order)"},
      {npyBytes("{'descr': '>f4', 'fortran_order': False, 'shape': (1, 3), }",
                F12),
       "big-endian dtype '>f4' is not supported"},
      {npyBytes("{'descr': '<f2', 'fortran_order': False, 'shape': (1, 3), }",
                F12),
       "unsupported dtype '<f2' (expected one of <f4, <f8, |u1, |i1, <i4, "
       "<i8, |b1)"},
      {npyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (1, x), }",
                F12),
       "malformed shape '(1, x)'"},
      {npyBytes(Good, F8),
       "data is 8 bytes but shape (1, 3) of '<f4' needs 12"},
      {npyBytes(Good, F12 + "extra"),
       "data is 17 bytes but shape (1, 3) of '<f4' needs 12"},
  };
  for (const Case &C : Cases) {
    std::string File = Dir.file("bad.npy");
    REQUIRE_FALSE(errorToString(writeFileAtomically(File, C.Bytes)).size());
    std::string Err =
        errorOf(runOrtRunner(Model, {"--model", Model, "--input", "x=" + File,
                                     "--output-dir", Dir.file("out")}));
    INFO(Err);
    CHECK(llvm::StringRef(Err).endswith("ort-run: error: " + File + ": " +
                                        C.Message));
  }
  // The good header itself is accepted: the cases differ from it only in
  // what they break.
  std::string File = Dir.file("good.npy");
  REQUIRE_FALSE(
      errorToString(writeFileAtomically(File, npyBytes(Good, F12))).size());
  CHECK(errorOf(runOrtRunner(Model, {"--model", Model, "--input", "x=" + File,
                                     "--output-dir", Dir.file("out")})) == "");
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
