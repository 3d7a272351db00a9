//===- ArithOpTable.cpp - sub, div, interpolate, embedding, narrow --------===//
//
// The arith family's op-table entries, with torch's signatures: sub / rsub /
// div (tensor or scalar other, broadcasting), neg and reciprocal (what `-x`
// and `s / x` record, as torch's __neg__ and __rtruediv__ compute them),
// F.interpolate (nearest, bilinear; also on quantized tensors, which share
// their input's qparams as in PyTorch's x86 config), F.embedding and
// torch.narrow (each piece of split / chunk).
//
//===----------------------------------------------------------------------===//

#include "ArithOps.h"
#include "OpOperands.h"
#include "QuantKernels.h"

#include "qfx/Runtime/ArithParams.h"
#include "qfx/Runtime/Kernels.h"
#include "qfx/Runtime/KernelsArith.h"
#include "qfx/Support/Error.h"

#include <cmath>

using namespace qfx;
using namespace qfx::operands;

namespace {

Argument I64(int64_t V) { return Argument::integer(V); }
Argument F64(double V) { return Argument::real(V); }
Argument Bool(bool V) { return Argument::boolean(V); }
Argument Str(const char *V) { return Argument::string(V); }
Argument None() { return Argument::none(); }

//===----------------------------------------------------------------------===//
// sub, rsub, div: tensor (op) tensor with broadcasting, or tensor (op)
// scalar.
//===----------------------------------------------------------------------===//

/// The result type of input (op) other, naming the op and `other` when
/// the shapes do not broadcast.
llvm::Expected<TensorType> inferArith(const BoundArgs &B) {
  QFX_TRY(X, floatTensor(B, 0));
  if (!B.operand(1).isTensor()) {
    QFX_TRY(S, B.real(1));
    (void)*S;
    return f32Type((*X)->shape());
  }
  QFX_TRY(Y, floatTensor(B, 1));
  auto S = ref::broadcastShape((*X)->shape(), (*Y)->shape());
  if (!S) {
    llvm::consumeError(S.takeError());
    return B.error(1, "shape " + formatShape((*Y)->shape()) +
                          " does not broadcast with input shape " +
                          formatShape((*X)->shape()));
  }
  return f32Type(*S);
}

llvm::Expected<TensorType> inferDiv(const BoundArgs &B) {
  QFX_TRY(R, divRounding(B));
  return inferArith(B);
}

llvm::Expected<Tensor> runSub(const BoundArgs &B) {
  QFX_TRY(T, inferArith(B));
  QFX_TRY(Alpha, B.real(2));
  const Tensor &X = B.operand(0).tensor();
  if (!B.operand(1).isTensor()) {
    QFX_TRY(S, B.real(1));
    return ref::addScalar(X, -*S * *Alpha);
  }
  return ref::sub(X, B.operand(1).tensor(), *Alpha);
}

/// rsub(input, other, alpha): other - alpha * input.
llvm::Expected<Tensor> runRsub(const BoundArgs &B) {
  QFX_TRY(T, inferArith(B));
  QFX_TRY(Alpha, B.real(2));
  const Tensor &X = B.operand(0).tensor();
  if (!B.operand(1).isTensor()) {
    QFX_TRY(S, B.real(1));
    return ref::rsubScalar(X, *S, *Alpha);
  }
  return ref::sub(B.operand(1).tensor(), X, *Alpha);
}

llvm::Expected<Tensor> runDiv(const BoundArgs &B) {
  QFX_TRY(T, inferDiv(B));
  QFX_TRY(R, divRounding(B));
  const Tensor &X = B.operand(0).tensor();
  if (!B.operand(1).isTensor()) {
    QFX_TRY(S, B.real(1));
    return ref::divScalar(X, *S, *R);
  }
  return ref::div(X, B.operand(1).tensor(), *R);
}

llvm::Expected<TensorType> inferUnary(const BoundArgs &B) {
  QFX_TRY(X, floatTensor(B, 0));
  return f32Type((*X)->shape());
}

template <Tensor (*Fn)(const Tensor &)>
llvm::Expected<Tensor> runUnary(const BoundArgs &B) {
  QFX_TRY(X, floatTensor(B, 0));
  return Fn(**X);
}

//===----------------------------------------------------------------------===//
// interpolate
//===----------------------------------------------------------------------===//

llvm::Expected<TensorType> inferInterpolate(const BoundArgs &B) {
  QFX_TRY(X, valueTensor(B, 0));
  QFX_TRY(P, interpolateParams(B));
  QFX_TRY(S, ref::interpolateShape((*X)->shape(), *P));
  return likeInput(**X, *S);
}

llvm::Expected<Tensor> runInterpolate(const BoundArgs &B) {
  QFX_TRY(T, inferInterpolate(B));
  QFX_TRY(P, interpolateParams(B));
  const Tensor &X = B.operand(0).tensor();
  if (X.dtype() != DType::F32)
    return ref::interpolateQuantized(X, *P);
  return ref::interpolate(X, *P);
}

//===----------------------------------------------------------------------===//
// embedding(input, weight, padding_idx, max_norm, norm_type,
// scale_grad_by_freq, sparse): padding_idx only matters to the gradient.
//===----------------------------------------------------------------------===//

llvm::Expected<TensorType> inferEmbedding(const BoundArgs &B) {
  QFX_TRY(Idx, B.tensor(0));
  if ((*Idx)->dtype() != DType::S64 && (*Idx)->dtype() != DType::S32)
    return B.error(0, "expected an s64 or s32 tensor of indices, got " +
                          dtypeName((*Idx)->dtype()));
  QFX_TRY(W, floatTensor(B, 1));
  if ((*W)->rank() != 2)
    return B.error(1, "expected a 2-d [num_embeddings, embedding_dim] "
                      "tensor, got shape " +
                          formatShape((*W)->shape()));
  if (!B.isNone(2)) {
    QFX_TRY(Pad, B.integer(2));
    int64_t Num = (*W)->dim(0);
    if (*Pad < -Num || *Pad >= Num)
      return B.error(2, "padding_idx " + llvm::Twine(*Pad) +
                            " must be within num_embeddings (" +
                            llvm::Twine(Num) + ")");
  }
  if (!B.isNone(3))
    return B.error(3, "max_norm is not supported");
  QFX_TRY(Sparse, B.boolean(6));
  if (*Sparse)
    return B.error(6, "sparse gradients are not supported");
  Shape S((*Idx)->shape().begin(), (*Idx)->shape().end());
  S.push_back((*W)->dim(1));
  return f32Type(S);
}

llvm::Expected<Tensor> runEmbedding(const BoundArgs &B) {
  QFX_TRY(T, inferEmbedding(B));
  return ref::embedding(B.operand(0).tensor(), B.operand(1).tensor());
}

//===----------------------------------------------------------------------===//
// narrow(input, dim, start, length): a piece of split / chunk. Any
// activation dtype; quantized pieces keep the input's qparams.
//===----------------------------------------------------------------------===//

llvm::Expected<TensorType> inferNarrow(const BoundArgs &B) {
  QFX_TRY(X, valueTensor(B, 0));
  QFX_TRY(P, narrowParams(B));
  Shape S((*X)->shape().begin(), (*X)->shape().end());
  S[P->Dim] = P->Length;
  return likeInput(**X, S);
}

llvm::Expected<Tensor> runNarrow(const BoundArgs &B) {
  QFX_TRY(T, inferNarrow(B));
  QFX_TRY(P, narrowParams(B));
  return ref::narrow(B.operand(0).tensor(), P->Dim, P->Start, P->Length);
}

} // namespace

//===----------------------------------------------------------------------===//
// Parameter readers
//===----------------------------------------------------------------------===//

llvm::Expected<ref::DivRounding> qfx::divRounding(const BoundArgs &B) {
  if (B.isNone(2))
    return ref::DivRounding::None;
  const Operand &O = B.operand(2);
  if (O.isTensor() || O.isList() || !O.arg().isString())
    return B.error(2, "expected a string or None");
  const std::string &M = O.arg().getString();
  if (M == "trunc")
    return ref::DivRounding::Trunc;
  if (M == "floor")
    return ref::DivRounding::Floor;
  return B.error(2, "expected 'trunc', 'floor' or None, got '" + M + "'");
}

/// size or scale_factor (operand \p I): one number for both spatial dims or
/// a list of two.
static llvm::Expected<std::array<double, 2>> spatialPair(const BoundArgs &B,
                                                         size_t I) {
  const Operand &O = B.operand(I);
  if (O.isTensor() || O.isList())
    return B.error(I, "expected a number or a list of two");
  const Argument &A = O.arg();
  if (A.isInt() || A.isFloat()) {
    double V = A.isInt() ? double(A.getInt()) : A.getFloat();
    return std::array<double, 2>{V, V};
  }
  if (!A.isList())
    return B.error(I, "expected a number or a list of two");
  const std::vector<Argument> &L = A.getList();
  if (L.size() != 2)
    return B.error(I, "input has 2 spatial dimensions but " +
                          llvm::Twine(L.size()) + " values were given");
  std::array<double, 2> R{};
  for (size_t K = 0; K < 2; ++K) {
    if (!L[K].isInt() && !L[K].isFloat())
      return B.error(I, "expected a number or a list of two");
    R[K] = L[K].isInt() ? double(L[K].getInt()) : L[K].getFloat();
  }
  return R;
}

llvm::Expected<ref::InterpParams> qfx::interpolateParams(const BoundArgs &B) {
  ref::InterpParams P;
  const Operand &ModeOp = B.operand(3);
  if (ModeOp.isTensor() || ModeOp.isList() || !ModeOp.arg().isString())
    return B.error(3, "expected a string");
  const std::string &Mode = ModeOp.arg().getString();
  if (Mode == "nearest")
    P.Mode = ref::InterpMode::Nearest;
  else if (Mode == "bilinear")
    P.Mode = ref::InterpMode::Bilinear;
  else
    return B.error(3, "'" + Mode +
                          "' is not supported (expected 'nearest' or "
                          "'bilinear')");
  if (!B.isNone(4)) {
    if (P.Mode == ref::InterpMode::Nearest)
      return B.error(4, "align_corners option can only be set with the "
                        "interpolating modes: linear | bilinear | bicubic | "
                        "trilinear");
    QFX_TRY(AC, B.boolean(4));
    P.AlignCorners = *AC;
  }
  QFX_TRY(AA, B.boolean(6));
  if (*AA)
    return B.error(6, "anti-aliasing is not supported");
  QFX_TRY(X, B.tensor(0));
  llvm::ArrayRef<int64_t> In = (*X)->shape();
  if (In.size() != 4)
    return B.error(0, "expected a 4-d [N, C, H, W] tensor, got shape " +
                          formatShape(In));
  bool HasSize = !B.isNone(1), HasScale = !B.isNone(2);
  if (HasSize == HasScale)
    return B.error(HasSize ? 2 : 1,
                   HasSize ? "only one of size or scale_factor should be "
                             "defined"
                           : "either size or scale_factor should be defined");
  bool Recompute = false;
  if (!B.isNone(5)) {
    QFX_TRY(R, B.boolean(5));
    Recompute = *R;
  }
  if (HasSize) {
    if (Recompute)
      return B.error(5, "recompute_scale_factor is not meaningful with an "
                        "explicit size");
    QFX_TRY(S, spatialPair(B, 1));
    for (size_t K = 0; K < 2; ++K) {
      if ((*S)[K] != std::floor((*S)[K]))
        return B.error(1, "expected integer sizes");
      P.Size[K] = static_cast<int64_t>((*S)[K]);
    }
    return P;
  }
  QFX_TRY(S, spatialPair(B, 2));
  for (size_t K = 0; K < 2; ++K) {
    double F = (*S)[K];
    if (!(F > 0.0) || !std::isfinite(F))
      return B.error(2, "scale factors must be positive and finite");
    // floor(float(in) * scale) in double, as F.interpolate and
    // compute_output_size compute it.
    double O = std::floor(double(In[2 + K]) * F);
    if (O > double(int64_t(1) << 40))
      return B.error(2, "the output size is too large");
    P.Size[K] = static_cast<int64_t>(O);
    if (!Recompute)
      P.Scales[K] = F;
  }
  return P;
}

llvm::Expected<NarrowParams> qfx::narrowParams(const BoundArgs &B) {
  QFX_TRY(X, B.tensor(0));
  QFX_TRY(Dim, B.integer(1));
  QFX_TRY(Start, B.integer(2));
  QFX_TRY(Length, B.integer(3));
  auto S = ref::narrowShape((*X)->shape(), *Dim, *Start, *Length);
  if (!S)
    return S.takeError();
  NarrowParams P;
  P.Dim = *Dim < 0 ? *Dim + (*X)->rank() : *Dim;
  P.Start = *Start < 0 ? *Start + (*X)->dim(P.Dim) : *Start;
  P.Length = *Length;
  return P;
}

//===----------------------------------------------------------------------===//
// The entries
//===----------------------------------------------------------------------===//

std::vector<OpDef> qfx::arithOpDefs() {
  using P = OpParam;
  return {
      {"div",
       true,
       true,
       {P{"input"}, P{"other"}, P{"rounding_mode", None()}},
       inferDiv,
       runDiv},
      {"embedding",
       true,
       false,
       {P{"input"}, P{"weight"}, P{"padding_idx", None()},
        P{"max_norm", None()}, P{"norm_type", F64(2.0)},
        P{"scale_grad_by_freq", Bool(false)}, P{"sparse", Bool(false)}},
       inferEmbedding,
       runEmbedding},
      {"interpolate",
       true,
       false,
       {P{"input"}, P{"size", None()}, P{"scale_factor", None()},
        P{"mode", Str("nearest")}, P{"align_corners", None()},
        P{"recompute_scale_factor", None()}, P{"antialias", Bool(false)}},
       inferInterpolate,
       runInterpolate},
      {"narrow",
       true,
       true,
       {P{"input"}, P{"dim"}, P{"start"}, P{"length"}},
       inferNarrow,
       runNarrow},
      {"neg", true, true, {P{"input"}}, inferUnary, runUnary<ref::neg>},
      {"reciprocal",
       true,
       true,
       {P{"input"}},
       inferUnary,
       runUnary<ref::reciprocal>},
      {"rsub",
       true,
       false,
       {P{"input"}, P{"other"}, P{"alpha", I64(1)}},
       inferArith,
       runRsub},
      {"sub",
       true,
       true,
       {P{"input"}, P{"other"}, P{"alpha", I64(1)}},
       inferArith,
       runSub},
  };
}
