//===- GradKernels.h - Backward kernels of the float ops --------*- C++ -*-===//
//
// The vector-Jacobian products of every op the training tape differentiates,
// as plain tensor functions (f32 in, f32 out, inputs already validated by
// the forward op). Semantics follow PyTorch's autograd formulas so that
// gradients can be checked against it; every kernel is also checked against
// central finite differences in test/unit.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_TRAIN_GRADKERNELS_H
#define QFX_TRAIN_GRADKERNELS_H

#include "qfx/Runtime/Kernels.h"
#include "qfx/Support/Tensor.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/Support/Error.h"

#include <array>
#include <cstdint>
#include <random>
#include <vector>

namespace qfx {
namespace grad {

//===----------------------------------------------------------------------===//
// Layers with parameters
//===----------------------------------------------------------------------===//

/// Gradients of conv2d(X, W, Bias): an empty Tensor() for one not asked for.
struct Conv2dGrads {
  Tensor X, W, Bias;
};
/// conv2d backward: GradOut has the forward output's shape. Uses oneDNN's
/// backward-data and backward-weights primitives (cached by shape) when
/// kernelMode() is OneDNN, the reference loops otherwise.
Conv2dGrads conv2dBackward(const Tensor &X, const Tensor &W, bool HasBias,
                           const Tensor &GradOut, const ref::Conv2dParams &P,
                           bool NeedX = true, bool NeedW = true);
/// The reference loops (what the oneDNN path is tested against).
Conv2dGrads conv2dBackwardRef(const Tensor &X, const Tensor &W, bool HasBias,
                              const Tensor &GradOut, const ref::Conv2dParams &P,
                              bool NeedX = true, bool NeedW = true);

struct LinearGrads {
  Tensor X, W, Bias;
};
/// linear backward: X [..., in], W [out, in], GradOut [..., out].
LinearGrads linearBackward(const Tensor &X, const Tensor &W, bool HasBias,
                           const Tensor &GradOut, bool NeedX = true,
                           bool NeedW = true);

/// What training-mode batch norm saves for backward.
struct BatchNormSaved {
  Tensor Mean;   ///< [C] batch mean
  Tensor InvStd; ///< [C] 1 / sqrt(biased batch var + eps)
};
/// Training-mode batch_norm over [N, C, ...]: normalizes with the batch
/// statistics and, as PyTorch does, updates the running statistics in place
/// with \p Momentum (running = (1 - m) * running + m * batch, the running
/// variance taking the unbiased batch variance). Output in \p Out.
BatchNormSaved batchNormTrain(const Tensor &X, Tensor &RunningMean,
                              Tensor &RunningVar, const Tensor *Weight,
                              const Tensor *Bias, double Momentum, double Eps,
                              Tensor &Out);

struct BatchNormGrads {
  Tensor X, Weight, Bias;
};
/// Backward of batchNormTrain (gradient through the batch statistics).
BatchNormGrads batchNormTrainBackward(const Tensor &X, const BatchNormSaved &S,
                                      const Tensor *Weight,
                                      const Tensor &GradOut);
/// Backward of inference-mode batch norm (running statistics are constants:
/// frozen BN).
BatchNormGrads batchNormEvalBackward(const Tensor &X, const Tensor &RunningMean,
                                     const Tensor &RunningVar,
                                     const Tensor *Weight, double Eps,
                                     const Tensor &GradOut);

//===----------------------------------------------------------------------===//
// Pooling
//===----------------------------------------------------------------------===//

/// max_pool2d backward: the gradient goes to the first maximum of each
/// window in row-major order (PyTorch's CPU kernel), accumulated where
/// windows overlap.
Tensor maxPool2dBackward(const Tensor &X, const Tensor &GradOut,
                         const ref::Pool2dParams &P);
/// avg_pool2d backward (padding, ceil mode, count_include_pad and divisor
/// override as in the forward).
Tensor avgPool2dBackward(llvm::ArrayRef<int64_t> XShape, const Tensor &GradOut,
                         const ref::Pool2dParams &P);
Tensor adaptiveAvgPool2dBackward(llvm::ArrayRef<int64_t> XShape,
                                 const Tensor &GradOut);

//===----------------------------------------------------------------------===//
// Activations (GradOut has X's shape)
//===----------------------------------------------------------------------===//

/// relu: gradient where x > 0 (0 at x == 0, as PyTorch).
Tensor reluBackward(const Tensor &X, const Tensor &GradOut);
/// hardtanh / relu6: gradient where Min < x < Max (PyTorch's
/// hardtanh_backward excludes both ends).
Tensor hardtanhBackward(const Tensor &X, double Min, double Max,
                        const Tensor &GradOut);
/// hardswish: 0 for x < -3, g for x > 3, g * (2x + 3) / 6 between
/// (PyTorch's hardswish_backward, -3 and 3 included in the middle piece).
Tensor hardswishBackward(const Tensor &X, const Tensor &GradOut);
/// hardsigmoid: g / 6 for -3 < x < 3, else 0.
Tensor hardsigmoidBackward(const Tensor &X, const Tensor &GradOut);
Tensor leakyReluBackward(const Tensor &X, double NegativeSlope,
                         const Tensor &GradOut);
/// sigmoid and tanh take the forward output Y.
Tensor sigmoidBackward(const Tensor &Y, const Tensor &GradOut);
Tensor tanhBackward(const Tensor &Y, const Tensor &GradOut);
/// silu from its input X: g * s * (1 + x * (1 - s)), s = sigmoid(x)
/// (PyTorch's silu_backward).
Tensor siluBackward(const Tensor &X, const Tensor &GradOut);
/// softmax along Dim, from its output Y: y * (g - sum(g * y)).
Tensor softmaxBackward(const Tensor &Y, int64_t Dim, const Tensor &GradOut);

//===----------------------------------------------------------------------===//
// Shapes and arithmetic
//===----------------------------------------------------------------------===//

/// Sums \p G over the dimensions broadcasting added, so that it has shape
/// \p To (the gradient of a broadcast operand).
Tensor sumToShape(const Tensor &G, llvm::ArrayRef<int64_t> To);
/// add(A, B, alpha): the gradients of A and of B (alpha * g), each reduced
/// to its operand's shape.
std::array<Tensor, 2> addBackward(llvm::ArrayRef<int64_t> AShape,
                                  llvm::ArrayRef<int64_t> BShape, double Alpha,
                                  const Tensor &GradOut);
/// mul(A, B): g * B and g * A, reduced to each operand's shape.
std::array<Tensor, 2> mulBackward(const Tensor &A, const Tensor &B,
                                  const Tensor &GradOut);
/// cat backward: GradOut split along Dim into pieces of the inputs' shapes.
std::vector<Tensor> catBackward(llvm::ArrayRef<Shape> InputShapes, int64_t Dim,
                                const Tensor &GradOut);
/// permute backward (the inverse permutation applied to GradOut).
Tensor permuteBackward(const Tensor &GradOut, llvm::ArrayRef<int64_t> Dims);
/// mean over Dims backward: g / count broadcast back to XShape.
Tensor meanBackward(llvm::ArrayRef<int64_t> XShape,
                    llvm::ArrayRef<int64_t> Dims, bool KeepDim,
                    const Tensor &GradOut);

/// Training-mode dropout: zeroes each element with probability \p P (drawn
/// from \p Rng, so a fixed seed gives a fixed mask) and scales the rest by
/// 1 / (1 - P). Mask holds 0 or 1 / (1 - P); backward is GradOut * Mask.
struct DropoutResult {
  Tensor Out, Mask;
};
DropoutResult dropoutTrain(const Tensor &X, double P, std::mt19937_64 &Rng);
/// Elementwise product of two same-shape tensors (dropout and fake-quant
/// masks).
Tensor mulElementwise(const Tensor &A, const Tensor &B);

//===----------------------------------------------------------------------===//
// Loss
//===----------------------------------------------------------------------===//

/// cross_entropy(Logits [N, K], Labels) with mean reduction, computed
/// through a numerically stable log-softmax in double.
struct CrossEntropyResult {
  double Loss = 0;     ///< mean over the batch
  Tensor GradLogits;   ///< d Loss / d Logits, [N, K]
  int64_t Correct = 0; ///< rows whose argmax equals the label
};
/// Fails (naming the row) on a label outside [0, K) or a label count that
/// is not N.
llvm::Expected<CrossEntropyResult> crossEntropy(const Tensor &Logits,
                                                llvm::ArrayRef<int64_t> Labels);

// Transformer ops (lib/Train/TransformerGrads.cpp).

/// layer_norm over the last \p M elements: gradients of the input and, when
/// given, of the weight and bias ([M] each, empty when absent).
struct LayerNormGrads {
  Tensor X, W, Bias;
};
LayerNormGrads layerNormBackward(const Tensor &X, int64_t M, const Tensor *W,
                                 bool HasBias, double Eps,
                                 const Tensor &GradOut);
/// gelu (erf form, or \p Tanh).
Tensor geluBackward(const Tensor &X, bool Tanh, const Tensor &GradOut);
/// torch.matmul's gradients of both operands (broadcast dimensions summed).
std::array<Tensor, 2> matmulBackward(const Tensor &A, const Tensor &B,
                                     const Tensor &GradOut);
/// Tensor.expand: \p GradOut summed back to \p In.
Tensor expandBackward(llvm::ArrayRef<int64_t> In, const Tensor &GradOut);
/// Tensor.select: zeros of shape \p In with \p GradOut at the index.
Tensor selectBackward(llvm::ArrayRef<int64_t> In, int64_t Dim, int64_t Index,
                      const Tensor &GradOut);

} // namespace grad
} // namespace qfx

#endif // QFX_TRAIN_GRADKERNELS_H
