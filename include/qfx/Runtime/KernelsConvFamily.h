//===- KernelsConvFamily.h - Reference kernels of the conv family -*- C++
//-*-===//
//
// conv_transpose2d (torch.nn.functional.conv_transpose2d): shape function,
// forward and backward, plain loops over contiguous f32 tensors. The
// oracle the oneDNN deconvolution and the gradient rules are tested against.
// (conv1d needs no kernel of its own: it runs as a unit-height conv2d.)
//
//===----------------------------------------------------------------------===//

#ifndef QFX_RUNTIME_KERNELSCONVFAMILY_H
#define QFX_RUNTIME_KERNELSCONVFAMILY_H

#include "qfx/Support/Tensor.h"

#include "llvm/Support/Error.h"

#include <array>
#include <optional>

namespace qfx {
namespace ref {

/// torch.nn.functional.conv_transpose2d's hyper-parameters.
struct ConvTranspose2dParams {
  std::array<int64_t, 2> Stride{1, 1};
  std::array<int64_t, 2> Padding{0, 0};
  std::array<int64_t, 2> OutputPadding{0, 0};
  std::array<int64_t, 2> Dilation{1, 1};
  int64_t Groups = 1;
};

/// The output shape of conv_transpose2d: input [N, C, H, W], weight
/// [C, out / groups, kH, kW], out = (in - 1) * stride - 2 * padding +
/// dilation * (k - 1) + output_padding + 1. Errors name the op and the
/// parameter ("conv_transpose2d: output_padding: ...").
llvm::Expected<Shape>
convTranspose2dShape(llvm::ArrayRef<int64_t> In, llvm::ArrayRef<int64_t> W,
                     std::optional<llvm::ArrayRef<int64_t>> Bias,
                     const ConvTranspose2dParams &P);

/// conv_transpose2d on f32 tensors of valid shapes (checked above).
Tensor convTranspose2d(const Tensor &X, const Tensor &W, const Tensor *Bias,
                       const ConvTranspose2dParams &P);

/// Gradients of conv_transpose2d (empty tensors for those not asked for).
struct ConvTranspose2dGrads {
  Tensor X, W, Bias;
};
ConvTranspose2dGrads
convTranspose2dBackward(const Tensor &X, const Tensor &W, bool HasBias,
                        const Tensor &GradOut, const ConvTranspose2dParams &P,
                        bool NeedX = true, bool NeedW = true);

} // namespace ref
} // namespace qfx

#endif // QFX_RUNTIME_KERNELSCONVFAMILY_H
