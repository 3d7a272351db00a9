//===- ConvBnQat.cpp - Training QAT ConvBn2d as PyTorch does -------------===//
//
// PyTorch trains a QAT conv-bn as one unit so that what is fake-quantized is
// the weight the converted model will use: the conv weight scaled by the
// BatchNorm factor gamma / sqrt(running_var + eps). The conv output is
// unscaled again before BatchNorm normalizes it with batch statistics, so
// the forward equals conv + bn up to quantization. Backward differentiates
// every piece, including gamma's path through the scale factor.
//
//===----------------------------------------------------------------------===//

#include "ConvBnQat.h"

#include "qfx/Backend/OneDNN/FloatKernels.h"
#include "qfx/IR/GraphModule.h"
#include "qfx/Quant/ObserverModule.h"
#include "qfx/Support/Error.h"

#include <cmath>

using namespace qfx;
using namespace qfx::train;

bool qfx::train::isConvBnQatKind(llvm::StringRef Kind) {
  return Kind == "ConvBn2d" || Kind == "ConvBnReLU2d" || Kind == "LinearBn1d" ||
         Kind == "ConvBn1d" || Kind == "ConvBnReLU1d"; // conv family
}

namespace {

/// Per-channel multiply (or divide) of an [N, C, ...] or [C, ...] tensor
/// along \p Axis.
Tensor scaleChannels(const Tensor &T, const std::vector<float> &F, int Axis,
                     bool Divide) {
  Tensor R = T.clone();
  int64_t C = T.dim(Axis);
  int64_t Inner = 1;
  for (int64_t D = Axis + 1; D < T.rank(); ++D)
    Inner *= T.dim(D);
  int64_t Outer = T.numElements() / (C * Inner);
  float *D = R.data<float>();
  for (int64_t O = 0; O < Outer; ++O)
    for (int64_t Ch = 0; Ch < C; ++Ch) {
      float S = F[Ch];
      float *P = D + (O * C + Ch) * Inner;
      for (int64_t I = 0; I < Inner; ++I)
        P[I] = Divide ? P[I] / S : P[I] * S;
    }
  return R;
}

/// sum over everything but \p Axis of A * B (B may be null: sum of A).
std::vector<double> channelDot(const Tensor &A, const Tensor *B, int Axis) {
  int64_t C = A.dim(Axis);
  int64_t Inner = 1;
  for (int64_t D = Axis + 1; D < A.rank(); ++D)
    Inner *= A.dim(D);
  int64_t Outer = A.numElements() / (C * Inner);
  std::vector<double> R(C, 0.0);
  const float *PA = A.data<float>();
  const float *PB = B ? B->data<float>() : nullptr;
  for (int64_t O = 0; O < Outer; ++O)
    for (int64_t Ch = 0; Ch < C; ++Ch) {
      int64_t Base = (O * C + Ch) * Inner;
      double S = 0;
      for (int64_t I = 0; I < Inner; ++I)
        S += double(PA[Base + I]) * (PB ? double(PB[Base + I]) : 1.0);
      R[Ch] += S;
    }
  return R;
}

Tensor fromDoubles(const std::vector<double> &V) {
  Tensor T(DType::F32, {static_cast<int64_t>(V.size())});
  for (size_t I = 0; I < V.size(); ++I)
    T.data<float>()[I] = static_cast<float>(V[I]);
  return T;
}

/// conv2d (or, for LinearBn1d, linear) without bias.
Tensor weightedForward(bool IsLinear, const Tensor &X, const Tensor &W,
                       const ref::Conv2dParams &P) {
  bool Fast = kernelMode() == KernelMode::OneDNN;
  if (IsLinear)
    return Fast ? onednn::linear(X, W, nullptr) : ref::linear(X, W, nullptr);
  return Fast ? onednn::conv2d(X, W, nullptr, P)
              : ref::conv2d(X, W, nullptr, P);
}

/// The saved state and backward of one QAT conv-bn application.
class ConvBnBackward : public CustomBackward {
public:
  llvm::Error backward(const Tensor &GradOut, GradSink &Sink) override;

  std::string Path;
  Source XSrc;
  ref::Conv2dParams P;
  bool IsLinear = false;
  /// ConvBn1d kinds: X, W and everything after are the unit-height 2-d
  /// views conv1d runs as; gradients leave with the 1-d shapes.
  bool Is1d = false;
  Tensor X, W, WQ, Mask, Y, Yo, Z, Gamma, RunningMean, RunningVar;
  std::vector<float> SF, Std;
  bool HasBias = false, HasReLU = false, BatchStats = false;
  double Eps = 1e-5;
  grad::BatchNormSaved BN;
};

} // namespace

/// \p T with a unit dimension inserted at 2 (\p Insert) or removed there.
static Tensor unitHeight(const Tensor &T, bool Insert) {
  Shape S(T.shape().begin(), T.shape().end());
  if (Insert)
    S.insert(S.begin() + 2, 1);
  else
    S.erase(S.begin() + 2);
  return T.reshaped(S);
}

llvm::Error ConvBnBackward::backward(const Tensor &GradOut1, GradSink &Sink) {
  const Tensor GradOut = Is1d ? unitHeight(GradOut1, true) : GradOut1;
  Tensor GZ = HasReLU ? grad::reluBackward(Z, GradOut) : GradOut;
  grad::BatchNormGrads BG =
      BatchStats ? grad::batchNormTrainBackward(Yo, BN, &Gamma, GZ)
                 : grad::batchNormEvalBackward(Yo, RunningMean, RunningVar,
                                               &Gamma, Eps, GZ);
  Sink.add(Source::param(Path + ".1.bias"), BG.Bias);
  const Tensor &GYo = BG.X;
  if (HasBias)
    Sink.add(Source::param(Path + ".0.bias"),
             fromDoubles(channelDot(GYo, nullptr, 1)));
  // Yo = Y / sf (+ b): dY = dYo / sf, dsf = -sum(dYo * Y) / sf^2.
  Tensor GY = scaleChannels(GYo, SF, 1, /*Divide=*/true);
  std::vector<double> DSF = channelDot(GYo, &Y, 1);
  for (size_t C = 0; C < SF.size(); ++C)
    DSF[C] = -DSF[C] / (double(SF[C]) * SF[C]);
  Tensor GX, GWq;
  if (IsLinear) {
    grad::LinearGrads LG = grad::linearBackward(X, WQ, /*HasBias=*/false, GY,
                                                Sink.needs(XSrc), true);
    GX = LG.X, GWq = LG.W;
  } else {
    grad::Conv2dGrads CG = grad::conv2dBackward(X, WQ, /*HasBias=*/false, GY, P,
                                                Sink.needs(XSrc), true);
    GX = CG.X, GWq = CG.W;
  }
  Sink.add(XSrc, Is1d && GX.hasData() ? unitHeight(GX, false) : GX);
  // Through the straight-through estimator to w * sf, then to w and sf.
  Tensor GWs = Mask.hasData() ? grad::mulElementwise(GWq, Mask) : GWq;
  Tensor GW = scaleChannels(GWs, SF, 0, /*Divide=*/false);
  Sink.add(Source::param(Path + ".0.weight"),
           Is1d ? unitHeight(GW, false) : GW);
  std::vector<double> FromW = channelDot(GWs, &W, 0);
  // sf = gamma / std: d gamma = d sf / std, plus BatchNorm's own.
  Tensor GGamma = BG.Weight.clone();
  for (size_t C = 0; C < SF.size(); ++C)
    GGamma.data<float>()[C] += static_cast<float>((DSF[C] + FromW[C]) / Std[C]);
  Sink.add(Source::param(Path + ".1.weight"), GGamma);
  return llvm::Error::success();
}

/// The f32 tensor \p Name of \p M with \p N elements, or an error.
static llvm::Expected<Tensor> channelTensor(const ModuleInfo &M,
                                            llvm::StringRef Path,
                                            llvm::StringRef Name, int64_t N) {
  const Tensor *T = M.tensor(Name);
  if (!T || !T->hasData() || T->dtype() != DType::F32 || T->numElements() != N)
    return makeError("'" + Path + "' needs an f32 '" + Name + "' of " +
                     llvm::Twine(N) + " elements");
  return *T;
}

/// Reads BatchNorm \p Bn's tensors and hyper-parameters into \p S (and its
/// bias into \p Beta) and computes the scale factor sf = gamma / std from
/// the running variance before this step's update, as PyTorch does.
static llvm::Error loadBatchNorm(ConvBnBackward &S, const ModuleInfo &Bn,
                                 llvm::StringRef BnPath, int64_t C,
                                 Tensor &Beta, double &Momentum) {
  for (auto [Name, Dest] :
       {std::pair<const char *, Tensor *>{"weight", &S.Gamma},
        {"bias", &Beta},
        {"running_mean", &S.RunningMean},
        {"running_var", &S.RunningVar}}) {
    auto T = channelTensor(Bn, BnPath, Name, C);
    if (!T)
      return T.takeError();
    *Dest = *T;
  }
  if (const Argument *A = Bn.attr("eps"); A && A->isFloat())
    S.Eps = A->getFloat();
  Momentum = 0.1;
  if (const Argument *A = Bn.attr("momentum"); A && A->isFloat())
    Momentum = A->getFloat();
  for (int64_t Ch = 0; Ch < C; ++Ch) {
    float Std =
        std::sqrt(S.RunningVar.data<float>()[Ch] + static_cast<float>(S.Eps));
    S.Std.push_back(Std);
    S.SF.push_back(S.Gamma.data<float>()[Ch] / Std);
  }
  return llvm::Error::success();
}

/// Checks the children of \p M and fills the weighted module's part of
/// \p S (input, weight, conv parameters).
static llvm::Error loadWeighted(ConvBnBackward &S, const ModuleInfo &M,
                                llvm::StringRef Path,
                                const std::vector<Operand> &Inputs) {
  S.IsLinear = M.kind() == "LinearBn1d";
  S.Is1d = M.kind() == "ConvBn1d" || M.kind() == "ConvBnReLU1d";
  const char *WKind = S.IsLinear ? "Linear" : S.Is1d ? "Conv1d" : "Conv2d";
  const char *BKind = S.IsLinear || S.Is1d ? "BatchNorm1d" : "BatchNorm2d";
  const ModuleInfo *Wd = M.child("0");
  const ModuleInfo *Bn = M.child("1");
  if (!Wd || !Bn || Wd->kind() != WKind || Bn->kind() != BKind)
    return makeError(M.kind() + " '" + Path + "' needs children '0' " + WKind +
                     " and '1' " + BKind);
  if (Inputs.size() != 1 || !Inputs[0].isTensor())
    return makeError(M.kind() + " '" + Path + "' takes one tensor");
  S.X = Inputs[0].tensor();
  const Tensor *W = Wd->tensor("weight");
  if (!W || !W->hasData() || W->dtype() != DType::F32)
    return makeError("'" + Path + ".0' has no f32 weight");
  S.W = *W;
  if (S.IsLinear)
    return llvm::Error::success();
  auto B = bindModuleCall(*Wd, {Inputs[0]});
  if (!B)
    return B.takeError();
  auto CP = S.Is1d ? conv1dParams(B->second) : conv2dParams(B->second);
  if (!CP)
    return CP.takeError();
  S.P = *CP;
  if (S.Is1d) {
    if (S.X.rank() != 3 || S.W.rank() != 3)
      return makeError(M.kind() + " '" + Path +
                       "' needs a 3-d input and weight");
    S.X = unitHeight(S.X, true);
    S.W = unitHeight(S.W, true);
  }
  return llvm::Error::success();
}

llvm::Expected<Tensor> qfx::train::recordConvBnQat(
    GraphModule &GM, llvm::StringRef Path, ModuleInfo &M, ModuleInfo &FQ,
    const std::vector<Operand> &Inputs, const std::vector<Source> &Srcs,
    bool BatchStats, Record &R) {
  (void)GM;
  auto S = std::make_unique<ConvBnBackward>();
  S->Path = Path.str();
  S->XSrc = Srcs[0];
  if (llvm::Error E = loadWeighted(*S, M, Path, Inputs))
    return E;
  int64_t C = S->W.dim(0);
  Tensor Beta;
  double Momentum;
  if (llvm::Error E = loadBatchNorm(*S, *M.child("1"), (Path + ".1").str(), C,
                                    Beta, Momentum))
    return E;
  auto WQ = runObserverModule(FQ, Path.str() + ".weight_fake_quant",
                              scaleChannels(S->W, S->SF, 0, false), &S->Mask);
  if (!WQ)
    return WQ.takeError();
  S->WQ = *WQ;
  S->Y = weightedForward(S->IsLinear, S->X, S->WQ, S->P);
  S->Yo = scaleChannels(S->Y, S->SF, 1, /*Divide=*/true);
  const Tensor *Bias = M.child("0")->tensor("bias");
  if (Bias && Bias->hasData()) {
    S->HasBias = true;
    Shape BS(S->Yo.rank(), 1);
    BS[1] = C;
    S->Yo = ref::add(S->Yo, Bias->reshaped(BS));
  }
  S->BatchStats = BatchStats;
  // The running statistics share storage with the module's buffers and are
  // updated in place.
  if (BatchStats)
    S->BN = grad::batchNormTrain(S->Yo, S->RunningMean, S->RunningVar,
                                 &S->Gamma, &Beta, Momentum, S->Eps, S->Z);
  else
    S->Z = ref::batchNorm(S->Yo, S->RunningMean, S->RunningVar, &S->Gamma,
                          &Beta, S->Eps);
  S->HasReLU = M.kind() == "ConvBnReLU2d" || M.kind() == "ConvBnReLU1d";
  Tensor Out = S->HasReLU ? ref::relu(S->Z) : S->Z;
  if (S->Is1d)
    Out = unitHeight(Out, false);
  R.Custom = std::move(S);
  return Out;
}
