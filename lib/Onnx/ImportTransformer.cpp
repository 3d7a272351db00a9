//===- ImportTransformer.cpp - ONNX import of the transformer ops ---------===//
//
// LayerNormalization (opset 17) -> LayerNorm module (layer_norm when its
// weight or bias is not an initializer), MatMul of two activations ->
// matmul, Transpose -> permute, Gather of one constant index from an
// activation -> select, Expand -> expand; the rows are in ImportTable.cpp.
//
//===----------------------------------------------------------------------===//

#include "NodeReader.h"

#include "qfx/IR/GraphModule.h"
#include "qfx/Support/Error.h"

using namespace qfx;
using namespace qfx::onnximport;

static int64_t rankOfNode(const Node *N) {
  return static_cast<int64_t>(N->type()->Dims.size());
}

llvm::Error qfx::onnximport::importLayerNormalization(NodeReader &R) {
  if (llvm::Error E = R.requireSingleOutput())
    return E;
  auto X = R.node(0);
  auto Axis = R.attrInt("axis", -1);
  auto Eps = R.attrFloat("epsilon", 1e-5);
  if (llvm::Error E = firstError(X, Axis, Eps))
    return E;
  int64_t Rank = rankOfNode(*X);
  int64_t A = *Axis < 0 ? *Axis + Rank : *Axis;
  if (A < 0 || A >= Rank)
    return R.error("axis " + llvm::Twine(*Axis) + " is out of range");
  const Shape &D = (*X)->type()->Dims;
  std::vector<int64_t> Norm(D.begin() + A, D.end());
  // Weight and bias initializers of the normalized shape: nn.LayerNorm, a
  // module as the tracer records it (and as x86 quantizes it).
  if (R.hasInput(1) && R.hasInput(2)) {
    auto W = R.input(1), B = R.input(2);
    if (llvm::Error E = firstError(W, B))
      return E;
    auto Param = [&](const OnnxValue *V) {
      return V->isConst() && V->Const->dtype() == DType::F32 &&
             V->Dep.empty() && V->Const->shape() == llvm::ArrayRef(Norm);
    };
    if (Param(*W) && Param(*B)) {
      auto N = emitLayerNormModule(R, *X, Norm, *Eps, *(*W)->Const,
                                   *(*B)->Const, (*W)->InitName);
      if (!N)
        return N.takeError();
      R.defineNode(0, *N);
      return llvm::Error::success();
    }
  }
  std::vector<Argument> Args = {Argument(*X), Argument::ints(Norm)};
  for (size_t I : {size_t(1), size_t(2)}) {
    if (!R.hasInput(I)) {
      Args.push_back(Argument::none());
      continue;
    }
    auto T = R.node(I);
    if (!T)
      return T.takeError();
    Args.push_back(Argument(*T));
  }
  Args.push_back(Argument::real(*Eps));
  auto N = R.emit(OpCode::CallFunction, "layer_norm", std::move(Args));
  if (!N)
    return N.takeError();
  R.defineNode(0, *N);
  return llvm::Error::success();
}

llvm::Error qfx::onnximport::importMatMulOfActivations(NodeReader &R) {
  auto A = R.node(0);
  auto B = R.node(1);
  if (llvm::Error E = firstError(A, B))
    return E;
  auto N = R.emit(OpCode::CallFunction, "matmul", {Argument(*A), Argument(*B)});
  if (!N)
    return N.takeError();
  R.defineNode(0, *N);
  return llvm::Error::success();
}

llvm::Error qfx::onnximport::importTranspose(NodeReader &R) {
  auto X = R.node(0);
  if (!X)
    return X.takeError();
  int64_t Rank = rankOfNode(*X);
  std::vector<int64_t> Reverse;
  for (int64_t I = Rank; I-- > 0;)
    Reverse.push_back(I);
  auto Perm = R.attrInts("perm", Reverse);
  if (!Perm)
    return Perm.takeError();
  if (Rank == 0)
    return R.error("transposing a 0-d input is not supported");
  if (static_cast<int64_t>(Perm->size()) != Rank)
    return R.error("perm has " + llvm::Twine(Perm->size()) +
                   " entries for a rank-" + llvm::Twine(Rank) + " input");
  if ((*Perm)[0] != 0)
    return R.error("a permutation that moves the batch dimension is not "
                   "supported");
  auto N = R.emit(OpCode::CallMethod, "permute",
                  {Argument(*X), Argument::ints(*Perm)});
  if (!N)
    return N.takeError();
  R.defineNode(0, *N);
  return llvm::Error::success();
}

llvm::Error qfx::onnximport::importGatherSelect(NodeReader &R) {
  auto X = R.node(0);
  auto Indices = R.constant(1, "indices");
  auto Axis = R.attrInt("axis", 0);
  if (llvm::Error E = firstError(X, Indices, Axis))
    return E;
  if ((*Indices)->Const->rank() != 0)
    return R.error("only a scalar index of an activation is supported "
                   "(x[:, i])");
  int64_t Rank = rankOfNode(*X);
  int64_t A = *Axis < 0 ? *Axis + Rank : *Axis;
  if (A <= 0 || A >= Rank)
    return R.error("only axes after the batch dimension are supported, got " +
                   llvm::Twine(*Axis));
  auto N = R.emit(OpCode::CallMethod, "select",
                  {Argument(*X), Argument::integer(A),
                   Argument::integer(tensorInts(*(*Indices)->Const)[0])});
  if (!N)
    return N.takeError();
  R.defineNode(0, *N);
  return llvm::Error::success();
}

/// The graph value whose dimension 0 is the batch \p Sizes was computed
/// from: the one Shape read, else the first batched graph input.
static Node *batchSource(NodeReader &R, const OnnxValue &Sizes) {
  if (Sizes.BatchOf)
    return Sizes.BatchOf;
  for (const auto &[Name, V] : R.state().Values)
    if (V.N && V.N->op() == OpCode::Placeholder && V.BatchDim0)
      return V.N;
  return nullptr;
}

llvm::Error qfx::onnximport::importExpand(NodeReader &R) {
  if (llvm::Error E = R.requireSingleOutput())
    return E;
  auto XV = R.input(0);
  auto ShapeV = R.constant(1, "shape");
  auto Target = R.constInts(1, "shape");
  if (llvm::Error E = firstError(XV, ShapeV, Target))
    return E;
  auto X = R.node(0);
  if (!X)
    return X.takeError();
  const Shape &In = (*X)->type()->Dims;
  int64_t Rank = std::max<int64_t>(In.size(), Target->size());
  int64_t InOff = Rank - In.size(), TOff = Rank - Target->size();
  bool InBatch = (*XV)->BatchDim0, Batch = InBatch;
  // ONNX broadcasts (1 keeps a dim); torch's expand writes -1 for a kept
  // dim and the size for a new or stretched one.
  std::vector<int64_t> Sizes(Rank);
  Shape Out(Rank);
  for (int64_t I = 0; I < Rank; ++I) {
    int64_t A = I >= InOff ? In[I - InOff] : 1;
    int64_t B = I >= TOff ? (*Target)[I - TOff] : 1;
    BatchDep Dep = I >= TOff ? (*ShapeV)->dep(I - TOff) : BatchDep::None;
    if (B < 0)
      return R.error("shape " + formatShape(*Target) + " has a negative size");
    if (Dep == BatchDep::Derived || (Dep == BatchDep::Batch && I != 0))
      return R.error("shape element " + llvm::Twine(I - TOff) +
                     " is computed from the batch size; only dimension 0 "
                     "may be the batch");
    if (A != B && A != 1 && B != 1)
      return R.error("shape " + formatShape(*Target) +
                     " does not broadcast with the input " + formatShape(In));
    Out[I] = A == 1 ? B : A;
    Sizes[I] = I >= InOff && Out[I] == A ? -1 : Out[I];
    if (Dep == BatchDep::Batch) {
      Batch = true;
      Sizes[I] = Out[I];
    }
  }
  if (InBatch && (InOff != 0 || Out[0] != In[0]))
    return R.error("expanding the batch dimension of a batched input to " +
                   formatShape(Out) + " is not supported");
  if (auto N = checkedNumElements(Out, int64_t(1) << 32); !N)
    return R.error("the output " + formatShape(Out) + ": " +
                   errorToString(N.takeError()));
  auto N = R.emit(OpCode::CallMethod, "expand",
                  {Argument(*X), Argument::ints(Sizes)});
  if (!N)
    return N.takeError();
  if (Batch && !InBatch) {
    // class_token.expand(N, -1, -1): the tracer's batch_like keeps N
    // symbolic.
    Node *Like = batchSource(R, **ShapeV);
    if (!Like)
      return R.error("the batch size comes from no graph input");
    (*N)->setKwarg("batch_like", Argument(Like));
  }
  OnnxValue V;
  V.N = *N;
  V.BatchDim0 = Batch;
  R.define(0, std::move(V));
  return llvm::Error::success();
}
