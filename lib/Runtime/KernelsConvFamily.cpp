//===- KernelsConvFamily.cpp - conv_transpose2d reference kernels ---------===//
//
// Transposed convolution as PyTorch defines it: every input element
// scatters input * weight into the output window it maps to (the adjoint of
// conv2d with the same parameters). Accumulation is in float, in the fixed
// order (n, group, in channel, ih, iw, out channel, kh, kw).
//
//===----------------------------------------------------------------------===//

#include "qfx/Runtime/KernelsConvFamily.h"

#include "qfx/Support/Error.h"

#include <cassert>

using namespace qfx;
using namespace qfx::ref;
using llvm::Twine;

namespace {

constexpr int64_t MaxParam = 1 << 20;

std::string formatPair(const std::array<int64_t, 2> &P) {
  return "(" + std::to_string(P[0]) + ", " + std::to_string(P[1]) + ")";
}

llvm::Error checkParam(llvm::StringRef What, const std::array<int64_t, 2> &P,
                       int64_t Min) {
  for (int64_t V : P)
    if (V < Min || V > MaxParam)
      return makeError("conv_transpose2d: " + What + ": must be between " +
                       Twine(Min) + " and " + Twine(MaxParam) + ", got " +
                       formatPair(P));
  return llvm::Error::success();
}

/// Visits every (input, weight, output) index triple of the scatter for
/// one batch element and group, in the kernels' fixed order.
template <typename Fn>
void forEachTap(const ConvTranspose2dParams &P, llvm::ArrayRef<int64_t> XS,
                llvm::ArrayRef<int64_t> WS, llvm::ArrayRef<int64_t> YS,
                Fn &&F) {
  const int64_t N = XS[0], IC = XS[1], IH = XS[2], IW = XS[3];
  const int64_t OCG = WS[1], KH = WS[2], KW = WS[3];
  const int64_t OC = YS[1], OH = YS[2], OW = YS[3];
  const int64_t ICG = IC / P.Groups;
  for (int64_t NI = 0; NI < N; ++NI)
    for (int64_t G = 0; G < P.Groups; ++G)
      for (int64_t CI = 0; CI < ICG; ++CI) {
        const int64_t C = G * ICG + CI;
        for (int64_t Y = 0; Y < IH; ++Y)
          for (int64_t X = 0; X < IW; ++X) {
            const int64_t XI = ((NI * IC + C) * IH + Y) * IW + X;
            for (int64_t O = 0; O < OCG; ++O) {
              const int64_t OCh = G * OCG + O;
              for (int64_t KY = 0; KY < KH; ++KY) {
                int64_t OY =
                    Y * P.Stride[0] - P.Padding[0] + KY * P.Dilation[0];
                if (OY < 0 || OY >= OH)
                  continue;
                for (int64_t KX = 0; KX < KW; ++KX) {
                  int64_t OX =
                      X * P.Stride[1] - P.Padding[1] + KX * P.Dilation[1];
                  if (OX < 0 || OX >= OW)
                    continue;
                  F(XI, ((C * OCG + O) * KH + KY) * KW + KX,
                    ((NI * OC + OCh) * OH + OY) * OW + OX);
                }
              }
            }
          }
      }
}

} // namespace

llvm::Expected<Shape>
ref::convTranspose2dShape(llvm::ArrayRef<int64_t> In, llvm::ArrayRef<int64_t> W,
                          std::optional<llvm::ArrayRef<int64_t>> Bias,
                          const ConvTranspose2dParams &P) {
  if (In.size() != 4)
    return makeError("conv_transpose2d: input: expected a 4-d input "
                     "[N, C, H, W], got " +
                     formatShape(In));
  if (W.size() != 4)
    return makeError("conv_transpose2d: weight: expected a 4-d weight "
                     "[in, out/groups, kH, kW], got " +
                     formatShape(W));
  for (int64_t D : W)
    if (D <= 0 || D > MaxParam)
      return makeError("conv_transpose2d: weight: bad shape " + formatShape(W));
  for (int64_t D : In)
    if (D < 0 || D > (int64_t(1) << 31))
      return makeError("conv_transpose2d: input: bad shape " + formatShape(In));
  if (llvm::Error E = checkParam("stride", P.Stride, 1))
    return std::move(E);
  if (llvm::Error E = checkParam("padding", P.Padding, 0))
    return std::move(E);
  if (llvm::Error E = checkParam("dilation", P.Dilation, 1))
    return std::move(E);
  if (llvm::Error E = checkParam("output_padding", P.OutputPadding, 0))
    return std::move(E);
  for (int I = 0; I < 2; ++I)
    if (P.OutputPadding[I] >= P.Stride[I] &&
        P.OutputPadding[I] >= P.Dilation[I])
      return makeError("conv_transpose2d: output_padding: must be smaller "
                       "than either stride or dilation, got output_padding " +
                       formatPair(P.OutputPadding) + ", stride " +
                       formatPair(P.Stride) + ", dilation " +
                       formatPair(P.Dilation));
  if (P.Groups < 1 || P.Groups > MaxParam)
    return makeError("conv_transpose2d: groups: must be between 1 and " +
                     Twine(MaxParam) + ", got " + Twine(P.Groups));
  if (W[0] % P.Groups)
    return makeError("conv_transpose2d: groups: in_channels (" + Twine(W[0]) +
                     ") is not divisible by groups (" + Twine(P.Groups) + ")");
  if (In[1] != W[0])
    return makeError("conv_transpose2d: input: has " + Twine(In[1]) +
                     " channels but weight expects " + Twine(W[0]));
  int64_t OC = W[1] * P.Groups;
  if (Bias && (Bias->size() != 1 || (*Bias)[0] != OC))
    return makeError("conv_transpose2d: bias: expected [" + Twine(OC) +
                     "], got " + formatShape(*Bias));
  Shape Out{In[0], OC, 0, 0};
  for (int I = 0; I < 2; ++I) {
    Out[2 + I] = (In[2 + I] - 1) * P.Stride[I] - 2 * P.Padding[I] +
                 P.Dilation[I] * (W[2 + I] - 1) + P.OutputPadding[I] + 1;
    if (Out[2 + I] <= 0)
      return makeError("conv_transpose2d: input: " + formatShape(In) +
                       " gives an empty output " + formatShape(Out));
  }
  return Out;
}

Tensor ref::convTranspose2d(const Tensor &X, const Tensor &W,
                            const Tensor *Bias,
                            const ConvTranspose2dParams &P) {
  std::optional<llvm::ArrayRef<int64_t>> BS;
  if (Bias)
    BS = Bias->shape();
  auto S = convTranspose2dShape(X.shape(), W.shape(), BS, P);
  assert(S && "conv_transpose2d on unchecked shapes");
  Tensor Y(DType::F32, *S);
  const float *XP = X.data<float>(), *WP = W.data<float>();
  float *YP = Y.data<float>();
  forEachTap(
      P, X.shape(), W.shape(), Y.shape(),
      [&](int64_t XI, int64_t WI, int64_t YI) { YP[YI] += XP[XI] * WP[WI]; });
  if (Bias) {
    const int64_t OC = (*S)[1], Plane = (*S)[2] * (*S)[3];
    for (int64_t I = 0; I < Y.numElements(); ++I)
      YP[I] += Bias->data<float>()[(I / Plane) % OC];
  }
  return Y;
}

ConvTranspose2dGrads ref::convTranspose2dBackward(
    const Tensor &X, const Tensor &W, bool HasBias, const Tensor &GradOut,
    const ConvTranspose2dParams &P, bool NeedX, bool NeedW) {
  ConvTranspose2dGrads G;
  if (NeedX)
    G.X = Tensor(DType::F32, X.shape());
  if (NeedW)
    G.W = Tensor(DType::F32, W.shape());
  const float *XP = X.data<float>(), *WP = W.data<float>();
  const float *GP = GradOut.data<float>();
  float *GX = NeedX ? G.X.data<float>() : nullptr;
  float *GW = NeedW ? G.W.data<float>() : nullptr;
  forEachTap(P, X.shape(), W.shape(), GradOut.shape(),
             [&](int64_t XI, int64_t WI, int64_t YI) {
               if (GX)
                 GX[XI] += GP[YI] * WP[WI];
               if (GW)
                 GW[WI] += GP[YI] * XP[XI];
             });
  if (HasBias) {
    const int64_t OC = GradOut.dim(1), Plane = GradOut.dim(2) * GradOut.dim(3);
    G.Bias = Tensor(DType::F32, {OC});
    for (int64_t I = 0; I < GradOut.numElements(); ++I)
      G.Bias.data<float>()[(I / Plane) % OC] += GP[I];
  }
  return G;
}
