//===- Pass.cpp - The pass registry and the pass manager ------------------===//

#include "qfx/Transforms/Pass.h"

#include "qfx/IR/GraphModule.h"
#include "qfx/IR/Printer.h"
#include "qfx/IR/Verifier.h"
#include "qfx/Support/Error.h"

// One include per registered pass.
#include "qfx/Transforms/Convert.h"
#include "qfx/Transforms/DeadCodeElimination.h"
#include "qfx/Transforms/FoldQdq.h"
#include "qfx/Transforms/Fuse.h"
#include "qfx/Transforms/Prepare.h"
#include "qfx/Transforms/PrepareQat.h"
#include "qfx/Transforms/QConfigPropagation.h"
#include "qfx/Transforms/TopologicalSort.h"

#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringExtras.h"

using namespace qfx;

Pass::~Pass() = default;

static const PassInfo Registry[] = {
#define QFX_PASS(NAME, CLASS, SUMMARY)                                         \
  {NAME, #CLASS, SUMMARY,                                                      \
   []() -> std::unique_ptr<Pass> { return std::make_unique<CLASS>(); }},
#include "qfx/Transforms/Passes.def"
};

llvm::ArrayRef<PassInfo> qfx::registeredPasses() { return Registry; }

const PassInfo *qfx::lookupPass(llvm::StringRef Name) {
  for (const PassInfo &P : Registry)
    if (P.Name == Name)
      return &P;
  return nullptr;
}

llvm::Error PassManager::addPipeline(llvm::StringRef Pipeline) {
  llvm::SmallVector<llvm::StringRef, 8> Names;
  Pipeline.split(Names, ',', /*MaxSplit=*/-1, /*KeepEmpty=*/false);
  for (llvm::StringRef Name : Names) {
    Name = Name.trim();
    const PassInfo *Info = lookupPass(Name);
    if (!Info) {
      std::vector<std::string> Known;
      for (const PassInfo &P : registeredPasses())
        Known.push_back(P.Name.str());
      return makeError("unknown pass '" + Name +
                       "' (known passes: " + llvm::join(Known, ", ") + ")");
    }
    addPass(Info->Create());
  }
  return llvm::Error::success();
}

std::vector<std::string> PassManager::passNames() const {
  std::vector<std::string> R;
  for (const auto &P : Passes)
    R.push_back(P->name().str());
  return R;
}

llvm::Error PassManager::run(GraphModule &GM) {
  PassContext Ctx;
  return run(GM, Ctx);
}

llvm::Error PassManager::run(GraphModule &GM, PassContext &Ctx) {
  for (const auto &P : Passes) {
    if (llvm::Error E = P->run(GM, Ctx))
      return prefixError(std::move(E), ("pass '" + P->name() + "'").str());
    if (Opts.VerifyEach)
      if (llvm::Error E = verify(GM))
        return prefixError(std::move(E),
                           ("after pass '" + P->name() + "'").str());
    if (Opts.PrintAfterAll) {
      *Opts.PrintAfterAll << "// ----- IR after " << P->name() << " -----\n";
      printGraphModule(GM, *Opts.PrintAfterAll);
    }
  }
  return llvm::Error::success();
}
