//===- BusyLoad.cpp - Competing busy processes and the machine's load -----===//

#include "BusyLoad.h"

#include "qfx/Support/Error.h"

#include "llvm/Support/MemoryBuffer.h"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <string>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace qfx;
using namespace qfx::bench;

std::optional<double> bench::loadAverage() {
  auto Buf = llvm::MemoryBuffer::getFileAsStream("/proc/loadavg");
  if (!Buf)
    return std::nullopt;
  double Load = 0;
  if (llvm::StringRef((*Buf)->getBuffer()).split(' ').first.getAsDouble(Load))
    return std::nullopt;
  return Load;
}

BusyProcesses::~BusyProcesses() { stop(); }

llvm::Error BusyProcesses::start(int Count) {
  pid_t Parent = getpid();
  for (int I = 0; I < Count; ++I) {
    pid_t Pid = fork();
    if (Pid < 0) {
      std::string Why = std::strerror(errno);
      stop();
      return makeError("--busy: cannot start a busy process: " + Why);
    }
    if (Pid == 0) {
      // The child only spins: no allocation, no locks, no return.
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != Parent)
        _exit(0);
      volatile unsigned long Spin = 0;
      for (;;)
        Spin = Spin + 1;
    }
    Pids.push_back(Pid);
  }
  return llvm::Error::success();
}

void BusyProcesses::stop() {
  for (pid_t Pid : Pids)
    kill(Pid, SIGKILL);
  for (pid_t Pid : Pids)
    while (waitpid(Pid, nullptr, 0) < 0 && errno == EINTR) {
    }
  Pids.clear();
}
