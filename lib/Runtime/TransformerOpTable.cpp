//===- TransformerOpTable.cpp - Op-table entries of the transformer ops ---===//
//
// Schemas follow PyTorch 1.13 (F.layer_norm, F.gelu, torch.matmul,
// torch.bmm, Tensor.expand, Tensor.select). expand has one qfx extension:
// batch_like, a tensor whose dimension 0 replaces size[0] whenever the op
// is typed or run, so a graph traced at one batch size (class_token
// .expand(N, -1, -1)) works at any.
//
//===----------------------------------------------------------------------===//

#include "TransformerOpTable.h"
#include "OpOperands.h"

#include "QuantKernels.h"
#include "TransformerKernels.h"

#include "qfx/Support/Error.h"

#include <cmath>

using namespace qfx;
using namespace qfx::operands;

namespace {

//===----------------------------------------------------------------------===//
// layer_norm
//===----------------------------------------------------------------------===//

struct LayerNormArgs {
  const Tensor *X, *W, *B;
  int64_t M;
  double Eps;
};

llvm::Expected<LayerNormArgs> layerNormArgs(const BoundArgs &B) {
  QFX_TRY(X, floatTensor(B, 0));
  QFX_TRY(Norm, B.ints(1));
  QFX_TRY(W, optFloatTensor(B, 2));
  QFX_TRY(Bias, optFloatTensor(B, 3));
  QFX_TRY(Eps, B.real(4));
  QFX_TRY(M, ref::layerNormSize((*X)->shape(), *Norm));
  for (size_t I : {size_t(2), size_t(3)}) {
    const Tensor *T = I == 2 ? *W : *Bias;
    if (T && T->shape() != llvm::ArrayRef<int64_t>(*Norm))
      return B.error(I, "expected shape " + formatShape(*Norm) + ", got " +
                            formatShape(T->shape()));
  }
  return LayerNormArgs{*X, *W, *Bias, *M, *Eps};
}

llvm::Expected<TensorType> inferLayerNorm(const BoundArgs &B) {
  QFX_TRY(A, layerNormArgs(B));
  return f32Type(A->X->shape());
}

llvm::Expected<Tensor> runLayerNorm(const BoundArgs &B) {
  QFX_TRY(A, layerNormArgs(B));
  return ref::layerNorm(*A->X, A->M, A->W, A->B, A->Eps);
}

//===----------------------------------------------------------------------===//
// gelu
//===----------------------------------------------------------------------===//

llvm::Expected<bool> geluIsTanh(const BoundArgs &B) {
  const Operand &O = B.operand(1);
  if (O.isTensor() || O.isList() || !O.arg().isString())
    return B.error(1, "expected a string");
  const std::string &S = O.arg().getString();
  if (S != "none" && S != "tanh")
    return B.error(1, "expected 'none' or 'tanh', got '" + S + "'");
  return S == "tanh";
}

llvm::Expected<TensorType> inferGelu(const BoundArgs &B) {
  QFX_TRY(X, floatTensor(B, 0));
  QFX_TRY(Tanh, geluIsTanh(B));
  (void)*Tanh;
  return f32Type((*X)->shape());
}

llvm::Expected<Tensor> runGelu(const BoundArgs &B) {
  QFX_TRY(X, floatTensor(B, 0));
  QFX_TRY(Tanh, geluIsTanh(B));
  return ref::gelu(**X, *Tanh);
}

//===----------------------------------------------------------------------===//
// matmul, bmm
//===----------------------------------------------------------------------===//

template <bool Batched>
llvm::Expected<TensorType> inferMatmul(const BoundArgs &B) {
  QFX_TRY(X, floatTensor(B, 0));
  QFX_TRY(Y, floatTensor(B, 1));
  QFX_TRY(S, Batched ? ref::bmmShape((*X)->shape(), (*Y)->shape())
                     : ref::matmulShape((*X)->shape(), (*Y)->shape()));
  return f32Type(*S);
}

template <bool Batched> llvm::Expected<Tensor> runMatmul(const BoundArgs &B) {
  QFX_TRY(T, inferMatmul<Batched>(B));
  (void)*T;
  return ref::matmul(B.operand(0).tensor(), B.operand(1).tensor());
}

//===----------------------------------------------------------------------===//
// expand, select
//===----------------------------------------------------------------------===//

/// expand's requested sizes, size[0] taken from batch_like when given.
llvm::Expected<std::vector<int64_t>> expandSizes(const BoundArgs &B) {
  QFX_TRY(Sizes, B.ints(1));
  if (B.isNone(2))
    return *Sizes;
  QFX_TRY(Like, B.tensor(2));
  if (Sizes->empty() || (*Like)->rank() == 0)
    return B.error(2, "needs a non-empty size and a tensor of rank >= 1");
  (*Sizes)[0] = (*Like)->dim(0);
  return *Sizes;
}

llvm::Expected<TensorType> inferExpand(const BoundArgs &B) {
  QFX_TRY(X, valueTensor(B, 0));
  QFX_TRY(Sizes, expandSizes(B));
  QFX_TRY(S, ref::expandShape((*X)->shape(), *Sizes));
  return likeInput(**X, *S);
}

llvm::Expected<Tensor> runExpand(const BoundArgs &B) {
  QFX_TRY(T, inferExpand(B));
  return ref::expand(B.operand(0).tensor(), T->Dims);
}

llvm::Expected<TensorType> inferSelect(const BoundArgs &B) {
  QFX_TRY(X, valueTensor(B, 0));
  QFX_TRY(Dim, B.integer(1));
  QFX_TRY(Index, B.integer(2));
  QFX_TRY(S, ref::selectSpec((*X)->shape(), *Dim, *Index));
  return likeInput(**X, S->Out);
}

llvm::Expected<Tensor> runSelect(const BoundArgs &B) {
  QFX_TRY(T, inferSelect(B));
  return ref::select(B.operand(0).tensor(), *B.integer(1), *B.integer(2));
}

//===----------------------------------------------------------------------===//
// Quantized forms (PyTorch 1.13's quantized::matmul and quantized::layer_norm
// semantics: dequantize, compute in f32, requantize to the output qparams;
// layer_norm keeps its weight and bias in f32).
//===----------------------------------------------------------------------===//

llvm::Expected<const Tensor *> qActivation(const BoundArgs &B, size_t I) {
  QFX_TRY(T, B.tensor(I));
  if (!qref::isQuantizedActivation(**T))
    return B.error(I, "expected a u8 or s8 tensor with per-tensor qparams, "
                      "got " +
                          qref::describe(**T));
  return *T;
}

/// The output qparams at operands \p I (scale) and \p I + 1 (zero point).
llvm::Expected<QuantParams> qOutput(const BoundArgs &B, size_t I, DType T) {
  QFX_TRY(S, B.real(I));
  QFX_TRY(Z, B.integer(I + 1));
  if (!(*S > 0.0) || !std::isfinite(*S))
    return B.error(I, "expected a positive finite scale, got " +
                          std::to_string(*S));
  if (*Z < qref::quantMin(T) || *Z > qref::quantMax(T))
    return B.error(I + 1, "zero point " + llvm::Twine(*Z) +
                              " out of range for " + dtypeName(T));
  return QuantParams::perTensor(*S, *Z);
}

llvm::Expected<TensorType> inferQMatmul(const BoundArgs &B) {
  QFX_TRY(X, qActivation(B, 0));
  QFX_TRY(Y, qActivation(B, 1));
  if ((*X)->dtype() != (*Y)->dtype())
    return B.error(1, "expected " + dtypeName((*X)->dtype()) + ", got " +
                          dtypeName((*Y)->dtype()));
  QFX_TRY(S, ref::matmulShape((*X)->shape(), (*Y)->shape()));
  QFX_TRY(Q, qOutput(B, 2, (*X)->dtype()));
  return TensorType{(*X)->dtype(), *S, *Q};
}

llvm::Expected<Tensor> runQMatmul(const BoundArgs &B) {
  QFX_TRY(T, inferQMatmul(B));
  Tensor Y = ref::matmul(qref::dequantize(B.operand(0).tensor()),
                         qref::dequantize(B.operand(1).tensor()));
  return qref::quantizePerTensor(Y, T->Quant.Scale, T->Quant.ZeroPoint,
                                 T->Dtype);
}

llvm::Expected<TensorType> inferQLayerNorm(const BoundArgs &B) {
  QFX_TRY(X, qActivation(B, 0));
  QFX_TRY(Norm, B.ints(1));
  QFX_TRY(W, optFloatTensor(B, 2));
  QFX_TRY(Bias, optFloatTensor(B, 3));
  QFX_TRY(Eps, B.real(4));
  (void)*Eps;
  QFX_TRY(M, ref::layerNormSize((*X)->shape(), *Norm));
  for (const Tensor *T : {*W, *Bias})
    if (T && T->numElements() != *M)
      return B.error(T == *W ? 2 : 3, "expected shape " + formatShape(*Norm) +
                                          ", got " + formatShape(T->shape()));
  QFX_TRY(Q, qOutput(B, 5, (*X)->dtype()));
  return TensorType{(*X)->dtype(),
                    Shape((*X)->shape().begin(), (*X)->shape().end()), *Q};
}

llvm::Expected<Tensor> runQLayerNorm(const BoundArgs &B) {
  QFX_TRY(T, inferQLayerNorm(B));
  const Tensor &X = B.operand(0).tensor();
  int64_t M = *ref::layerNormSize(X.shape(), *B.ints(1));
  Tensor Y = ref::layerNorm(qref::dequantize(X), M, *optFloatTensor(B, 2),
                            *optFloatTensor(B, 3), *B.real(4));
  return qref::quantizePerTensor(Y, T->Quant.Scale, T->Quant.ZeroPoint,
                                 T->Dtype);
}

using P = OpParam;

Argument F64(double V) { return Argument::real(V); }
Argument None() { return Argument::none(); }

} // namespace

std::vector<OpDef> qfx::transformerOpDefs() {
  std::vector<OpDef> T = {
      {"bmm",
       true,
       true,
       {P{"input"}, P{"mat2"}},
       inferMatmul<true>,
       runMatmul<true>},
      {"expand",
       false,
       true,
       {P{"input"}, P{"size"}, P{"batch_like", None()}},
       inferExpand,
       runExpand},
      {"gelu",
       true,
       false,
       {P{"input"}, P{"approximate", Argument::string("none")}},
       inferGelu,
       runGelu},
      {"layer_norm",
       true,
       false,
       {P{"input"}, P{"normalized_shape"}, P{"weight", None()},
        P{"bias", None()}, P{"eps", F64(1e-5)}},
       inferLayerNorm,
       runLayerNorm},
      {"matmul",
       true,
       true,
       {P{"input"}, P{"other"}},
       inferMatmul<false>,
       runMatmul<false>},
      {"quantized_layer_norm",
       true,
       false,
       {P{"input"}, P{"normalized_shape"}, P{"weight", None()},
        P{"bias", None()}, P{"eps", F64(1e-5)}, P{"scale"}, P{"zero_point"}},
       inferQLayerNorm,
       runQLayerNorm},
      {"quantized_matmul",
       true,
       false,
       {P{"input"}, P{"other"}, P{"scale"}, P{"zero_point"}},
       inferQMatmul,
       runQMatmul},
      {"select",
       true,
       true,
       {P{"input"}, P{"dim"}, P{"index"}},
       inferSelect,
       runSelect},
  };
  return T;
}
