//===- TransformerKernels.h - Transformer reference kernels ----*- C++ -*-===//
//
// layer_norm, gelu, matmul / bmm, expand and select: shape functions (which
// report the errors users cause) and f32 reference kernels (which assume
// validated operands), as PyTorch 1.13 computes them. Private to the library:
// the op table, the gradient rules and the lowering use them.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_LIB_RUNTIME_TRANSFORMERKERNELS_H
#define QFX_LIB_RUNTIME_TRANSFORMERKERNELS_H

#include "qfx/Support/Tensor.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/Support/Error.h"

namespace qfx {
namespace ref {

/// The number of trailing elements layer_norm normalizes over, after
/// checking \p Norm against \p Input's trailing dimensions.
llvm::Expected<int64_t> layerNormSize(llvm::ArrayRef<int64_t> Input,
                                      llvm::ArrayRef<int64_t> Norm);
/// torch.matmul's result shape (1-d operands, batch broadcasting).
llvm::Expected<Shape> matmulShape(llvm::ArrayRef<int64_t> A,
                                  llvm::ArrayRef<int64_t> B);
/// torch.bmm's result shape: [b,n,k] x [b,k,m] -> [b,n,m].
llvm::Expected<Shape> bmmShape(llvm::ArrayRef<int64_t> A,
                               llvm::ArrayRef<int64_t> B);
/// Tensor.expand's result shape: -1 keeps a dimension, size-1 dimensions
/// grow, new dimensions go in front.
llvm::Expected<Shape> expandShape(llvm::ArrayRef<int64_t> Input,
                                  llvm::ArrayRef<int64_t> Sizes);
/// Tensor.select's result shape (the dimension removed) and the
/// non-negative dimension and index.
struct SelectSpec {
  int64_t Dim, Index;
  Shape Out;
};
llvm::Expected<SelectSpec> selectSpec(llvm::ArrayRef<int64_t> Input,
                                      int64_t Dim, int64_t Index);

/// y = (x - mean) / sqrt(var + eps) * w + b over the last \p M elements
/// (biased variance); \p W and \p B may be null. \p Mean and \p Rstd, when
/// given, receive the per-row statistics (for the backward pass).
Tensor layerNorm(const Tensor &X, int64_t M, const Tensor *W, const Tensor *B,
                 double Eps, std::vector<float> *Mean = nullptr,
                 std::vector<float> *Rstd = nullptr);
/// 0.5 x (1 + erf(x / sqrt 2)), or the tanh approximation.
Tensor gelu(const Tensor &X, bool Tanh);
/// d gelu / dx at each element of \p X.
Tensor geluDerivative(const Tensor &X, bool Tanh);
/// torch.matmul on f32 tensors (shapes checked by matmulShape).
Tensor matmul(const Tensor &A, const Tensor &B);
/// Tensor.expand (materialized).
Tensor expand(const Tensor &X, llvm::ArrayRef<int64_t> Out);
/// Tensor.select (materialized, any dtype; keeps \p X's qparams).
Tensor select(const Tensor &X, int64_t Dim, int64_t Index);
/// Sums \p G of shape Out back to \p In's shape (the adjoint of expand and
/// of broadcasting).
Tensor sumTo(const Tensor &G, llvm::ArrayRef<int64_t> In);

} // namespace ref
} // namespace qfx

#endif // QFX_LIB_RUNTIME_TRANSFORMERKERNELS_H
