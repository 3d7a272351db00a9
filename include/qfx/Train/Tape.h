//===- Tape.h - Reverse-mode differentiation of a GraphModule ---*- C++ -*-===//
//
// Training runs a GraphModule forward while recording, per node, the
// operands and whatever its backward needs (batch statistics, dropout and
// fake-quant masks); backward() then walks the recorded nodes in reverse and
// applies each op's vector-Jacobian product from a data table of gradient
// rules (lib/Train/GradRules.cpp).
//
// Why a tape over the existing graph instead of a pass that builds a
// backward graph: the forward graph already is a static, topologically
// ordered tape, so reversing it costs nothing; training-only state (batch
// statistics, running-stat updates, random dropout masks, fake-quant masks
// and observer updates) lives naturally next to each recorded node; and
// gradient kernels need no IR ops, schemas or serialization of their own.
// A backward graph would pay off for lowering training to oneDNN as a whole
// program, which training a model for QAT does not need.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_TRAIN_TAPE_H
#define QFX_TRAIN_TAPE_H

#include "qfx/Support/Tensor.h"
#include "qfx/Train/Optim.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace qfx {

class GraphModule;
struct TapeState;

/// Training switches, as torch.nn.Module.train()/eval() and the QAT
/// helpers (freeze_bn_stats) set them.
struct TapeOptions {
  /// Training mode: batch norm normalizes with batch statistics and updates
  /// its running statistics; dropout drops. Eval mode runs as the
  /// interpreter does and records nothing.
  bool Training = true;
  /// PyTorch's freeze_bn_stats: batch norm (standalone or inside ConvBn2d)
  /// uses and keeps its running statistics even in training mode.
  bool FreezeBatchNorm = false;
  /// Also compute gradients with respect to the graph's inputs.
  bool InputGradients = false;
  /// Seeds the dropout masks.
  uint64_t Seed = 0;
};

/// Differentiates one GraphModule; parameters and buffers are read from and
/// updated in the GraphModule itself (running statistics, observer state).
/// Supported nodes: every op of the op table that has a gradient rule,
/// the standard modules, the fused kinds of ModuleRunner.h, observers and
/// FakeQuantize modules (straight-through estimator), and QAT modules with
/// a weight_fake_quant child, ConvBn2d / ConvBnReLU2d / LinearBn1d trained
/// as PyTorch's torch.nn.intrinsic.qat modules do (the weight
/// fake-quantized after scaling by gamma / sqrt(running_var + eps)). Anything
/// else is an error naming the node.
class Tape {
public:
  explicit Tape(GraphModule &GM, TapeOptions Opts = {});
  ~Tape();
  Tape(const Tape &) = delete;
  Tape &operator=(const Tape &) = delete;

  TapeOptions &options() { return Opts; }
  GraphModule &graphModule() { return GM; }
  /// train() / eval().
  void setTraining(bool On) { Opts.Training = On; }

  /// Runs the graph on \p Inputs (one per placeholder) and returns its
  /// outputs. In training mode, records the tape for backward(), replacing
  /// any previous recording.
  llvm::Expected<std::vector<Tensor>> forward(llvm::ArrayRef<Tensor> Inputs);

  /// Back-propagates \p GradOutputs (one per output of the last training
  /// forward, same shapes) and accumulates parameter gradients into grads().
  /// Releases the recording. Fails without a recording or on a shape
  /// mismatch.
  llvm::Error backward(llvm::ArrayRef<Tensor> GradOutputs);

  /// Accumulated gradients by qualified parameter name (only parameters the
  /// outputs depend on appear).
  const GradMap &grads() const { return Grads; }
  void zeroGrad() { Grads.clear(); }
  /// With InputGradients: the gradient of input \p I from the last
  /// backward (an empty Tensor() if the output does not depend on it).
  const Tensor &inputGrad(size_t I) const;

  /// The trainable parameters: f32 non-buffer tensors outside observer and
  /// FakeQuantize modules, in state_dict order.
  std::vector<std::string> parameterNames() const;

private:
  GraphModule &GM;
  TapeOptions Opts;
  std::mt19937_64 Rng;
  std::unique_ptr<TapeState> State;
  GradMap Grads;
  std::vector<Tensor> InputGrads;
};

} // namespace qfx

#endif // QFX_TRAIN_TAPE_H
