//===- Explain.cpp - The per-node explain report of qopt ------------------===//

#include "Explain.h"

#include "qfx/IR/GraphModule.h"
#include "qfx/IR/Printer.h"
#include "qfx/Transforms/Pass.h"

#include "llvm/ADT/StringMap.h"

#include <vector>

using namespace qfx;

static void printMeta(const Node &N, llvm::StringRef Key,
                      llvm::raw_ostream &OS) {
  if (const Argument *A = N.meta(Key))
    OS << "  " << Key << ": "
       << (A->isString() ? A->getString() : formatArgument(*A)) << "\n";
}

void qfx::printExplain(const GraphModule &GM, const PassContext &Ctx,
                       llvm::raw_ostream &OS) {
  llvm::StringMap<std::vector<const Remark *>> ByNode;
  for (const Remark &R : Ctx.Remarks)
    ByNode[R.Node].push_back(&R);
  for (const Node *N : GM.graph().nodes()) {
    OS << "%" << N->name() << " = " << opcodeName(N->op()) << "[" << N->target()
       << "]\n";
    printMeta(*N, "qconfig", OS);
    printMeta(*N, "qconfig_rule", OS);
    auto It = ByNode.find(N->name());
    if (It == ByNode.end())
      continue;
    for (const Remark *R : It->second)
      OS << "  [" << R->Pass << "] " << R->Message << "\n";
    ByNode.erase(It);
  }
  // Remarks about nodes that passes erased (a fused relu) or about no node,
  // kept in the order they were made.
  bool Header = false;
  for (const Remark &R : Ctx.Remarks) {
    if (!ByNode.count(R.Node))
      continue;
    if (!Header)
      OS << "other remarks:\n";
    Header = true;
    OS << "  [" << R.Pass << "] ";
    if (!R.Node.empty())
      OS << "%" << R.Node << ": ";
    OS << R.Message << "\n";
  }
}
