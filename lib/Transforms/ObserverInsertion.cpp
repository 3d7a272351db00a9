//===- ObserverInsertion.cpp - Shared core of prepare / prepare-qat -------===//
//
// Walks the graph once, in order, as PyTorch's insert_observers_for_model
// does: for each op node, observe its inputs (reusing an observer a value
// already has), attach a weight observer, observe its output and make the
// node's users read the observer. Shares-qparams ops call their input's
// observer again on their output; cat calls its first input's observer on
// every input and on its output.
//
//===----------------------------------------------------------------------===//

#include "ObserverInsertion.h"

#include "qfx/IR/GraphModule.h"
#include "qfx/IR/Printer.h"
#include "qfx/Quant/BackendConfig.h"
#include "qfx/Quant/ObserverModule.h"
#include "qfx/Quant/QConfigMapping.h"
#include "qfx/Support/Error.h"
#include "qfx/Transforms/Pass.h"
#include "qfx/Transforms/QConfigPropagation.h"

#include <map>
#include <optional>
#include <set>
#include <string>

using namespace qfx;

namespace {

/// The qconfig of one node and the rule that chose it.
struct NodeQConfig {
  OptQConfig QC;
  std::string Rule;
};

class Inserter {
public:
  Inserter(GraphModule &GM, PassContext &Ctx, llvm::StringRef Pass, bool QAT)
      : GM(GM), G(GM.graph()), Ctx(Ctx), Pass(Pass), QAT(QAT) {}

  llvm::Error run();

private:
  llvm::Error checkNotObserved() const;
  llvm::Expected<NodeQConfig> qconfigFor(const Node &N) const;
  llvm::Error prepareNode(Node &N);
  void remark(const Node &N, const llvm::Twine &Msg) {
    Ctx.remark(Pass, N.name(), Msg);
  }

  // One function per node class.
  Node *fusedRelu(const Node &N) const;
  void prepareObservedOp(Node &N, const QConfig &QC, bool Weighted);
  void prepareWeightOnly(Node &N, const QConfig &QC);
  void prepareDynamic(Node &N, const QConfig &QC);
  Node *observeWithPlaceholder(Node &N, const ObserverSpec &Spec,
                               llvm::StringRef What);
  void prepareSharesQParams(Node &N, const QConfig &QC);
  void prepareFixedQParams(Node &N, const QConfig &QC,
                           const NodeClassification &C);
  void prepareCat(Node &N, const QConfig &QC);

  // Observer modules and the nodes that call them.
  bool wantsFakeQuant(const ObserverSpec &Spec) const {
    // Placeholders (dynamic and weight-only inputs) quantize nothing, in
    // training or not.
    return Spec.Kind != ObserverKind::Placeholder && (QAT || Spec.FakeQuant);
  }
  std::string createObserver(const ObserverSpec &Spec);
  std::string describe(llvm::StringRef Module) const;
  bool isFixedObserver(llvm::StringRef Module) const;
  Node *callObserver(llvm::StringRef Module, Node *Value);
  Node *observeOutput(Node &N, llvm::StringRef Module);
  bool isActivationObserver(const Node *N) const;
  llvm::StringRef valueName(const Node *V) const;
  Node *observerUser(Node *V, const ObserverSpec *Match) const;
  bool matches(llvm::StringRef Module, const ObserverSpec &Spec) const;
  Node *observeInput(Node &User, Node *V, const ObserverSpec &Spec);
  Node *quantizedInput(Node &User, Node *V, const QConfig &QC);
  void observeWeight(Node &N, const QConfig &QC);

  GraphModule &GM;
  Graph &G;
  PassContext &Ctx;
  llvm::StringRef Pass;
  bool QAT;
  std::map<std::string, QConfigDecision> Decisions;
  /// Specs of the observer modules made by this run, by module name.
  std::map<std::string, ObserverSpec> Specs;
  /// Relus observed as part of the add / mul before them.
  std::set<const Node *> FusedRelus;
  unsigned NextIndex = 0;
};

} // namespace

//===----------------------------------------------------------------------===//
// Qconfigs
//===----------------------------------------------------------------------===//

llvm::Expected<NodeQConfig> Inserter::qconfigFor(const Node &N) const {
  auto It = Decisions.find(N.name().str());
  const QConfigDecision *D = It == Decisions.end() ? nullptr : &It->second;
  NodeQConfig R;
  const Argument *Rule = N.meta("qconfig_rule");
  if (Rule && Rule->isString())
    R.Rule = Rule->getString();
  else if (D)
    R.Rule = qconfigRuleString(*D);
  const Argument *Meta = N.meta("qconfig");
  if (!Meta) {
    if (!D)
      return makeError("node '" + N.name() +
                       "' has no qconfig: run qconfig-propagation first or "
                       "pass a qconfig mapping (--qconfig)");
    R.QC = D->QC;
    return R;
  }
  if (!Meta->isString())
    return makeError("node '" + N.name() + "': meta qconfig is not a string");
  const std::string &Name = Meta->getString();
  if (Name == "none")
    return R;
  if (D && qconfigDisplayName(D->QC) == Name) {
    R.QC = D->QC;
    return R;
  }
  if (Name == "custom")
    return makeError("node '" + N.name() +
                     "' has a custom qconfig; prepare needs the qconfig "
                     "mapping (--qconfig) to rebuild it");
  auto P = QConfig::preset(Name);
  if (!P)
    return prefixError(P.takeError(), ("node '" + N.name() + "'").str());
  R.QC = std::move(*P);
  return R;
}

//===----------------------------------------------------------------------===//
// Observer modules and calls
//===----------------------------------------------------------------------===//

std::string Inserter::createObserver(const ObserverSpec &Spec) {
  // PyTorch's get_new_attr_name_with_prefix, but never reusing a number
  // (merged observers leave gaps), so numbers follow insertion order.
  std::string Name;
  do
    Name = "activation_post_process_" + std::to_string(NextIndex++);
  while (GM.root().child(Name) || GM.root().tensor(Name));
  ModuleInfo &M = GM.root().addChild(Name, "Module");
  if (wantsFakeQuant(Spec))
    initFakeQuantizeModule(M, Spec);
  else
    initObserverModule(M, Spec);
  Specs[Name] = Spec;
  return Name;
}

std::string Inserter::describe(llvm::StringRef Module) const {
  const ModuleInfo *M = GM.lookupModule(Module);
  assert(M && "describing a missing observer");
  return describeObserverModule(*M);
}

bool Inserter::isFixedObserver(llvm::StringRef Module) const {
  auto It = Specs.find(Module.str());
  return It != Specs.end() && It->second.Kind == ObserverKind::FixedQParams;
}

Node *Inserter::callObserver(llvm::StringRef Module, Node *Value) {
  G.setInsertPointAfter(Value);
  Node *Obs = G.callModule(Module, {Argument(Value)});
  G.setInsertPointToEnd();
  Obs->setType(Value->type());
  return Obs;
}

Node *Inserter::observeOutput(Node &N, llvm::StringRef Module) {
  std::vector<Node *> Users(N.users().begin(), N.users().end());
  Node *Obs = callObserver(Module, &N);
  for (Node *U : Users)
    U->replaceInputWith(&N, Obs);
  return Obs;
}

bool Inserter::isActivationObserver(const Node *N) const {
  return N->op() == OpCode::CallModule && Specs.count(N->target().str());
}

bool Inserter::matches(llvm::StringRef Module, const ObserverSpec &Spec) const {
  // PyTorch reuses an observer of the same class and dtype.
  auto It = Specs.find(Module.str());
  return It != Specs.end() && It->second.Kind == Spec.Kind &&
         It->second.Dtype == Spec.Dtype;
}

/// The name a value is known by in remarks: an observer stands for the
/// value it observes.
llvm::StringRef Inserter::valueName(const Node *V) const {
  if (isActivationObserver(V) && V->numArgs() == 1 && V->arg(0).isNode())
    return V->arg(0).getNode()->name();
  return V->name();
}

Node *Inserter::observerUser(Node *V, const ObserverSpec *Match) const {
  for (Node *U : V->users())
    if (isActivationObserver(U) && (!Match || matches(U->target(), *Match)))
      return U;
  return nullptr;
}

Node *Inserter::observeInput(Node &User, Node *V, const ObserverSpec &Spec) {
  // An observer's output is quantized whatever the observer's class (a
  // FixedQParamsObserver's too); only a different dtype needs another one.
  Node *Obs = nullptr;
  if (isActivationObserver(V) &&
      Specs.at(V->target().str()).Dtype == Spec.Dtype)
    Obs = V;
  else
    Obs = observerUser(V, &Spec);
  if (Obs) {
    remark(User,
           "input " + valueName(V) + " already observed by " + Obs->target());
  } else {
    std::string M = createObserver(Spec);
    Obs = callObserver(M, V);
    remark(User, "observed input " + valueName(V) + " with " + M + " (" +
                     describe(M) + ")");
  }
  if (Obs != V)
    User.replaceInputWith(V, Obs);
  return Obs;
}

Node *Inserter::quantizedInput(Node &User, Node *V, const QConfig &QC) {
  Node *Obs = isActivationObserver(V) ? V : observerUser(V, nullptr);
  if (Obs) {
    if (Obs != V)
      User.replaceInputWith(V, Obs);
    return Obs;
  }
  // Graph inputs are quantized where the graph starts (convert), so an op
  // reading one is quantized like PyTorch does.
  if (V->op() == OpCode::Placeholder)
    return observeInput(User, V, QC.Activation);
  return nullptr;
}

void Inserter::observeWeight(Node &N, const QConfig &QC) {
  ModuleInfo *M = GM.lookupModule(N.target());
  assert(M && "classify() accepted a call of a missing module");
  bool FQ = wantsFakeQuant(QC.Weight);
  const char *Child = FQ ? "weight_fake_quant" : "weight_post_process";
  std::string Path = (N.target() + "." + Child).str();
  if (M->child(Child)) {
    remark(N, "weight already observed by " + Path);
    return;
  }
  ModuleInfo &W = M->addChild(Child, "Module");
  if (FQ) {
    initFakeQuantizeModule(W, QC.Weight);
  } else {
    initObserverModule(W, QC.Weight);
    // Weights are constants: observe them now, so the observer is complete
    // whether or not calibration runs (fake-quant observes every forward).
    ModuleInfo *H = weightHolder(*M);
    const Tensor *Wt = H ? H->tensor("weight") : nullptr;
    if (Wt && Wt->hasData() && Wt->dtype() == DType::F32) {
      auto O = loadObserver(W);
      assert(O && "an observer just written must load");
      (*O)->observe(*Wt);
      storeObserver(**O, W);
    }
  }
  remark(N, "observed weight with " + Path + " (" + describeObserverModule(W) +
                ")");
}

//===----------------------------------------------------------------------===//
// Node classes
//===----------------------------------------------------------------------===//

/// The relu that, with add or mul \p N before it, is one pattern of
/// PyTorch 1.13's binary-op config ((relu, add), (relu, mul)): \p N's only
/// user, reading only \p N, not switched off by its qconfig. The pattern
/// is observed after the relu alone.
Node *Inserter::fusedRelu(const Node &N) const {
  if (N.op() == OpCode::CallModule ||
      (N.target() != "add" && N.target() != "mul"))
    return nullptr;
  Node *U = soleReluUser(N, GM);
  if (!U)
    return nullptr;
  auto Q = qconfigFor(*U);
  if (!Q) {
    llvm::consumeError(Q.takeError());
    return nullptr;
  }
  return Q->QC ? U : nullptr;
}

void Inserter::prepareObservedOp(Node &N, const QConfig &QC, bool Weighted) {
  for (Node *V : N.inputs())
    observeInput(N, V, QC.Activation);
  if (Weighted)
    observeWeight(N, QC);
  std::string M = createObserver(QC.Activation);
  if (Node *Relu = fusedRelu(N)) {
    observeOutput(*Relu, M);
    FusedRelus.insert(Relu);
    remark(N, "observed output after " + Relu->name() + " with " + M + " (" +
                  describe(M) + "; one pattern with the relu)");
    return;
  }
  observeOutput(N, M);
  remark(N, "observed output with " + M + " (" + describe(M) + ")");
}

Node *Inserter::observeWithPlaceholder(Node &N, const ObserverSpec &Spec,
                                       llvm::StringRef What) {
  // Only a placeholder of the same dtype may be shared: a static observer
  // already on the input (another op's) would give the value fixed qparams.
  Node *In = N.arg(0).getNode();
  Node *Obs = nullptr;
  if (isActivationObserver(In) && matches(In->target(), Spec))
    Obs = In;
  else
    Obs = observerUser(In, &Spec);
  if (Obs) {
    remark(N,
           "input " + valueName(In) + " already observed by " + Obs->target());
  } else {
    std::string M = createObserver(Spec);
    Obs = callObserver(M, In);
    remark(N, What + ": input " + valueName(In) + " marked by " + M + " (" +
                  describe(M) + ")");
  }
  if (Obs != In)
    N.replaceInputWith(In, Obs);
  return Obs;
}

void Inserter::prepareWeightOnly(Node &N, const QConfig &QC) {
  // PyTorch's weight-only qconfigs observe the input with a float32
  // PlaceholderObserver; convert reads it as "activations stay float", so
  // the marker is float whatever the qconfig's activation spec says.
  ObserverSpec Spec = ObserverSpec::make(ObserverKind::Placeholder, DType::F32,
                                         QScheme::PerTensorAffine);
  observeWithPlaceholder(N, Spec, "weight-only (activations stay float)");
  observeWeight(N, QC);
}

void Inserter::prepareDynamic(Node &N, const QConfig &QC) {
  // As PyTorch's prepare does for dynamic qconfigs: the input gets the
  // qconfig's quint8 PlaceholderObserver, which convert reads as "quantize
  // per batch". It records nothing, so calibration is optional.
  observeWithPlaceholder(N, QC.Activation, "dynamic (quantized per batch)");
  observeWeight(N, QC);
}

void Inserter::prepareSharesQParams(Node &N, const QConfig &QC) {
  Node *In = N.arg(0).getNode();
  Node *Obs = quantizedInput(N, In, QC);
  if (!Obs) {
    remark(N, "kept float: input " + In->name() + " is not quantized");
    return;
  }
  std::string M = Obs->target().str();
  if (Node *Relu = fusedRelu(N)) {
    observeOutput(*Relu, M);
    FusedRelus.insert(Relu);
    remark(N, "output after " + Relu->name() + " shares " + M + " with input " +
                  valueName(Obs) + " (one pattern with the relu)");
    return;
  }
  observeOutput(N, M);
  remark(N, "output shares " + M + " with input " + valueName(Obs));
}

void Inserter::prepareFixedQParams(Node &N, const QConfig &QC,
                                   const NodeClassification &C) {
  Node *In = N.arg(0).getNode();
  if (!quantizedInput(N, In, QC)) {
    remark(N, "kept float: input " + In->name() + " is not quantized");
    return;
  }
  // PyTorch's FixedQParamsObserver: quint8 over [0, 255] whatever the
  // qconfig's range, with the op's constant scale and zero point.
  ObserverSpec Spec;
  Spec.Kind = ObserverKind::FixedQParams;
  Spec.Dtype = DType::U8;
  Spec.Scheme = QScheme::PerTensorAffine;
  Spec.QuantMin = 0;
  Spec.QuantMax = 255;
  Spec.FixedScale = C.FixedScale;
  Spec.FixedZeroPoint = C.FixedZeroPoint;
  Spec.FakeQuant = QC.Activation.FakeQuant;
  std::string M = createObserver(Spec);
  observeOutput(N, M);
  remark(N, "observed output with " + M + " (" + describe(M) + ", scale " +
                formatFloat(C.FixedScale) + ", zero_point " +
                llvm::Twine(C.FixedZeroPoint) + ")");
}

void Inserter::prepareCat(Node &N, const QConfig &QC) {
  std::vector<Argument> Elems = N.arg(0).getList();
  auto ObserverOf = [&](Node *E) {
    return isActivationObserver(E) ? E : observerUser(E, nullptr);
  };
  // The shared observer: the first input's (PyTorch's
  // maybe_make_input_output_share_observers), a new one if it has none.
  // Fixed qparams are not shared (PyTorch would force them on every
  // input): then the first other input's.
  std::string Shared;
  if (ObserverOf(Elems.front().getNode()))
    for (const Argument &A : Elems)
      if (Node *Obs = ObserverOf(A.getNode()))
        if (!isFixedObserver(Obs->target())) {
          Shared = Obs->target().str();
          break;
        }
  if (Shared.empty())
    Shared = createObserver(QC.Activation);
  for (Argument &A : Elems) {
    Node *E = A.getNode();
    Node *Obs = ObserverOf(E);
    if (!Obs) {
      Obs = callObserver(Shared, E);
    } else if (isFixedObserver(Obs->target())) {
      Obs = callObserver(Shared, Obs); // Requantize into the shared range.
    } else if (Obs->target() != Shared) {
      // As PyTorch re-points the input's observer attribute: this one call
      // now feeds the shared observer; other calls of its old one (the
      // producer's own output, say) keep theirs.
      remark(N, "input " + valueName(Obs) + " observed by " + Shared +
                    " instead of " + Obs->target());
      Obs->setTarget(Shared);
    }
    A = Argument(Obs);
  }
  N.setArg(0, Argument::list(std::move(Elems)));
  observeOutput(N, Shared);
  remark(N,
         "inputs and output share " + Shared + " (" + describe(Shared) + ")");
}

//===----------------------------------------------------------------------===//
// Driver
//===----------------------------------------------------------------------===//

llvm::Error Inserter::prepareNode(Node &N) {
  if (FusedRelus.count(&N)) {
    remark(N, "observed with the add / mul before it");
    return llvm::Error::success();
  }
  NodeClassification C = classify(N, GM);
  auto Q = qconfigFor(N);
  if (!Q)
    return Q.takeError();
  if (!Q->QC) {
    remark(N, "kept float: qconfig none by " + Q->Rule);
    return llvm::Error::success();
  }
  if (C.isFloat()) {
    remark(N, "kept float: " + C.FloatReason);
    return llvm::Error::success();
  }
  const QConfig &QC = *Q->QC;
  bool WeightOnly = QC.IsDynamic || QC.IsWeightOnly;
  bool UsesWeight = C.Class == NodeClass::Weighted;
  if (WeightOnly && !(UsesWeight && (QC.IsWeightOnly || C.SupportsDynamic))) {
    remark(N, llvm::Twine("kept float: ") +
                  (QC.IsDynamic ? "dynamic" : "weight-only") +
                  " quantization has no implementation for '" + C.Op + "'");
    return llvm::Error::success();
  }
  auto Check = [&](const ObserverSpec &Spec, const char *What) -> llvm::Error {
    std::string Problem = Spec.validate();
    if (Problem.empty())
      return llvm::Error::success();
    return makeError("node '" + N.name() + "': invalid " + What +
                     " observer: " + Problem);
  };
  if (!WeightOnly)
    if (llvm::Error E = Check(QC.Activation, "activation"))
      return E;
  if (UsesWeight)
    if (llvm::Error E = Check(QC.Weight, "weight"))
      return E;
  if (QC.IsDynamic) {
    if (llvm::Error E = Check(QC.Activation, "activation"))
      return E;
    // The dynamic kernel quantizes its input to quint8 per batch; any other
    // activation spec would describe something it cannot do.
    if (QC.Activation.Kind != ObserverKind::Placeholder ||
        QC.Activation.Dtype != DType::U8)
      return makeError("node '" + N.name() +
                       "': a dynamic qconfig needs a quint8 "
                       "PlaceholderObserver for activations, got " +
                       observerKindName(QC.Activation.Kind) + " of " +
                       (QC.Activation.Dtype == DType::S8   ? "qint8"
                        : QC.Activation.Dtype == DType::U8 ? "quint8"
                                                           : "float32"));
    prepareDynamic(N, QC);
    return llvm::Error::success();
  }
  if (WeightOnly) {
    prepareWeightOnly(N, QC);
    return llvm::Error::success();
  }
  switch (C.Class) {
  case NodeClass::Weighted:
  case NodeClass::General:
    prepareObservedOp(N, QC, C.Class == NodeClass::Weighted);
    break;
  case NodeClass::SharesQParams:
    prepareSharesQParams(N, QC);
    break;
  case NodeClass::FixedQParams:
    prepareFixedQParams(N, QC, C);
    break;
  case NodeClass::Cat:
    prepareCat(N, QC);
    break;
  case NodeClass::Float:
    llvm_unreachable("float nodes are handled above");
  }
  return llvm::Error::success();
}

llvm::Error Inserter::checkNotObserved() const {
  for (const Node &N : G)
    if (N.op() == OpCode::CallModule)
      if (const ModuleInfo *M = GM.lookupModule(N.target()))
        if (isObserverModule(*M))
          return makeError("graph is already observed: node '" + N.name() +
                           "' calls observer '" + N.target() + "'");
  return llvm::Error::success();
}

llvm::Error Inserter::run() {
  if (llvm::Error E = checkNotObserved())
    return E;
  if (Ctx.QConfigs) {
    if (llvm::Error E = Ctx.QConfigs->checkFusedModules(GM))
      return E;
    Decisions = Ctx.QConfigs->assign(GM);
  }
  // Insertion adds nodes; only the original ones are decided on.
  for (Node *N : G.nodes()) {
    if (N->op() != OpCode::CallModule && N->op() != OpCode::CallFunction &&
        N->op() != OpCode::CallMethod)
      continue;
    if (llvm::Error E = prepareNode(*N))
      return E;
  }
  return llvm::Error::success();
}

llvm::Error qfx::insertObservers(GraphModule &GM, PassContext &Ctx,
                                 llvm::StringRef PassName, bool QAT) {
  return Inserter(GM, Ctx, PassName, QAT).run();
}
