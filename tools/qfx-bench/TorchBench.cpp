//===- TorchBench.cpp - PyTorch FX latency for qfx-bench ------------------===//
//
// Commands for pytorch_fx_bench.py --worker (its docstring has the protocol).
//
//===----------------------------------------------------------------------===//

#include "TorchBench.h"

#include "qfx/Support/Error.h"

using namespace qfx;
using namespace qfx::tools;

llvm::Expected<std::vector<std::string>>
TorchBench::load(llvm::StringRef Model) {
  if (!Started) {
    Started = true;
    std::vector<std::string> WorkerArgs = Args;
    WorkerArgs.push_back("--worker");
    if (llvm::Error E = Worker.start(std::move(WorkerArgs)))
      return E;
  }
  auto Reply = Worker.request(
      llvm::json::Object{{"cmd", "load"}, {"model", Model}}, TimeoutS);
  if (!Reply)
    return Reply.takeError();
  std::vector<std::string> Variants;
  if (const llvm::json::Array *A = Reply->getArray("variants"))
    for (const llvm::json::Value &V : *A)
      if (llvm::Optional<llvm::StringRef> S = V.getAsString())
        Variants.push_back(S->str());
  if (Variants.empty())
    return makeError("pytorch_fx_bench.py: load reply without variants");
  return Variants;
}

llvm::Expected<std::vector<double>> TorchBench::run(llvm::StringRef Model,
                                                    llvm::StringRef Variant,
                                                    int Batch, int Threads,
                                                    const bench::Burst &B) {
  return bench::runBurst(Worker,
                         llvm::json::Object{{"model", Model},
                                            {"variant", Variant},
                                            {"batch", Batch},
                                            {"threads", Threads}},
                         B, TimeoutS, "pytorch_fx_bench.py");
}
