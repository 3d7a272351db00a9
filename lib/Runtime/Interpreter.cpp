//===- Interpreter.cpp - Runs a GraphModule on tensors --------------------===//

#include "qfx/Runtime/Interpreter.h"

#include "qfx/IR/GraphModule.h"
#include "qfx/IR/Printer.h"
#include "qfx/Runtime/ModuleRunner.h"
#include "qfx/Runtime/Op.h"
#include "qfx/Support/Error.h"

#include "llvm/ADT/DenseMap.h"

using namespace qfx;

namespace {

/// Per-run state: the value of each live node and where it dies.
class Run {
public:
  explicit Run(const GraphModule &GM) : GM(GM) {}

  llvm::Expected<std::vector<Tensor>>
  execute(llvm::ArrayRef<Tensor> Inputs, const Interpreter::NodeHook &Hook);
  void setCallModuleHook(const Interpreter::CallModuleHook *H) {
    ModuleHook = H;
  }

private:
  llvm::Error bindInputs(llvm::ArrayRef<Tensor> Inputs);
  llvm::Expected<Operand> resolve(const Argument &A) const;
  llvm::Expected<std::vector<Operand>>
  resolveAll(llvm::ArrayRef<Argument> Args) const;
  llvm::Expected<std::vector<std::pair<std::string, Operand>>>
  resolveKwargs(const Kwargs &KW) const;
  llvm::Expected<Tensor> evaluate(const Node &N);
  void releaseDead(const Node &N);

  const GraphModule &GM;
  const Interpreter::CallModuleHook *ModuleHook = nullptr;
  llvm::DenseMap<const Node *, Tensor> Values;
  llvm::DenseMap<const Node *, size_t> LastUse;
  llvm::DenseMap<const Node *, size_t> Position;
};

} // namespace

llvm::Error qfx::checkGraphInputs(const Graph &G,
                                  llvm::ArrayRef<Tensor> Inputs) {
  std::vector<Node *> Ph = G.placeholders();
  if (Ph.size() != Inputs.size())
    return makeError("expected " + llvm::Twine(Ph.size()) + " inputs, got " +
                     llvm::Twine(Inputs.size()));
  for (size_t I = 0; I < Ph.size(); ++I) {
    const Tensor &In = Inputs[I];
    if (!In.hasData())
      return makeError("input '" + Ph[I]->name() + "' has no data");
    if (const auto &T = Ph[I]->type()) {
      bool Ok = In.dtype() == T->Dtype &&
                In.rank() == static_cast<int64_t>(T->Dims.size());
      for (size_t D = 1; Ok && D < T->Dims.size(); ++D)
        Ok = In.shape()[D] == T->Dims[D];
      if (!Ok)
        return makeError("input '" + Ph[I]->name() + "': expected " +
                         formatType(*T) + " (any batch size), got " +
                         dtypeName(In.dtype()) + formatShape(In.shape()));
    }
  }
  return llvm::Error::success();
}

llvm::Error Run::bindInputs(llvm::ArrayRef<Tensor> Inputs) {
  if (llvm::Error E = checkGraphInputs(GM.graph(), Inputs))
    return E;
  std::vector<Node *> Ph = GM.graph().placeholders();
  for (size_t I = 0; I < Ph.size(); ++I)
    Values[Ph[I]] = Inputs[I];
  return llvm::Error::success();
}

llvm::Expected<Operand> Run::resolve(const Argument &A) const {
  if (A.isNode()) {
    auto It = Values.find(A.getNode());
    if (It == Values.end())
      return makeError("value of '" + A.getNode()->name() +
                       "' is not available (not a tensor, or used before "
                       "it is defined)");
    return Operand(It->second);
  }
  if (A.isList()) {
    bool HasNode = false;
    A.forEachNode([&](Node *) { HasNode = true; });
    if (!HasNode)
      return Operand(A);
    auto Elems = resolveAll(A.getList());
    if (!Elems)
      return Elems.takeError();
    return Operand::list(std::move(*Elems));
  }
  return Operand(A);
}

llvm::Expected<std::vector<Operand>>
Run::resolveAll(llvm::ArrayRef<Argument> Args) const {
  std::vector<Operand> R;
  for (const Argument &A : Args) {
    auto O = resolve(A);
    if (!O)
      return O.takeError();
    R.push_back(std::move(*O));
  }
  return R;
}

llvm::Expected<std::vector<std::pair<std::string, Operand>>>
Run::resolveKwargs(const Kwargs &KW) const {
  std::vector<std::pair<std::string, Operand>> R;
  for (const auto &KV : KW) {
    auto O = resolve(KV.second);
    if (!O)
      return O.takeError();
    R.emplace_back(KV.first, std::move(*O));
  }
  return R;
}

llvm::Expected<Tensor> Run::evaluate(const Node &N) {
  switch (N.op()) {
  case OpCode::GetAttr:
    if (const Tensor *T = GM.lookupTensor(N.target()))
      if (T->hasData())
        return *T;
    return makeError("tensor '" + N.target() + "' has no data");
  case OpCode::CallModule: {
    auto Args = resolveAll(N.args());
    if (!Args)
      return Args.takeError();
    if (ModuleHook && *ModuleHook)
      if (std::optional<llvm::Expected<Tensor>> R = (*ModuleHook)(N, *Args))
        return std::move(*R);
    return runModule(GM, N.target(), std::move(*Args));
  }
  case OpCode::CallFunction:
  case OpCode::CallMethod: {
    auto Args = resolveAll(N.args());
    if (!Args)
      return Args.takeError();
    auto KW = resolveKwargs(N.kwargs());
    if (!KW)
      return KW.takeError();
    return runOp(N.target(), std::move(*Args), std::move(*KW));
  }
  default:
    llvm_unreachable("placeholders and output are handled by the caller");
  }
}

void Run::releaseDead(const Node &N) {
  // Values whose last user is N are no longer needed.
  size_t Here = Position.lookup(&N);
  for (const Node *In : N.inputs())
    if (LastUse.lookup(In) == Here)
      Values.erase(In);
}

llvm::Expected<std::vector<Tensor>>
Run::execute(llvm::ArrayRef<Tensor> Inputs, const Interpreter::NodeHook &Hook) {
  size_t I = 0;
  for (const Node &N : GM.graph()) {
    Position[&N] = I;
    for (const Node *In : N.inputs())
      LastUse[In] = I;
    ++I;
  }
  if (llvm::Error E = bindInputs(Inputs))
    return E;
  for (const Node &N : GM.graph()) {
    if (N.op() == OpCode::Placeholder)
      continue;
    if (N.op() == OpCode::Output) {
      auto Out = resolve(N.arg(0));
      if (!Out)
        return Out.takeError();
      if (Out->isTensor())
        return std::vector<Tensor>{Out->tensor()};
      std::vector<Tensor> R;
      for (const Operand &E :
           Out->isList() ? Out->elems() : std::vector<Operand>{*Out}) {
        if (!E.isTensor())
          return makeError("output '" + N.name() + "' returns a non-tensor");
        R.push_back(E.tensor());
      }
      return R;
    }
    auto V = evaluate(N);
    if (!V)
      return prefixError(V.takeError(), ("node '" + N.name() + "'").str());
    if (Hook)
      Hook(N, *V);
    Values[&N] = std::move(*V);
    releaseDead(N);
  }
  return makeError("graph has no output node");
}

Interpreter::Interpreter(const GraphModule &GM) : GM(GM) {}

llvm::Expected<std::vector<Tensor>>
Interpreter::run(llvm::ArrayRef<Tensor> Inputs) {
  Run R(GM);
  R.setCallModuleHook(&CallModule);
  return R.execute(Inputs, AfterNode);
}

llvm::Expected<Tensor> qfx::interpret(const GraphModule &GM,
                                      llvm::ArrayRef<Tensor> Inputs) {
  auto Outs = Interpreter(GM).run(Inputs);
  if (!Outs)
    return Outs.takeError();
  if (Outs->size() != 1)
    return makeError("expected one output, got " + llvm::Twine(Outs->size()));
  return std::move((*Outs)[0]);
}
