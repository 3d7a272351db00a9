//===- OrtBench.h - ONNX Runtime latency for qfx-bench ----------*- C++ -*-===//
//
// qfx-bench's optional ONNX Runtime columns: a given .onnx file is timed by
// test/ort/ort-run.mjs --bench (npm onnxruntime-node under Node.js, installed
// by scripts/install-ort.sh) on the same input and thread count as qfx.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_TOOLS_QFX_BENCH_ORTBENCH_H
#define QFX_TOOLS_QFX_BENCH_ORTBENCH_H

#include "qfx/Support/Tensor.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <map>
#include <string>

namespace qfx {
namespace tools {

/// Runs ort-run.mjs; remembers each model's input name.
class OrtBench {
public:
  /// \p Node: the node executable; \p Runner: ort-run.mjs; \p OrtDir: the
  /// install folder ("" lets the runner use $QFX_ORT_DIR or the repository's
  /// .deps/ort).
  OrtBench(std::string Node, std::string Runner, std::string OrtDir)
      : Node(std::move(Node)), Runner(std::move(Runner)),
        OrtDir(std::move(OrtDir)) {}

  /// The median latency in ms of ONNX Runtime running \p Model (one input)
  /// on \p X with \p Threads intra-op threads over \p Iterations timed runs
  /// (after warm-up runs). The runner's message on failure.
  llvm::Expected<double> medianMs(llvm::StringRef Model, const Tensor &X,
                                  int Threads, int Iterations);

private:
  /// Runs the runner with \p Args; its stdout, or its stderr as the error.
  llvm::Expected<std::string> runRunner(std::vector<std::string> Args);
  llvm::Expected<std::string> inputName(llvm::StringRef Model);

  std::string Node, Runner, OrtDir;
  std::map<std::string, std::string> InputNames;
};

} // namespace tools
} // namespace qfx

#endif // QFX_TOOLS_QFX_BENCH_ORTBENCH_H
