//===- ArithParams.h - Bound parameters of interpolate and div --*- C++ -*-===//
//
// Reads the arith family's bound op arguments into kernel parameters, the
// one place F.interpolate's size / scale_factor / mode / align_corners rules
// live (op table, lowering and gradients all call it).
//
//===----------------------------------------------------------------------===//

#ifndef QFX_RUNTIME_ARITHPARAMS_H
#define QFX_RUNTIME_ARITHPARAMS_H

#include "qfx/Runtime/KernelsArith.h"
#include "qfx/Runtime/Op.h"

namespace qfx {

/// interpolate(input, size, scale_factor, mode, align_corners,
/// recompute_scale_factor, antialias) bound to a 4-d input: PyTorch 1.13's
/// checks and output-size rule (floor(in * scale_factor)).
llvm::Expected<ref::InterpParams> interpolateParams(const BoundArgs &B);
/// div's rounding_mode (operand 2).
llvm::Expected<ref::DivRounding> divRounding(const BoundArgs &B);
/// narrow(input, dim, start, length) with dim and start normalized.
struct NarrowParams {
  int64_t Dim = 0, Start = 0, Length = 0;
};
llvm::Expected<NarrowParams> narrowParams(const BoundArgs &B);

} // namespace qfx

#endif // QFX_RUNTIME_ARITHPARAMS_H
