//===- BusyLoad.h - Competing busy processes and the machine's load -------===//
//
// qfx-bench's view of the rest of the machine: the load average it ran at,
// and competing processes that spin for the whole run (--busy), so that
// latencies under load are measured rather than guessed.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_TOOLS_QFXBENCH_BUSYLOAD_H
#define QFX_TOOLS_QFXBENCH_BUSYLOAD_H

#include "llvm/Support/Error.h"

#include <optional>
#include <sys/types.h>
#include <vector>

namespace qfx {
namespace bench {

/// The 1-minute load average (/proc/loadavg), if the system reports it.
std::optional<double> loadAverage();

/// Child processes that each spin on one core until the object is
/// destroyed (or qfx-bench dies: they get SIGKILL with their parent).
class BusyProcesses {
public:
  BusyProcesses() = default;
  ~BusyProcesses();
  BusyProcesses(const BusyProcesses &) = delete;
  BusyProcesses &operator=(const BusyProcesses &) = delete;

  /// Starts \p Count spinning processes.
  llvm::Error start(int Count);
  /// Kills and reaps every process started.
  void stop();
  size_t size() const { return Pids.size(); }

private:
  std::vector<pid_t> Pids;
};

} // namespace bench
} // namespace qfx

#endif // QFX_TOOLS_QFXBENCH_BUSYLOAD_H
