//===- ImportArith.cpp - Sub, Div, Resize, Split, Slice, Gather-embedding -===//
//
// The arith family's import handlers, for what torch.onnx.export writes at
// opsets 13 and 17: Sub / Div / Neg / Reciprocal (a scalar constant stays
// a number: x - 1 is sub, 1 - x is rsub), Resize as F.interpolate
// (nearest/asymmetric/floor and linear/half_pixel or align_corners, from
// scales or sizes), Split and Slice of a tensor as narrows (how split /
// chunk / x[:, :k] export), and Gather from a float initializer as
// nn.Embedding.
//
//===----------------------------------------------------------------------===//

#include "NodeReader.h"

#include "qfx/IR/GraphModule.h"
#include "qfx/Support/Error.h"

#include <algorithm>
#include <cmath>

using namespace qfx;
using namespace qfx::onnximport;

//===----------------------------------------------------------------------===//
// Sub, Div
//===----------------------------------------------------------------------===//

/// Folds Sub / Div of two constants (same shape, or one a scalar); integer
/// division truncates, as ONNX's Div does.
static llvm::Error foldArith(NodeReader &R, const OnnxValue &A,
                             const OnnxValue &B, bool IsSub) {
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
      int64_t X = TA.data<int64_t>()[IA], Y = TB.data<int64_t>()[IB], Z = 0;
      if (IsSub ? __builtin_sub_overflow(X, Y, &Z)
                : (Y == 0 || (X == INT64_MIN && Y == -1)))
        return R.error(IsSub ? "int64 overflow folding constants"
                             : "int64 division by zero or overflow folding "
                               "constants");
      Out.Const->data<int64_t>()[I] = IsSub ? Z : X / Y;
    } else {
      float X = TA.data<float>()[IA], Y = TB.data<float>()[IB];
      Out.Const->data<float>()[I] = IsSub ? X - Y : X / Y;
    }
    if (A.dep(IA) != BatchDep::None || B.dep(IB) != BatchDep::None) {
      Out.Dep.resize(Big.numElements(), BatchDep::None);
      Out.Dep[I] = BatchDep::Derived;
    }
  }
  R.define(0, std::move(Out));
  return llvm::Error::success();
}

static bool isFloatScalar(const OnnxValue &V) {
  return V.isConst() && V.Const->numElements() == 1 &&
         V.Const->dtype() == DType::F32 && V.Const->rank() == 0;
}

/// sub / div of a tensor and a tensor or scalar; \p ScalarLeft is the op
/// for a scalar first operand (rsub for Sub; Div keeps div of a constant
/// tensor, which computes c / x exactly as ONNX does).
static llvm::Error arith(NodeReader &R, llvm::StringRef Op, bool IsSub) {
  auto A = R.input(0);
  auto B = R.input(1);
  if (llvm::Error E = firstError(A, B))
    return E;
  if ((*A)->isConst() && (*B)->isConst())
    return foldArith(R, **A, **B, IsSub);
  std::vector<Argument> Args;
  llvm::StringRef Target = Op;
  if (isFloatScalar(**B)) {
    auto X = R.node(0);
    if (!X)
      return X.takeError();
    Args = {Argument(*X), Argument::real((*B)->Const->getAsDouble(0))};
  } else if (IsSub && isFloatScalar(**A)) {
    auto X = R.node(1);
    if (!X)
      return X.takeError();
    Args = {Argument(*X), Argument::real((*A)->Const->getAsDouble(0))};
    Target = "rsub";
  } else {
    auto X = R.node(0);
    auto Y = R.node(1);
    if (llvm::Error E = firstError(X, Y))
      return E;
    Args = {Argument(*X), Argument(*Y)};
  }
  auto N = R.emit(OpCode::CallFunction, Target, std::move(Args));
  if (!N)
    return N.takeError();
  R.defineNode(0, *N);
  return llvm::Error::success();
}

llvm::Error qfx::onnximport::importSub(NodeReader &R) {
  return arith(R, "sub", true);
}

llvm::Error qfx::onnximport::importDiv(NodeReader &R) {
  // A layer norm's (x - mean) / Sqrt(var + eps) (ImportPatterns.cpp).
  if (auto P = divInPattern(R); !P || *P)
    return P ? llvm::Error::success() : P.takeError();
  return arith(R, "div", false);
}

/// neg / reciprocal of a graph value.
static llvm::Error unaryArith(NodeReader &R, llvm::StringRef Op) {
  auto X = R.node(0);
  if (!X)
    return X.takeError();
  auto N = R.emit(OpCode::CallFunction, Op, {Argument(*X)});
  if (!N)
    return N.takeError();
  R.defineNode(0, *N);
  return llvm::Error::success();
}

llvm::Error qfx::onnximport::importNeg(NodeReader &R) {
  return unaryArith(R, "neg");
}

llvm::Error qfx::onnximport::importReciprocal(NodeReader &R) {
  return unaryArith(R, "reciprocal");
}

//===----------------------------------------------------------------------===//
// Resize
//===----------------------------------------------------------------------===//

/// The interpolate mode and align_corners a Resize's attributes mean, as
/// torch.onnx.export writes F.interpolate.
static llvm::Error resizeMode(NodeReader &R, std::string &Mode,
                              std::optional<bool> &AlignCorners) {
  auto M = R.attrString("mode", "nearest");
  auto Ctm = R.attrString("coordinate_transformation_mode", "half_pixel");
  auto Nearest = R.attrString("nearest_mode", "round_prefer_floor");
  auto Exclude = R.attrInt("exclude_outside", 0);
  if (llvm::Error E = firstError(M, Ctm, Nearest, Exclude))
    return E;
  if (*Exclude)
    return R.error("exclude_outside = 1 is not supported");
  if (*M == "nearest") {
    if (*Ctm != "asymmetric" || *Nearest != "floor")
      return R.error("nearest mode with coordinate_transformation_mode '" +
                     *Ctm + "' and nearest_mode '" + *Nearest +
                     "' is not supported (PyTorch's nearest is 'asymmetric' "
                     "with 'floor')");
    Mode = "nearest";
    return llvm::Error::success();
  }
  if (*M != "linear")
    return R.error("mode '" + *M + "' is not supported (nearest, linear)");
  Mode = "bilinear";
  if (*Ctm == "align_corners")
    AlignCorners = true;
  else if (*Ctm == "half_pixel" || *Ctm == "pytorch_half_pixel")
    AlignCorners = false;
  else
    return R.error("linear mode with coordinate_transformation_mode '" + *Ctm +
                   "' is not supported (half_pixel, pytorch_half_pixel, "
                   "align_corners)");
  return llvm::Error::success();
}

llvm::Error qfx::onnximport::importResize(NodeReader &R) {
  std::string Mode;
  std::optional<bool> AlignCorners;
  if (llvm::Error E = resizeMode(R, Mode, AlignCorners))
    return E;
  auto X = R.node(0);
  if (!X)
    return X.takeError();
  llvm::ArrayRef<int64_t> In = (*X)->type()->Dims;
  if (In.size() != 4)
    return R.error("only 4-d input is supported, got " + formatShape(In));
  // interpolate(input, size, scale_factor, mode, align_corners).
  std::vector<Argument> Args{Argument(*X), Argument::none(), Argument::none(),
                             Argument::string(Mode)};
  if (AlignCorners)
    Args.push_back(Argument::boolean(*AlignCorners));
  bool HasScales = R.hasInput(2), HasSizes = R.hasInput(3);
  if (HasScales) {
    // An empty scales tensor next to sizes means "use sizes".
    auto S = R.constant(2, "scales");
    if (!S)
      return S.takeError();
    HasScales = (*S)->Const->numElements() != 0;
  }
  if (HasScales == HasSizes)
    return R.error("exactly one of scales and sizes must be given");
  if (HasScales) {
    const Tensor &S = *(*R.constant(2, "scales"))->Const;
    if (S.numElements() != 4 || S.getAsDouble(0) != 1.0 ||
        S.getAsDouble(1) != 1.0)
      return R.error("scales must be [1, 1, h, w]");
    Args[2] = Argument::list(
        {Argument::real(S.getAsDouble(2)), Argument::real(S.getAsDouble(3))});
  } else {
    auto S = R.constInts(3, "sizes");
    if (!S)
      return S.takeError();
    if (S->size() != 4 || (*S)[1] != In[1])
      return R.error("sizes must be [N, C, h, w] with the input's N and C");
    Args[1] = Argument::ints({(*S)[2], (*S)[3]});
  }
  auto N = R.emit(OpCode::CallFunction, "interpolate", std::move(Args));
  if (!N)
    return N.takeError();
  R.defineNode(0, *N);
  return llvm::Error::success();
}

llvm::Error qfx::onnximport::importUpsample(NodeReader &R) {
  auto M = R.attrString("mode", "nearest");
  if (!M)
    return M.takeError();
  // Upsample maps output pixel x to x / scale: PyTorch's nearest, but no
  // align_corners of its bilinear (half-pixel or corner-aligned).
  if (*M != "nearest")
    return R.error("mode '" + *M +
                   "' is not supported: Upsample's linear mode maps pixels "
                   "as x / scale, which is not PyTorch's bilinear (export "
                   "with opset 11 or later for a Resize)");
  auto X = R.node(0);
  if (!X)
    return X.takeError();
  llvm::ArrayRef<int64_t> In = (*X)->type()->Dims;
  if (In.size() != 4)
    return R.error("only 4-d input is supported, got " + formatShape(In));
  std::vector<double> S;
  if (R.hasInput(1)) { // Opset 9: an input.
    auto T = R.constant(1, "scales");
    if (!T)
      return T.takeError();
    if ((*T)->Const->dtype() != DType::F32)
      return R.error("scales must be a float tensor");
    for (int64_t I = 0; I < (*T)->Const->numElements(); ++I)
      S.push_back((*T)->Const->getAsDouble(I));
  } else if (const onnx::AttributeProto *A = R.attr("scales")) { // Opset 7.
    if (A->type() != onnx::AttributeProto::FLOATS)
      return R.error("attribute 'scales' must be a list of floats");
    S.assign(A->floats().begin(), A->floats().end());
  }
  if (S.size() != 4 || S[0] != 1.0 || S[1] != 1.0 || !(S[2] >= 1.0) ||
      !(S[3] >= 1.0) || !std::isfinite(S[2]) || !std::isfinite(S[3]))
    return R.error("scales must be [1, 1, h, w] with finite h, w >= 1");
  // interpolate(x, scale_factor=[h, w]), mode nearest.
  auto N =
      R.emit(OpCode::CallFunction, "interpolate",
             {Argument(*X), Argument::none(),
              Argument::list({Argument::real(S[2]), Argument::real(S[3])})});
  if (!N)
    return N.takeError();
  R.defineNode(0, *N);
  return llvm::Error::success();
}

//===----------------------------------------------------------------------===//
// Split, Slice of a tensor: narrows
//===----------------------------------------------------------------------===//

/// Emits narrow(x, axis, start, length) as output \p Out of the node.
static llvm::Error emitNarrow(NodeReader &R, Node *X, int64_t Axis,
                              int64_t Start, int64_t Length, size_t Out) {
  auto N = R.emit(OpCode::CallFunction, "narrow",
                  {Argument(X), Argument::integer(Axis),
                   Argument::integer(Start), Argument::integer(Length)});
  if (!N)
    return N.takeError();
  R.defineNode(Out, *N);
  return llvm::Error::success();
}

/// The axis \p Axis of \p X normalized, or an error; the batch dimension
/// cannot be cut (the importer keeps it whole in dimension 0).
static llvm::Expected<int64_t> cutAxis(NodeReader &R, const Node *X,
                                       int64_t Axis) {
  int64_t Rank = static_cast<int64_t>(X->type()->Dims.size());
  int64_t A = Axis < 0 ? Axis + Rank : Axis;
  if (A < 0 || A >= Rank)
    return R.error("axis " + llvm::Twine(Axis) + " is out of range for rank " +
                   llvm::Twine(Rank));
  if (A == 0)
    return R.error("cutting the batch dimension is not supported");
  return A;
}

llvm::Error qfx::onnximport::importSplit(NodeReader &R) {
  auto X = R.node(0);
  auto Axis = R.attrInt("axis", 0);
  if (llvm::Error E = firstError(X, Axis))
    return E;
  auto A = cutAxis(R, *X, *Axis);
  if (!A)
    return A.takeError();
  int64_t Extent = (*X)->type()->Dims[*A];
  int64_t Outs = R.proto().output_size();
  std::vector<int64_t> Sizes;
  if (R.opset() >= 13 && R.hasInput(1)) {
    auto S = R.constInts(1, "split");
    if (!S)
      return S.takeError();
    Sizes = *S;
  } else if (R.opset() < 13) {
    auto S = R.attrInts("split", {});
    if (!S)
      return S.takeError();
    Sizes = *S;
  }
  if (Sizes.empty()) {
    if (Outs <= 0 || Extent % Outs)
      return R.error("extent " + llvm::Twine(Extent) +
                     " does not split evenly into " + llvm::Twine(Outs) +
                     " outputs");
    Sizes.assign(Outs, Extent / Outs);
  }
  int64_t Sum = 0;
  for (int64_t S : Sizes) {
    if (S < 0)
      return R.error("split sizes must be non-negative");
    Sum += S;
  }
  if (static_cast<int64_t>(Sizes.size()) != Outs || Sum != Extent)
    return R.error("split sizes " + formatShape(Sizes) + " do not cut extent " +
                   llvm::Twine(Extent) + " into " + llvm::Twine(Outs) +
                   " outputs");
  int64_t Start = 0;
  for (int64_t I = 0; I < Outs; ++I) {
    if (!R.proto().output(I).empty())
      if (llvm::Error E = emitNarrow(R, *X, *A, Start, Sizes[I], I))
        return E;
    Start += Sizes[I];
  }
  return llvm::Error::success();
}

llvm::Error qfx::onnximport::importSliceTensor(NodeReader &R) {
  auto X = R.node(0);
  auto Starts = R.constInts(1, "starts");
  auto Ends = R.constInts(2, "ends");
  if (llvm::Error E = firstError(X, Starts, Ends))
    return E;
  std::vector<int64_t> Axes, Steps(Starts->size(), 1);
  for (size_t I = 0; I < Starts->size(); ++I)
    Axes.push_back(static_cast<int64_t>(I));
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
  Node *Cur = *X;
  for (size_t I = 0; I < Axes.size(); ++I) {
    if (Steps[I] != 1)
      return R.error("slicing a tensor with step " + llvm::Twine(Steps[I]) +
                     " is not supported (only 1)");
    int64_t Rank = static_cast<int64_t>(Cur->type()->Dims.size());
    int64_t Ax = Axes[I] < 0 ? Axes[I] + Rank : Axes[I];
    if (Ax < 0 || Ax >= Rank)
      return R.error("axis " + llvm::Twine(Axes[I]) + " is out of range");
    int64_t Dim = Cur->type()->Dims[Ax];
    auto Clamp = [Dim](int64_t V) {
      if (V < 0)
        V += Dim;
      return std::clamp<int64_t>(V, 0, Dim);
    };
    int64_t B = Clamp((*Starts)[I]), E = std::max(B, Clamp((*Ends)[I]));
    if (B == 0 && E == Dim)
      continue; // the whole axis
    auto A = cutAxis(R, Cur, Ax);
    if (!A)
      return A.takeError();
    auto N = R.emit(OpCode::CallFunction, "narrow",
                    {Argument(Cur), Argument::integer(*A), Argument::integer(B),
                     Argument::integer(E - B)});
    if (!N)
      return N.takeError();
    Cur = *N;
  }
  R.defineNode(0, Cur);
  return llvm::Error::success();
}

//===----------------------------------------------------------------------===//
// Gather from a float initializer: nn.Embedding
//===----------------------------------------------------------------------===//

bool qfx::onnximport::isEmbeddingGather(NodeReader &R) {
  auto Data = R.input(0);
  auto Indices = R.input(1);
  bool Result = Data && Indices && (*Data)->isConst() &&
                (*Data)->Const->dtype() == DType::F32 &&
                (*Data)->Const->rank() == 2 && !(*Indices)->isConst();
  if (!Data)
    llvm::consumeError(Data.takeError());
  if (!Indices)
    llvm::consumeError(Indices.takeError());
  return Result;
}

llvm::Error qfx::onnximport::importEmbeddingGather(NodeReader &R) {
  auto Axis = R.attrInt("axis", 0);
  auto Data = R.input(0);
  auto Idx = R.node(1);
  if (llvm::Error E = firstError(Axis, Data, Idx))
    return E;
  if (*Axis != 0)
    return R.error("gathering a float table along axis " + llvm::Twine(*Axis) +
                   " is not supported (embedding: 0)");
  const Tensor &W = *(*Data)->Const;
  std::string Path = R.newModulePath((*Data)->InitName, "embedding");
  ModuleInfo &M = R.gm().addModule(Path, "Embedding");
  M.setAttr("num_embeddings", Argument::integer(W.dim(0)));
  M.setAttr("embedding_dim", Argument::integer(W.dim(1)));
  M.setTensor("weight", W);
  auto N = R.emit(OpCode::CallModule, Path, {Argument(*Idx)});
  if (!N)
    return N.takeError();
  R.defineNode(0, *N);
  return llvm::Error::success();
}
