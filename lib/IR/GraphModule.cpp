//===- GraphModule.cpp - The module tree and qualified-name lookup --------===//

#include "qfx/IR/GraphModule.h"

#include "qfx/Support/Error.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/STLExtras.h"

#include <cassert>
#include <functional>

using namespace qfx;

std::pair<llvm::StringRef, llvm::StringRef>
qfx::splitQualifiedName(llvm::StringRef Path) {
  size_t Dot = Path.rfind('.');
  if (Dot == llvm::StringRef::npos)
    return {llvm::StringRef(), Path};
  return {Path.take_front(Dot), Path.drop_front(Dot + 1)};
}

//===----------------------------------------------------------------------===//
// ModuleInfo
//===----------------------------------------------------------------------===//

static bool containsNode(const Argument &A) {
  bool Found = false;
  A.forEachNode([&](Node *) { Found = true; });
  return Found;
}

const Argument *ModuleInfo::attr(llvm::StringRef Name) const {
  auto It = Attrs.find(Name.str());
  return It == Attrs.end() ? nullptr : &It->second;
}

void ModuleInfo::setAttr(llvm::StringRef Name, Argument Value) {
  assert(!containsNode(Value) && "module attributes cannot refer to nodes");
  Attrs[Name.str()] = std::move(Value);
}

bool ModuleInfo::eraseAttr(llvm::StringRef Name) {
  return Attrs.erase(Name.str()) != 0;
}

const Tensor *ModuleInfo::tensor(llvm::StringRef Name) const {
  for (const NamedTensor &T : Tensors)
    if (T.Name == Name)
      return &T.Value;
  return nullptr;
}

Tensor *ModuleInfo::tensor(llvm::StringRef Name) {
  for (NamedTensor &T : Tensors)
    if (T.Name == Name)
      return &T.Value;
  return nullptr;
}

void ModuleInfo::setTensor(llvm::StringRef Name, Tensor Value, bool IsBuffer) {
  for (NamedTensor &T : Tensors)
    if (T.Name == Name) {
      T.Value = std::move(Value);
      return;
    }
  Tensors.push_back({Name.str(), IsBuffer, std::move(Value)});
}

bool ModuleInfo::eraseTensor(llvm::StringRef Name) {
  auto It = llvm::find_if(Tensors,
                          [&](const NamedTensor &T) { return T.Name == Name; });
  if (It == Tensors.end())
    return false;
  Tensors.erase(It);
  return true;
}

ModuleInfo *ModuleInfo::child(llvm::StringRef Name) const {
  for (const auto &C : Children)
    if (C.first == Name)
      return C.second.get();
  return nullptr;
}

ModuleInfo &ModuleInfo::addChild(llvm::StringRef Name, std::string Kind) {
  assert(!Name.empty() && !Name.contains('.') && "child names have no dots");
  assert(!child(Name) && "duplicate child module");
  Children.emplace_back(Name.str(),
                        std::make_unique<ModuleInfo>(std::move(Kind)));
  return *Children.back().second;
}

bool ModuleInfo::eraseChild(llvm::StringRef Name) {
  auto It =
      llvm::find_if(Children, [&](const auto &C) { return C.first == Name; });
  if (It == Children.end())
    return false;
  Children.erase(It);
  return true;
}

//===----------------------------------------------------------------------===//
// GraphModule
//===----------------------------------------------------------------------===//

ModuleInfo *GraphModule::lookupModule(llvm::StringRef Path) const {
  ModuleInfo *M = const_cast<ModuleInfo *>(&Root);
  if (Path.empty())
    return M;
  llvm::SmallVector<llvm::StringRef, 8> Parts;
  Path.split(Parts, '.');
  for (llvm::StringRef P : Parts) {
    M = M->child(P);
    if (!M)
      return nullptr;
  }
  return M;
}

ModuleInfo &GraphModule::addModule(llvm::StringRef Path, std::string Kind) {
  assert(!Path.empty() && "the root module always exists");
  llvm::SmallVector<llvm::StringRef, 8> Parts;
  Path.split(Parts, '.');
  ModuleInfo *M = &Root;
  for (size_t I = 0; I < Parts.size(); ++I) {
    ModuleInfo *C = M->child(Parts[I]);
    if (!C)
      C = &M->addChild(Parts[I], "Module");
    M = C;
  }
  M->setKind(std::move(Kind));
  return *M;
}

bool GraphModule::eraseModule(llvm::StringRef Path) {
  auto [ParentPath, Name] = splitQualifiedName(Path);
  ModuleInfo *Parent = lookupModule(ParentPath);
  return Parent && Parent->eraseChild(Name);
}

const Tensor *GraphModule::lookupTensor(llvm::StringRef Path) const {
  auto [ModPath, Name] = splitQualifiedName(Path);
  const ModuleInfo *M = lookupModule(ModPath);
  return M ? M->tensor(Name) : nullptr;
}

Tensor *GraphModule::lookupTensor(llvm::StringRef Path) {
  auto [ModPath, Name] = splitQualifiedName(Path);
  ModuleInfo *M = lookupModule(ModPath);
  return M ? M->tensor(Name) : nullptr;
}

llvm::Error GraphModule::setTensor(llvm::StringRef Path, Tensor Value,
                                   bool IsBuffer) {
  auto [ModPath, Name] = splitQualifiedName(Path);
  ModuleInfo *M = lookupModule(ModPath);
  if (!M)
    return makeError("cannot set tensor '" + Path + "': no module '" + ModPath +
                     "'");
  if (Name.empty())
    return makeError("cannot set tensor '" + Path + "': empty name");
  M->setTensor(Name, std::move(Value), IsBuffer);
  return llvm::Error::success();
}

/// Pre-order walk with qualified names (root excluded).
static void walkModules(
    const ModuleInfo &M, const std::string &Prefix,
    const std::function<void(const std::string &, const ModuleInfo &)> &Fn) {
  for (const auto &C : M.children()) {
    std::string Path = Prefix.empty() ? C.first : Prefix + "." + C.first;
    Fn(Path, *C.second);
    walkModules(*C.second, Path, Fn);
  }
}

std::vector<std::string> GraphModule::moduleNames() const {
  std::vector<std::string> R;
  walkModules(Root, "", [&](const std::string &P, const ModuleInfo &) {
    R.push_back(P);
  });
  return R;
}

static void
collectTensors(const ModuleInfo &M, const std::string &Prefix,
               std::vector<std::pair<std::string, const Tensor *>> &Out) {
  for (const NamedTensor &T : M.tensors())
    Out.emplace_back(Prefix.empty() ? T.Name : Prefix + "." + T.Name, &T.Value);
  for (const auto &C : M.children())
    collectTensors(*C.second, Prefix.empty() ? C.first : Prefix + "." + C.first,
                   Out);
}

std::vector<std::pair<std::string, const Tensor *>>
GraphModule::namedTensors() const {
  std::vector<std::pair<std::string, const Tensor *>> R;
  collectTensors(Root, "", R);
  return R;
}

static void copyModule(const ModuleInfo &From, ModuleInfo &To) {
  To.setKind(From.kind().str());
  for (const auto &A : From.attrs())
    To.setAttr(A.first, A.second);
  for (const NamedTensor &T : From.tensors())
    To.setTensor(T.Name, T.Value.hasData() ? T.Value.clone() : T.Value,
                 T.IsBuffer);
  for (const auto &C : From.children())
    copyModule(*C.second, To.addChild(C.first, C.second->kind().str()));
}

/// Maps node references of \p A through \p Map.
static Argument remapArgument(const Argument &A,
                              const llvm::DenseMap<const Node *, Node *> &Map) {
  if (A.isNode()) {
    // A reference to a node of another graph (which the verifier rejects)
    // is kept as it is rather than read past the end of the map.
    auto It = Map.find(A.getNode());
    return Argument(It == Map.end() ? A.getNode() : It->second);
  }
  if (A.isList()) {
    std::vector<Argument> Elems;
    for (const Argument &E : A.getList())
      Elems.push_back(remapArgument(E, Map));
    return Argument::list(std::move(Elems));
  }
  return A;
}

std::unique_ptr<GraphModule> GraphModule::clone() const {
  auto R = std::make_unique<GraphModule>(Root.kind().str());
  copyModule(Root, R->Root);
  // Create all nodes first (arguments may refer forward in a graph that is
  // not yet sorted), then fill in the arguments.
  llvm::DenseMap<const Node *, Node *> Map;
  for (const Node &N : G) {
    Node *C = llvm::cantFail(R->G.createNamed(N.op(), N.name(), N.target()),
                             "names in a graph are unique identifiers");
    C->setType(N.type());
    C->setScope(N.scope().str());
    for (const auto &[Key, Value] : N.meta())
      C->setMeta(Key, Value);
    Map[&N] = C;
  }
  for (const Node &N : G) {
    std::vector<Argument> Args;
    for (const Argument &A : N.args())
      Args.push_back(remapArgument(A, Map));
    Kwargs KW;
    for (const auto &KV : N.kwargs())
      KW.emplace_back(KV.first, remapArgument(KV.second, Map));
    Map[&N]->setArgs(std::move(Args));
    Map[&N]->setKwargs(std::move(KW));
  }
  return R;
}
