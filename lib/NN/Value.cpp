//===- Value.cpp - Tensor handles and op dispatch -------------------------===//

#include "qfx/NN/Value.h"

#include "qfx/NN/Tracer.h"
#include "qfx/Runtime/Op.h"
#include "qfx/Support/Error.h"

using namespace qfx;
using namespace qfx::nn;

Value::Value(Tensor Tn) : Defined(true), Data(std::move(Tn)) {}

Value::Value(Tracer *Tr, Node *Nd, TensorType Type)
    : Defined(true), T(Tr), N(Nd), Ty(std::move(Type)) {}

/// The message for using a symbolic value where data is needed.
static std::string controlFlowMessage(const Value &V, llvm::StringRef Op) {
  std::string Scope = V.tracer()->scope().str();
  return "symbolically traced variables cannot be used as inputs to control "
         "flow: '" +
         Op.str() + "' on '%" + V.node()->name().str() + "' in module '" +
         Scope + "'" + (Scope.empty() ? " (the root)" : "");
}

const Tensor &Value::tensor() const {
  if (isSymbolic())
    throw TraceError(controlFlowMessage(*this, "tensor data"));
  if (!Defined)
    throw Error("use of an undefined value");
  return Data;
}

DType Value::dtype() const {
  return isSymbolic() ? Ty.Dtype : tensor().dtype();
}

llvm::ArrayRef<int64_t> Value::shape() const {
  return isSymbolic() ? llvm::ArrayRef<int64_t>(Ty.Dims) : tensor().shape();
}

int64_t Value::size(int64_t D) const {
  int64_t R = dim();
  int64_t Idx = D < 0 ? D + R : D;
  if (Idx < 0 || Idx >= R)
    throw Error("size: dimension " + std::to_string(D) +
                " out of range for a tensor of rank " + std::to_string(R));
  return shape()[Idx];
}

int64_t Value::numel() const { return numElements(shape()); }

Value Value::reshape(llvm::ArrayRef<int64_t> S) const {
  return dispatch("reshape", {*this, S.vec()}, {}, /*AsMethod=*/true);
}

Value Value::view(llvm::ArrayRef<int64_t> S) const {
  return dispatch("view", {*this, S.vec()}, {}, true);
}

Value Value::flatten(int64_t StartDim, int64_t EndDim) const {
  return dispatch("flatten", {*this, StartDim, EndDim}, {}, true);
}

Value Value::permute(llvm::ArrayRef<int64_t> Dims) const {
  return dispatch("permute", {*this, Dims.vec()}, {}, true);
}

Value Value::transpose(int64_t Dim0, int64_t Dim1) const {
  return dispatch("transpose", {*this, Dim0, Dim1}, {}, true);
}

Value Value::expand(llvm::ArrayRef<int64_t> Sizes) const {
  return dispatch("expand", {*this, Sizes.vec()}, {}, true);
}

Value Value::expand(llvm::ArrayRef<int64_t> Sizes,
                    const Value &BatchLike) const {
  return dispatch("expand", {*this, Sizes.vec()}, {{"batch_like", BatchLike}},
                  true);
}

Value Value::select(int64_t Dim, int64_t Index) const {
  return dispatch("select", {*this, Dim, Index}, {}, true);
}

Value Value::contiguous() const {
  return dispatch("contiguous", {*this}, {}, true);
}

Value Value::mean(llvm::ArrayRef<int64_t> Dims, bool KeepDim) const {
  return dispatch("mean", {*this, Dims.vec(), KeepDim}, {}, true);
}

Value Value::relu() const { return dispatch("relu", {*this}, {}, true); }
Value Value::sigmoid() const { return dispatch("sigmoid", {*this}, {}, true); }
Value Value::tanh() const { return dispatch("tanh", {*this}, {}, true); }

Value::operator bool() const {
  if (isSymbolic())
    throw TraceError(controlFlowMessage(*this, "bool"));
  const Tensor &D = tensor();
  if (D.numElements() != 1)
    throw Error("boolean value of a tensor with " +
                std::to_string(D.numElements()) + " elements is ambiguous");
  return D.getAsDouble(0) != 0.0;
}

double Value::item() const {
  if (isSymbolic())
    throw TraceError(controlFlowMessage(*this, "item"));
  const Tensor &D = tensor();
  if (D.numElements() != 1)
    throw Error("item: tensor has " + std::to_string(D.numElements()) +
                " elements, expected one");
  return D.getAsDouble(0);
}

Value nn::operator+(const Value &A, const Value &B) {
  return dispatch("add", {A, B});
}
Value nn::operator+(const Value &A, double S) {
  return dispatch("add", {A, S});
}
Value nn::operator+(double S, const Value &A) {
  return dispatch("add", {A, S});
}
Value nn::operator*(const Value &A, const Value &B) {
  return dispatch("mul", {A, B});
}
Value nn::operator*(const Value &A, double S) {
  return dispatch("mul", {A, S});
}
Value nn::operator*(double S, const Value &A) {
  return dispatch("mul", {A, S});
}

//===----------------------------------------------------------------------===//
// Dispatch
//===----------------------------------------------------------------------===//

/// The tracer of the first symbolic value among the arguments, if any.
static Tracer *findTracer(const std::vector<OpArg> &Args,
                          const OpKwargs &Kwargs) {
  auto Of = [](const OpArg &A) -> Tracer * {
    if (A.K == OpArg::Kind::Val && A.V.isSymbolic())
      return A.V.tracer();
    if (A.K == OpArg::Kind::List)
      for (const Value &V : A.L)
        if (V.isSymbolic())
          return V.tracer();
    return nullptr;
  };
  for (const OpArg &A : Args)
    if (Tracer *T = Of(A))
      return T;
  for (const auto &KV : Kwargs)
    if (Tracer *T = Of(KV.second))
      return T;
  return nullptr;
}

static Operand eagerOperand(const OpArg &A) {
  switch (A.K) {
  case OpArg::Kind::Val:
    return A.V.defined() ? Operand(A.V.tensor()) : Operand(Argument::none());
  case OpArg::Kind::Arg:
    return Operand(A.A);
  case OpArg::Kind::List: {
    std::vector<Operand> Elems;
    for (const Value &V : A.L)
      Elems.push_back(Operand(V.tensor()));
    return Operand::list(std::move(Elems));
  }
  }
  llvm_unreachable("unknown OpArg kind");
}

Value nn::dispatch(llvm::StringRef Op, std::vector<OpArg> Args, OpKwargs Kwargs,
                   bool AsMethod) {
  if (Tracer *T = findTracer(Args, Kwargs))
    return T->recordOp(Op, Args, Kwargs, AsMethod);
  std::vector<Operand> Pos;
  for (const OpArg &A : Args)
    Pos.push_back(eagerOperand(A));
  std::vector<std::pair<std::string, Operand>> KW;
  for (const auto &KV : Kwargs)
    KW.emplace_back(KV.first, eagerOperand(KV.second));
  llvm::Expected<Tensor> R = runOp(Op, std::move(Pos), std::move(KW));
  if (!R)
    throw Error(errorToString(R.takeError()));
  return Value(std::move(*R));
}
