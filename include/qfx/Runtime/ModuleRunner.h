//===- ModuleRunner.h - Type inference and execution of modules -*- C++ -*-===//
//
// A call_module node runs either a standard leaf kind (Conv2d, ReLU ...,
// through the op table's bindModuleCall) or a fused kind made by the fuse
// pass (ConvReLU2d, ConvBn2d, ConvAdd2d ...). Fused kinds are containers
// like torch.ao.nn.intrinsic's: their children are standard modules named
// "0", "1", ... that run in order; residual kinds add their second input
// after the conv. The fused kinds are described once, in a data table.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_RUNTIME_MODULERUNNER_H
#define QFX_RUNTIME_MODULERUNNER_H

#include "qfx/IR/Graph.h"
#include "qfx/Runtime/Op.h"
#include "qfx/Support/Tensor.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <vector>

namespace qfx {

class GraphModule;
class ModuleInfo;

/// One step of a fused kind's forward().
struct FusedStep {
  enum class Kind : uint8_t {
    /// Apply child Child (of kind ChildKind) to the running value.
    RunChild,
    /// Add the module's second input to the running value (the "add" op).
    AddOther
  };
  Kind K;
  const char *Child = nullptr;
  const char *ChildKind = nullptr;
};

/// A fused module kind: how many inputs it takes and what its forward()
/// does. The RunChild steps, in order, list its children.
struct FusedKindDef {
  const char *Kind;
  unsigned NumInputs;
  std::vector<FusedStep> Steps;

  /// (name, kind) of each child, in step order.
  std::vector<std::pair<const char *, const char *>> children() const;
};

/// The fused kind \p Kind, or nullptr for any other kind.
const FusedKindDef *lookupFusedKind(llvm::StringRef Kind);
/// Every fused kind, sorted by name.
llvm::ArrayRef<FusedKindDef> allFusedKinds();

/// The result type of module \p Path applied to \p Inputs (declared tensors
/// suffice). Fails for unknown modules, kinds without an implementation,
/// malformed fused modules and inputs the ops reject.
llvm::Expected<TensorType> inferModule(const GraphModule &GM,
                                       llvm::StringRef Path,
                                       std::vector<Operand> Inputs);

/// Runs module \p Path on \p Inputs. Standard kinds run exactly as
/// bindModuleCall binds them, so results are those of eager forward().
llvm::Expected<Tensor> runModule(const GraphModule &GM, llvm::StringRef Path,
                                 std::vector<Operand> Inputs);

} // namespace qfx

#endif // QFX_RUNTIME_MODULERUNNER_H
