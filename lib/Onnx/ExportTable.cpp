//===- ExportTable.cpp - qfx ops -> ONNX node-unit shapes -----------------===//
//
// The export table: one row per qfx op (module kinds arrive as the op their
// kind calls, lib/Runtime/Op.cpp) and the function writing its float ONNX
// form. The driver reads every quantized input through a DequantizeLinear
// of its own and quantizes a quantized result, so each row becomes one of
// the node-unit shapes ONNX Runtime's QDQ transformer fuses
// (qdq_selectors.h):
//   quantized_conv2d[_relu]: DQ(x), DQ(W s8 axis 0), DQ(b s32) -> Conv
//                            [-> Relu] -> Q                 (QLinearConv)
//   quantized_linear[_relu]: DQ(x), DQ(W), DQ(b) -> Gemm(transB=1)
//                            [-> Relu] -> Q                 (QGemm);
//                            input of another rank: DQ(x), DQ(W^T, axis 1)
//                            -> MatMul -> Add(DQ(b), .) -> Q, as torch
//                            writes nn.Linear       (MatMulIntegerToFloat)
//   quantized_add/_mul:      DQ, DQ -> Add/Mul -> Q         (QLinearAdd/Mul)
//   quantized_add_relu:      DQ, DQ -> Add -> Relu -> Q     (ORT drops the
//                            Relu before a Q with zero point qmin)
//   quantized_cat:           DQ... -> Concat -> Q           (QLinearConcat)
//   quantized_conv1d[_relu]: as quantized_conv2d, 1-d kernel (QLinearConv)
//   quantized_conv_transpose2d: DQ(x), DQ(W s8 axis 1), DQ(b s32)
//                            -> ConvTranspose -> Q  (ORT's CPU provider:
//                            float ConvTranspose between them)
//   quantized_matmul:        DQ, DQ -> MatMul -> Q          (QLinearMatMul)
//   quantized_layer_norm:    DQ -> LayerNormalization -> Q
//   quantized_linear_dynamic: DynamicQuantizeLinear -> MatMulInteger -> Cast
//                            -> Mul(s_x * s_w) [-> Add] (DynamicQuantizeMatMul)
//   quantized_sigmoid, quantized_leaky_relu, quantized_softmax, int8
//   avg pools:               DQ -> op -> Q                  (QLinear<op>)
//   max_pool2d, reshape, flatten, permute on int8:
//                            DQ -> op -> Q, same qparams    (int8 op)
//   relu, relu6, hardtanh on int8 (same qparams):
//                            Clip on the integers, bounds quantized as
//                            qfx's kernels do               (exact, uint8)
// Everything else is a float island between DQ and Q.
//
//===----------------------------------------------------------------------===//

#include "ExportState.h"

#include "qfx/Support/Error.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/Twine.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>

using namespace qfx;
using namespace qfx::onnxexport;

namespace {

Result unary(ExportState &S, const NodeCall &C, llvm::StringRef OpType) {
  QFX_TRY(X, S.floatInput(C, 0));
  return ExportState::out(S.add(OpType, {*X}));
}

/// quantizeValue of qfx's int8 kernels: clamp(nearbyint(v / s) + zp).
int64_t quantizeBound(double V, const QuantParams &Q, DType T) {
  float Inv = 1.0f / static_cast<float>(Q.Scale);
  double R = std::nearbyint(static_cast<float>(V) * Inv) + Q.ZeroPoint;
  double Lo = T == DType::U8 ? 0 : -128, Hi = T == DType::U8 ? 255 : 127;
  return static_cast<int64_t>(std::min(std::max(R, Lo), Hi));
}

/// relu / relu6 / hardtanh on an int8 value keeping its qparams: Clip on the
/// integers with bounds quantized as qfx's kernel quantizes them (exact,
/// and ORT runs it on uint8). Returns "" after recording the result, or
/// std::nullopt when the input is float.
std::optional<Result> intClip(ExportState &S, const NodeCall &C, double Lo,
                              double Hi) {
  const Node *In = S.valueNode(C.Args->operand(0));
  const Value *X = In ? S.value(In) : nullptr;
  const std::optional<TensorType> &T = C.N->type();
  if (!X || !X->Quant.isPerTensor() || !T || T->Dtype != X->Dtype ||
      T->Quant != X->Quant)
    return std::nullopt;
  Tensor Min(X->Dtype, {}), Max(X->Dtype, {});
  Min.setFromDouble(0, quantizeBound(Lo, X->Quant, X->Dtype));
  Max.setFromDouble(0, quantizeBound(Hi, X->Quant, X->Dtype));
  std::string MinName = S.initializer(S.fresh("min"), Min);
  std::string MaxName = S.initializer(S.fresh("max"), Max);
  Value V = *X;
  V.Name = ExportState::out(S.add("Clip", {X->Name, MinName, MaxName}));
  V.Dims = T->Dims;
  S.setValue(C.N, std::move(V));
  return Result(std::string());
}

Result clip(ExportState &S, const NodeCall &C, double Lo, double Hi) {
  if (std::optional<Result> R = intClip(S, C, Lo, Hi))
    return std::move(*R);
  QFX_TRY(X, S.floatInput(C, 0));
  std::string Min = S.constFloat("min", static_cast<float>(Lo));
  std::string Max = S.constFloat("max", static_cast<float>(Hi));
  return ExportState::out(S.add("Clip", {*X, Min, Max}));
}

/// PyTorch's hardsigmoid: relu6(x + 3) / 6.
std::string hardSigmoid(ExportState &S, const std::string &X) {
  onnx::NodeProto &P = S.add("HardSigmoid", {X});
  attrFloat(P, "alpha", 1.0f / 6.0f);
  attrFloat(P, "beta", 0.5f);
  return ExportState::out(P);
}

//===--- Activations -----------------------------------------------------===//

Result emitRelu(ExportState &S, const NodeCall &C) {
  // On int8: max(q, zp), which is Clip(q, zp, qmax).
  if (std::optional<Result> R =
          intClip(S, C, 0.0, std::numeric_limits<double>::infinity()))
    return std::move(*R);
  return unary(S, C, "Relu");
}
Result emitRelu6(ExportState &S, const NodeCall &C) {
  return clip(S, C, 0.0, 6.0);
}
Result emitHardtanh(ExportState &S, const NodeCall &C) {
  QFX_TRY(Lo, C.Args->real(C.param("min_val")));
  QFX_TRY(Hi, C.Args->real(C.param("max_val")));
  return clip(S, C, *Lo, *Hi);
}
Result emitSigmoid(ExportState &S, const NodeCall &C) {
  return unary(S, C, "Sigmoid");
}
Result emitTanh(ExportState &S, const NodeCall &C) {
  return unary(S, C, "Tanh");
}
Result emitHardsigmoid(ExportState &S, const NodeCall &C) {
  QFX_TRY(X, S.floatInput(C, 0));
  return hardSigmoid(S, *X);
}
Result emitHardswish(ExportState &S, const NodeCall &C) {
  QFX_TRY(X, S.floatInput(C, 0));
  if (S.opset() >= 14)
    return ExportState::out(S.add("HardSwish", {*X}));
  // Before opset 14: x * hardsigmoid(x).
  std::string HS = hardSigmoid(S, *X);
  return ExportState::out(S.add("Mul", {*X, HS}));
}
/// silu: x * Sigmoid(x), as torch.onnx.export writes it (ONNX 1.12 has no
/// SiLU op); the importer folds the pair back into one silu.
Result emitSilu(ExportState &S, const NodeCall &C) {
  QFX_TRY(X, S.floatInput(C, 0));
  std::string Sig = ExportState::out(S.add("Sigmoid", {*X}));
  return ExportState::out(S.add("Mul", {*X, Sig}));
}
Result emitLeakyRelu(ExportState &S, const NodeCall &C) {
  QFX_TRY(Slope, C.Args->real(C.param("negative_slope")));
  QFX_TRY(X, S.floatInput(C, 0));
  onnx::NodeProto &P = S.add("LeakyRelu", {*X});
  attrFloat(P, "alpha", static_cast<float>(*Slope));
  return ExportState::out(P);
}
Result emitSoftmax(ExportState &S, const NodeCall &C) {
  QFX_TRY(Dim, C.Args->integer(C.param("dim")));
  QFX_TRY(X, S.floatInput(C, 0));
  onnx::NodeProto &P = S.add("Softmax", {*X});
  attrInt(P, "axis", *Dim);
  return ExportState::out(P);
}
Result emitIdentity(ExportState &S, const NodeCall &C) {
  return unary(S, C, "Identity");
}

//===--- Elementwise -----------------------------------------------------===//

Result binary(ExportState &S, const NodeCall &C, llvm::StringRef OpType,
              bool Relu) {
  if (C.hasParam("alpha")) {
    QFX_TRY(Alpha, C.Args->real(C.param("alpha")));
    if (*Alpha != 1.0)
      return makeError("add with alpha " + std::to_string(*Alpha) +
                       " has no ONNX form");
  }
  QFX_TRY(A, S.floatInput(C, 0));
  QFX_TRY(B, S.floatInput(C, 1));
  std::string R = ExportState::out(S.add(OpType, {*A, *B}));
  return Relu ? ExportState::out(S.add("Relu", {R})) : R;
}

Result emitAdd(ExportState &S, const NodeCall &C) {
  return binary(S, C, "Add", false);
}
Result emitAddRelu(ExportState &S, const NodeCall &C) {
  return binary(S, C, "Add", true);
}
Result emitMul(ExportState &S, const NodeCall &C) {
  return binary(S, C, "Mul", false);
}

Result emitCat(ExportState &S, const NodeCall &C) {
  QFX_TRY(Dim, C.Args->integer(C.param("dim")));
  const Operand &L = C.Args->operand(0);
  if (!L.isList())
    return makeError("cat of something that is not a list of values");
  std::vector<std::string> Ins;
  for (const Operand &E : L.elems()) {
    const Node *V = S.valueNode(E);
    if (!V)
      return makeError("cat of a constant has no ONNX form here");
    QFX_TRY(X, S.floatOf(V));
    Ins.push_back(*X);
  }
  onnx::NodeProto &P = S.add("Concat", Ins);
  attrInt(P, "axis", *Dim);
  return ExportState::out(P);
}

//===--- Weighted ops ----------------------------------------------------===//

/// The bias operand: an int32 DQ for quantized ops, f32 otherwise, "" for
/// none.
Result bias(ExportState &S, const NodeCall &C, bool Quantized) {
  size_t IB = C.param("bias");
  if (C.Args->isNone(IB))
    return std::string();
  size_t IW = C.param("weight");
  const Tensor *W = S.constant(C, IW);
  if (Quantized && W && W->dtype() == DType::S8) {
    QFX_TRY(SIn, quantizedInputScale(S, C));
    return S.quantizedBias(C, IB, *SIn, *W);
  }
  return S.floatInput(C, IB);
}

/// Conv hyper-parameters by name (conv2d_add has "other" before them, so
/// the runtime's positional reader does not apply).
llvm::Expected<ref::Conv2dParams> convParams(const NodeCall &C) {
  ref::Conv2dParams P;
  QFX_TRY(Stride, C.Args->pair(C.param("stride")));
  QFX_TRY(Padding, C.Args->pair(C.param("padding")));
  QFX_TRY(Dilation, C.Args->pair(C.param("dilation")));
  QFX_TRY(Groups, C.Args->integer(C.param("groups")));
  P.Stride = *Stride;
  P.Padding = *Padding;
  P.Dilation = *Dilation;
  P.Groups = *Groups;
  return P;
}

Result conv(ExportState &S, const NodeCall &C, bool Quantized, bool Add,
            bool Relu) {
  QFX_TRY(P, convParams(C));
  QFX_TRY(X, S.floatInput(C, 0));
  size_t IW = C.param("weight");
  QFX_TRY(W, S.weight(C, IW));
  QFX_TRY(B, bias(S, C, Quantized));
  std::vector<int64_t> Kernel;
  if (const Tensor *WT = S.constant(C, IW))
    Kernel = {WT->dim(2), WT->dim(3)};
  std::vector<std::string> Ins = {*X, *W};
  if (!B->empty())
    Ins.push_back(*B);
  onnx::NodeProto &N = S.add("Conv", Ins);
  attrInts(N, "dilations", P->Dilation);
  attrInt(N, "group", P->Groups);
  if (!Kernel.empty())
    attrInts(N, "kernel_shape", Kernel);
  attrInts(N, "pads",
           {P->Padding[0], P->Padding[1], P->Padding[0], P->Padding[1]});
  attrInts(N, "strides", P->Stride);
  std::string R = ExportState::out(N);
  if (Add) {
    // conv + add: the sum joins after the conv, before relu and the
    // requantization, as qfx's fused kernel adds it.
    QFX_TRY(O, S.floatInput(C, C.param("other")));
    R = ExportState::out(S.add("Add", {R, *O}));
  }
  return Relu ? ExportState::out(S.add("Relu", {R})) : R;
}

Result emitConv(ExportState &S, const NodeCall &C) {
  return conv(S, C, false, false, false);
}
Result emitQConv(ExportState &S, const NodeCall &C) {
  return conv(S, C, true, false, false);
}
Result emitQConvRelu(ExportState &S, const NodeCall &C) {
  return conv(S, C, true, false, true);
}
Result emitQConvAdd(ExportState &S, const NodeCall &C) {
  return conv(S, C, true, true, false);
}
Result emitQConvAddRelu(ExportState &S, const NodeCall &C) {
  return conv(S, C, true, true, true);
}

/// A constant [out, in] weight transposed to [in, out] (per-channel
/// qparams move to axis 1), as torch.onnx.export stores nn.Linear's weight
/// for a MatMul; std::nullopt unless the weight is such a constant.
std::optional<Tensor> transposedWeight(ExportState &S, const NodeCall &C) {
  const Tensor *W = S.constant(C, C.param("weight"));
  if (!W || W->rank() != 2 || !W->hasData())
    return std::nullopt;
  int64_t Out = W->dim(0), In = W->dim(1);
  size_t Size = dtypeSize(W->dtype());
  Tensor T(W->dtype(), {In, Out});
  const char *Src = static_cast<const char *>(W->rawData());
  char *Dst = static_cast<char *>(T.rawData());
  for (int64_t O = 0; O < Out; ++O)
    for (int64_t I = 0; I < In; ++I)
      std::memcpy(Dst + (I * Out + O) * Size, Src + (O * In + I) * Size, Size);
  QuantParams Q = W->quant();
  if (Q.isPerChannel())
    Q.Axis = 1;
  if (!Q.isNone())
    T.setQuant(Q);
  return T;
}

Result linear(ExportState &S, const NodeCall &C, bool Quantized, bool Relu) {
  QFX_TRY(X, S.floatInput(C, 0));
  std::optional<Shape> Dims = S.dimsOf(C, 0);
  std::optional<Tensor> WT;
  if (!Dims || Dims->size() != 2)
    WT = transposedWeight(S, C);
  std::string R;
  if (WT) {
    // Other ranks, as torch.onnx.export writes nn.Linear (and ORT's
    // quantizer a quantized MatMul): MatMul by the [in, out] transposed
    // weight initializer, then Add(bias, .). The initializer keeps the
    // weight's name, from which importers recover the module path.
    QFX_TRY(W, S.weightTensor(S.constantName(C, C.param("weight")), *WT));
    QFX_TRY(B, bias(S, C, Quantized));
    R = ExportState::out(S.add("MatMul", {*X, *W}));
    if (!B->empty())
      R = ExportState::out(S.add("Add", {*B, R}));
    return Relu ? ExportState::out(S.add("Relu", {R})) : R;
  }
  QFX_TRY(W, S.weight(C, C.param("weight")));
  QFX_TRY(B, bias(S, C, Quantized));
  if (Dims && Dims->size() == 2) {
    std::vector<std::string> Ins = {*X, *W};
    if (!B->empty())
      Ins.push_back(*B);
    onnx::NodeProto &N = S.add("Gemm", Ins);
    attrInt(N, "transB", 1);
    R = ExportState::out(N);
  } else {
    // Other ranks: x @ W^T + b.
    onnx::NodeProto &T = S.add("Transpose", {*W});
    attrInts(T, "perm", {1, 0});
    R = ExportState::out(S.add("MatMul", {*X, ExportState::out(T)}));
    if (!B->empty())
      R = ExportState::out(S.add("Add", {R, *B}));
  }
  return Relu ? ExportState::out(S.add("Relu", {R})) : R;
}

Result emitLinear(ExportState &S, const NodeCall &C) {
  return linear(S, C, false, false);
}
Result emitQLinear(ExportState &S, const NodeCall &C) {
  return linear(S, C, true, false);
}
Result emitQLinearRelu(ExportState &S, const NodeCall &C) {
  return linear(S, C, true, true);
}

/// Dynamic quantization as ORT's dynamic quantizer writes it:
///   DynamicQuantizeLinear(x) -> (x_q, s_x, zp_x)
///   MatMulInteger(x_q, W_q^T, zp_x, 0) -> Cast(f32) * (s_x * s_w) [+ b]
/// DynamicQuantizeLinear uses the full uint8 range where qfx (as PyTorch's
/// x86 backend) reduces it with reduce_range, so the two agree within qfx's
/// own activation quantization error, not bit for bit.
Result emitQLinearDynamic(ExportState &S, const NodeCall &C) {
  const Tensor *W = S.constant(C, C.param("weight"));
  if (!W || !W->hasData() || W->dtype() != DType::S8 || W->rank() != 2 ||
      W->quant().isNone())
    return makeError("expected an s8 [out, in] weight with qparams");
  QFX_TRY(X, S.floatInput(C, 0));
  onnx::NodeProto &DQL = S.add("DynamicQuantizeLinear", {*X});
  DQL.add_output(S.fresh("x_scale"));
  DQL.add_output(S.fresh("x_zero_point"));
  const QuantParams &WQ = W->quant();
  int64_t N = W->dim(0), K = W->dim(1);
  // W^T [in, out] with its per-column scales and zero points.
  Tensor WT(DType::S8, {K, N}), Scale(DType::F32, {N}), Zero(DType::S8, {N});
  for (int64_t O = 0; O < N; ++O) {
    for (int64_t I = 0; I < K; ++I)
      WT.data<int8_t>()[I * N + O] = W->data<int8_t>()[O * K + I];
    Scale.data<float>()[O] =
        static_cast<float>(WQ.isPerChannel() ? WQ.Scales[O] : WQ.Scale);
    Zero.data<int8_t>()[O] = static_cast<int8_t>(
        WQ.isPerChannel() ? WQ.ZeroPoints[O] : WQ.ZeroPoint);
  }
  std::string Base = S.constantName(C, C.param("weight"));
  std::string WName = S.initializer(Base + "_transposed", WT);
  std::string ZName = S.initializer(Base + "_zero_point", Zero);
  std::string SName = S.initializer(Base + "_scale", Scale);
  onnx::NodeProto &MM =
      S.add("MatMulInteger", {DQL.output(0), WName, DQL.output(2), ZName});
  onnx::NodeProto &Cast = S.add("Cast", {ExportState::out(MM)});
  attrInt(Cast, "to", onnx::TensorProto::FLOAT);
  std::string Mult = ExportState::out(S.add("Mul", {DQL.output(1), SName}));
  std::string R =
      ExportState::out(S.add("Mul", {ExportState::out(Cast), Mult}));
  size_t IB = C.param("bias");
  if (C.Args->isNone(IB))
    return R;
  QFX_TRY(B, S.floatInput(C, IB));
  return ExportState::out(S.add("Add", {R, *B}));
}

Result batchNorm(ExportState &S, const NodeCall &C, bool Relu) {
  QFX_TRY(Eps, C.Args->real(C.param("eps")));
  if (C.hasParam("training")) {
    QFX_TRY(Training, C.Args->boolean(C.param("training")));
    if (*Training)
      return makeError("batch_norm in training mode has no ONNX form; "
                       "export the model in eval mode");
  }
  QFX_TRY(X, S.floatInput(C, 0));
  QFX_TRY(Mean, S.floatInput(C, C.param("running_mean")));
  QFX_TRY(Var, S.floatInput(C, C.param("running_var")));
  const Tensor *M = S.constant(C, C.param("running_mean"));
  if (!M)
    return makeError("running_mean must be a constant");
  int64_t Ch = M->numElements();
  auto Param = [&](const char *Name, float Default) -> Result {
    size_t I = C.param(Name);
    if (!C.Args->isNone(I))
      return S.floatInput(C, I);
    Tensor T(DType::F32, {Ch});
    std::fill_n(T.data<float>(), Ch, Default);
    return S.initializer(S.fresh(Name), T);
  };
  QFX_TRY(Gamma, Param("weight", 1.0f));
  QFX_TRY(Beta, Param("bias", 0.0f));
  onnx::NodeProto &N =
      S.add("BatchNormalization", {*X, *Gamma, *Beta, *Mean, *Var});
  attrFloat(N, "epsilon", static_cast<float>(*Eps));
  std::string R = ExportState::out(N);
  return Relu ? ExportState::out(S.add("Relu", {R})) : R;
}

Result emitBatchNorm(ExportState &S, const NodeCall &C) {
  return batchNorm(S, C, false);
}
Result emitBatchNormRelu(ExportState &S, const NodeCall &C) {
  return batchNorm(S, C, true);
}

//===--- Pools and reductions --------------------------------------------===//

Result pool(ExportState &S, const NodeCall &C, bool IsMax) {
  QFX_TRY(P, pool2dParams(*C.Args, IsMax));
  if (P->DivisorOverride)
    return makeError("avg_pool2d with divisor_override has no ONNX form");
  QFX_TRY(X, S.floatInput(C, 0));
  onnx::NodeProto &N = S.add(IsMax ? "MaxPool" : "AveragePool", {*X});
  attrInt(N, "ceil_mode", P->CeilMode);
  if (!IsMax)
    attrInt(N, "count_include_pad", P->CountIncludePad);
  if (IsMax && (P->Dilation[0] != 1 || P->Dilation[1] != 1))
    attrInts(N, "dilations", P->Dilation);
  attrInts(N, "kernel_shape", P->Kernel);
  attrInts(N, "pads",
           {P->Padding[0], P->Padding[1], P->Padding[0], P->Padding[1]});
  attrInts(N, "strides", P->Stride);
  return ExportState::out(N);
}

Result emitMaxPool(ExportState &S, const NodeCall &C) {
  return pool(S, C, true);
}
Result emitAvgPool(ExportState &S, const NodeCall &C) {
  return pool(S, C, false);
}

Result emitAdaptiveAvgPool(ExportState &S, const NodeCall &C) {
  QFX_TRY(Out, C.Args->pair(C.param("output_size")));
  QFX_TRY(X, S.floatInput(C, 0));
  if ((*Out)[0] == 1 && (*Out)[1] == 1)
    return ExportState::out(S.add("GlobalAveragePool", {*X}));
  // Other sizes: a fixed pool when the input divides evenly.
  std::optional<Shape> D = S.dimsOf(C, 0);
  if (!D || D->size() != 4 || (*D)[2] % (*Out)[0] || (*D)[3] % (*Out)[1])
    return makeError("adaptive_avg_pool2d to " + formatShape(*Out) +
                     " has an ONNX form only for 1x1 or an input size it "
                     "divides");
  std::vector<int64_t> K = {(*D)[2] / (*Out)[0], (*D)[3] / (*Out)[1]};
  onnx::NodeProto &N = S.add("AveragePool", {*X});
  attrInts(N, "kernel_shape", K);
  attrInts(N, "strides", K);
  return ExportState::out(N);
}

Result emitMean(ExportState &S, const NodeCall &C) {
  QFX_TRY(Dims, C.Args->ints(C.param("dim")));
  QFX_TRY(Keep, C.Args->boolean(C.param("keepdim")));
  QFX_TRY(X, S.floatInput(C, 0));
  onnx::NodeProto &N = S.add("ReduceMean", {*X});
  attrInts(N, "axes", *Dims);
  attrInt(N, "keepdims", *Keep);
  return ExportState::out(N);
}

//===--- Shapes ----------------------------------------------------------===//

/// A Reshape to \p Target. With a dynamic batch, a literal batch in front
/// (the input's dim 0) becomes -1, or 0 ("copy dim 0") when another dim
/// is already -1, so the file runs at any batch size.
Result reshapeTo(ExportState &S, const NodeCall &C,
                 std::vector<int64_t> Target) {
  std::optional<Shape> In = S.dimsOf(C, 0);
  if (S.dynamicBatch() && In && !In->empty() && !Target.empty() &&
      Target[0] == (*In)[0] && Target[0] != -1) {
    bool HasInferred = llvm::is_contained(Target, -1);
    Target[0] = HasInferred ? 0 : -1;
  }
  QFX_TRY(X, S.floatInput(C, 0));
  std::string Shape = S.constInts("shape", Target);
  return ExportState::out(S.add("Reshape", {*X, Shape}));
}

Result emitReshape(ExportState &S, const NodeCall &C) {
  QFX_TRY(Target, C.Args->ints(C.param("shape")));
  return reshapeTo(S, C, *Target);
}

Result emitFlatten(ExportState &S, const NodeCall &C) {
  QFX_TRY(Start, C.Args->integer(C.param("start_dim")));
  QFX_TRY(End, C.Args->integer(C.param("end_dim")));
  std::optional<Shape> In = S.dimsOf(C, 0);
  if (!In)
    return makeError("flatten of a value of unknown shape");
  int64_t R = static_cast<int64_t>(In->size());
  int64_t B = *Start < 0 ? *Start + R : *Start;
  int64_t E = *End < 0 ? *End + R : *End;
  if (B == 1 && E == R - 1) {
    QFX_TRY(X, S.floatInput(C, 0));
    onnx::NodeProto &N = S.add("Flatten", {*X});
    attrInt(N, "axis", 1);
    return ExportState::out(N);
  }
  std::vector<int64_t> Target;
  for (int64_t I = 0; I < R; ++I) {
    if (I > B && I <= E)
      continue;
    Target.push_back(I == B ? -1 : (*In)[I]);
  }
  // Keep dim 0 when it is not flattened (it is the batch).
  if (B > 0)
    Target[0] = 0;
  return reshapeTo(S, C, Target);
}

Result emitPermute(ExportState &S, const NodeCall &C) {
  QFX_TRY(Dims, C.Args->ints(C.param("dims")));
  QFX_TRY(X, S.floatInput(C, 0));
  onnx::NodeProto &N = S.add("Transpose", {*X});
  attrInts(N, "perm", *Dims);
  return ExportState::out(N);
}

Result emitTranspose(ExportState &S, const NodeCall &C) {
  QFX_TRY(D0, C.Args->integer(C.param("dim0")));
  QFX_TRY(D1, C.Args->integer(C.param("dim1")));
  std::optional<Shape> In = S.dimsOf(C, 0);
  if (!In)
    return makeError("transpose of a value of unknown rank");
  int64_t R = static_cast<int64_t>(In->size());
  std::vector<int64_t> Perm(R);
  std::iota(Perm.begin(), Perm.end(), 0);
  std::swap(Perm[(*D0 % R + R) % R], Perm[(*D1 % R + R) % R]);
  QFX_TRY(X, S.floatInput(C, 0));
  onnx::NodeProto &N = S.add("Transpose", {*X});
  attrInts(N, "perm", Perm);
  return ExportState::out(N);
}

//===--- Quantize / dequantize -------------------------------------------===//

/// quantize_per_tensor and dequantize pass the float value on: the driver
/// writes the QuantizeLinear of a quantized result, and reading a quantized
/// operand is its DequantizeLinear.
Result emitPassFloat(ExportState &S, const NodeCall &C) {
  return S.floatInput(C, 0);
}

// Sorted by op name; lookupExportRule checks it.
const ExportRule Rules[] = {
    {"adaptive_avg_pool2d", emitAdaptiveAvgPool, nullptr}, // GlobalAveragePool
    {"add", emitAdd, nullptr},
    {"avg_pool2d", emitAvgPool, nullptr},
    {"batch_norm", emitBatchNorm, nullptr},
    {"bmm", emitMatmul, nullptr}, // MatMul
    {"cat", emitCat, nullptr},
    {"contiguous", emitIdentity, nullptr},
    {"conv1d", emitConv1d, nullptr}, // Conv, 1-d kernel
    {"conv2d", emitConv, nullptr},
    {"conv_transpose2d", emitConvTranspose, nullptr},
    {"dequantize", emitPassFloat, nullptr}, // DequantizeLinear
    {"div", emitDiv, nullptr},              // arith family
    {"dropout", emitIdentity, nullptr},     // eval mode
    {"embedding", emitEmbedding, nullptr},  // Gather(weight, indices)
    {"expand", emitExpand, nullptr},
    {"flatten", emitFlatten, nullptr}, // Flatten(axis=1) or Reshape
    {"gelu", emitGelu, nullptr},       // Div, Erf, Add, Mul, Mul
    {"hardsigmoid", emitHardsigmoid, nullptr},
    {"hardswish", emitHardswish, nullptr}, // HardSwish (opset 14) or x*HS(x)
    {"hardtanh", emitHardtanh, nullptr},   // Clip
    {"identity", emitIdentity, nullptr},
    {"interpolate", emitInterpolate, nullptr}, // Resize
    {"layer_norm", emitLayerNorm, nullptr},    // LayerNormalization (17)
    {"leaky_relu", emitLeakyRelu, nullptr},
    {"linear", emitLinear, nullptr}, // Gemm(transB=1); MatMul+Add if not 2-D
    {"matmul", emitMatmul, nullptr},
    {"max_pool2d", emitMaxPool, nullptr},
    {"mean", emitMean, nullptr}, // ReduceMean
    {"mul", emitMul, nullptr},
    {"narrow", emitNarrow, nullptr}, // Slice
    {"neg", emitNeg, nullptr},
    {"permute", emitPermute, nullptr},
    {"quantize_per_tensor", emitPassFloat, nullptr}, // QuantizeLinear
    {"quantized_add", emitAdd, nullptr},             // QLinearAdd
    {"quantized_add_relu", emitAddRelu, nullptr},    // QLinearAdd
    {"quantized_batch_norm", emitBatchNorm, nullptr},
    {"quantized_batch_norm_relu", emitBatchNormRelu, nullptr},
    {"quantized_cat", emitCat, nullptr},        // QLinearConcat
    {"quantized_conv1d", emitQConv1d, nullptr}, // QLinearConv
    {"quantized_conv1d_relu", emitQConv1dRelu, nullptr},
    {"quantized_conv2d", emitQConv, nullptr},        // QLinearConv
    {"quantized_conv2d_add", emitQConvAdd, nullptr}, // float Conv+Add
    {"quantized_conv2d_add_relu", emitQConvAddRelu, nullptr},
    {"quantized_conv2d_relu", emitQConvRelu, nullptr}, // QLinearConv
    {"quantized_conv_transpose2d", emitQConvTranspose, nullptr},
    {"quantized_hardsigmoid", emitHardsigmoid, nullptr},
    {"quantized_hardswish", emitHardswish, nullptr},
    {"quantized_layer_norm", emitLayerNorm, nullptr},
    {"quantized_leaky_relu", emitLeakyRelu, nullptr}, // QLinearLeakyRelu
    {"quantized_linear", emitQLinear, nullptr},       // QGemm
    {"quantized_linear_dynamic", emitQLinearDynamic,
     nullptr}, // DynamicQuantizeLinear + MatMulInteger
    {"quantized_linear_relu", emitQLinearRelu, nullptr}, // QGemm
    {"quantized_matmul", emitMatmul, nullptr},           // QLinearMatMul
    {"quantized_mul", emitMul, nullptr},                 // QLinearMul
    {"quantized_sigmoid", emitSigmoid, nullptr},         // QLinearSigmoid
    {"quantized_softmax", emitSoftmax, nullptr},         // QLinearSoftmax
    {"quantized_tanh", emitTanh, nullptr},
    {"reciprocal", emitReciprocal, nullptr},
    {"relu", emitRelu, nullptr},
    {"relu6", emitRelu6, nullptr}, // Clip(0, 6)
    {"reshape", emitReshape, nullptr},
    {"rsub", emitRsub, nullptr},     // Sub(other, input)
    {"select", emitSelect, nullptr}, // Gather of a scalar
    {"sigmoid", emitSigmoid, nullptr},
    {"silu", emitSilu, nullptr}, // Sigmoid + Mul
    {"softmax", emitSoftmax, nullptr},
    {"sub", emitSub, nullptr},
    {"tanh", emitTanh, nullptr},
    {"transpose", emitTranspose, nullptr},
    {"view", emitReshape, nullptr},
};

} // namespace

llvm::Expected<double> onnxexport::quantizedInputScale(ExportState &S,
                                                       const NodeCall &C) {
  const Node *V = S.valueNode(C.Args->operand(0));
  const Value *X = V ? S.value(V) : nullptr;
  if (!X || !X->Quant.isPerTensor())
    return makeError("the input of a quantized op is not quantized per "
                     "tensor");
  return X->Quant.Scale;
}

const ExportRule *onnxexport::lookupExportRule(llvm::StringRef Op) {
  static const bool Sorted = [] {
    return std::is_sorted(std::begin(Rules), std::end(Rules),
                          [](const ExportRule &A, const ExportRule &B) {
                            return llvm::StringRef(A.Op) < B.Op;
                          });
  }();
  assert(Sorted && "export rules must be sorted by op name");
  (void)Sorted;
  auto It = std::lower_bound(
      std::begin(Rules), std::end(Rules), Op,
      [](const ExportRule &R, llvm::StringRef K) { return R.Op < K; });
  if (It == std::end(Rules) || It->Op != Op)
    return nullptr;
  return It;
}

std::optional<std::string> qfx::onnxExportDecision(llvm::StringRef Op) {
  const ExportRule *R = lookupExportRule(Op);
  if (!R)
    return std::nullopt;
  return R->Emit ? std::string() : std::string(R->NoFormReason);
}
