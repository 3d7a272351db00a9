//===- OrtBench.cpp - ONNX Runtime latency for qfx-bench ------------------===//
//
// Commands for ort-run.mjs --worker (its header comment has the protocol).
//
//===----------------------------------------------------------------------===//

#include "OrtBench.h"

using namespace qfx;
using namespace qfx::tools;

OrtBench::OrtBench(std::string Node, std::string Runner, std::string OrtDir,
                   double TimeoutS)
    : Node(std::move(Node)), Runner(std::move(Runner)),
      OrtDir(std::move(OrtDir)), TimeoutS(TimeoutS) {}

llvm::Error OrtBench::ensureStarted() {
  if (Started)
    return llvm::Error::success();
  Started = true;
  std::vector<std::string> Args = {Node, Runner, "--worker"};
  if (!OrtDir.empty()) {
    Args.push_back("--ort-dir");
    Args.push_back(OrtDir);
  }
  return Worker.start(std::move(Args));
}

llvm::Error OrtBench::load(llvm::StringRef Model, int Threads) {
  if (llvm::Error E = ensureStarted())
    return E;
  auto Reply = Worker.request(llvm::json::Object{{"cmd", "load"},
                                                 {"model", Model},
                                                 {"threads", Threads}},
                              TimeoutS);
  return Reply ? llvm::Error::success() : Reply.takeError();
}

llvm::Expected<std::vector<double>> OrtBench::run(llvm::StringRef Model,
                                                  int Threads,
                                                  llvm::StringRef InputNpy,
                                                  const bench::Burst &B) {
  return bench::runBurst(Worker,
                         llvm::json::Object{{"model", Model},
                                            {"threads", Threads},
                                            {"input", InputNpy}},
                         B, TimeoutS, "ort-run.mjs");
}
