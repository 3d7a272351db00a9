//===- Fuse.cpp - Fuse conv/linear/bn chains into fused modules -----------===//

#include "qfx/Transforms/Fuse.h"

#include "FusionPatterns.h"

#include "qfx/IR/GraphModule.h"
#include "qfx/Quant/QConfigMapping.h"
#include "qfx/Transforms/QConfigPropagation.h"

#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"

using namespace qfx;

namespace {
/// The mapping's decision for every op of the graph as it was before
/// fusion (fused nodes keep their root's name); empty without a mapping.
using Decisions = std::map<std::string, QConfigDecision>;
} // namespace

/// "x86 (global)", "none (object_type:add)".
static std::string describe(const QConfigDecision &D) {
  return qconfigDisplayName(D.QC) + " (" + qconfigRuleString(D) + ")";
}

/// The first op of \p M whose qconfig is not the root's, with both
/// decisions, or "" when all agree (or nothing was decided).
static std::string qconfigMismatch(const MatchResult &M, const Decisions &Ds) {
  auto Root = Ds.find(M.Nodes[0]->name().str());
  if (Root == Ds.end())
    return "";
  for (const Node *N : llvm::drop_begin(M.Nodes)) {
    auto It = Ds.find(N->name().str());
    if (It != Ds.end() && !(It->second.QC == Root->second.QC))
      return (N->name() + " has qconfig " + describe(It->second) + " but " +
              M.Nodes[0]->name() + " has " + describe(Root->second))
          .str();
  }
  return "";
}

/// Fuses the first pattern that matches at \p Root; returns the fused node,
/// or nullptr (after remarking near misses) if none did. Nodes it erases are
/// added to \p Erased.
static Node *fuseAt(const Node &Root, GraphModule &GM, PassContext &Ctx,
                    const Decisions &Ds, llvm::DenseSet<const Node *> &Erased) {
  // Near misses are reported only when no pattern applies: a conv -> bn
  // fused without the relu that follows is not worth a remark.
  std::vector<std::pair<const FusionPattern *, std::string>> Misses;
  // A reason shared by a longer and a shorter pattern is reported once.
  auto AddMiss = [&](const FusionPattern &P, const std::string &Reason) {
    if (llvm::none_of(Misses,
                      [&](const auto &Miss) { return Miss.second == Reason; }))
      Misses.emplace_back(&P, Reason);
  };
  for (const FusionPattern &P : fusionPatterns()) {
    MatchResult M = P.match(Root, GM);
    if (M.isNearMiss()) {
      AddMiss(P, M.Reason);
      continue;
    }
    if (!M.matched())
      continue;
    if (Ctx.QAT && !P.QATKind) {
      AddMiss(P, "PyTorch 1.13 has no quantization-aware training form of "
                 "this fusion");
      continue;
    }
    std::string Mismatch = qconfigMismatch(M, Ds);
    // PyTorch never fuses conv -> add, so each op keeps its own qconfig
    // there: qfx fuses them only when that changes nothing.
    if (!Mismatch.empty() && !P.inPyTorch()) {
      AddMiss(P, Mismatch);
      continue;
    }
    std::vector<std::string> Names, FusedCalls;
    for (const Node *N : M.Nodes)
      Names.push_back(N->name().str());
    // The absorbed calls still count for the call indices of
    // module_name_object_type_order rules, as they do in PyTorch.
    if (!P.inPyTorch())
      for (const Node *N : llvm::drop_begin(M.Nodes))
        FusedCalls.push_back(fusedCallEntry(*N, GM));
    // Rewrites create no nodes, so erased addresses are never reused
    // during the pass.
    Erased.insert(M.Nodes.begin() + 1, M.Nodes.end());
    Node *Fused = P.rewrite(M, GM, Ctx.QAT);
    Ctx.remark("fuse", Fused->name(),
               "fused " + llvm::join(Names, " + ") + " into " +
                   P.fusedKind(Ctx.QAT) +
                   (P.folds(Ctx.QAT) ? " (bn folded)" : ""));
    if (!FusedCalls.empty())
      Fused->setMeta("fused_calls",
                     Argument::string(llvm::join(FusedCalls, ",")));
    // PyTorch fuses these whatever the ops' qconfigs and configures the
    // fused module as one (qconfig-propagation does the same): say which
    // op's decision is dropped rather than drop it silently.
    if (!Mismatch.empty())
      Ctx.remark("fuse", Fused->name(),
                 "fused regardless of qconfig, as PyTorch 1.13 does: " +
                     Mismatch + "; the fused " + P.fusedKind(Ctx.QAT) +
                     " is configured as one module");
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
  Decisions Ds;
  if (Ctx.QConfigs)
    Ds = Ctx.QConfigs->assign(GM);
  llvm::DenseSet<const Node *> Erased;
  for (Node *N : GM.graph().nodes()) {
    if (Erased.count(N))
      continue;
    // A conv that absorbed its BatchNorm may start another chain
    // (conv -> add -> relu), so the fused node is tried again.
    Node *Cur = N;
    while ((Cur = fuseAt(*Cur, GM, Ctx, Ds, Erased)))
      ++NumFused;
  }
  return llvm::Error::success();
}
