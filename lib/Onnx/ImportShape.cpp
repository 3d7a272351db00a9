//===- ImportShape.cpp - Pooling, reshaping and folded shape computations -===//
//
// Pooling, Flatten, Reshape and Concat become op-table calls. Shape
// computations (Shape, Gather, Unsqueeze, Squeeze, Slice, Concat, Cast,
// Constant, ConstantOfShape) fold at import. Folded elements remember
// whether they are the symbolic batch size, so a Reshape target built from
// Shape(x)[0] writes -1 there and the graph runs at any batch size.
//
//===----------------------------------------------------------------------===//

#include "NodeReader.h"

#include "qfx/Runtime/Op.h"
#include "qfx/Support/Error.h"

#include <cmath>
#include <cstring>

using namespace qfx;
using namespace qfx::onnximport;

//===----------------------------------------------------------------------===//
// Pooling, Flatten, Reshape
//===----------------------------------------------------------------------===//

static llvm::Error emitCall(NodeReader &R, llvm::StringRef Op,
                            std::vector<Argument> Args,
                            OpCode Code = OpCode::CallFunction) {
  auto N = R.emit(Code, Op, std::move(Args));
  if (!N)
    return N.takeError();
  R.defineNode(0, *N);
  return llvm::Error::success();
}

/// The input as a node of rank \p Rank.
static llvm::Expected<Node *> nodeOfRank(NodeReader &R, size_t I, size_t Rank) {
  auto X = R.node(I);
  if (!X)
    return X.takeError();
  if ((*X)->type()->Dims.size() != Rank)
    return R.error("only " + llvm::Twine(Rank) + "-d input is supported, got " +
                   formatShape((*X)->type()->Dims));
  return X;
}

llvm::Error qfx::onnximport::importGlobalAveragePool(NodeReader &R) {
  auto X = nodeOfRank(R, 0, 4);
  if (!X)
    return X.takeError();
  // torchvision: adaptive_avg_pool2d(x, (1, 1)).
  return emitCall(R, "adaptive_avg_pool2d",
                  {Argument(*X), Argument::ints({1, 1})});
}

/// A pool's pair as the Python call would pass it: 2 for (2, 2).
static Argument pairArg(llvm::ArrayRef<int64_t> P) {
  return P.size() == 2 && P[0] == P[1] ? Argument::integer(P[0])
                                       : Argument::ints(P);
}

/// kernel_shape, strides and pads of a 2-d pool.
struct PoolAttrs {
  std::vector<int64_t> Kernel, Strides, Pads;
  int64_t CeilMode = 0;
};

static llvm::Expected<PoolAttrs> poolAttrs(NodeReader &R) {
  PoolAttrs P;
  auto Kernel = R.attrInts("kernel_shape", {});
  auto Strides = R.attrInts("strides", {1, 1});
  auto Ceil = R.attrInt("ceil_mode", 0);
  auto Pads = readPads(R);
  if (llvm::Error E = firstError(Kernel, Strides, Ceil, Pads))
    return E;
  if (Kernel->size() != 2 || Strides->size() != 2)
    return R.error("only 2-d pooling is supported (kernel_shape and strides "
                   "need 2 values)");
  for (int64_t V : *Kernel)
    if (V < 1 || V > 1 << 20)
      return R.error("kernel_shape has an out-of-range value " +
                     llvm::Twine(V));
  for (int64_t V : *Strides)
    if (V < 1 || V > 1 << 20)
      return R.error("strides has an out-of-range value " + llvm::Twine(V));
  P.Kernel = *Kernel;
  P.Strides = *Strides;
  P.Pads = *Pads;
  P.CeilMode = *Ceil;
  return P;
}

llvm::Error qfx::onnximport::importMaxPool(NodeReader &R) {
  if (llvm::Error E = R.requireSingleOutput())
    return E;
  auto X = nodeOfRank(R, 0, 4);
  auto P = poolAttrs(R);
  auto Dilations = R.attrInts("dilations", {1, 1});
  auto Order = R.attrInt("storage_order", 0);
  if (llvm::Error E = firstError(X, P, Dilations, Order))
    return E;
  if (*Order != 0)
    return R.error("storage_order = 1 is not supported");
  if (Dilations->size() != 2 || (*Dilations)[0] < 1 || (*Dilations)[1] < 1)
    return R.error("attribute 'dilations' must be 2 positive values");
  return emitCall(R, "max_pool2d",
                  {Argument(*X), pairArg(P->Kernel), pairArg(P->Strides),
                   pairArg(P->Pads), pairArg(*Dilations),
                   Argument::boolean(P->CeilMode)});
}

llvm::Error qfx::onnximport::importAveragePool(NodeReader &R) {
  auto X = nodeOfRank(R, 0, 4);
  auto P = poolAttrs(R);
  auto Include = R.attrInt("count_include_pad", 0);
  if (llvm::Error E = firstError(X, P, Include))
    return E;
  // Without padding the flag changes nothing: use PyTorch's default.
  bool Padded = P->Pads[0] || P->Pads[1];
  return emitCall(R, "avg_pool2d",
                  {Argument(*X), pairArg(P->Kernel), pairArg(P->Strides),
                   pairArg(P->Pads), Argument::boolean(P->CeilMode),
                   Argument::boolean(Padded ? *Include != 0 : true)});
}

llvm::Error qfx::onnximport::importReduceMean(NodeReader &R) {
  auto X = R.node(0);
  auto Axes = R.attrInts("axes", {});
  auto Keep = R.attrInt("keepdims", 1);
  if (llvm::Error E = firstError(X, Axes, Keep))
    return E;
  if (Axes->empty())
    return R.error("a mean over all dims (no axes) is not supported");
  return emitCall(
      R, "mean",
      {Argument(*X), Argument::ints(*Axes), Argument::boolean(*Keep != 0)});
}

llvm::Error qfx::onnximport::importFlatten(NodeReader &R) {
  auto X = R.node(0);
  auto Axis = R.attrInt("axis", 1);
  if (!X)
    return X.takeError();
  if (!Axis)
    return Axis.takeError();
  int64_t Rank = static_cast<int64_t>((*X)->type()->Dims.size());
  int64_t A = *Axis < 0 ? *Axis + Rank : *Axis;
  if (A != 1 || Rank < 2)
    return R.error("axis " + llvm::Twine(*Axis) + " of a rank-" +
                   llvm::Twine(Rank) +
                   " input is not supported (axis 1 keeps the batch)");
  // torch.flatten(x, 1).
  return emitCall(R, "flatten", {Argument(*X), Argument::integer(1)});
}

static llvm::Error foldReshape(NodeReader &R, const OnnxValue &V,
                               const OnnxValue &Target);

llvm::Error qfx::onnximport::importReshape(NodeReader &R) {
  auto X = R.input(0);
  auto Target = R.constant(1, "the target shape");
  auto AllowZero = R.attrInt("allowzero", 0);
  if (llvm::Error E = firstError(X, Target, AllowZero))
    return E;
  if (*AllowZero)
    return R.error("allowzero = 1 is not supported");
  if ((*X)->isConst())
    return foldReshape(R, **X, **Target);
  auto XN = R.node(0);
  if (!XN)
    return XN.takeError();
  const Shape &In = (*XN)->type()->Dims;
  bool InBatch = (*X)->BatchDim0;
  std::vector<int64_t> Dims = tensorInts(*(*Target)->Const);
  std::vector<BatchDep> Deps(Dims.size(), BatchDep::None);
  for (size_t I = 0; I < Dims.size(); ++I) {
    Deps[I] = (*Target)->dep(I);
    if (Dims[I] == 0) { // Copy the input's extent.
      if (I >= In.size())
        return R.error("target dim " + llvm::Twine(I) +
                       " is 0 but the input has rank " +
                       llvm::Twine(In.size()));
      Dims[I] = In[I];
      if (I == 0 && InBatch)
        Deps[I] = BatchDep::Batch;
    }
    if (Deps[I] == BatchDep::Derived)
      return R.error("target dim " + llvm::Twine(I) +
                     " is computed from the batch size in a way a reshape "
                     "cannot express");
  }
  size_t NumBatch = llvm::count(Deps, BatchDep::Batch);
  size_t NumInfer = llvm::count(Dims, -1);
  if (NumBatch > 1 || (NumBatch == 1 && Deps[0] != BatchDep::Batch))
    return R.error("the target shape uses the batch size other than as its "
                   "first dim; a reshape cannot express it");
  if (NumBatch == 1 && NumInfer > 0) {
    // [N, -1]: the batch stays -1, the other -1 is known (the input's
    // other dims are static).
    int64_t Rest = 1, Known = 1;
    for (size_t I = InBatch ? 1 : 0; I < In.size(); ++I)
      Rest *= In[I];
    bool Overflow = false;
    for (size_t I = 1; I < Dims.size(); ++I)
      if (Dims[I] != -1)
        Overflow |= __builtin_mul_overflow(Known, Dims[I], &Known);
    if (NumInfer > 1 || Overflow || Known <= 0 || Rest % Known)
      return R.error("the target shape cannot be resolved for the input " +
                     formatShape(In));
    for (size_t I = 1; I < Dims.size(); ++I)
      if (Dims[I] == -1)
        Dims[I] = Rest / Known;
  }
  if (NumBatch == 1)
    Dims[0] = -1;
  // x.reshape(...), a method call in the tracer.
  return emitCall(R, "reshape", {Argument(*XN), Argument::ints(Dims)},
                  OpCode::CallMethod);
}

//===----------------------------------------------------------------------===//
// Folding
//===----------------------------------------------------------------------===//

/// A constant input with no element depending on the batch.
static int64_t normAxis(int64_t Axis, int64_t Rank) {
  return Axis < 0 ? Axis + Rank : Axis;
}

/// Copies element \p From of \p Src (and its dep) to \p To of \p Dst.
static void copyElem(const OnnxValue &Src, int64_t From, OnnxValue &Dst,
                     int64_t To) {
  size_t Size = dtypeSize(Src.Const->dtype());
  std::memcpy(static_cast<char *>(Dst.Const->rawData()) + To * Size,
              static_cast<const char *>(Src.Const->rawData()) + From * Size,
              Size);
  if (Src.dep(From) != BatchDep::None) {
    Dst.Dep.resize(Dst.Const->numElements(), BatchDep::None);
    Dst.Dep[To] = Src.dep(From);
    if (Src.BatchOf)
      Dst.BatchOf = Src.BatchOf;
  }
}

static int64_t product(llvm::ArrayRef<int64_t> S) {
  int64_t P = 1;
  for (int64_t D : S)
    P *= D;
  return P;
}

/// The largest folded constant (elements).
static constexpr int64_t MaxFolded = int64_t(1) << 24;

llvm::Error qfx::onnximport::importConcat(NodeReader &R) {
  auto Axis = R.attrInt("axis", 0);
  if (!Axis)
    return Axis.takeError();
  bool AllConst = true;
  for (size_t I = 0; I < R.numInputs(); ++I) {
    auto V = R.input(I);
    if (!V)
      return V.takeError();
    AllConst &= (*V)->isConst();
  }
  if (!AllConst) {
    std::vector<Argument> Xs;
    for (size_t I = 0; I < R.numInputs(); ++I) {
      auto N = R.node(I);
      if (!N)
        return N.takeError();
      Xs.push_back(Argument(*N));
    }
    return emitCall(R, "cat",
                    {Argument::list(std::move(Xs)), Argument::integer(*Axis)});
  }
  const OnnxValue *First = *R.input(0);
  Shape OutDims(First->Const->shape().begin(), First->Const->shape().end());
  int64_t Rank = OutDims.size(), A = normAxis(*Axis, Rank);
  if (A < 0 || A >= Rank)
    return R.error("axis " + llvm::Twine(*Axis) + " is out of range");
  OutDims[A] = 0;
  for (size_t I = 0; I < R.numInputs(); ++I) {
    const Tensor &T = *(*R.input(I))->Const;
    Shape D(T.shape().begin(), T.shape().end());
    if (T.dtype() != First->Const->dtype() || T.rank() != Rank)
      return R.error("constant inputs differ in type or rank");
    for (int64_t J = 0; J < Rank; ++J)
      if (J != A && D[J] != OutDims[J])
        return R.error("constant inputs differ in shape off the axis");
    OutDims[A] += D[A];
  }
  if (auto N = checkedNumElements(OutDims, MaxFolded); !N) {
    llvm::consumeError(N.takeError());
    return R.error("the folded constant is too large");
  }
  OnnxValue Out;
  Out.Const = Tensor(First->Const->dtype(), OutDims);
  int64_t Outer = product(llvm::ArrayRef<int64_t>(OutDims).take_front(A));
  int64_t Inner = product(llvm::ArrayRef<int64_t>(OutDims).drop_front(A + 1));
  int64_t K = 0;
  for (int64_t O = 0; O < Outer; ++O)
    for (size_t I = 0; I < R.numInputs(); ++I) {
      const OnnxValue &V = **R.input(I);
      int64_t Chunk = V.Const->dim(A) * Inner;
      for (int64_t J = 0; J < Chunk; ++J)
        copyElem(V, O * Chunk + J, Out, K++);
    }
  R.define(0, std::move(Out));
  return llvm::Error::success();
}

llvm::Error qfx::onnximport::importShape(NodeReader &R) {
  auto X = R.input(0);
  auto Start = R.attrInt("start", 0);
  auto End = R.attrInt("end", INT64_MAX);
  if (llvm::Error E = firstError(X, Start, End))
    return E;
  Shape Dims = (*X)->isConst() ? Shape((*X)->Const->shape().begin(),
                                       (*X)->Const->shape().end())
                               : (*X)->N->type()->Dims;
  int64_t Rank = Dims.size();
  int64_t S = std::clamp(normAxis(*Start, Rank), int64_t(0), Rank);
  int64_t E = std::clamp(*End < 0 ? *End + Rank : *End, int64_t(0), Rank);
  OnnxValue Out;
  Out.Const = Tensor(DType::S64, {std::max<int64_t>(E - S, 0)});
  for (int64_t I = S; I < E; ++I) {
    Out.Const->data<int64_t>()[I - S] = Dims[I];
    if (I == 0 && !(*X)->isConst() && (*X)->BatchDim0) {
      Out.Dep.resize(E - S, BatchDep::None);
      Out.Dep[0] = BatchDep::Batch;
      Out.BatchOf = (*X)->N;
    }
  }
  R.define(0, std::move(Out));
  return llvm::Error::success();
}

llvm::Error qfx::onnximport::importGather(NodeReader &R) {
  if (isEmbeddingGather(R)) // arith family
    return importEmbeddingGather(R);
  // An activation's x[:, i] (the ViT's class token); shape computations
  // fold below.
  if (auto In = R.input(0); In && !(*In)->isConst())
    return importGatherSelect(R);
  else if (!In)
    return In.takeError();
  auto Data = R.constant(0, "data");
  auto Indices = R.constInts(1, "indices");
  auto Axis = R.attrInt("axis", 0);
  if (llvm::Error E = firstError(Data, Indices, Axis))
    return E;
  const OnnxValue &D = **Data;
  llvm::ArrayRef<int64_t> DS = D.Const->shape();
  int64_t Rank = DS.size(), A = normAxis(*Axis, Rank);
  if (A < 0 || A >= Rank)
    return R.error("axis " + llvm::Twine(*Axis) + " is out of range");
  llvm::ArrayRef<int64_t> ISRef = (*R.input(1))->Const->shape();
  Shape IS(ISRef.begin(), ISRef.end());
  Shape OutDims(DS.begin(), DS.begin() + A);
  OutDims.append(IS.begin(), IS.end());
  OutDims.append(DS.begin() + A + 1, DS.end());
  if (auto N = checkedNumElements(OutDims, MaxFolded); !N) {
    llvm::consumeError(N.takeError());
    return R.error("the folded constant is too large");
  }
  OnnxValue Out;
  Out.Const = Tensor(D.Const->dtype(), OutDims);
  int64_t Outer = product(DS.take_front(A)), N = DS[A];
  int64_t Inner = product(DS.drop_front(A + 1));
  int64_t NI = Indices->size();
  for (int64_t K = 0; K < NI; ++K) {
    int64_t Idx = (*Indices)[K] < 0 ? (*Indices)[K] + N : (*Indices)[K];
    if (Idx < 0 || Idx >= N)
      return R.error("index " + llvm::Twine((*Indices)[K]) +
                     " is out of range for extent " + llvm::Twine(N));
    for (int64_t O = 0; O < Outer; ++O)
      for (int64_t J = 0; J < Inner; ++J)
        copyElem(D, (O * N + Idx) * Inner + J, Out, (O * NI + K) * Inner + J);
  }
  R.define(0, std::move(Out));
  return llvm::Error::success();
}

/// The axes of Unsqueeze / Squeeze: an attribute before opset 13, an input
/// from it on.
static llvm::Expected<std::vector<int64_t>> squeezeAxes(NodeReader &R) {
  if (R.opset() >= 13)
    return R.hasInput(1) ? R.constInts(1, "axes") : std::vector<int64_t>{};
  return R.attrInts("axes", {});
}

/// Folds a constant to a new shape of the same elements.
static llvm::Error reshapeConst(NodeReader &R, const OnnxValue &V,
                                Shape NewDims) {
  OnnxValue Out = V;
  Out.Const = V.Const->reshaped(NewDims);
  Out.InitName.clear();
  R.define(0, std::move(Out));
  return llvm::Error::success();
}

/// Reshape of a constant (the ViT's shape arithmetic for expand): the same
/// elements, batch dependencies included, in the target's shape.
static llvm::Error foldReshape(NodeReader &R, const OnnxValue &V,
                               const OnnxValue &Target) {
  if (!Target.Dep.empty())
    return R.error("the target shape of a constant depends on the batch size");
  std::vector<int64_t> Dims = tensorInts(*Target.Const);
  llvm::ArrayRef<int64_t> In = V.Const->shape();
  int64_t Known = 1, Infer = -1;
  for (size_t I = 0; I < Dims.size(); ++I) {
    if (Dims[I] == 0 && I < In.size())
      Dims[I] = In[I];
    if (Dims[I] == -1 && Infer < 0) {
      Infer = I;
      continue;
    }
    if (Dims[I] < 0 || __builtin_mul_overflow(Known, Dims[I], &Known))
      return R.error("target " + formatShape(Dims) + " is not a shape of " +
                     formatShape(In));
  }
  int64_t Count = V.Const->numElements();
  if (Infer >= 0 && Known > 0 && Count % Known == 0)
    Dims[Infer] = Count / Known;
  if (product(Dims) != Count || llvm::count(Dims, -1))
    return R.error("target " + formatShape(Dims) + " does not hold the " +
                   llvm::Twine(Count) + " elements of the constant");
  return reshapeConst(R, V, Shape(Dims.begin(), Dims.end()));
}

llvm::Error qfx::onnximport::importUnsqueeze(NodeReader &R) {
  auto Data = R.constant(0, "data");
  auto Axes = squeezeAxes(R);
  if (!Data)
    return Data.takeError();
  if (!Axes)
    return Axes.takeError();
  llvm::ArrayRef<int64_t> DS = (*Data)->Const->shape();
  int64_t Rank = DS.size() + Axes->size();
  std::vector<bool> IsNew(Rank, false);
  for (int64_t A : *Axes) {
    int64_t N = normAxis(A, Rank);
    if (N < 0 || N >= Rank || IsNew[N])
      return R.error("axis " + llvm::Twine(A) + " is out of range or repeated");
    IsNew[N] = true;
  }
  Shape NewDims;
  size_t J = 0;
  for (int64_t I = 0; I < Rank; ++I)
    NewDims.push_back(IsNew[I] ? 1 : DS[J++]);
  return reshapeConst(R, **Data, NewDims);
}

llvm::Error qfx::onnximport::importSqueeze(NodeReader &R) {
  auto Data = R.constant(0, "data");
  auto Axes = squeezeAxes(R);
  if (!Data)
    return Data.takeError();
  if (!Axes)
    return Axes.takeError();
  llvm::ArrayRef<int64_t> DS = (*Data)->Const->shape();
  int64_t Rank = DS.size();
  std::vector<bool> Drop(Rank, Axes->empty());
  for (int64_t I = 0; Axes->empty() && I < Rank; ++I)
    Drop[I] = DS[I] == 1;
  for (int64_t A : *Axes) {
    int64_t N = normAxis(A, Rank);
    if (N < 0 || N >= Rank || DS[N] != 1)
      return R.error("axis " + llvm::Twine(A) + " is not a dim of extent 1");
    Drop[N] = true;
  }
  Shape NewDims;
  for (int64_t I = 0; I < Rank; ++I)
    if (!Drop[I])
      NewDims.push_back(DS[I]);
  return reshapeConst(R, **Data, NewDims);
}

llvm::Error qfx::onnximport::importSlice(NodeReader &R) {
  if (auto X = R.input(0); X && !(*X)->isConst()) // arith family
    return importSliceTensor(R);
  else if (!X)
    return X.takeError();
  auto Data = R.constant(0, "data");
  auto Starts = R.constInts(1, "starts");
  auto Ends = R.constInts(2, "ends");
  if (llvm::Error E = firstError(Data, Starts, Ends))
    return E;
  const OnnxValue &D = **Data;
  llvm::ArrayRef<int64_t> DS = D.Const->shape();
  int64_t Rank = DS.size();
  std::vector<int64_t> Axes, Steps(Starts->size(), 1);
  for (size_t I = 0; I < Starts->size(); ++I)
    Axes.push_back(I);
  if (R.hasInput(3)) {
    auto A = R.constInts(3, "axes");
    if (!A)
      return A.takeError();
    Axes = *A;
  }
  if (R.hasInput(4)) {
    auto S = R.constInts(4, "steps");
    if (!S)
      return S.takeError();
    Steps = *S;
  }
  if (Ends->size() != Starts->size() || Axes.size() != Starts->size() ||
      Steps.size() != Starts->size())
    return R.error("starts, ends, axes and steps differ in length");
  std::vector<int64_t> First(Rank, 0), Step(Rank, 1);
  Shape OutDims(DS.begin(), DS.end());
  for (size_t I = 0; I < Axes.size(); ++I) {
    int64_t A = normAxis(Axes[I], Rank), S = Steps[I];
    if (A < 0 || A >= Rank || S == 0)
      return R.error("axis " + llvm::Twine(Axes[I]) +
                     " is out of range or its step is 0");
    int64_t Dim = DS[A];
    auto Clamp = [](int64_t V, int64_t Dim, int64_t Lo, int64_t Hi) {
      if (V < 0)
        V = V < -Dim ? -1 - Dim : V + Dim; // Stays below Lo when too small.
      return std::clamp(V, Lo, Hi);
    };
    int64_t B = S > 0 ? Clamp((*Starts)[I], Dim, 0, Dim)
                      : Clamp((*Starts)[I], Dim, 0, Dim - 1);
    int64_t E = S > 0 ? Clamp((*Ends)[I], Dim, 0, Dim)
                      : Clamp((*Ends)[I], Dim, -1, Dim - 1);
    int64_t Span = S > 0 ? E - B : B - E;
    int64_t AbsS = S > 0 ? S : (S == INT64_MIN ? INT64_MAX : -S);
    OutDims[A] = Span <= 0 ? 0 : (Span - 1) / AbsS + 1;
    First[A] = B;
    Step[A] = S;
  }
  OnnxValue Out;
  Out.Const = Tensor(D.Const->dtype(), OutDims);
  int64_t Total = product(OutDims);
  std::vector<int64_t> Idx(Rank, 0);
  for (int64_t K = 0; K < Total; ++K) {
    int64_t From = 0;
    for (int64_t J = 0; J < Rank; ++J)
      From = From * DS[J] + First[J] + Idx[J] * Step[J];
    copyElem(D, From, Out, K);
    for (int64_t J = Rank - 1; J >= 0; --J) {
      if (++Idx[J] < OutDims[J])
        break;
      Idx[J] = 0;
    }
  }
  R.define(0, std::move(Out));
  return llvm::Error::success();
}

llvm::Error qfx::onnximport::importCast(NodeReader &R) {
  auto X = R.input(0);
  auto To = R.attrInt("to", 0);
  if (!X)
    return X.takeError();
  if (!To)
    return To.takeError();
  std::optional<DType> D = dtypeFromOnnx(static_cast<int32_t>(*To));
  if (!D)
    return R.error("cast to ONNX type " + llvm::Twine(*To) +
                   " is not supported");
  if (!(*X)->isConst()) {
    if (*D != (*X)->N->type()->Dtype)
      return R.error("casting a computed tensor is not supported");
    R.define(0, **X);
    return llvm::Error::success();
  }
  const OnnxValue &V = **X;
  OnnxValue Out = V;
  Out.InitName.clear();
  Out.Const = Tensor(*D, V.Const->shape());
  std::vector<int64_t> Ints;
  if (*D == DType::S64)
    Ints = tensorInts(*V.Const);
  for (int64_t I = 0; I < V.Const->numElements(); ++I) {
    if (*D == DType::S64) {
      Out.Const->data<int64_t>()[I] = Ints[I];
      continue;
    }
    double X = V.Const->getAsDouble(I);
    if (*D != DType::F32)
      X = std::trunc(X);
    if (!fitsDType(X, *D))
      return R.error("value " + std::to_string(X) + " does not fit " +
                     dtypeName(*D));
    Out.Const->setFromDouble(I, X);
  }
  R.define(0, std::move(Out));
  return llvm::Error::success();
}

llvm::Error qfx::onnximport::importConstant(NodeReader &R) {
  if (R.proto().attribute_size() != 1)
    return R.error("exactly one value attribute is expected");
  const onnx::AttributeProto &A = R.proto().attribute(0);
  OnnxValue Out;
  if (A.name() == "value" && A.type() == onnx::AttributeProto::TENSOR) {
    auto T = tensorFromProto(A.t(), "");
    if (!T)
      return R.error("attribute 'value': " + errorToString(T.takeError()));
    Out.Const = std::move(*T);
  } else if (A.name() == "value_float" &&
             A.type() == onnx::AttributeProto::FLOAT) {
    Out.Const = Tensor::fromFloats({}, {A.f()});
  } else if (A.name() == "value_floats" &&
             A.type() == onnx::AttributeProto::FLOATS) {
    std::vector<float> V(A.floats().begin(), A.floats().end());
    Out.Const = Tensor::fromFloats({int64_t(V.size())}, V);
  } else if (A.name() == "value_int" && A.type() == onnx::AttributeProto::INT) {
    Out.Const = Tensor(DType::S64, {});
    Out.Const->data<int64_t>()[0] = A.i();
  } else if (A.name() == "value_ints" &&
             A.type() == onnx::AttributeProto::INTS) {
    Out.Const = Tensor(DType::S64, {A.ints_size()});
    for (int I = 0; I < A.ints_size(); ++I)
      Out.Const->data<int64_t>()[I] = A.ints(I);
  } else {
    return R.error("attribute '" + A.name() + "' is not supported");
  }
  R.define(0, std::move(Out));
  return llvm::Error::success();
}

llvm::Error qfx::onnximport::importConstantOfShape(NodeReader &R) {
  auto ShapeV = R.constant(0, "shape");
  auto Dims = R.constInts(0, "shape");
  if (!ShapeV)
    return ShapeV.takeError();
  if (!Dims)
    return Dims.takeError();
  if (!(*ShapeV)->Dep.empty())
    return R.error("the shape depends on the batch size; a constant cannot");
  auto N = checkedNumElements(*Dims, MaxFolded);
  if (!N)
    return R.error("shape " + formatShape(*Dims) + ": " +
                   errorToString(N.takeError()));
  Tensor Value = Tensor::fromFloats({}, {0.0f});
  if (const onnx::AttributeProto *A = R.attr("value")) {
    auto T = tensorFromProto(A->t(), "");
    if (!T)
      return R.error("attribute 'value': " + errorToString(T.takeError()));
    if (T->numElements() != 1)
      return R.error("attribute 'value' must have one element");
    Value = *T;
  }
  OnnxValue Out;
  Out.Const = Tensor(Value.dtype(), *Dims);
  for (int64_t I = 0; I < *N; ++I)
    std::memcpy(static_cast<char *>(Out.Const->rawData()) +
                    I * dtypeSize(Value.dtype()),
                Value.rawData(), dtypeSize(Value.dtype()));
  R.define(0, std::move(Out));
  return llvm::Error::success();
}

//===----------------------------------------------------------------------===//
// Equal, Where: how torch.onnx.export writes x.expand(N, -1, -1)'s sizes
// (Where(Equal(sizes, -1), 1, sizes)); both fold.
//===----------------------------------------------------------------------===//

/// The output shape of an element-wise fold: every operand has it or has
/// one element.
static llvm::Expected<Shape> foldShape(NodeReader &R,
                                       llvm::ArrayRef<const OnnxValue *> Vs) {
  // The first operand with more than one element sets the shape; with
  // none, the highest-rank operand.
  const OnnxValue *Big = Vs[0];
  for (const OnnxValue *V : Vs)
    if (Big->Const->numElements() == 1 &&
        (V->Const->numElements() != 1 || V->Const->rank() > Big->Const->rank()))
      Big = V;
  Shape Out(Big->Const->shape().begin(), Big->Const->shape().end());
  for (const OnnxValue *V : Vs)
    if (V->Const->numElements() != 1 &&
        V->Const->shape() != llvm::ArrayRef<int64_t>(Out))
      return R.error("folding constants of shapes " +
                     formatShape(V->Const->shape()) + " and " +
                     formatShape(Out) + " is not supported");
  return Out;
}

llvm::Error qfx::onnximport::importEqual(NodeReader &R) {
  auto A = R.constant(0, "input A");
  auto B = R.constant(1, "input B");
  if (llvm::Error E = firstError(A, B))
    return E;
  const OnnxValue &VA = **A, &VB = **B;
  if (VA.Const->dtype() != VB.Const->dtype())
    return R.error("operands have different types " +
                   dtypeName(VA.Const->dtype()) + " and " +
                   dtypeName(VB.Const->dtype()));
  auto Out = foldShape(R, {&VA, &VB});
  if (!Out)
    return Out.takeError();
  OnnxValue Res;
  Res.Const = Tensor(DType::U8, *Out);
  bool Ints =
      VA.Const->dtype() == DType::S64 || VA.Const->dtype() == DType::S32;
  std::vector<int64_t> IA = tensorInts(*VA.Const), IB = tensorInts(*VB.Const);
  for (int64_t I = 0; I < Res.Const->numElements(); ++I) {
    int64_t JA = VA.Const->numElements() == 1 ? 0 : I;
    int64_t JB = VB.Const->numElements() == 1 ? 0 : I;
    BatchDep DA = VA.dep(JA), DB = VB.dep(JB);
    bool Eq = Ints ? IA[JA] == IB[JB]
                   : VA.Const->getAsDouble(JA) == VB.Const->getAsDouble(JB);
    if (DA == BatchDep::Batch && DB == BatchDep::Batch) {
      Eq = true;
    } else if (DA != BatchDep::None || DB != BatchDep::None) {
      // The batch size is never negative: comparing it with a negative
      // number (torch's -1 "keep this size") is false at any batch.
      int64_t Other = DA != BatchDep::None ? IB[JB] : IA[JA];
      if (DA == BatchDep::Derived || DB == BatchDep::Derived || Other >= 0)
        return R.error("element " + llvm::Twine(I) +
                       " compares the batch size with " + llvm::Twine(Other) +
                       "; the result would depend on the batch size");
      Eq = false;
    }
    Res.Const->data<uint8_t>()[I] = Eq;
  }
  R.define(0, std::move(Res));
  return llvm::Error::success();
}

llvm::Error qfx::onnximport::importWhere(NodeReader &R) {
  auto C = R.constant(0, "condition");
  auto X = R.constant(1, "X");
  auto Y = R.constant(2, "Y");
  if (llvm::Error E = firstError(C, X, Y))
    return E;
  const OnnxValue &VC = **C, &VX = **X, &VY = **Y;
  if (!VC.Dep.empty())
    return R.error("the condition depends on the batch size");
  if (VX.Const->dtype() != VY.Const->dtype())
    return R.error("X and Y have different types " +
                   dtypeName(VX.Const->dtype()) + " and " +
                   dtypeName(VY.Const->dtype()));
  auto Out = foldShape(R, {&VC, &VX, &VY});
  if (!Out)
    return Out.takeError();
  OnnxValue Res;
  Res.Const = Tensor(VX.Const->dtype(), *Out);
  for (int64_t I = 0; I < Res.Const->numElements(); ++I) {
    auto At = [&](const OnnxValue &V) {
      return V.Const->numElements() == 1 ? int64_t(0) : I;
    };
    bool Pick = VC.Const->getAsDouble(At(VC)) != 0.0;
    const OnnxValue &From = Pick ? VX : VY;
    copyElem(From, At(From), Res, I);
  }
  R.define(0, std::move(Res));
  return llvm::Error::success();
}
