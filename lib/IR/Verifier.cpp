//===- Verifier.cpp - Structural checks of a GraphModule ------------------===//

#include "qfx/IR/Verifier.h"

#include "qfx/IR/GraphModule.h"
#include "qfx/Support/Error.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringSet.h"

#include <string>

using namespace qfx;

/// Constant-initialized, so installing it from another file's static
/// initializer is safe whatever the initialization order.
static OpTargetCheck TargetCheck = nullptr;

void qfx::setOpTargetCheck(OpTargetCheck Check) { TargetCheck = Check; }

namespace {

/// Collects problems; one instance per verify call.
class Verifier {
public:
  explicit Verifier(const GraphModule &GM) : GM(GM) {}

  std::vector<std::string> run();

private:
  void error(const Node &N, const llvm::Twine &Msg) {
    Errors.push_back(("node '" + N.name() + "': " + Msg).str());
  }
  void graphError(const llvm::Twine &Msg) {
    Errors.push_back(("graph: " + Msg).str());
  }

  void checkName(const Node &N);
  void checkModuleTensors(const ModuleInfo &M, const std::string &Prefix);
  void checkOutputCount();
  void checkOperands(const Node &N);
  void checkUses(const Node &N);
  void checkOpcode(const Node &N);
  void checkType(const Node &N);

  const GraphModule &GM;
  /// Position of each node in the graph, to check def-before-use.
  llvm::DenseMap<const Node *, size_t> Position;
  llvm::StringSet<> SeenNames;
  std::vector<std::string> Errors;
};

} // namespace

std::vector<std::string> Verifier::run() {
  size_t I = 0;
  for (const Node &N : GM.graph())
    Position[&N] = I++;
  // Problems of the graph as a whole and of module tensors first, then each
  // node's problems in graph order.
  checkOutputCount();
  checkModuleTensors(GM.root(), "");
  for (const Node &N : GM.graph()) {
    checkName(N);
    checkOperands(N);
    checkUses(N);
    checkOpcode(N);
    checkType(N);
  }
  return std::move(Errors);
}

void Verifier::checkName(const Node &N) {
  if (!Graph::isValidName(N.name()))
    error(N, "name is not a valid identifier");
  if (!SeenNames.insert(N.name()).second)
    error(N, "name is used by more than one node");
  if (GM.graph().lookup(N.name()) != &N)
    error(N, "name table does not point at this node");
}

void Verifier::checkModuleTensors(const ModuleInfo &M,
                                  const std::string &Prefix) {
  for (const NamedTensor &T : M.tensors()) {
    const QuantParams &Q = T.Value.quant();
    if (Q.isNone())
      continue;
    if (T.Value.dtype() == DType::F32)
      Errors.push_back("tensor '" + Prefix + T.Name +
                       "': quantization parameters on a " +
                       dtypeName(T.Value.dtype()).str() + " tensor");
    std::string Problem = Q.validate(T.Value.shape());
    if (!Problem.empty())
      Errors.push_back("tensor '" + Prefix + T.Name +
                       "': invalid quantization parameters: " + Problem);
  }
  for (const auto &C : M.children())
    checkModuleTensors(*C.second, Prefix + C.first + ".");
}

void Verifier::checkOutputCount() {
  size_t Outputs = 0;
  for (const Node &N : GM.graph())
    Outputs += N.op() == OpCode::Output;
  if (Outputs == 0)
    graphError("no output node");
  else if (Outputs > 1)
    graphError("has " + llvm::Twine(Outputs) + " output nodes, expected one");
}

void Verifier::checkOperands(const Node &N) {
  size_t Here = Position.lookup(&N);
  for (const Node *In : N.inputs()) {
    auto It = Position.find(In);
    if (It == Position.end()) {
      error(N, "uses '" + In->name() + "', which is not in this graph");
      continue;
    }
    if (In == &N)
      error(N, "uses itself");
    else if (It->second > Here)
      error(N, "uses '" + In->name() + "' before it is defined");
    if (In->op() == OpCode::Output)
      error(N, "uses the output node '" + In->name() + "'");
  }
}

void Verifier::checkUses(const Node &N) {
  // Use lists are maintained by the Graph API; a mismatch is a bug in the
  // code that edited the graph, reported here so tests catch it.
  for (const Node *In : N.inputs())
    if (Position.count(In) && !llvm::is_contained(In->users(), &N))
      error(N, "missing from the users of its input '" + In->name() + "'");
  for (const Node *U : N.users()) {
    if (!Position.count(U)) {
      error(N, "has a user outside this graph");
      continue;
    }
    if (!llvm::is_contained(U->inputs(), &N))
      error(N, "lists '" + U->name() + "' as a user but is not its input");
  }
}

void Verifier::checkOpcode(const Node &N) {
  switch (N.op()) {
  case OpCode::Placeholder:
    if (N.numArgs() > 1 || !N.kwargs().empty())
      error(N, "placeholder takes at most one argument (its default)");
    if (N.target().empty())
      error(N, "placeholder has an empty target");
    break;
  case OpCode::GetAttr:
    if (N.numArgs() || !N.kwargs().empty())
      error(N, "get_attr takes no arguments");
    if (!GM.lookupTensor(N.target()))
      error(N, "get_attr target '" + N.target() + "' is not a tensor");
    break;
  case OpCode::CallModule:
    if (N.target().empty() || !GM.lookupModule(N.target()))
      error(N, "call_module target '" + N.target() + "' is not a module");
    break;
  case OpCode::CallFunction:
  case OpCode::CallMethod:
    if (N.target().empty())
      error(N, opcodeName(N.op()) + " has an empty target");
    else if (TargetCheck && !TargetCheck(N.target()))
      error(N, opcodeName(N.op()) + " target '" + N.target() +
                   "' is not a known op");
    if (N.op() == OpCode::CallMethod && N.numArgs() == 0)
      error(N, "call_method needs the object as its first argument");
    break;
  case OpCode::Output:
    if (N.numArgs() != 1 || !N.kwargs().empty())
      error(N, "output takes exactly one argument");
    if (N.hasUsers())
      error(N, "output node has users");
    if (&N == GM.graph().outputNode() && &N != &*std::prev(GM.graph().end()))
      error(N, "output must be the last node");
    break;
  }
}

static bool isIntegerDType(DType T) { return T != DType::F32; }

void Verifier::checkType(const Node &N) {
  if (!N.type())
    return;
  const TensorType &T = *N.type();
  for (int64_t D : T.Dims)
    if (D < 0) {
      error(N, "type has a negative extent in " + formatShape(T.Dims));
      break;
    }
  if (!T.Quant.isNone()) {
    if (!isIntegerDType(T.Dtype))
      error(N, "quantization parameters on a " + dtypeName(T.Dtype) + " type");
    std::string Problem = T.Quant.validate(T.Dims);
    if (!Problem.empty())
      error(N, "invalid quantization parameters: " + Problem);
  }
  if (N.op() != OpCode::GetAttr)
    return;
  const Tensor *Attr = GM.lookupTensor(N.target());
  if (!Attr)
    return;
  if (Attr->dtype() != T.Dtype ||
      !llvm::equal(Attr->shape(), llvm::ArrayRef<int64_t>(T.Dims)))
    error(N, "type " + dtypeName(T.Dtype) + formatShape(T.Dims) +
                 " does not match tensor '" + N.target() + "' of type " +
                 dtypeName(Attr->dtype()) + formatShape(Attr->shape()));
  else if (Attr->quant() != T.Quant)
    error(N, "quantization parameters differ from those of tensor '" +
                 N.target() + "'");
}

std::vector<std::string> qfx::collectVerifierErrors(const GraphModule &GM) {
  return Verifier(GM).run();
}

llvm::Error qfx::verify(const GraphModule &GM) {
  std::vector<std::string> Errors = collectVerifierErrors(GM);
  if (Errors.empty())
    return llvm::Error::success();
  std::string Msg = "graph verification failed:";
  for (const std::string &E : Errors)
    Msg += "\n  " + E;
  return makeError(Msg);
}
