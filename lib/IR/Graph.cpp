//===- Graph.cpp - Nodes, arguments and use-list maintenance --------------===//

#include "qfx/IR/Graph.h"

#include "qfx/Support/Error.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/STLExtras.h"

#include <algorithm>
#include <cassert>
#include <cctype>
#include <cstring>
#include <set>

using namespace qfx;

//===----------------------------------------------------------------------===//
// OpCode
//===----------------------------------------------------------------------===//

static const char *const OpCodeNames[] = {"placeholder", "get_attr",
                                          "call_module", "call_function",
                                          "call_method", "output"};

llvm::StringRef qfx::opcodeName(OpCode Op) {
  return OpCodeNames[static_cast<unsigned>(Op)];
}

std::optional<OpCode> qfx::parseOpCode(llvm::StringRef Name) {
  for (unsigned I = 0; I < std::size(OpCodeNames); ++I)
    if (Name == OpCodeNames[I])
      return static_cast<OpCode>(I);
  return std::nullopt;
}

//===----------------------------------------------------------------------===//
// Argument
//===----------------------------------------------------------------------===//

Argument::Argument(Node *Ref) : K(Kind::NodeRef), N(Ref) {
  assert(Ref && "node argument must not be null");
}

Argument Argument::integer(int64_t V) {
  Argument A;
  A.K = Kind::Int;
  A.I = V;
  return A;
}

Argument Argument::real(double V) {
  Argument A;
  A.K = Kind::Float;
  A.F = V;
  return A;
}

Argument Argument::boolean(bool V) {
  Argument A;
  A.K = Kind::Bool;
  A.I = V;
  return A;
}

Argument Argument::string(std::string V) {
  Argument A;
  A.K = Kind::String;
  A.S = std::move(V);
  return A;
}

Argument Argument::list(std::vector<Argument> Elems) {
  Argument A;
  A.K = Kind::List;
  A.L = std::move(Elems);
  return A;
}

Argument Argument::ints(llvm::ArrayRef<int64_t> Values) {
  std::vector<Argument> Elems;
  Elems.reserve(Values.size());
  for (int64_t V : Values)
    Elems.push_back(integer(V));
  return list(std::move(Elems));
}

Node *Argument::getNode() const {
  assert(isNode() && "argument is not a node reference");
  return N;
}

int64_t Argument::getInt() const {
  assert(isInt() && "argument is not an int");
  return I;
}

double Argument::getFloat() const {
  assert(isFloat() && "argument is not a float");
  return F;
}

bool Argument::getBool() const {
  assert(isBool() && "argument is not a bool");
  return I != 0;
}

const std::string &Argument::getString() const {
  assert(isString() && "argument is not a string");
  return S;
}

const std::vector<Argument> &Argument::getList() const {
  assert(isList() && "argument is not a list");
  return L;
}

std::optional<std::vector<int64_t>> Argument::getIntList() const {
  if (!isList())
    return std::nullopt;
  std::vector<int64_t> R;
  for (const Argument &E : L) {
    if (!E.isInt())
      return std::nullopt;
    R.push_back(E.I);
  }
  return R;
}

void Argument::forEachNode(llvm::function_ref<void(Node *)> Fn) const {
  if (K == Kind::NodeRef)
    Fn(N);
  else if (K == Kind::List)
    for (const Argument &E : L)
      E.forEachNode(Fn);
}

bool Argument::replaceNode(Node *From, Node *To) {
  if (K == Kind::NodeRef && N == From) {
    N = To;
    return true;
  }
  bool Changed = false;
  if (K == Kind::List)
    for (Argument &E : L)
      Changed |= E.replaceNode(From, To);
  return Changed;
}

bool Argument::operator==(const Argument &O) const {
  if (K != O.K)
    return false;
  switch (K) {
  case Kind::None:
    return true;
  case Kind::NodeRef:
    return N == O.N;
  case Kind::Int:
  case Kind::Bool:
    return I == O.I;
  case Kind::Float:
    // Bitwise, so that NaN equals NaN and -0.0 differs from 0.0.
    return std::memcmp(&F, &O.F, sizeof(double)) == 0;
  case Kind::String:
    return S == O.S;
  case Kind::List:
    return L == O.L;
  }
  return false;
}

//===----------------------------------------------------------------------===//
// Node
//===----------------------------------------------------------------------===//

Node::Node(Graph *G, OpCode Op, std::string Name, std::string Target)
    : Parent(G), Op(Op), Name(std::move(Name)), Target(std::move(Target)) {}

Node::~Node() {
  assert(Users.empty() && "deleting a node that still has users");
}

const Argument *Node::kwarg(llvm::StringRef Key) const {
  for (const auto &KV : KwArgs)
    if (KV.first == Key)
      return &KV.second;
  return nullptr;
}

void Node::addUser(Node *U) {
  if (!llvm::is_contained(Users, U))
    Users.push_back(U);
}

void Node::removeUser(Node *U) { llvm::erase_value(Users, U); }

std::vector<Node *> Node::inputs() const {
  std::vector<Node *> R;
  auto Add = [&](Node *In) {
    if (!llvm::is_contained(R, In))
      R.push_back(In);
  };
  for (const Argument &A : Args)
    A.forEachNode(Add);
  for (const auto &KV : KwArgs)
    KV.second.forEachNode(Add);
  return R;
}

void Node::dropInputUses() {
  for (Node *In : inputs())
    In->removeUser(this);
}

void Node::addInputUses() {
  for (Node *In : inputs())
    In->addUser(this);
}

// The setters below update use lists incrementally: an input that stays an
// input keeps its place in its users list, a dropped one loses this node and
// a new one gets it appended. Re-registering every input would move this node
// to the end of the users of inputs the edit did not touch.

void Node::setArgs(std::vector<Argument> NewArgs) {
  std::vector<Node *> Old = inputs();
  Args = std::move(NewArgs);
  std::vector<Node *> New = inputs();
  for (Node *In : Old)
    if (!llvm::is_contained(New, In))
      In->removeUser(this);
  addInputUses();
}

void Node::setArg(size_t I, Argument A) {
  assert(I < Args.size() && "argument index out of range");
  std::vector<Argument> NewArgs = Args;
  NewArgs[I] = std::move(A);
  setArgs(std::move(NewArgs));
}

void Node::setKwargs(Kwargs NewKwargs) {
  std::vector<Node *> Old = inputs();
  KwArgs = std::move(NewKwargs);
  std::vector<Node *> New = inputs();
  for (Node *In : Old)
    if (!llvm::is_contained(New, In))
      In->removeUser(this);
  addInputUses();
}

void Node::setKwarg(llvm::StringRef Key, Argument A) {
  Kwargs NewKwargs = KwArgs;
  auto It =
      llvm::find_if(NewKwargs, [&](const auto &KV) { return KV.first == Key; });
  if (It != NewKwargs.end())
    It->second = std::move(A);
  else
    NewKwargs.emplace_back(Key.str(), std::move(A));
  setKwargs(std::move(NewKwargs));
}

void Node::replaceInputWith(Node *Old, Node *New) {
  assert(New && "replacement must not be null");
  std::vector<Argument> NewArgs = Args;
  for (Argument &A : NewArgs)
    A.replaceNode(Old, New);
  Kwargs NewKwargs = KwArgs;
  for (auto &KV : NewKwargs)
    KV.second.replaceNode(Old, New);
  // Old stays a user-of entry until the kwargs no longer refer to it either.
  setArgs(std::move(NewArgs));
  setKwargs(std::move(NewKwargs));
}

std::vector<Node *> Node::replaceAllUsesWith(Node *New) {
  assert(New != this && "replacing a node's uses with itself");
  std::vector<Node *> Changed(Users.begin(), Users.end());
  for (Node *U : Changed)
    U->replaceInputWith(this, New);
  assert(Users.empty() && "uses remain after replaceAllUsesWith");
  return Changed;
}

//===----------------------------------------------------------------------===//
// Graph
//===----------------------------------------------------------------------===//

Graph::~Graph() {
  // Drop every use first so that node destructors see empty use lists.
  for (Node &N : Nodes) {
    N.Args.clear();
    N.KwArgs.clear();
    N.Users.clear();
  }
  Nodes.clear();
}

std::vector<Node *> Graph::nodes() {
  std::vector<Node *> R;
  R.reserve(Nodes.size());
  for (Node &N : Nodes)
    R.push_back(&N);
  return R;
}

std::vector<const Node *> Graph::nodes() const {
  std::vector<const Node *> R;
  R.reserve(Nodes.size());
  for (const Node &N : Nodes)
    R.push_back(&N);
  return R;
}

bool Graph::isValidName(llvm::StringRef Name) {
  if (Name.empty() ||
      !(std::isalpha(static_cast<unsigned char>(Name[0])) || Name[0] == '_'))
    return false;
  return llvm::all_of(Name, [](char C) {
    return std::isalnum(static_cast<unsigned char>(C)) || C == '_';
  });
}

std::string Graph::uniqueName(llvm::StringRef Hint) const {
  // torch.fx's scheme: non-identifier characters become '_', a leading digit
  // gets a '_' prefix, and taken names get a numeric suffix.
  std::string Base;
  for (char C : Hint)
    Base += std::isalnum(static_cast<unsigned char>(C)) ? C : '_';
  if (Base.empty())
    Base = "_";
  if (std::isdigit(static_cast<unsigned char>(Base[0])))
    Base.insert(Base.begin(), '_');
  if (!Names.count(Base))
    return Base;
  for (unsigned I = 1;; ++I) {
    std::string Candidate = Base + "_" + std::to_string(I);
    if (!Names.count(Candidate))
      return Candidate;
  }
}

Node *Graph::insertNew(Node *N) {
  Names[N->Name] = N;
  if (InsertBefore) {
    assert(InsertBefore->Parent == this && "insert point in another graph");
    Nodes.insert(InsertBefore->getIterator(), N);
  } else {
    Nodes.push_back(N);
  }
  N->addInputUses();
  return N;
}

Node *Graph::create(OpCode Op, llvm::StringRef NameHint, llvm::StringRef Target,
                    std::vector<Argument> Args, Kwargs KwArgs) {
  Node *N = new Node(this, Op, uniqueName(NameHint), Target.str());
  N->Args = std::move(Args);
  N->KwArgs = std::move(KwArgs);
  return insertNew(N);
}

llvm::Expected<Node *> Graph::createNamed(OpCode Op, llvm::StringRef Name,
                                          llvm::StringRef Target,
                                          std::vector<Argument> Args,
                                          Kwargs KwArgs) {
  if (!isValidName(Name))
    return makeError("invalid node name '" + Name + "'");
  if (Names.count(Name))
    return makeError("duplicate node name '" + Name + "'");
  Node *N = new Node(this, Op, Name.str(), Target.str());
  N->Args = std::move(Args);
  N->KwArgs = std::move(KwArgs);
  return insertNew(N);
}

Node *Graph::placeholder(llvm::StringRef Name, std::optional<TensorType> T) {
  Node *N = create(OpCode::Placeholder, Name, Name);
  N->setType(std::move(T));
  return N;
}

Node *Graph::getAttr(llvm::StringRef QualifiedName,
                     std::optional<TensorType> T) {
  Node *N = create(OpCode::GetAttr, QualifiedName, QualifiedName);
  N->setType(std::move(T));
  return N;
}

Node *Graph::callModule(llvm::StringRef Module, std::vector<Argument> Args,
                        Kwargs KwArgs) {
  return create(OpCode::CallModule, Module, Module, std::move(Args),
                std::move(KwArgs));
}

Node *Graph::callFunction(llvm::StringRef Fn, std::vector<Argument> Args,
                          Kwargs KwArgs) {
  return create(OpCode::CallFunction, Fn, Fn, std::move(Args),
                std::move(KwArgs));
}

Node *Graph::callMethod(llvm::StringRef Method, std::vector<Argument> Args,
                        Kwargs KwArgs) {
  return create(OpCode::CallMethod, Method, Method, std::move(Args),
                std::move(KwArgs));
}

Node *Graph::output(Argument Result) {
  return create(OpCode::Output, "output", "output", {std::move(Result)});
}

void Graph::setInsertPointAfter(Node *N) {
  assert(N && N->Parent == this && "insert point in another graph");
  InsertBefore = N->getNextNode();
}

void Graph::erase(Node *N) {
  assert(N->Parent == this && "erasing a node of another graph");
  assert(N->Users.empty() && "erasing a node that still has users");
  if (InsertBefore == N)
    InsertBefore = N->getNextNode();
  N->dropInputUses();
  Names.erase(N->Name);
  Nodes.erase(N->getIterator());
}

void Graph::moveBefore(Node *N, Node *Pos) {
  assert(N != Pos && "moving a node relative to itself");
  Nodes.splice(Pos->getIterator(), Nodes, N->getIterator());
}

void Graph::moveAfter(Node *N, Node *Pos) {
  assert(N != Pos && "moving a node relative to itself");
  Nodes.splice(std::next(Pos->getIterator()), Nodes, N->getIterator());
}

llvm::Error Graph::rename(Node *N, llvm::StringRef NewName) {
  if (N->Name == NewName)
    return llvm::Error::success();
  if (!isValidName(NewName))
    return makeError("invalid node name '" + NewName + "'");
  if (Names.count(NewName))
    return makeError("duplicate node name '" + NewName + "'");
  Names.erase(N->Name);
  N->Name = NewName.str();
  Names[N->Name] = N;
  return llvm::Error::success();
}

Node *Graph::lookup(llvm::StringRef Name) const {
  auto It = Names.find(Name);
  return It == Names.end() ? nullptr : It->second;
}

std::vector<Node *> Graph::placeholders() const {
  std::vector<Node *> R;
  for (const Node &N : Nodes)
    if (N.op() == OpCode::Placeholder)
      R.push_back(const_cast<Node *>(&N));
  return R;
}

Node *Graph::outputNode() const {
  Node *Last = nullptr;
  for (const Node &N : Nodes)
    if (N.op() == OpCode::Output)
      Last = const_cast<Node *>(&N);
  return Last;
}

llvm::Error Graph::topologicalSort() {
  // Stable Kahn: repeatedly emit the earliest node whose inputs are all
  // emitted, so an already-valid order is left unchanged.
  std::vector<Node *> Order = nodes();
  llvm::DenseMap<Node *, size_t> Pending;
  for (Node *N : Order) {
    size_t Count = 0;
    for (Node *In : N->inputs())
      if (In->Parent == this)
        ++Count;
    Pending[N] = Count;
  }
  std::vector<Node *> Sorted;
  std::vector<bool> Done(Order.size(), false);
  llvm::DenseMap<Node *, size_t> Index;
  for (size_t I = 0; I < Order.size(); ++I)
    Index[Order[I]] = I;
  // Ready nodes ordered by original position.
  std::set<size_t> Ready;
  for (size_t I = 0; I < Order.size(); ++I)
    if (Pending[Order[I]] == 0)
      Ready.insert(I);
  while (!Ready.empty()) {
    size_t I = *Ready.begin();
    Ready.erase(Ready.begin());
    Done[I] = true;
    Sorted.push_back(Order[I]);
    for (Node *U : Order[I]->users())
      if (U->Parent == this && --Pending[U] == 0)
        Ready.insert(Index[U]);
  }
  if (Sorted.size() != Order.size()) {
    // Every node left has an input that is left too. Following such inputs
    // from any of them must revisit a node, and that node is on a cycle (the
    // first node left need not be: it may only depend on one).
    Node *Cur = nullptr;
    for (size_t I = 0; I < Order.size() && !Cur; ++I)
      if (!Done[I])
        Cur = Order[I];
    llvm::DenseSet<Node *> Seen;
    while (Seen.insert(Cur).second) {
      for (Node *In : Cur->inputs())
        if (In->Parent == this && !Done[Index[In]]) {
          Cur = In;
          break;
        }
    }
    // Name the earliest node of that cycle so the message is deterministic.
    Node *First = Cur;
    for (Node *C = Cur;;) {
      for (Node *In : C->inputs())
        if (In->Parent == this && !Done[Index[In]]) {
          C = In;
          break;
        }
      if (C == Cur)
        break;
      if (Index[C] < Index[First])
        First = C;
    }
    return makeError("graph has a cycle through node '" + First->name() + "'");
  }
  for (Node *N : Sorted)
    Nodes.splice(Nodes.end(), Nodes, N->getIterator());
  return llvm::Error::success();
}

size_t Graph::eliminateDeadCode() {
  // Walk backwards so that a chain of dead nodes in a sorted graph goes in
  // one sweep; repeat until nothing changes so that an unsorted graph (a
  // user before its input) is cleaned up too.
  size_t Erased = 0;
  for (bool Changed = true; Changed;) {
    Changed = false;
    std::vector<Node *> Order = nodes();
    for (auto It = Order.rbegin(); It != Order.rend(); ++It) {
      Node *N = *It;
      if (N->op() == OpCode::Placeholder || N->op() == OpCode::Output)
        continue;
      if (N->hasUsers())
        continue;
      erase(N);
      ++Erased;
      Changed = true;
    }
  }
  return Erased;
}

//===----------------------------------------------------------------------===//
// Node annotations
//===----------------------------------------------------------------------===//

const Argument *Node::meta(llvm::StringRef Key) const {
  auto It = Meta.find(Key.str());
  return It == Meta.end() ? nullptr : &It->second;
}

void Node::setMeta(llvm::StringRef Key, Argument Value) {
  bool HasNode = false;
  Value.forEachNode([&](Node *) { HasNode = true; });
  assert(!HasNode && "node annotations cannot refer to nodes");
  (void)HasNode;
  Meta[Key.str()] = std::move(Value);
}

bool Node::eraseMeta(llvm::StringRef Key) { return Meta.erase(Key.str()) != 0; }
