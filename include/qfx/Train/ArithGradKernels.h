//===- ArithGradKernels.h - Backward of the arith family -------*- C++ -*-===//
//
// The arith family's vector-Jacobian products (f32): division, reciprocal,
// interpolate (nearest and bilinear scatter the output gradient back through
// the forward's taps), embedding (rows accumulated into the weight's
// gradient) and narrow (the gradient placed back into a zero tensor).
//
//===----------------------------------------------------------------------===//

#ifndef QFX_TRAIN_ARITHGRADKERNELS_H
#define QFX_TRAIN_ARITHGRADKERNELS_H

#include "qfx/Runtime/KernelsArith.h"
#include "qfx/Support/Tensor.h"

#include <array>
#include <optional>

namespace qfx {
namespace grad {

/// div(A, B) (true division): g / b and -g * a / (b * b), each reduced to
/// its operand's shape.
std::array<Tensor, 2> divBackward(const Tensor &A, const Tensor &B,
                                  const Tensor &GradOut);
/// reciprocal, from its output Y: -g * y * y.
Tensor reciprocalBackward(const Tensor &Y, const Tensor &GradOut);
/// interpolate: the input gradient of shape \p InputShape.
Tensor interpolateBackward(llvm::ArrayRef<int64_t> InputShape,
                           const ref::InterpParams &P, const Tensor &GradOut);
/// embedding: the weight gradient [num, dim]; rows of \p PaddingIdx stay 0.
Tensor embeddingBackward(const Tensor &Indices, int64_t NumEmbeddings,
                         std::optional<int64_t> PaddingIdx,
                         const Tensor &GradOut);
/// narrow: \p GradOut placed at [Start, Start + Length) of dimension \p Dim
/// in zeros of \p InputShape.
Tensor narrowBackward(llvm::ArrayRef<int64_t> InputShape, int64_t Dim,
                      int64_t Start, const Tensor &GradOut);

} // namespace grad
} // namespace qfx

#endif // QFX_TRAIN_ARITHGRADKERNELS_H
