//===- QuantOpTable.cpp - Op-table entries of the quantized ops -----------===//
//
// quantize_per_tensor, dequantize and the quantized_* ops of the reference
// quantized graph (docs/quantization.md): schemas, type inference with
// quantization parameters, and the integer kernels of QuantKernels.cpp.
// OpTable.cpp merges these entries into the one sorted table.
//
//===----------------------------------------------------------------------===//

#include "QuantKernels.h"

#include "qfx/Runtime/Op.h"
#include "qfx/Support/Error.h"

#include <cmath>

using namespace qfx;
using namespace qfx::qref;

namespace {

#define QFX_TRY(Var, Expr)                                                     \
  auto Var = (Expr);                                                           \
  if (!Var)                                                                    \
    return Var.takeError();

/// The longest reduction whose int32 accumulator cannot overflow: every
/// product of centered 8-bit values is at most 255 * 255 in magnitude.
constexpr int64_t MaxReduction = 33025;

Argument I64(int64_t V) { return Argument::integer(V); }
Argument F64(double V) { return Argument::real(V); }
Argument Bool(bool V) { return Argument::boolean(V); }
Argument None() { return Argument::none(); }

TensorType quantizedType(DType T, llvm::ArrayRef<int64_t> S, double Scale,
                         int64_t ZeroPoint) {
  return TensorType{T, Shape(S.begin(), S.end()),
                    QuantParams::perTensor(Scale, ZeroPoint)};
}

/// A shape function's error, which names the float op, renamed to \p Op.
llvm::Error renamed(llvm::Error E, llvm::StringRef FloatOp,
                    llvm::StringRef Op) {
  std::string Msg = errorToString(std::move(E));
  llvm::StringRef M(Msg);
  if (M.consume_front(FloatOp) && M.startswith(":"))
    return makeError(Op + M);
  return makeError(Msg);
}

/// Fails unless \p Z fits the integer range of \p T.
llvm::Error checkZeroPoint(const BoundArgs &B, size_t I, int64_t Z, DType T) {
  if (Z < quantMin(T) || Z > quantMax(T))
    return B.error(I, "zero point " + llvm::Twine(Z) + " out of range for " +
                          dtypeName(T) + " [" + llvm::Twine(quantMin(T)) +
                          ", " + llvm::Twine(quantMax(T)) + "]");
  return llvm::Error::success();
}

/// A quantized activation: u8 or s8 with valid per-tensor qparams.
llvm::Expected<const Tensor *> activation(const BoundArgs &B, size_t I) {
  QFX_TRY(T, B.tensor(I));
  if (!isQuantizedActivation(**T))
    return B.error(I, "expected a u8 or s8 tensor with per-tensor qparams, "
                      "got " +
                          describe(**T));
  std::string Msg = (*T)->quant().validate((*T)->shape());
  if (!Msg.empty())
    return B.error(I, Msg);
  if (llvm::Error E =
          checkZeroPoint(B, I, (*T)->quant().ZeroPoint, (*T)->dtype()))
    return E;
  return *T;
}

/// An f32 operand, or nullptr for none when \p Optional.
llvm::Expected<const Tensor *> floatOperand(const BoundArgs &B, size_t I,
                                            bool Optional = false) {
  if (Optional && B.isNone(I))
    return nullptr;
  QFX_TRY(T, B.tensor(I));
  if ((*T)->dtype() != DType::F32)
    return B.error(I, "expected an f32 tensor, got " + describe(**T));
  return *T;
}

/// A quantized weight: s8 per tensor or per channel along axis 0, one
/// channel per output (dimension 0).
llvm::Expected<const Tensor *> weight(const BoundArgs &B, size_t I) {
  QFX_TRY(T, B.tensor(I));
  const QuantParams &Q = (*T)->quant();
  if ((*T)->dtype() != DType::S8 || Q.isNone())
    return B.error(I, "expected an s8 tensor with per-tensor or per-channel "
                      "qparams, got " +
                          describe(**T));
  if (Q.isPerChannel() && Q.Axis != 0)
    return B.error(I, "expected per-channel qparams on axis 0, got axis " +
                          llvm::Twine(Q.Axis));
  std::string Msg = Q.validate((*T)->shape());
  if (!Msg.empty())
    return B.error(I, Msg);
  return *T;
}

/// The output qparams at operands \p IS (scale) and \p IS + 1 (zero point)
/// for results of dtype \p T.
llvm::Expected<OutputQuant> outputQuant(const BoundArgs &B, size_t IS, DType T,
                                        bool Relu) {
  QFX_TRY(S, B.real(IS));
  QFX_TRY(Z, B.integer(IS + 1));
  if (!(*S > 0.0) || !std::isfinite(*S))
    return B.error(IS, "expected a positive finite scale, got " +
                           std::to_string(*S));
  if (llvm::Error E = checkZeroPoint(B, IS + 1, *Z, T))
    return E;
  return OutputQuant{*S, *Z, Relu};
}

llvm::Error checkReduction(const BoundArgs &B, size_t I, int64_t N) {
  if (N > MaxReduction)
    return B.error(I, "reductions of " + llvm::Twine(N) +
                          " products can overflow the int32 accumulator "
                          "(at most " +
                          llvm::Twine(MaxReduction) + ")");
  return llvm::Error::success();
}

std::optional<llvm::ArrayRef<int64_t>> optShape(const Tensor *T) {
  if (!T)
    return std::nullopt;
  return T->shape();
}

//===----------------------------------------------------------------------===//
// quantize_per_tensor, dequantize
//===----------------------------------------------------------------------===//

/// quantize_per_tensor's dtype argument: "quint8" -> u8, "qint8" -> s8.
llvm::Expected<DType> qdtype(const BoundArgs &B, size_t I) {
  const Operand &O = B.operand(I);
  if (O.kind() == Operand::Kind::Arg && O.arg().isString()) {
    if (O.arg().getString() == "quint8")
      return DType::U8;
    if (O.arg().getString() == "qint8")
      return DType::S8;
    return B.error(I, "expected \"quint8\" or \"qint8\", got \"" +
                          O.arg().getString() + "\"");
  }
  return B.error(I, "expected \"quint8\" or \"qint8\"");
}

llvm::Expected<TensorType> inferQuantize(const BoundArgs &B) {
  QFX_TRY(X, floatOperand(B, 0));
  QFX_TRY(T, qdtype(B, 3));
  QFX_TRY(Q, outputQuant(B, 1, *T, false));
  return quantizedType(*T, (*X)->shape(), Q->Scale, Q->ZeroPoint);
}

llvm::Expected<Tensor> runQuantize(const BoundArgs &B) {
  QFX_TRY(Ty, inferQuantize(B));
  return quantizePerTensor(B.operand(0).tensor(), Ty->Quant.Scale,
                           Ty->Quant.ZeroPoint, Ty->Dtype);
}

/// dequantize takes u8 / s8 / s32 with any qparams; an f32 tensor comes
/// back unchanged, as Tensor.dequantize() returns it.
llvm::Expected<TensorType> inferDequantize(const BoundArgs &B) {
  QFX_TRY(X, B.tensor(0));
  const Tensor &T = **X;
  Shape S(T.shape().begin(), T.shape().end());
  if (T.dtype() == DType::F32)
    return TensorType{DType::F32, S, {}};
  if ((!isQuantizedDType(T.dtype()) && T.dtype() != DType::S32) ||
      T.quant().isNone())
    return B.error(0, "expected a u8, s8 or s32 tensor with qparams, got " +
                          describe(T));
  std::string Msg = T.quant().validate(T.shape());
  if (!Msg.empty())
    return B.error(0, Msg);
  return TensorType{DType::F32, S, {}};
}

llvm::Expected<Tensor> runDequantize(const BoundArgs &B) {
  QFX_TRY(Ty, inferDequantize(B));
  const Tensor &X = B.operand(0).tensor();
  if (X.dtype() == DType::F32)
    return X;
  return dequantize(X);
}

//===----------------------------------------------------------------------===//
// Quantized conv2d (+ add, + relu)
//===----------------------------------------------------------------------===//

/// quantized_conv2d[_add][_relu] operands, validated. With \p HasOther the
/// schema is (input, other, weight, bias, ...): the module table passes the
/// module's inputs first.
struct ConvCall {
  const Tensor *X, *Other, *W, *Bias;
  ref::Conv2dParams P;
  OutputQuant Out;
  Shape Result;
};

template <bool HasOther, bool Relu>
llvm::Expected<ConvCall> convCall(const BoundArgs &B) {
  const size_t K = HasOther ? 1 : 0;
  ConvCall C;
  QFX_TRY(X, activation(B, 0));
  C.X = *X;
  C.Other = nullptr;
  QFX_TRY(W, weight(B, 1 + K));
  QFX_TRY(Bias, floatOperand(B, 2 + K, /*Optional=*/true));
  C.W = *W;
  C.Bias = *Bias;
  QFX_TRY(S, B.pair(3 + K));
  QFX_TRY(Pad, B.pair(4 + K));
  QFX_TRY(D, B.pair(5 + K));
  QFX_TRY(G, B.integer(6 + K));
  C.P.Stride = *S;
  C.P.Padding = *Pad;
  C.P.Dilation = *D;
  C.P.Groups = *G;
  QFX_TRY(Out, outputQuant(B, 7 + K, C.X->dtype(), Relu));
  C.Out = *Out;
  auto R = ref::conv2dShape(C.X->shape(), C.W->shape(), optShape(C.Bias), C.P);
  if (!R)
    return renamed(R.takeError(), "conv2d", B.op());
  C.Result = *R;
  if (llvm::Error E = checkReduction(B, 1 + K,
                                     numElements(C.W->shape()) /
                                         std::max<int64_t>(C.W->dim(0), 1)))
    return E;
  if (HasOther) {
    QFX_TRY(O, activation(B, 1));
    if ((*O)->dtype() != C.X->dtype() ||
        (*O)->shape() != llvm::ArrayRef<int64_t>(C.Result))
      return B.error(1, "expected " + dtypeName(C.X->dtype()) +
                            formatShape(C.Result) + " like the output, got " +
                            dtypeName((*O)->dtype()) +
                            formatShape((*O)->shape()));
    C.Other = *O;
  }
  return C;
}

template <bool HasOther, bool Relu>
llvm::Expected<TensorType> inferQConv(const BoundArgs &B) {
  QFX_TRY(C, (convCall<HasOther, Relu>(B)));
  return quantizedType(C->X->dtype(), C->Result, C->Out.Scale,
                       C->Out.ZeroPoint);
}

template <bool HasOther, bool Relu>
llvm::Expected<Tensor> runQConv(const BoundArgs &B) {
  QFX_TRY(C, (convCall<HasOther, Relu>(B)));
  return qref::conv2d(*C->X, *C->W, C->Bias, C->P, C->Other, C->Out);
}

//===----------------------------------------------------------------------===//
// Quantized linear (static and dynamic)
//===----------------------------------------------------------------------===//

struct LinearCall {
  const Tensor *X, *W, *Bias;
  OutputQuant Out;
  Shape Result;
};

/// quantized_linear[_relu] (\p Dynamic false) or quantized_linear_dynamic.
template <bool Relu, bool Dynamic>
llvm::Expected<LinearCall> linearCall(const BoundArgs &B) {
  LinearCall C;
  QFX_TRY(X, Dynamic ? floatOperand(B, 0) : activation(B, 0));
  QFX_TRY(W, weight(B, 1));
  QFX_TRY(Bias, floatOperand(B, 2, /*Optional=*/true));
  C.X = *X;
  C.W = *W;
  C.Bias = *Bias;
  if (!Dynamic) {
    QFX_TRY(Out, outputQuant(B, 3, C.X->dtype(), Relu));
    C.Out = *Out;
  }
  auto R = ref::linearShape(C.X->shape(), C.W->shape(), optShape(C.Bias));
  if (!R)
    return renamed(R.takeError(), "linear", B.op());
  C.Result = *R;
  if (llvm::Error E = checkReduction(B, 1, C.W->rank() == 2 ? C.W->dim(1) : 0))
    return E;
  return C;
}

template <bool Relu>
llvm::Expected<TensorType> inferQLinear(const BoundArgs &B) {
  QFX_TRY(C, (linearCall<Relu, false>(B)));
  return quantizedType(C->X->dtype(), C->Result, C->Out.Scale,
                       C->Out.ZeroPoint);
}

template <bool Relu> llvm::Expected<Tensor> runQLinear(const BoundArgs &B) {
  QFX_TRY(C, (linearCall<Relu, false>(B)));
  return qref::linear(*C->X, *C->W, C->Bias, C->Out);
}

llvm::Expected<TensorType> inferQLinearDynamic(const BoundArgs &B) {
  QFX_TRY(C, (linearCall<false, true>(B)));
  QFX_TRY(Reduce, B.boolean(3));
  (void)*Reduce;
  return TensorType{DType::F32, C->Result, {}};
}

llvm::Expected<Tensor> runQLinearDynamic(const BoundArgs &B) {
  QFX_TRY(Ty, inferQLinearDynamic(B));
  QFX_TRY(C, (linearCall<false, true>(B)));
  return qref::linearDynamic(*C->X, *C->W, C->Bias, *B.boolean(3));
}

//===----------------------------------------------------------------------===//
// Quantized batch norm
//===----------------------------------------------------------------------===//

/// quantized_batch_norm[_relu](input, running_mean, running_var, weight,
/// bias, eps, scale, zero_point).
template <bool Relu>
llvm::Expected<TensorType> inferQBatchNorm(const BoundArgs &B) {
  QFX_TRY(X, activation(B, 0));
  QFX_TRY(Mean, floatOperand(B, 1));
  QFX_TRY(Var, floatOperand(B, 2));
  QFX_TRY(W, floatOperand(B, 3, /*Optional=*/true));
  QFX_TRY(Bias, floatOperand(B, 4, /*Optional=*/true));
  QFX_TRY(Eps, B.real(5));
  QFX_TRY(Out, outputQuant(B, 6, (*X)->dtype(), Relu));
  int64_t C = (*Mean)->numElements();
  for (const Tensor *T : {*Mean, *Var, *W, *Bias})
    if (T && (T->rank() != 1 || T->numElements() != C))
      return B.error(1, "statistics and affine parameters must all be [" +
                            llvm::Twine(C) + "]");
  auto S = ref::batchNormShape((*X)->shape(), C);
  if (!S)
    return renamed(S.takeError(), "batch_norm", B.op());
  return quantizedType((*X)->dtype(), *S, Out->Scale, Out->ZeroPoint);
}

template <bool Relu> llvm::Expected<Tensor> runQBatchNorm(const BoundArgs &B) {
  QFX_TRY(Ty, inferQBatchNorm<Relu>(B));
  auto Opt = [&](size_t I) {
    return B.isNone(I) ? nullptr : &B.operand(I).tensor();
  };
  OutputQuant Out{Ty->Quant.Scale, Ty->Quant.ZeroPoint, Relu};
  return qref::batchNorm(B.operand(0).tensor(), B.operand(1).tensor(),
                         B.operand(2).tensor(), Opt(3), Opt(4), *B.real(5),
                         Out);
}

//===----------------------------------------------------------------------===//
// Binary ops and cat
//===----------------------------------------------------------------------===//

/// quantized_add / quantized_add_relu / quantized_mul (input, other, scale,
/// zero_point): both operands of one dtype, broadcast.
template <bool Relu>
llvm::Expected<TensorType> inferQBinary(const BoundArgs &B) {
  QFX_TRY(X, activation(B, 0));
  QFX_TRY(Y, activation(B, 1));
  if ((*X)->dtype() != (*Y)->dtype())
    return B.error(1, "expected " + dtypeName((*X)->dtype()) +
                          " like input, got " + dtypeName((*Y)->dtype()));
  QFX_TRY(Out, outputQuant(B, 2, (*X)->dtype(), Relu));
  auto S = ref::broadcastShape((*X)->shape(), (*Y)->shape());
  if (!S)
    return prefixError(S.takeError(), B.op());
  return quantizedType((*X)->dtype(), *S, Out->Scale, Out->ZeroPoint);
}

template <bool Relu, bool IsMul>
llvm::Expected<Tensor> runQBinary(const BoundArgs &B) {
  QFX_TRY(Ty, inferQBinary<Relu>(B));
  OutputQuant Out{Ty->Quant.Scale, Ty->Quant.ZeroPoint, Relu};
  const Tensor &X = B.operand(0).tensor(), &Y = B.operand(1).tensor();
  return IsMul ? qref::mul(X, Y, Out) : qref::add(X, Y, Out);
}

llvm::Expected<TensorType> inferQCat(const BoundArgs &B) {
  QFX_TRY(Ts, B.tensorList(0));
  QFX_TRY(Dim, B.integer(1));
  if (Ts->empty())
    return B.error(0, "expected at least one tensor");
  std::vector<Shape> Shapes;
  for (size_t I = 0; I < Ts->size(); ++I) {
    const Tensor &T = (*Ts)[I];
    if (!isQuantizedActivation(T) || T.dtype() != (*Ts)[0].dtype())
      return B.error(
          0, "expected " +
                 llvm::Twine(I ? dtypeName((*Ts)[0].dtype()) : "u8 or s8") +
                 " tensors with per-tensor qparams, element " + llvm::Twine(I) +
                 " is " + describe(T));
    Shapes.emplace_back(T.shape().begin(), T.shape().end());
  }
  DType T = (*Ts)[0].dtype();
  QFX_TRY(Out, outputQuant(B, 2, T, false));
  auto S = ref::catShape(Shapes, *Dim);
  if (!S)
    return renamed(S.takeError(), "cat", B.op());
  return quantizedType(T, *S, Out->Scale, Out->ZeroPoint);
}

llvm::Expected<Tensor> runQCat(const BoundArgs &B) {
  QFX_TRY(Ty, inferQCat(B));
  QFX_TRY(Ts, B.tensorList(0));
  return qref::cat(*Ts, *B.integer(1), Ty->Quant.Scale, Ty->Quant.ZeroPoint);
}

//===----------------------------------------------------------------------===//
// Unary ops: dequantize, float kernel, requantize
//===----------------------------------------------------------------------===//

/// PyTorch's fixed output qparams: [0, 1) outputs (sigmoid, hardsigmoid,
/// softmax) get 1/256 with the dtype's minimum as zero point, tanh's [-1, 1)
/// gets 2/256 centred.
enum class Fixed { UnitInterval, Tanh };

TensorType fixedType(const Tensor &X, Fixed F) {
  bool U8 = X.dtype() == DType::U8;
  if (F == Fixed::Tanh)
    return quantizedType(X.dtype(), X.shape(), 2.0 / 256, U8 ? 128 : 0);
  return quantizedType(X.dtype(), X.shape(), 1.0 / 256, U8 ? 0 : -128);
}

template <Fixed F> llvm::Expected<TensorType> inferQFixed(const BoundArgs &B) {
  QFX_TRY(X, activation(B, 0));
  return fixedType(**X, F);
}

template <Fixed F, Tensor (*Fn)(const Tensor &)>
llvm::Expected<Tensor> runQFixed(const BoundArgs &B) {
  QFX_TRY(Ty, inferQFixed<F>(B));
  return mapFloat(B.operand(0).tensor(), Fn, Ty->Quant.Scale,
                  Ty->Quant.ZeroPoint);
}

llvm::Expected<TensorType> inferQSoftmax(const BoundArgs &B) {
  QFX_TRY(X, activation(B, 0));
  QFX_TRY(Dim, B.integer(1));
  auto D = ref::normalizeDim(*Dim, (*X)->rank());
  if (!D)
    return prefixError(D.takeError(), B.op());
  return fixedType(**X, Fixed::UnitInterval);
}

llvm::Expected<Tensor> runQSoftmax(const BoundArgs &B) {
  QFX_TRY(Ty, inferQSoftmax(B));
  return qref::softmax(B.operand(0).tensor(), *B.integer(1), Ty->Quant.Scale,
                       Ty->Quant.ZeroPoint);
}

/// quantized_hardswish(input, scale, zero_point) and
/// quantized_leaky_relu(input, negative_slope, scale, zero_point): the
/// output qparams follow the op's own parameters.
template <size_t ScaleIndex>
llvm::Expected<TensorType> inferQUnary(const BoundArgs &B) {
  QFX_TRY(X, activation(B, 0));
  for (size_t I = 1; I < ScaleIndex; ++I) {
    QFX_TRY(V, B.real(I));
    (void)*V;
  }
  QFX_TRY(Out, outputQuant(B, ScaleIndex, (*X)->dtype(), false));
  return quantizedType((*X)->dtype(), (*X)->shape(), Out->Scale,
                       Out->ZeroPoint);
}

llvm::Expected<Tensor> runQHardswish(const BoundArgs &B) {
  QFX_TRY(Ty, inferQUnary<1>(B));
  return mapFloat(B.operand(0).tensor(), ref::hardswish, Ty->Quant.Scale,
                  Ty->Quant.ZeroPoint);
}

llvm::Expected<Tensor> runQLeakyRelu(const BoundArgs &B) {
  QFX_TRY(Ty, inferQUnary<2>(B));
  double Slope = *B.real(1);
  return mapFloat(
      B.operand(0).tensor(),
      [Slope](const Tensor &X) { return ref::leakyRelu(X, Slope); },
      Ty->Quant.Scale, Ty->Quant.ZeroPoint);
}

} // namespace

//===----------------------------------------------------------------------===//
// The entries
//===----------------------------------------------------------------------===//

std::vector<OpDef> qfx::quantizedOpDefs() {
  using P = OpParam;
  std::vector<OpParam> Conv = {
      P{"weight"},          P{"bias", None()},     P{"stride", I64(1)},
      P{"padding", I64(0)}, P{"dilation", I64(1)}, P{"groups", I64(1)},
      P{"scale"},           P{"zero_point"}};
  std::vector<OpParam> ConvIn = {P{"input"}},
                       ConvAddIn = {P{"input"}, P{"other"}};
  ConvIn.insert(ConvIn.end(), Conv.begin(), Conv.end());
  ConvAddIn.insert(ConvAddIn.end(), Conv.begin(), Conv.end());
  std::vector<OpParam> Linear = {P{"input"}, P{"weight"}, P{"bias", None()},
                                 P{"scale"}, P{"zero_point"}};
  std::vector<OpParam> BatchNorm = {P{"input"},        P{"running_mean"},
                                    P{"running_var"},  P{"weight", None()},
                                    P{"bias", None()}, P{"eps", F64(1e-5)},
                                    P{"scale"},        P{"zero_point"}};
  std::vector<OpParam> Binary = {P{"input"}, P{"other"}, P{"scale"},
                                 P{"zero_point"}};
  return {
      {"dequantize", true, true, {P{"input"}}, inferDequantize, runDequantize},
      {"quantize_per_tensor",
       true,
       false,
       {P{"input"}, P{"scale"}, P{"zero_point"}, P{"dtype"}},
       inferQuantize,
       runQuantize},
      {"quantized_add", true, false, Binary, inferQBinary<false>,
       runQBinary<false, false>},
      {"quantized_add_relu", true, false, Binary, inferQBinary<true>,
       runQBinary<true, false>},
      {"quantized_batch_norm", true, false, BatchNorm, inferQBatchNorm<false>,
       runQBatchNorm<false>},
      {"quantized_batch_norm_relu", true, false, BatchNorm,
       inferQBatchNorm<true>, runQBatchNorm<true>},
      {"quantized_cat",
       true,
       false,
       {P{"tensors"}, P{"dim", I64(0)}, P{"scale"}, P{"zero_point"}},
       inferQCat,
       runQCat},
      {"quantized_conv2d", true, false, ConvIn, inferQConv<false, false>,
       runQConv<false, false>},
      {"quantized_conv2d_add", true, false, ConvAddIn, inferQConv<true, false>,
       runQConv<true, false>},
      {"quantized_conv2d_add_relu", true, false, ConvAddIn,
       inferQConv<true, true>, runQConv<true, true>},
      {"quantized_conv2d_relu", true, false, ConvIn, inferQConv<false, true>,
       runQConv<false, true>},
      {"quantized_hardsigmoid",
       true,
       false,
       {P{"input"}},
       inferQFixed<Fixed::UnitInterval>,
       runQFixed<Fixed::UnitInterval, ref::hardsigmoid>},
      {"quantized_hardswish",
       true,
       false,
       {P{"input"}, P{"scale"}, P{"zero_point"}},
       inferQUnary<1>,
       runQHardswish},
      {"quantized_leaky_relu",
       true,
       false,
       {P{"input"}, P{"negative_slope", F64(0.01)}, P{"scale"},
        P{"zero_point"}},
       inferQUnary<2>,
       runQLeakyRelu},
      {"quantized_linear", true, false, Linear, inferQLinear<false>,
       runQLinear<false>},
      {"quantized_linear_dynamic",
       true,
       false,
       {P{"input"}, P{"weight"}, P{"bias", None()},
        P{"reduce_range", Bool(true)}},
       inferQLinearDynamic,
       runQLinearDynamic},
      {"quantized_linear_relu", true, false, Linear, inferQLinear<true>,
       runQLinear<true>},
      {"quantized_mul", true, false, Binary, inferQBinary<false>,
       runQBinary<false, true>},
      {"quantized_sigmoid",
       true,
       false,
       {P{"input"}},
       inferQFixed<Fixed::UnitInterval>,
       runQFixed<Fixed::UnitInterval, ref::sigmoid>},
      {"quantized_softmax",
       true,
       false,
       {P{"input"}, P{"dim"}},
       inferQSoftmax,
       runQSoftmax},
      {"quantized_tanh",
       true,
       false,
       {P{"input"}},
       inferQFixed<Fixed::Tanh>,
       runQFixed<Fixed::Tanh, ref::tanh>},
  };
}
