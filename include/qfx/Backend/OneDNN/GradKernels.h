//===- GradKernels.h - oneDNN fp32 convolution backward ---------*- C++ -*-===//
//
// Training spends most of its time in conv2d's backward pass, so the
// gradients of the input and of the weights use oneDNN's backward-data and
// backward-weights primitives. Semantics are the reference loops' (qfx::grad::
// conv2dBackwardRef); tests compare the two. Primitives are cached by shape
// and parameters, so repeated calls pay no setup.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_BACKEND_ONEDNN_GRADKERNELS_H
#define QFX_BACKEND_ONEDNN_GRADKERNELS_H

#include "qfx/Runtime/Kernels.h"
#include "qfx/Support/Tensor.h"

#include "llvm/ADT/ArrayRef.h"

#include <cstddef>
#include <cstdint>

namespace qfx {
namespace onednn {

/// conv2d's gradients, each computed when its pointer is not null: of the
/// input X (NCHW), of the weights W (OIHW) and of the bias (which needs
/// \p GradW). GradOut (NCHW) has the forward output's shape. Only the
/// operands a requested gradient reads need storage. GradOut is reordered
/// once for both primitives when they want the same layout.
void conv2dBackward(const Tensor &X, const Tensor &W, const Tensor &GradOut,
                    const ref::Conv2dParams &P, Tensor *GradX, Tensor *GradW,
                    Tensor *GradBias);

/// The gradient of conv2d's input, of shape \p XShape (NCHW), from the
/// output gradient \p GradOut (NCHW) and the weights \p W (OIHW).
Tensor conv2dBackwardData(const Tensor &GradOut, const Tensor &W,
                          llvm::ArrayRef<int64_t> XShape,
                          const ref::Conv2dParams &P);

/// The gradients of conv2d's weights, written to \p GradW (allocated here
/// with the OIHW weight shape \p WShape), and of its bias, written to
/// \p *GradBias when \p GradBias is not null.
void conv2dBackwardWeights(const Tensor &X, const Tensor &GradOut,
                           llvm::ArrayRef<int64_t> WShape,
                           const ref::Conv2dParams &P, Tensor &GradW,
                           Tensor *GradBias);

/// Number of cached backward primitives (for tests of the cache).
size_t gradPrimitiveCacheSize();

} // namespace onednn
} // namespace qfx

#endif // QFX_BACKEND_ONEDNN_GRADKERNELS_H
