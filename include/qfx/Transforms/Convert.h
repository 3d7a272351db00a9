//===- Convert.h - Observed graph to reference quantized graph --*- C++ -*-===//
//
// torch.ao.quantization's convert for qfx: every observer (or fake-quantize)
// becomes the quantization parameters of the value it watched, and every op
// whose inputs and output were observed becomes its int8 form (quantized
// modules with per-channel s8 weights, quantized_* functions, integer
// pooling and reshapes). Values are quantized at float->int8 boundaries and
// dequantized at int8->float boundaries only. docs/quantization.md is the
// contract.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_TRANSFORMS_CONVERT_H
#define QFX_TRANSFORMS_CONVERT_H

#include "qfx/Transforms/Pass.h"

namespace qfx {

/// The convert pass. Fails, naming the observer and the node it watches,
/// when an observer that decides a quantization saw no data.
class Convert : public Pass {
public:
  llvm::StringRef name() const override { return "convert"; }
  llvm::Error run(GraphModule &GM, PassContext &Ctx) override;
};

} // namespace qfx

#endif // QFX_TRANSFORMS_CONVERT_H
