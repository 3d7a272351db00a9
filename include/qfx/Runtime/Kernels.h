//===- Kernels.h - Reference float kernels and shape functions --*- C++ -*-===//
//
// Naive, obviously correct f32 kernels for every op the front end records,
// in PyTorch's layouts (NCHW activations, OIHW weights) and semantics. They
// are the oracle every fast kernel is tested against, and they run eager
// forward() and the interpreter alike, so both give bitwise equal results.
// Each op has a shape function that validates its inputs; kernels assert
// what the shape functions check.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_RUNTIME_KERNELS_H
#define QFX_RUNTIME_KERNELS_H

#include "qfx/Support/Tensor.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/Support/Error.h"

#include <array>
#include <cstdint>
#include <optional>
#include <vector>

namespace qfx {
namespace ref {

/// torch.nn.functional.conv2d's hyper-parameters.
struct Conv2dParams {
  std::array<int64_t, 2> Stride{1, 1};
  std::array<int64_t, 2> Padding{0, 0};
  std::array<int64_t, 2> Dilation{1, 1};
  int64_t Groups = 1;
};

/// max_pool2d / avg_pool2d hyper-parameters (PyTorch defaults: stride =
/// kernel size, padding 0, dilation 1, floor mode, padding counted in the
/// average).
struct Pool2dParams {
  std::array<int64_t, 2> Kernel{1, 1};
  std::array<int64_t, 2> Stride{1, 1};
  std::array<int64_t, 2> Padding{0, 0};
  std::array<int64_t, 2> Dilation{1, 1};
  bool CeilMode = false;
  bool CountIncludePad = true;
  std::optional<int64_t> DivisorOverride;
};

//===----------------------------------------------------------------------===//
// Shape functions: validate inputs and compute output shapes. Error messages
// are lower-case and say which input is wrong, e.g. "conv2d: input has 3
// channels but weight expects 1 (groups=1)".
//===----------------------------------------------------------------------===//

llvm::Expected<Shape> conv2dShape(llvm::ArrayRef<int64_t> Input,
                                  llvm::ArrayRef<int64_t> Weight,
                                  std::optional<llvm::ArrayRef<int64_t>> Bias,
                                  const Conv2dParams &P);
llvm::Expected<Shape> linearShape(llvm::ArrayRef<int64_t> Input,
                                  llvm::ArrayRef<int64_t> Weight,
                                  std::optional<llvm::ArrayRef<int64_t>> Bias);
/// For batch_norm: input [N,C,...] and per-channel [C] statistics.
llvm::Expected<Shape> batchNormShape(llvm::ArrayRef<int64_t> Input,
                                     int64_t NumFeatures);
llvm::Expected<Shape> pool2dShape(llvm::ArrayRef<int64_t> Input,
                                  const Pool2dParams &P);
llvm::Expected<Shape> adaptivePool2dShape(llvm::ArrayRef<int64_t> Input,
                                          std::array<int64_t, 2> Output);
/// NumPy-style broadcasting of two shapes.
llvm::Expected<Shape> broadcastShape(llvm::ArrayRef<int64_t> A,
                                     llvm::ArrayRef<int64_t> B);
llvm::Expected<Shape> catShape(llvm::ArrayRef<Shape> Inputs, int64_t Dim);
llvm::Expected<Shape> flattenShape(llvm::ArrayRef<int64_t> Input,
                                   int64_t StartDim, int64_t EndDim);
/// Resolves one -1 in \p Requested against the element count of \p Input.
llvm::Expected<Shape> reshapeShape(llvm::ArrayRef<int64_t> Input,
                                   llvm::ArrayRef<int64_t> Requested);
llvm::Expected<Shape> permuteShape(llvm::ArrayRef<int64_t> Input,
                                   llvm::ArrayRef<int64_t> Dims);
llvm::Expected<Shape> transposeShape(llvm::ArrayRef<int64_t> Input,
                                     int64_t Dim0, int64_t Dim1);
llvm::Expected<Shape> meanShape(llvm::ArrayRef<int64_t> Input,
                                llvm::ArrayRef<int64_t> Dims, bool KeepDim);
/// The window [Start, End) of avg_pool2d output \p O along one axis (kernel
/// \p K, stride \p S, padding \p Pad, input extent \p In), clipped to the
/// input, and the extent PyTorch counts as padded (clipped at In + Pad).
/// Shared by the float, quantized and backward kernels so they agree.
void avgPoolWindow(int64_t O, int64_t K, int64_t S, int64_t Pad, int64_t In,
                   int64_t &Start, int64_t &End, int64_t &Padded);
/// Normalizes a possibly negative dimension index against \p Rank.
llvm::Expected<int64_t> normalizeDim(int64_t Dim, int64_t Rank);

//===----------------------------------------------------------------------===//
// Kernels (f32 in, f32 out; inputs already validated by the shape functions)
//===----------------------------------------------------------------------===//

Tensor conv2d(const Tensor &X, const Tensor &W, const Tensor *Bias,
              const Conv2dParams &P);
/// X [..., in], W [out, in], Bias [out].
Tensor linear(const Tensor &X, const Tensor &W, const Tensor *Bias);
/// Inference-mode batch norm: (x - mean) / sqrt(var + eps) * weight + bias.
Tensor batchNorm(const Tensor &X, const Tensor &Mean, const Tensor &Var,
                 const Tensor *Weight, const Tensor *Bias, double Eps);

Tensor relu(const Tensor &X);
Tensor relu6(const Tensor &X);
Tensor hardtanh(const Tensor &X, double Min, double Max);
/// x * relu6(x + 3) / 6.
Tensor hardswish(const Tensor &X);
/// relu6(x + 3) / 6.
Tensor hardsigmoid(const Tensor &X);
Tensor sigmoid(const Tensor &X);
Tensor tanh(const Tensor &X);
/// x / (1 + exp(-x)), PyTorch's silu kernel.
Tensor silu(const Tensor &X);
Tensor leakyRelu(const Tensor &X, double NegativeSlope);

Tensor maxPool2d(const Tensor &X, const Pool2dParams &P);
Tensor avgPool2d(const Tensor &X, const Pool2dParams &P);
/// PyTorch's adaptive bins: start = floor(i*In/Out), end = ceil((i+1)*In/Out).
Tensor adaptiveAvgPool2d(const Tensor &X, std::array<int64_t, 2> Output);

/// a + alpha * b with broadcasting.
Tensor add(const Tensor &A, const Tensor &B, double Alpha = 1.0);
Tensor mul(const Tensor &A, const Tensor &B);
Tensor addScalar(const Tensor &A, double S);
Tensor mulScalar(const Tensor &A, double S);

Tensor cat(llvm::ArrayRef<Tensor> Inputs, int64_t Dim);
/// Views share storage with X (the data is contiguous already).
Tensor reshape(const Tensor &X, llvm::ArrayRef<int64_t> Shape);
Tensor flatten(const Tensor &X, int64_t StartDim, int64_t EndDim);
/// Materializes the permuted tensor (qfx tensors are always contiguous).
Tensor permute(const Tensor &X, llvm::ArrayRef<int64_t> Dims);
Tensor transpose(const Tensor &X, int64_t Dim0, int64_t Dim1);
Tensor mean(const Tensor &X, llvm::ArrayRef<int64_t> Dims, bool KeepDim);
/// Numerically stable softmax along Dim.
Tensor softmax(const Tensor &X, int64_t Dim);

} // namespace ref
} // namespace qfx

#endif // QFX_RUNTIME_KERNELS_H
