//===- ObserverModule.h - Observer and FakeQuantize modules -----*- C++ -*-===//
//
// How observers live in a GraphModule (docs/quantization.md): an observer
// module's kind is the observer class, its attributes the ObserverSpec and
// its buffers the state; a FakeQuantize module wraps one observer (kind
// "FakeQuantize", attribute `observer` = the observer class) and adds the
// buffers `scale`, `zero_point`, `fake_quant_enabled`, `observer_enabled`.
// prepare builds these modules, calibration runs them, convert reads them.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_QUANT_OBSERVERMODULE_H
#define QFX_QUANT_OBSERVERMODULE_H

#include "qfx/Quant/Observer.h"

#include "llvm/Support/Error.h"

#include <memory>

namespace qfx {

class GraphModule;
class ModuleInfo;

/// The kind of FakeQuantize modules.
constexpr const char *FakeQuantizeKind = "FakeQuantize";

/// Whether \p M is a FakeQuantize module.
bool isFakeQuantizeModule(const ModuleInfo &M);
/// Whether \p M is an observer or a FakeQuantize module.
bool isObserverModule(const ModuleInfo &M);

/// Makes \p M a fresh (nothing observed) observer module for \p Spec.
void initObserverModule(ModuleInfo &M, const ObserverSpec &Spec);
/// Makes \p M a fresh FakeQuantize module around \p Spec's observer, with
/// both switches on and PyTorch's initial scale 1 / zero point 0 (the fixed
/// qparams for FixedQParams observers).
void initFakeQuantizeModule(ModuleInfo &M, const ObserverSpec &Spec);

/// The observer of an observer or FakeQuantize module, with its state.
llvm::Expected<std::unique_ptr<Observer>> loadObserver(const ModuleInfo &M);
/// Writes \p O's state back into \p M, the module it was loaded from.
void storeObserver(const Observer &O, ModuleInfo &M);

/// The module's observer class name: its kind, or for FakeQuantize the
/// wrapped observer's ("HistogramObserver").
llvm::StringRef observerClassName(const ModuleInfo &M);
/// "HistogramObserver", or "FakeQuantize(MovingAverageMinMaxObserver)".
std::string describeObserverModule(const ModuleInfo &M);

/// The module holding weighted module \p M's `weight`: \p M itself, or the
/// conv / linear child "0" of a fused module (ConvReLU2d ...); nullptr if
/// neither has one.
ModuleInfo *weightHolder(ModuleInfo &M);

/// Runs observer or FakeQuantize module \p M on \p X as PyTorch's forward
/// does, updating its buffers: an observer records X and returns it; a
/// FakeQuantize records X if observer_enabled (and refreshes scale and
/// zero_point), then fake-quantizes X if fake_quant_enabled. Errors name
/// \p Path.
llvm::Expected<Tensor> runObserverModule(ModuleInfo &M, llvm::StringRef Path,
                                         const Tensor &X);
/// The same, also storing in \p Mask (when non-null) the straight-through
/// estimator's mask of what was returned: an f32 tensor of X's shape, 1
/// where the gradient passes (inside [quant_min, quant_max] after rounding)
/// and 0 where it is clamped; left untouched when X is returned as is
/// (plain observers, fake quantization disabled), whose gradient is the
/// identity.
llvm::Expected<Tensor> runObserverModule(ModuleInfo &M, llvm::StringRef Path,
                                         const Tensor &X, Tensor *Mask);

/// torch.ao.quantization's enable_observer / disable_observer and
/// enable_fake_quant / disable_fake_quant over every FakeQuantize module of
/// \p GM (freezing observers keeps the qparams they reached).
void setObserverEnabled(GraphModule &GM, bool On);
void setFakeQuantEnabled(GraphModule &GM, bool On);

} // namespace qfx

#endif // QFX_QUANT_OBSERVERMODULE_H
