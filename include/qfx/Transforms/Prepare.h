//===- Prepare.h - Insert observers (prepare_fx) ----------------*- C++ -*-===//
//
// The observer half of torch.ao.quantization's prepare_fx: after
// qconfig-propagation, inserts activation observers as root modules
// `activation_post_process_<N>` and weight observers as children
// `weight_post_process`, following the node classes of
// docs/quantization.md. With PassContext::QAT it inserts FakeQuantize
// modules instead, as prepare-qat does.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_TRANSFORMS_PREPARE_H
#define QFX_TRANSFORMS_PREPARE_H

#include "qfx/Transforms/Pass.h"

namespace qfx {

/// The prepare pass.
class Prepare : public Pass {
public:
  llvm::StringRef name() const override { return "prepare"; }
  llvm::Error run(GraphModule &GM, PassContext &Ctx) override;
};

} // namespace qfx

#endif // QFX_TRANSFORMS_PREPARE_H
