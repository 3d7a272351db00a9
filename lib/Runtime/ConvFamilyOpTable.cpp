//===- ConvFamilyOpTable.cpp - conv1d as a unit-height conv2d -------------===//
//
// PyTorch computes conv1d as conv2d over [N, C, 1, L] (at::conv1d unsqueezes
// dim 2), so the 1-d entries check their operands in 1-d terms, rebind the
// call to the 2-d op with a unit height, and drop that height again. The
// 2-d op's kernels (reference, oneDNN, quantized) then give PyTorch's
// numbers without a second implementation.
//
//===----------------------------------------------------------------------===//

#include "ConvFamilyOpTable.h"
#include "QuantKernels.h"

#include "qfx/Runtime/KernelsConvFamily.h"
#include "qfx/Support/Error.h"

#include <cmath>

using namespace qfx;

namespace {

#define QFX_TRY(Var, Expr)                                                     \
  auto Var = (Expr);                                                           \
  if (!Var)                                                                    \
    return Var.takeError();

/// A 1-d conv hyper-parameter: an int or a list of one int (PyTorch's
/// _single), at least \p Min.
llvm::Expected<int64_t> single(const BoundArgs &B, size_t I, int64_t Min) {
  QFX_TRY(L, B.ints(I));
  if (L->size() != 1)
    return B.error(I, "expected an int or one int, got " +
                          llvm::Twine(L->size()) + " ints");
  if ((*L)[0] < Min)
    return B.error(I, "must be at least " + llvm::Twine(Min) + ", got " +
                          llvm::Twine((*L)[0]));
  return (*L)[0];
}

/// Where a conv1d-style schema keeps its operands: input, weight, bias, then
/// stride / padding / dilation / groups, then anything else (scale ...).
constexpr size_t Input = 0, Weight = 1, Stride = 3, Groups = 6;

/// \p T with a unit dimension inserted at 2 (\p Insert) or removed there.
Tensor unitHeight(const Tensor &T, bool Insert) {
  Shape S(T.shape().begin(), T.shape().end());
  if (Insert)
    S.insert(S.begin() + 2, 1);
  else
    S.erase(S.begin() + 2);
  return T.reshaped(S);
}

/// \p B (a 1-d call) rebound as a call of \p Op2d: 3-d input and weight get
/// a unit height, the hyper-parameters become pairs (1, s), (0, p), (1, d).
llvm::Expected<BoundArgs> as2d(const BoundArgs &B, const OpDef &Op2d) {
  QFX_TRY(X, B.tensor(Input));
  QFX_TRY(W, B.tensor(Weight));
  if ((*X)->rank() != 3)
    return B.error(Input, "expected a 3-d input [N, C, L], got " +
                              formatShape((*X)->shape()));
  if ((*W)->rank() != 3)
    return B.error(Weight, "expected a 3-d weight [out, in/groups, k], got " +
                               formatShape((*W)->shape()));
  QFX_TRY(S, single(B, Stride, 1));
  QFX_TRY(Pad, single(B, Stride + 1, 0));
  QFX_TRY(D, single(B, Stride + 2, 1));
  QFX_TRY(G, B.integer(Groups));
  if (*G < 1)
    return B.error(Groups, "must be at least 1, got " + llvm::Twine(*G));
  int64_t C = (*X)->dim(1), O = (*W)->dim(0);
  if (O % *G)
    return B.error(Groups, "out_channels (" + llvm::Twine(O) +
                               ") is not divisible by groups (" +
                               llvm::Twine(*G) + ")");
  if (C != (*W)->dim(1) * *G)
    return B.error(Groups, "input has " + llvm::Twine(C) +
                               " channels but weight expects " +
                               llvm::Twine((*W)->dim(1) * *G) +
                               " (groups=" + llvm::Twine(*G) + ")");
  std::vector<Operand> Vals;
  std::vector<const char *> Names;
  for (size_t I = 0; I < B.size(); ++I) {
    Names.push_back(Op2d.Params[I].Name);
    const Operand &O = B.operand(I);
    if (I == Input || I == Weight)
      Vals.emplace_back(unitHeight(O.tensor(), true));
    else if (I == Stride)
      Vals.emplace_back(Argument::ints({1, *S}));
    else if (I == Stride + 1)
      Vals.emplace_back(Argument::ints({0, *Pad}));
    else if (I == Stride + 2)
      Vals.emplace_back(Argument::ints({1, *D}));
    else
      Vals.push_back(O);
  }
  return BoundArgs(B.op(), std::move(Names), std::move(Vals));
}

/// The 2-d op's error with its name replaced by the 1-d op's.
llvm::Error renamed(llvm::Error E, const OpDef &Op2d, llvm::StringRef Op) {
  std::string Msg = errorToString(std::move(E));
  llvm::StringRef M(Msg);
  if (M.consume_front(Op2d.Name) && M.startswith(":"))
    return makeError(Op + M);
  return makeError(Msg);
}

template <const char *Name2d>
llvm::Expected<TensorType> infer1d(const BoundArgs &B) {
  const OpDef *D = lookupOp(Name2d);
  QFX_TRY(B2, as2d(B, *D));
  auto T = D->Infer(*B2);
  if (!T)
    return renamed(T.takeError(), *D, B.op());
  T->Dims.erase(T->Dims.begin() + 2);
  return *T;
}

template <const char *Name2d> llvm::Expected<Tensor> run1d(const BoundArgs &B) {
  const OpDef *D = lookupOp(Name2d);
  QFX_TRY(B2, as2d(B, *D));
  auto T = D->Run(*B2);
  if (!T)
    return renamed(T.takeError(), *D, B.op());
  return unitHeight(*T, false);
}

//===----------------------------------------------------------------------===//
// conv_transpose2d(input, weight, bias=None, stride=1, padding=0,
// output_padding=0, groups=1, dilation=1)
//===----------------------------------------------------------------------===//

llvm::Expected<TensorType> inferConvTranspose(const BoundArgs &B) {
  QFX_TRY(X, B.tensor(0));
  QFX_TRY(W, B.tensor(1));
  QFX_TRY(Bias, B.optTensor(2));
  for (size_t I : {size_t(0), size_t(1)})
    if (B.operand(I).tensor().dtype() != DType::F32)
      return B.error(I, "expected an f32 tensor, got " +
                            dtypeName(B.operand(I).tensor().dtype()));
  QFX_TRY(P, convTranspose2dParams(B));
  std::optional<llvm::ArrayRef<int64_t>> BS;
  if (*Bias)
    BS = (*Bias)->shape();
  QFX_TRY(S, ref::convTranspose2dShape((*X)->shape(), (*W)->shape(), BS, *P));
  return TensorType{DType::F32, *S, {}};
}

llvm::Expected<Tensor> runConvTranspose(const BoundArgs &B) {
  QFX_TRY(T, inferConvTranspose(B));
  QFX_TRY(P, convTranspose2dParams(B));
  const Tensor *Bias = B.isNone(2) ? nullptr : &B.operand(2).tensor();
  return ref::convTranspose2d(B.operand(0).tensor(), B.operand(1).tensor(),
                              Bias, *P);
}

//===----------------------------------------------------------------------===//
// quantized_conv_transpose2d(input, weight, bias, stride, padding,
// output_padding, groups, dilation, scale, zero_point): u8 / s8 input per
// tensor, s8 weight [in, out / groups, kH, kW] per tensor or per channel on
// axis 1 (its output channels), f32 bias.
//===----------------------------------------------------------------------===//

struct QConvTCall {
  ref::ConvTranspose2dParams P;
  qref::OutputQuant Out;
  Shape Result;
};

llvm::Expected<QConvTCall> qconvTCall(const BoundArgs &B) {
  QFX_TRY(X, B.tensor(0));
  QFX_TRY(W, B.tensor(1));
  QFX_TRY(Bias, B.optTensor(2));
  if (!qref::isQuantizedActivation(**X))
    return B.error(0, "expected a u8 or s8 tensor with per-tensor qparams, "
                      "got " +
                          qref::describe(**X));
  const QuantParams &WQ = (*W)->quant();
  bool PerChannel1 = WQ.isPerChannel() && WQ.Axis == 1 &&
                     static_cast<int64_t>(WQ.Scales.size()) ==
                         ((*W)->rank() == 4 ? (*W)->dim(1) : -1);
  if ((*W)->dtype() != DType::S8 || !(WQ.isPerTensor() || PerChannel1))
    return B.error(1, "expected an s8 weight quantized per tensor or per "
                      "channel on axis 1 (output channels), got " +
                          qref::describe(**W));
  if (*Bias && (*Bias)->dtype() != DType::F32)
    return B.error(2, "expected an f32 bias");
  QConvTCall C;
  QFX_TRY(P, convTranspose2dParams(B));
  C.P = *P;
  QFX_TRY(Scale, B.real(8));
  QFX_TRY(Zp, B.integer(9));
  if (!(*Scale > 0) || !std::isfinite(*Scale))
    return B.error(8, "must be positive and finite");
  DType D = (*X)->dtype();
  if (*Zp < (D == DType::U8 ? 0 : -128) || *Zp > (D == DType::U8 ? 255 : 127))
    return B.error(9, "zero point " + llvm::Twine(*Zp) + " out of range for " +
                          dtypeName(D));
  C.Out.Scale = *Scale;
  C.Out.ZeroPoint = *Zp;
  std::optional<llvm::ArrayRef<int64_t>> BS;
  if (*Bias)
    BS = (*Bias)->shape();
  auto S = ref::convTranspose2dShape((*X)->shape(), (*W)->shape(), BS, C.P);
  if (!S) {
    std::string Msg = errorToString(S.takeError());
    return makeError("quantized_" + Msg);
  }
  C.Result = *S;
  return C;
}

llvm::Expected<TensorType> inferQConvTranspose(const BoundArgs &B) {
  QFX_TRY(C, qconvTCall(B));
  return TensorType{B.operand(0).tensor().dtype(), C->Result,
                    QuantParams::perTensor(C->Out.Scale, C->Out.ZeroPoint)};
}

/// A transposed conv is the conv2d (stride 1, dilation d) of the input
/// spread out by the stride with zero-point fill, padded by d * (k - 1) - p
/// before and that plus output_padding after, with the weight transposed to
/// [out, in / groups, kH, kW] and flipped. The integer accumulators are
/// exactly the transposed conv's, so qref::conv2d's requantization applies.
llvm::Expected<Tensor> runQConvTranspose(const BoundArgs &B) {
  QFX_TRY(C, qconvTCall(B));
  const Tensor &X = B.operand(0).tensor(), &W = B.operand(1).tensor();
  const ref::ConvTranspose2dParams &P = C->P;
  const int64_t N = X.dim(0), IC = X.dim(1), IH = X.dim(2), IW = X.dim(3);
  const int64_t OCG = W.dim(1), KH = W.dim(2), KW = W.dim(3);
  const int64_t G = P.Groups, ICG = IC / G, OC = OCG * G;
  const int64_t OH = C->Result[2], OW = C->Result[3];
  const int64_t SH = OH + P.Dilation[0] * (KH - 1),
                SW = OW + P.Dilation[1] * (KW - 1);
  const int64_t Top = P.Dilation[0] * (KH - 1) - P.Padding[0],
                Left = P.Dilation[1] * (KW - 1) - P.Padding[1];
  Tensor Spread(X.dtype(), {N, IC, SH, SW});
  Spread.setQuant(X.quant());
  const int64_t Z = X.quant().ZeroPoint;
  for (int64_t I = 0; I < Spread.numElements(); ++I)
    Spread.setFromDouble(I, double(Z));
  for (int64_t NC = 0; NC < N * IC; ++NC)
    for (int64_t Y = 0; Y < IH; ++Y) {
      int64_t SY = Y * P.Stride[0] + Top;
      if (SY < 0 || SY >= SH)
        continue;
      for (int64_t XI = 0; XI < IW; ++XI) {
        int64_t SX = XI * P.Stride[1] + Left;
        if (SX >= 0 && SX < SW)
          Spread.setFromDouble((NC * SH + SY) * SW + SX,
                               X.getAsDouble((NC * IH + Y) * IW + XI));
      }
    }
  Tensor WT(DType::S8, {OC, ICG, KH, KW});
  for (int64_t Gi = 0; Gi < G; ++Gi)
    for (int64_t O = 0; O < OCG; ++O)
      for (int64_t I = 0; I < ICG; ++I)
        for (int64_t Y = 0; Y < KH; ++Y)
          for (int64_t XI = 0; XI < KW; ++XI)
            WT.data<int8_t>()[(((Gi * OCG + O) * ICG + I) * KH + Y) * KW + XI] =
                W.data<int8_t>()[(((Gi * ICG + I) * OCG + O) * KH +
                                  (KH - 1 - Y)) *
                                     KW +
                                 (KW - 1 - XI)];
  const QuantParams &WQ = W.quant();
  if (WQ.isPerChannel()) {
    std::vector<double> S;
    std::vector<int64_t> Zs;
    for (int64_t O = 0; O < OC; ++O) {
      S.push_back(WQ.Scales[O % OCG]);
      Zs.push_back(WQ.ZeroPoints[O % OCG]);
    }
    WT.setQuant(QuantParams::perChannel(std::move(S), std::move(Zs), 0));
  } else {
    WT.setQuant(WQ);
  }
  ref::Conv2dParams CP;
  CP.Dilation = P.Dilation;
  CP.Groups = G;
  const Tensor *Bias = B.isNone(2) ? nullptr : &B.operand(2).tensor();
  return qref::conv2d(Spread, WT, Bias, CP, nullptr, C->Out);
}

constexpr char Conv2d[] = "conv2d";
constexpr char QConv2d[] = "quantized_conv2d";
constexpr char QConvRelu2d[] = "quantized_conv2d_relu";

} // namespace

llvm::Expected<ref::Conv2dParams> qfx::conv1dParams(const BoundArgs &B) {
  QFX_TRY(S, single(B, Stride, 1));
  QFX_TRY(Pad, single(B, Stride + 1, 0));
  QFX_TRY(D, single(B, Stride + 2, 1));
  QFX_TRY(G, B.integer(Groups));
  ref::Conv2dParams P;
  P.Stride = {1, *S};
  P.Padding = {0, *Pad};
  P.Dilation = {1, *D};
  P.Groups = *G;
  return P;
}

llvm::Expected<ref::ConvTranspose2dParams>
qfx::convTranspose2dParams(const BoundArgs &B) {
  ref::ConvTranspose2dParams P;
  QFX_TRY(S, B.pair(3));
  QFX_TRY(Pad, B.pair(4));
  QFX_TRY(OutPad, B.pair(5));
  QFX_TRY(G, B.integer(6));
  QFX_TRY(D, B.pair(7));
  P.Stride = *S;
  P.Padding = *Pad;
  P.OutputPadding = *OutPad;
  P.Groups = *G;
  P.Dilation = *D;
  return P;
}

std::vector<OpDef> qfx::convFamilyOpDefs() {
  using P = OpParam;
  std::vector<OpParam> Conv = {P{"input"},
                               P{"weight"},
                               P{"bias", Argument::none()},
                               P{"stride", Argument::integer(1)},
                               P{"padding", Argument::integer(0)},
                               P{"dilation", Argument::integer(1)},
                               P{"groups", Argument::integer(1)}};
  std::vector<OpParam> QConv = Conv;
  QConv.push_back(P{"scale"});
  QConv.push_back(P{"zero_point"});
  std::vector<OpParam> ConvT = {P{"input"},
                                P{"weight"},
                                P{"bias", Argument::none()},
                                P{"stride", Argument::integer(1)},
                                P{"padding", Argument::integer(0)},
                                P{"output_padding", Argument::integer(0)},
                                P{"groups", Argument::integer(1)},
                                P{"dilation", Argument::integer(1)}};
  std::vector<OpParam> QConvT = ConvT;
  QConvT.push_back(P{"scale"});
  QConvT.push_back(P{"zero_point"});
  return {
      {"conv1d", true, false, Conv, infer1d<Conv2d>, run1d<Conv2d>},
      {"conv_transpose2d", true, false, ConvT, inferConvTranspose,
       runConvTranspose},
      {"quantized_conv_transpose2d", true, false, QConvT, inferQConvTranspose,
       runQConvTranspose},
      {"quantized_conv1d", true, false, QConv, infer1d<QConv2d>,
       run1d<QConv2d>},
      {"quantized_conv1d_relu", true, false, QConv, infer1d<QConvRelu2d>,
       run1d<QConvRelu2d>},
  };
}
