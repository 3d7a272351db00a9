//===- Functional.h - torch.nn.functional for Values ------------*- C++ -*-===//
//
// The functional ops model code calls (F::relu(conv(x))). Each runs eagerly
// on concrete Values and is recorded as call_function on symbolic ones;
// recorded calls list positional arguments up to the last one that differs
// from its default, as Python code would spell them.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_NN_FUNCTIONAL_H
#define QFX_NN_FUNCTIONAL_H

#include "qfx/NN/Value.h"

#include <optional>
#include <string>
#include <vector>

namespace qfx {
namespace nn {
namespace F {

Value relu(const Value &X);
Value relu6(const Value &X);
Value hardtanh(const Value &X, double MinVal = -1.0, double MaxVal = 1.0);
Value hardswish(const Value &X);
Value hardsigmoid(const Value &X);
Value sigmoid(const Value &X);
Value tanh(const Value &X);
Value leaky_relu(const Value &X, double NegativeSlope = 0.01);
/// x * sigmoid(x), one op (F.silu), not a sigmoid and a mul.
Value silu(const Value &X);

/// Stride defaults to the kernel size (an empty vector means default).
Value max_pool2d(const Value &X, std::vector<int64_t> KernelSize,
                 std::vector<int64_t> Stride = {},
                 std::vector<int64_t> Padding = {0},
                 std::vector<int64_t> Dilation = {1}, bool CeilMode = false);
Value max_pool2d(const Value &X, int64_t KernelSize, int64_t Stride = 0);
Value avg_pool2d(const Value &X, std::vector<int64_t> KernelSize,
                 std::vector<int64_t> Stride = {},
                 std::vector<int64_t> Padding = {0}, bool CeilMode = false,
                 bool CountIncludePad = true,
                 std::optional<int64_t> DivisorOverride = std::nullopt);
Value avg_pool2d(const Value &X, int64_t KernelSize, int64_t Stride = 0);
Value adaptive_avg_pool2d(const Value &X, std::vector<int64_t> OutputSize);

Value linear(const Value &X, const Value &Weight, const Value &Bias = {});
Value conv2d(const Value &X, const Value &Weight, const Value &Bias = {},
             std::vector<int64_t> Stride = {1},
             std::vector<int64_t> Padding = {0},
             std::vector<int64_t> Dilation = {1}, int64_t Groups = 1);
// Conv family.
Value conv1d(const Value &X, const Value &Weight, const Value &Bias = {},
             int64_t Stride = 1, int64_t Padding = 0, int64_t Dilation = 1,
             int64_t Groups = 1);
Value conv_transpose2d(const Value &X, const Value &Weight,
                       const Value &Bias = {},
                       std::vector<int64_t> Stride = {1},
                       std::vector<int64_t> Padding = {0},
                       std::vector<int64_t> OutputPadding = {0},
                       int64_t Groups = 1, std::vector<int64_t> Dilation = {1});
Value batch_norm(const Value &X, const Value &RunningMean,
                 const Value &RunningVar, const Value &Weight = {},
                 const Value &Bias = {}, bool Training = false,
                 double Momentum = 0.1, double Eps = 1e-5);

Value add(const Value &A, const Value &B);
Value mul(const Value &A, const Value &B);
Value cat(const std::vector<Value> &Tensors, int64_t Dim = 0);
Value flatten(const Value &X, int64_t StartDim = 0, int64_t EndDim = -1);
Value softmax(const Value &X, int64_t Dim);
Value dropout(const Value &X, double P = 0.5, bool Training = false);

//===--- arith family ---===//

/// torch.sub / torch.rsub / torch.div with a tensor or scalar other;
/// rounding_mode is "" (None), "trunc" or "floor".
Value sub(const Value &A, const Value &B, double Alpha = 1.0);
Value sub(const Value &A, double S);
Value rsub(const Value &A, double S);
Value div(const Value &A, const Value &B, const std::string &RoundingMode = "");
Value div(const Value &A, double S, const std::string &RoundingMode = "");
Value neg(const Value &X);
Value reciprocal(const Value &X);

/// F.interpolate's options: exactly one of Size and ScaleFactor.
struct InterpolateOptions {
  std::optional<std::vector<int64_t>> Size;
  std::optional<std::vector<double>> ScaleFactor;
  /// "nearest" or "bilinear".
  std::string Mode = "nearest";
  std::optional<bool> AlignCorners;
  std::optional<bool> RecomputeScaleFactor;
};
Value interpolate(const Value &X, const InterpolateOptions &O);
/// F.embedding: rows of \p Weight picked by s64 \p Indices.
Value embedding(const Value &Indices, const Value &Weight,
                std::optional<int64_t> PaddingIdx = std::nullopt);
/// torch.narrow.
Value narrow(const Value &X, int64_t Dim, int64_t Start, int64_t Length);
/// torch.split / torch.chunk: one narrow per piece (the IR has one tensor
/// per node, so each piece is its own node, like the getitem nodes torch.fx
/// records after a split).
std::vector<Value> split(const Value &X, int64_t SplitSize, int64_t Dim = 0);
std::vector<Value> split(const Value &X, const std::vector<int64_t> &Sizes,
                         int64_t Dim = 0);
std::vector<Value> chunk(const Value &X, int64_t Chunks, int64_t Dim = 0);
// Transformer ops.
/// F.layer_norm over the trailing \p NormalizedShape dimensions.
Value layer_norm(const Value &X, std::vector<int64_t> NormalizedShape,
                 const Value &Weight = {}, const Value &Bias = {},
                 double Eps = 1e-5);
/// F.gelu; \p Approximate is "none" (erf) or "tanh".
Value gelu(const Value &X, const std::string &Approximate = "none");
/// torch.matmul (broadcasting batch dimensions).
Value matmul(const Value &A, const Value &B);
/// torch.bmm ([b,n,k] x [b,k,m]).
Value bmm(const Value &A, const Value &B);

} // namespace F
} // namespace nn
} // namespace qfx

#endif // QFX_NN_FUNCTIONAL_H
