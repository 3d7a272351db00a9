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
