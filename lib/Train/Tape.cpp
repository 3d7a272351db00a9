//===- Tape.cpp - Recording forward and reverse-mode backward ------------===//
//
// Forward walks the graph in order and records, per node, the op
// applications it performed (Record/Step in TapeRecord.h); backward walks the
// records in reverse, applying each step's gradient rule and routing the
// results to the nodes, parameters and earlier steps they came from.
//
//===----------------------------------------------------------------------===//

#include "qfx/Train/Tape.h"

#include "ConvBnQat.h"
#include "TapeRecord.h"

#include "qfx/IR/GraphModule.h"
#include "qfx/Quant/ObserverModule.h"
#include "qfx/Runtime/Interpreter.h"
#include "qfx/Runtime/ModuleRunner.h"
#include "qfx/Support/Error.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/STLExtras.h"

#include <set>

using namespace qfx;
using namespace qfx::train;

void qfx::train::accumulate(Tensor &Acc, const Tensor &G) {
  if (!Acc.hasData()) {
    Acc = G.clone();
    return;
  }
  assert(Acc.numElements() == G.numElements() && "gradient shape mismatch");
  float *A = Acc.data<float>();
  const float *B = G.data<float>();
  const int64_t N = Acc.numElements();
#pragma omp parallel for schedule(static) if (N >= (1 << 15))
  for (int64_t I = 0; I < N; ++I)
    A[I] += B[I];
}

/// Qualified names of the trainable tensors under \p M: f32 parameters of
/// modules that are not observers.
static void collectParams(const ModuleInfo &M, const std::string &Prefix,
                          std::vector<std::string> &Out) {
  if (isObserverModule(M))
    return;
  for (const NamedTensor &T : M.tensors())
    if (!T.IsBuffer && T.Value.dtype() == DType::F32)
      Out.push_back(Prefix + T.Name);
  for (const auto &C : M.children())
    collectParams(*C.second, Prefix + C.first + ".", Out);
}

struct qfx::TapeState {
  std::vector<Record> Records;
  llvm::DenseMap<const Node *, Tensor> Values;
  llvm::DenseMap<const Node *, bool> ReqGrad;
  std::set<std::string> Params;
  std::vector<const Node *> Outputs;
};

namespace {

/// One forward run: fills a TapeState.
class Recorder {
public:
  Recorder(GraphModule &GM, const TapeOptions &Opts, std::mt19937_64 &Rng,
           TapeState &St)
      : GM(GM), Opts(Opts), Rng(Rng), St(St) {}

  llvm::Expected<std::vector<Tensor>> run(llvm::ArrayRef<Tensor> Inputs);

private:
  llvm::Error bindInputs(llvm::ArrayRef<Tensor> Inputs);
  llvm::Expected<Tensor> evaluate(const Node &N, Record &R);
  llvm::Expected<std::pair<Operand, Source>> resolve(const Argument &A);
  llvm::Expected<Tensor> recordOp(const Node &N, Record &R);
  llvm::Expected<Tensor> recordModule(const Node &N, Record &R);
  llvm::Expected<Tensor> recordStandard(const ModuleInfo &M,
                                        llvm::StringRef Path,
                                        std::vector<Operand> Inputs,
                                        std::vector<Source> Srcs, Record &R);
  llvm::Expected<Tensor> recordFused(const FusedKindDef &D, const ModuleInfo &M,
                                     llvm::StringRef Path,
                                     std::vector<Operand> Inputs,
                                     std::vector<Source> Srcs, Record &R);
  llvm::Expected<Tensor>
  recordFakeQuantWeight(ModuleInfo &M, llvm::StringRef Path, ModuleInfo &FQ,
                        std::vector<Operand> Inputs, std::vector<Source> Srcs,
                        Record &R);
  llvm::Expected<Tensor> runStep(Step &S, std::optional<bool> Training,
                                 std::optional<double> Momentum);

  GraphModule &GM;
  const TapeOptions &Opts;
  std::mt19937_64 &Rng;
  TapeState &St;
};

} // namespace

llvm::Error Recorder::bindInputs(llvm::ArrayRef<Tensor> Inputs) {
  if (llvm::Error E = checkGraphInputs(GM.graph(), Inputs))
    return E;
  std::vector<Node *> Ph = GM.graph().placeholders();
  for (size_t I = 0; I < Ph.size(); ++I) {
    // Placeholders without a type are not checked against one: training
    // needs f32 whatever the graph says, or integer indices (embedding's
    // input, arith family), which have no gradient.
    bool Indices =
        Inputs[I].dtype() == DType::S64 || Inputs[I].dtype() == DType::S32;
    if (Inputs[I].dtype() != DType::F32 && !Indices)
      return makeError("input '" + Ph[I]->name() +
                       "' must be an f32 tensor (or s64 / s32 indices)");
    St.Values[Ph[I]] = Inputs[I];
    St.ReqGrad[Ph[I]] = Opts.InputGradients && !Indices;
  }
  return llvm::Error::success();
}

llvm::Expected<std::pair<Operand, Source>>
Recorder::resolve(const Argument &A) {
  if (A.isNode()) {
    auto It = St.Values.find(A.getNode());
    if (It == St.Values.end())
      return makeError("value of '" + A.getNode()->name() +
                       "' is not available");
    return std::make_pair(Operand(It->second), Source::node(A.getNode()));
  }
  bool HasNode = false;
  if (A.isList())
    A.forEachNode([&](Node *) { HasNode = true; });
  if (!HasNode)
    return std::make_pair(Operand(A), Source());
  std::vector<Operand> Elems;
  Source L;
  L.K = Source::Kind::List;
  for (const Argument &E : A.getList()) {
    auto R = resolve(E);
    if (!R)
      return R.takeError();
    Elems.push_back(std::move(R->first));
    L.Elems.push_back(std::move(R->second));
  }
  return std::make_pair(Operand::list(std::move(Elems)), std::move(L));
}

llvm::Expected<Tensor> Recorder::runStep(Step &S, std::optional<bool> Training,
                                         std::optional<double> Momentum) {
  S.Rule = train::lookupGradRule(S.Def->Name);
  if (S.Rule && S.Rule->Forward) {
    ForwardCtx C{*S.Args, Training, Momentum, Rng, S.S};
    return S.Rule->Forward(C);
  }
  return S.Def->Run(*S.Args);
}

llvm::Expected<Tensor> Recorder::recordOp(const Node &N, Record &R) {
  const OpDef *Def = lookupOp(N.target());
  if (!Def)
    return makeError("unknown op '" + N.target() + "'");
  std::vector<Operand> Pos;
  std::vector<std::pair<std::string, Operand>> KW;
  Step S;
  S.Def = Def;
  S.Srcs.resize(Def->Params.size());
  for (size_t I = 0; I < N.args().size(); ++I) {
    auto O = resolve(N.args()[I]);
    if (!O)
      return O.takeError();
    Pos.push_back(std::move(O->first));
    if (I < S.Srcs.size())
      S.Srcs[I] = std::move(O->second);
  }
  for (const auto &KV : N.kwargs()) {
    auto O = resolve(KV.second);
    if (!O)
      return O.takeError();
    KW.emplace_back(KV.first, std::move(O->first));
    for (size_t I = 0; I < Def->Params.size(); ++I)
      if (KV.first == Def->Params[I].Name)
        S.Srcs[I] = std::move(O->second);
  }
  auto B = bindArgs(*Def, std::move(Pos), std::move(KW));
  if (!B)
    return B.takeError();
  S.Args.emplace(std::move(*B));
  auto Out = runStep(S, std::nullopt, std::nullopt);
  if (!Out)
    return Out.takeError();
  S.Out = *Out;
  R.Steps.push_back(std::move(S));
  return *Out;
}

/// Whether \p M's tensor \p Name is a trainable parameter.
static bool isParam(const ModuleInfo &M, llvm::StringRef Name) {
  for (const NamedTensor &T : M.tensors())
    if (T.Name == Name)
      return !T.IsBuffer && T.Value.dtype() == DType::F32;
  return false;
}

static std::string join(llvm::StringRef Path, llvm::StringRef Name) {
  return Path.empty() ? Name.str() : (Path + "." + Name).str();
}

llvm::Expected<Tensor> Recorder::recordStandard(const ModuleInfo &M,
                                                llvm::StringRef Path,
                                                std::vector<Operand> Inputs,
                                                std::vector<Source> Srcs,
                                                Record &R) {
  size_t NumInputs = Inputs.size();
  auto Call = bindModuleCall(M, std::move(Inputs));
  if (!Call)
    return Call.takeError();
  const ModuleKindDef *K = lookupModuleKind(M.kind());
  Step S;
  S.Def = Call->first;
  S.Args.emplace(std::move(Call->second));
  S.Srcs.resize(S.Def->Params.size());
  for (size_t I = 0; I < NumInputs && I < S.Srcs.size(); ++I)
    S.Srcs[I] = std::move(Srcs[I]);
  for (size_t J = 0; J < K->TensorOperands.size(); ++J)
    if (isParam(M, K->TensorOperands[J]))
      S.Srcs[NumInputs + K->LeadingAttrs.size() + J] =
          Source::param(join(Path, K->TensorOperands[J]));
  // Module mode decides batch statistics and dropout, as nn.Module.train().
  bool IsBN = M.kind().startswith("BatchNorm");
  std::optional<bool> Training =
      Opts.Training && !(IsBN && Opts.FreezeBatchNorm);
  std::optional<double> Momentum;
  if (const Argument *A = M.attr("momentum"))
    if (A->isFloat())
      Momentum = A->getFloat();
  auto Out = runStep(S, Training, Momentum);
  if (!Out)
    return Out.takeError();
  S.Out = *Out;
  R.Steps.push_back(std::move(S));
  return *Out;
}

llvm::Expected<Tensor>
Recorder::recordFused(const FusedKindDef &D, const ModuleInfo &M,
                      llvm::StringRef Path, std::vector<Operand> Inputs,
                      std::vector<Source> Srcs, Record &R) {
  if (Inputs.size() != D.NumInputs || !Inputs[0].isTensor())
    return makeError(M.kind() + " '" + Path + "' takes " +
                     llvm::Twine(D.NumInputs) + " tensor inputs");
  Tensor Cur = Inputs[0].tensor();
  Source CurSrc = Srcs[0];
  for (const FusedStep &FS : D.Steps) {
    llvm::Expected<Tensor> Next = Tensor();
    if (FS.K == FusedStep::Kind::RunChild) {
      const ModuleInfo *C = M.child(FS.Child);
      if (!C || C->kind() != FS.ChildKind)
        return makeError(M.kind() + " '" + Path + "' needs a " + FS.ChildKind +
                         " child '" + FS.Child + "'");
      Next =
          recordStandard(*C, join(Path, FS.Child), {Operand(Cur)}, {CurSrc}, R);
    } else {
      Step S;
      S.Def = lookupOp("add");
      auto B = bindArgs(*S.Def, {Operand(Cur), Inputs[1]}, {});
      if (!B)
        return B.takeError();
      S.Args.emplace(std::move(*B));
      S.Srcs = {CurSrc, Srcs[1], Source()};
      Next = runStep(S, std::nullopt, std::nullopt);
      if (Next) {
        S.Out = *Next;
        R.Steps.push_back(std::move(S));
      }
    }
    if (!Next)
      return Next.takeError();
    Cur = *Next;
    CurSrc = Source::local(R.Steps.size() - 1);
  }
  return Cur;
}

llvm::Expected<Tensor>
Recorder::recordFakeQuantWeight(ModuleInfo &M, llvm::StringRef Path,
                                ModuleInfo &FQ, std::vector<Operand> Inputs,
                                std::vector<Source> Srcs, Record &R) {
  ModuleInfo *H = weightHolder(M);
  Tensor *WPtr = H ? H->tensor("weight") : nullptr;
  if (!WPtr || !WPtr->hasData() || WPtr->dtype() != DType::F32)
    return makeError("module '" + Path +
                     "' has no f32 weight to fake-quantize");
  Tensor W = *WPtr;
  Tensor Mask;
  auto WQ = runObserverModule(FQ, join(Path, "weight_fake_quant"), W, &Mask);
  if (!WQ)
    return WQ.takeError();
  std::string WName = join(H == &M ? Path : join(Path, "0"), "weight");
  if (Mask.hasData())
    R.ParamMasks[WName] = Mask;
  // The steps bind the fake-quantized weight; the gradient they produce
  // for it is routed to the float weight through the mask.
  H->setTensor("weight", *WQ);
  llvm::Expected<Tensor> Out = Tensor();
  if (const FusedKindDef *D = lookupFusedKind(M.kind()))
    Out = recordFused(*D, M, Path, std::move(Inputs), std::move(Srcs), R);
  else
    Out = recordStandard(M, Path, std::move(Inputs), std::move(Srcs), R);
  H->setTensor("weight", W);
  return Out;
}

llvm::Expected<Tensor> Recorder::recordModule(const Node &N, Record &R) {
  ModuleInfo *M = GM.lookupModule(N.target());
  if (!M)
    return makeError("no module '" + N.target() + "'");
  std::vector<Operand> Inputs;
  std::vector<Source> Srcs;
  for (const Argument &A : N.args()) {
    auto O = resolve(A);
    if (!O)
      return O.takeError();
    Inputs.push_back(std::move(O->first));
    Srcs.push_back(std::move(O->second));
  }
  llvm::StringRef Path = N.target();
  if (isObserverModule(*M)) {
    if (Inputs.size() != 1 || !Inputs[0].isTensor())
      return makeError("observer '" + Path + "' takes one tensor");
    Step S;
    auto Out = runObserverModule(*M, Path, Inputs[0].tensor(), &S.Mask);
    if (!Out)
      return Out.takeError();
    S.Srcs = {Srcs[0]};
    S.Out = *Out;
    R.Steps.push_back(std::move(S));
    return *Out;
  }
  if (ModuleInfo *FQ = M->child("weight_fake_quant")) {
    if (isConvBnQatKind(M->kind()))
      return recordConvBnQat(GM, Path, *M, *FQ, Inputs, Srcs,
                             Opts.Training && !Opts.FreezeBatchNorm, R);
    return recordFakeQuantWeight(*M, Path, *FQ, std::move(Inputs),
                                 std::move(Srcs), R);
  }
  if (const FusedKindDef *D = lookupFusedKind(M->kind()))
    return recordFused(*D, *M, Path, std::move(Inputs), std::move(Srcs), R);
  if (lookupModuleKind(M->kind()))
    return recordStandard(*M, Path, std::move(Inputs), std::move(Srcs), R);
  return makeError("module '" + Path + "' of kind " + M->kind() +
                   " cannot be trained");
}

llvm::Expected<Tensor> Recorder::evaluate(const Node &N, Record &R) {
  switch (N.op()) {
  case OpCode::GetAttr: {
    const Tensor *T = GM.lookupTensor(N.target());
    if (!T || !T->hasData())
      return makeError("tensor '" + N.target() + "' has no data");
    St.ReqGrad[&N] = St.Params.count(N.target().str()) != 0;
    return *T;
  }
  case OpCode::CallModule:
    return recordModule(N, R);
  case OpCode::CallFunction:
  case OpCode::CallMethod:
    return recordOp(N, R);
  default:
    llvm_unreachable("placeholders and output are handled by the caller");
  }
}

/// Whether a gradient must flow to \p S.
static bool needsGrad(const TapeState &St, const Source &S) {
  switch (S.K) {
  case Source::Kind::None:
    return false;
  case Source::Kind::Node:
    return St.ReqGrad.lookup(S.N);
  case Source::Kind::Param:
  case Source::Kind::Local:
    return true;
  case Source::Kind::List:
    return llvm::any_of(S.Elems,
                        [&](const Source &E) { return needsGrad(St, E); });
  }
  return false;
}

/// Whether any operand of \p R needs a gradient (then so does its value).
static bool recordNeedsGrad(const TapeState &St, const Record &R) {
  if (R.Custom)
    return true;
  for (const Step &S : R.Steps)
    for (const Source &Src : S.Srcs)
      if (needsGrad(St, Src))
        return true;
  return false;
}

llvm::Expected<std::vector<Tensor>>
Recorder::run(llvm::ArrayRef<Tensor> Inputs) {
  if (llvm::Error E = bindInputs(Inputs))
    return E;
  for (const Node &N : GM.graph()) {
    if (N.op() == OpCode::Placeholder)
      continue;
    if (N.op() == OpCode::Output) {
      std::vector<Tensor> Outs;
      const Argument &A = N.arg(0);
      std::vector<Argument> Elems =
          A.isList() ? A.getList() : std::vector<Argument>{A};
      for (const Argument &E : Elems) {
        if (!E.isNode() || !St.Values.count(E.getNode()))
          return makeError("output '" + N.name() + "' returns a non-tensor");
        St.Outputs.push_back(E.getNode());
        Outs.push_back(St.Values[E.getNode()]);
      }
      return Outs;
    }
    Record R;
    R.N = &N;
    auto V = evaluate(N, R);
    if (!V)
      return prefixError(V.takeError(), ("node '" + N.name() + "'").str());
    if (N.op() != OpCode::GetAttr)
      St.ReqGrad[&N] = recordNeedsGrad(St, R);
    St.Values[&N] = *V;
    St.Records.push_back(std::move(R));
  }
  return makeError("graph has no output node");
}

//===----------------------------------------------------------------------===//
// Backward
//===----------------------------------------------------------------------===//

namespace {

/// Routes gradients of one backward pass.
class Router : public GradSink {
public:
  Router(TapeState &St, GradMap &Grads) : St(St), Grads(Grads) {}

  llvm::Error backwardRecord(Record &R, const Tensor &G);
  void add(const Source &S, const Tensor &G) override;
  bool needs(const Source &S) const override { return needsGrad(St, S); }

  llvm::DenseMap<const Node *, Tensor> Acc;

private:
  void addParam(const std::string &Name, const Tensor &G);

  TapeState &St;
  GradMap &Grads;
  const Record *Cur = nullptr;
  std::vector<Tensor> LocalGrads;
};

} // namespace

void Router::addParam(const std::string &Name, const Tensor &G) {
  if (Cur) {
    auto M = Cur->ParamMasks.find(Name);
    if (M != Cur->ParamMasks.end()) {
      accumulate(Grads[Name], grad::mulElementwise(G, M->second));
      return;
    }
  }
  accumulate(Grads[Name], G);
}

void Router::add(const Source &S, const Tensor &G) {
  if (!G.hasData())
    return;
  switch (S.K) {
  case Source::Kind::None:
    return;
  case Source::Kind::Node:
    if (St.ReqGrad.lookup(S.N))
      accumulate(Acc[S.N], G);
    return;
  case Source::Kind::Param:
    addParam(S.Param, G);
    return;
  case Source::Kind::Local:
    accumulate(LocalGrads[S.Local], G);
    return;
  case Source::Kind::List:
    llvm_unreachable("list gradients are routed element by element");
  }
}

llvm::Error Router::backwardRecord(Record &R, const Tensor &G) {
  Cur = &R;
  if (R.Custom)
    return R.Custom->backward(G, *this);
  LocalGrads.assign(R.Steps.size(), Tensor());
  LocalGrads.back() = G;
  for (size_t K = R.Steps.size(); K-- > 0;) {
    Step &S = R.Steps[K];
    const Tensor &GK = LocalGrads[K];
    if (!GK.hasData())
      continue;
    if (!S.Def) {
      add(S.Srcs[0], S.Mask.hasData() ? grad::mulElementwise(GK, S.Mask) : GK);
      continue;
    }
    if (!S.Rule)
      return makeError("op '" + llvm::Twine(S.Def->Name) +
                       "' has no gradient rule");
    llvm::SmallVector<bool, 8> Needs;
    for (const Source &Src : S.Srcs)
      Needs.push_back(needsGrad(St, Src));
    BackwardCtx C{*S.Args, S.Out, GK, S.S, Needs};
    auto SG = S.Rule->Backward(C);
    if (!SG)
      return SG.takeError();
    for (size_t I = 0; I < SG->size() && I < S.Srcs.size(); ++I) {
      const Source &Src = S.Srcs[I];
      const std::vector<Tensor> &Gs = (*SG)[I];
      if (Src.K == Source::Kind::List) {
        for (size_t J = 0; J < Gs.size() && J < Src.Elems.size(); ++J)
          add(Src.Elems[J], Gs[J]);
      } else if (!Gs.empty()) {
        add(Src, Gs[0]);
      }
    }
  }
  return llvm::Error::success();
}

//===----------------------------------------------------------------------===//
// Tape
//===----------------------------------------------------------------------===//

Tape::Tape(GraphModule &GM, TapeOptions Opts)
    : GM(GM), Opts(Opts), Rng(Opts.Seed) {}

Tape::~Tape() = default;

std::vector<std::string> Tape::parameterNames() const {
  std::vector<std::string> R;
  collectParams(GM.root(), "", R);
  return R;
}

const Tensor &Tape::inputGrad(size_t I) const {
  static const Tensor Empty;
  return I < InputGrads.size() ? InputGrads[I] : Empty;
}

llvm::Expected<std::vector<Tensor>>
Tape::forward(llvm::ArrayRef<Tensor> Inputs) {
  auto St = std::make_unique<TapeState>();
  for (const std::string &P : parameterNames())
    St->Params.insert(P);
  auto Out = Recorder(GM, Opts, Rng, *St).run(Inputs);
  if (!Out)
    return Out.takeError();
  State = Opts.Training ? std::move(St) : nullptr;
  return Out;
}

llvm::Error Tape::backward(llvm::ArrayRef<Tensor> GradOutputs) {
  if (!State)
    return makeError("backward needs a training-mode forward first");
  std::unique_ptr<TapeState> St = std::move(State);
  if (GradOutputs.size() != St->Outputs.size())
    return makeError("backward: expected " + llvm::Twine(St->Outputs.size()) +
                     " output gradients, got " +
                     llvm::Twine(GradOutputs.size()));
  Router RT(*St, Grads);
  for (size_t I = 0; I < GradOutputs.size(); ++I) {
    const Tensor &V = St->Values[St->Outputs[I]];
    if (GradOutputs[I].shape() != V.shape() ||
        GradOutputs[I].dtype() != DType::F32)
      return makeError("backward: gradient of output " + llvm::Twine(I) +
                       " must be f32" + formatShape(V.shape()));
    accumulate(RT.Acc[St->Outputs[I]], GradOutputs[I]);
  }
  for (size_t K = St->Records.size(); K-- > 0;) {
    Record &R = St->Records[K];
    auto It = RT.Acc.find(R.N);
    if (It == RT.Acc.end())
      continue;
    Tensor G = It->second;
    RT.Acc.erase(It);
    if (R.N->op() == OpCode::GetAttr) {
      if (St->Params.count(R.N->target().str()))
        accumulate(Grads[R.N->target().str()], G);
      continue;
    }
    if (llvm::Error E = RT.backwardRecord(R, G))
      return prefixError(std::move(E), ("node '" + R.N->name() + "'").str());
  }
  InputGrads.clear();
  for (Node *P : GM.graph().placeholders())
    InputGrads.push_back(RT.Acc.lookup(P));
  return llvm::Error::success();
}
