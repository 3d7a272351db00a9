//===- FoldQdq.cpp - QDQ groups into the reference quantized graph --------===//
//
// One walk over the quantize_per_tensor nodes in graph order. Groups are
// rewritten as they are found, so a later group's dequantizes already read
// the int8 values of the groups before it (and a shares-qparams op's input
// qparams are those of the folded op that feeds it).
//
//===----------------------------------------------------------------------===//

#include "qfx/Transforms/FoldQdq.h"

#include "ConvertPatterns.h"
#include "FoldQdqPatterns.h"

#include "qfx/IR/GraphModule.h"

using namespace qfx;
using namespace qfx::foldqdq;

static bool isQuantize(const Node &N) {
  return N.op() == OpCode::CallFunction && N.target() == "quantize_per_tensor";
}

llvm::Error FoldQdq::run(GraphModule &GM, PassContext &Ctx) {
  NumFolded = NumCancelled = 0;
  // Rewrites erase only nodes before the quantize being visited, so the
  // rest of this list stays valid.
  for (Node *N : GM.graph().nodes()) {
    if (!isQuantize(*N))
      continue;
    MatchResult M = matchGroup(*N, GM);
    if (!M.Matched) {
      if (!M.Reason.empty())
        Ctx.remark(name(), M.Main ? M.Main->name() : N->name(),
                   "left as QDQ: " + M.Reason);
      continue;
    }
    std::string What = M.Kind == GroupKind::Cancel
                           ? "quantize_per_tensor(" + M.Main->name().str() + ")"
                           : M.describe();
    std::string Into = M.replacement().str();
    std::string QP = convert::formatQParams(M.Out.Scale, M.Out.ZeroPoint);
    Node *New = rewriteGroup(M, GM);
    if (M.Kind == GroupKind::Cancel) {
      ++NumCancelled;
      Ctx.remark(name(), New->name(),
                 "removed " + What + ": " + New->name() +
                     " already has its qparams (" + QP + ")");
      continue;
    }
    ++NumFolded;
    std::string Msg =
        M.Kind == GroupKind::Shares
            ? What + " runs on int8 with its input's qparams (" + QP + ")"
            : What + " → " + Into + " (" + QP + ")";
    if (New->op() == OpCode::CallModule)
      Msg += ", module " + New->target().str();
    Ctx.remark(name(), New->name(), Msg);
  }
  return llvm::Error::success();
}
