//===- PreLowering.h - Graph rewrites compile() makes on a copy -*- C++ -*-===//
//
// Inference-only rewrites that make a graph lower to fewer, faster oneDNN
// steps without changing what it computes beyond float rounding. They work
// on a copy: the caller's GraphModule is never modified.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_LIB_CODEGEN_PRELOWERING_H
#define QFX_LIB_CODEGEN_PRELOWERING_H

#include "qfx/Codegen/Lowering.h"
#include "qfx/IR/GraphModule.h"

#include <memory>

namespace qfx {
namespace codegen {

/// A copy of \p GM rewritten for lowering under \p Opts, or null when no
/// rewrite applies (lower \p GM itself then):
/// - float modules holding quantized weights (the weight-only form of
///   convert) hold the dequantized weights instead, so that they lower to
///   float primitives computing what the interpreter computes;
/// - with Opts.FoldBatchNorm, an eval-mode BatchNorm whose input is a float
///   Conv1d / Conv2d / Linear used by nothing else folds into it, as
///   PyTorch's fuse_fx does (the conv's following relu or add then fuses as
///   a post-op).
llvm::Expected<std::unique_ptr<GraphModule>>
rewriteForLowering(const GraphModule &GM, const CompileOptions &Opts);

} // namespace codegen
} // namespace qfx

#endif // QFX_LIB_CODEGEN_PRELOWERING_H
