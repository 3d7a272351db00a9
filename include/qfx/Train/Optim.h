//===- Optim.h - SGD and learning-rate schedules ----------------*- C++ -*-===//
//
// torch.optim.SGD over the parameters of a GraphModule (tensors that are not
// buffers), addressed by qualified name, plus the schedules a short training
// run needs. Iteration is over sorted names, so updates are deterministic.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_TRAIN_OPTIM_H
#define QFX_TRAIN_OPTIM_H

#include "qfx/Support/Tensor.h"

#include "llvm/Support/Error.h"

#include <cstdint>
#include <map>
#include <string>

namespace qfx {

class GraphModule;

/// Gradients by qualified parameter name ("conv1.weight").
using GradMap = std::map<std::string, Tensor>;

/// torch.optim.SGD's hyper-parameters (same names and defaults).
struct SGDOptions {
  double LR = 0.01;
  double Momentum = 0;
  double Dampening = 0;
  double WeightDecay = 0;
  bool Nesterov = false;
};

/// Stochastic gradient descent with momentum and weight decay, PyTorch's
/// update: d = g + wd * p; buf = momentum * buf + (1 - dampening) * d (buf =
/// d on the first step); d = nesterov ? d + momentum * buf : buf;
/// p -= lr * d.
class SGD {
public:
  /// Fails on a negative learning rate, momentum or weight decay, or
  /// nesterov without momentum (as PyTorch does).
  static llvm::Expected<SGD> create(SGDOptions Opts);

  /// Updates every parameter of \p GM that has a gradient in \p Grads.
  /// Fails (changing nothing) if a gradient names no f32 parameter of
  /// \p GM or has a different shape.
  llvm::Error step(GraphModule &GM, const GradMap &Grads);

  double lr() const { return Opts.LR; }
  void setLR(double LR) { Opts.LR = LR; }
  const SGDOptions &options() const { return Opts; }
  /// Momentum buffers by parameter name (checkpointing, tests).
  const std::map<std::string, Tensor> &momentumBuffers() const { return Buf; }

private:
  explicit SGD(SGDOptions Opts) : Opts(Opts) {}
  SGDOptions Opts;
  std::map<std::string, Tensor> Buf;
};

/// A learning rate per optimizer step.
struct LRSchedule {
  enum class Kind {
    Constant, ///< Base
    Step,     ///< Base * Gamma^(step / StepSize) (torch StepLR)
    Cosine,   ///< linear warm-up over WarmupSteps, then cosine from Base to
              ///< MinLR at TotalSteps (CosineAnnealingLR)
  };
  Kind K = Kind::Constant;
  double Base = 0.01;
  double MinLR = 0;
  double Gamma = 0.1;
  int64_t StepSize = 1;
  int64_t WarmupSteps = 0;
  int64_t TotalSteps = 1;

  /// The learning rate for step \p Step (0-based); steps past TotalSteps
  /// keep the last rate.
  double at(int64_t Step) const;
  /// Parses "constant", "step:<size>:<gamma>" or "cosine[:<warmup steps>]";
  /// the error says what is wrong.
  static llvm::Expected<LRSchedule> parse(llvm::StringRef Spec, double Base,
                                          int64_t TotalSteps);
};

} // namespace qfx

#endif // QFX_TRAIN_OPTIM_H
