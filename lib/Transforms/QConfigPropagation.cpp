//===- QConfigPropagation.cpp - Annotate nodes with their qconfig ---------===//

#include "qfx/Transforms/QConfigPropagation.h"

#include "qfx/IR/GraphModule.h"
#include "qfx/Quant/QConfigMapping.h"
#include "qfx/Support/Error.h"

using namespace qfx;

std::string qfx::qconfigRuleString(const QConfigDecision &D) {
  std::string R = qconfigRuleName(D.Rule).str();
  if (!D.Key.empty())
    R += ":" + D.Key;
  return R;
}

llvm::Error QConfigPropagation::run(GraphModule &GM, PassContext &Ctx) {
  if (!Ctx.QConfigs)
    return makeError("qconfig-propagation needs a qconfig mapping (--qconfig)");
  if (llvm::Error E = Ctx.QConfigs->checkFusedModules(GM))
    return E;
  std::map<std::string, QConfigDecision> Decisions = Ctx.QConfigs->assign(GM);
  for (Node *N : GM.graph().nodes()) {
    if (N->op() != OpCode::CallModule && N->op() != OpCode::CallFunction &&
        N->op() != OpCode::CallMethod)
      continue;
    // Observer modules are not ops: assign() skips them, and so do we.
    auto It = Decisions.find(N->name().str());
    if (It == Decisions.end())
      continue;
    std::string QC = qconfigDisplayName(It->second.QC);
    std::string Rule = qconfigRuleString(It->second);
    N->setMeta("qconfig", Argument::string(QC));
    N->setMeta("qconfig_rule", Argument::string(Rule));
    std::string Why = "qconfig " + QC + " by " + Rule;
    // A fused module decided by its first part's rule (PyTorch's
    // update_qconfig_for_fusion) says so: the rule names another kind.
    if (N->op() == OpCode::CallModule &&
        It->second.Rule == QConfigRule::ObjectType)
      if (const ModuleInfo *M = GM.lookupModule(N->target()))
        if (M->kind() != It->second.Key)
          Why += " (the rule for its first part applies to the fused " +
                 M->kind().str() + ")";
    Ctx.remark(name(), N->name(), Why);
  }
  return llvm::Error::success();
}
