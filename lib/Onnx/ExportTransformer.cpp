//===- ExportTransformer.cpp - ONNX forms of issue 14's conv and ViT ops --===//
//
// The export rows of the conv family (conv1d, conv_transpose2d and their
// quantized forms) and of the transformer ops (layer_norm, gelu, matmul,
// bmm, expand, select, embedding), written as torch.onnx.export (PyTorch
// 1.13) writes them:
//   conv1d                 Conv with a 1-d kernel
//   conv_transpose2d       ConvTranspose (output_padding when not 0)
//   layer_norm             LayerNormalization(axis = -len(normalized_shape))
//                          at opset 17; before it the decomposition
//                          ReduceMean, Sub, Pow 2, ReduceMean, Add eps, Sqrt,
//                          Div [, Mul weight] [, Add bias]
//   gelu                   erf form Div(sqrt 2), Erf, Add 1, Mul x, Mul 1/2
//                          (ONNX has no Gelu before opset 20); tanh form as
//                          its formula with Tanh
//   matmul, bmm            MatMul
//   expand                 Expand to the size with -1 as 1 (a batch_like
//                          size[0] is Shape(batch_like)[0:1] so the batch
//                          stays dynamic)
//   select                 Gather(axis = dim) of a scalar index
//   embedding              Gather(weight, indices)
// Quantized forms go through the driver's DQ of each input and Q of the
// result: quantized_conv1d[_relu] and quantized_conv_transpose2d carry s8
// weights and int32 biases as quantized_conv2d does (ORT: QLinearConv; a
// float ConvTranspose between DQ and Q, its CPU provider having no int8
// one), quantized_matmul is DQ, DQ -> MatMul -> Q (ORT: QLinearMatMul) and
// quantized_layer_norm DQ -> LayerNormalization -> Q.
//
//===----------------------------------------------------------------------===//

#include "ExportState.h"

#include "qfx/Runtime/KernelsConvFamily.h"
#include "qfx/Support/Error.h"

#include "llvm/ADT/Twine.h"

#include <cmath>

using namespace qfx;
using namespace qfx::onnxexport;

namespace {

/// The weight operand of a conv-family node and its kernel dims (from dim
/// 2 on), as a constant with values.
llvm::Expected<const Tensor *> convWeight(ExportState &S, const NodeCall &C,
                                          int64_t Rank) {
  const Tensor *W = S.constant(C, C.param("weight"));
  if (!W || W->rank() != Rank)
    return makeError(llvm::Twine(C.Def->Name) + " needs a constant " +
                     llvm::Twine(Rank) + "-d weight");
  return W;
}

std::vector<int64_t> kernelOf(const Tensor &W) {
  return std::vector<int64_t>(W.shape().begin() + 2, W.shape().end());
}

/// Conv / ConvTranspose inputs: x, W and the bias when there is one (an
/// int32 DQ for a quantized node with an s8 weight).
llvm::Expected<std::vector<std::string>>
convInputs(ExportState &S, const NodeCall &C, const Tensor &W, bool Quantized,
           const Tensor *BiasScales = nullptr) {
  QFX_TRY(X, S.floatInput(C, 0));
  QFX_TRY(WName, S.weight(C, C.param("weight")));
  std::vector<std::string> Ins = {*X, *WName};
  size_t IB = C.param("bias");
  if (C.Args->isNone(IB))
    return Ins;
  if (Quantized && W.dtype() == DType::S8) {
    QFX_TRY(SIn, quantizedInputScale(S, C));
    QFX_TRY(B, S.quantizedBias(C, IB, *SIn, BiasScales ? *BiasScales : W));
    Ins.push_back(*B);
    return Ins;
  }
  QFX_TRY(B, S.floatInput(C, IB));
  Ins.push_back(*B);
  return Ins;
}

Result conv1d(ExportState &S, const NodeCall &C, bool Quantized, bool Relu) {
  QFX_TRY(P, conv1dParams(*C.Args));
  QFX_TRY(W, convWeight(S, C, 3));
  QFX_TRY(Ins, convInputs(S, C, **W, Quantized));
  onnx::NodeProto &N = S.add("Conv", *Ins);
  attrInts(N, "dilations", {P->Dilation[1]});
  attrInt(N, "group", P->Groups);
  attrInts(N, "kernel_shape", kernelOf(**W));
  attrInts(N, "pads", {P->Padding[1], P->Padding[1]});
  attrInts(N, "strides", {P->Stride[1]});
  std::string R = ExportState::out(N);
  return Relu ? ExportState::out(S.add("Relu", {R})) : R;
}

/// A transposed conv's s8 weight is quantized per tensor or per channel on
/// axis 1 (out / groups channels); its int32 bias has one scale per output
/// channel o, s_in * s_w[o mod (out / groups)]. Returns a stand-in tensor
/// carrying those per-output-channel qparams for quantizedBias.
std::optional<Tensor> transposedBiasScales(const Tensor &W, int64_t Groups) {
  const QuantParams &Q = W.quant();
  if (!Q.isPerChannel())
    return std::nullopt;
  std::vector<double> Scales;
  std::vector<int64_t> Zeros;
  int64_t PerGroup = static_cast<int64_t>(Q.Scales.size());
  for (int64_t O = 0; O < PerGroup * Groups; ++O) {
    Scales.push_back(Q.Scales[O % PerGroup]);
    Zeros.push_back(Q.ZeroPoints[O % PerGroup]);
  }
  Tensor T(DType::S8, {PerGroup * Groups});
  T.setQuant(QuantParams::perChannel(std::move(Scales), std::move(Zeros), 0));
  return T;
}

Result convTranspose(ExportState &S, const NodeCall &C, bool Quantized) {
  QFX_TRY(P, convTranspose2dParams(*C.Args));
  QFX_TRY(W, convWeight(S, C, 4));
  std::optional<Tensor> BiasScales = transposedBiasScales(**W, P->Groups);
  QFX_TRY(Ins, convInputs(S, C, **W, Quantized,
                          BiasScales ? &*BiasScales : nullptr));
  onnx::NodeProto &N = S.add("ConvTranspose", *Ins);
  attrInts(N, "dilations", P->Dilation);
  attrInt(N, "group", P->Groups);
  attrInts(N, "kernel_shape", kernelOf(**W));
  if (P->OutputPadding[0] || P->OutputPadding[1])
    attrInts(N, "output_padding", P->OutputPadding);
  attrInts(N, "pads",
           {P->Padding[0], P->Padding[1], P->Padding[0], P->Padding[1]});
  attrInts(N, "strides", P->Stride);
  return ExportState::out(N);
}

/// An f32 initializer of \p Dims filled with \p V.
std::string filled(ExportState &S, llvm::StringRef Hint,
                   llvm::ArrayRef<int64_t> Dims, float V) {
  Tensor T(DType::F32, Dims);
  std::fill_n(T.data<float>(), T.numElements(), V);
  return S.initializer(S.fresh(Hint), T);
}

} // namespace

//===--- Conv family -----------------------------------------------------===//

Result onnxexport::emitConv1d(ExportState &S, const NodeCall &C) {
  return conv1d(S, C, false, false);
}
Result onnxexport::emitQConv1d(ExportState &S, const NodeCall &C) {
  return conv1d(S, C, true, false);
}
Result onnxexport::emitQConv1dRelu(ExportState &S, const NodeCall &C) {
  return conv1d(S, C, true, true);
}
Result onnxexport::emitConvTranspose(ExportState &S, const NodeCall &C) {
  return convTranspose(S, C, false);
}
Result onnxexport::emitQConvTranspose(ExportState &S, const NodeCall &C) {
  return convTranspose(S, C, true);
}

//===--- Transformer ops -------------------------------------------------===//

/// layer_norm and quantized_layer_norm (its input's DQ and its result's Q
/// are the driver's; weight and bias stay f32 as in PyTorch).
Result onnxexport::emitLayerNorm(ExportState &S, const NodeCall &C) {
  QFX_TRY(Norm, C.Args->ints(C.param("normalized_shape")));
  QFX_TRY(Eps, C.Args->real(C.param("eps")));
  if (Norm->empty())
    return makeError("layer_norm over an empty normalized_shape");
  QFX_TRY(X, S.floatInput(C, 0));
  size_t IW = C.param("weight"), IB = C.param("bias");
  std::string W, B;
  if (!C.Args->isNone(IW)) {
    QFX_TRY(V, S.floatInput(C, IW));
    W = *V;
  }
  if (!C.Args->isNone(IB)) {
    QFX_TRY(V, S.floatInput(C, IB));
    B = *V;
  }
  int64_t Axis = -static_cast<int64_t>(Norm->size());
  if (S.opset() >= 17) {
    // LayerNormalization needs a scale; PyTorch's "no weight" is ones.
    if (W.empty())
      W = filled(S, "ones", *Norm, 1.0f);
    std::vector<std::string> Ins = {*X, W};
    if (!B.empty())
      Ins.push_back(B);
    onnx::NodeProto &N = S.add("LayerNormalization", Ins);
    attrInt(N, "axis", Axis);
    attrFloat(N, "epsilon", static_cast<float>(*Eps));
    return ExportState::out(N);
  }
  std::vector<int64_t> Axes;
  for (int64_t A = Axis; A < 0; ++A)
    Axes.push_back(A);
  onnx::NodeProto &Mean = S.add("ReduceMean", {*X});
  attrInts(Mean, "axes", Axes);
  std::string Num =
      ExportState::out(S.add("Sub", {*X, ExportState::out(Mean)}));
  std::string Sq =
      ExportState::out(S.add("Pow", {Num, S.constFloat("two", 2.0f)}));
  onnx::NodeProto &Var = S.add("ReduceMean", {Sq});
  attrInts(Var, "axes", Axes);
  std::string Den = ExportState::out(S.add(
      "Sqrt", {ExportState::out(S.add(
                  "Add", {ExportState::out(Var),
                          S.constFloat("eps", static_cast<float>(*Eps))}))}));
  std::string R = ExportState::out(S.add("Div", {Num, Den}));
  if (!W.empty())
    R = ExportState::out(S.add("Mul", {R, W}));
  if (!B.empty())
    R = ExportState::out(S.add("Add", {R, B}));
  return R;
}

Result onnxexport::emitGelu(ExportState &S, const NodeCall &C) {
  const Operand &A = C.Args->operand(C.param("approximate"));
  if (A.isTensor() || A.isList() || !A.arg().isString() ||
      (A.arg().getString() != "none" && A.arg().getString() != "tanh"))
    return makeError("gelu's approximate must be 'none' or 'tanh'");
  QFX_TRY(X, S.floatInput(C, 0));
  auto Mul = [&](const std::string &L, const std::string &R) {
    return ExportState::out(S.add("Mul", {L, R}));
  };
  if (A.arg().getString() == "none") {
    // x * (erf(x / sqrt(2)) + 1) * 0.5
    std::string Div = ExportState::out(
        S.add("Div", {*X, S.constFloat("sqrt2", float(std::sqrt(2.0)))}));
    std::string Erf = ExportState::out(S.add("Erf", {Div}));
    std::string Plus1 =
        ExportState::out(S.add("Add", {Erf, S.constFloat("one", 1.0f)}));
    return Mul(Mul(*X, Plus1), S.constFloat("half", 0.5f));
  }
  // 0.5 * (x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3))))
  const double Pi = 3.14159265358979323846;
  std::string Cube = Mul(*X, Mul(*X, *X));
  std::string Inner =
      Mul(S.constFloat("beta", float(std::sqrt(2.0 / Pi))),
          ExportState::out(
              S.add("Add", {*X, Mul(S.constFloat("kappa", 0.044715f), Cube)})));
  std::string Tanh = ExportState::out(S.add("Tanh", {Inner}));
  std::string Plus1 =
      ExportState::out(S.add("Add", {S.constFloat("one", 1.0f), Tanh}));
  return Mul(S.constFloat("half", 0.5f), Mul(*X, Plus1));
}

/// matmul, bmm and quantized_matmul (both inputs read through DQs).
Result onnxexport::emitMatmul(ExportState &S, const NodeCall &C) {
  QFX_TRY(A, S.floatInput(C, 0));
  QFX_TRY(B, S.floatInput(C, 1));
  return ExportState::out(S.add("MatMul", {*A, *B}));
}

Result onnxexport::emitExpand(ExportState &S, const NodeCall &C) {
  QFX_TRY(Sizes, C.Args->ints(C.param("size")));
  // Expand broadcasts both ways: -1 ("keep this dim") is 1.
  for (int64_t &D : *Sizes)
    if (D == -1)
      D = 1;
  QFX_TRY(X, S.floatInput(C, 0));
  size_t IL = C.param("batch_like");
  if (C.Args->isNone(IL) || Sizes->empty())
    return ExportState::out(S.add("Expand", {*X, S.constInts("size", *Sizes)}));
  // size[0] is batch_like's dim 0, read at run time.
  const Node *Like = S.valueNode(C.Args->operand(IL));
  if (!Like)
    return makeError("expand's batch_like must be a value of the graph");
  const Value *L = S.value(Like);
  if (!L)
    return makeError("reads '" + Like->name() + "', which has no ONNX value");
  std::string Shape = ExportState::out(S.add("Shape", {L->Name}));
  std::string Batch =
      ExportState::out(S.add("Slice", {Shape, S.constInts("batch_starts", {0}),
                                       S.constInts("batch_ends", {1}),
                                       S.constInts("batch_axes", {0})}));
  std::vector<int64_t> Rest(Sizes->begin() + 1, Sizes->end());
  onnx::NodeProto &Cat = S.add("Concat", {Batch, S.constInts("rest", Rest)});
  attrInt(Cat, "axis", 0);
  return ExportState::out(S.add("Expand", {*X, ExportState::out(Cat)}));
}

Result onnxexport::emitSelect(ExportState &S, const NodeCall &C) {
  QFX_TRY(Dim, C.Args->integer(C.param("dim")));
  QFX_TRY(Index, C.Args->integer(C.param("index")));
  QFX_TRY(X, S.floatInput(C, 0));
  // A 0-d index drops the axis, as select does; Gather takes a negative
  // index from the end, as select does.
  Tensor I(DType::S64, {});
  I.data<int64_t>()[0] = *Index;
  std::string IName = S.initializer(S.fresh("index"), I);
  onnx::NodeProto &N = S.add("Gather", {*X, IName});
  attrInt(N, "axis", *Dim);
  return ExportState::out(N);
}

Result onnxexport::emitEmbedding(ExportState &S, const NodeCall &C) {
  if (!C.Args->isNone(C.param("max_norm")))
    return makeError("embedding with max_norm has no ONNX form (it renorms "
                     "the weight in place)");
  const Operand &Idx = C.Args->operand(0);
  const Node *V = S.valueNode(Idx);
  std::string Indices;
  if (V) {
    const Value *I = S.value(V);
    if (!I)
      return makeError("reads '" + V->name() + "', which has no ONNX value");
    if (I->Dtype != DType::S64 && I->Dtype != DType::S32)
      return makeError("embedding's indices must be s64 or s32, got " +
                       llvm::Twine(dtypeName(I->Dtype)));
    Indices = I->Name;
  } else {
    const Tensor *T = S.constant(C, 0);
    if (!T || (T->dtype() != DType::S64 && T->dtype() != DType::S32))
      return makeError("embedding's indices must be s64 or s32");
    Indices = S.initializer(S.constantName(C, 0), *T);
  }
  QFX_TRY(W, S.weight(C, C.param("weight")));
  return ExportState::out(S.add("Gather", {*W, Indices}));
}
