//===- Worker.h - A persistent benchmark worker process ---------*- C++ -*-===//
//
// qfx-bench times PyTorch FX and ONNX Runtime in long-lived worker processes
// (pytorch_fx_bench.py --worker, ort-run.mjs --worker) so that their bursts
// interleave with qfx's in one run. The protocol: one JSON object per line
// on the worker's stdin, one JSON object per line in reply on its stdout; a
// reply with an "error" member is a failed command (the worker stays
// usable). Every read has a timeout, and a worker that dies, hangs or
// prints anything but JSON breaks for good with the reason.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_TOOLS_QFXBENCH_WORKER_H
#define QFX_TOOLS_QFXBENCH_WORKER_H

#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/Program.h"

#include <string>
#include <vector>

namespace qfx {
namespace bench {

/// One worker process, spawned without a shell; its stdin and stdout are
/// FIFOs in a private temporary folder, its stderr a file there (the last
/// line of which explains a death), all removed once the worker has them
/// open. The process is killed, if still running, on destruction.
class WorkerProcess {
public:
  /// \p Name names the worker in messages ("PyTorch FX worker").
  explicit WorkerProcess(std::string Name) : Name(std::move(Name)) {}
  ~WorkerProcess();
  WorkerProcess(const WorkerProcess &) = delete;
  WorkerProcess &operator=(const WorkerProcess &) = delete;

  /// Starts \p Args[0] (a path, or a name looked up on PATH) with \p Args.
  llvm::Error start(std::vector<std::string> Args);

  /// Sends \p Command and waits at most \p TimeoutS seconds for the reply.
  /// A reply with an "error" member becomes that error; a broken worker
  /// (dead, hung, garbage) gives the reason it broke, now and on every later
  /// call.
  llvm::Expected<llvm::json::Object> request(llvm::json::Object Command,
                                             double TimeoutS);

  /// Why the worker is unusable, "" while it works.
  const std::string &brokenReason() const { return Broken; }

  /// Asks the worker to quit, waits briefly, kills it if need be, and
  /// removes its files. Idempotent.
  void stop();

private:
  llvm::Error breakWith(std::string Why);
  llvm::Expected<std::string> readLine(double TimeoutS);
  /// Reaps the worker if it has exited; its exit described, or "".
  std::string exitedReason();
  std::string stderrTail() const;
  void removeFiles();

  std::string Name;
  std::string Broken;
  llvm::SmallString<128> Dir, InPath, OutPath, ErrPath;
  int InFd = -1, OutFd = -1, ErrFd = -1;
  llvm::sys::ProcessInfo PI;
  bool Running = false;
  std::string Pending; ///< Read bytes after the last complete line.
};

/// One engine's turn in a round: \p Warmup untimed runs, then up to \p N
/// timed ones, stopping early once \p MaxMs have passed (after one timed
/// run; 0: no limit) so that a slow engine does not stretch the round.
struct Burst {
  int N = 1;
  int Warmup = 1;
  double MaxMs = 0;
};

/// Sends \p W the run command \p Command (its engine's fields) with \p B's
/// burst fields and returns the reply's "runs_ms"; \p Who names the worker
/// script in errors.
llvm::Expected<std::vector<double>> runBurst(WorkerProcess &W,
                                             llvm::json::Object Command,
                                             const Burst &B, double TimeoutS,
                                             llvm::StringRef Who);

} // namespace bench
} // namespace qfx

#endif // QFX_TOOLS_QFXBENCH_WORKER_H
