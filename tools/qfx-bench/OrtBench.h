//===- OrtBench.h - ONNX Runtime latency for qfx-bench ----------*- C++ -*-===//
//
// qfx-bench's optional ONNX Runtime columns: .onnx files are timed by
// test/ort/ort-run.mjs --worker (npm onnxruntime-node under Node.js,
// installed by scripts/install-ort.sh), one process for the whole run, in
// bursts that interleave with qfx's and PyTorch's.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_TOOLS_QFX_BENCH_ORTBENCH_H
#define QFX_TOOLS_QFX_BENCH_ORTBENCH_H

#include "Worker.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <string>
#include <vector>

namespace qfx {
namespace tools {

/// The ONNX Runtime worker, started on first use.
class OrtBench {
public:
  /// \p Node: the node executable; \p Runner: ort-run.mjs; \p OrtDir: the
  /// install folder ("" lets the runner use $QFX_ORT_DIR or the repository's
  /// .deps/ort); \p TimeoutS bounds every wait for a reply.
  OrtBench(std::string Node, std::string Runner, std::string OrtDir,
           double TimeoutS);

  /// Creates the session of \p Model (one input) for \p Threads intra-op
  /// threads, once.
  llvm::Error load(llvm::StringRef Model, int Threads);

  /// Burst \p B of \p Model's session for \p Threads on the tensor in
  /// \p InputNpy; the timed runs in ms.
  llvm::Expected<std::vector<double>> run(llvm::StringRef Model, int Threads,
                                          llvm::StringRef InputNpy,
                                          const bench::Burst &B);

private:
  llvm::Error ensureStarted();

  std::string Node, Runner, OrtDir;
  double TimeoutS;
  bench::WorkerProcess Worker{"ONNX Runtime worker (ort-run.mjs)"};
  bool Started = false;
};

} // namespace tools
} // namespace qfx

#endif // QFX_TOOLS_QFX_BENCH_ORTBENCH_H
