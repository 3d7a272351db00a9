//===- OrtClient.h - Runs ONNX models with ONNX Runtime in tests -*- C++
//-*-===//
//
// The [ort] unit tests check qfx's ONNX files with a real client: ONNX
// Runtime (npm onnxruntime-node, installed by scripts/install-ort.sh) driven
// by test/ort/ort-run.mjs under Node.js. Inputs and outputs travel as .npy
// files through a scratch folder under the build folder.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_TEST_UNIT_ORTCLIENT_H
#define QFX_TEST_UNIT_ORTCLIENT_H

#include "qfx/Support/Tensor.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <string>
#include <utility>
#include <vector>

namespace qfx {
namespace testutil {

/// True when the build found Node.js and onnxruntime-node (QFX_ORT_TESTS);
/// the [ort] tests exist only then.
bool ortAvailable();

/// How runOrt runs ONNX Runtime. The paths default to what CMake found
/// (test/ort/CMakeLists.txt).
struct OrtRunOptions {
  /// intra-op threads; 0 lets ONNX Runtime choose.
  unsigned Threads = 1;
  /// Also save ONNX Runtime's optimized graph (level 'all') and return its
  /// node types in OrtResult::OptimizedOps.
  bool WantOptimizedOps = false;
  /// The client is killed (and runOrt fails) after this long.
  unsigned TimeoutSeconds = 120;
  std::string NodePath;
  /// The folder holding node_modules/onnxruntime-node.
  std::string OrtDir;
  /// test/ort/ort-run.mjs.
  std::string Runner;
  /// Scratch folders are made (and removed) under this folder.
  std::string WorkDir;

  OrtRunOptions();
};

/// A node of ONNX Runtime's optimized graph: its operator and domain ("" for
/// the default ONNX domain, e.g. "com.microsoft" for ORT's fused kernels).
struct OrtNodeType {
  std::string Domain;
  std::string OpType;
  /// "Conv", or "com.microsoft:QLinearConv" outside the default domain.
  std::string str() const;
};

/// What one ONNX Runtime run produced.
struct OrtResult {
  /// The model's outputs in the model's output order.
  std::vector<Tensor> Outputs;
  std::vector<std::string> OutputNames;
  /// The optimized graph's nodes in graph order (only with WantOptimizedOps).
  std::vector<OrtNodeType> OptimizedOps;
};

/// Runs \p Model with ONNX Runtime on \p Inputs (graph input name, value).
/// Fails with the client's message when ONNX Runtime rejects the model or the
/// inputs, when an output cannot be read back, or after the timeout.
llvm::Expected<OrtResult>
runOrtFull(llvm::StringRef Model,
           llvm::ArrayRef<std::pair<std::string, Tensor>> Inputs,
           const OrtRunOptions &Opts = OrtRunOptions());

/// runOrtFull's outputs only.
llvm::Expected<std::vector<Tensor>>
runOrt(llvm::StringRef Model,
       llvm::ArrayRef<std::pair<std::string, Tensor>> Inputs,
       const OrtRunOptions &Opts = OrtRunOptions());

/// The node types of the ONNX model in \p Path, in graph order (subgraphs
/// not included).
llvm::Expected<std::vector<OrtNodeType>>
readOnnxNodeTypes(llvm::StringRef Path);

} // namespace testutil
} // namespace qfx

#endif // QFX_TEST_UNIT_ORTCLIENT_H
