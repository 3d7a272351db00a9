//===- TorchBench.h - PyTorch FX latency for qfx-bench ----------*- C++ -*-===//
//
// qfx-bench's PyTorch columns: pytorch_fx_bench.py --worker converts each
// model once and times bursts of runs on request, interleaved with qfx's and
// ONNX Runtime's.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_TOOLS_QFX_BENCH_TORCHBENCH_H
#define QFX_TOOLS_QFX_BENCH_TORCHBENCH_H

#include "Worker.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <string>
#include <vector>

namespace qfx {
namespace tools {

/// The PyTorch FX worker, started on first use.
class TorchBench {
public:
  /// \p Args: the python interpreter, the script and its extra flags;
  /// \p TimeoutS bounds every wait for a reply.
  TorchBench(std::vector<std::string> Args, double TimeoutS)
      : Args(std::move(Args)), TimeoutS(TimeoutS) {}

  /// Prepares and converts \p Model once; the variants it can time ("fp32",
  /// "int8", and for some models "int8_dynamic").
  llvm::Expected<std::vector<std::string>> load(llvm::StringRef Model);

  /// Burst \p B of \p Model's \p Variant on a random input of batch
  /// \p Batch with \p Threads threads; the timed runs in ms.
  llvm::Expected<std::vector<double>> run(llvm::StringRef Model,
                                          llvm::StringRef Variant, int Batch,
                                          int Threads, const bench::Burst &B);

private:
  std::vector<std::string> Args;
  double TimeoutS;
  bench::WorkerProcess Worker{"PyTorch FX worker (pytorch_fx_bench.py)"};
  bool Started = false;
};

} // namespace tools
} // namespace qfx

#endif // QFX_TOOLS_QFX_BENCH_TORCHBENCH_H
