//===- ConvertPatterns.cpp - What convert does with each op ---------------===//

#include "ConvertPatterns.h"

#include "qfx/IR/Printer.h"
#include "qfx/Quant/BackendConfig.h"
#include "qfx/Quant/Observer.h"
#include "qfx/Quant/ObserverModule.h"
#include "qfx/Quant/QConfig.h"
#include "qfx/Quant/Quantize.h"
#include "qfx/Support/Error.h"

#include "llvm/ADT/STLExtras.h"

#include <cmath>

using namespace qfx;
using namespace qfx::convert;

//===----------------------------------------------------------------------===//
// The table
//===----------------------------------------------------------------------===//

namespace {

/// What convert emits for one op of the backend table.
struct Replacement {
  const char *Op;
  bool IsModule;
  const char *Into;
  bool IntoModule;
  /// Where the float conv / linear / batch norm lives.
  FloatPart Part = FloatPart::Self;
  bool HasOther = false;
};

// docs/quantization.md, column "convert". Shares-qparams ops are absent:
// they stay as they are, on int8 tensors.
const Replacement Replacements[] = {
    {"add", false, "quantized_add", false},
    {"cat", false, "quantized_cat", false},
    {"hardsigmoid", false, "quantized_hardsigmoid", false},
    {"hardswish", false, "quantized_hardswish", false},
    {"leaky_relu", false, "quantized_leaky_relu", false},
    {"matmul", false, "quantized_matmul", false},
    {"mul", false, "quantized_mul", false},
    {"sigmoid", false, "quantized_sigmoid", false},
    {"tanh", false, "quantized_tanh", false},
    {"BNReLU2d", true, "QuantizedBNReLU2d", true, FloatPart::Child0},
    {"BatchNorm2d", true, "QuantizedBatchNorm2d", true},
    // Conv family.
    {"Conv1d", true, "QuantizedConv1d", true},
    {"ConvBn1d", true, "QuantizedConv1d", true, FloatPart::FoldBn},
    {"ConvBnReLU1d", true, "QuantizedConvReLU1d", true, FloatPart::FoldBn},
    {"ConvReLU1d", true, "QuantizedConvReLU1d", true, FloatPart::Child0},
    {"Conv2d", true, "QuantizedConv2d", true},
    {"ConvAdd2d", true, "QuantizedConvAdd2d", true, FloatPart::Child0, true},
    {"ConvAddReLU2d", true, "QuantizedConvAddReLU2d", true, FloatPart::Child0,
     true},
    {"ConvBn2d", true, "QuantizedConv2d", true, FloatPart::FoldBn},
    {"ConvBnReLU2d", true, "QuantizedConvReLU2d", true, FloatPart::FoldBn},
    {"ConvReLU2d", true, "QuantizedConvReLU2d", true, FloatPart::Child0},
    {"ConvTranspose2d", true, "QuantizedConvTranspose2d", true}, // conv family
    {"Hardsigmoid", true, "quantized_hardsigmoid", false},
    {"Hardswish", true, "quantized_hardswish", false},
    {"LayerNorm", true, "QuantizedLayerNorm", true},
    {"LeakyReLU", true, "quantized_leaky_relu", false},
    {"Linear", true, "QuantizedLinear", true},
    {"LinearBn1d", true, "QuantizedLinear", true, FloatPart::FoldBn},
    {"LinearReLU", true, "QuantizedLinearReLU", true, FloatPart::Child0},
    {"Sigmoid", true, "quantized_sigmoid", false},
    {"Softmax", true, "quantized_softmax", false},
    {"Tanh", true, "quantized_tanh", false},
};

OpClass toOpClass(NodeClass C) {
  switch (C) {
  case NodeClass::Weighted:
    return OpClass::Weighted;
  case NodeClass::General:
    return OpClass::General;
  case NodeClass::SharesQParams:
    return OpClass::SharesQParams;
  case NodeClass::Cat:
    return OpClass::Cat;
  case NodeClass::FixedQParams:
    return OpClass::FixedQParams;
  case NodeClass::Float:
    return OpClass::Float;
  }
  llvm_unreachable("unknown node class");
}

} // namespace

OpPattern convert::classify(const GraphModule &GM, const Node &N) {
  NodeClassification C = qfx::classify(N, GM);
  OpPattern P;
  P.Op = C.Op;
  P.FloatReason = C.FloatReason;
  P.Class = toOpClass(C.Class);
  P.FixedScale = C.FixedScale;
  P.FixedZeroPoint = C.FixedZeroPoint;
  P.SupportsDynamic = C.SupportsDynamic;
  if (P.Class == OpClass::Float || P.Class == OpClass::SharesQParams)
    return P;
  bool IsModule = N.op() == OpCode::CallModule;
  for (const Replacement &R : Replacements) {
    if (R.IsModule != IsModule || C.Op != R.Op)
      continue;
    P.Replacement = R.Into;
    P.ReplacementIsModule = R.IntoModule;
    P.Part = R.Part;
    P.HasOther = R.HasOther;
    return P;
  }
  // The backend table knows an int8 class this pass has no form for.
  P.Class = OpClass::Float;
  P.FloatReason = "convert has no int8 form for '" + C.Op + "'";
  return P;
}

bool convert::isObserverOrFakeQuantKind(llvm::StringRef Kind) {
  return isObserverModuleKind(Kind);
}

//===----------------------------------------------------------------------===//
// Float parameters
//===----------------------------------------------------------------------===//

/// The f32 tensor \p Name of \p M (with data), or an error naming it.
static llvm::Expected<const Tensor *>
f32Tensor(const ModuleInfo &M, llvm::StringRef Name, llvm::StringRef Path) {
  const Tensor *T = M.tensor(Name);
  if (!T || T->dtype() != DType::F32 || !T->hasData())
    return makeError("'" + Path + "." + Name +
                     "' must be an f32 tensor with values to fold BatchNorm");
  return T;
}

/// fuse_conv_bn_weights / fuse_linear_bn_weights in float32, as PyTorch:
/// w * (gamma * rsqrt(var + eps)) per output channel, and
/// (b - mean) * rsqrt(var + eps) * gamma + beta.
static llvm::Expected<FloatParams> foldBatchNorm(const ModuleInfo &Lin,
                                                 const ModuleInfo &Bn,
                                                 llvm::StringRef Path) {
  std::string BnPath = (Path + ".1").str();
  auto W = f32Tensor(Lin, "weight", (Path + ".0").str());
  if (!W)
    return W.takeError();
  auto Mean = f32Tensor(Bn, "running_mean", BnPath);
  if (!Mean)
    return Mean.takeError();
  auto Var = f32Tensor(Bn, "running_var", BnPath);
  if (!Var)
    return Var.takeError();
  auto Gamma = f32Tensor(Bn, "weight", BnPath);
  if (!Gamma)
    return Gamma.takeError();
  auto Beta = f32Tensor(Bn, "bias", BnPath);
  if (!Beta)
    return Beta.takeError();
  int64_t C = (*W)->dim(0);
  for (const Tensor *T : {*Mean, *Var, *Gamma, *Beta})
    if (T->numElements() != C)
      return makeError("'" + BnPath + "' has " + llvm::Twine(T->numElements()) +
                       " channels, '" + Path + ".0' " + llvm::Twine(C));
  const Argument *EpsA = Bn.attr("eps");
  float Eps = EpsA && EpsA->isFloat() ? float(EpsA->getFloat()) : 1e-5f;
  const Tensor *B = Lin.tensor("bias");
  Tensor NewW = (*W)->clone(), NewB(DType::F32, {C});
  int64_t PerChannel = NewW.numElements() / C;
  for (int64_t I = 0; I < C; ++I) {
    float Rsqrt = 1.0f / std::sqrt((*Var)->data<float>()[I] + Eps);
    float G = (*Gamma)->data<float>()[I];
    float Factor = G * Rsqrt;
    for (int64_t J = 0; J < PerChannel; ++J)
      NewW.data<float>()[I * PerChannel + J] *= Factor;
    float Bias = B && B->hasData() ? B->data<float>()[I] : 0.0f;
    NewB.data<float>()[I] = (Bias - (*Mean)->data<float>()[I]) * Rsqrt * G +
                            (*Beta)->data<float>()[I];
  }
  FloatParams R;
  R.Attrs = Lin.attrs();
  if (R.Attrs.count("bias"))
    R.Attrs["bias"] = Argument::boolean(true);
  R.Tensors = {{"weight", false, std::move(NewW)},
               {"bias", false, std::move(NewB)}};
  return R;
}

llvm::Expected<FloatParams> convert::floatParams(const ModuleInfo &M,
                                                 FloatPart Part,
                                                 llvm::StringRef Path) {
  const ModuleInfo *Src = &M;
  if (Part != FloatPart::Self) {
    Src = M.child("0");
    if (!Src)
      return makeError("'" + Path + "' (" + M.kind() + ") has no child '0'");
  }
  if (Part == FloatPart::FoldBn) {
    const ModuleInfo *Bn = M.child("1");
    if (!Bn || !Bn->kind().startswith("BatchNorm"))
      return makeError("'" + Path + "' (" + M.kind() +
                       ") has no BatchNorm child '1'");
    return foldBatchNorm(*Src, *Bn, Path);
  }
  FloatParams R;
  R.Attrs = Src->attrs();
  for (const NamedTensor &T : Src->tensors())
    R.Tensors.push_back(T);
  return R;
}

//===----------------------------------------------------------------------===//
// Reading observers
//===----------------------------------------------------------------------===//

/// Rebuilds the observer of an observer or fake-quantize module.
static llvm::Expected<std::unique_ptr<Observer>>
loadObserverAt(const ModuleInfo &M, llvm::StringRef Path) {
  auto Obs = loadObserver(M);
  if (!Obs)
    return prefixError(Obs.takeError(), Path);
  return Obs;
}

llvm::Expected<ActQuant> convert::activationQuant(const ModuleInfo &M,
                                                  llvm::StringRef Path,
                                                  llvm::StringRef Observed) {
  auto Obs = loadObserverAt(M, Path);
  if (!Obs)
    return Obs.takeError();
  const ObserverSpec &Spec = (*Obs)->spec();
  ActQuant Q;
  Q.ReduceRange = Spec.ReduceRange;
  if (Spec.Kind == ObserverKind::Placeholder) {
    // A quint8 / qint8 placeholder marks dynamic quantization; a float one
    // (weight-only qconfigs) keeps the value float.
    Q.Dynamic = Spec.Dtype != DType::F32;
    Q.Float = !Q.Dynamic;
    return Q;
  }
  // Fixed-qparams observers need no data.
  if (Spec.Kind != ObserverKind::FixedQParams && !(*Obs)->hasObserved())
    return makeError(Path + " (observing '" + Observed +
                     "') observed no data: calibrate before convert");
  auto QP = (*Obs)->calculateQParams();
  if (!QP)
    return prefixError(QP.takeError(),
                       (Path + " (observing '" + Observed + "')").str());
  if (!QP->isPerTensor())
    return makeError(Path + " (observing '" + Observed +
                     "'): activations must be quantized per tensor");
  Q.Dtype = Spec.Dtype;
  Q.Scale = QP->Scale;
  Q.ZeroPoint = QP->ZeroPoint;
  return Q;
}

ActQuant convert::scalarArithQuant(bool IsAdd, double C, const ActQuant &In) {
  assert(!In.Dynamic && !In.Float && "scalar arith on a non-static value");
  // The kernels use the dtype's whole range, not the observer's.
  double QMin = In.Dtype == DType::S8 ? -128 : 0;
  double QMax = In.Dtype == DType::S8 ? 127 : 255;
  ActQuant Out = In;
  double Z = double(In.ZeroPoint);
  if (!IsAdd) {
    if (C == 0.0) {
      Out.Scale = 1.0;
      Out.ZeroPoint = 0;
    } else {
      Out.Scale = std::abs(C) * In.Scale;
      if (C < 0.0)
        Out.ZeroPoint = int64_t(QMax - (Z - QMin));
    }
    return Out;
  }
  // The zero point moves to Z - CQ; past the range's end it is pinned
  // there and the scale widened to keep every code's value.
  double CQ = std::nearbyint(C / In.Scale);
  if (Z - CQ < QMin) {
    Out.Scale = (QMax - (Z - CQ)) / (QMax - QMin) * In.Scale;
    Out.ZeroPoint = int64_t(QMin);
  } else if (Z - CQ > QMax) {
    Out.Scale = (QMin - (Z - CQ)) / (QMin - QMax) * In.Scale;
    Out.ZeroPoint = int64_t(QMax);
  } else {
    Out.ZeroPoint = int64_t(Z - CQ);
  }
  return Out;
}

/// Whether a fake-quantize module's observer is switched on (absent switch:
/// on, as a fresh FakeQuantize).
static bool observerEnabled(const ModuleInfo &FQ) {
  const Tensor *E = FQ.tensor("observer_enabled");
  return !E || !E->hasData() || E->numElements() == 0 ||
         E->getAsDouble(0) != 0.0;
}

llvm::Expected<Tensor> convert::quantizeWeight(const Tensor &W,
                                               const ModuleInfo &WeightObs,
                                               llvm::StringRef Path) {
  if (W.dtype() != DType::F32)
    return makeError(Path + ".weight is " + dtypeName(W.dtype()) +
                     ", expected f32");
  std::unique_ptr<Observer> Obs;
  if (isFakeQuantizeModule(WeightObs)) {
    // QAT: the fake-quant saw the weight during training; PyTorch runs it
    // once more over the final weight before reading its qparams.
    auto O = loadObserverAt(WeightObs, Path);
    if (!O)
      return O.takeError();
    Obs = std::move(*O);
    if (W.hasData() && observerEnabled(WeightObs))
      Obs->observe(W);
  } else if (W.hasData()) {
    // PTQ: a fresh observer of the qconfig's weight spec, as PyTorch's
    // convert calls qconfig.weight() and runs it over the weight.
    auto Spec = ObserverSpec::fromModule(WeightObs);
    if (!Spec)
      return prefixError(Spec.takeError(), Path);
    std::string Problem = Spec->validate();
    if (!Problem.empty())
      return makeError(Path + ": " + Problem);
    Obs = Observer::create(*Spec);
    Obs->observe(W);
  } else {
    auto O = loadObserverAt(WeightObs, Path);
    if (!O)
      return O.takeError();
    Obs = std::move(*O);
  }
  if (!Obs->hasObserved())
    return makeError(Path + ": its weight observer recorded nothing (a "
                            "weight without values needs a calibrated one)");
  DType D = Obs->spec().Dtype;
  if (D != DType::S8 && D != DType::U8)
    return makeError(Path + ": weight dtype must be qint8 or quint8, got " +
                     dtypeName(D));
  auto QP = Obs->calculateQParams();
  if (!QP)
    return prefixError(QP.takeError(), Path);
  if (!W.hasData()) {
    Tensor R = Tensor::declared(D, W.shape());
    R.setQuant(*QP);
    return R;
  }
  if (QP->isPerChannel())
    return quantizePerChannel(W, QP->Scales, QP->ZeroPoints, QP->Axis, D);
  return quantizePerTensor(W, QP->Scale, QP->ZeroPoint, D);
}

llvm::StringRef convert::torchDtypeName(DType T) {
  switch (T) {
  case DType::U8:
    return "quint8";
  case DType::S8:
    return "qint8";
  case DType::S32:
    return "qint32";
  default:
    return "float32";
  }
}

std::string convert::formatQParams(double Scale, int64_t ZeroPoint) {
  return "scale " + formatFloat(Scale) + ", zp " + std::to_string(ZeroPoint);
}
