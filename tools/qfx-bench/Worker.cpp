//===- Worker.cpp - A persistent benchmark worker process -----------------===//
//
// The worker's stdin and stdout are FIFOs that qfx-bench opens read-write
// before spawning it: opening a FIFO read-write never blocks on Linux, so
// the child's own opens (done while posix_spawn holds the parent) find the
// other end present. Holding both ends also means no EOF and no SIGPIPE
// when the worker dies, so death is detected by reaping it (non-blocking)
// while polling for its reply. Its stderr goes to a file qfx-bench holds
// open too. Once the first reply proves the worker opened all three, their
// names and folder are removed: nothing is left on disk even if qfx-bench
// is killed later. If qfx-bench dies, the worker's stdin ends and it exits.
//
//===----------------------------------------------------------------------===//

#include "Worker.h"

#include "qfx/Support/Error.h"

#include "llvm/ADT/Optional.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/raw_ostream.h"

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

using namespace qfx;
using namespace qfx::bench;

namespace {

/// The last non-empty line of \p Text.
std::string lastLine(llvm::StringRef Text) {
  llvm::SmallVector<llvm::StringRef, 16> Lines;
  Text.split(Lines, '\n', -1, false);
  for (auto It = Lines.rbegin(); It != Lines.rend(); ++It)
    if (!It->trim().empty())
      return It->trim().str();
  return "";
}

/// \p Text shortened for a message.
std::string excerpt(llvm::StringRef Text) {
  Text = Text.trim();
  return Text.size() <= 80 ? Text.str() : Text.take_front(77).str() + "...";
}

} // namespace

WorkerProcess::~WorkerProcess() { stop(); }

llvm::Error WorkerProcess::start(std::vector<std::string> Args) {
  assert(!Running && Dir.empty() && "worker started twice");
  if (!llvm::StringRef(Args[0]).contains('/')) {
    llvm::ErrorOr<std::string> Found = llvm::sys::findProgramByName(Args[0]);
    if (!Found)
      return breakWith("'" + Args[0] + "' not found on PATH");
    Args[0] = *Found;
  }
  if (std::error_code EC =
          llvm::sys::fs::createUniqueDirectory("qfx-bench-worker", Dir))
    return breakWith("cannot create a temporary folder: " + EC.message());
  (InPath = Dir) += "/in";
  (OutPath = Dir) += "/out";
  (ErrPath = Dir) += "/err";
  if (mkfifo(InPath.c_str(), 0600) != 0 || mkfifo(OutPath.c_str(), 0600) != 0)
    return breakWith(std::string("cannot create a FIFO: ") +
                     std::strerror(errno));
  InFd = open(InPath.c_str(), O_RDWR | O_CLOEXEC);
  OutFd = open(OutPath.c_str(), O_RDWR | O_CLOEXEC | O_NONBLOCK);
  ErrFd = open(ErrPath.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (InFd < 0 || OutFd < 0 || ErrFd < 0)
    return breakWith(std::string("cannot open its files: ") +
                     std::strerror(errno));
  std::vector<llvm::StringRef> Refs(Args.begin(), Args.end());
  llvm::Optional<llvm::StringRef> Redirects[] = {llvm::StringRef(InPath),
                                                 llvm::StringRef(OutPath),
                                                 llvm::StringRef(ErrPath)};
  std::string Msg;
  bool Failed = false;
  PI = llvm::sys::ExecuteNoWait(Args[0], Refs, llvm::None, Redirects, 0, &Msg,
                                &Failed);
  if (Failed || PI.Pid <= 0)
    return breakWith("cannot run " + Args[0] + ": " + Msg);
  Running = true;
  return llvm::Error::success();
}

llvm::Error WorkerProcess::breakWith(std::string Why) {
  if (Broken.empty()) {
    Broken = Name + ": " + Why;
    // Said at once: the table, which says it too, may be minutes away.
    llvm::errs() << "qfx-bench: warning: " << Broken
                 << "; its columns are left empty\n";
  }
  stop();
  return makeError(Broken);
}

std::string WorkerProcess::stderrTail() const {
  struct stat St;
  if (ErrFd < 0 || fstat(ErrFd, &St) != 0)
    return "";
  // The last line is in the last few kB (a Python traceback's exception).
  off_t From = St.st_size > 4096 ? St.st_size - 4096 : 0;
  std::string Text(size_t(St.st_size - From), '\0');
  ssize_t N = pread(ErrFd, Text.data(), Text.size(), From);
  Text.resize(N > 0 ? size_t(N) : 0);
  return lastLine(Text);
}

void WorkerProcess::removeFiles() {
  for (llvm::SmallString<128> *P : {&InPath, &OutPath, &ErrPath}) {
    // unlink: llvm::sys::fs::remove refuses FIFOs.
    if (!P->empty())
      unlink(P->c_str());
    P->clear();
  }
  if (!Dir.empty())
    llvm::sys::fs::remove(Dir);
  Dir.clear();
}

std::string WorkerProcess::exitedReason() {
  if (!Running)
    return "not running";
  std::string Msg;
  llvm::sys::ProcessInfo Done = llvm::sys::Wait(PI, 0, false, &Msg);
  if (Done.Pid == 0)
    return "";
  Running = false;
  std::string Tail = stderrTail();
  std::string How = Done.ReturnCode >= 0
                        ? "exited with code " + std::to_string(Done.ReturnCode)
                        : "died (" + (Msg.empty() ? "killed" : Msg) + ")";
  return How + (Tail.empty() ? "" : ": " + Tail);
}

llvm::Expected<std::string> WorkerProcess::readLine(double TimeoutS) {
  using Clock = std::chrono::steady_clock;
  auto Deadline = Clock::now() + std::chrono::duration<double>(TimeoutS);
  for (;;) {
    size_t NL = Pending.find('\n');
    if (NL != std::string::npos) {
      std::string Line = Pending.substr(0, NL);
      Pending.erase(0, NL + 1);
      return Line;
    }
    char Buf[4096];
    ssize_t N = read(OutFd, Buf, sizeof(Buf));
    if (N > 0) {
      Pending.append(Buf, size_t(N));
      continue;
    }
    if (N < 0 && errno != EAGAIN && errno != EINTR)
      return breakWith(std::string("cannot read its reply: ") +
                       std::strerror(errno));
    // Nothing to read: a reply written just before exiting was read above.
    std::string Exit = exitedReason();
    if (!Exit.empty())
      return breakWith(Exit + (Pending.empty() ? ""
                                               : " after printing '" +
                                                     excerpt(Pending) + "'"));
    if (Clock::now() >= Deadline)
      return breakWith("no reply within " + std::to_string(int(TimeoutS)) +
                       " s (--worker-timeout)");
    pollfd P = {OutFd, POLLIN, 0};
    poll(&P, 1, 100);
  }
}

llvm::Expected<llvm::json::Object>
WorkerProcess::request(llvm::json::Object Command, double TimeoutS) {
  if (!Broken.empty())
    return makeError(Broken);
  std::string Line;
  llvm::raw_string_ostream(Line) << llvm::json::Value(std::move(Command));
  Line += '\n';
  // The command is far smaller than a pipe's buffer: one write.
  if (write(InFd, Line.data(), Line.size()) != ssize_t(Line.size()))
    return breakWith(std::string("cannot send a command: ") +
                     std::strerror(errno));
  llvm::Expected<std::string> Reply = readLine(TimeoutS);
  if (!Reply)
    return Reply.takeError();
  removeFiles(); // the worker has them open now
  llvm::Expected<llvm::json::Value> V = llvm::json::parse(*Reply);
  if (!V || !V->getAsObject()) {
    if (!V)
      llvm::consumeError(V.takeError());
    return breakWith("printed '" + excerpt(*Reply) +
                     "' instead of a JSON reply");
  }
  llvm::json::Object Obj = std::move(*V->getAsObject());
  if (llvm::Optional<llvm::StringRef> Err = Obj.getString("error"))
    return makeError(*Err);
  return Obj;
}

void WorkerProcess::stop() {
  if (Running) {
    // A polite quit first (the worker releases its sessions), then SIGKILL.
    const char Quit[] = "{\"cmd\":\"quit\"}\n";
    if (write(InFd, Quit, sizeof(Quit) - 1) < 0) {
      // Killed below.
    }
    for (int I = 0; I < 20 && exitedReason().empty(); ++I)
      usleep(50 * 1000);
    if (Running) {
      kill(PI.Pid, SIGKILL);
      llvm::sys::Wait(PI, 0, true);
      Running = false;
    }
  }
  for (int *Fd : {&InFd, &OutFd, &ErrFd})
    if (*Fd >= 0) {
      close(*Fd);
      *Fd = -1;
    }
  removeFiles();
}

llvm::Expected<std::vector<double>>
bench::runBurst(WorkerProcess &W, llvm::json::Object Command, const Burst &B,
                double TimeoutS, llvm::StringRef Worker) {
  Command["cmd"] = "run";
  Command["n"] = B.N;
  Command["warmup"] = B.Warmup;
  Command["max_ms"] = B.MaxMs;
  auto Reply = W.request(std::move(Command), TimeoutS);
  if (!Reply)
    return Reply.takeError();
  const llvm::json::Array *Runs = Reply->getArray("runs_ms");
  std::vector<double> Ms;
  if (Runs)
    for (const llvm::json::Value &V : *Runs)
      if (llvm::Optional<double> D = V.getAsNumber())
        Ms.push_back(*D);
  if (!Runs || Ms.empty() || Ms.size() != Runs->size())
    return makeError(Worker + ": reply without runs_ms");
  return Ms;
}
