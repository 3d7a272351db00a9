//===- LayerGrads.cpp - Backward kernels of conv, linear, norm and pooling ===//
//
// The reference loops mirror the forward kernels in Runtime/Kernels.cpp (the
// same window and padding rules), walking the same taps and scattering or
// reducing instead of gathering. Long reductions (weight, bias and batch
// norm sums) accumulate in double so the result does not depend on the
// batch size's rounding. conv2d's backward runs on oneDNN when the kernel
// mode says so.
//
//===----------------------------------------------------------------------===//

#include "qfx/Train/GradKernels.h"

#include "qfx/Backend/OneDNN/GradKernels.h"
#include "qfx/Runtime/Op.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

using namespace qfx;
using namespace qfx::grad;
using llvm::ArrayRef;

namespace {

void assertF32(const Tensor &T) {
  (void)T;
  assert(T.dtype() == DType::F32 && T.hasData() &&
         "backward kernels expect f32 tensors with data");
}

/// Ceiling of A / B for A >= 0, B > 0.
int64_t ceilDiv(int64_t A, int64_t B) { return (A + B - 1) / B; }

/// The outputs [Lo, Hi) of a sliding window with stride \p S whose tap at
/// input offset \p Off (input index O * S + Off) falls inside [0, In), as in
/// the forward conv2d.
void validOutputs(int64_t Off, int64_t S, int64_t In, int64_t Out, int64_t &Lo,
                  int64_t &Hi) {
  Lo = Off >= 0 ? 0 : ceilDiv(-Off, S);
  Hi = In - 1 - Off < 0 ? 0 : std::min(Out, (In - 1 - Off) / S + 1);
}

/// The taps [Lo, Hi) of a K-tap window starting at \p Start with step \p D
/// that fall inside [0, Extent), as in the forward pooling.
void validTaps(int64_t Start, int64_t K, int64_t D, int64_t Extent, int64_t &Lo,
               int64_t &Hi) {
  Lo = Start < 0 ? ceilDiv(-Start, D) : 0;
  Hi = Extent > Start ? std::min(K, ceilDiv(Extent - Start, D)) : 0;
}

//===----------------------------------------------------------------------===//
// conv2d
//===----------------------------------------------------------------------===//

/// Extents of one conv2d, read from its operands.
struct ConvDims {
  int64_t N, IC, IH, IW, OC, ICG, OCG, KH, KW, OH, OW;
};

ConvDims convDims(const Tensor &X, const Tensor &W, const Tensor &GradOut,
                  const ref::Conv2dParams &P) {
  assertF32(X);
  assertF32(W);
  assertF32(GradOut);
  assert(X.rank() == 4 && W.rank() == 4 && GradOut.rank() == 4 &&
         "conv2d backward expects 4-D tensors");
  ConvDims D{X.dim(0),      X.dim(1), X.dim(2), X.dim(3), W.dim(0),
             W.dim(1),      0,        W.dim(2), W.dim(3), GradOut.dim(2),
             GradOut.dim(3)};
  D.OCG = D.OC / P.Groups;
  assert(D.ICG * P.Groups == D.IC && D.OCG * P.Groups == D.OC &&
         GradOut.dim(0) == D.N && GradOut.dim(1) == D.OC &&
         "conv2d backward: operands do not match");
  return D;
}

/// Scatters every output gradient back along the taps that produced it:
/// GX[n, c, oy*s + ky*d - p, ...] += GY[n, o, oy, ...] * W[o, c, ky, ...].
Tensor convGradInput(const Tensor &W, const Tensor &GradOut, const ConvDims &D,
                     const ref::Conv2dParams &P) {
  Tensor GX(DType::F32, {D.N, D.IC, D.IH, D.IW});
  const int64_t SH = P.Stride[0], SW = P.Stride[1];
  const float *WP = W.data<float>(), *GP = GradOut.data<float>();
  for (int64_t NI = 0; NI < D.N; ++NI)
    for (int64_t O = 0; O < D.OC; ++O) {
      float *GXG =
          GX.data<float>() + (NI * D.IC + (O / D.OCG) * D.ICG) * D.IH * D.IW;
      const float *GO = GP + (NI * D.OC + O) * D.OH * D.OW;
      const float *WO = WP + O * D.ICG * D.KH * D.KW;
      for (int64_t C = 0; C < D.ICG; ++C)
        for (int64_t KY = 0; KY < D.KH; ++KY) {
          int64_t OffY = KY * P.Dilation[0] - P.Padding[0], OYLo, OYHi;
          validOutputs(OffY, SH, D.IH, D.OH, OYLo, OYHi);
          for (int64_t KX = 0; KX < D.KW; ++KX) {
            int64_t OffX = KX * P.Dilation[1] - P.Padding[1], OXLo, OXHi;
            validOutputs(OffX, SW, D.IW, D.OW, OXLo, OXHi);
            const float Wv = WO[(C * D.KH + KY) * D.KW + KX];
            for (int64_t OY = OYLo; OY < OYHi; ++OY) {
              float *XR = GXG + (C * D.IH + OY * SH + OffY) * D.IW + OffX;
              const float *GR = GO + OY * D.OW;
              for (int64_t OX = OXLo; OX < OXHi; ++OX)
                XR[OX * SW] += GR[OX] * Wv;
            }
          }
        }
    }
  return GX;
}

/// One weight's gradient: the sum over the batch and the output positions
/// of GY[n, o, oy, ox] * X[n, c, oy*s + ky*d - p, ...]. Each output column
/// accumulates in its own lane of \p Lanes (so the inner loop vectorizes
/// instead of waiting on one accumulator); the lanes are summed at the end.
double convWeightTap(const Tensor &X, const Tensor &GradOut, const ConvDims &D,
                     const ref::Conv2dParams &P, int64_t O, int64_t CI,
                     int64_t KY, int64_t KX, std::vector<double> &Lanes) {
  const int64_t SH = P.Stride[0], SW = P.Stride[1];
  int64_t OffY = KY * P.Dilation[0] - P.Padding[0], OYLo, OYHi;
  int64_t OffX = KX * P.Dilation[1] - P.Padding[1], OXLo, OXHi;
  validOutputs(OffY, SH, D.IH, D.OH, OYLo, OYHi);
  validOutputs(OffX, SW, D.IW, D.OW, OXLo, OXHi);
  Lanes.assign(static_cast<size_t>(D.OW), 0.0);
  double *L = Lanes.data();
  for (int64_t NI = 0; NI < D.N; ++NI) {
    const float *XC = X.data<float>() + (NI * D.IC + CI) * D.IH * D.IW;
    const float *GO = GradOut.data<float>() + (NI * D.OC + O) * D.OH * D.OW;
    for (int64_t OY = OYLo; OY < OYHi; ++OY) {
      const float *XR = XC + (OY * SH + OffY) * D.IW + OffX;
      const float *GR = GO + OY * D.OW;
      for (int64_t OX = OXLo; OX < OXHi; ++OX)
        L[OX] += double(GR[OX]) * double(XR[OX * SW]);
    }
  }
  double Sum = 0;
  for (double V : Lanes)
    Sum += V;
  return Sum;
}

Tensor convGradWeight(const Tensor &X, const Tensor &GradOut, const ConvDims &D,
                      const ref::Conv2dParams &P) {
  Tensor GW(DType::F32, {D.OC, D.ICG, D.KH, D.KW});
  float *Out = GW.data<float>();
  std::vector<double> Lanes;
  for (int64_t O = 0; O < D.OC; ++O)
    for (int64_t C = 0; C < D.ICG; ++C)
      for (int64_t KY = 0; KY < D.KH; ++KY)
        for (int64_t KX = 0; KX < D.KW; ++KX) {
          int64_t CI = (O / D.OCG) * D.ICG + C;
          double G = convWeightTap(X, GradOut, D, P, O, CI, KY, KX, Lanes);
          Out[((O * D.ICG + C) * D.KH + KY) * D.KW + KX] =
              static_cast<float>(G);
        }
  return GW;
}

/// GradOut [N, C, ...] summed over all but dimension 1.
Tensor sumPerChannel(const Tensor &GradOut) {
  const int64_t N = GradOut.dim(0), C = GradOut.dim(1);
  const int64_t Inner = C == 0 || N == 0 ? 0 : GradOut.numElements() / (N * C);
  Tensor GB(DType::F32, {C});
  const float *G = GradOut.data<float>();
  for (int64_t Ch = 0; Ch < C; ++Ch) {
    double Sum = 0;
    for (int64_t NI = 0; NI < N; ++NI)
      for (int64_t I = 0; I < Inner; ++I)
        Sum += G[(NI * C + Ch) * Inner + I];
    GB.data<float>()[Ch] = static_cast<float>(Sum);
  }
  return GB;
}

} // namespace

// The bias gradient is returned whenever the conv has a bias (it is a cheap
// sum), so a caller training only the bias can pass NeedW = false.
Conv2dGrads grad::conv2dBackwardRef(const Tensor &X, const Tensor &W,
                                    bool HasBias, const Tensor &GradOut,
                                    const ref::Conv2dParams &P, bool NeedX,
                                    bool NeedW) {
  ConvDims D = convDims(X, W, GradOut, P);
  Conv2dGrads G;
  if (NeedX)
    G.X = convGradInput(W, GradOut, D, P);
  if (NeedW)
    G.W = convGradWeight(X, GradOut, D, P);
  if (HasBias)
    G.Bias = sumPerChannel(GradOut);
  return G;
}

Conv2dGrads grad::conv2dBackward(const Tensor &X, const Tensor &W, bool HasBias,
                                 const Tensor &GradOut,
                                 const ref::Conv2dParams &P, bool NeedX,
                                 bool NeedW) {
  if (kernelMode() != KernelMode::OneDNN)
    return conv2dBackwardRef(X, W, HasBias, GradOut, P, NeedX, NeedW);
  convDims(X, W, GradOut, P); // Only checks the operands.
  Conv2dGrads G;
  onednn::conv2dBackward(X, W, GradOut, P, NeedX ? &G.X : nullptr,
                         NeedW ? &G.W : nullptr,
                         NeedW && HasBias ? &G.Bias : nullptr);
  if (!NeedW && HasBias)
    G.Bias = sumPerChannel(GradOut);
  return G;
}

//===----------------------------------------------------------------------===//
// linear
//===----------------------------------------------------------------------===//

namespace {

/// GX[r, :] = sum_o GY[r, o] * W[o, :].
Tensor linearGradInput(const Tensor &X, const Tensor &W, const Tensor &GradOut,
                       int64_t Rows) {
  const int64_t Out = W.dim(0), In = W.dim(1);
  Tensor GX(DType::F32, X.shape());
  const float *WP = W.data<float>(), *GP = GradOut.data<float>();
  for (int64_t R = 0; R < Rows; ++R) {
    float *XR = GX.data<float>() + R * In;
    for (int64_t O = 0; O < Out; ++O) {
      const float G = GP[R * Out + O];
      const float *WR = WP + O * In;
      for (int64_t I = 0; I < In; ++I)
        XR[I] += G * WR[I];
    }
  }
  return GX;
}

/// GW[o, :] = sum_r GY[r, o] * X[r, :], accumulated in double.
Tensor linearGradWeight(const Tensor &X, const Tensor &W, const Tensor &GradOut,
                        int64_t Rows) {
  const int64_t Out = W.dim(0), In = W.dim(1);
  std::vector<double> Acc(static_cast<size_t>(Out * In), 0.0);
  const float *XP = X.data<float>(), *GP = GradOut.data<float>();
  for (int64_t R = 0; R < Rows; ++R) {
    const float *XR = XP + R * In;
    for (int64_t O = 0; O < Out; ++O) {
      const double G = GP[R * Out + O];
      double *AR = Acc.data() + O * In;
      for (int64_t I = 0; I < In; ++I)
        AR[I] += G * XR[I];
    }
  }
  Tensor GW(DType::F32, W.shape());
  for (int64_t I = 0; I < Out * In; ++I)
    GW.data<float>()[I] = static_cast<float>(Acc[I]);
  return GW;
}

} // namespace

LinearGrads grad::linearBackward(const Tensor &X, const Tensor &W, bool HasBias,
                                 const Tensor &GradOut, bool NeedX,
                                 bool NeedW) {
  assertF32(X);
  assertF32(W);
  assertF32(GradOut);
  assert(X.rank() >= 1 && W.rank() == 2 && X.shape().back() == W.dim(1) &&
         GradOut.shape().drop_back() == X.shape().drop_back() &&
         GradOut.shape().back() == W.dim(0) &&
         "linear backward: operands do not match");
  const int64_t Rows = numElements(X.shape().drop_back());
  LinearGrads G;
  if (NeedX)
    G.X = linearGradInput(X, W, GradOut, Rows);
  if (NeedW)
    G.W = linearGradWeight(X, W, GradOut, Rows);
  if (HasBias)
    G.Bias = sumPerChannel(GradOut.reshaped({Rows, W.dim(0)}));
  return G;
}

//===----------------------------------------------------------------------===//
// Batch norm
//===----------------------------------------------------------------------===//

namespace {

/// [N, C, ...] viewed as N blocks of C channels of Inner elements.
struct ChannelDims {
  int64_t N, C, Inner;
  int64_t count() const { return N * Inner; }
  int64_t offset(int64_t NI, int64_t Ch) const { return (NI * C + Ch) * Inner; }
};

ChannelDims channelDims(const Tensor &X) {
  assertF32(X);
  assert(X.rank() >= 2 && "batch_norm expects [N, C, ...]");
  return {X.dim(0), X.dim(1), numElements(X.shape().drop_front(2))};
}

/// Biased mean and variance of channel \p Ch, in double (two passes, so
/// large means do not cancel the variance).
std::pair<double, double> channelMoments(const float *XP, const ChannelDims &D,
                                         int64_t Ch) {
  double Sum = 0, SumSq = 0;
  for (int64_t NI = 0; NI < D.N; ++NI)
    for (int64_t I = 0; I < D.Inner; ++I)
      Sum += XP[D.offset(NI, Ch) + I];
  double Mean = Sum / double(D.count());
  for (int64_t NI = 0; NI < D.N; ++NI)
    for (int64_t I = 0; I < D.Inner; ++I) {
      double Dev = XP[D.offset(NI, Ch) + I] - Mean;
      SumSq += Dev * Dev;
    }
  return {Mean, SumSq / double(D.count())};
}

/// y = (x - mean) * invstd * weight + bias over channel \p Ch.
void normalizeChannel(const Tensor &X, const ChannelDims &D, int64_t Ch,
                      double Mean, double InvStd, const Tensor *Weight,
                      const Tensor *Bias, Tensor &Out) {
  double G = Weight ? Weight->data<float>()[Ch] : 1.0;
  double B = Bias ? Bias->data<float>()[Ch] : 0.0;
  const float *XP = X.data<float>();
  float *YP = Out.data<float>();
  for (int64_t NI = 0; NI < D.N; ++NI)
    for (int64_t I = 0; I < D.Inner; ++I) {
      int64_t K = D.offset(NI, Ch) + I;
      YP[K] = static_cast<float>((XP[K] - Mean) * InvStd * G + B);
    }
}

/// running = (1 - m) * running + m * batch, rounded once to f32.
void updateRunning(Tensor &Running, int64_t Ch, double Batch, double Momentum) {
  float &R = Running.data<float>()[Ch];
  R = static_cast<float>((1.0 - Momentum) * R + Momentum * Batch);
}

/// sum(g) and sum(g * xhat) over channel \p Ch, xhat = (x - mean) * invstd.
std::pair<double, double> gradSums(const Tensor &X, const Tensor &GradOut,
                                   const ChannelDims &D, int64_t Ch,
                                   double Mean, double InvStd) {
  const float *XP = X.data<float>(), *GP = GradOut.data<float>();
  double SumG = 0, SumGX = 0;
  for (int64_t NI = 0; NI < D.N; ++NI)
    for (int64_t I = 0; I < D.Inner; ++I) {
      int64_t K = D.offset(NI, Ch) + I;
      SumG += GP[K];
      SumGX += GP[K] * (XP[K] - Mean) * InvStd;
    }
  return {SumG, SumGX};
}

/// Allocates the gradients: the weight's only when there is a weight.
BatchNormGrads makeBatchNormGrads(const Tensor &X, const ChannelDims &D,
                                  const Tensor *Weight) {
  BatchNormGrads G;
  G.X = Tensor(DType::F32, X.shape());
  if (Weight)
    G.Weight = Tensor(DType::F32, {D.C});
  G.Bias = Tensor(DType::F32, {D.C});
  return G;
}

void storeParamGrads(BatchNormGrads &G, int64_t Ch, double SumG, double SumGX) {
  if (G.Weight.hasData())
    G.Weight.data<float>()[Ch] = static_cast<float>(SumGX);
  G.Bias.data<float>()[Ch] = static_cast<float>(SumG);
}

} // namespace

BatchNormSaved grad::batchNormTrain(const Tensor &X, Tensor &RunningMean,
                                    Tensor &RunningVar, const Tensor *Weight,
                                    const Tensor *Bias, double Momentum,
                                    double Eps, Tensor &Out) {
  ChannelDims D = channelDims(X);
  assert(D.count() > 1 &&
         "batch_norm training needs more than one value per channel");
  BatchNormSaved S{Tensor(DType::F32, {D.C}), Tensor(DType::F32, {D.C})};
  Out = Tensor(DType::F32, X.shape());
  // Modules built with track_running_stats=False have no running buffers.
  bool Track = RunningMean.hasData() && RunningVar.hasData();
  for (int64_t Ch = 0; Ch < D.C; ++Ch) {
    auto [Mean, Var] = channelMoments(X.data<float>(), D, Ch);
    double InvStd = 1.0 / std::sqrt(Var + Eps);
    S.Mean.data<float>()[Ch] = static_cast<float>(Mean);
    S.InvStd.data<float>()[Ch] = static_cast<float>(InvStd);
    normalizeChannel(X, D, Ch, Mean, InvStd, Weight, Bias, Out);
    if (!Track)
      continue;
    double Count = double(D.count());
    updateRunning(RunningMean, Ch, Mean, Momentum);
    updateRunning(RunningVar, Ch, Var * Count / (Count - 1), Momentum);
  }
  return S;
}

// dx = w * invstd * (g - mean(g) - xhat * mean(g * xhat)): the gradient
// through the batch mean and variance (PyTorch's batch_norm_backward).
BatchNormGrads grad::batchNormTrainBackward(const Tensor &X,
                                            const BatchNormSaved &S,
                                            const Tensor *Weight,
                                            const Tensor &GradOut) {
  ChannelDims D = channelDims(X);
  assertF32(GradOut);
  assert(GradOut.shape() == X.shape() && "batch_norm backward: shapes differ");
  BatchNormGrads G = makeBatchNormGrads(X, D, Weight);
  const float *XP = X.data<float>(), *GP = GradOut.data<float>();
  float *DX = G.X.data<float>();
  for (int64_t Ch = 0; Ch < D.C; ++Ch) {
    double Mean = S.Mean.data<float>()[Ch];
    double InvStd = S.InvStd.data<float>()[Ch];
    auto [SumG, SumGX] = gradSums(X, GradOut, D, Ch, Mean, InvStd);
    storeParamGrads(G, Ch, SumG, SumGX);
    double K = (Weight ? Weight->data<float>()[Ch] : 1.0) * InvStd;
    double MeanG = SumG / double(D.count()), MeanGX = SumGX / double(D.count());
    for (int64_t NI = 0; NI < D.N; ++NI)
      for (int64_t I = 0; I < D.Inner; ++I) {
        int64_t Idx = D.offset(NI, Ch) + I;
        double XHat = (XP[Idx] - Mean) * InvStd;
        DX[Idx] = static_cast<float>(K * (GP[Idx] - MeanG - XHat * MeanGX));
      }
  }
  return G;
}

BatchNormGrads grad::batchNormEvalBackward(const Tensor &X,
                                           const Tensor &RunningMean,
                                           const Tensor &RunningVar,
                                           const Tensor *Weight, double Eps,
                                           const Tensor &GradOut) {
  ChannelDims D = channelDims(X);
  assertF32(GradOut);
  assert(GradOut.shape() == X.shape() && "batch_norm backward: shapes differ");
  BatchNormGrads G = makeBatchNormGrads(X, D, Weight);
  const float *GP = GradOut.data<float>();
  float *DX = G.X.data<float>();
  for (int64_t Ch = 0; Ch < D.C; ++Ch) {
    double Mean = RunningMean.data<float>()[Ch];
    double InvStd = 1.0 / std::sqrt(double(RunningVar.data<float>()[Ch]) + Eps);
    auto [SumG, SumGX] = gradSums(X, GradOut, D, Ch, Mean, InvStd);
    storeParamGrads(G, Ch, SumG, SumGX);
    double K = (Weight ? Weight->data<float>()[Ch] : 1.0) * InvStd;
    for (int64_t NI = 0; NI < D.N; ++NI)
      for (int64_t I = 0; I < D.Inner; ++I) {
        int64_t Idx = D.offset(NI, Ch) + I;
        DX[Idx] = static_cast<float>(K * GP[Idx]);
      }
  }
  return G;
}

//===----------------------------------------------------------------------===//
// Pooling
//===----------------------------------------------------------------------===//

namespace {

/// Extents of a pooling's input and output planes.
struct PoolDims {
  int64_t Planes, IH, IW, OH, OW;
};

PoolDims poolDims(ArrayRef<int64_t> XShape, const Tensor &GradOut) {
  assertF32(GradOut);
  assert(XShape.size() == 4 && GradOut.rank() == 4 &&
         GradOut.dim(0) == XShape[0] && GradOut.dim(1) == XShape[1] &&
         "pooling backward: operands do not match");
  return {XShape[0] * XShape[1], XShape[2], XShape[3], GradOut.dim(2),
          GradOut.dim(3)};
}

/// The flat index (within the plane) of the element the forward max pool
/// picked for window (OY, OX): the first maximum in row-major order, a NaN
/// winning over numbers (the last NaN, as PyTorch's `val > max || isnan`
/// test gives). -1 for a window with no tap inside the input.
int64_t windowArgmax(const float *XP, const PoolDims &D,
                     const ref::Pool2dParams &P, int64_t OY, int64_t OX) {
  const int64_t DH = P.Dilation[0], DW = P.Dilation[1];
  int64_t IY0 = OY * P.Stride[0] - P.Padding[0], KYLo, KYHi;
  int64_t IX0 = OX * P.Stride[1] - P.Padding[1], KXLo, KXHi;
  validTaps(IY0, P.Kernel[0], DH, D.IH, KYLo, KYHi);
  validTaps(IX0, P.Kernel[1], DW, D.IW, KXLo, KXHi);
  if (KYLo >= KYHi || KXLo >= KXHi)
    return -1;
  // PyTorch starts from the first tap, so an all -inf window still sends
  // its gradient somewhere.
  int64_t Best = (IY0 + KYLo * DH) * D.IW + IX0 + KXLo * DW;
  float M = -std::numeric_limits<float>::infinity();
  for (int64_t KY = KYLo; KY < KYHi; ++KY)
    for (int64_t KX = KXLo; KX < KXHi; ++KX) {
      int64_t Idx = (IY0 + KY * DH) * D.IW + IX0 + KX * DW;
      float V = XP[Idx];
      if (V > M || std::isnan(V)) {
        M = V;
        Best = Idx;
      }
    }
  return Best;
}

/// windowArgmax for a window known to lie inside the input (no padding,
/// no dilation): the same first-maximum / NaN rule without clipping.
int64_t insideWindowArgmax(const float *XP, const PoolDims &D,
                           const ref::Pool2dParams &P, int64_t OY, int64_t OX) {
  int64_t Base = OY * P.Stride[0] * D.IW + OX * P.Stride[1];
  int64_t Best = Base;
  float M = -std::numeric_limits<float>::infinity();
  for (int64_t KY = 0; KY < P.Kernel[0]; ++KY) {
    const float *Row = XP + Base + KY * D.IW;
    for (int64_t KX = 0; KX < P.Kernel[1]; ++KX) {
      float V = Row[KX];
      if (V > M || V != V) {
        M = V;
        Best = Base + KY * D.IW + KX;
      }
    }
  }
  return Best;
}

/// Adds \p G to GX[Y0:Y1, X0:X1] of one plane.
void spread(float *GX, int64_t IW, int64_t Y0, int64_t Y1, int64_t X0,
            int64_t X1, float G) {
  for (int64_t IY = Y0; IY < Y1; ++IY)
    for (int64_t IX = X0; IX < X1; ++IX)
      GX[IY * IW + IX] += G;
}

} // namespace

Tensor grad::maxPool2dBackward(const Tensor &X, const Tensor &GradOut,
                               const ref::Pool2dParams &P) {
  assertF32(X);
  PoolDims D = poolDims(X.shape(), GradOut);
  Tensor GX(DType::F32, X.shape());
  // Without padding, dilation or ceil mode every window lies inside the
  // input, and the common case skips the clipping.
  bool Inside = P.Padding[0] == 0 && P.Padding[1] == 0 && P.Dilation[0] == 1 &&
                P.Dilation[1] == 1 && !P.CeilMode;
  // Planes are independent, so threads cannot change the result.
#pragma omp parallel for schedule(static) if (D.Planes * D.IH * D.IW >=        \
                                              (1 << 15))
  for (int64_t PI = 0; PI < D.Planes; ++PI) {
    const float *XP = X.data<float>() + PI * D.IH * D.IW;
    const float *GP = GradOut.data<float>() + PI * D.OH * D.OW;
    float *GXP = GX.data<float>() + PI * D.IH * D.IW;
    for (int64_t OY = 0; OY < D.OH; ++OY)
      for (int64_t OX = 0; OX < D.OW; ++OX) {
        int64_t Idx = Inside ? insideWindowArgmax(XP, D, P, OY, OX)
                             : windowArgmax(XP, D, P, OY, OX);
        if (Idx >= 0)
          GXP[Idx] += GP[OY * D.OW + OX];
      }
  }
  return GX;
}

Tensor grad::avgPool2dBackward(ArrayRef<int64_t> XShape, const Tensor &GradOut,
                               const ref::Pool2dParams &P) {
  assert(P.Dilation[0] == 1 && P.Dilation[1] == 1 &&
         "avg_pool2d has no dilation");
  PoolDims D = poolDims(XShape, GradOut);
  Tensor GX(DType::F32, XShape);
#pragma omp parallel for schedule(static) if (D.Planes * D.IH * D.IW >=        \
                                              (1 << 15))
  for (int64_t PI = 0; PI < D.Planes; ++PI) {
    const float *GP = GradOut.data<float>() + PI * D.OH * D.OW;
    float *GXP = GX.data<float>() + PI * D.IH * D.IW;
    for (int64_t OY = 0; OY < D.OH; ++OY) {
      int64_t Y0, Y1, PadH;
      ref::avgPoolWindow(OY, P.Kernel[0], P.Stride[0], P.Padding[0], D.IH, Y0,
                         Y1, PadH);
      for (int64_t OX = 0; OX < D.OW; ++OX) {
        int64_t X0, X1, PadW;
        ref::avgPoolWindow(OX, P.Kernel[1], P.Stride[1], P.Padding[1], D.IW, X0,
                           X1, PadW);
        // The forward writes 0 for an empty window: no input to credit.
        if (Y0 >= Y1 || X0 >= X1)
          continue;
        int64_t Div = P.DivisorOverride   ? *P.DivisorOverride
                      : P.CountIncludePad ? PadH * PadW
                                          : (Y1 - Y0) * (X1 - X0);
        spread(GXP, D.IW, Y0, Y1, X0, X1,
               GP[OY * D.OW + OX] / static_cast<float>(Div));
      }
    }
  }
  return GX;
}

Tensor grad::adaptiveAvgPool2dBackward(ArrayRef<int64_t> XShape,
                                       const Tensor &GradOut) {
  PoolDims D = poolDims(XShape, GradOut);
  Tensor GX(DType::F32, XShape);
  for (int64_t PI = 0; PI < D.Planes; ++PI) {
    const float *GP = GradOut.data<float>() + PI * D.OH * D.OW;
    float *GXP = GX.data<float>() + PI * D.IH * D.IW;
    for (int64_t OY = 0; OY < D.OH; ++OY) {
      // PyTorch's bins, as in the forward.
      int64_t Y0 = OY * D.IH / D.OH, Y1 = ceilDiv((OY + 1) * D.IH, D.OH);
      for (int64_t OX = 0; OX < D.OW; ++OX) {
        int64_t X0 = OX * D.IW / D.OW, X1 = ceilDiv((OX + 1) * D.IW, D.OW);
        float Count = static_cast<float>((Y1 - Y0) * (X1 - X0));
        spread(GXP, D.IW, Y0, Y1, X0, X1, GP[OY * D.OW + OX] / Count);
      }
    }
  }
  return GX;
}
