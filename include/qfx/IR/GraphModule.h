//===- GraphModule.h - A graph and the module tree it refers to -*- C++ -*-===//
//
// Like torch.fx.GraphModule: the graph plus the modules its call_module nodes
// name and the parameters and buffers its get_attr nodes read, addressed by
// qualified names such as "layer1.0.conv1" and "layer1.0.conv1.weight".
//
//===----------------------------------------------------------------------===//

#ifndef QFX_IR_GRAPHMODULE_H
#define QFX_IR_GRAPHMODULE_H

#include "qfx/IR/Graph.h"
#include "qfx/Support/Tensor.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace qfx {

/// Module attributes (hyper-parameters such as stride or eps), sorted by
/// name so that printing and serialization are deterministic. Values are
/// non-node Arguments.
using AttrMap = std::map<std::string, Argument>;

/// A tensor owned by a module: a parameter (trained) or a buffer (state such
/// as BatchNorm's running statistics or an observer's min/max).
struct NamedTensor {
  std::string Name;
  bool IsBuffer = false;
  Tensor Value;
};

/// One module of the tree: a kind ("Conv2d", "BatchNorm2d", a user class
/// name ...), attributes, tensors and children, all in insertion order (the
/// order PyTorch's state_dict uses).
class ModuleInfo {
public:
  explicit ModuleInfo(std::string Kind = "Module") : Kind(std::move(Kind)) {}

  llvm::StringRef kind() const { return Kind; }
  void setKind(std::string K) { Kind = std::move(K); }

  const AttrMap &attrs() const { return Attrs; }
  /// The attribute \p Name, or nullptr.
  const Argument *attr(llvm::StringRef Name) const;
  /// Asserts that \p Value contains no node reference.
  void setAttr(llvm::StringRef Name, Argument Value);
  bool eraseAttr(llvm::StringRef Name);

  const std::vector<NamedTensor> &tensors() const { return Tensors; }
  /// The tensor \p Name (a parameter or buffer of this module), or nullptr.
  const Tensor *tensor(llvm::StringRef Name) const;
  Tensor *tensor(llvm::StringRef Name);
  /// Replaces an existing tensor of that name (keeping its position and its
  /// parameter/buffer role) or appends a new one.
  void setTensor(llvm::StringRef Name, Tensor Value, bool IsBuffer = false);
  bool eraseTensor(llvm::StringRef Name);

  /// Children in insertion order.
  const std::vector<std::pair<std::string, std::unique_ptr<ModuleInfo>>> &
  children() const {
    return Children;
  }
  ModuleInfo *child(llvm::StringRef Name) const;
  /// Adds a child (asserts the name is new and contains no '.').
  ModuleInfo &addChild(llvm::StringRef Name, std::string Kind);
  bool eraseChild(llvm::StringRef Name);

private:
  std::string Kind;
  AttrMap Attrs;
  std::vector<NamedTensor> Tensors;
  std::vector<std::pair<std::string, std::unique_ptr<ModuleInfo>>> Children;
};

/// A graph together with its root module.
class GraphModule {
public:
  explicit GraphModule(std::string RootKind = "GraphModule")
      : Root(std::move(RootKind)) {}
  GraphModule(const GraphModule &) = delete;
  GraphModule &operator=(const GraphModule &) = delete;

  Graph &graph() { return G; }
  const Graph &graph() const { return G; }
  ModuleInfo &root() { return Root; }
  const ModuleInfo &root() const { return Root; }

  /// The module with qualified name \p Path ("" is the root), or nullptr.
  ModuleInfo *lookupModule(llvm::StringRef Path) const;
  /// Creates the module \p Path, creating missing parents with kind
  /// "Module"; if it exists, sets its kind and returns it.
  ModuleInfo &addModule(llvm::StringRef Path, std::string Kind);
  /// Removes the module \p Path and its children; false if absent.
  bool eraseModule(llvm::StringRef Path);

  /// The tensor with qualified name \p Path ("conv1.weight", or "w" on the
  /// root), or nullptr.
  const Tensor *lookupTensor(llvm::StringRef Path) const;
  Tensor *lookupTensor(llvm::StringRef Path);
  /// Sets a tensor by qualified name; the owning module must exist (fails
  /// with an error naming it otherwise).
  llvm::Error setTensor(llvm::StringRef Path, Tensor Value,
                        bool IsBuffer = false);

  /// Qualified names of all modules, pre-order, root excluded
  /// (torch's named_modules() order).
  std::vector<std::string> moduleNames() const;
  /// All tensors with qualified names, in state_dict order (a module's own
  /// tensors, then its children's).
  std::vector<std::pair<std::string, const Tensor *>> namedTensors() const;

  /// A deep copy (graph, modules and tensor storage).
  std::unique_ptr<GraphModule> clone() const;

private:
  ModuleInfo Root;
  Graph G;
};

/// Splits "a.b.c" into ("a.b", "c"); ("", "c") for "c".
std::pair<llvm::StringRef, llvm::StringRef>
splitQualifiedName(llvm::StringRef Path);

} // namespace qfx

#endif // QFX_IR_GRAPHMODULE_H
