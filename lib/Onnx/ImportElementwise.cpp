//===- ImportElementwise.cpp - Activations, Add, Mul, Softmax, Identity ---===//
//
// Element-wise ops become call_function of the op table as the tracer
// records them (F.relu, operator +, F.hardtanh ...). Add and Mul of two
// constants fold (shape arithmetic); Identity and inference-mode Dropout
// make no node.
//
//===----------------------------------------------------------------------===//

#include "NodeReader.h"

#include "qfx/Support/Error.h"

#include <cfloat>
#include <cmath>
#include <cstdio>

using namespace qfx;
using namespace qfx::onnximport;

/// A number for messages ("0.2", "6").
static std::string num(double V) {
  char Buf[32];
  std::snprintf(Buf, sizeof(Buf), "%g", V);
  return Buf;
}

/// Applies call_function \p Op to input \p Input and \p Extra arguments.
static llvm::Error unary(NodeReader &R, llvm::StringRef Op,
                         std::vector<Argument> Extra = {}, size_t Input = 0) {
  if (llvm::Error E = R.requireSingleOutput())
    return E;
  auto X = R.node(Input);
  if (!X)
    return X.takeError();
  std::vector<Argument> Args = {Argument(*X)};
  Args.insert(Args.end(), Extra.begin(), Extra.end());
  auto N = R.emit(OpCode::CallFunction, Op, std::move(Args));
  if (!N)
    return N.takeError();
  R.defineNode(0, *N);
  return llvm::Error::success();
}

llvm::Error qfx::onnximport::importRelu(NodeReader &R) {
  return unary(R, "relu");
}

llvm::Error qfx::onnximport::importSigmoid(NodeReader &R) {
  return unary(R, "sigmoid");
}

llvm::Error qfx::onnximport::importHardSwish(NodeReader &R) {
  return unary(R, "hardswish");
}

llvm::Error qfx::onnximport::importHardSigmoid(NodeReader &R) {
  auto Alpha = R.attrFloat("alpha", 0.2);
  auto Beta = R.attrFloat("beta", 0.5);
  if (!Alpha)
    return Alpha.takeError();
  if (!Beta)
    return Beta.takeError();
  if (std::fabs(*Alpha - 1.0 / 6) > 1e-6 || std::fabs(*Beta - 0.5) > 1e-6)
    return R.error("alpha " + num(*Alpha) + " and beta " + num(*Beta) +
                   " are not PyTorch's hardsigmoid (1/6 and 0.5)");
  return unary(R, "hardsigmoid");
}

/// relu6 for [0, 6], relu for [0, inf), else hardtanh.
static llvm::Error clip(NodeReader &R, std::optional<double> Min,
                        std::optional<double> Max) {
  if (Min && *Min == 0.0 && Max && *Max == 6.0)
    return unary(R, "relu6");
  if (Min && *Min == 0.0 && !Max)
    return unary(R, "relu");
  double Lo = Min ? *Min : -FLT_MAX, Hi = Max ? *Max : FLT_MAX;
  if (!(Lo < Hi))
    return R.error("min " + num(Lo) + " is not below max " + num(Hi));
  return unary(R, "hardtanh", {Argument::real(Lo), Argument::real(Hi)});
}

llvm::Error qfx::onnximport::importClip(NodeReader &R) {
  std::optional<double> Bounds[2];
  for (size_t I = 1; I <= 2; ++I) {
    if (!R.hasInput(I))
      continue;
    auto V = R.constScalar(I, I == 1 ? "min" : "max");
    if (!V)
      return V.takeError();
    Bounds[I - 1] = *V;
  }
  return clip(R, Bounds[0], Bounds[1]);
}

/// Folds a binary op of two constants (same shape, or one a scalar).
static llvm::Error foldBinary(NodeReader &R, const OnnxValue &A,
                              const OnnxValue &B, bool IsAdd) {
  const Tensor &TA = *A.Const, &TB = *B.Const;
  if (TA.dtype() != TB.dtype())
    return R.error("operands have different types " + dtypeName(TA.dtype()) +
                   " and " + dtypeName(TB.dtype()));
  if (TA.dtype() != DType::S64 && TA.dtype() != DType::F32)
    return R.error("folding " + dtypeName(TA.dtype()) +
                   " constants is not supported (int64 and float are)");
  bool AScalar = TA.numElements() == 1, BScalar = TB.numElements() == 1;
  if (TA.shape() != TB.shape() && !AScalar && !BScalar)
    return R.error("folding constants of shapes " + formatShape(TA.shape()) +
                   " and " + formatShape(TB.shape()) + " is not supported");
  const Tensor &Big = BScalar ? TA : TB;
  OnnxValue Out;
  Out.Const = Tensor(Big.dtype(), Big.shape());
  for (int64_t I = 0; I < Big.numElements(); ++I) {
    int64_t IA = AScalar ? 0 : I, IB = BScalar ? 0 : I;
    if (TA.dtype() == DType::S64) {
      int64_t X = TA.data<int64_t>()[IA], Y = TB.data<int64_t>()[IB], Z;
      bool Overflow = IsAdd ? __builtin_add_overflow(X, Y, &Z)
                            : __builtin_mul_overflow(X, Y, &Z);
      if (Overflow)
        return R.error("int64 overflow folding constants");
      Out.Const->data<int64_t>()[I] = Z;
    } else {
      double X = TA.getAsDouble(IA), Y = TB.getAsDouble(IB);
      Out.Const->setFromDouble(I, IsAdd ? X + Y : X * Y);
    }
    if (A.dep(IA) != BatchDep::None || B.dep(IB) != BatchDep::None) {
      Out.Dep.resize(Big.numElements(), BatchDep::None);
      Out.Dep[I] = BatchDep::Derived;
    }
  }
  R.define(0, std::move(Out));
  return llvm::Error::success();
}

/// add / mul: a scalar constant stays a number, as in `x + 1`.
static llvm::Error binary(NodeReader &R, llvm::StringRef Op) {
  auto A = R.input(0);
  auto B = R.input(1);
  if (!A)
    return A.takeError();
  if (!B)
    return B.takeError();
  if ((*A)->isConst() && (*B)->isConst())
    return foldBinary(R, **A, **B, Op == "add");
  std::vector<Argument> Args;
  for (size_t I = 0; I < 2; ++I) {
    const OnnxValue *V = I ? *B : *A;
    if (V->isConst() && V->Const->numElements() == 1 &&
        V->Const->dtype() == DType::F32 && V->Const->rank() == 0) {
      Args.push_back(Argument::real(V->Const->getAsDouble(0)));
      continue;
    }
    auto N = R.node(I);
    if (!N)
      return N.takeError();
    Args.push_back(Argument(*N));
  }
  if (!Args[0].isNode())
    std::swap(Args[0], Args[1]); // Both ops commute; the tensor goes first.
  auto N = R.emit(OpCode::CallFunction, Op, std::move(Args));
  if (!N)
    return N.takeError();
  R.defineNode(0, *N);
  return llvm::Error::success();
}

/// MatMul then Add of a [out] constant, how nn.Linear exports for inputs
/// of rank 3 and more: the constant becomes the Linear's bias. Returns
/// whether it did.
static bool foldLinearBias(NodeReader &R, const OnnxValue &A,
                           const OnnxValue &B, llvm::StringRef AName) {
  if (!A.N || A.N->op() != OpCode::CallModule || A.N->hasUsers() ||
      R.state().Uses[AName.str()] != 1 || !B.isConst() ||
      B.Const->dtype() != DType::F32 || B.Const->rank() != 1 || !B.Dep.empty())
    return false;
  ModuleInfo *M = R.gm().lookupModule(A.N->target());
  if (!M || M->kind() != "Linear" || M->tensor("bias") ||
      !M->attr("out_features") ||
      M->attr("out_features")->getInt() != B.Const->dim(0))
    return false;
  M->setTensor("bias", *B.Const);
  R.defineNode(0, A.N);
  return true;
}

/// The QDQ form of the same: linear(x, dq(W)) (qdqLinear) then Add of a
/// dequantized [out] initializer (ORT's int32 bias grid): the dequantize
/// becomes linear's bias, which fold-qdq reads. Returns whether it did.
static bool foldQdqLinearBias(NodeReader &R, const OnnxValue &A,
                              const OnnxValue &B, llvm::StringRef AName) {
  Node *L = A.N, *Dq = B.N;
  if (!L || !Dq || L->op() != OpCode::CallFunction || L->target() != "linear" ||
      L->numArgs() != 2 || L->hasUsers() || R.state().Uses[AName.str()] != 1 ||
      Dq->op() != OpCode::CallMethod || Dq->target() != "dequantize" ||
      !Dq->arg(0).isNode() || Dq->arg(0).getNode()->op() != OpCode::GetAttr)
    return false;
  const auto &LT = L->type(), &BT = Dq->type();
  if (!LT || !BT || BT->Dims.size() != 1 || LT->Dims.empty() ||
      BT->Dims[0] != LT->Dims.back())
    return false;
  std::vector<Argument> Args = {L->arg(0), L->arg(1), Argument(Dq)};
  L->setArgs(std::move(Args));
  R.defineNode(0, L);
  return true;
}

llvm::Error qfx::onnximport::importAdd(NodeReader &R) {
  // GELU's 1 + Erf(x / sqrt(2)) has a partial input (ImportPatterns.cpp).
  if (R.partial(0) || R.partial(1)) {
    auto P = addInPattern(R);
    if (!P || *P)
      return P ? llvm::Error::success() : P.takeError();
  }
  auto A = R.input(0);
  auto B = R.input(1);
  if (llvm::Error E = firstError(A, B))
    return E;
  if (auto P = addInPattern(R); !P || *P)
    return P ? llvm::Error::success() : P.takeError();
  if (foldLinearBias(R, **A, **B, R.proto().input(0)) ||
      foldLinearBias(R, **B, **A, R.proto().input(1)) ||
      foldQdqLinearBias(R, **A, **B, R.proto().input(0)) ||
      foldQdqLinearBias(R, **B, **A, R.proto().input(1)))
    return llvm::Error::success();
  return binary(R, "add");
}

/// x * hardsigmoid(x), how opsets before 14 export nn.Hardswish, and
/// x * sigmoid(x), how every opset up to 17 exports nn.SiLU / F.silu: the
/// gate node, if nothing else reads it, or nullptr.
static Node *selfGate(NodeReader &R, const OnnxValue &A, const OnnxValue &B,
                      llvm::StringRef BName, llvm::StringRef Gate) {
  if (!A.N || !B.N || B.N->op() != OpCode::CallFunction ||
      B.N->target() != Gate || B.N->numArgs() != 1 || !B.N->arg(0).isNode() ||
      B.N->arg(0).getNode() != A.N || B.N->hasUsers() ||
      R.state().Uses[BName.str()] != 1)
    return nullptr;
  return B.N;
}

llvm::Error qfx::onnximport::importMul(NodeReader &R) {
  // GELU and LayerNorm weights (ImportPatterns.cpp).
  if (auto P = mulInPattern(R); !P || *P)
    return P ? llvm::Error::success() : P.takeError();
  auto A = R.input(0);
  auto B = R.input(1);
  if (llvm::Error E = firstError(A, B))
    return E;
  for (int I = 0; I < 2; ++I) {
    const OnnxValue &X = I ? **B : **A, &Y = I ? **A : **B;
    // One hardswish or silu, as the tracer records nn.Hardswish / nn.SiLU.
    for (const char *Fold : {"hardswish", "silu"}) {
      llvm::StringRef Gate = Fold[0] == 'h' ? "hardsigmoid" : "sigmoid";
      if (Node *Sig = selfGate(R, X, Y, R.proto().input(1 - I), Gate)) {
        R.gm().graph().erase(Sig);
        return unary(R, Fold, {}, I);
      }
    }
  }
  return binary(R, "mul");
}

llvm::Error qfx::onnximport::importTanh(NodeReader &R) {
  return unary(R, "tanh");
}

llvm::Error qfx::onnximport::importSoftmax(NodeReader &R) {
  auto Axis = R.attrInt("axis", -1);
  if (!Axis)
    return Axis.takeError();
  return unary(R, "softmax", {Argument::integer(*Axis)});
}

llvm::Error qfx::onnximport::importSoftmaxFlat(NodeReader &R) {
  auto Axis = R.attrInt("axis", 1);
  auto X = R.node(0);
  if (!Axis)
    return Axis.takeError();
  if (!X)
    return X.takeError();
  int64_t Rank = static_cast<int64_t>((*X)->type()->Dims.size());
  int64_t A = *Axis < 0 ? *Axis + Rank : *Axis;
  // Over dims [axis, rank) is over the last dim exactly when axis is last.
  if (A != Rank - 1)
    return R.error("softmax over dims " + llvm::Twine(A) + ".." +
                   llvm::Twine(Rank - 1) +
                   " together is not supported; export with opset 13");
  return unary(R, "softmax", {Argument::integer(*Axis)});
}

llvm::Error qfx::onnximport::importPassThrough(NodeReader &R) {
  auto X = R.input(0);
  if (!X)
    return X.takeError();
  R.define(0, **X);
  return llvm::Error::success();
}

llvm::Error qfx::onnximport::importDropout(NodeReader &R) {
  if (llvm::Error E = R.requireSingleOutput())
    return E;
  if (R.hasInput(2)) {
    auto Training = R.constScalar(2, "training_mode");
    if (!Training)
      return Training.takeError();
    if (*Training != 0.0)
      return R.error("training_mode = true is not supported");
  }
  return importPassThrough(R);
}
