//===- Functional.cpp - torch.nn.functional for Values --------------------===//
//
// Every function passes all of its arguments positionally in schema order;
// the tracer drops trailing ones that equal their defaults when recording.
//
//===----------------------------------------------------------------------===//

#include "qfx/NN/Functional.h"

using namespace qfx;
using namespace qfx::nn;

Value F::relu(const Value &X) { return dispatch("relu", {X}); }
Value F::relu6(const Value &X) { return dispatch("relu6", {X}); }
Value F::hardtanh(const Value &X, double MinVal, double MaxVal) {
  return dispatch("hardtanh", {X, MinVal, MaxVal});
}
Value F::hardswish(const Value &X) { return dispatch("hardswish", {X}); }
Value F::hardsigmoid(const Value &X) { return dispatch("hardsigmoid", {X}); }
Value F::sigmoid(const Value &X) { return dispatch("sigmoid", {X}); }
Value F::tanh(const Value &X) { return dispatch("tanh", {X}); }
Value F::silu(const Value &X) { return dispatch("silu", {X}); }
Value F::leaky_relu(const Value &X, double NegativeSlope) {
  return dispatch("leaky_relu", {X, NegativeSlope});
}

/// PyTorch prints a pair given as one int as that int; keep the user's
/// spelling: one element stays a scalar.
static OpArg intOrList(const std::vector<int64_t> &V) {
  if (V.size() == 1)
    return OpArg(V[0]);
  return OpArg(V);
}

static OpArg strideArg(const std::vector<int64_t> &Stride) {
  if (Stride.empty())
    return OpArg(Argument::none());
  return intOrList(Stride);
}

Value F::max_pool2d(const Value &X, std::vector<int64_t> KernelSize,
                    std::vector<int64_t> Stride, std::vector<int64_t> Padding,
                    std::vector<int64_t> Dilation, bool CeilMode) {
  return dispatch("max_pool2d",
                  {X, intOrList(KernelSize), strideArg(Stride),
                   intOrList(Padding), intOrList(Dilation), CeilMode});
}

Value F::max_pool2d(const Value &X, int64_t KernelSize, int64_t Stride) {
  return max_pool2d(X, std::vector<int64_t>{KernelSize},
                    Stride ? std::vector<int64_t>{Stride}
                           : std::vector<int64_t>{});
}

Value F::avg_pool2d(const Value &X, std::vector<int64_t> KernelSize,
                    std::vector<int64_t> Stride, std::vector<int64_t> Padding,
                    bool CeilMode, bool CountIncludePad,
                    std::optional<int64_t> DivisorOverride) {
  OpArg Div =
      DivisorOverride ? OpArg(*DivisorOverride) : OpArg(Argument::none());
  return dispatch("avg_pool2d",
                  {X, intOrList(KernelSize), strideArg(Stride),
                   intOrList(Padding), CeilMode, CountIncludePad, Div});
}

Value F::avg_pool2d(const Value &X, int64_t KernelSize, int64_t Stride) {
  return avg_pool2d(X, std::vector<int64_t>{KernelSize},
                    Stride ? std::vector<int64_t>{Stride}
                           : std::vector<int64_t>{});
}

Value F::adaptive_avg_pool2d(const Value &X, std::vector<int64_t> OutputSize) {
  return dispatch("adaptive_avg_pool2d", {X, intOrList(OutputSize)});
}

Value F::linear(const Value &X, const Value &Weight, const Value &Bias) {
  return dispatch("linear", {X, Weight, Bias});
}

Value F::conv2d(const Value &X, const Value &Weight, const Value &Bias,
                std::vector<int64_t> Stride, std::vector<int64_t> Padding,
                std::vector<int64_t> Dilation, int64_t Groups) {
  return dispatch("conv2d", {X, Weight, Bias, intOrList(Stride),
                             intOrList(Padding), intOrList(Dilation), Groups});
}

Value F::conv1d(const Value &X, const Value &Weight, const Value &Bias,
                int64_t Stride, int64_t Padding, int64_t Dilation,
                int64_t Groups) {
  return dispatch("conv1d",
                  {X, Weight, Bias, Stride, Padding, Dilation, Groups});
}

Value F::conv_transpose2d(const Value &X, const Value &Weight,
                          const Value &Bias, std::vector<int64_t> Stride,
                          std::vector<int64_t> Padding,
                          std::vector<int64_t> OutputPadding, int64_t Groups,
                          std::vector<int64_t> Dilation) {
  return dispatch("conv_transpose2d",
                  {X, Weight, Bias, intOrList(Stride), intOrList(Padding),
                   intOrList(OutputPadding), Groups, intOrList(Dilation)});
}

Value F::batch_norm(const Value &X, const Value &RunningMean,
                    const Value &RunningVar, const Value &Weight,
                    const Value &Bias, bool Training, double Momentum,
                    double Eps) {
  return dispatch("batch_norm", {X, RunningMean, RunningVar, Weight, Bias,
                                 Training, Momentum, Eps});
}

Value F::add(const Value &A, const Value &B) { return dispatch("add", {A, B}); }
Value F::mul(const Value &A, const Value &B) { return dispatch("mul", {A, B}); }

Value F::cat(const std::vector<Value> &Tensors, int64_t Dim) {
  return dispatch("cat", {Tensors, Dim});
}

Value F::flatten(const Value &X, int64_t StartDim, int64_t EndDim) {
  return dispatch("flatten", {X, StartDim, EndDim});
}

Value F::softmax(const Value &X, int64_t Dim) {
  return dispatch("softmax", {X, Dim});
}

Value F::dropout(const Value &X, double P, bool Training) {
  return dispatch("dropout", {X, P, Training});
}

//===----------------------------------------------------------------------===//
// Transformer ops
//===----------------------------------------------------------------------===//

Value F::layer_norm(const Value &X, std::vector<int64_t> NormalizedShape,
                    const Value &Weight, const Value &Bias, double Eps) {
  return dispatch("layer_norm",
                  {X, OpArg(std::move(NormalizedShape)), Weight, Bias, Eps});
}

Value F::gelu(const Value &X, const std::string &Approximate) {
  return dispatch("gelu", {X, OpArg(Argument::string(Approximate))});
}

Value F::matmul(const Value &A, const Value &B) {
  return dispatch("matmul", {A, B});
}

Value F::bmm(const Value &A, const Value &B) { return dispatch("bmm", {A, B}); }
