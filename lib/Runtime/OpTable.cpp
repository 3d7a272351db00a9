//===- OpTable.cpp - Schemas, type inference and kernels of every op ------===//
//
// One entry per op, sorted by name (lookupOp binary-searches). Schemas
// follow torch.nn.functional's signatures so that kwargs recorded from
// PyTorch-style code bind the same way. The quantized entries live in
// QuantOpTable.cpp; the ops that share their input's qparams (pooling,
// reshapes, relu, clamps, mean, dropout) also run on u8 / s8 tensors here.
//
//===----------------------------------------------------------------------===//

#include "ArithOps.h"
#include "ConvFamilyOpTable.h"
#include "OpOperands.h"
#include "QuantKernels.h"
#include "TransformerOpTable.h"

#include "qfx/Backend/OneDNN/FloatKernels.h"
#include "qfx/Runtime/Kernels.h"
#include "qfx/Runtime/Op.h"
#include "qfx/Support/Error.h"

#include "llvm/ADT/STLExtras.h"

#include <mutex>
#include <random>

using namespace qfx;
using namespace qfx::operands;

namespace {

bool isQuantized(const Tensor &X) { return X.dtype() != DType::F32; }

std::optional<llvm::ArrayRef<int64_t>> optShape(const Tensor *T) {
  if (!T)
    return std::nullopt;
  return T->shape();
}

Argument I64(int64_t V) { return Argument::integer(V); }
Argument F64(double V) { return Argument::real(V); }
Argument Bool(bool V) { return Argument::boolean(V); }
Argument None() { return Argument::none(); }

//===----------------------------------------------------------------------===//
// Unary element-wise ops share one inference function.
//===----------------------------------------------------------------------===//

llvm::Expected<TensorType> inferUnary(const BoundArgs &B) {
  QFX_TRY(X, floatTensor(B, 0));
  return f32Type((*X)->shape());
}

template <Tensor (*Fn)(const Tensor &)>
llvm::Expected<Tensor> runUnary(const BoundArgs &B) {
  QFX_TRY(X, floatTensor(B, 0));
  return Fn(**X);
}

llvm::Expected<Tensor> runIdentity(const BoundArgs &B) {
  QFX_TRY(X, B.tensor(0));
  return **X;
}

llvm::Expected<TensorType> inferIdentity(const BoundArgs &B) {
  QFX_TRY(X, B.tensor(0));
  return TensorType{(*X)->dtype(),
                    Shape((*X)->shape().begin(), (*X)->shape().end()),
                    (*X)->quant()};
}

/// relu, relu6 and hardtanh also clamp quantized tensors, in the integer
/// domain: relu at the zero point, the others at their bounds quantized with
/// the input's qparams.
llvm::Expected<TensorType> inferClamp(const BoundArgs &B) {
  QFX_TRY(X, valueTensor(B, 0));
  return likeInput(**X, (*X)->shape());
}

llvm::Expected<Tensor> runRelu(const BoundArgs &B) {
  QFX_TRY(X, valueTensor(B, 0));
  return isQuantized(**X) ? qref::relu(**X) : ref::relu(**X);
}

llvm::Expected<Tensor> runRelu6(const BoundArgs &B) {
  QFX_TRY(X, valueTensor(B, 0));
  return isQuantized(**X) ? qref::clamp(**X, 0.0, 6.0) : ref::relu6(**X);
}

llvm::Expected<Tensor> runHardtanh(const BoundArgs &B) {
  QFX_TRY(X, valueTensor(B, 0));
  QFX_TRY(Lo, B.real(1));
  QFX_TRY(Hi, B.real(2));
  if (isQuantized(**X))
    return qref::clamp(**X, *Lo, *Hi);
  return ref::hardtanh(**X, *Lo, *Hi);
}

llvm::Expected<Tensor> runLeakyRelu(const BoundArgs &B) {
  QFX_TRY(X, floatTensor(B, 0));
  QFX_TRY(Slope, B.real(1));
  return ref::leakyRelu(**X, *Slope);
}

//===----------------------------------------------------------------------===//
// conv2d, linear, batch_norm
//===----------------------------------------------------------------------===//

llvm::Expected<ref::Conv2dParams> convParams(const BoundArgs &B) {
  ref::Conv2dParams P;
  QFX_TRY(S, B.pair(3));
  QFX_TRY(Pad, B.pair(4));
  QFX_TRY(D, B.pair(5));
  QFX_TRY(G, B.integer(6));
  P.Stride = *S;
  P.Padding = *Pad;
  P.Dilation = *D;
  P.Groups = *G;
  return P;
}

llvm::Expected<TensorType> inferConv2d(const BoundArgs &B) {
  QFX_TRY(X, floatTensor(B, 0));
  QFX_TRY(W, floatTensor(B, 1));
  QFX_TRY(Bias, optFloatTensor(B, 2));
  QFX_TRY(P, convParams(B));
  QFX_TRY(S,
          ref::conv2dShape((*X)->shape(), (*W)->shape(), optShape(*Bias), *P));
  return f32Type(*S);
}

llvm::Expected<Tensor> runConv2d(const BoundArgs &B) {
  QFX_TRY(T, inferConv2d(B));
  QFX_TRY(P, convParams(B));
  const Tensor &X = B.operand(0).tensor();
  const Tensor &W = B.operand(1).tensor();
  const Tensor *Bias = B.isNone(2) ? nullptr : &B.operand(2).tensor();
  if (kernelMode() == KernelMode::OneDNN)
    return onednn::conv2d(X, W, Bias, *P);
  return ref::conv2d(X, W, Bias, *P);
}

llvm::Expected<TensorType> inferLinear(const BoundArgs &B) {
  QFX_TRY(X, floatTensor(B, 0));
  QFX_TRY(W, floatTensor(B, 1));
  QFX_TRY(Bias, optFloatTensor(B, 2));
  QFX_TRY(S, ref::linearShape((*X)->shape(), (*W)->shape(), optShape(*Bias)));
  return f32Type(*S);
}

llvm::Expected<Tensor> runLinear(const BoundArgs &B) {
  QFX_TRY(T, inferLinear(B));
  const Tensor &X = B.operand(0).tensor();
  const Tensor &W = B.operand(1).tensor();
  const Tensor *Bias = B.isNone(2) ? nullptr : &B.operand(2).tensor();
  if (kernelMode() == KernelMode::OneDNN)
    return onednn::linear(X, W, Bias);
  return ref::linear(X, W, Bias);
}

llvm::Expected<TensorType> inferBatchNorm(const BoundArgs &B) {
  QFX_TRY(X, floatTensor(B, 0));
  QFX_TRY(Mean, floatTensor(B, 1));
  QFX_TRY(Var, floatTensor(B, 2));
  QFX_TRY(W, optFloatTensor(B, 3));
  QFX_TRY(Bias, optFloatTensor(B, 4));
  QFX_TRY(Training, B.boolean(5));
  if (*Training)
    return B.error(5, "batch statistics (training mode) are not supported "
                      "by the float runtime yet");
  int64_t C = (*Mean)->numElements();
  for (const Tensor *T : {*Mean, *Var, *W, *Bias})
    if (T && (T->rank() != 1 || T->numElements() != C))
      return B.error(1, "statistics and affine parameters must all be [" +
                            llvm::Twine(C) + "]");
  QFX_TRY(S, ref::batchNormShape((*X)->shape(), C));
  return f32Type(*S);
}

llvm::Expected<Tensor> runBatchNorm(const BoundArgs &B) {
  QFX_TRY(T, inferBatchNorm(B));
  QFX_TRY(Eps, B.real(7));
  auto Opt = [&](size_t I) {
    return B.isNone(I) ? nullptr : &B.operand(I).tensor();
  };
  return ref::batchNorm(B.operand(0).tensor(), B.operand(1).tensor(),
                        B.operand(2).tensor(), Opt(3), Opt(4), *Eps);
}

//===----------------------------------------------------------------------===//
// Pooling
//===----------------------------------------------------------------------===//

/// max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1,
/// ceil_mode=False) and avg_pool2d(input, kernel_size, stride=None,
/// padding=0, ceil_mode=False, count_include_pad=True,
/// divisor_override=None): stride defaults to the kernel size.
llvm::Expected<ref::Pool2dParams> poolParams(const BoundArgs &B, bool IsMax) {
  ref::Pool2dParams P;
  QFX_TRY(K, B.pair(1));
  P.Kernel = *K;
  P.Stride = *K;
  if (!B.isNone(2)) {
    auto S = B.ints(2);
    if (!S)
      return S.takeError();
    if (!S->empty()) { // torch accepts stride=[] as "same as kernel"
      QFX_TRY(S2, B.pair(2));
      P.Stride = *S2;
    }
  }
  QFX_TRY(Pad, B.pair(3));
  P.Padding = *Pad;
  if (IsMax) {
    QFX_TRY(D, B.pair(4));
    QFX_TRY(Ceil, B.boolean(5));
    P.Dilation = *D;
    P.CeilMode = *Ceil;
    return P;
  }
  QFX_TRY(Ceil, B.boolean(4));
  QFX_TRY(Count, B.boolean(5));
  P.CeilMode = *Ceil;
  P.CountIncludePad = *Count;
  if (!B.isNone(6)) {
    QFX_TRY(Div, B.integer(6));
    if (*Div == 0)
      return B.error(6, "divisor must not be zero");
    P.DivisorOverride = *Div;
  }
  return P;
}

template <bool IsMax> llvm::Expected<TensorType> inferPool(const BoundArgs &B) {
  QFX_TRY(X, valueTensor(B, 0));
  QFX_TRY(P, poolParams(B, IsMax));
  QFX_TRY(S, ref::pool2dShape((*X)->shape(), *P));
  return likeInput(**X, *S);
}

template <bool IsMax> llvm::Expected<Tensor> runPool(const BoundArgs &B) {
  QFX_TRY(T, inferPool<IsMax>(B));
  QFX_TRY(P, poolParams(B, IsMax));
  const Tensor &X = B.operand(0).tensor();
  if (isQuantized(X))
    return IsMax ? qref::maxPool2d(X, *P) : qref::avgPool2d(X, *P);
  bool Fast =
      kernelMode() == KernelMode::OneDNN && onednn::supportsPool2d(*P, IsMax);
  if (IsMax)
    return Fast ? onednn::maxPool2d(X, *P) : ref::maxPool2d(X, *P);
  return Fast ? onednn::avgPool2d(X, *P) : ref::avgPool2d(X, *P);
}

llvm::Expected<std::array<int64_t, 2>> adaptiveSize(const BoundArgs &B) {
  return B.pair(1);
}

llvm::Expected<TensorType> inferAdaptiveAvgPool(const BoundArgs &B) {
  QFX_TRY(X, valueTensor(B, 0));
  QFX_TRY(O, adaptiveSize(B));
  QFX_TRY(S, ref::adaptivePool2dShape((*X)->shape(), *O));
  return likeInput(**X, *S);
}

llvm::Expected<Tensor> runAdaptiveAvgPool(const BoundArgs &B) {
  QFX_TRY(T, inferAdaptiveAvgPool(B));
  QFX_TRY(O, adaptiveSize(B));
  if (isQuantized(B.operand(0).tensor()))
    return qref::adaptiveAvgPool2d(B.operand(0).tensor(), *O);
  return ref::adaptiveAvgPool2d(B.operand(0).tensor(), *O);
}

//===----------------------------------------------------------------------===//
// Binary arithmetic: tensor (op) tensor with broadcasting, or tensor (op)
// scalar.
//===----------------------------------------------------------------------===//

llvm::Expected<TensorType> inferBinary(const BoundArgs &B) {
  QFX_TRY(X, floatTensor(B, 0));
  if (!B.operand(1).isTensor()) {
    QFX_TRY(S, B.real(1));
    (void)*S;
    return f32Type((*X)->shape());
  }
  QFX_TRY(Y, floatTensor(B, 1));
  QFX_TRY(S, ref::broadcastShape((*X)->shape(), (*Y)->shape()));
  return f32Type(*S);
}

llvm::Expected<Tensor> runAdd(const BoundArgs &B) {
  QFX_TRY(T, inferBinary(B));
  QFX_TRY(Alpha, B.real(2));
  const Tensor &X = B.operand(0).tensor();
  if (!B.operand(1).isTensor()) {
    QFX_TRY(S, B.real(1));
    return ref::addScalar(X, *S * *Alpha);
  }
  return ref::add(X, B.operand(1).tensor(), *Alpha);
}

llvm::Expected<Tensor> runMul(const BoundArgs &B) {
  QFX_TRY(T, inferBinary(B));
  const Tensor &X = B.operand(0).tensor();
  if (!B.operand(1).isTensor()) {
    QFX_TRY(S, B.real(1));
    return ref::mulScalar(X, *S);
  }
  return ref::mul(X, B.operand(1).tensor());
}

//===----------------------------------------------------------------------===//
// Shape ops
//===----------------------------------------------------------------------===//

llvm::Expected<TensorType> inferCat(const BoundArgs &B) {
  QFX_TRY(Ts, B.tensorList(0));
  QFX_TRY(Dim, B.integer(1));
  std::vector<Shape> Shapes;
  for (size_t I = 0; I < Ts->size(); ++I) {
    if ((*Ts)[I].dtype() != DType::F32)
      return B.error(0, "expected f32 tensors, element " + llvm::Twine(I) +
                            " is " + dtypeName((*Ts)[I].dtype()));
    Shapes.emplace_back((*Ts)[I].shape().begin(), (*Ts)[I].shape().end());
  }
  QFX_TRY(S, ref::catShape(Shapes, *Dim));
  return f32Type(*S);
}

llvm::Expected<Tensor> runCat(const BoundArgs &B) {
  QFX_TRY(T, inferCat(B));
  QFX_TRY(Ts, B.tensorList(0));
  QFX_TRY(Dim, B.integer(1));
  return ref::cat(*Ts, *Dim);
}

// Views share storage and keep the input's qparams (Tensor::reshaped).
llvm::Expected<TensorType> inferFlatten(const BoundArgs &B) {
  QFX_TRY(X, valueTensor(B, 0));
  QFX_TRY(Start, B.integer(1));
  QFX_TRY(End, B.integer(2));
  QFX_TRY(S, ref::flattenShape((*X)->shape(), *Start, *End));
  return likeInput(**X, *S);
}

llvm::Expected<Tensor> runFlatten(const BoundArgs &B) {
  QFX_TRY(T, inferFlatten(B));
  return ref::reshape(B.operand(0).tensor(), T->Dims);
}

llvm::Expected<TensorType> inferReshape(const BoundArgs &B) {
  QFX_TRY(X, valueTensor(B, 0));
  QFX_TRY(Req, B.ints(1));
  QFX_TRY(S, ref::reshapeShape((*X)->shape(), *Req));
  return likeInput(**X, *S);
}

llvm::Expected<Tensor> runReshape(const BoundArgs &B) {
  QFX_TRY(T, inferReshape(B));
  return ref::reshape(B.operand(0).tensor(), T->Dims);
}

llvm::Expected<TensorType> inferPermute(const BoundArgs &B) {
  QFX_TRY(X, valueTensor(B, 0));
  QFX_TRY(Dims, B.ints(1));
  QFX_TRY(S, ref::permuteShape((*X)->shape(), *Dims));
  return likeInput(**X, *S);
}

llvm::Expected<Tensor> runPermute(const BoundArgs &B) {
  QFX_TRY(T, inferPermute(B));
  QFX_TRY(Dims, B.ints(1));
  Tensor R = ref::permute(B.operand(0).tensor(), *Dims);
  R.setQuant(T->Quant);
  return R;
}

llvm::Expected<TensorType> inferTranspose(const BoundArgs &B) {
  QFX_TRY(X, valueTensor(B, 0));
  QFX_TRY(D0, B.integer(1));
  QFX_TRY(D1, B.integer(2));
  QFX_TRY(S, ref::transposeShape((*X)->shape(), *D0, *D1));
  return likeInput(**X, *S);
}

llvm::Expected<Tensor> runTranspose(const BoundArgs &B) {
  QFX_TRY(T, inferTranspose(B));
  Tensor R = ref::transpose(B.operand(0).tensor(), B.operand(1).arg().getInt(),
                            B.operand(2).arg().getInt());
  R.setQuant(T->Quant);
  return R;
}

llvm::Expected<TensorType> inferMean(const BoundArgs &B) {
  QFX_TRY(X, valueTensor(B, 0));
  QFX_TRY(Dims, B.ints(1));
  QFX_TRY(Keep, B.boolean(2));
  QFX_TRY(S, ref::meanShape((*X)->shape(), *Dims, *Keep));
  return likeInput(**X, *S);
}

llvm::Expected<Tensor> runMean(const BoundArgs &B) {
  QFX_TRY(T, inferMean(B));
  QFX_TRY(Dims, B.ints(1));
  const Tensor &X = B.operand(0).tensor();
  if (isQuantized(X))
    return qref::mean(X, *Dims, B.operand(2).arg().getBool());
  return ref::mean(X, *Dims, B.operand(2).arg().getBool());
}

llvm::Expected<TensorType> inferSoftmax(const BoundArgs &B) {
  QFX_TRY(X, floatTensor(B, 0));
  QFX_TRY(Dim, B.integer(1));
  QFX_TRY(D, ref::normalizeDim(*Dim, (*X)->rank()));
  return f32Type((*X)->shape());
}

llvm::Expected<Tensor> runSoftmax(const BoundArgs &B) {
  QFX_TRY(T, inferSoftmax(B));
  return ref::softmax(B.operand(0).tensor(), B.operand(1).arg().getInt());
}

//===----------------------------------------------------------------------===//
// dropout: identity in eval; in training, a seeded Bernoulli mask so runs
// are reproducible.
//===----------------------------------------------------------------------===//

llvm::Expected<TensorType> inferDropout(const BoundArgs &B) {
  QFX_TRY(X, valueTensor(B, 0));
  QFX_TRY(P, B.real(1));
  QFX_TRY(Training, B.boolean(2));
  if (*P < 0.0 || *P > 1.0)
    return B.error(1,
                   "probability must be in [0, 1], got " + std::to_string(*P));
  if (*Training && isQuantized(**X))
    return B.error(0, "training mode needs an f32 tensor, got " +
                          dtypeName((*X)->dtype()));
  return likeInput(**X, (*X)->shape());
}

llvm::Expected<Tensor> runDropout(const BoundArgs &B) {
  QFX_TRY(T, inferDropout(B));
  double P = *B.real(1);
  const Tensor &X = B.operand(0).tensor();
  if (!B.operand(2).arg().getBool() || P == 0.0)
    return X;
  static std::mutex Lock;
  static std::mt19937_64 Gen(0x9e3779b97f4a7c15ULL);
  std::lock_guard<std::mutex> Guard(Lock);
  std::bernoulli_distribution Keep(1.0 - P);
  Tensor R(DType::F32, X.shape());
  float Scale = P < 1.0 ? static_cast<float>(1.0 / (1.0 - P)) : 0.0f;
  for (int64_t I = 0; I < X.numElements(); ++I)
    R.data<float>()[I] = Keep(Gen) ? X.data<float>()[I] * Scale : 0.0f;
  return R;
}

//===----------------------------------------------------------------------===//
// The table: the entries below merged with the quantized ones, sorted by
// name.
//===----------------------------------------------------------------------===//

using P = OpParam;

const std::vector<OpDef> &table() {
  static const std::vector<OpDef> Ops = [] {
    std::vector<OpDef> T = {
        {"adaptive_avg_pool2d",
         true,
         false,
         {P{"input"}, P{"output_size"}},
         inferAdaptiveAvgPool,
         runAdaptiveAvgPool},
        {"add",
         true,
         true,
         {P{"input"}, P{"other"}, P{"alpha", I64(1)}},
         inferBinary,
         runAdd},
        {"avg_pool2d",
         true,
         false,
         {P{"input"}, P{"kernel_size"}, P{"stride", None()},
          P{"padding", I64(0)}, P{"ceil_mode", Bool(false)},
          P{"count_include_pad", Bool(true)}, P{"divisor_override", None()}},
         inferPool<false>,
         runPool<false>},
        {"batch_norm",
         true,
         false,
         {P{"input"}, P{"running_mean"}, P{"running_var"}, P{"weight", None()},
          P{"bias", None()}, P{"training", Bool(false)},
          P{"momentum", F64(0.1)}, P{"eps", F64(1e-5)}},
         inferBatchNorm,
         runBatchNorm},
        {"cat",
         true,
         false,
         {P{"tensors"}, P{"dim", I64(0)}},
         inferCat,
         runCat},
        {"contiguous", false, true, {P{"input"}}, inferIdentity, runIdentity},
        {"conv2d",
         true,
         false,
         {P{"input"}, P{"weight"}, P{"bias", None()}, P{"stride", I64(1)},
          P{"padding", I64(0)}, P{"dilation", I64(1)}, P{"groups", I64(1)}},
         inferConv2d,
         runConv2d},
        {"dropout",
         true,
         false,
         {P{"input"}, P{"p", F64(0.5)}, P{"training", Bool(false)}},
         inferDropout,
         runDropout},
        {"flatten",
         true,
         true,
         {P{"input"}, P{"start_dim", I64(0)}, P{"end_dim", I64(-1)}},
         inferFlatten,
         runFlatten},
        {"hardsigmoid",
         true,
         false,
         {P{"input"}},
         inferUnary,
         runUnary<ref::hardsigmoid>},
        {"hardswish",
         true,
         false,
         {P{"input"}},
         inferUnary,
         runUnary<ref::hardswish>},
        {"hardtanh",
         true,
         false,
         {P{"input"}, P{"min_val", F64(-1.0)}, P{"max_val", F64(1.0)}},
         inferClamp,
         runHardtanh},
        {"identity", true, false, {P{"input"}}, inferIdentity, runIdentity},
        {"leaky_relu",
         true,
         false,
         {P{"input"}, P{"negative_slope", F64(0.01)}},
         inferUnary,
         runLeakyRelu},
        {"linear",
         true,
         false,
         {P{"input"}, P{"weight"}, P{"bias", None()}},
         inferLinear,
         runLinear},
        {"max_pool2d",
         true,
         false,
         {P{"input"}, P{"kernel_size"}, P{"stride", None()},
          P{"padding", I64(0)}, P{"dilation", I64(1)},
          P{"ceil_mode", Bool(false)}},
         inferPool<true>,
         runPool<true>},
        {"mean",
         true,
         true,
         {P{"input"}, P{"dim"}, P{"keepdim", Bool(false)}},
         inferMean,
         runMean},
        {"mul", true, true, {P{"input"}, P{"other"}}, inferBinary, runMul},
        {"permute",
         false,
         true,
         {P{"input"}, P{"dims"}},
         inferPermute,
         runPermute},
        {"relu", true, true, {P{"input"}}, inferClamp, runRelu},
        {"relu6", true, false, {P{"input"}}, inferClamp, runRelu6},
        {"reshape",
         false,
         true,
         {P{"input"}, P{"shape"}},
         inferReshape,
         runReshape},
        {"sigmoid",
         true,
         true,
         {P{"input"}},
         inferUnary,
         runUnary<ref::sigmoid>},
        {"silu", true, false, {P{"input"}}, inferUnary, runUnary<ref::silu>},
        {"softmax",
         true,
         true,
         {P{"input"}, P{"dim"}},
         inferSoftmax,
         runSoftmax},
        {"tanh", true, true, {P{"input"}}, inferUnary, runUnary<ref::tanh>},
        {"transpose",
         false,
         true,
         {P{"input"}, P{"dim0"}, P{"dim1"}},
         inferTranspose,
         runTranspose},
        {"view",
         false,
         true,
         {P{"input"}, P{"shape"}},
         inferReshape,
         runReshape},
    };
    std::vector<OpDef> Q = quantizedOpDefs();
    T.insert(T.end(), Q.begin(), Q.end());
    // arith family: sub, div, interpolate, embedding, narrow (ArithOpTable).
    std::vector<OpDef> Arith = arithOpDefs();
    T.insert(T.end(), Arith.begin(), Arith.end());
    // Conv family (conv1d, quantized_conv1d[_relu]).
    std::vector<OpDef> CF = convFamilyOpDefs();
    T.insert(T.end(), CF.begin(), CF.end());
    // Transformer ops (layer_norm, gelu, matmul, expand, select ...).
    std::vector<OpDef> Tr = transformerOpDefs();
    T.insert(T.end(), Tr.begin(), Tr.end());
    auto ByName = [](const OpDef &A, const OpDef &B) {
      return llvm::StringRef(A.Name) < B.Name;
    };
    llvm::sort(T, ByName);
    assert(std::adjacent_find(T.begin(), T.end(),
                              [](const OpDef &A, const OpDef &B) {
                                return llvm::StringRef(A.Name) == B.Name;
                              }) == T.end() &&
           "op names must be unique");
    return T;
  }();
  return Ops;
}

} // namespace

llvm::Expected<ref::Conv2dParams> qfx::conv2dParams(const BoundArgs &B) {
  return convParams(B);
}

llvm::Expected<ref::Pool2dParams> qfx::pool2dParams(const BoundArgs &B,
                                                    bool IsMax) {
  return poolParams(B, IsMax);
}

llvm::ArrayRef<OpDef> qfx::allOps() { return table(); }
