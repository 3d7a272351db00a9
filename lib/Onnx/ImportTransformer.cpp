//===- ImportTransformer.cpp - ONNX import of the transformer ops ---------===//
//
// LayerNormalization (opset 17) -> layer_norm, MatMul of two activations ->
// matmul, Transpose -> permute, Gather of one constant index from an
// activation -> select; the rows are in ImportTable.cpp.
//
//===----------------------------------------------------------------------===//

#include "NodeReader.h"

#include "qfx/IR/GraphModule.h"

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
