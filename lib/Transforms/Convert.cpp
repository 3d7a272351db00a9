//===- Convert.cpp - Observed graph to reference quantized graph ----------===//
//
// One walk over the nodes in order. Every original value has up to two
// versions, a float one and an int8 one; an op that converts produces the
// int8 version (in place: the node keeps its name) and reads the int8
// versions of its inputs, a float op reads float versions. A missing version
// is made where it is first needed (quantize_per_tensor with the observer's
// qparams, or dequantize), so conversions happen only at boundaries.
// Observers are erased at the end.
//
//===----------------------------------------------------------------------===//

#include "qfx/Transforms/Convert.h"

#include "ConvertPatterns.h"

#include "qfx/IR/GraphModule.h"
#include "qfx/Quant/BackendConfig.h"
#include "qfx/Support/Error.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/StringMap.h"

#include <functional>
#include <map>
#include <tuple>

using namespace qfx;
using namespace qfx::convert;

namespace {

/// The versions of one original value made so far. Quant is set only when
/// the value's own node was converted (its primary form is int8); int8
/// copies of float values live in the quantize cache instead.
struct Versions {
  Node *Float = nullptr;
  Node *Quant = nullptr;
  ActQuant Q;
};

class Converter {
public:
  Converter(GraphModule &GM, PassContext &Ctx)
      : GM(GM), G(GM.graph()), Ctx(Ctx) {}

  llvm::Error run();

private:
  // Observers.
  llvm::Error collectObservers();
  bool isObserverNode(const Node *N) const { return ObsQuant.count(N); }
  Node *baseOf(Node *N) const;
  Node *outputObserver(const Node *N) const;
  const ActQuant *staticQuant(const Node *Obs) const;
  const ActQuant *inputQuant(Node *A) const;

  // Versions.
  llvm::Expected<Node *> floatOf(Node *A);
  llvm::Expected<Node *> quantAs(Node *Base, const ActQuant &Q);
  llvm::Expected<Node *> quantInput(Node *A);
  llvm::Error remapToFloat(Node *N, size_t Skip = 0);
  void setQuantized(Node *N, const ActQuant &Q);

  // Conversions; each returns false (and changes nothing) when the node
  // stays float.
  llvm::Error convertNode(Node *N);
  llvm::Expected<bool> convertWeighted(Node *N, const OpPattern &P);
  llvm::Expected<bool> convertDynamicLinear(Node *N, Node *In,
                                            const OpPattern &P);
  llvm::Expected<bool> convertWeightOnly(Node *N, const OpPattern &P);
  llvm::Expected<bool> convertGeneral(Node *N, const OpPattern &P);
  llvm::Expected<bool> convertScalarArith(Node *N, double C);
  llvm::Expected<bool> convertShares(Node *N);
  llvm::Expected<bool> convertCat(Node *N, const OpPattern &P);
  llvm::Expected<bool> convertFixed(Node *N, const OpPattern &P);

  // Helpers for building.
  llvm::Expected<TensorType> quantType(const Node *N, const ActQuant &Q);
  llvm::Expected<const ModuleInfo *> weightObserver(const Node *N,
                                                    const ModuleInfo &M);
  void rebuildModule(ModuleInfo &M, llvm::StringRef Kind, AttrMap Attrs,
                     std::vector<NamedTensor> Tensors, const ActQuant &Out);
  Node *replaceWithFunction(Node *N, llvm::StringRef Fn,
                            std::vector<Argument> Args, TensorType T);
  llvm::Error readInt8(Node *N, llvm::ArrayRef<Node *> Inputs);
  void toQuantizedModule(Node *N, const OpPattern &P, FloatParams FP,
                         std::vector<NamedTensor> Tensors, const ActQuant &Out,
                         TensorType T);
  void foldRelu(Node *Relu, Node *Into);
  bool calledOnce(const Node *N);
  void remark(const Node *N, const llvm::Twine &Msg) {
    Ctx.remark("convert", N->name(), Msg);
  }
  /// Explains why \p N stays float (once per node).
  void keptFloat(const Node *N, const llvm::Twine &Why) {
    remark(N, "kept float: " + Why);
    Explained = true;
  }

  llvm::Error finish();

  GraphModule &GM;
  Graph &G;
  PassContext &Ctx;
  /// The node being converted; new nodes go right before it, which keeps
  /// them before every later use.
  Node *Cur = nullptr;
  llvm::DenseMap<const Node *, ActQuant> ObsQuant;
  llvm::DenseMap<Node *, Versions> Ver;
  std::map<std::tuple<Node *, int, double, int64_t>, Node *> QuantCache;
  /// Scalar add / mul made int8 for the relu observed after them: the
  /// observer module their input's and the relu's output calls share.
  llvm::DenseMap<const Node *, std::string> ScalarShared;
  llvm::StringMap<unsigned> ModuleCalls;
  /// Nodes replaced or folded away, erased at the end (then their
  /// replacements take their names).
  std::vector<Node *> Dead;
  std::vector<std::pair<Node *, std::string>> Renames;
  llvm::DenseSet<Node *> Folded;
  std::vector<std::string> ReplacedModules;
  /// Whether the node being converted got a kept-float remark.
  bool Explained = false;
};

} // namespace

//===----------------------------------------------------------------------===//
// Observers
//===----------------------------------------------------------------------===//

llvm::Error Converter::collectObservers() {
  std::map<std::string, ActQuant> ByModule;
  for (Node &N : G) {
    if (N.op() != OpCode::CallModule)
      continue;
    ++ModuleCalls[N.target()];
    const ModuleInfo *M = GM.lookupModule(N.target());
    if (!M || !isObserverOrFakeQuantKind(M->kind()))
      continue;
    if (N.numArgs() != 1 || !N.arg(0).isNode())
      return makeError("observer call '" + N.name() +
                       "' must take exactly one node");
    auto It = ByModule.find(N.target().str());
    if (It == ByModule.end()) {
      Node *Observed = N.arg(0).getNode();
      while (ObsQuant.count(Observed))
        Observed = Observed->arg(0).getNode();
      auto Q = activationQuant(*M, N.target(), Observed->name());
      if (!Q)
        return Q.takeError();
      It = ByModule.emplace(N.target().str(), *Q).first;
    }
    ObsQuant[&N] = It->second;
  }
  return llvm::Error::success();
}

Node *Converter::baseOf(Node *N) const {
  while (isObserverNode(N))
    N = N->arg(0).getNode();
  return N;
}

Node *Converter::outputObserver(const Node *N) const {
  for (Node *U : N->users())
    if (isObserverNode(U) && U->arg(0).getNode() == N)
      return U;
  return nullptr;
}

const ActQuant *Converter::staticQuant(const Node *Obs) const {
  auto It = ObsQuant.find(Obs);
  if (It == ObsQuant.end() || It->second.Dynamic || It->second.Float)
    return nullptr;
  return &It->second;
}

/// The qparams \p A has as an op input: an observer's, or those of a value
/// that is already int8; nullptr if \p A is float.
const ActQuant *Converter::inputQuant(Node *A) const {
  if (!A)
    return nullptr;
  if (isObserverNode(A))
    return staticQuant(A);
  auto It = Ver.find(A);
  if (It != Ver.end() && It->second.Quant)
    return &It->second.Q;
  return nullptr;
}

//===----------------------------------------------------------------------===//
// Versions
//===----------------------------------------------------------------------===//

llvm::Expected<Node *> Converter::floatOf(Node *A) {
  Node *B = baseOf(A);
  auto It = Ver.find(B);
  if (It == Ver.end())
    return B;
  Versions &V = It->second;
  if (V.Float)
    return V.Float;
  assert(V.Quant && "a converted value has neither version");
  const auto &T = V.Quant->type();
  assert(T && "int8 values are typed");
  G.setInsertPoint(Cur);
  Node *D = G.callMethod("dequantize", {Argument(V.Quant)});
  D->setType(TensorType{DType::F32, T->Dims, QuantParams()});
  D->setScope(Cur->scope().str());
  if (Cur->op() == OpCode::Output)
    remark(D, "dequantize " + B->name() + " at the output");
  else
    remark(D, "dequantize " + B->name() + " before float op " + Cur->target());
  V.Float = D;
  return D;
}

/// The int8 version of base value \p Base with qparams \p Q: the value
/// itself if it is int8 with those qparams, else a (cached) quantize of its
/// float version.
llvm::Expected<Node *> Converter::quantAs(Node *Base, const ActQuant &Q) {
  assert(!Q.Dynamic && "dynamic values have no static int8 version");
  auto VI = Ver.find(Base);
  Node *Own = VI != Ver.end() ? VI->second.Quant : nullptr;
  ActQuant OwnQ = Own ? VI->second.Q : ActQuant();
  if (Own && OwnQ == Q)
    return Own;
  auto Key = std::make_tuple(Base, int(Q.Dtype), Q.Scale, Q.ZeroPoint);
  auto It = QuantCache.find(Key);
  if (It != QuantCache.end())
    return It->second;
  auto F = floatOf(Base);
  if (!F)
    return F.takeError();
  auto T = quantType(Base, Q);
  if (!T)
    return T.takeError();
  G.setInsertPoint(Cur);
  Node *QN = G.callFunction("quantize_per_tensor",
                            {Argument(*F), Argument::real(Q.Scale),
                             Argument::integer(Q.ZeroPoint),
                             Argument::string(torchDtypeName(Q.Dtype).str())});
  QN->setType(*T);
  QN->setScope(Cur->scope().str());
  if (Own)
    remark(QN, "requantized " + Base->name() + " from " +
                   formatQParams(OwnQ.Scale, OwnQ.ZeroPoint) + " to " +
                   formatQParams(Q.Scale, Q.ZeroPoint) + " for " + Cur->name() +
                   " (dequantize + quantize_per_tensor)");
  else
    remark(QN, "inserted quantize_per_tensor for " + Base->name() + " (" +
                   formatQParams(Q.Scale, Q.ZeroPoint) + ")");
  QuantCache[Key] = QN;
  return QN;
}

/// The int8 version of op input \p A (inputQuant(A) must be set).
llvm::Expected<Node *> Converter::quantInput(Node *A) {
  if (isObserverNode(A)) {
    const ActQuant *Q = staticQuant(A);
    assert(Q && "quantInput of a dynamic observer");
    return quantAs(baseOf(A), *Q);
  }
  assert(Ver.count(A) && Ver[A].Quant && "quantInput of a float value");
  return Ver[A].Quant;
}

/// Rewrites every node argument of \p N but the first \p Skip positional
/// ones (already set to int8 versions) to the float version.
llvm::Error Converter::remapToFloat(Node *N, size_t Skip) {
  llvm::Error Err = llvm::Error::success();
  std::function<Argument(const Argument &)> Map =
      [&](const Argument &A) -> Argument {
    if (A.isNode()) {
      auto F = floatOf(A.getNode());
      if (!F) {
        Err = joinErrors(std::move(Err), F.takeError());
        return A;
      }
      return Argument(*F);
    }
    if (A.isList()) {
      std::vector<Argument> Elems;
      for (const Argument &E : A.getList())
        Elems.push_back(Map(E));
      return Argument::list(std::move(Elems));
    }
    return A;
  };
  bool Changed = false;
  std::vector<Argument> Args;
  for (const Argument &A : N->args()) {
    Args.push_back(Args.size() < Skip ? A : Map(A));
    Changed |= Args.back() != A;
  }
  Kwargs KW;
  for (const auto &KV : N->kwargs()) {
    KW.emplace_back(KV.first, Map(KV.second));
    Changed |= KW.back().second != KV.second;
  }
  if (Err)
    return Err;
  if (Changed) {
    N->setArgs(std::move(Args));
    N->setKwargs(std::move(KW));
  }
  return llvm::Error::success();
}

void Converter::setQuantized(Node *N, const ActQuant &Q) {
  Versions &V = Ver[N];
  V.Quant = N;
  V.Q = Q;
}

//===----------------------------------------------------------------------===//
// Building
//===----------------------------------------------------------------------===//

llvm::Expected<TensorType> Converter::quantType(const Node *N,
                                                const ActQuant &Q) {
  if (!N->type())
    return makeError("convert needs typed nodes: '" + N->name() +
                     "' has no type");
  return TensorType{Q.Dtype, N->type()->Dims,
                    QuantParams::perTensor(Q.Scale, Q.ZeroPoint)};
}

bool Converter::calledOnce(const Node *N) {
  if (ModuleCalls.lookup(N->target()) <= 1)
    return true;
  keptFloat(N, "module " + N->target() + " is called more than once");
  return false;
}

/// The weight observer prepare attached to \p M (or to its float child).
llvm::Expected<const ModuleInfo *>
Converter::weightObserver(const Node *N, const ModuleInfo &M) {
  const ModuleInfo *Child0 = M.child("0");
  for (const ModuleInfo *Owner : {&M, Child0})
    for (const char *Name : {"weight_post_process", "weight_fake_quant"})
      if (const ModuleInfo *C = Owner ? Owner->child(Name) : nullptr)
        return C;
  return makeError("'" + N->target() + "' (" + M.kind() +
                   ") has no weight_post_process or weight_fake_quant child: "
                   "prepare attaches one");
}

/// Turns \p M into a flat quantized module in place (keeping its position
/// in the module tree): kind, attributes plus the output qparams, tensors;
/// children (the fused parts, the weight observer) go.
void Converter::rebuildModule(ModuleInfo &M, llvm::StringRef Kind,
                              AttrMap Attrs, std::vector<NamedTensor> Tensors,
                              const ActQuant &Out) {
  std::vector<std::string> Children, Names, AttrNames;
  for (const auto &C : M.children())
    Children.push_back(C.first);
  for (const NamedTensor &T : M.tensors())
    Names.push_back(T.Name);
  for (const auto &KV : M.attrs())
    AttrNames.push_back(KV.first);
  for (const std::string &C : Children)
    M.eraseChild(C);
  for (const std::string &T : Names)
    M.eraseTensor(T);
  for (const std::string &A : AttrNames)
    M.eraseAttr(A);
  M.setKind(Kind.str());
  for (auto &KV : Attrs)
    M.setAttr(KV.first, std::move(KV.second));
  M.setAttr("scale", Argument::real(Out.Scale));
  M.setAttr("zero_point", Argument::integer(Out.ZeroPoint));
  for (NamedTensor &T : Tensors)
    M.setTensor(T.Name, std::move(T.Value), T.IsBuffer);
}

/// Makes \p N a call_function of \p Fn: in place for call_function nodes,
/// else by a new node that takes over \p N's uses (and, at the end, its
/// name).
Node *Converter::replaceWithFunction(Node *N, llvm::StringRef Fn,
                                     std::vector<Argument> Args, TensorType T) {
  if (N->op() == OpCode::CallFunction) {
    N->setTarget(Fn.str());
    N->setArgs(std::move(Args));
    N->setKwargs({});
    N->setType(std::move(T));
    return N;
  }
  G.setInsertPoint(N);
  Node *New = G.callFunction(Fn, std::move(Args));
  New->setType(std::move(T));
  New->setScope(N->scope().str());
  for (const auto &KV : N->meta())
    New->setMeta(KV.first, KV.second);
  N->replaceAllUsesWith(New);
  if (N->op() == OpCode::CallModule)
    ReplacedModules.push_back(N->target().str());
  Dead.push_back(N);
  Renames.emplace_back(New, N->name().str());
  return New;
}

/// Points the first positional arguments of \p N at the int8 versions of
/// \p Inputs and every other node argument at float versions.
llvm::Error Converter::readInt8(Node *N, llvm::ArrayRef<Node *> Inputs) {
  for (size_t I = 0; I < Inputs.size(); ++I) {
    auto Q = quantInput(Inputs[I]);
    if (!Q)
      return Q.takeError();
    N->setArg(I, *Q);
  }
  return remapToFloat(N, Inputs.size());
}

/// Rebuilds call_module \p N's module as P.Replacement with \p Tensors and
/// \p FP's attributes; \p N now yields \p Out-quantized values of type \p T.
void Converter::toQuantizedModule(Node *N, const OpPattern &P, FloatParams FP,
                                  std::vector<NamedTensor> Tensors,
                                  const ActQuant &Out, TensorType T) {
  ModuleInfo *M = GM.lookupModule(N->target());
  std::string From = M->kind().str();
  rebuildModule(*M, P.Replacement, std::move(FP.Attrs), std::move(Tensors),
                Out);
  N->setType(std::move(T));
  setQuantized(N, Out);
  remark(N, N->target() + " → " + P.Replacement + " (from " + From + ", " +
                formatQParams(Out.Scale, Out.ZeroPoint) + ")");
}

/// \p Relu's work is done by \p Into (quantized_add_relu): its users move
/// over and it goes at the end, with its module if it was one.
void Converter::foldRelu(Node *Relu, Node *Into) {
  Relu->replaceAllUsesWith(Into);
  Folded.insert(Relu);
  Dead.push_back(Relu);
  if (Relu->op() == OpCode::CallModule)
    ReplacedModules.push_back(Relu->target().str());
}

//===----------------------------------------------------------------------===//
// Conversions
//===----------------------------------------------------------------------===//

static Node *argNode(const Node *N, size_t I) {
  return I < N->numArgs() && N->arg(I).isNode() ? N->arg(I).getNode() : nullptr;
}

llvm::Expected<bool> Converter::convertWeighted(Node *N, const OpPattern &P) {
  Node *In = argNode(N, 0);
  if (!In || !calledOnce(N))
    return false;
  auto Obs = ObsQuant.find(In);
  if (Obs != ObsQuant.end() && Obs->second.Dynamic) {
    // Linear has a dynamic int8 form (QuantizedLinearDynamic); LinearReLU
    // becomes one followed by a float relu, which is what PyTorch's
    // linear_relu_dynamic computes.
    if (!P.SupportsDynamic) {
      keptFloat(N, "no dynamic int8 form for " + P.Op);
      return false;
    }
    return convertDynamicLinear(N, In, P);
  }
  if (Obs != ObsQuant.end() && Obs->second.Float)
    return convertWeightOnly(N, P);
  const ActQuant *InQ = inputQuant(In);
  Node *OutObs = outputObserver(N);
  const ActQuant *OutQ = OutObs ? staticQuant(OutObs) : nullptr;
  Node *Other = P.HasOther ? argNode(N, 1) : nullptr;
  if (!InQ || !OutQ || (P.HasOther && !inputQuant(Other)))
    return false;

  ModuleInfo *M = GM.lookupModule(N->target());
  auto FP = floatParams(*M, P.Part, N->target());
  if (!FP)
    return FP.takeError();
  if (FP->Tensors.empty() || FP->Tensors[0].Name != "weight")
    return makeError("'" + N->target() + "' (" + M->kind() + ") has no weight");
  auto WObs = weightObserver(N, *M);
  if (!WObs)
    return WObs.takeError();
  auto QW = quantizeWeight(FP->Tensors[0].Value, **WObs, N->target());
  if (!QW)
    return QW.takeError();
  // Conv family: a transposed conv's output channels are weight axis 1;
  // PyTorch 1.13 refuses per-channel weight observers for it (its default
  // x86 mapping gives ConvTranspose2d per-tensor weights).
  if (M->kind() == "ConvTranspose2d" && QW->quant().isPerChannel() &&
      QW->quant().Axis != 1)
    return makeError(
        "ConvTranspose2d: per-channel weight quantization must be along "
        "axis 1 (output channels), got axis " +
        llvm::Twine(QW->quant().Axis) +
        "; use a per-tensor weight observer as PyTorch 1.13's "
        "get_default_qconfig_mapping(\"x86\") does");
  auto T = quantType(N, *OutQ);
  if (!T)
    return T.takeError();
  std::vector<Node *> Inputs = {In};
  if (Other)
    Inputs.push_back(Other);
  if (llvm::Error E = readInt8(N, Inputs))
    return E;
  std::vector<NamedTensor> Tensors = {{"weight", false, *QW}};
  for (const NamedTensor &B : FP->Tensors)
    if (B.Name == "bias")
      Tensors.push_back(B);
  toQuantizedModule(N, P, std::move(*FP), std::move(Tensors), *OutQ, *T);
  return true;
}

/// Linear (or LinearReLU) with a dynamic (placeholder) input observer:
/// float in, float out, s8 weight; activations are quantized per batch by
/// the kernel.
llvm::Expected<bool> Converter::convertDynamicLinear(Node *N, Node *In,
                                                     const OpPattern &P) {
  ModuleInfo *M = GM.lookupModule(N->target());
  auto FP = floatParams(*M, P.Part, N->target());
  if (!FP)
    return FP.takeError();
  if (FP->Tensors.empty() || FP->Tensors[0].Name != "weight")
    return makeError("'" + N->target() + "' (" + M->kind() + ") has no weight");
  auto WObs = weightObserver(N, *M);
  if (!WObs)
    return WObs.takeError();
  auto QW = quantizeWeight(FP->Tensors[0].Value, **WObs, N->target());
  if (!QW)
    return QW.takeError();
  if (llvm::Error E = remapToFloat(N))
    return E;
  std::vector<NamedTensor> Tensors = {{"weight", false, *QW}};
  for (const NamedTensor &B : FP->Tensors)
    if (B.Name == "bias")
      Tensors.push_back(B);
  std::string From = M->kind().str();
  bool Relu = From != "Linear";
  AttrMap Attrs = std::move(FP->Attrs);
  Attrs["reduce_range"] = Argument::boolean(ObsQuant[In].ReduceRange);
  rebuildModule(*M, "QuantizedLinearDynamic", std::move(Attrs),
                std::move(Tensors), ActQuant());
  // Dynamic modules have no output qparams.
  M->eraseAttr("scale");
  M->eraseAttr("zero_point");
  Node *Out = N;
  if (Relu) {
    // The fused ReLU runs on the float output; the lowering fuses it back
    // into the matmul as a post-op.
    std::vector<Node *> Users(N->users().begin(), N->users().end());
    G.setInsertPointAfter(N);
    Out = G.callFunction("relu", {Argument(N)});
    G.setInsertPointToEnd();
    Out->setType(N->type());
    Out->setScope(N->scope().str());
    for (Node *U : Users)
      U->replaceInputWith(N, Out);
  }
  Ver[N].Float = Out;
  remark(N, N->target() + " → QuantizedLinearDynamic" +
                (Relu ? " + relu" : "") + " (from " + From +
                ", activations quantized per batch)");
  return true;
}

/// A weighted module whose input a float32 placeholder watches (weight-only
/// qconfigs): it keeps its kind and float activations, and its weight
/// becomes the quantized tensor, which the module dequantizes when it runs
/// (PyTorch's reference modules do the same with a weight-only
/// BackendConfig).
llvm::Expected<bool> Converter::convertWeightOnly(Node *N, const OpPattern &P) {
  if (P.Part == FloatPart::FoldBn) {
    keptFloat(N, "weight-only quantization keeps " + P.Op +
                     " float (its BatchNorm is not folded)");
    return false;
  }
  ModuleInfo *M = GM.lookupModule(N->target());
  ModuleInfo *Holder = P.Part == FloatPart::Child0 ? M->child("0") : M;
  const Tensor *W = Holder ? Holder->tensor("weight") : nullptr;
  if (!W)
    return makeError("'" + N->target() + "' (" + M->kind() + ") has no weight");
  auto WObs = weightObserver(N, *M);
  if (!WObs)
    return WObs.takeError();
  auto QW = quantizeWeight(*W, **WObs, N->target());
  if (!QW)
    return QW.takeError();
  if (llvm::Error E = remapToFloat(N))
    return E;
  DType D = QW->dtype();
  Holder->setTensor("weight", std::move(*QW));
  Ver[N].Float = N;
  remark(N, N->target() + " keeps float activations with a " + dtypeName(D) +
                " weight (weight-only, dequantized when it runs)");
  return true;
}

/// The single relu user of \p N that a quantized_add_relu absorbs, if the
/// observers sit after it (prepare treats add + relu as one pattern).
static Node *foldableRelu(const GraphModule &GM, const Node *N) {
  Node *U = soleReluUser(*N, GM);
  if (!U)
    return nullptr;
  const Argument *QC = U->meta("qconfig");
  if (QC && QC->isString() && QC->getString() == "none")
    return nullptr;
  return U;
}

/// leaky_relu's slope: argument, keyword or module attribute, else
/// PyTorch's default.
static double leakySlope(const Node *N, const ModuleInfo *M) {
  const Argument *A = nullptr;
  if (M)
    A = M->attr("negative_slope");
  else if (N->numArgs() > 1)
    A = &N->arg(1);
  else
    A = N->kwarg("negative_slope");
  if (A && A->isFloat())
    return A->getFloat();
  if (A && A->isInt())
    return double(A->getInt());
  return 0.01;
}

llvm::Expected<bool> Converter::convertGeneral(Node *N, const OpPattern &P) {
  ModuleInfo *M = nullptr;
  if (N->op() == OpCode::CallModule) {
    if (!calledOnce(N))
      return false;
    M = GM.lookupModule(N->target());
  }
  // matmul (transformer attention) takes two activations like add and mul.
  bool Binary = P.Op == "add" || P.Op == "mul" || P.Op == "matmul";
  std::vector<Node *> Inputs = {argNode(N, 0)};
  if (Binary)
    Inputs.push_back(argNode(N, 1));
  for (Node *In : Inputs)
    if (!inputQuant(In))
      return false;
  // add / mul + relu are one pattern, observed after the relu: add folds
  // it (quantized_add_relu); mul leaves it to clamp the int8 product.
  Node *Relu = nullptr;
  Node *OutObs = outputObserver(N);
  if (!OutObs && (P.Op == "add" || P.Op == "mul"))
    if ((Relu = foldableRelu(GM, N)))
      OutObs = outputObserver(Relu);
  const ActQuant *OutQ = OutObs ? staticQuant(OutObs) : nullptr;
  if (!OutQ)
    return false;
  auto T = quantType(N, *OutQ);
  if (!T)
    return T.takeError();

  if (P.ReplacementIsModule) {
    // BatchNorm2d / BNReLU2d: a flat quantized module with the float
    // statistics.
    auto FP = floatParams(*M, P.Part, N->target());
    if (!FP)
      return FP.takeError();
    if (llvm::Error E = readInt8(N, Inputs))
      return E;
    std::vector<NamedTensor> Tensors = std::move(FP->Tensors);
    toQuantizedModule(N, P, std::move(*FP), std::move(Tensors), *OutQ, *T);
    return true;
  }

  std::vector<Argument> Args;
  for (Node *In : Inputs) {
    auto Q = quantInput(In);
    if (!Q)
      return Q.takeError();
    Args.push_back(Argument(*Q));
  }
  if (P.Op == "leaky_relu" || P.Op == "LeakyReLU")
    Args.push_back(Argument::real(leakySlope(N, M)));
  Args.push_back(Argument::real(OutQ->Scale));
  Args.push_back(Argument::integer(OutQ->ZeroPoint));
  if (P.Op == "mul")
    Relu = nullptr;
  llvm::StringRef Fn = Relu ? "quantized_add_relu" : P.Replacement;
  std::string Old = N->name().str();
  Node *New = replaceWithFunction(N, Fn, std::move(Args), *T);
  setQuantized(New, *OutQ);
  if (Relu) {
    foldRelu(Relu, New);
    Old += " + " + Relu->name().str();
  }
  remark(New, Old + " → " + Fn + " (" +
                  formatQParams(OutQ->Scale, OutQ->ZeroPoint) + ")");
  return true;
}

/// add / mul with a scalar. PyTorch's lowered quantized::add / mul with a
/// scalar read the int8 input and ignore the observer their output shares:
/// they derive the output's qparams from the input's (scalarArithQuant).
/// qfx keeps the op float on the dequantized int8 input: for mul exactly
/// the values of the int8 op, for add within half a step of them (PyTorch
/// adds round(c / scale) steps); an int8 consumer reads the result
/// quantized with the derived qparams, which gives the int8 op's codes.
llvm::Expected<bool> Converter::convertScalarArith(Node *N, double C) {
  Node *In = argNode(N, 0);
  const ActQuant *Q = inputQuant(In);
  if (!Q)
    return false;
  ActQuant InQ = *Q;
  auto QIn = quantInput(In);
  if (!QIn)
    return QIn.takeError();
  Node *Base = baseOf(In);
  Node *Deq = nullptr;
  if (Ver.count(Base) && Ver[Base].Quant == *QIn) {
    auto F = floatOf(Base); // The cached dequantize of an int8 value.
    if (!F)
      return F.takeError();
    Deq = *F;
  } else {
    G.setInsertPoint(Cur);
    Deq = G.callMethod("dequantize", {Argument(*QIn)});
    Deq->setType(TensorType{DType::F32, (*QIn)->type()->Dims, QuantParams()});
    Deq->setScope(Cur->scope().str());
    remark(Deq, "dequantize the int8 " + Base->name() + " for " + N->name());
  }
  N->replaceInputWith(In, Deq);
  ActQuant Out = scalarArithQuant(N->target() == "add", C, InQ);
  Ver[N].Float = N;
  for (Node *U : N->users())
    if (isObserverNode(U))
      ObsQuant[U] = Out;
  // Observed after a relu (one pattern): the relu clamps the int8 result.
  if (Node *Relu = foldableRelu(GM, N))
    if (outputObserver(Relu)) {
      auto T = quantType(N, Out);
      if (!T)
        return T.takeError();
      G.setInsertPointAfter(N);
      Node *QN =
          G.callFunction("quantize_per_tensor",
                         {Argument(N), Argument::real(Out.Scale),
                          Argument::integer(Out.ZeroPoint),
                          Argument::string(torchDtypeName(Out.Dtype).str())});
      G.setInsertPointToEnd();
      QN->setType(*T);
      QN->setScope(N->scope().str());
      remark(QN, "inserted quantize_per_tensor for " + N->name() + " (" +
                     formatQParams(Out.Scale, Out.ZeroPoint) + ") before " +
                     Relu->name());
      Ver[N].Quant = QN;
      Ver[N].Q = Out;
      if (isObserverNode(In))
        ScalarShared[N] = In->target().str();
    }
  remark(N, N->name() +
                " runs in float on the int8 input; int8 users read it "
                "with " +
                formatQParams(Out.Scale, Out.ZeroPoint) + ", PyTorch's " +
                N->target() + " by a scalar");
  return true;
}

llvm::Expected<bool> Converter::convertShares(Node *N) {
  if (std::optional<double> C = scalarArithOperand(*N))
    return convertScalarArith(N, *C);
  Node *In = argNode(N, 0);
  const ActQuant *Q = inputQuant(In);
  if (!Q)
    return false;
  ActQuant InQ = *Q;
  auto T = quantType(N, InQ);
  if (!T)
    return T.takeError();
  std::string Shared =
      isObserverNode(In) ? In->target().str() : ScalarShared.lookup(In);
  if (llvm::Error E = readInt8(N, {In}))
    return E;
  N->setType(*T);
  setQuantized(N, InQ);
  // Calls of the shared observer on the output stand for these qparams,
  // which differ from the observer's own after a scalar op.
  for (Node *U : N->users())
    if (isObserverNode(U) && !Shared.empty() && U->target() == Shared)
      ObsQuant[U] = InQ;
  remark(N, N->name() + " runs on int8 with its input's qparams (" +
                formatQParams(InQ.Scale, InQ.ZeroPoint) + ")");
  return true;
}

llvm::Expected<bool> Converter::convertCat(Node *N, const OpPattern &P) {
  const Argument *List = N->numArgs() > 0 ? &N->arg(0) : N->kwarg("tensors");
  if (!List || !List->isList())
    return false;
  std::vector<Node *> Elems;
  for (const Argument &E : List->getList()) {
    if (!E.isNode() || !inputQuant(E.getNode()))
      return false;
    Elems.push_back(E.getNode());
  }
  Node *OutObs = outputObserver(N);
  const ActQuant *OutQ = OutObs ? staticQuant(OutObs) : nullptr;
  if (!OutQ)
    return false;
  const Argument *DimArg = N->numArgs() > 1 ? &N->arg(1) : N->kwarg("dim");
  int64_t Dim = DimArg && DimArg->isInt() ? DimArg->getInt() : 0;
  auto T = quantType(N, *OutQ);
  if (!T)
    return T.takeError();
  // Every input takes the output's qparams (the shared observer's); an
  // input that is int8 with other qparams is requantized.
  std::vector<Argument> QElems;
  for (Node *E : Elems) {
    auto QE = quantAs(isObserverNode(E) ? baseOf(E) : E, *OutQ);
    if (!QE)
      return QE.takeError();
    QElems.push_back(Argument(*QE));
  }
  std::string Old = N->name().str();
  Node *New = replaceWithFunction(
      N, P.Replacement,
      {Argument::list(std::move(QElems)), Argument::integer(Dim),
       Argument::real(OutQ->Scale), Argument::integer(OutQ->ZeroPoint)},
      *T);
  setQuantized(New, *OutQ);
  remark(New, Old + " → " + P.Replacement + " (" +
                  formatQParams(OutQ->Scale, OutQ->ZeroPoint) + ")");
  return true;
}

llvm::Expected<bool> Converter::convertFixed(Node *N, const OpPattern &P) {
  Node *In = argNode(N, 0);
  if (!inputQuant(In))
    return false;
  ModuleInfo *M =
      N->op() == OpCode::CallModule ? GM.lookupModule(N->target()) : nullptr;
  if (M && !calledOnce(N))
    return false;
  std::vector<Argument> Extra;
  if (P.Replacement == "quantized_softmax") {
    const Argument *Dim = M                  ? M->attr("dim")
                          : N->numArgs() > 1 ? &N->arg(1)
                                             : N->kwarg("dim");
    if (!Dim || !Dim->isInt())
      return false;
    Extra.push_back(*Dim);
  }
  ActQuant Out;
  Out.Scale = P.FixedScale;
  Out.ZeroPoint = P.FixedZeroPoint;
  auto T = quantType(N, Out);
  if (!T)
    return T.takeError();
  auto QIn = quantInput(In);
  if (!QIn)
    return QIn.takeError();
  std::vector<Argument> Args = {Argument(*QIn)};
  Args.insert(Args.end(), Extra.begin(), Extra.end());
  std::string Old = N->name().str();
  Node *New = replaceWithFunction(N, P.Replacement, std::move(Args), *T);
  setQuantized(New, Out);
  remark(New, Old + " → " + P.Replacement + " (fixed " +
                  formatQParams(Out.Scale, Out.ZeroPoint) + ")");
  return true;
}

llvm::Error Converter::convertNode(Node *N) {
  OpPattern P = classify(GM, *N);
  bool Converted = false;
  if (P.Class != OpClass::Float) {
    const Argument *QC = N->meta("qconfig");
    llvm::Expected<bool> R = false;
    Explained = false;
    if (QC && QC->isString() && QC->getString() == "none")
      keptFloat(N, "qconfig none");
    else if (P.Class == OpClass::Weighted)
      R = convertWeighted(N, P);
    else if (P.Class == OpClass::General)
      R = convertGeneral(N, P);
    else if (P.Class == OpClass::SharesQParams)
      R = convertShares(N);
    else if (P.Class == OpClass::Cat)
      R = convertCat(N, P);
    else
      R = convertFixed(N, P);
    if (!R)
      return prefixError(R.takeError(), ("node '" + N->name() + "'").str());
    Converted = *R;
    if (!Converted && !Explained)
      keptFloat(N, P.Op + " has no observed int8 input or output here");
  }
  if (Converted)
    return llvm::Error::success();
  if (llvm::Error E = remapToFloat(N))
    return E;
  Ver[N].Float = N;
  return llvm::Error::success();
}

//===----------------------------------------------------------------------===//
// The walk
//===----------------------------------------------------------------------===//

llvm::Error Converter::finish() {
  for (auto It = Dead.rbegin(); It != Dead.rend(); ++It) {
    assert(!(*It)->hasUsers() && "a replaced node is still used");
    G.erase(*It);
  }
  std::vector<Node *> All = G.nodes();
  for (auto It = All.rbegin(); It != All.rend(); ++It) {
    if (!isObserverNode(*It))
      continue;
    assert(!(*It)->hasUsers() && "an observer is still used after convert");
    G.erase(*It);
  }
  for (auto &R : Renames)
    if (llvm::Error E = G.rename(R.first, R.second))
      return E;

  llvm::StringMap<bool> Called;
  for (const Node &N : G)
    if (N.op() == OpCode::CallModule)
      Called[N.target()] = true;
  for (const std::string &Path : GM.moduleNames()) {
    const ModuleInfo *M = GM.lookupModule(Path);
    // Absent: erased with its parent.
    if (M && isObserverOrFakeQuantKind(M->kind()))
      GM.eraseModule(Path);
  }
  for (const std::string &Path : ReplacedModules)
    if (!Called.count(Path))
      GM.eraseModule(Path);
  return llvm::Error::success();
}

llvm::Error Converter::run() {
  if (llvm::Error E = collectObservers())
    return E;
  for (Node *N : G.nodes()) {
    if (Folded.count(N))
      continue;
    Cur = N;
    switch (N->op()) {
    case OpCode::Placeholder:
    case OpCode::GetAttr:
      Ver[N].Float = N;
      break;
    case OpCode::Output:
      if (llvm::Error E = remapToFloat(N))
        return E;
      break;
    default:
      if (isObserverNode(N))
        break;
      if (llvm::Error E = convertNode(N))
        return E;
    }
  }
  Cur = nullptr;
  G.setInsertPointToEnd();
  return finish();
}

llvm::Error Convert::run(GraphModule &GM, PassContext &Ctx) {
  return Converter(GM, Ctx).run();
}
