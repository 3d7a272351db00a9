//===- Graph.h - FX-style graph of nodes with use lists ---------*- C++ -*-===//
//
// The IR at the heart of qfx: a Graph is an ordered list of Nodes with
// torch.fx's six opcodes. Every edit goes through this API so that each
// node's list of users always matches the arguments that refer to it.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_IR_GRAPH_H
#define QFX_IR_GRAPH_H

#include "qfx/Support/Tensor.h"

#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/ADT/ilist.h"
#include "llvm/ADT/ilist_node.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace qfx {

class Graph;
class Node;

/// torch.fx's opcodes.
enum class OpCode : uint8_t {
  Placeholder,
  GetAttr,
  CallModule,
  CallFunction,
  CallMethod,
  Output
};

/// "placeholder", "get_attr", "call_module", "call_function", "call_method",
/// "output".
llvm::StringRef opcodeName(OpCode Op);
std::optional<OpCode> parseOpCode(llvm::StringRef Name);

/// A node argument: a reference to another node, a scalar, a string, none,
/// or a list of arguments. Node references are plain pointers; only Node's
/// setters may store them, so that use lists stay right.
class Argument {
public:
  enum class Kind : uint8_t { None, NodeRef, Int, Float, Bool, String, List };

  /// None.
  Argument() = default;
  Argument(Node *N);
  static Argument none() { return Argument(); }
  static Argument integer(int64_t V);
  static Argument real(double V);
  static Argument boolean(bool V);
  static Argument string(std::string V);
  static Argument list(std::vector<Argument> Elems);
  /// A list of ints, the common case for shapes, strides and paddings.
  static Argument ints(llvm::ArrayRef<int64_t> Values);

  Kind kind() const { return K; }
  bool isNone() const { return K == Kind::None; }
  bool isNode() const { return K == Kind::NodeRef; }
  bool isInt() const { return K == Kind::Int; }
  bool isFloat() const { return K == Kind::Float; }
  bool isBool() const { return K == Kind::Bool; }
  bool isString() const { return K == Kind::String; }
  bool isList() const { return K == Kind::List; }

  Node *getNode() const;
  int64_t getInt() const;
  double getFloat() const;
  bool getBool() const;
  const std::string &getString() const;
  const std::vector<Argument> &getList() const;
  /// The list as ints if every element is an int.
  std::optional<std::vector<int64_t>> getIntList() const;

  /// Calls \p F on every node referenced, recursively, in order.
  void forEachNode(llvm::function_ref<void(Node *)> F) const;
  /// Replaces every reference to \p From by \p To (recursively); returns
  /// whether anything changed. Does not update use lists: Node does that.
  bool replaceNode(Node *From, Node *To);

  /// Structural equality; node references compare by identity.
  bool operator==(const Argument &O) const;
  bool operator!=(const Argument &O) const { return !(*this == O); }

private:
  Kind K = Kind::None;
  int64_t I = 0;
  double F = 0.0;
  Node *N = nullptr;
  std::string S;
  std::vector<Argument> L;
};

/// Keyword arguments, in the order they were given (printing keeps it).
using Kwargs = std::vector<std::pair<std::string, Argument>>;

/// Free-form node annotations that passes leave for later passes and
/// reports (e.g. the qconfig a node was given and the rule that chose it),
/// sorted by key so output is deterministic. Values never refer to nodes.
using NodeMeta = std::map<std::string, Argument>;

/// The static type of a node's tensor result: dtype, shape and, for
/// quantized tensors, quantization parameters.
struct TensorType {
  DType Dtype = DType::F32;
  Shape Dims;
  QuantParams Quant;

  bool operator==(const TensorType &O) const {
    return Dtype == O.Dtype && Dims == O.Dims && Quant == O.Quant;
  }
  bool operator!=(const TensorType &O) const { return !(*this == O); }
};

/// One operation. Nodes are owned by their Graph.
class Node : public llvm::ilist_node_with_parent<Node, Graph> {
public:
  Node(const Node &) = delete;
  Node &operator=(const Node &) = delete;
  ~Node();

  llvm::StringRef name() const { return Name; }
  OpCode op() const { return Op; }
  /// Placeholder: input name; get_attr: qualified tensor name; call_module:
  /// qualified module name; call_function / call_method: the op name.
  llvm::StringRef target() const { return Target; }
  void setTarget(std::string T) { Target = std::move(T); }

  llvm::ArrayRef<Argument> args() const { return Args; }
  const Argument &arg(size_t I) const { return Args[I]; }
  size_t numArgs() const { return Args.size(); }
  const Kwargs &kwargs() const { return KwArgs; }
  /// The keyword argument \p Key, or nullptr.
  const Argument *kwarg(llvm::StringRef Key) const;

  /// Setters keep the use lists of the old and new inputs right.
  void setArgs(std::vector<Argument> NewArgs);
  void setArg(size_t I, Argument A);
  void setKwargs(Kwargs NewKwargs);
  /// Sets (or adds, at the end) one keyword argument.
  void setKwarg(llvm::StringRef Key, Argument A);
  /// Replaces every use of \p Old among this node's inputs by \p New.
  void replaceInputWith(Node *Old, Node *New);
  /// Makes every user of this node use \p New instead; returns the users
  /// that changed, in use-list order.
  std::vector<Node *> replaceAllUsesWith(Node *New);

  /// The nodes this one reads, in argument order, without duplicates.
  std::vector<Node *> inputs() const;
  /// The nodes that read this one, in the order they started to; a node
  /// using this one twice appears once (as in torch.fx's Node.users).
  llvm::ArrayRef<Node *> users() const { return Users; }
  bool hasUsers() const { return !Users.empty(); }

  /// Static result type; absent when unknown or not a tensor.
  const std::optional<TensorType> &type() const { return Type; }
  void setType(std::optional<TensorType> T) { Type = std::move(T); }

  /// The qualified name of the module whose forward() created this node
  /// ("" for the root). Functional ops inherit qconfigs through it.
  llvm::StringRef scope() const { return Scope; }
  void setScope(std::string S) { Scope = std::move(S); }

  /// Annotations (printed as `meta{key = value, ...}` in the text form).
  const NodeMeta &meta() const { return Meta; }
  /// The annotation \p Key, or nullptr.
  const Argument *meta(llvm::StringRef Key) const;
  /// Sets an annotation (asserts \p Value refers to no node).
  void setMeta(llvm::StringRef Key, Argument Value);
  bool eraseMeta(llvm::StringRef Key);

  Graph *getParent() const { return Parent; }

private:
  friend class Graph;
  Node(Graph *G, OpCode Op, std::string Name, std::string Target);
  void addUser(Node *U);
  void removeUser(Node *U);
  /// Unregisters this node as a user of its inputs / registers it again.
  void dropInputUses();
  void addInputUses();

  Graph *Parent;
  OpCode Op;
  std::string Name;
  std::string Target;
  std::vector<Argument> Args;
  Kwargs KwArgs;
  llvm::SmallVector<Node *, 4> Users;
  std::optional<TensorType> Type;
  std::string Scope;
  NodeMeta Meta;
};

/// An ordered list of nodes with unique names. The order is the execution
/// order; verify() checks that it is topological.
class Graph {
public:
  using NodeList = llvm::iplist<Node>;
  using iterator = NodeList::iterator;
  using const_iterator = NodeList::const_iterator;

  Graph() = default;
  Graph(const Graph &) = delete;
  Graph &operator=(const Graph &) = delete;
  ~Graph();

  iterator begin() { return Nodes.begin(); }
  iterator end() { return Nodes.end(); }
  const_iterator begin() const { return Nodes.begin(); }
  const_iterator end() const { return Nodes.end(); }
  size_t size() const { return Nodes.size(); }
  bool empty() const { return Nodes.empty(); }
  /// Nodes in order, as pointers (stable while editing other nodes).
  std::vector<Node *> nodes();
  std::vector<const Node *> nodes() const;

  /// Creates a node. Its name is \p NameHint made unique and a valid
  /// identifier (torch.fx style: "layer1.0.conv1" -> "layer1_0_conv1",
  /// repeated names get "_1", "_2" ...). The node is inserted at the current
  /// insertion point (the end of the graph unless set otherwise).
  Node *create(OpCode Op, llvm::StringRef NameHint, llvm::StringRef Target,
               std::vector<Argument> Args = {}, Kwargs KwArgs = {});
  /// Like create but with an exact name; fails if it is taken or invalid.
  llvm::Expected<Node *> createNamed(OpCode Op, llvm::StringRef Name,
                                     llvm::StringRef Target,
                                     std::vector<Argument> Args = {},
                                     Kwargs KwArgs = {});

  /// Convenience builders.
  Node *placeholder(llvm::StringRef Name, std::optional<TensorType> T = {});
  Node *getAttr(llvm::StringRef QualifiedName,
                std::optional<TensorType> T = {});
  Node *callModule(llvm::StringRef Module, std::vector<Argument> Args,
                   Kwargs KwArgs = {});
  Node *callFunction(llvm::StringRef Fn, std::vector<Argument> Args,
                     Kwargs KwArgs = {});
  Node *callMethod(llvm::StringRef Method, std::vector<Argument> Args,
                   Kwargs KwArgs = {});
  Node *output(Argument Result);

  /// Where create() inserts: before \p N (nullptr: at the end).
  void setInsertPoint(Node *Before) { InsertBefore = Before; }
  void setInsertPointAfter(Node *N);
  void setInsertPointToEnd() { InsertBefore = nullptr; }
  Node *insertPoint() const { return InsertBefore; }

  /// Removes and deletes a node that has no users (asserts otherwise). Its
  /// inputs lose it as a user.
  void erase(Node *N);
  /// Moves \p N to just before / after \p Pos.
  void moveBefore(Node *N, Node *Pos);
  void moveAfter(Node *N, Node *Pos);

  /// Renames \p N; fails if the name is taken or not an identifier.
  llvm::Error rename(Node *N, llvm::StringRef NewName);
  /// The node called \p Name, or nullptr.
  Node *lookup(llvm::StringRef Name) const;
  /// A unique identifier derived from \p Hint that no node has yet.
  std::string uniqueName(llvm::StringRef Hint) const;
  /// Whether \p Name is a valid node name: [A-Za-z_][A-Za-z0-9_]*.
  static bool isValidName(llvm::StringRef Name);

  /// For llvm::ilist_node_with_parent (Node::getPrevNode/getNextNode).
  static NodeList Graph::*getSublistAccess(Node *) { return &Graph::Nodes; }

  /// Placeholders in order.
  std::vector<Node *> placeholders() const;
  /// The output node (the last one if the graph is malformed), or nullptr.
  Node *outputNode() const;

  /// Reorders nodes so that every node comes after its inputs, keeping the
  /// existing order where it is already valid (stable Kahn's algorithm).
  /// Fails, naming a node on the cycle, if there is one.
  llvm::Error topologicalSort();
  /// Erases nodes whose result is unused and that have no side effect
  /// (everything but placeholders and output); returns how many.
  size_t eliminateDeadCode();

private:
  friend class Node;
  Node *insertNew(Node *N);

  NodeList Nodes;
  llvm::StringMap<Node *> Names;
  Node *InsertBefore = nullptr;
};

} // namespace qfx

#endif // QFX_IR_GRAPH_H
