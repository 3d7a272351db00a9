//===- Fuse.h - Fuse conv/linear/bn chains into fused modules ---*- C++ -*-===//
//
// PyTorch's fuse_fx: finds conv -> bn -> relu, conv -> bn, conv -> relu,
// linear -> relu, linear -> bn, bn -> relu and qfx's conv -> add (-> relu)
// chains by data flow (relu as a module, a function or a method) and
// replaces each by one call_module of a fused module (ConvReLU2d,
// ConvAddReLU2d, ...). Without QAT, BatchNorm folds into the preceding
// conv/linear exactly as torch.nn.utils.fusion does; with QAT it is kept
// (ConvBn2d, ConvBnReLU2d, LinearBn1d). A chain whose intermediate values
// are used elsewhere is left alone, with a remark saying why.
//
// With a qconfig mapping (PassContext::QConfigs), each op's qconfig is
// resolved on the graph before fusion. Chains PyTorch 1.13 fuses are fused
// whatever their qconfigs, as there; the fused module is then configured as
// one (QConfigMapping::assign), and a remark names any op whose own
// decision that drops. qfx's conv -> add (-> relu), which PyTorch never
// fuses, is fused only when every op has the conv's qconfig; otherwise it
// is left unfused with a remark such as "add has qconfig none
// (object_type:add) but conv1 has x86 (global)". Such a fused node records
// the calls it absorbed in node meta `fused_calls` so that call indices
// stay PyTorch's.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_TRANSFORMS_FUSE_H
#define QFX_TRANSFORMS_FUSE_H

#include "qfx/Transforms/Pass.h"

namespace qfx {

/// The fuse pass.
class Fuse : public Pass {
public:
  llvm::StringRef name() const override { return "fuse"; }
  llvm::Error run(GraphModule &GM, PassContext &Ctx) override;
  /// Chains fused by the last run.
  size_t numFused() const { return NumFused; }

private:
  size_t NumFused = 0;
};

} // namespace qfx

#endif // QFX_TRANSFORMS_FUSE_H
