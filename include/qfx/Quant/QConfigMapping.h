//===- QConfigMapping.h - Which qconfig applies where -----------*- C++ -*-===//
//
// torch.ao.quantization.QConfigMapping: a global qconfig overridden by
// object type (module kinds and functions), module-name regexes, module
// names (inherited by submodules) and (module name, object type, call
// index), resolved with PyTorch's priority. A qconfig of none keeps a node
// float. Every resolution says which rule decided, for the explain report.
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
  std::map<std::string, QConfigDecision> assign(const GraphModule &GM) const;

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

/// A short printable name for a qconfig: the preset name when it equals a
/// preset, "none" for none, otherwise "custom".
std::string qconfigDisplayName(const OptQConfig &QC);

} // namespace qfx

#endif // QFX_QUANT_QCONFIGMAPPING_H
