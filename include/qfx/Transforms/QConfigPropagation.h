//===- QConfigPropagation.h - Annotate nodes with their qconfig -*- C++ -*-===//
//
// Resolves the qconfig mapping (PassContext::QConfigs) for every op node,
// as PyTorch's _generate_node_name_to_qconfig does, and records the result
// in node meta: `qconfig` ("x86", "none", "custom" ...) and `qconfig_rule`
// ("global", "module_name:fc" ...), so prepare and the explain report see
// the same decision. A mapping PyTorch 1.13's prepare rejects for the
// graph's fused modules (QConfigMapping::checkFusedModules) is an error.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_TRANSFORMS_QCONFIGPROPAGATION_H
#define QFX_TRANSFORMS_QCONFIGPROPAGATION_H

#include "qfx/Transforms/Pass.h"

namespace qfx {

struct QConfigDecision;

/// The qconfig-propagation pass.
class QConfigPropagation : public Pass {
public:
  llvm::StringRef name() const override { return "qconfig-propagation"; }
  llvm::Error run(GraphModule &GM, PassContext &Ctx) override;
};

/// "global", "object_type:Conv2d", "module_name:fc" ...: the rule that made
/// \p D, with its key when it has one (the `qconfig_rule` annotation).
std::string qconfigRuleString(const QConfigDecision &D);

} // namespace qfx

#endif // QFX_TRANSFORMS_QCONFIGPROPAGATION_H
