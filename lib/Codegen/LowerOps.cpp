//===- LowerOps.cpp - One lowering per kind of step -----------------------===//
//
// Conv and linear fold the input, weight and output scales into oneDNN's
// output scales (per channel) and take zero points as attributes. oneDNN 2.6
// adds the bias before scaling, so an int8 bias is stored divided by
// input_scale * weight_scale. Pools, concats, quantize and dequantize are
// primitives too; int8 adds and clamps are host kernels.
//
//===----------------------------------------------------------------------===//

#include "HostKernels.h"
#include "Lowerer.h"

#include "qfx/Backend/OneDNN/FloatKernels.h"
#include "qfx/IR/GraphModule.h"
#include "qfx/Runtime/ModuleRunner.h"
#include "qfx/Runtime/Op.h"
#include "qfx/Support/Error.h"

#include "llvm/ADT/STLExtras.h"

#include <cfloat>
#include <cmath>
#include <cstdio>
#include <cstring>

using namespace qfx;
using namespace qfx::codegen;
using dnnl::memory;
using Tag = memory::format_tag;

namespace {

//===----------------------------------------------------------------------===//
// Module attributes and quantization parameters
//===----------------------------------------------------------------------===//

llvm::Expected<std::array<int64_t, 2>> attrPair(const Node &N,
                                                const ModuleInfo &M,
                                                llvm::StringRef Name,
                                                int64_t Default) {
  const Argument *A = M.attr(Name);
  if (!A)
    return std::array<int64_t, 2>{Default, Default};
  if (A->isInt())
    return std::array<int64_t, 2>{A->getInt(), A->getInt()};
  auto L = A->getIntList();
  if (L && L->size() == 2)
    return std::array<int64_t, 2>{(*L)[0], (*L)[1]};
  return nodeError(N, "attribute '" + Name + "' is not an int or two ints");
}

llvm::Expected<int64_t> attrInt(const Node &N, const ModuleInfo &M,
                                llvm::StringRef Name, int64_t Default) {
  const Argument *A = M.attr(Name);
  if (!A)
    return Default;
  if (!A->isInt())
    return nodeError(N, "attribute '" + Name + "' is not an int");
  return A->getInt();
}

/// Integer range of an int8 dtype.
std::pair<int, int> intRange(DType T) {
  return T == DType::U8 ? std::make_pair(0, 255) : std::make_pair(-128, 127);
}

/// The module holding a fused float kind's weights (its child "0").
const ModuleInfo &weightModule(const ModuleInfo &M) {
  if (lookupFusedKind(M.kind()))
    if (const ModuleInfo *C = M.child("0"))
      return *C;
  return M;
}

/// Per-output-channel weight scales of a symmetric s8 weight.
llvm::Expected<std::vector<double>> weightScales(const Node &N,
                                                 const Tensor &W) {
  const QuantParams &Q = W.quant();
  int64_t O = W.dim(0);
  if (W.dtype() != DType::S8)
    return nodeError(N, "int8 weights must be s8, got " + dtypeName(W.dtype()));
  if (Q.isPerTensor()) {
    if (Q.ZeroPoint != 0)
      return nodeError(N, "weight zero point must be 0 (symmetric)");
    return std::vector<double>(O, Q.Scale);
  }
  if (!Q.isPerChannel() || Q.Axis != 0 ||
      static_cast<int64_t>(Q.Scales.size()) != O)
    return nodeError(N, "weights need per-tensor or per-channel (axis 0) "
                        "quantization parameters");
  if (llvm::any_of(Q.ZeroPoints, [](int64_t Z) { return Z != 0; }))
    return nodeError(N, "weight zero points must be 0 (symmetric)");
  return Q.Scales;
}

/// The output qparams of a quantized module: its scale / zero_point
/// attributes (the node type carries the same).
QuantParams moduleOutputQuant(const ModuleInfo &M, const TensorType &T) {
  const Argument *S = M.attr("scale"), *Z = M.attr("zero_point");
  if (S && Z && (S->isFloat() || S->isInt()) && Z->isInt())
    return QuantParams::perTensor(
        S->isFloat() ? S->getFloat() : double(S->getInt()), Z->getInt());
  return T.Quant;
}

/// oneDNN adds the bias before the output scale, which PyTorch's onednn
/// engine sets up with reciprocal float scales: per output channel
///   b = float(1 / x_scale) * float(1 / w_scale[c]),
///   out = (acc + bias[c] * b) * (float(1 / out_scale) / b).
/// The same float operations as the reference kernels, so results agree
/// bit for bit up to oneDNN's own summation order.
float biasScale(const QuantParams &XQ, double WScale) {
  return static_cast<float>(1.0 / XQ.Scale) * static_cast<float>(1.0 / WScale);
}

/// Output scales per channel; a fused dequantize keeps real units.
std::vector<float> requantScales(const QuantParams &XQ,
                                 llvm::ArrayRef<double> WS,
                                 const QuantParams &OutQ, bool Dequant) {
  float InvOut = Dequant ? 1.0f : static_cast<float>(1.0 / OutQ.Scale);
  std::vector<float> R;
  for (double S : WS)
    R.push_back(InvOut / biasScale(XQ, S));
  return R;
}

/// The bias in accumulator units.
Tensor scaledBias(const Tensor &B, const QuantParams &XQ,
                  llvm::ArrayRef<double> WS, llvm::ArrayRef<int64_t> Dims) {
  Tensor R(DType::F32, Dims);
  for (size_t C = 0; C < WS.size(); ++C)
    R.data<float>()[C] = B.data<float>()[C] * biasScale(XQ, WS[C]);
  return R;
}

/// Shortest readable form of a scale or bound (six significant digits).
std::string shortFloat(double V) {
  char Buf[32];
  std::snprintf(Buf, sizeof(Buf), "%g", V);
  return Buf;
}

} // namespace

void codegen::appendClamp(dnnl::post_ops &PO, double Lo, double Hi,
                          std::string &D) {
  if (Lo == 0.0 && std::isinf(Hi)) {
    PO.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
    D += " relu";
    return;
  }
  float L = std::isinf(Lo) ? -FLT_MAX : static_cast<float>(Lo);
  float H = std::isinf(Hi) ? FLT_MAX : static_cast<float>(Hi);
  PO.append_eltwise(1.0f, dnnl::algorithm::eltwise_clip, L, H);
  D += " clip(" + shortFloat(L) + "," + shortFloat(H) + ")";
}

namespace {

/// \p X rounded to the integer grid of scale \p S (infinities stay), as
/// PyTorch's quantize_val rounds clamp bounds.
double quantBound(double X, double S) {
  if (std::isinf(X))
    return X;
  float Inv = 1.0f / static_cast<float>(S);
  return std::nearbyint(static_cast<float>(X) * Inv);
}

/// Integer bounds of a real clamp on an int8 tensor with qparams \p Q,
/// zero point included and saturated to the dtype.
std::pair<int, int> intClamp(const RealClamp &C, const QuantParams &Q,
                             DType Dt) {
  auto [Min, Max] = intRange(Dt);
  double Lo = Min, Hi = Max;
  if (C.Active) {
    Lo = std::max(Lo, quantBound(C.Lo, Q.Scale) + Q.ZeroPoint);
    Hi = std::min(Hi, quantBound(C.Hi, Q.Scale) + Q.ZeroPoint);
  }
  return {static_cast<int>(std::min<double>(Lo, Max)),
          static_cast<int>(std::max<double>(Hi, Min))};
}

dnnl::primitive_attr userAttr() {
  dnnl::primitive_attr A;
  A.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return A;
}

std::string describeQuant(const QuantParams &Q) {
  return "scale=" + shortFloat(Q.Scale) + " zp=" + std::to_string(Q.ZeroPoint);
}

} // namespace

//===----------------------------------------------------------------------===//
// Post-ops and the sum destination
//===----------------------------------------------------------------------===//

dnnl::post_ops Lowerer::postOps(const Group &G, DType OutDt,
                                const QuantParams &OutQ, const Value *Other,
                                std::string &Detail) const {
  dnnl::post_ops PO;
  const TensorType &AnchorT = typeOf(G.Anchor);
  bool Int8 = AnchorT.Dtype != DType::F32;
  if (Other) {
    if (Int8) {
      // acc_out += (other - zp) * other_scale / out_scale.
      float S = static_cast<float>(Other->Q.Scale / OutQ.Scale);
      auto Z = static_cast<int32_t>(Other->Q.ZeroPoint);
      if (Z != 0)
        PO.append_sum(S, Z, toDnnl(Other->Dt));
      else
        PO.append_sum(S, toDnnl(Other->Dt));
    } else {
      PO.append_sum(1.0f);
    }
    Detail += " sum";
  }
  auto AppendGelu = [&] {
    if (G.Gelu == Group::GeluKind::None)
      return;
    bool Tanh = G.Gelu == Group::GeluKind::Tanh;
    PO.append_eltwise(1.0f,
                      Tanh ? dnnl::algorithm::eltwise_gelu_tanh
                           : dnnl::algorithm::eltwise_gelu_erf,
                      0.0f, 0.0f);
    Detail += Tanh ? " gelu_tanh" : " gelu_erf";
  };
  if (!Int8) {
    if (G.Clamp.Active)
      appendClamp(PO, G.Clamp.Lo, G.Clamp.Hi, Detail);
    for (const ActPost &A : G.Acts)
      appendActivation(PO, A.Act, Detail);
    AppendGelu();
    return PO;
  }
  // Clamps act on the value in units of the output scale before the zero
  // point is added; bounds are rounded to that grid like the reference's
  // quantized clamps.
  double Lo = -std::numeric_limits<double>::infinity();
  double Hi = std::numeric_limits<double>::infinity();
  if (G.Clamp.Active) {
    Lo = quantBound(G.Clamp.Lo, OutQ.Scale);
    Hi = quantBound(G.Clamp.Hi, OutQ.Scale);
  }
  if (OutDt != DType::F32) {
    if (G.Clamp.Active)
      appendClamp(PO, Lo, Hi, Detail);
    return PO;
  }
  auto [Min, Max] = intRange(AnchorT.Dtype);
  if (G.Gelu != Group::GeluKind::None) {
    // Transformer MLPs (linear -> dequantize -> gelu): the value in output
    // steps is rounded and saturated as the int8 result is, then scaled to
    // real units for the gelu, so the result equals the reference's.
    PO.append_eltwise(1.0f, dnnl::algorithm::eltwise_round, 0.0f, 0.0f);
    double L = std::max<double>(Lo, Min - OutQ.ZeroPoint);
    double H = std::min<double>(Hi, Max - OutQ.ZeroPoint);
    PO.append_eltwise(1.0f, dnnl::algorithm::eltwise_clip,
                      static_cast<float>(L), static_cast<float>(H));
    PO.append_eltwise(1.0f, dnnl::algorithm::eltwise_linear,
                      static_cast<float>(OutQ.Scale), 0.0f);
    Detail += " round";
    AppendGelu();
    Detail += " f32-dst";
    return PO;
  }
  // A fused dequantize writes real values: the clamp, and the saturation
  // the int8 result would have had, in real units.
  Lo = std::max<double>(Lo, Min - OutQ.ZeroPoint) * OutQ.Scale;
  Hi = std::min<double>(Hi, Max - OutQ.ZeroPoint) * OutQ.Scale;
  appendClamp(PO, Lo, Hi, Detail);
  AppendGelu();
  Detail += " f32-dst";
  return PO;
}

int Lowerer::sumDestination(const Group &G, int Other, const memory::desc &Md,
                            Layout L, int SrcBuf, SumMode &Mode) {
  const Value O = Vals[Other];
  memory::dims Dims = Md.dims();
  bool SameBytes =
      llvm::equal(O.Dims, Dims) &&
      (O.L == L || (layoutsAgree(O.Dims) && O.L != Layout::Blocked &&
                    L != Layout::Blocked)) &&
      O.Md.get_size() == Md.get_size();
  // conv(x) + x: the primitive would overwrite its own source.
  if (SameBytes && O.Buf != SrcBuf &&
      bufferDeadAfter(O.Buf, Pos.lookup(G.last()))) {
    Mode = SumMode::InPlace;
    return Other;
  }
  Mode = SumMode::Copied;
  int Copy = newValue(O.Dt, O.Dims, L, O.Q, G.name() + ".identity");
  addReorder(Other, Copy, dnnl::primitive_attr(), G.name() + ".identity",
             "copy");
  return Copy;
}

/// Binds the destination of a group: \p Dst for its last member, and its
/// buffer as home of every member for liveness.
static void bindGroup(Lowerer &L, const Group &G, int Dst) {
  for (const Node *M : G.Members)
    L.bindNode(M, Dst);
}

//===----------------------------------------------------------------------===//
// Convolution
//===----------------------------------------------------------------------===//

namespace {

/// Shapes and hyper-parameters of one conv.
struct ConvGeometry {
  int64_t N, C, H, W, O, KH, KW, OH, OW, Groups;
  std::array<int64_t, 2> Stride, Pad, Dil;
};

llvm::Expected<ConvGeometry> convGeometry(const Node &N, const ModuleInfo &M,
                                          const Value &X, const Tensor &W) {
  ConvGeometry G;
  auto S = attrPair(N, M, "stride", 1);
  auto Pd = attrPair(N, M, "padding", 0);
  auto D = attrPair(N, M, "dilation", 1);
  auto Gr = attrInt(N, M, "groups", 1);
  if (!S || !Pd || !D || !Gr) {
    llvm::Error E = llvm::joinErrors(S.takeError(), Pd.takeError());
    E = llvm::joinErrors(std::move(E), D.takeError());
    return llvm::joinErrors(std::move(E), Gr.takeError());
  }
  G.Stride = *S;
  G.Pad = *Pd;
  G.Dil = *D;
  G.Groups = *Gr;
  G.N = X.Dims[0];
  G.C = X.Dims[1];
  G.H = X.Dims[2];
  G.W = X.Dims[3];
  G.O = W.dim(0);
  G.KH = W.dim(2);
  G.KW = W.dim(3);
  if (G.Groups < 1 || G.O % G.Groups || W.dim(1) * G.Groups != G.C)
    return nodeError(N, "input has " + llvm::Twine(G.C) +
                            " channels but weight expects " +
                            llvm::Twine(W.dim(1)) +
                            " (groups=" + llvm::Twine(G.Groups) + ")");
  auto Out = [](int64_t In, int64_t P, int64_t D, int64_t K, int64_t S) {
    return (In + 2 * P - D * (K - 1) - 1) / S + 1;
  };
  G.OH = Out(G.H, G.Pad[0], G.Dil[0], G.KH, G.Stride[0]);
  G.OW = Out(G.W, G.Pad[1], G.Dil[1], G.KW, G.Stride[1]);
  if (G.OH < 1 || G.OW < 1 ||
      llvm::any_of(G.Stride, [](int64_t V) { return V < 1; }) ||
      llvm::any_of(G.Dil, [](int64_t V) { return V < 1; }))
    return nodeError(N, "conv parameters give an empty output");
  return G;
}

/// OIHW (or grouped GOIHW) dims of the weights.
memory::dims weightDims(const ConvGeometry &G) {
  if (G.Groups == 1)
    return {G.O, G.C, G.KH, G.KW};
  return {G.Groups, G.O / G.Groups, G.C / G.Groups, G.KH, G.KW};
}

} // namespace

llvm::Expected<WeightedOp> Lowerer::weightedOp(const Group &G, const Value &XI,
                                               const Tensor &W, const Tensor *B,
                                               bool CodesAsF32) {
  const Node &N = *G.Anchor;
  WeightedOp Op;
  Op.Int8 = XI.Dt != DType::F32;
  if ((W.dtype() == DType::F32) == Op.Int8)
    return nodeError(N, "weight dtype " + dtypeName(W.dtype()) +
                            " does not match the input's " + dtypeName(XI.Dt));
  const TensorType &AnchorT = typeOf(&N);
  assert(
      (!CodesAsF32 || (Op.Int8 && !G.Dequant && G.Acts.empty() && !G.SumOther &&
                       !G.Clamp.Active && G.Gelu == Group::GeluKind::None)) &&
      "f32 codes of a plain int8 op only");
  Op.OutDt = G.Dequant || CodesAsF32 ? DType::F32 : AnchorT.Dtype;
  Op.Attr = userAttr();
  if (Op.Int8) {
    Op.OutQ = Op.AnchorQ =
        moduleOutputQuant(*GM.lookupModule(N.target()), AnchorT);
    // With a fused activation the scales leave the anchor's grid and the
    // post-ops requantize (int8ActPostOps).
    if (!G.Acts.empty() && !G.Dequant)
      Op.OutQ = G.Acts.back().Q;
    auto WS = weightScales(N, W);
    if (!WS)
      return WS.takeError();
    // A gelu after a fused dequantize needs the int8 result's rounding
    // first (postOps): the scales then give output steps, as without it.
    bool RealUnits =
        G.Dequant && G.Acts.empty() && G.Gelu == Group::GeluKind::None;
    Op.Attr.set_output_scales(1 << 1,
                              requantScales(XI.Q, *WS, Op.AnchorQ, RealUnits));
    if (B)
      Op.Bias = scaledBias(*B, XI.Q, *WS, {W.dim(0)});
    // Zero points are attributes only when present: without one, oneDNN
    // skips the zero-point compensation entirely.
    if (XI.Q.ZeroPoint != 0)
      Op.Attr.set_zero_points(DNNL_ARG_SRC, 0,
                              {static_cast<int32_t>(XI.Q.ZeroPoint)});
    if (!G.Dequant && !CodesAsF32 && Op.OutQ.ZeroPoint != 0)
      Op.Attr.set_zero_points(DNNL_ARG_DST, 0,
                              {static_cast<int32_t>(Op.OutQ.ZeroPoint)});
    Op.Detail = "in " + describeQuant(XI.Q) + " out " + describeQuant(Op.OutQ);
  } else if (B) {
    Op.Bias = *B;
  }
  if (G.SumOther) {
    auto O = valueOf(G.SumOther);
    if (!O)
      return O.takeError();
    Op.Other = *O;
  }
  if (CodesAsF32) {
    // The output steps rounded and saturated as the int8 result would be,
    // without the zero point.
    auto [Min, Max] = intRange(AnchorT.Dtype);
    dnnl::post_ops PO;
    PO.append_eltwise(1.0f, dnnl::algorithm::eltwise_round, 0.0f, 0.0f);
    PO.append_eltwise(1.0f, dnnl::algorithm::eltwise_clip,
                      static_cast<float>(Min - Op.OutQ.ZeroPoint),
                      static_cast<float>(Max - Op.OutQ.ZeroPoint));
    Op.Attr.set_post_ops(PO);
    Op.Detail += " f32 codes";
  } else if (Op.Int8 && !G.Acts.empty())
    Op.Attr.set_post_ops(
        int8ActPostOps(G, Op.OutDt, Op.AnchorQ, Op.OutQ, Op.Detail));
  else
    Op.Attr.set_post_ops(postOps(G, Op.OutDt, Op.OutQ,
                                 Op.Other >= 0 ? &Vals[Op.Other] : nullptr,
                                 Op.Detail));
  return Op;
}

int Lowerer::weightedDestination(const Group &G, const WeightedOp &Op,
                                 llvm::ArrayRef<int64_t> Dims, Layout L,
                                 int SrcBuf, SumMode &Mode) {
  Mode = SumMode::None;
  if (Op.Other < 0)
    return newValue(Op.OutDt, Dims, L, Op.OutQ, G.name());
  memory::desc Md = makeDesc(Op.OutDt, Dims, L);
  int S = sumDestination(G, Op.Other, Md, L, SrcBuf, Mode);
  Value V;
  V.Buf = Vals[S].Buf;
  V.Offset = Vals[S].Offset;
  V.Md = Md;
  V.Dt = Op.OutDt;
  V.Dims.assign(Dims.begin(), Dims.end());
  V.Q = Op.OutQ;
  V.L = L;
  return addValue(std::move(V));
}

void Lowerer::finishWeighted(PrimitiveStep &S, const Group &G,
                             const WeightedOp &Op, SumMode Mode, int Dst) {
  std::string Detail = Op.Detail;
  if (Mode != SumMode::None)
    Detail += Mode == SumMode::InPlace ? " (in-place)" : " (copied)";
  S.Info.Detail = llvm::StringRef(Detail).trim().str();
  S.Info.Sum = Mode;
  bindGroup(*this, G, Dst);
}

/// The weights (of rank \p Rank) and optional f32 bias of a conv or linear
/// module, checked; \p Op and \p OutName word the errors.
static llvm::Expected<std::pair<const Tensor *, const Tensor *>>
weightAndBias(const Node &N, const ModuleInfo &M, int64_t Rank,
              llvm::StringRef Op, llvm::StringRef OutName) {
  const Tensor *W = M.tensor("weight");
  const Tensor *B = M.tensor("bias");
  if (!W || !W->hasData() || W->rank() != Rank)
    return nodeError(N, Op + " needs a " + llvm::Twine(Rank) +
                            "-d weight with data");
  if (B && (!B->hasData() || B->dtype() != DType::F32 ||
            B->numElements() != W->dim(0)))
    return nodeError(N, Op + " bias must be f32 [" + OutName + "] with data");
  return std::make_pair(W, B);
}

Layout Lowerer::convSourceLayout(const Group &G, int X) const {
  const Value &V = Vals[X];
  if (V.L == Layout::Blocked)
    return Layout::Blocked;
  if (Plan != LayoutChoice::Blocked || V.Dt != DType::F32 ||
      typeOf(G.last()).Dtype != DType::F32 || !blockedReadersOnly(*G.last()))
    return Layout::NHWC;
  // A network's first conv (a few image channels) reads them plain: oneDNN
  // has a kernel for plain into blocked, and blocking would pad 3 channels
  // to 16.
  return V.Dims[1] <= 4 ? Layout::Plain : Layout::Blocked;
}

llvm::Expected<bool> Lowerer::lowerConv(const Group &G) {
  const Node &N = *G.Anchor;
  const ModuleInfo &CM = weightModule(*GM.lookupModule(N.target()));
  if (const Tensor *W1 = CM.tensor("weight"); W1 && W1->rank() == 3)
    return lowerConv1d(G);
  auto WB = weightAndBias(N, CM, 4, "conv", "out_channels");
  if (!WB)
    return WB.takeError();
  // Not a structured binding: the descriptor lambda below captures B.
  const Tensor *W = WB->first, *B = WB->second;
  auto XV = valueOf(N.arg(0).getNode());
  if (!XV)
    return XV.takeError();
  if (Vals[*XV].Dims.size() != 4)
    return false;
  // The source as the primitive reads it (a layout conversion, if any, is
  // added once the primitive is known).
  Layout SrcL = convSourceLayout(G, *XV);
  Value XI = Vals[*XV];
  XI.Md = makeDesc(XI.Dt, XI.Dims, SrcL);
  auto Geo = convGeometry(N, CM, XI, *W);
  if (!Geo)
    return Geo.takeError();
  Shape DstDims{Geo->N, Geo->O, Geo->OH, Geo->OW};
  if (typeOf(&N).Dims != DstDims)
    return nodeError(N, "output shape " + formatShape(DstDims) +
                            " differs from the node's type " +
                            formatShape(typeOf(&N).Dims));
  auto Op = weightedOp(G, XI, *W, B);
  if (!Op)
    return Op.takeError();

  memory::data_type WDt = toDnnl(W->dtype());
  memory::dims WDims = weightDims(*Geo);
  memory::desc UserW(WDims, WDt, Geo->Groups == 1 ? Tag::oihw : Tag::goihw);
  memory::desc BiasMd({Geo->O}, memory::data_type::f32, Tag::x);
  // oneDNN counts dilation as the gap between taps: PyTorch's minus one.
  memory::dims Strides{Geo->Stride[0], Geo->Stride[1]},
      Dil{Geo->Dil[0] - 1, Geo->Dil[1] - 1}, Pad{Geo->Pad[0], Geo->Pad[1]};
  using Conv = dnnl::convolution_forward;
  auto Prop = dnnl::prop_kind::forward_inference;
  auto Alg = dnnl::algorithm::convolution_direct;
  // Weights in whatever layout the primitive prefers (format any).
  memory::desc AnyW(WDims, WDt, Tag::any);
  auto MakePD =
      [&](const memory::desc &SrcMd,
          const memory::desc &DstMd) -> std::optional<Conv::primitive_desc> {
    try {
      return Conv::primitive_desc(
          B ? Conv::desc(Prop, Alg, SrcMd, AnyW, BiasMd, DstMd, Strides, Dil,
                         Pad, Pad)
            : Conv::desc(Prop, Alg, SrcMd, AnyW, DstMd, Strides, Dil, Pad, Pad),
          Op->Attr, P.Engine);
    } catch (const dnnl::error &) {
      return std::nullopt;
    }
  };
  Layout DstL = SrcL == Layout::NHWC ? Layout::NHWC : Layout::Blocked;
  std::optional<Conv::primitive_desc> PD;
  if (DstL == Layout::Blocked) {
    PD = MakePD(XI.Md, makeDesc(Op->OutDt, DstDims, DstL));
    // Blocked only where a jit kernel takes it (not a grouped conv whose
    // groups are not whole blocks, say).
    if (PD && llvm::StringRef(PD->impl_info_str()).startswith("ref"))
      PD.reset();
    if (!PD)
      SrcL = DstL = Layout::NHWC;
  }
  if (!PD)
    PD = MakePD(makeDesc(XI.Dt, XI.Dims, Layout::NHWC),
                makeDesc(Op->OutDt, DstDims, Layout::NHWC));
  if (!PD)
    return false;
  PD = chosenImplementation(*PD);
  int X = inLayout(*XV, SrcL);
  XI = Vals[X];
  SumMode Mode;
  int Dst = weightedDestination(G, *Op, DstDims, DstL, XI.Buf, Mode);
  std::string Name = N.target().str();
  std::vector<MemArg> Args = {
      arg(DNNL_ARG_SRC, X),
      {DNNL_ARG_WEIGHTS,
       addConstant(*W, UserW, PD->weights_desc(), Name + ".weight"), 0,
       PD->weights_desc()}};
  if (B)
    Args.push_back({DNNL_ARG_BIAS,
                    addConstant(Op->Bias, BiasMd, BiasMd, Name + ".bias"), 0,
                    BiasMd});
  Args.push_back(arg(DNNL_ARG_DST, Dst));
  PrimitiveStep &S =
      addPrimitive(*PD, Conv(*PD), G.name(), "conv", std::move(Args));
  if (Geo->Groups > 1)
    Op->Detail += " groups=" + std::to_string(Geo->Groups);
  if (DstL == Layout::Blocked)
    Op->Detail += " blocked";
  finishWeighted(S, G, *Op, Mode, Dst);
  leaveBlocked(*G.last());
  return true;
}

//===----------------------------------------------------------------------===//
// Linear
//===----------------------------------------------------------------------===//

namespace {

/// The columns of \p W ([out, C*H*W] in C, H, W order) reordered to H, W, C
/// order, for a linear reading an NHWC activation flattened in place.
Tensor permuteColumns(const Tensor &W, std::array<int64_t, 3> CHW) {
  auto [C, H, Wd] = CHW;
  Tensor R(W.dtype(), W.shape());
  R.setQuant(W.quant());
  size_t E = dtypeSize(W.dtype());
  int64_t Cols = C * H * Wd;
  const char *Src = static_cast<const char *>(W.rawData());
  char *Dst = static_cast<char *>(R.rawData());
  for (int64_t O = 0; O < W.dim(0); ++O)
    for (int64_t Ci = 0; Ci < C; ++Ci)
      for (int64_t P = 0; P < H * Wd; ++P)
        std::memcpy(Dst + (O * Cols + P * C + Ci) * E,
                    Src + (O * Cols + Ci * H * Wd + P) * E, E);
  return R;
}

/// y = x W^T as a matmul: W's [out, in] bytes read as [in, out].
memory::desc transposedWeights(int64_t K, int64_t N, DType T) {
  return memory::desc({K, N}, toDnnl(T), memory::dims{1, K});
}

} // namespace

llvm::Expected<bool> Lowerer::lowerLinear(const Group &G) {
  const Node &N = *G.Anchor;
  auto WB = weightAndBias(N, weightModule(*GM.lookupModule(N.target())), 2,
                          "linear", "out_features");
  if (!WB)
    return WB.takeError();
  const Tensor *B = WB->second;
  auto XV = valueOf(N.arg(0).getNode());
  if (!XV)
    return XV.takeError();
  std::optional<std::array<int64_t, 3>> Perm;
  const Value XI = Vals[linearInput(*XV, Perm)];
  const Tensor W = Perm ? permuteColumns(*WB->first, *Perm) : *WB->first;
  int64_t K = W.dim(1), NOut = W.dim(0);
  if (XI.Dims.empty() || XI.Dims.back() != K)
    return nodeError(N, "input features " + formatShape(XI.Dims) +
                            " do not match weight " + formatShape(W.shape()));
  int64_t Rows = numElements(llvm::ArrayRef<int64_t>(XI.Dims).drop_back());
  if (Rows == 0 || K == 0)
    return false;
  Shape DstDims = XI.Dims;
  DstDims.back() = NOut;
  if (typeOf(&N).Dims != DstDims)
    return nodeError(N, "output shape " + formatShape(DstDims) +
                            " differs from the node's type " +
                            formatShape(typeOf(&N).Dims));
  // Attention's q / k / v projections: their readers take f32 codes.
  bool Codes = XI.Dt != DType::F32 && !G.Dequant && G.Acts.empty() &&
               !G.SumOther && !G.Clamp.Active &&
               G.Gelu == Group::GeluKind::None && G.Members.size() == 1 &&
               onlyExactMatmulsRead(N);
  auto Op = weightedOp(G, XI, W, B, Codes);
  if (!Op)
    return Op.takeError();
  if (Op->Other >= 0)
    Op->Other = inLayout(Op->Other, Layout::Plain);

  // Leading dimensions fold into the matmul's rows.
  memory::desc Src2({Rows, K}, toDnnl(XI.Dt), Tag::ab);
  memory::desc Dst2({Rows, NOut}, toDnnl(Op->OutDt), Tag::ab);
  memory::desc AnyW({K, NOut}, toDnnl(W.dtype()), Tag::any);
  memory::desc BiasMd({1, NOut}, memory::data_type::f32, Tag::ab);
  dnnl::matmul::primitive_desc PD;
  try {
    PD = dnnl::matmul::primitive_desc(
        B ? dnnl::matmul::desc(Src2, AnyW, BiasMd, Dst2)
          : dnnl::matmul::desc(Src2, AnyW, Dst2),
        Op->Attr, P.Engine);
  } catch (const dnnl::error &) {
    return false;
  }
  PD = chosenImplementation(PD);
  SumMode Mode;
  int Dst = weightedDestination(G, *Op, DstDims, Layout::Plain, XI.Buf, Mode);
  std::string Name = N.target().str();
  std::vector<MemArg> Args = {
      {DNNL_ARG_SRC, XI.Buf, XI.Offset, Src2},
      {DNNL_ARG_WEIGHTS,
       addConstant(W, transposedWeights(K, NOut, W.dtype()), PD.weights_desc(),
                   Name + ".weight"),
       0, PD.weights_desc()}};
  if (B)
    Args.push_back({DNNL_ARG_BIAS,
                    addConstant(Op->Bias.reshaped({1, NOut}), BiasMd, BiasMd,
                                Name + ".bias"),
                    0, BiasMd});
  Args.push_back({DNNL_ARG_DST, Vals[Dst].Buf, Vals[Dst].Offset, Dst2});
  PrimitiveStep &S =
      addPrimitive(PD, dnnl::matmul(PD), G.name(), "matmul", std::move(Args));
  if (Codes) {
    Vals[Dst].IntF32 = true;
    Vals[Dst].IntDt = typeOf(&N).Dtype;
  }
  finishWeighted(S, G, *Op, Mode, Dst);
  return true;
}

//===----------------------------------------------------------------------===//
// Dynamic linear
//===----------------------------------------------------------------------===//

namespace {

/// Descriptors of the dynamic linear's runtime operands.
memory::desc scaleMd() {
  return memory::desc({1, 1}, memory::data_type::f32, Tag::ab);
}
memory::desc zeroPointMd() {
  return memory::desc({1}, memory::data_type::s32, Tag::x);
}

/// Static per-channel weight scales; the input scale (known per run) is a
/// binary-mul post-op and the bias a binary-add after it, so the bias needs
/// no per-run rescaling and the fast kernel keeps static scales.
dnnl::primitive_attr dynamicAttr(llvm::ArrayRef<double> WS, bool HasBias,
                                 const RealClamp &Clamp, Group::GeluKind Gelu,
                                 std::string &Detail) {
  dnnl::primitive_attr Attr = userAttr();
  Attr.set_output_scales(1 << 1, std::vector<float>(WS.begin(), WS.end()));
  Attr.set_zero_points(DNNL_ARG_SRC, 0, {DNNL_RUNTIME_S32_VAL});
  dnnl::post_ops PO;
  PO.append_binary(dnnl::algorithm::binary_mul, scaleMd());
  if (HasBias)
    PO.append_binary(dnnl::algorithm::binary_add,
                     memory::desc({1, static_cast<int64_t>(WS.size())},
                                  memory::data_type::f32, Tag::ab));
  if (Clamp.Active)
    appendClamp(PO, Clamp.Lo, Clamp.Hi, Detail);
  if (Gelu != Group::GeluKind::None) {
    bool Tanh = Gelu == Group::GeluKind::Tanh;
    PO.append_eltwise(1.0f,
                      Tanh ? dnnl::algorithm::eltwise_gelu_tanh
                           : dnnl::algorithm::eltwise_gelu_erf,
                      0.0f, 0.0f);
    Detail += Tanh ? " gelu_tanh" : " gelu_erf";
  }
  Attr.set_post_ops(PO);
  return Attr;
}

} // namespace

Lowerer::DynamicInput Lowerer::addDynamicQuantize(const std::string &Name,
                                                  const Value &XI, int64_t Rows,
                                                  int64_t K, int QMax) {
  DynamicInput D;
  D.Xq =
      newValue(DType::U8, {Rows, K}, Layout::Plain, QuantParams(), Name + ".q");
  D.ZeroPoint = P.addConstant(sizeof(int32_t), Name + ".zero_point");
  D.Scale = P.addConstant(sizeof(float), Name + ".scale");
  const Value XqV = Vals[D.Xq];
  size_t Count = static_cast<size_t>(Rows * K);
  auto Fn = [XI, XqV, D, Count, QMax](Program &Prog) -> llvm::Error {
    quantizeDynamic(static_cast<const float *>(Prog.address(XI.Buf, XI.Offset)),
                    Count, 0, QMax,
                    static_cast<uint8_t *>(Prog.address(XqV.Buf, XqV.Offset)),
                    *static_cast<float *>(Prog.address(D.Scale)),
                    *static_cast<int32_t *>(Prog.address(D.ZeroPoint)));
    return llvm::Error::success();
  };
  addHost(Name + ".quantize", "quantize_dynamic", std::move(Fn), {XI.Buf},
          {XqV.Buf, D.ZeroPoint, D.Scale});
  return D;
}

llvm::Expected<bool> Lowerer::lowerLinearDynamic(const Group &G) {
  const Node &N = *G.Anchor;
  const ModuleInfo &M = *GM.lookupModule(N.target());
  auto WB = weightAndBias(N, M, 2, "linear", "out_features");
  if (!WB)
    return WB.takeError();
  const Tensor *B = WB->second;
  auto WS = weightScales(N, *WB->first);
  if (!WS)
    return WS.takeError();
  auto XV = valueOf(N.arg(0).getNode());
  if (!XV)
    return XV.takeError();
  std::optional<std::array<int64_t, 3>> Perm;
  const Value XI = Vals[linearInput(*XV, Perm)];
  const Tensor W = Perm ? permuteColumns(*WB->first, *Perm) : *WB->first;
  int64_t K = W.dim(1), NOut = W.dim(0);
  if (XI.Dt != DType::F32 || XI.Dims.empty() || XI.Dims.back() != K)
    return nodeError(N, "input " + formatShape(XI.Dims) +
                            " does not match weight " + formatShape(W.shape()));
  int64_t Rows = numElements(llvm::ArrayRef<int64_t>(XI.Dims).drop_back());
  if (Rows == 0 || K == 0)
    return false;
  Shape DstDims = XI.Dims;
  DstDims.back() = NOut;
  // The op's default, like the reference, is reduce_range = true.
  const Argument *RR = M.attr("reduce_range");
  int QMax = !RR || !RR->isBool() || RR->getBool() ? 127 : 255;
  std::string Detail = "dynamic u8[0," + std::to_string(QMax) + "]";
  memory::desc Src2({Rows, K}, memory::data_type::u8, Tag::ab);
  memory::desc Dst2({Rows, NOut}, memory::data_type::f32, Tag::ab);
  memory::desc AnyW({K, NOut}, memory::data_type::s8, Tag::any);
  dnnl::matmul::primitive_desc PD;
  try {
    PD = dnnl::matmul::primitive_desc(
        dnnl::matmul::desc(Src2, AnyW, Dst2),
        dynamicAttr(*WS, B, G.Clamp, G.Gelu, Detail), P.Engine);
  } catch (const dnnl::error &) {
    return false;
  }
  PD = chosenImplementation(PD);
  DynamicInput D = addDynamicQuantize(G.name(), XI, Rows, K, QMax);
  int Dst =
      newValue(DType::F32, DstDims, Layout::Plain, QuantParams(), G.name());
  std::string Name = N.target().str();
  std::vector<MemArg> Args = {
      {DNNL_ARG_SRC, Vals[D.Xq].Buf, Vals[D.Xq].Offset, Src2},
      {DNNL_ARG_WEIGHTS,
       addConstant(W, transposedWeights(K, NOut, DType::S8), PD.weights_desc(),
                   Name + ".weight"),
       0, PD.weights_desc()},
      {DNNL_ARG_ATTR_ZERO_POINTS | DNNL_ARG_SRC, D.ZeroPoint, 0, zeroPointMd()},
      {DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1, D.Scale, 0,
       scaleMd()},
      {DNNL_ARG_DST, Vals[Dst].Buf, 0, Dst2}};
  if (B) {
    memory::desc BiasMd({1, NOut}, memory::data_type::f32, Tag::ab);
    Args.push_back(
        {DNNL_ARG_ATTR_MULTIPLE_POST_OP(1) | DNNL_ARG_SRC_1,
         addConstant(B->reshaped({1, NOut}), BiasMd, BiasMd, Name + ".bias"), 0,
         BiasMd});
  }
  PrimitiveStep &S =
      addPrimitive(PD, dnnl::matmul(PD), G.name(), "matmul", std::move(Args));
  S.Info.Detail = llvm::StringRef(Detail).trim().str();
  bindGroup(*this, G, Dst);
  return true;
}

//===----------------------------------------------------------------------===//
// Batch norm
//===----------------------------------------------------------------------===//

/// A batch norm's weight or bias; absent affine parameters are the
/// identity (\p Default everywhere).
static Tensor affineParam(const ModuleInfo &BM, const char *Name, int64_t C,
                          float Default) {
  const Tensor *T = BM.tensor(Name);
  if (T && T->hasData() && T->dtype() == DType::F32 && T->numElements() == C)
    return *T;
  Tensor R(DType::F32, {C});
  std::fill(R.data<float>(), R.data<float>() + C, Default);
  return R;
}

llvm::Expected<bool> Lowerer::lowerBatchNorm(const Group &G) {
  const Node &N = *G.Anchor;
  const ModuleInfo &BM = weightModule(*GM.lookupModule(N.target()));
  const Tensor *Mean = BM.tensor("running_mean");
  const Tensor *Var = BM.tensor("running_var");
  auto XV = valueOf(N.arg(0).getNode());
  if (!XV)
    return XV.takeError();
  const Value X = Vals[*XV];
  if (X.Dt != DType::F32)
    return lowerQuantizedBatchNorm(G);
  if (!Mean || !Var || !Mean->hasData() || !Var->hasData() ||
      X.Dims.size() < 2 || X.Dims.size() > 4 ||
      Mean->numElements() != X.Dims[1] || Var->numElements() != X.Dims[1])
    return false;
  const Argument *EpsA = BM.attr("eps");
  float Eps =
      EpsA && EpsA->isFloat() ? static_cast<float>(EpsA->getFloat()) : 1e-5f;
  int64_t C = X.Dims[1];
  auto Flags = dnnl::normalization_flags::use_global_stats |
               dnnl::normalization_flags::use_scale |
               dnnl::normalization_flags::use_shift;
  bool Relu = G.Clamp.Active && G.Clamp.Lo == 0.0 && std::isinf(G.Clamp.Hi);
  dnnl::primitive_attr Attr = userAttr();
  std::string Detail;
  if (Relu) {
    Flags = Flags | dnnl::normalization_flags::fuse_norm_relu;
    Detail = "relu";
  } else {
    Attr.set_post_ops(postOps(G, DType::F32, QuantParams(), nullptr, Detail));
  }
  // BatchNorm1d's [N, C] / [N, C, L] run as [N, C, 1, L]: oneDNN's jit
  // batch norms take 4-d and 5-d data only.
  int Src =
      unitHeightView(X.PermSource >= 0 ? inLayout(*XV, Layout::Plain) : *XV);
  using BN = dnnl::batch_normalization_forward;
  BN::primitive_desc PD;
  try {
    PD = BN::primitive_desc(
        BN::desc(dnnl::prop_kind::forward_inference, Vals[Src].Md, Eps, Flags),
        Attr, P.Engine);
  } catch (const dnnl::error &) {
    return false;
  }
  memory::desc Vec({C}, memory::data_type::f32, Tag::x);
  std::string Name = N.target().str();
  std::vector<MemArg> Args = {
      arg(DNNL_ARG_SRC, Src),
      {DNNL_ARG_MEAN, addConstant(*Mean, Vec, Vec, Name + ".running_mean"), 0,
       Vec},
      {DNNL_ARG_VARIANCE, addConstant(*Var, Vec, Vec, Name + ".running_var"), 0,
       Vec},
      {DNNL_ARG_SCALE,
       addConstant(affineParam(BM, "weight", C, 1.0f), Vec, Vec,
                   Name + ".weight"),
       0, Vec},
      {DNNL_ARG_SHIFT,
       addConstant(affineParam(BM, "bias", C, 0.0f), Vec, Vec, Name + ".bias"),
       0, Vec}};
  int Dst = newValue(DType::F32, X.Dims, X.L, QuantParams(), G.name());
  Args.push_back(arg(DNNL_ARG_DST, unitHeightView(Dst)));
  PrimitiveStep &S =
      addPrimitive(PD, BN(PD), G.name(), "batch_norm", std::move(Args));
  S.Info.Detail = llvm::StringRef(Detail).trim().str();
  bindGroup(*this, G, Dst);
  leaveBlocked(*G.last());
  return true;
}

//===----------------------------------------------------------------------===//
// Add
//===----------------------------------------------------------------------===//

/// Whether `add` has only alpha = 1 besides its two tensors.
static bool plainAdd(const Node &N) {
  if (N.numArgs() != 2)
    return false;
  return llvm::all_of(N.kwargs(), [](const auto &KV) {
    return KV.first == "alpha" && KV.second.isInt() && KV.second.getInt() == 1;
  });
}

/// Whether \p From (of \p To's rank, not equal to it) broadcasts to \p To.
static bool broadcastsTo(llvm::ArrayRef<int64_t> From,
                         llvm::ArrayRef<int64_t> To) {
  if (From.size() != To.size() || From == To)
    return false;
  for (size_t I = 0; I < From.size(); ++I)
    if (From[I] != To[I] && From[I] != 1)
      return false;
  return true;
}

llvm::Expected<bool> Lowerer::lowerAdd(const Group &G) {
  const Node &N = *G.Anchor;
  if (N.numArgs() < 2)
    return false;
  if (!N.arg(0).isNode())
    return false;
  if (N.target() == "add" && !N.arg(1).isNode() && G.Members.size() == 1 &&
      !G.SumOther)
    return lowerAddScalar(N);
  if (!N.arg(1).isNode())
    return false;
  auto AV = valueOf(N.arg(0).getNode());
  if (!AV)
    return AV.takeError();
  auto BV = valueOf(N.arg(1).getNode());
  if (!BV)
    return BV.takeError();
  bool Float = N.target() == "add";
  if (Float && plainAdd(N) && !G.SumOther &&
      broadcastsTo(Vals[*BV].Dims, Vals[*AV].Dims))
    // The binary primitive broadcasts its second source (a transformer's
    // position embedding [1, T, C] onto [N, T, C]).
    return lowerAddF32(G, inLayout(*AV, Layout::Plain),
                       inLayout(*BV, Layout::Plain));
  if (Float && plainAdd(N) && !G.SumOther &&
      broadcastsTo(Vals[*AV].Dims, Vals[*BV].Dims))
    return lowerAddF32(G, inLayout(*BV, Layout::Plain),
                       inLayout(*AV, Layout::Plain));
  if (!Float && broadcastsTo(Vals[*BV].Dims, Vals[*AV].Dims))
    BV = broadcastValue(inLayout(*BV, Layout::Plain), Vals[*AV].Dims,
                        G.name() + ".broadcast");
  else if (!Float && broadcastsTo(Vals[*AV].Dims, Vals[*BV].Dims))
    AV = broadcastValue(inLayout(*AV, Layout::Plain), Vals[*BV].Dims,
                        G.name() + ".broadcast");
  if (Vals[*AV].Dims != Vals[*BV].Dims || (Float && !plainAdd(N)))
    return false; // other broadcasts, scaled adds: the op table
  int A = *AV, B = inLayout(*BV, Vals[*AV].L);
  return Float ? lowerAddF32(G, A, B) : lowerAddInt8(G, A, B);
}

/// add(x, c) = x + alpha * c, f32.
llvm::Expected<bool> Lowerer::lowerAddScalar(const Node &N) {
  const Argument &C = N.arg(1);
  const Argument *AlphaArg = N.numArgs() > 2 ? &N.arg(2) : N.kwarg("alpha");
  if (!(C.isFloat() || C.isInt()) || N.numArgs() > 3 ||
      (AlphaArg && !(AlphaArg->isFloat() || AlphaArg->isInt())))
    return false;
  double Alpha = !AlphaArg           ? 1.0
                 : AlphaArg->isInt() ? double(AlphaArg->getInt())
                                     : AlphaArg->getFloat();
  double S = C.isFloat() ? C.getFloat() : double(C.getInt());
  auto XV = valueOf(N.arg(0).getNode());
  if (!XV)
    return XV.takeError();
  return lowerScalarLinear(N, *XV, 1.0, Alpha * S);
}

llvm::Expected<bool> Lowerer::lowerAddF32(const Group &G, int A, int B) {
  const Value VA = Vals[A], VB = Vals[B];
  if (VA.Dt != DType::F32 || VB.Dt != DType::F32)
    return false;
  std::string Detail;
  dnnl::primitive_attr Attr = userAttr();
  Attr.set_post_ops(postOps(G, DType::F32, QuantParams(), nullptr, Detail));
  memory::desc DstMd = makeDesc(DType::F32, VA.Dims, VA.L);
  dnnl::binary::primitive_desc PD;
  try {
    PD = dnnl::binary::primitive_desc(
        dnnl::binary::desc(dnnl::algorithm::binary_add, VA.Md, VB.Md, DstMd),
        Attr, P.Engine);
  } catch (const dnnl::error &) {
    return false;
  }
  int Dst = newValue(DType::F32, VA.Dims, VA.L, QuantParams(), G.name());
  PrimitiveStep &S = addPrimitive(
      PD, dnnl::binary(PD), G.name(), "binary",
      {arg(DNNL_ARG_SRC_0, A), arg(DNNL_ARG_SRC_1, B), arg(DNNL_ARG_DST, Dst)});
  S.Info.Detail = llvm::StringRef(Detail).trim().str();
  bindGroup(*this, G, Dst);
  leaveBlocked(*G.last());
  return true;
}

llvm::Expected<bool> Lowerer::lowerAddInt8(const Group &G, int A, int B) {
  // quantized_add(a, b, scale, zero_point): requantized to the node's type.
  const Value VA = Vals[A], VB = Vals[B];
  const TensorType &OutT = typeOf(G.last());
  if (VA.Dt == DType::F32 || VB.Dt == DType::F32 || !OutT.Quant.isPerTensor() ||
      !VA.Q.isPerTensor() || !VB.Q.isPerTensor())
    return false;
  auto [Lo, Hi] = intClamp(G.Clamp, OutT.Quant, OutT.Dtype);
  int Dst = newValue(OutT.Dtype, VA.Dims, VA.L, OutT.Quant, G.name());
  const Value VD = Vals[Dst];
  Int8Operand OA{nullptr, VA.Dt, static_cast<float>(VA.Q.Scale),
                 static_cast<int32_t>(VA.Q.ZeroPoint)};
  Int8Operand OB{nullptr, VB.Dt, static_cast<float>(VB.Q.Scale),
                 static_cast<int32_t>(VB.Q.ZeroPoint)};
  float Scale = static_cast<float>(OutT.Quant.Scale);
  auto Zp = static_cast<int32_t>(OutT.Quant.ZeroPoint);
  size_t Count = static_cast<size_t>(numElements(VA.Dims));
  auto Fn = [=, Lo = Lo, Hi = Hi](Program &Prog) mutable -> llvm::Error {
    OA.Data = Prog.address(VA.Buf, VA.Offset);
    OB.Data = Prog.address(VB.Buf, VB.Offset);
    addInt8(OA, OB, Prog.address(VD.Buf, VD.Offset), VD.Dt, Scale, Zp, Lo, Hi,
            Count);
    return llvm::Error::success();
  };
  HostStep &S =
      addHost(G.name(), "add_int8", std::move(Fn), {VA.Buf, VB.Buf}, {VD.Buf});
  S.Info.Detail = "out " + describeQuant(OutT.Quant) + " clamp [" +
                  std::to_string(Lo) + "," + std::to_string(Hi) + "]";
  bindGroup(*this, G, Dst);
  return true;
}

//===----------------------------------------------------------------------===//
// Pooling
//===----------------------------------------------------------------------===//

namespace {

/// max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode) and
/// avg_pool2d(input, kernel_size, stride, padding, ceil_mode,
/// count_include_pad, divisor_override), bound to the op table's schemas.
llvm::Expected<ref::Pool2dParams> poolParams(const BoundArgs &B, bool IsMax) {
  ref::Pool2dParams P;
  auto K = B.pair(1);
  if (!K)
    return K.takeError();
  P.Kernel = P.Stride = *K;
  if (!B.isNone(2)) {
    auto S = B.ints(2);
    if (!S)
      return S.takeError();
    if (!S->empty()) {
      auto S2 = B.pair(2);
      if (!S2)
        return S2.takeError();
      P.Stride = *S2;
    }
  }
  auto Pad = B.pair(3);
  if (!Pad)
    return Pad.takeError();
  P.Padding = *Pad;
  if (IsMax) {
    auto D = B.pair(4);
    auto Ceil = B.boolean(5);
    if (!D || !Ceil) {
      llvm::consumeError(Ceil.takeError());
      return D ? makeError("max_pool2d: bad ceil_mode") : D.takeError();
    }
    P.Dilation = *D;
    P.CeilMode = *Ceil;
    return P;
  }
  auto Ceil = B.boolean(4);
  auto Count = B.boolean(5);
  if (!Ceil || !Count) {
    llvm::consumeError(Count.takeError());
    return Ceil ? makeError("avg_pool2d: bad count_include_pad")
                : Ceil.takeError();
  }
  P.CeilMode = *Ceil;
  P.CountIncludePad = *Count;
  if (!B.isNone(6)) {
    auto Div = B.integer(6);
    if (!Div)
      return Div.takeError();
    P.DivisorOverride = *Div;
  }
  return P;
}

/// PyTorch's pooling output size (ceil mode drops a last window starting in
/// the right padding).
int64_t poolOut(int64_t In, int64_t K, int64_t S, int64_t Pad, int64_t D,
                bool Ceil) {
  int64_t Extent = D * (K - 1) + 1;
  if (!Ceil)
    return (In + 2 * Pad - Extent) / S + 1;
  int64_t Out = (In + 2 * Pad - Extent + S - 1) / S + 1;
  if ((Out - 1) * S >= In + Pad)
    --Out;
  return Out;
}

/// Right padding that makes oneDNN's floor rule give \p Out windows.
int64_t poolPadRight(int64_t In, int64_t Out, int64_t K, int64_t S,
                     int64_t PadL, int64_t D) {
  return std::max<int64_t>(0, (Out - 1) * S + D * (K - 1) + 1 - In - PadL);
}

} // namespace

/// The pooling parameters of \p N on \p X (adaptive pools as plain ones),
/// or nothing when oneDNN cannot compute what the reference does.
static llvm::Expected<std::optional<ref::Pool2dParams>>
poolOf(const Lowerer &L, const Node &N, const LoweringRule &R, const Value &X) {
  auto Bound = L.bindDeclared(N);
  if (!Bound)
    return nodeError(N, llvm::toString(Bound.takeError()));
  const BoundArgs &BA = Bound->second;
  bool IsMax = R.Kind == LowerKind::MaxPool;
  ref::Pool2dParams PP;
  if (R.Kind == LowerKind::AdaptiveAvgPool) {
    auto Size = BA.pair(1);
    if (!Size)
      return nodeError(N, llvm::toString(Size.takeError()));
    // Adaptive bins are all equal exactly when the sizes divide.
    auto [OH, OW] = *Size;
    if (OH < 1 || OW < 1 || X.Dims[2] % OH || X.Dims[3] % OW)
      return std::nullopt;
    PP.Kernel = PP.Stride = {X.Dims[2] / OH, X.Dims[3] / OW};
  } else {
    auto Params = poolParams(BA, IsMax);
    if (!Params)
      return nodeError(N, llvm::toString(Params.takeError()));
    PP = *Params;
  }
  if (!onednn::supportsPool2d(PP, IsMax))
    return std::nullopt;
  const TensorType &OutT = L.typeOf(&N);
  if (X.Dt == DType::F32)
    return PP;
  if (OutT.Quant != X.Q || OutT.Dtype != X.Dt)
    return std::nullopt;
  // oneDNN pads int8 averages with integer 0, the reference with the zero
  // point (real zero).
  bool Padded = PP.Padding[0] || PP.Padding[1] || PP.CeilMode;
  if (!IsMax && PP.CountIncludePad && Padded && X.Q.ZeroPoint != 0)
    return std::nullopt;
  return PP;
}

llvm::Expected<bool> Lowerer::lowerPool(const Node &N, const LoweringRule &R) {
  auto XV = valueOf(N.arg(0).getNode());
  if (!XV)
    return XV.takeError();
  if (Vals[*XV].Dims.size() != 4)
    return false;
  auto Params = poolOf(*this, N, R, Vals[*XV]);
  if (!Params)
    return Params.takeError();
  if (!*Params)
    return false;
  const ref::Pool2dParams &PP = **Params;
  // A Blocked source (the blocked plan's conv chains) stays blocked.
  Layout L = Vals[*XV].L == Layout::Blocked ? Layout::Blocked : Layout::NHWC;
  int X = inLayout(*XV, L);
  const Value XI = Vals[X];
  int64_t OH = poolOut(XI.Dims[2], PP.Kernel[0], PP.Stride[0], PP.Padding[0],
                       PP.Dilation[0], PP.CeilMode);
  int64_t OW = poolOut(XI.Dims[3], PP.Kernel[1], PP.Stride[1], PP.Padding[1],
                       PP.Dilation[1], PP.CeilMode);
  Shape DstDims{XI.Dims[0], XI.Dims[1], OH, OW};
  if (typeOf(&N).Dims != DstDims)
    return nodeError(N, "output shape " + formatShape(DstDims) +
                            " differs from the node's type " +
                            formatShape(typeOf(&N).Dims));
  bool IsMax = R.Kind == LowerKind::MaxPool;
  auto Alg = IsMax ? dnnl::algorithm::pooling_max
             : PP.CountIncludePad
                 ? dnnl::algorithm::pooling_avg_include_padding
                 : dnnl::algorithm::pooling_avg_exclude_padding;
  memory::desc DstMd = makeDesc(XI.Dt, DstDims, L);
  using Pool = dnnl::pooling_v2_forward;
  Pool::primitive_desc PD;
  try {
    Pool::desc D(dnnl::prop_kind::forward_inference, Alg, XI.Md, DstMd,
                 {PP.Stride[0], PP.Stride[1]}, {PP.Kernel[0], PP.Kernel[1]},
                 {PP.Dilation[0] - 1, PP.Dilation[1] - 1},
                 {PP.Padding[0], PP.Padding[1]},
                 {poolPadRight(XI.Dims[2], OH, PP.Kernel[0], PP.Stride[0],
                               PP.Padding[0], PP.Dilation[0]),
                  poolPadRight(XI.Dims[3], OW, PP.Kernel[1], PP.Stride[1],
                               PP.Padding[1], PP.Dilation[1])});
    PD = Pool::primitive_desc(D, userAttr(), P.Engine);
  } catch (const dnnl::error &) {
    return false;
  }
  int Dst = newValue(XI.Dt, DstDims, L, XI.Q, N.name().str());
  PrimitiveStep &S =
      addPrimitive(PD, Pool(PD), N.name().str(), "pool",
                   {arg(DNNL_ARG_SRC, X), arg(DNNL_ARG_DST, Dst)});
  S.Info.Detail = IsMax ? "max" : "avg";
  bindNode(&N, Dst);
  leaveBlocked(N);
  return true;
}

//===----------------------------------------------------------------------===//
// Clamps, concatenation, quantize, dequantize
//===----------------------------------------------------------------------===//

llvm::Expected<bool> Lowerer::lowerEltwise(const Node &N,
                                           const LoweringRule &R) {
  auto XV = valueOf(N.arg(0).getNode());
  if (!XV)
    return XV.takeError();
  auto C = clampBounds(N, R.Clamp);
  if (!C)
    return C.takeError();
  const Value X = Vals[*XV];
  const TensorType &OutT = typeOf(&N);
  if (OutT.Dtype != X.Dt || (X.Dt != DType::F32 && OutT.Quant != X.Q))
    return false;
  int Dst = newValue(X.Dt, X.Dims, X.L, X.Q, N.name().str());
  const Value D = Vals[Dst];
  if (X.Dt == DType::F32) {
    bool Relu = C->first == 0.0 && std::isinf(C->second);
    auto Alg =
        Relu ? dnnl::algorithm::eltwise_relu : dnnl::algorithm::eltwise_clip;
    float Alpha = Relu ? 0.0f : static_cast<float>(C->first);
    float Beta =
        std::isinf(C->second) ? FLT_MAX : static_cast<float>(C->second);
    dnnl::eltwise_forward::primitive_desc PD;
    try {
      PD = dnnl::eltwise_forward::primitive_desc(
          dnnl::eltwise_forward::desc(dnnl::prop_kind::forward_inference, Alg,
                                      X.Md, Alpha, Beta),
          userAttr(), P.Engine);
    } catch (const dnnl::error &) {
      return false;
    }
    PrimitiveStep &S =
        addPrimitive(PD, dnnl::eltwise_forward(PD), N.name().str(), "eltwise",
                     {arg(DNNL_ARG_SRC, *XV), arg(DNNL_ARG_DST, Dst)});
    S.Info.Detail = Relu ? "relu" : "clip";
    bindNode(&N, Dst);
    leaveBlocked(N);
    return true;
  }
  RealClamp RC;
  RC.intersect(C->first, C->second);
  auto [Lo, Hi] = intClamp(RC, X.Q, X.Dt);
  size_t Count = static_cast<size_t>(numElements(X.Dims));
  auto Fn = [X, D, Count, Lo = Lo, Hi = Hi](Program &Prog) -> llvm::Error {
    clampInt8(X.Dt, Prog.address(X.Buf, X.Offset),
              Prog.address(D.Buf, D.Offset), Count, Lo, Hi);
    return llvm::Error::success();
  };
  HostStep &S =
      addHost(N.name().str(), "clamp_int8", std::move(Fn), {X.Buf}, {D.Buf});
  S.Info.Detail = "[" + std::to_string(Lo) + "," + std::to_string(Hi) + "]";
  bindNode(&N, Dst);
  return true;
}

llvm::Expected<bool> Lowerer::lowerCat(const Node &N) {
  auto B = bindDeclared(N);
  if (!B)
    return nodeError(N, llvm::toString(B.takeError()));
  auto Dim = B->second.integer(1);
  if (!Dim)
    return nodeError(N, llvm::toString(Dim.takeError()));
  if (!N.arg(0).isList())
    return false;
  std::vector<int> In;
  for (const Argument &A : N.arg(0).getList()) {
    if (!A.isNode())
      return false;
    auto V = valueOf(A.getNode());
    if (!V)
      return V.takeError();
    In.push_back(*V);
  }
  const TensorType &OutT = typeOf(&N);
  if (In.empty())
    return false;
  int64_t Rank = static_cast<int64_t>(OutT.Dims.size());
  int64_t D = *Dim < 0 ? *Dim + Rank : *Dim;
  if (D < 0 || D >= Rank)
    return false;
  for (int V : In)
    if (Vals[V].Dt != OutT.Dtype ||
        (OutT.Dtype != DType::F32 && Vals[V].Q != OutT.Quant))
      return false; // inputs would need requantizing: the op table
  Layout L = Rank == 4 ? Vals[In[0]].L : Layout::Plain;
  std::vector<memory::desc> Mds;
  std::vector<MemArg> Args;
  for (size_t I = 0; I < In.size(); ++I) {
    int V = inLayout(In[I], L);
    Mds.push_back(Vals[V].Md);
    Args.push_back(arg(DNNL_ARG_MULTIPLE_SRC + static_cast<int>(I), V));
  }
  int Dst = newValue(OutT.Dtype, OutT.Dims, L, OutT.Quant, N.name().str());
  dnnl::concat::primitive_desc PD;
  try {
    PD = dnnl::concat::primitive_desc(Vals[Dst].Md, static_cast<int>(D), Mds,
                                      P.Engine, userAttr());
  } catch (const dnnl::error &) {
    return false;
  }
  Args.push_back(arg(DNNL_ARG_DST, Dst));
  addPrimitive(PD, dnnl::concat(PD), N.name().str(), "concat", std::move(Args));
  bindNode(&N, Dst);
  return true;
}

llvm::Expected<bool> Lowerer::lowerQuantize(const Node &N) {
  auto XV = valueOf(N.arg(0).getNode());
  if (!XV)
    return XV.takeError();
  const TensorType &OutT = typeOf(&N);
  if (OutT.Dtype == DType::F32 || !OutT.Quant.isPerTensor())
    return false;
  const Value X = Vals[*XV];
  // NHWC for convolutions; transformer ops (attention's 4-d scores) read
  // plain layouts.
  bool ForTransformer = llvm::all_of(N.users(), [&](const Node *U) {
    const LoweringRule *R = lookupLoweringRule(*U, GM);
    return R &&
           (R->Kind == LowerKind::Matmul || R->Kind == LowerKind::Softmax ||
            R->Kind == LowerKind::LayerNorm || R->Kind == LowerKind::Permute);
  });
  // Rank 3 is channels last (nwc) only for the conv family's 1-d ops: a
  // transformer's [N, tokens, hidden] stays plain for linear, add and the
  // rest.
  bool ForConv1d =
      X.Dims.size() == 3 && llvm::any_of(N.users(), [&](const Node *U) {
        const LoweringRule *R = lookupLoweringRule(*U, GM);
        return R &&
               (R->Kind == LowerKind::Conv || R->Kind == LowerKind::BatchNorm);
      });
  bool ChannelsLast = X.Dims.size() == 4 ? !ForTransformer : ForConv1d;
  Layout L = ChannelsLast ? Layout::NHWC : Layout::Plain;
  int Dst = newValue(OutT.Dtype, X.Dims, L, OutT.Quant, N.name().str());
  dnnl::primitive_attr Attr;
  // quantize_val multiplies by 1.0f / float(scale).
  Attr.set_output_scales(0, {1.0f / static_cast<float>(OutT.Quant.Scale)});
  if (OutT.Quant.ZeroPoint != 0)
    Attr.set_zero_points(DNNL_ARG_DST, 0,
                         {static_cast<int32_t>(OutT.Quant.ZeroPoint)});
  addReorder(*XV, Dst, Attr, N.name().str(), "quantize");
  P.Steps.back()->Info.Detail = describeQuant(OutT.Quant);
  bindNode(&N, Dst);
  return true;
}

llvm::Expected<bool> Lowerer::lowerDequantize(const Node &N) {
  if (std::vector<const Node *> Island = softmaxIsland(N); !Island.empty()) {
    auto Done = lowerSoftmaxIsland(N, Island);
    if (!Done || *Done)
      return Done;
  }
  if (std::vector<const Node *> Island = tableIsland(N); !Island.empty()) {
    auto Done = lowerTableIsland(N, Island);
    if (!Done || *Done)
      return Done;
  }
  auto XV = valueOf(N.arg(0).getNode());
  if (!XV)
    return XV.takeError();
  const Value X = Vals[*XV];
  if (!X.Q.isPerTensor())
    return false;
  // Keep NHWC for lowered consumers; the output and the op table read plain.
  bool PlainUsers = llvm::all_of(N.users(), [&](const Node *U) {
    return U->op() == OpCode::Output || !lookupLoweringRule(*U, GM);
  });
  Layout L = PlainUsers ? Layout::Plain : X.L;
  int Dst = newValue(DType::F32, X.Dims, L, QuantParams(), N.name().str());
  dnnl::primitive_attr Attr;
  Attr.set_output_scales(0, {static_cast<float>(X.Q.Scale)});
  if (X.Q.ZeroPoint != 0)
    Attr.set_zero_points(DNNL_ARG_SRC, 0,
                         {static_cast<int32_t>(X.Q.ZeroPoint)});
  addReorder(*XV, Dst, Attr, N.name().str(), "dequantize");
  P.Steps.back()->Info.Detail = describeQuant(X.Q);
  bindNode(&N, Dst);
  return true;
}
