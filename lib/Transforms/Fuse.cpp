//===- Fuse.cpp - Fuse conv/linear/bn chains into fused modules -----------===//

#include "qfx/Transforms/Fuse.h"

#include "FusionPatterns.h"

#include "qfx/IR/GraphModule.h"

#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"

using namespace qfx;

/// Fuses the first pattern that matches at \p Root; returns the fused node,
/// or nullptr (after remarking near misses) if none did. Nodes it erases are
/// added to \p Erased.
static Node *fuseAt(const Node &Root, GraphModule &GM, PassContext &Ctx,
                    llvm::DenseSet<const Node *> &Erased) {
  // Near misses are reported only when no pattern applies: a conv -> bn
  // fused without the relu that follows is not worth a remark.
  std::vector<std::pair<const FusionPattern *, std::string>> Misses;
  for (const FusionPattern &P : fusionPatterns()) {
    MatchResult M = P.match(Root, GM);
    if (M.isNearMiss()) {
      if (llvm::none_of(Misses, [&](const auto &Miss) {
            return Miss.second == M.Reason;
          }))
        Misses.emplace_back(&P, M.Reason);
      continue;
    }
    if (!M.matched())
      continue;
    std::vector<std::string> Names;
    for (const Node *N : M.Nodes)
      Names.push_back(N->name().str());
    // Rewrites create no nodes, so erased addresses are never reused
    // during the pass.
    Erased.insert(M.Nodes.begin() + 1, M.Nodes.end());
    Node *Fused = P.rewrite(M, GM, Ctx.QAT);
    Ctx.remark("fuse", Fused->name(),
               "fused " + llvm::join(Names, " + ") + " into " +
                   P.fusedKind(Ctx.QAT) +
                   (P.folds(Ctx.QAT) ? " (bn folded)" : ""));
    return Fused;
  }
  for (const auto &Miss : Misses)
    Ctx.remark("fuse", Root.name(),
               llvm::Twine("not fused (") + Miss.first->Name +
                   "): " + Miss.second);
  return nullptr;
}

llvm::Error Fuse::run(GraphModule &GM, PassContext &Ctx) {
  NumFused = 0;
  llvm::DenseSet<const Node *> Erased;
  for (Node *N : GM.graph().nodes()) {
    if (Erased.count(N))
      continue;
    // A conv that absorbed its BatchNorm may start another chain
    // (conv -> add -> relu), so the fused node is tried again.
    Node *Cur = N;
    while ((Cur = fuseAt(*Cur, GM, Ctx, Erased)))
      ++NumFused;
  }
  return llvm::Error::success();
}
