//===- LowerConvFamily.cpp - oneDNN lowering of the conv family -----------===//
//
// Conv1d kinds (Conv1d, ConvReLU1d, QuantizedConv1d, QuantizedConvReLU1d) run
// as oneDNN 2-d convolutions over a unit height: an nwc [N, C, L] activation
// has the bytes of an nhwc [N, C, 1, L] one, so the input and output are
// views and the 2-d path's scales, zero points and post-ops apply unchanged.
//
//===----------------------------------------------------------------------===//

#include "Lowerer.h"

#include "qfx/IR/GraphModule.h"
#include "qfx/Runtime/ModuleRunner.h"
#include "qfx/Support/Error.h"

#include <cmath>

using namespace qfx;
using namespace qfx::codegen;
using dnnl::memory;
using Tag = memory::format_tag;

namespace {

/// A 1-d conv attribute: an int or a list of one int.
llvm::Expected<int64_t> attrSingle(const Node &N, const ModuleInfo &M,
                                   llvm::StringRef Name, int64_t Default) {
  const Argument *A = M.attr(Name);
  if (!A)
    return Default;
  if (A->isInt())
    return A->getInt();
  auto L = A->getIntList();
  if (L && L->size() == 1)
    return (*L)[0];
  return nodeError(N, "attribute '" + Name + "' is not an int or one int");
}

/// Shapes and hyper-parameters of one 1-d conv.
struct Conv1dGeometry {
  int64_t N, C, L, O, K, OL, Groups, Stride, Pad, Dil;
};

llvm::Expected<Conv1dGeometry> conv1dGeometry(const Node &N,
                                              const ModuleInfo &M,
                                              llvm::ArrayRef<int64_t> X,
                                              const Tensor &W) {
  Conv1dGeometry G;
  auto S = attrSingle(N, M, "stride", 1);
  auto Pd = attrSingle(N, M, "padding", 0);
  auto D = attrSingle(N, M, "dilation", 1);
  auto Gr = attrSingle(N, M, "groups", 1);
  for (llvm::Expected<int64_t> *E : {&S, &Pd, &D, &Gr})
    if (!*E)
      return E->takeError();
  G.Stride = *S;
  G.Pad = *Pd;
  G.Dil = *D;
  G.Groups = *Gr;
  G.N = X[0];
  G.C = X[1];
  G.L = X[2];
  G.O = W.dim(0);
  G.K = W.dim(2);
  if (G.Groups < 1 || G.O % G.Groups || W.dim(1) * G.Groups != G.C)
    return nodeError(N, "input has " + llvm::Twine(G.C) +
                            " channels but weight expects " +
                            llvm::Twine(W.dim(1)) +
                            " (groups=" + llvm::Twine(G.Groups) + ")");
  if (G.Stride < 1 || G.Dil < 1 || G.Pad < 0)
    return nodeError(N, "conv1d parameters out of range");
  G.OL = (G.L + 2 * G.Pad - G.Dil * (G.K - 1) - 1) / G.Stride + 1;
  if (G.OL < 1)
    return nodeError(N, "conv1d parameters give an empty output");
  return G;
}

} // namespace

llvm::Expected<bool> Lowerer::lowerConv1d(const Group &G) {
  const Node &N = *G.Anchor;
  const ModuleInfo &M = *GM.lookupModule(N.target());
  const ModuleInfo &CM =
      lookupFusedKind(M.kind()) && M.child("0") ? *M.child("0") : M;
  const Tensor *W = CM.tensor("weight");
  const Tensor *B = CM.tensor("bias");
  if (!W || !W->hasData() || W->rank() != 3)
    return nodeError(N, "conv1d needs a 3-d weight with data");
  if (B && (!B->hasData() || B->dtype() != DType::F32 ||
            B->numElements() != W->dim(0)))
    return nodeError(N, "conv1d bias must be f32 [out_channels] with data");
  auto XV = valueOf(N.arg(0).getNode());
  if (!XV)
    return XV.takeError();
  if (Vals[*XV].Dims.size() != 3)
    return false;
  const Value X3 = Vals[inLayout(*XV, Layout::NHWC)];
  auto Geo = conv1dGeometry(N, CM, X3.Dims, *W);
  if (!Geo)
    return Geo.takeError();
  Shape DstDims{Geo->N, Geo->O, Geo->OL};
  if (typeOf(&N).Dims != DstDims)
    return nodeError(N, "output shape " + formatShape(DstDims) +
                            " differs from the node's type " +
                            formatShape(typeOf(&N).Dims));
  // The unit-height views: same buffer and bytes, nhwc descriptors.
  Value XI = X3;
  XI.Dims = {Geo->N, Geo->C, 1, Geo->L};
  XI.Md = makeDesc(XI.Dt, XI.Dims, Layout::NHWC);
  int X = addValue(XI);
  Tensor W4 = W->reshaped({W->dim(0), W->dim(1), 1, Geo->K});
  auto Op = weightedOp(G, XI, W4, B);
  if (!Op)
    return Op.takeError();
  if (Op->Other >= 0)
    return false; // no residual form for 1-d convs

  memory::data_type WDt = toDnnl(W->dtype());
  memory::dims WDims = Geo->Groups == 1
                           ? memory::dims{Geo->O, Geo->C, 1, Geo->K}
                           : memory::dims{Geo->Groups, Geo->O / Geo->Groups,
                                          Geo->C / Geo->Groups, 1, Geo->K};
  memory::desc UserW(WDims, WDt, Geo->Groups == 1 ? Tag::oihw : Tag::goihw);
  memory::desc BiasMd({Geo->O}, memory::data_type::f32, Tag::x);
  Shape Dst4{Geo->N, Geo->O, 1, Geo->OL};
  memory::desc DstMd = makeDesc(Op->OutDt, Dst4, Layout::NHWC);
  // oneDNN counts dilation as the gap between taps: PyTorch's minus one.
  memory::dims Strides{1, Geo->Stride}, Dil{0, Geo->Dil - 1}, Pad{0, Geo->Pad};
  using Conv = dnnl::convolution_forward;
  auto Prop = dnnl::prop_kind::forward_inference;
  auto Alg = dnnl::algorithm::convolution_direct;
  memory::desc AnyW(WDims, WDt, Tag::any);
  Conv::primitive_desc PD;
  try {
    PD = Conv::primitive_desc(
        B ? Conv::desc(Prop, Alg, XI.Md, AnyW, BiasMd, DstMd, Strides, Dil, Pad,
                       Pad)
          : Conv::desc(Prop, Alg, XI.Md, AnyW, DstMd, Strides, Dil, Pad, Pad),
        Op->Attr, P.Engine);
  } catch (const dnnl::error &) {
    return false;
  }
  int Dst3 = newValue(Op->OutDt, DstDims, Layout::NHWC, Op->OutQ, G.name());
  Value D4 = Vals[Dst3];
  D4.Dims = Dst4;
  D4.Md = DstMd;
  int Dst = addValue(std::move(D4));
  std::string Name = N.target().str();
  std::vector<MemArg> Args = {
      arg(DNNL_ARG_SRC, X),
      {DNNL_ARG_WEIGHTS,
       addConstant(W4, UserW, PD.weights_desc(), Name + ".weight"), 0,
       PD.weights_desc()}};
  if (B)
    Args.push_back({DNNL_ARG_BIAS,
                    addConstant(Op->Bias, BiasMd, BiasMd, Name + ".bias"), 0,
                    BiasMd});
  Args.push_back(arg(DNNL_ARG_DST, Dst));
  PrimitiveStep &S =
      addPrimitive(PD, Conv(PD), G.name(), "conv1d", std::move(Args));
  if (Geo->Groups > 1)
    Op->Detail += " groups=" + std::to_string(Geo->Groups);
  finishWeighted(S, G, *Op, SumMode::None, Dst3);
  return true;
}

//===----------------------------------------------------------------------===//
// ConvTranspose2d
//===----------------------------------------------------------------------===//

namespace {

/// A 2-d attribute: an int or two ints.
llvm::Expected<std::array<int64_t, 2>> attrPair2(const Node &N,
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

llvm::Expected<ref::ConvTranspose2dParams> deconvParams(const Node &N,
                                                        const ModuleInfo &M) {
  ref::ConvTranspose2dParams P;
  auto S = attrPair2(N, M, "stride", 1);
  auto Pd = attrPair2(N, M, "padding", 0);
  auto OP = attrPair2(N, M, "output_padding", 0);
  auto D = attrPair2(N, M, "dilation", 1);
  auto Gr = attrSingle(N, M, "groups", 1);
  for (auto *E : {&S, &Pd, &OP, &D})
    if (!*E)
      return E->takeError();
  if (!Gr)
    return Gr.takeError();
  P.Stride = *S;
  P.Padding = *Pd;
  P.OutputPadding = *OP;
  P.Dilation = *D;
  P.Groups = *Gr;
  return P;
}

/// A stand-in for the weight as weightedOp reads it: [out] with the
/// per-output-channel scales. PyTorch quantizes a transposed conv's weight
/// [in, out / groups, kH, kW] along axis 1, so each scale serves one output
/// channel of every group.
Tensor outputChannelWeight(const Tensor &W, int64_t Groups) {
  int64_t OCG = W.dim(1), OC = OCG * Groups;
  Tensor R = Tensor::declared(W.dtype(), {OC});
  const QuantParams &Q = W.quant();
  if (Q.isPerChannel() && Q.Axis == 1 &&
      static_cast<int64_t>(Q.Scales.size()) == OCG) {
    std::vector<double> S;
    std::vector<int64_t> Z;
    for (int64_t C = 0; C < OC; ++C) {
      S.push_back(Q.Scales[C % OCG]);
      Z.push_back(Q.ZeroPoints[C % OCG]);
    }
    R.setQuant(QuantParams::perChannel(std::move(S), std::move(Z), 0));
  } else {
    R.setQuant(Q);
  }
  return R;
}

} // namespace

llvm::Expected<bool> Lowerer::lowerConvTranspose2d(const Group &G) {
  const Node &N = *G.Anchor;
  const ModuleInfo &M = *GM.lookupModule(N.target());
  const ModuleInfo &CM =
      lookupFusedKind(M.kind()) && M.child("0") ? *M.child("0") : M;
  const Tensor *W = CM.tensor("weight");
  const Tensor *B = CM.tensor("bias");
  auto DP = deconvParams(N, CM);
  if (!DP)
    return DP.takeError();
  if (!W || !W->hasData() || W->rank() != 4)
    return nodeError(N, "conv_transpose2d needs a 4-d weight with data");
  const int64_t OC = W->dim(1) * DP->Groups;
  if (B &&
      (!B->hasData() || B->dtype() != DType::F32 || B->numElements() != OC))
    return nodeError(N, "conv_transpose2d bias must be f32 [out_channels] "
                        "with data");
  auto XV = valueOf(N.arg(0).getNode());
  if (!XV)
    return XV.takeError();
  if (Vals[*XV].Dims.size() != 4)
    return false;
  int X = inLayout(*XV, Layout::NHWC);
  const Value XI = Vals[X];
  std::optional<llvm::ArrayRef<int64_t>> BS;
  if (B)
    BS = B->shape();
  auto DstS = ref::convTranspose2dShape(XI.Dims, W->shape(), BS, *DP);
  if (!DstS)
    return nodeError(N, llvm::toString(DstS.takeError()));
  Shape DstDims = *DstS;
  if (typeOf(&N).Dims != DstDims)
    return nodeError(N, "output shape " + formatShape(DstDims) +
                            " differs from the node's type " +
                            formatShape(typeOf(&N).Dims));
  auto Op = weightedOp(G, XI, outputChannelWeight(*W, DP->Groups), B);
  if (!Op)
    return Op.takeError();
  if (Op->Other >= 0)
    return false;

  const int64_t IC = W->dim(0), KH = W->dim(2), KW = W->dim(3);
  const int64_t Gr = DP->Groups;
  memory::data_type WDt = toDnnl(W->dtype());
  // oneDNN's deconvolution weights are (g)oihw dims; PyTorch's bytes are
  // [in, out / groups, kH, kW], i.e. the (g)iohw layout of those dims.
  memory::dims WDims = Gr == 1 ? memory::dims{OC, IC, KH, KW}
                               : memory::dims{Gr, OC / Gr, IC / Gr, KH, KW};
  memory::desc UserW(WDims, WDt, Gr == 1 ? Tag::iohw : Tag::giohw);
  memory::desc BiasMd({OC}, memory::data_type::f32, Tag::x);
  memory::desc DstMd = makeDesc(Op->OutDt, DstDims, Layout::NHWC);
  // PyTorch's output_padding extends the bottom / right edge: oneDNN's
  // right padding is the padding minus it. Dilation counts the gap.
  memory::dims Strides{DP->Stride[0], DP->Stride[1]},
      Dil{DP->Dilation[0] - 1, DP->Dilation[1] - 1},
      PadL{DP->Padding[0], DP->Padding[1]},
      PadR{DP->Padding[0] - DP->OutputPadding[0],
           DP->Padding[1] - DP->OutputPadding[1]};
  using Deconv = dnnl::deconvolution_forward;
  auto Prop = dnnl::prop_kind::forward_inference;
  auto Alg = dnnl::algorithm::deconvolution_direct;
  memory::desc AnyW(WDims, WDt, Tag::any);
  Deconv::primitive_desc PD;
  try {
    PD =
        Deconv::primitive_desc(B ? Deconv::desc(Prop, Alg, XI.Md, AnyW, BiasMd,
                                                DstMd, Strides, Dil, PadL, PadR)
                                 : Deconv::desc(Prop, Alg, XI.Md, AnyW, DstMd,
                                                Strides, Dil, PadL, PadR),
                               Op->Attr, P.Engine);
  } catch (const dnnl::error &) {
    return false;
  }
  int Dst = newValue(Op->OutDt, DstDims, Layout::NHWC, Op->OutQ, G.name());
  std::string Name = N.target().str();
  std::vector<MemArg> Args = {
      arg(DNNL_ARG_SRC, X),
      {DNNL_ARG_WEIGHTS,
       addConstant(*W, UserW, PD.weights_desc(), Name + ".weight"), 0,
       PD.weights_desc()}};
  if (B)
    Args.push_back({DNNL_ARG_BIAS,
                    addConstant(Op->Bias, BiasMd, BiasMd, Name + ".bias"), 0,
                    BiasMd});
  Args.push_back(arg(DNNL_ARG_DST, Dst));
  PrimitiveStep &S =
      addPrimitive(PD, Deconv(PD), G.name(), "deconv", std::move(Args));
  if (Gr > 1)
    Op->Detail += " groups=" + std::to_string(Gr);
  finishWeighted(S, G, *Op, SumMode::None, Dst);
  return true;
}

//===----------------------------------------------------------------------===//
// Quantized batch norm
//===----------------------------------------------------------------------===//

/// PyTorch's quantized batch norm is, per channel c, out = alpha[c] * (x -
/// x_zp) + beta[c] in output units (compute_fused_params). That is a
/// depthwise 1x1 convolution with weight sign(alpha[c]) and weight scale
/// |alpha[c]| * out_scale / x_scale, and bias beta[c] * out_scale in real
/// units, which weightedOp turns into oneDNN's scales, zero points and
/// post-ops like any int8 conv's.
llvm::Expected<bool> Lowerer::lowerQuantizedBatchNorm(const Group &G) {
  const Node &N = *G.Anchor;
  const ModuleInfo &BM = *GM.lookupModule(N.target());
  const Tensor *Mean = BM.tensor("running_mean");
  const Tensor *Var = BM.tensor("running_var");
  const Tensor *Gamma = BM.tensor("weight");
  const Tensor *Beta = BM.tensor("bias");
  const Argument *EpsA = BM.attr("eps");
  const Argument *OutS = BM.attr("scale");
  auto XV = valueOf(N.arg(0).getNode());
  if (!XV)
    return XV.takeError();
  if (Vals[*XV].Dims.size() != 4 || !OutS || !OutS->isFloat())
    return false;
  const int64_t C = Vals[*XV].Dims[1];
  for (const Tensor *T : {Mean, Var, Gamma, Beta})
    if (T &&
        (!T->hasData() || T->dtype() != DType::F32 || T->numElements() != C))
      return false;
  if (!Mean || !Var)
    return false;
  int X = inLayout(*XV, Layout::NHWC);
  const Value XI = Vals[X];
  const double InScale = XI.Q.Scale, OutScale = OutS->getFloat();
  const float Eps =
      EpsA && EpsA->isFloat() ? static_cast<float>(EpsA->getFloat()) : 1e-5f;
  Tensor W(DType::S8, {C, 1, 1, 1}), B(DType::F32, {C});
  std::vector<double> WScales(C);
  for (int64_t Ch = 0; Ch < C; ++Ch) {
    // The reference kernel's alpha and beta (qref::batchNorm).
    float InvSigma =
        static_cast<float>(1.0 / std::sqrt(Var->data<float>()[Ch] + Eps));
    float Ga = Gamma ? Gamma->data<float>()[Ch] : 1.0f;
    float Be = Beta ? Beta->data<float>()[Ch] : 0.0f;
    float Alpha = static_cast<float>(InvSigma * Ga * (InScale / OutScale));
    float BetaU = static_cast<float>(
        (Be - Mean->data<float>()[Ch] * InvSigma * Ga) / OutScale);
    if (!(Alpha != 0.0f) || !std::isfinite(Alpha) || !std::isfinite(BetaU))
      return false;
    W.data<int8_t>()[Ch] = Alpha > 0 ? 1 : -1;
    WScales[Ch] = std::fabs(double(Alpha)) * OutScale / InScale;
    B.data<float>()[Ch] = static_cast<float>(double(BetaU) * OutScale);
  }
  W.setQuant(QuantParams::perChannel(WScales, std::vector<int64_t>(C, 0), 0));
  auto Op = weightedOp(G, XI, W, &B);
  if (!Op)
    return Op.takeError();
  const Shape &Dims = XI.Dims;
  memory::dims WDims{C, 1, 1, 1, 1};
  memory::desc UserW(WDims, memory::data_type::s8, Tag::goihw);
  memory::desc BiasMd({C}, memory::data_type::f32, Tag::x);
  memory::desc DstMd = makeDesc(Op->OutDt, Dims, Layout::NHWC);
  using Conv = dnnl::convolution_forward;
  Conv::primitive_desc PD;
  try {
    PD = Conv::primitive_desc(
        Conv::desc(dnnl::prop_kind::forward_inference,
                   dnnl::algorithm::convolution_direct, XI.Md,
                   memory::desc(WDims, memory::data_type::s8, Tag::any), BiasMd,
                   DstMd, {1, 1}, {0, 0}, {0, 0}, {0, 0}),
        Op->Attr, P.Engine);
  } catch (const dnnl::error &) {
    return false;
  }
  int Dst = newValue(Op->OutDt, Dims, Layout::NHWC, Op->OutQ, G.name());
  std::string Name = N.target().str();
  std::vector<MemArg> Args = {
      arg(DNNL_ARG_SRC, X),
      {DNNL_ARG_WEIGHTS,
       addConstant(W, UserW, PD.weights_desc(), Name + ".weight"), 0,
       PD.weights_desc()},
      {DNNL_ARG_BIAS, addConstant(Op->Bias, BiasMd, BiasMd, Name + ".bias"), 0,
       BiasMd},
      arg(DNNL_ARG_DST, Dst)};
  PrimitiveStep &S =
      addPrimitive(PD, Conv(PD), G.name(), "batch_norm", std::move(Args));
  Op->Detail += " depthwise 1x1";
  finishWeighted(S, G, *Op, SumMode::None, Dst);
  return true;
}

int Lowerer::unitHeightView(int V) {
  Value Y = Vals[V];
  if (Y.Dims.size() == 4)
    return V;
  assert((Y.Dims.size() == 2 || Y.Dims.size() == 3) && Y.PermSource < 0 &&
         "unit-height views are of 2-d and 3-d values");
  Y.Dims = {Y.Dims[0], Y.Dims[1], 1, Y.Dims.size() == 3 ? Y.Dims[2] : 1};
  Y.Md = makeDesc(Y.Dt, Y.Dims, Y.L);
  return addValue(std::move(Y));
}
