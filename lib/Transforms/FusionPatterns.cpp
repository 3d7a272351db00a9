//===- FusionPatterns.cpp - Matching, BN folding and rewriting of fusions -===//

#include "FusionPatterns.h"

#include "qfx/IR/GraphModule.h"
#include "qfx/IR/Printer.h"
#include "qfx/Runtime/BatchNormFold.h"
#include "qfx/Runtime/ModuleRunner.h"

#include "llvm/ADT/STLExtras.h"

#include <optional>

using namespace qfx;

//===----------------------------------------------------------------------===//
// The table
//===----------------------------------------------------------------------===//

static OpMatcher module(const char *Kind) {
  return {OpMatcher::Kind::Module, Kind};
}
static OpMatcher relu() { return {OpMatcher::Kind::ReLU}; }
static OpMatcher add() { return {OpMatcher::Kind::Add}; }

// Longer chains come first so that conv -> bn -> relu is not taken as
// conv -> bn. The fused kinds are PyTorch's (fuser_method_mappings.py) plus
// qfx's residual ConvAdd2d / ConvAddReLU2d.
static const FusionPattern Patterns[] = {
    {"conv-bn-relu",
     {module("Conv2d"), module("BatchNorm2d"), relu()},
     "ConvReLU2d",
     "ConvBnReLU2d",
     /*FoldsBN=*/true},
    {"conv-bn",
     {module("Conv2d"), module("BatchNorm2d")},
     "Conv2d",
     "ConvBn2d",
     /*FoldsBN=*/true},
    {"conv-add-relu",
     {module("Conv2d"), add(), relu()},
     "ConvAddReLU2d",
     "ConvAddReLU2d"},
    {"conv-add", {module("Conv2d"), add()}, "ConvAdd2d", "ConvAdd2d"},
    {"conv-relu", {module("Conv2d"), relu()}, "ConvReLU2d", "ConvReLU2d"},
    // Conv family: PyTorch 1.13's 1-d conv fusions.
    {"conv1d-bn-relu",
     {module("Conv1d"), module("BatchNorm1d"), relu()},
     "ConvReLU1d",
     "ConvBnReLU1d",
     /*FoldsBN=*/true},
    {"conv1d-bn",
     {module("Conv1d"), module("BatchNorm1d")},
     "Conv1d",
     "ConvBn1d",
     /*FoldsBN=*/true},
    {"conv1d-relu", {module("Conv1d"), relu()}, "ConvReLU1d", "ConvReLU1d"},
    // ConvTranspose2d + BatchNorm2d folds for post-training quantization
    // only (PyTorch's fuse_convtranspose_bn refuses QAT).
    {"convtranspose-bn",
     {module("ConvTranspose2d"), module("BatchNorm2d")},
     "ConvTranspose2d",
     nullptr,
     /*FoldsBN=*/true},
    {"linear-bn",
     {module("Linear"), module("BatchNorm1d")},
     "Linear",
     "LinearBn1d",
     /*FoldsBN=*/true},
    {"linear-relu", {module("Linear"), relu()}, "LinearReLU", "LinearReLU"},
    {"bn-relu", {module("BatchNorm2d"), relu()}, "BNReLU2d", "BNReLU2d"},
};

llvm::ArrayRef<FusionPattern> qfx::fusionPatterns() { return Patterns; }

//===----------------------------------------------------------------------===//
// Matching
//===----------------------------------------------------------------------===//

static const ModuleInfo *calledModule(const Node &N, const GraphModule &GM) {
  return N.op() == OpCode::CallModule ? GM.lookupModule(N.target()) : nullptr;
}

static bool isModuleOfKind(const Node &N, const GraphModule &GM,
                           llvm::StringRef Kind) {
  const ModuleInfo *M = calledModule(N, GM);
  return M && M->kind() == Kind;
}

/// Whether \p N's only argument is \p Prev (any node when Prev is null).
static bool hasSoleInput(const Node &N, const Node *Prev) {
  return N.numArgs() == 1 && N.kwargs().empty() && N.arg(0).isNode() &&
         (!Prev || N.arg(0).getNode() == Prev);
}

/// Whether \p N is the kind of op \p Op describes, reading \p Prev (the
/// chain so far; null for the root). Conditions that make a near miss are
/// checked separately.
static bool accepts(const OpMatcher &Op, const Node &N, const Node *Prev,
                    const GraphModule &GM) {
  switch (Op.K) {
  case OpMatcher::Kind::Module:
    return isModuleOfKind(N, GM, Op.ModuleKind) && hasSoleInput(N, Prev);
  case OpMatcher::Kind::ReLU: {
    bool IsReLU = N.op() == OpCode::CallModule
                      ? isModuleOfKind(N, GM, "ReLU")
                      : (N.op() == OpCode::CallFunction ||
                         N.op() == OpCode::CallMethod) &&
                            N.target() == "relu";
    return IsReLU && hasSoleInput(N, Prev);
  }
  case OpMatcher::Kind::Add: {
    if (N.op() != OpCode::CallFunction || N.target() != "add" ||
        N.numArgs() < 2 || N.numArgs() > 3)
      return false;
    auto Reads = [&](const Argument &A) {
      return A.isNode() && A.getNode() == Prev;
    };
    return Prev && (Reads(N.arg(0)) || Reads(N.arg(1)));
  }
  }
  llvm_unreachable("unknown op matcher");
}

static std::string quoted(llvm::StringRef S) { return ("'" + S + "'").str(); }

static bool isOne(const Argument &A) {
  return (A.isInt() && A.getInt() == 1) || (A.isFloat() && A.getFloat() == 1.0);
}

/// Why the add \p Add cannot absorb \p Prev (the conv), or "". Sets
/// \p Other to the operand that is not the conv.
static std::string addReason(const Node &Add, const Node &Prev,
                             const Node *&Other) {
  for (const auto &KV : Add.kwargs())
    if (KV.first != "alpha")
      return quoted(Add.name()) + " has keyword argument " + quoted(KV.first);
  const Argument *Alpha = Add.numArgs() > 2 ? &Add.arg(2) : Add.kwarg("alpha");
  if (Alpha && !isOne(*Alpha))
    return quoted(Add.name()) + " has alpha=" + formatArgument(*Alpha);
  bool PrevFirst = Add.arg(0).isNode() && Add.arg(0).getNode() == &Prev;
  const Argument &O = PrevFirst ? Add.arg(1) : Add.arg(0);
  if (!O.isNode())
    return quoted(Add.name()) + " adds a constant, not a tensor";
  if (O.getNode() == &Prev)
    return quoted(Add.name()) + " adds " + quoted(Prev.name()) + " to itself";
  Other = O.getNode();
  if (!Prev.type() || !Other->type())
    return "the shapes of " + quoted(Prev.name()) + " and " +
           quoted(Other->name()) + " are unknown";
  const TensorType &A = *Prev.type(), &B = *Other->type();
  if (A.Dims != B.Dims || A.Dtype != B.Dtype)
    return quoted(Add.name()) + " broadcasts " + formatType(A) + " with " +
           formatType(B);
  return "";
}

/// Why \p Prev cannot be fused into its user \p Next, or "".
static std::string usesReason(const Node &Prev, const Node &Next) {
  llvm::ArrayRef<Node *> Users = Prev.users();
  if (Users.size() == 1)
    return "";
  bool IsOutput = llvm::any_of(
      Users, [](const Node *U) { return U->op() == OpCode::Output; });
  if (IsOutput)
    return quoted(Prev.name()) + " is also a graph output";
  return quoted(Prev.name()) + " has " + std::to_string(Users.size()) +
         " users";
}

/// A node other than \p Except that refers to module \p Path or to anything
/// inside it (a call of it or of a child, a get_attr of its tensors).
static const Node *otherReference(const GraphModule &GM, llvm::StringRef Path,
                                  llvm::ArrayRef<const Node *> Except) {
  std::string Prefix = (Path + ".").str();
  for (const Node &N : GM.graph()) {
    if (llvm::is_contained(Except, &N))
      continue;
    bool Refers = (N.op() == OpCode::CallModule &&
                   (N.target() == Path || N.target().startswith(Prefix))) ||
                  (N.op() == OpCode::GetAttr && N.target().startswith(Prefix));
    if (Refers)
      return &N;
  }
  return nullptr;
}

static bool allF32(std::initializer_list<const Tensor *> Ts) {
  return llvm::all_of(
      Ts, [](const Tensor *T) { return !T || T->dtype() == DType::F32; });
}

/// Why BatchNorm node \p BN cannot fuse with the conv/linear node \p Lin,
/// or "".
static std::string batchNormReason(const Node &Lin, const Node &BN,
                                   const GraphModule &GM) {
  const ModuleInfo &L = *calledModule(Lin, GM), &B = *calledModule(BN, GM);
  const Tensor *W = L.tensor("weight");
  const Tensor *Mean = B.tensor("running_mean");
  const Tensor *Var = B.tensor("running_var");
  if (!W || W->rank() < 2)
    return quoted(Lin.name()) + " has no weight";
  if (!Mean || !Var)
    return quoted(BN.name()) + " has no running statistics";
  if (!allF32({W, L.tensor("bias"), Mean, Var, B.tensor("weight"),
               B.tensor("bias")}))
    return quoted(Lin.name()) + " and " + quoted(BN.name()) +
           " must hold f32 tensors";
  // A transposed conv's weight is [in, out / groups, kH, kW].
  bool Transposed = L.kind() == "ConvTranspose2d";
  const Argument *Groups = L.attr("groups");
  if (Transposed && Groups && !(Groups->isInt() && Groups->getInt() == 1))
    return quoted(Lin.name()) + " has groups " + formatArgument(*Groups) +
           "; PyTorch folds BatchNorm into ConvTranspose2d only for groups 1";
  // PyTorch 1.13 matches patterns from the end of the chain, so a relu
  // after the batch norm takes it (BNReLU2d) before the transposed conv can.
  if (Transposed && BN.users().size() == 1 &&
      accepts(OpMatcher{OpMatcher::Kind::ReLU}, *BN.users()[0], &BN, GM))
    return quoted(BN.name()) + " is followed by a relu, which PyTorch 1.13 "
                               "fuses with it (BNReLU2d) instead";
  int64_t C = W->dim(Transposed ? 1 : 0);
  for (const Tensor *T : {Mean, Var, B.tensor("weight"), B.tensor("bias")})
    if (T && T->numElements() != C)
      return quoted(BN.name()) + " has " + std::to_string(T->numElements()) +
             " features but " + quoted(Lin.name()) + " has " +
             std::to_string(C) + " outputs";
  // BatchNorm1d normalizes dim 1, which is the linear's features only for
  // [N, features] results.
  if (L.kind() == "Linear" && Lin.type() && Lin.type()->Dims.size() != 2)
    return quoted(Lin.name()) + " has rank " +
           std::to_string(Lin.type()->Dims.size()) +
           "; BatchNorm1d would not normalize its features";
  return "";
}

static MatchResult nearMiss(std::string Reason) {
  MatchResult R;
  R.Reason = std::move(Reason);
  return R;
}

MatchResult FusionPattern::match(const Node &Root,
                                 const GraphModule &GM) const {
  if (!accepts(Ops[0], Root, nullptr, GM))
    return {};
  MatchResult R;
  R.Nodes.push_back(&Root);
  for (size_t I = 1; I < Ops.size(); ++I) {
    const Node &Prev = *R.Nodes.back();
    auto It = llvm::find_if(Prev.users(), [&](const Node *U) {
      return accepts(Ops[I], *U, &Prev, GM);
    });
    if (It == Prev.users().end())
      return {};
    const Node &Next = **It;
    std::string Link = (Prev.name() + " -> " + Next.name() + ": ").str();
    std::string Why = usesReason(Prev, Next);
    if (Why.empty() && Ops[I].K == OpMatcher::Kind::Add)
      Why = addReason(Next, Prev, R.Other);
    if (!Why.empty())
      return nearMiss(Link + Why);
    R.Nodes.push_back(&Next);
  }
  // The fused module replaces the root's, so nothing else may refer to it.
  if (const Node *N = otherReference(GM, Root.target(), R.Nodes))
    return nearMiss("module " + quoted(Root.target()) + " is also used by " +
                    quoted(N->name()));
  if (FoldsBN) {
    std::string Why = batchNormReason(*R.Nodes[0], *R.Nodes[1], GM);
    if (!Why.empty())
      return nearMiss(Why);
  }
  return R;
}

//===----------------------------------------------------------------------===//
// Rewriting
//===----------------------------------------------------------------------===//

/// Copies attributes, tensors (sharing storage) and children; the kind is
/// the caller's.
static void copyInto(const ModuleInfo &Src, ModuleInfo &Dst) {
  for (const auto &KV : Src.attrs())
    Dst.setAttr(KV.first, KV.second);
  for (const NamedTensor &T : Src.tensors())
    Dst.setTensor(T.Name, T.Value, T.IsBuffer);
  for (const auto &C : Src.children())
    copyInto(*C.second, Dst.addChild(C.first, C.second->kind().str()));
}

static ModuleInfo copyOf(const ModuleInfo &Src) {
  ModuleInfo R(Src.kind().str());
  copyInto(Src, R);
  return R;
}

/// The fused module for \p Chain: the chain's modules (a fresh ReLU for a
/// functional relu), with BN folded if asked, as children of a fused kind
/// or, when only one module remains, that module itself.
static ModuleInfo buildFusedModule(const FusionPattern &P,
                                   llvm::ArrayRef<Node *> Chain,
                                   const GraphModule &GM, bool QAT) {
  std::vector<ModuleInfo> Parts;
  for (size_t I = 0; I < Chain.size(); ++I) {
    if (P.Ops[I].K == OpMatcher::Kind::Add)
      continue;
    if (const ModuleInfo *M = calledModule(*Chain[I], GM))
      Parts.push_back(copyOf(*M));
    else
      Parts.emplace_back("ReLU");
  }
  if (P.folds(QAT)) {
    bool IsConv = Parts[0].kind() != "Linear";
    FoldedWeights F = foldBatchNorm(Parts[0], Parts[1], IsConv,
                                    Parts[0].kind() == "ConvTranspose2d");
    Parts[0].setTensor("weight", std::move(F.Weight));
    Parts[0].setTensor("bias", std::move(F.Bias));
    Parts.erase(Parts.begin() + 1);
  }
  llvm::StringRef Kind = P.fusedKind(QAT);
  const FusedKindDef *D = lookupFusedKind(Kind);
  if (!D) {
    assert(Parts.size() == 1 && Parts[0].kind() == Kind &&
           "a pattern without a fused kind must fold into one module");
    return std::move(Parts[0]);
  }
  auto Children = D->children();
  assert(Children.size() == Parts.size() &&
         "pattern and fused kind disagree on the children");
  ModuleInfo Fused(Kind.str());
  for (size_t I = 0; I < Parts.size(); ++I) {
    assert(Parts[I].kind() == Children[I].second &&
           "pattern and fused kind disagree on a child's kind");
    copyInto(Parts[I], Fused.addChild(Children[I].first, Children[I].second));
  }
  return Fused;
}

Node *FusionPattern::rewrite(const MatchResult &M, GraphModule &GM,
                             bool QAT) const {
  assert(M.matched() && "rewriting a failed match");
  Graph &G = GM.graph();
  std::vector<Node *> Chain;
  for (const Node *N : M.Nodes)
    Chain.push_back(G.lookup(N->name()));
  Node *Root = Chain.front(), *Last = Chain.back();
  std::string Path = Root->target().str();
  ModuleInfo Fused = buildFusedModule(*this, Chain, GM, QAT);
  // Assigning in place keeps the module's position in the tree (and so in
  // the state dict), as PyTorch's setattr on the parent does.
  *GM.lookupModule(Path) = std::move(Fused);

  std::vector<Argument> Inputs = {Root->arg(0)};
  if (M.Other)
    Inputs.push_back(Argument(G.lookup(M.Other->name())));
  std::optional<TensorType> Type = Last->type();
  // The fused node takes the chain's end position, as in PyTorch's fuse_fx:
  // the add's other operand may be computed after the conv.
  G.moveBefore(Root, Last);
  Last->replaceAllUsesWith(Root);
  std::vector<std::string> Dropped;
  for (auto It = Chain.rbegin(); *It != Root; ++It) {
    if ((*It)->op() == OpCode::CallModule)
      Dropped.push_back((*It)->target().str());
    G.erase(*It);
  }
  Root->setArgs(std::move(Inputs));
  Root->setType(std::move(Type));
  for (const std::string &P : Dropped)
    if (P != Path && !otherReference(GM, P, {}))
      GM.eraseModule(P);
  return Root;
}
