//===- Observer.h - Calibration observers -----------------------*- C++ -*-===//
//
// Observers watch the tensors flowing through a point of the graph and turn
// what they saw into quantization parameters, with the same numerics as
// torch.ao.quantization (1.13). In the IR an observer is a module whose kind
// is the observer's class name, whose attributes are its ObserverSpec and
// whose buffers are its state, so calibration can be saved and resumed.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_QUANT_OBSERVER_H
#define QFX_QUANT_OBSERVER_H

#include "qfx/IR/GraphModule.h"
#include "qfx/Quant/QConfig.h"
#include "qfx/Support/Tensor.h"

#include "llvm/Support/Error.h"

#include <memory>
#include <string>
#include <vector>

namespace qfx {

/// Base class of every observer.
class Observer {
public:
  explicit Observer(ObserverSpec Spec) : Spec(std::move(Spec)) {}
  virtual ~Observer();

  /// Creates the observer \p Spec describes (asserts Spec.validate()).
  static std::unique_ptr<Observer> create(const ObserverSpec &Spec);
  /// Recreates an observer from an observer module (spec from attributes,
  /// state from buffers); errors name what is missing or malformed.
  static llvm::Expected<std::unique_ptr<Observer>>
  fromModule(const ModuleInfo &M);

  const ObserverSpec &spec() const { return Spec; }

  /// Records one f32 tensor (a batch), unless it is one PyTorch's observer
  /// raises on (see problem()).
  virtual void observe(const Tensor &X) = 0;
  /// Why observe() refused a tensor where PyTorch's observer raises (e.g. a
  /// NaN for a histogram observer), or empty. The refused tensor is not
  /// recorded; later ones are ignored and calculateQParams reports the
  /// problem. Calibration (runObserverModule) fails with it at once.
  const std::string &problem() const { return Problem; }
  /// Whether anything has been observed.
  virtual bool hasObserved() const = 0;
  /// Scale and zero point (per tensor or per channel), as PyTorch's
  /// calculate_qparams; an error if nothing was observed, if observe()
  /// refused a tensor, or if the observed range gives a non-finite scale.
  virtual llvm::Expected<QuantParams> calculateQParams() const = 0;

  /// State as buffers ("min_val", "max_val", "histogram" ...), in a fixed
  /// order.
  virtual std::vector<NamedTensor> state() const = 0;
  /// Restores state() output; errors name the buffer and the problem.
  virtual llvm::Error loadState(const ModuleInfo &M) = 0;

  /// Writes kind, spec attributes and state buffers into \p M.
  void toModule(ModuleInfo &M) const;

protected:
  ObserverSpec Spec;
  /// See problem().
  std::string Problem;
};

/// PyTorch's _calculate_qparams for a per-tensor range (min_val, max_val are
/// widened to include 0; symmetric schemes center the zero point), exposed
/// for the observers and for tests.
QuantParams calculateQParams(double MinVal, double MaxVal,
                             const ObserverSpec &Spec);

} // namespace qfx

#endif // QFX_QUANT_OBSERVER_H
