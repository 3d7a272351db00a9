//===- FloatKernels.h - oneDNN fp32 primitives for hot float ops -*- C++
//-*-===//
//
// Calibration runs the float model over thousands of images, so conv2d,
// linear and pooling use oneDNN's fp32 primitives. Semantics are exactly the
// reference kernels' (Runtime/Kernels.h); tests compare the two. Primitives
// are cached by shape and parameters, so repeated calls pay no setup.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_BACKEND_ONEDNN_FLOATKERNELS_H
#define QFX_BACKEND_ONEDNN_FLOATKERNELS_H

#include "qfx/Runtime/Kernels.h"
#include "qfx/Support/Tensor.h"

namespace qfx {
namespace onednn {

/// NCHW in, NCHW out, OIHW weights; same contract as ref::conv2d.
Tensor conv2d(const Tensor &X, const Tensor &W, const Tensor *Bias,
              const ref::Conv2dParams &P);
/// Same contract as ref::linear (leading dimensions are flattened).
Tensor linear(const Tensor &X, const Tensor &W, const Tensor *Bias);
/// Whether oneDNN pooling can compute \p P exactly as PyTorch does (it
/// cannot, for example, honour a divisor override); callers use the
/// reference kernel otherwise.
bool supportsPool2d(const ref::Pool2dParams &P, bool IsMax);
/// Same contracts as ref::maxPool2d / ref::avgPool2d (ceil mode, padding,
/// count_include_pad) for parameters supportsPool2d accepts.
Tensor maxPool2d(const Tensor &X, const ref::Pool2dParams &P);
Tensor avgPool2d(const Tensor &X, const ref::Pool2dParams &P);

/// Number of cached primitives (for tests of the cache).
size_t primitiveCacheSize();

} // namespace onednn
} // namespace qfx

#endif // QFX_BACKEND_ONEDNN_FLOATKERNELS_H
