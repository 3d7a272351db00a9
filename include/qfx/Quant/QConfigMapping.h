//===- QConfigMapping.h - Which qconfig applies where -----------*- C++ -*-===//
//
// torch.ao.quantization.QConfigMapping: a global qconfig overridden by
// object type (module kinds and functions), module-name regexes, module
// names (inherited by submodules) and (module name, object type, call
// index), resolved with PyTorch's priority. A qconfig of none keeps a node
// float. Every resolution says which rule decided, for the explain report.
// Fused modules are resolved as PyTorch 1.13's update_qconfig_for_fusion
// does (see assign()).
//
//===----------------------------------------------------------------------===//

#ifndef QFX_QUANT_QCONFIGMAPPING_H
#define QFX_QUANT_QCONFIGMAPPING_H

#include "qfx/Quant/QConfig.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace qfx {

class GraphModule;
class Node;

/// A qconfig, or none (keep float).
using OptQConfig = std::optional<QConfig>;

/// The rules, lowest priority first.
enum class QConfigRule : uint8_t {
  /// Nothing set at all (not even a global qconfig).
  Unset,
  Global,
  ObjectType,
  ModuleNameRegex,
  ModuleName,
  ModuleNameObjectTypeOrder,
};
llvm::StringRef qconfigRuleName(QConfigRule R);

/// The outcome of resolving one node.
struct QConfigDecision {
  OptQConfig QC;
  QConfigRule Rule = QConfigRule::Unset;
  /// The key of the rule that matched ("Conv2d", "layer1\\..*",
  /// "layer1.0", "layer1.0:add:1"); empty for global/unset.
  std::string Key;
};

class QConfigMapping {
public:
  QConfigMapping &setGlobal(OptQConfig QC);
  /// \p Type is a module kind ("Conv2d") or a function name ("add").
  QConfigMapping &setObjectType(std::string Type, OptQConfig QC);
  /// ECMAScript-style regex matched against the whole module name from its
  /// start (Python's re.match); the first matching regex wins.
  QConfigMapping &setModuleNameRegex(std::string Regex, OptQConfig QC);
  QConfigMapping &setModuleName(std::string Name, OptQConfig QC);
  QConfigMapping &setModuleNameObjectTypeOrder(std::string ModuleName,
                                               std::string Type, int64_t Index,
                                               OptQConfig QC);

  /// A call_module of kind \p Kind at \p Path, the \p Index-th call of that
  /// kind inside its parent module's forward.
  QConfigDecision resolveModule(llvm::StringRef Path, llvm::StringRef Kind,
                                int64_t Index) const;
  /// A call_function \p Fn called from the forward of module \p ScopePath
  /// (of kind \p ScopeKind), the \p Index-th call of \p Fn there: the
  /// function's object_type rule, then the enclosing module's rules.
  QConfigDecision resolveFunction(llvm::StringRef Fn, llvm::StringRef ScopePath,
                                  llvm::StringRef ScopeKind,
                                  int64_t Index) const;
  /// A call_method or get_attr inside module \p ScopePath.
  QConfigDecision resolveScope(llvm::StringRef ScopePath,
                               llvm::StringRef ScopeKind) const;
  /// A call_method \p Method inside module \p ScopePath: like resolveScope,
  /// but an object_type rule for the method name ("reshape") stands in for
  /// the global qconfig, as PyTorch's _generate_node_name_to_qconfig does.
  QConfigDecision resolveMethod(llvm::StringRef Method,
                                llvm::StringRef ScopePath,
                                llvm::StringRef ScopeKind) const;

  /// Resolves every get_attr / call_module / call_function / call_method
  /// node of \p GM in graph order (counting call indices per scope like
  /// PyTorch's _generate_node_name_to_qconfig), keyed by node name.
  /// Observer and fake-quantize modules are skipped and not counted.
  ///
  /// A call of a fused module is counted as a call of its first part
  /// (LinearReLU as a Linear), as PyTorch's fused node keeps the traced
  /// scope of its first op. PyTorch's fused kinds (LinearReLU, ConvReLU2d,
  /// ConvBnReLU2d, ...) take the object_type rule of their first part when
  /// the parts' object_type rules agree (update_qconfig_for_fusion); where
  /// they disagree assign() ignores the parts' rules and
  /// checkFusedModules() reports the conflict. qfx's ConvAdd2d and
  /// ConvAddReLU2d, which PyTorch never fuses, resolve as their conv, and
  /// the calls they absorbed (node meta `fused_calls`, set by the fuse
  /// pass) still count, so later adds keep PyTorch's call indices.
  std::map<std::string, QConfigDecision> assign(const GraphModule &GM) const;

  /// The mapping errors PyTorch 1.13 raises for \p GM's fused modules: a
  /// LookupError where the object_type rules of a fused module's parts
  /// differ (an object_type rule for Linear and none for ReLU, with a
  /// LinearReLU), and, for ConvAdd2d / ConvAddReLU2d fused without this
  /// mapping, an absorbed add or relu whose qconfig is not the conv's.
  llvm::Error checkFusedModules(const GraphModule &GM) const;

  /// Parses a qconfig_dict-shaped JSON document: {"": QC, "object_type":
  /// [[type, QC], ...], "module_type": (synonym), "module_name_regex":
  /// [...], "module_name": [...], "module_name_object_type_order": [[name,
  /// type, index, QC], ...]} where QC is null, a preset name, or
  /// {"activation": OBS, "weight": OBS} (OBS: {"observer": "HistogramObserver",
  /// "dtype": "quint8", "qscheme": "per_tensor_affine", "reduce_range":
  /// false, "quant_min": 0, "quant_max": 255, ...}). Errors name the key path
  /// and the problem, prefixed with \p Name.
  static llvm::Expected<QConfigMapping> fromJson(llvm::StringRef Text,
                                                 llvm::StringRef Name);
  static llvm::Expected<QConfigMapping> loadFile(llvm::StringRef Path);
  /// The same document back (presets by name).
  std::string toJson() const;

private:
  /// The resolution functions over this mapping, with its regexes compiled
  /// once (assign() resolves every node with one Resolver).
  struct Resolver;
  /// assign() into \p Out; with \p Check, fails on the first conflict
  /// checkFusedModules() reports.
  llvm::Error resolveAll(const GraphModule &GM,
                         std::map<std::string, QConfigDecision> &Out,
                         bool Check) const;

  OptQConfig Global;
  bool HasGlobal = false;
  std::vector<std::pair<std::string, OptQConfig>> ObjectTypes;
  std::vector<std::pair<std::string, OptQConfig>> Regexes;
  std::vector<std::pair<std::string, OptQConfig>> ModuleNames;
  struct OrderEntry {
    std::string ModuleName, Type;
    int64_t Index;
    OptQConfig QC;
  };
  std::vector<OrderEntry> Orders;
};

/// The `fused_calls` entry the fuse pass records for \p N, a call that a
/// ConvAdd2d / ConvAddReLU2d absorbs: "function:<scope>:<target>",
/// "module:<module path>:<kind>" or "method:<scope>:<target>".
std::string fusedCallEntry(const Node &N, const GraphModule &GM);

/// A short printable name for a qconfig: the preset name when it equals a
/// preset, "none" for none, otherwise "custom".
std::string qconfigDisplayName(const OptQConfig &QC);

} // namespace qfx

#endif // QFX_QUANT_QCONFIGMAPPING_H
