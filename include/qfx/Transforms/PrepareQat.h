//===- PrepareQat.h - Insert fake-quant modules (prepare_qat) ---*- C++ -*-===//
//
// prepare for quantization-aware training: the placement of prepare, with
// FakeQuantize modules (`activation_post_process_<N>` and weight children
// `weight_fake_quant`) in place of observers, whatever the qconfig's
// observers are.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_TRANSFORMS_PREPAREQAT_H
#define QFX_TRANSFORMS_PREPAREQAT_H

#include "qfx/Transforms/Pass.h"

namespace qfx {

/// The prepare-qat pass.
class PrepareQat : public Pass {
public:
  llvm::StringRef name() const override { return "prepare-qat"; }
  llvm::Error run(GraphModule &GM, PassContext &Ctx) override;
};

} // namespace qfx

#endif // QFX_TRANSFORMS_PREPAREQAT_H
