//===- Tracer.cpp - Records forward() into a graph ------------------------===//

#include "qfx/NN/Tracer.h"

#include "qfx/NN/Module.h"
#include "qfx/Runtime/Op.h"
#include "qfx/Support/Error.h"

#include "llvm/ADT/STLExtras.h"

using namespace qfx;
using namespace qfx::nn;

static thread_local Tracer *CurrentTracer = nullptr;

bool nn::isStandardLeafModule(const Module &M, llvm::StringRef) {
  return M.isStandardLeaf();
}

Tracer *Tracer::current() { return CurrentTracer; }

Tracer::Activation::Activation(Tracer &T) : Previous(CurrentTracer) {
  CurrentTracer = &T;
}

Tracer::Activation::~Activation() { CurrentTracer = Previous; }

/// Copies \p M's own attributes and tensors into \p Info, in state_dict
/// order (parameters, then buffers).
static void copyModuleState(const Module &M, ModuleInfo &Info) {
  ModuleInfo Own = M.info();
  for (const auto &A : Own.attrs())
    Info.setAttr(A.first, A.second);
  for (const NamedTensor &T : Own.tensors())
    Info.setTensor(T.Name, T.Value, T.IsBuffer);
}

Tracer::Tracer(Module &Root, LeafPolicy Policy)
    : GM(std::make_unique<GraphModule>(Root.kind().str())),
      IsLeaf(std::move(Policy)) {
  ScopeStack.push_back("");
  for (auto &[Path, M] : Root.named_modules()) {
    ModulePaths.try_emplace(M, Path);
    ModuleInfo &Info =
        Path.empty() ? GM->root() : GM->addModule(Path, M->kind().str());
    copyModuleState(*M, Info);
    for (const NamedTensor &T : M->tensors())
      if (T.Value.hasData())
        TensorPaths.try_emplace(T.Value.rawData(),
                                Path.empty() ? T.Name : Path + "." + T.Name);
  }
}

Tracer::~Tracer() = default;

void Tracer::fail(const std::string &Msg) const {
  std::string Scope = scope().str();
  throw Error("in module '" + Scope + "'" +
              (Scope.empty() ? " (the root)" : "") + ": " + Msg);
}

Value Tracer::placeholder(llvm::StringRef Name, const TensorType &Type) {
  Node *N = GM->graph().placeholder(Name, Type);
  return Value(this, N, Type);
}

Argument Tracer::toArgument(const Value &V) {
  if (!V.defined())
    return Argument::none();
  if (V.isSymbolic()) {
    if (V.tracer() != this)
      fail("a value from another trace was used");
    return Argument(V.node());
  }
  const Tensor &T = V.tensor();
  if (!T.hasData())
    return Argument::none();
  // A registered parameter or buffer is read with get_attr under its own
  // name; any other tensor becomes a constant of the root module, as
  // torch.fx does with _tensor_constant attributes.
  std::string Path;
  auto It = TensorPaths.find(T.rawData());
  if (It != TensorPaths.end() &&
      GM->lookupTensor(It->second)->shape() == T.shape()) {
    Path = It->second;
  } else {
    Path = "_tensor_constant" + std::to_string(NumConstants++);
    GM->root().setTensor(Path, T, /*IsBuffer=*/true);
    TensorPaths[T.rawData()] = Path;
  }
  Node *&Attr = AttrNodes[Path];
  if (!Attr) {
    Attr = GM->graph().getAttr(
        Path, TensorType{T.dtype(), Shape(T.shape().begin(), T.shape().end()),
                         T.quant()});
    Attr->setScope(scope().str());
  }
  return Argument(Attr);
}

Argument Tracer::toArgument(const OpArg &A) {
  switch (A.K) {
  case OpArg::Kind::Val:
    return toArgument(A.V);
  case OpArg::Kind::Arg:
    return A.A;
  case OpArg::Kind::List: {
    std::vector<Argument> Elems;
    for (const Value &V : A.L)
      Elems.push_back(toArgument(V));
    return Argument::list(std::move(Elems));
  }
  }
  llvm_unreachable("unknown OpArg kind");
}

Operand Tracer::toOperand(const Value &V) const {
  if (!V.defined())
    return Operand(Argument::none());
  if (!V.isSymbolic())
    return Operand(V.tensor());
  Tensor D = Tensor::declared(V.dtype(), V.shape());
  return Operand(std::move(D));
}

Operand Tracer::toOperand(const OpArg &A) const {
  switch (A.K) {
  case OpArg::Kind::Val:
    return toOperand(A.V);
  case OpArg::Kind::Arg:
    return Operand(A.A);
  case OpArg::Kind::List: {
    std::vector<Operand> Elems;
    for (const Value &V : A.L)
      Elems.push_back(toOperand(V));
    return Operand::list(std::move(Elems));
  }
  }
  llvm_unreachable("unknown OpArg kind");
}

Value Tracer::recordOp(llvm::StringRef Op, const std::vector<OpArg> &Args,
                       const OpKwargs &KwArgs, bool AsMethod) {
  const OpDef *Def = lookupOp(Op);
  if (!Def)
    fail("unknown op '" + Op.str() + "'");
  std::vector<Operand> Pos;
  for (const OpArg &A : Args)
    Pos.push_back(toOperand(A));
  std::vector<std::pair<std::string, Operand>> KW;
  for (const auto &KV : KwArgs)
    KW.emplace_back(KV.first, toOperand(KV.second));
  llvm::Expected<TensorType> Ty = inferOp(Op, std::move(Pos), std::move(KW));
  if (!Ty)
    fail(errorToString(Ty.takeError()));

  std::vector<Argument> NodeArgs;
  for (const OpArg &A : Args)
    NodeArgs.push_back(toArgument(A));
  // Record what Python code would say: drop trailing defaulted arguments.
  while (!NodeArgs.empty() && NodeArgs.size() <= Def->Params.size()) {
    const OpParam &P = Def->Params[NodeArgs.size() - 1];
    if (!P.Default || NodeArgs.back() != *P.Default)
      break;
    NodeArgs.pop_back();
  }
  Kwargs NodeKwargs;
  for (const auto &KV : KwArgs)
    NodeKwargs.emplace_back(KV.first, toArgument(KV.second));
  Node *N =
      GM->graph().create(AsMethod ? OpCode::CallMethod : OpCode::CallFunction,
                         Op, Op, std::move(NodeArgs), std::move(NodeKwargs));
  N->setType(*Ty);
  N->setScope(scope().str());
  return Value(this, N, *Ty);
}

/// Restores the scope stack even when forward() throws.
namespace {
struct ScopeGuard {
  std::vector<std::string> &Stack;
  ScopeGuard(std::vector<std::string> &S, std::string Path) : Stack(S) {
    Stack.push_back(std::move(Path));
  }
  ~ScopeGuard() { Stack.pop_back(); }
};
} // namespace

/// Runs \p M eagerly with no tracer active (constant inputs, or a user
/// leaf's type probe).
static Value runUntraced(Module &M, const std::vector<Value> &Inputs) {
  Tracer *Saved = CurrentTracer;
  CurrentTracer = nullptr;
  try {
    Value R = M.forwardMany(Inputs);
    CurrentTracer = Saved;
    return R;
  } catch (...) {
    CurrentTracer = Saved;
    throw;
  }
}

Value Tracer::callModule(Module &M, const std::vector<Value> &Inputs) {
  // With only concrete inputs the call is constant: compute it, as ops on
  // concrete values are computed (this is what makes concrete args work).
  if (llvm::none_of(Inputs, [](const Value &V) { return V.isSymbolic(); }))
    return runUntraced(M, Inputs);
  auto It = ModulePaths.find(&M);
  if (It == ModulePaths.end())
    fail("called a module of kind '" + M.kind().str() +
         "' that is not registered as a submodule of the traced model");
  std::string Path = It->second;
  if (!Path.empty() && IsLeaf(M, Path))
    return recordLeafCall(M, Path, Inputs);
  ScopeGuard Guard(ScopeStack, Path);
  return M.forwardMany(Inputs);
}

Value Tracer::recordLeafCall(Module &M, llvm::StringRef Path,
                             const std::vector<Value> &Inputs) {
  std::optional<TensorType> Ty;
  if (lookupModuleKind(M.kind())) {
    std::vector<Operand> Ops;
    for (const Value &V : Inputs)
      Ops.push_back(toOperand(V));
    auto Call = bindModuleCall(*GM->lookupModule(Path), std::move(Ops));
    if (!Call)
      fail(Path.str() + ": " + errorToString(Call.takeError()));
    auto T = Call->first->Infer(Call->second);
    if (!T)
      fail(Path.str() + ": " + errorToString(T.takeError()));
    Ty = *T;
  } else {
    // A user module kept as a leaf: learn its result type by running it on
    // zeros of the input types, outside the trace.
    std::vector<Value> Zeros;
    for (const Value &V : Inputs)
      Zeros.push_back(Value(Tensor(V.dtype(), V.shape())));
    Value R = runUntraced(M, Zeros);
    Ty = TensorType{R.dtype(), Shape(R.shape().begin(), R.shape().end()), {}};
  }
  std::vector<Argument> Args;
  for (const Value &V : Inputs)
    Args.push_back(toArgument(V));
  Node *N = GM->graph().callModule(Path, std::move(Args));
  N->setType(Ty);
  N->setScope(scope().str());
  return Value(this, N, *Ty);
}

void Tracer::output(const Value &Result) {
  if (!Result.defined())
    fail("forward() returned an undefined value");
  GM->graph().output(toArgument(Result));
}
