//===- QConfig.cpp - Quantization specs and presets ----------------------===//

#include "qfx/Quant/QConfig.h"

#include "qfx/IR/GraphModule.h"
#include "qfx/Support/Error.h"

#include "llvm/ADT/StringSwitch.h"
#include "llvm/ADT/Twine.h"

#include <cmath>
#include <cstdio>
#include <tuple>

using namespace qfx;
using llvm::StringRef;
using llvm::Twine;

//===----------------------------------------------------------------------===//
// Names
//===----------------------------------------------------------------------===//

StringRef qfx::observerKindName(ObserverKind K) {
  switch (K) {
  case ObserverKind::MinMax:
    return "MinMaxObserver";
  case ObserverKind::MovingAverageMinMax:
    return "MovingAverageMinMaxObserver";
  case ObserverKind::PerChannelMinMax:
    return "PerChannelMinMaxObserver";
  case ObserverKind::MovingAveragePerChannelMinMax:
    return "MovingAveragePerChannelMinMaxObserver";
  case ObserverKind::Histogram:
    return "HistogramObserver";
  case ObserverKind::Percentile:
    return "PercentileObserver";
  case ObserverKind::Entropy:
    return "EntropyObserver";
  case ObserverKind::MSE:
    return "MSEObserver";
  case ObserverKind::Placeholder:
    return "PlaceholderObserver";
  case ObserverKind::FixedQParams:
    return "FixedQParamsObserver";
  }
  return "?";
}

std::optional<ObserverKind> qfx::parseObserverKind(StringRef Name) {
  for (ObserverKind K :
       {ObserverKind::MinMax, ObserverKind::MovingAverageMinMax,
        ObserverKind::PerChannelMinMax,
        ObserverKind::MovingAveragePerChannelMinMax, ObserverKind::Histogram,
        ObserverKind::Percentile, ObserverKind::Entropy, ObserverKind::MSE,
        ObserverKind::Placeholder, ObserverKind::FixedQParams})
    if (observerKindName(K) == Name)
      return K;
  return std::nullopt;
}

bool qfx::isPerChannel(ObserverKind K) {
  return K == ObserverKind::PerChannelMinMax ||
         K == ObserverKind::MovingAveragePerChannelMinMax;
}

StringRef qfx::qschemeName(QScheme S) {
  switch (S) {
  case QScheme::PerTensorAffine:
    return "per_tensor_affine";
  case QScheme::PerTensorSymmetric:
    return "per_tensor_symmetric";
  case QScheme::PerChannelAffine:
    return "per_channel_affine";
  case QScheme::PerChannelSymmetric:
    return "per_channel_symmetric";
  }
  return "?";
}

std::optional<QScheme> qfx::parseQScheme(StringRef Name) {
  for (QScheme S : {QScheme::PerTensorAffine, QScheme::PerTensorSymmetric,
                    QScheme::PerChannelAffine, QScheme::PerChannelSymmetric})
    if (qschemeName(S) == Name)
      return S;
  return std::nullopt;
}

bool qfx::isSymmetric(QScheme S) {
  return S == QScheme::PerTensorSymmetric || S == QScheme::PerChannelSymmetric;
}

static std::string formatNumber(double V) {
  char Buf[32];
  std::snprintf(Buf, sizeof(Buf), "%.9g", V);
  return Buf;
}

static bool isPerChannelScheme(QScheme S) {
  return S == QScheme::PerChannelAffine || S == QScheme::PerChannelSymmetric;
}

/// torch dtype names as observers spell them.
static StringRef dtypeAttrName(DType D) {
  switch (D) {
  case DType::U8:
    return "quint8";
  case DType::S8:
    return "qint8";
  case DType::F32:
    return "float32";
  default:
    return dtypeName(D);
  }
}

static std::optional<DType> parseDtypeAttr(StringRef Name) {
  return llvm::StringSwitch<std::optional<DType>>(Name)
      .Case("quint8", DType::U8)
      .Case("qint8", DType::S8)
      .Case("float32", DType::F32)
      .Default(std::nullopt);
}

//===----------------------------------------------------------------------===//
// ObserverSpec
//===----------------------------------------------------------------------===//

/// PyTorch's calculate_qmin_qmax without a customized range.
static std::pair<int64_t, int64_t> defaultRange(DType D, bool ReduceRange) {
  if (D == DType::S8)
    return ReduceRange ? std::make_pair<int64_t, int64_t>(-64, 63)
                       : std::make_pair<int64_t, int64_t>(-128, 127);
  return ReduceRange ? std::make_pair<int64_t, int64_t>(0, 127)
                     : std::make_pair<int64_t, int64_t>(0, 255);
}

ObserverSpec ObserverSpec::make(ObserverKind K, DType D, QScheme S,
                                bool ReduceRange) {
  ObserverSpec Spec;
  Spec.Kind = K;
  Spec.Dtype = D;
  Spec.Scheme = S;
  Spec.ReduceRange = ReduceRange;
  std::tie(Spec.QuantMin, Spec.QuantMax) = defaultRange(D, ReduceRange);
  return Spec;
}

/// The spec problems that do not depend on the quantized range.
static std::string validateKindAndScheme(const ObserverSpec &S) {
  StringRef Kind = observerKindName(S.Kind);
  if (isPerChannel(S.Kind) != isPerChannelScheme(S.Scheme))
    return (Kind + " needs a " +
            (isPerChannel(S.Kind) ? "per-channel" : "per-tensor") +
            " qscheme, got " + qschemeName(S.Scheme))
        .str();
  if (isPerChannel(S.Kind) && S.ChAxis < 0)
    return ("ch_axis must be non-negative, got " + Twine(S.ChAxis)).str();
  bool Moving = S.Kind == ObserverKind::MovingAverageMinMax ||
                S.Kind == ObserverKind::MovingAveragePerChannelMinMax;
  if (Moving && !(S.AveragingConstant > 0 && S.AveragingConstant <= 1))
    return "averaging_constant must be in (0, 1], got " +
           formatNumber(S.AveragingConstant);
  bool Hist = S.Kind == ObserverKind::Histogram ||
              S.Kind == ObserverKind::Percentile ||
              S.Kind == ObserverKind::Entropy || S.Kind == ObserverKind::MSE;
  if (Hist && (S.Bins < 1 || S.Bins > (int64_t(1) << 20)))
    return ("bins must be in [1, 1048576], got " + Twine(S.Bins)).str();
  if (S.Kind == ObserverKind::Histogram &&
      (S.UpsampleRate < 1 || S.UpsampleRate > 4096))
    return ("upsample_rate must be in [1, 4096], got " + Twine(S.UpsampleRate))
        .str();
  if (S.Kind == ObserverKind::FixedQParams &&
      !(S.FixedScale > 0 && std::isfinite(S.FixedScale)))
    return "scale must be positive and finite, got " +
           formatNumber(S.FixedScale);
  if (S.Kind == ObserverKind::Percentile &&
      !(S.Percentile > 0 && S.Percentile <= 100))
    return "percentile must be in (0, 100], got " + formatNumber(S.Percentile);
  return "";
}

std::string ObserverSpec::validate() const {
  if (std::string Msg = validateKindAndScheme(*this); !Msg.empty())
    return Msg;
  // A float placeholder quantizes nothing, so its range is irrelevant.
  if (Kind == ObserverKind::Placeholder && Dtype == DType::F32) {
    if (FakeQuant)
      return "a float placeholder observer cannot fake-quantize";
    return "";
  }
  if (Dtype != DType::U8 && Dtype != DType::S8)
    return ("observer dtype must be quint8 or qint8, got " +
            dtypeAttrName(Dtype))
        .str();
  if (QuantMin >= QuantMax)
    return ("quant_min " + Twine(QuantMin) + " must be less than quant_max " +
            Twine(QuantMax))
        .str();
  auto [Lo, Hi] = defaultRange(Dtype, /*ReduceRange=*/false);
  if (QuantMin < Lo || QuantMax > Hi)
    return ("quant range [" + Twine(QuantMin) + ", " + Twine(QuantMax) +
            "] exceeds the " + dtypeAttrName(Dtype) + " range [" + Twine(Lo) +
            ", " + Twine(Hi) + "]")
        .str();
  if (QuantMin > 0 || QuantMax < 0)
    return ("quant range [" + Twine(QuantMin) + ", " + Twine(QuantMax) +
            "] must include 0")
        .str();
  if (QuantMax - QuantMin + 1 < 4)
    return ("quant range [" + Twine(QuantMin) + ", " + Twine(QuantMax) +
            "] has fewer than 2 bits")
        .str();
  // PyTorch's MinMax observers refuse this; with it the symmetric zero point
  // 128 would lie outside [0, 127].
  if (isSymmetric(Scheme) && ReduceRange && Dtype == DType::U8)
    return "cannot reduce range for symmetric quantization for quint8";
  if (Kind == ObserverKind::FixedQParams &&
      (FixedZeroPoint < QuantMin || FixedZeroPoint > QuantMax))
    return ("zero_point " + Twine(FixedZeroPoint) + " is outside [" +
            Twine(QuantMin) + ", " + Twine(QuantMax) + "]")
        .str();
  return "";
}

bool ObserverSpec::operator==(const ObserverSpec &O) const {
  return Kind == O.Kind && Dtype == O.Dtype && Scheme == O.Scheme &&
         QuantMin == O.QuantMin && QuantMax == O.QuantMax &&
         ReduceRange == O.ReduceRange &&
         AveragingConstant == O.AveragingConstant && ChAxis == O.ChAxis &&
         Bins == O.Bins && Percentile == O.Percentile &&
         FakeQuant == O.FakeQuant && UpsampleRate == O.UpsampleRate &&
         FixedScale == O.FixedScale && FixedZeroPoint == O.FixedZeroPoint;
}

void ObserverSpec::toModule(ModuleInfo &M) const {
  if (FakeQuant) {
    M.setKind("FakeQuantize");
    M.setAttr("observer", Argument::string(observerKindName(Kind).str()));
  } else {
    M.setKind(observerKindName(Kind).str());
  }
  M.setAttr("dtype", Argument::string(dtypeAttrName(Dtype).str()));
  M.setAttr("qscheme", Argument::string(qschemeName(Scheme).str()));
  M.setAttr("quant_min", Argument::integer(QuantMin));
  M.setAttr("quant_max", Argument::integer(QuantMax));
  M.setAttr("reduce_range", Argument::boolean(ReduceRange));
  M.setAttr("averaging_constant", Argument::real(AveragingConstant));
  M.setAttr("ch_axis", Argument::integer(ChAxis));
  M.setAttr("bins", Argument::integer(Bins));
  M.setAttr("percentile", Argument::real(Percentile));
  M.setAttr("upsample_rate", Argument::integer(UpsampleRate));
  if (Kind == ObserverKind::FixedQParams) {
    M.setAttr("scale", Argument::real(FixedScale));
    M.setAttr("zero_point", Argument::integer(FixedZeroPoint));
  }
}

namespace {
/// Reads typed attributes of an observer module, remembering the first
/// problem.
struct AttrReader {
  const ModuleInfo &M;
  std::string Problem;

  const Argument *get(StringRef Name, bool Required) {
    const Argument *A = M.attr(Name);
    if (!A && Required && Problem.empty())
      Problem = ("missing attribute '" + Name + "'").str();
    return A;
  }
  void wrongType(StringRef Name, StringRef Expected) {
    if (Problem.empty())
      Problem = ("attribute '" + Name + "' must be " + Expected).str();
  }
  void readString(StringRef Name, std::string &Out, bool Required) {
    if (const Argument *A = get(Name, Required)) {
      if (A->isString())
        Out = A->getString();
      else
        wrongType(Name, "a string");
    }
  }
  void readInt(StringRef Name, int64_t &Out, bool Required) {
    if (const Argument *A = get(Name, Required)) {
      if (A->isInt())
        Out = A->getInt();
      else
        wrongType(Name, "an int");
    }
  }
  void readBool(StringRef Name, bool &Out) {
    if (const Argument *A = get(Name, /*Required=*/false)) {
      if (A->isBool())
        Out = A->getBool();
      else
        wrongType(Name, "a bool");
    }
  }
  void readReal(StringRef Name, double &Out, bool Required = false) {
    if (const Argument *A = get(Name, Required)) {
      if (A->isFloat())
        Out = A->getFloat();
      else if (A->isInt())
        Out = static_cast<double>(A->getInt());
      else
        wrongType(Name, "a number");
    }
  }
};
} // namespace

static llvm::Error observerModuleError(const Twine &Msg) {
  return makeError("observer module: " + Msg);
}

llvm::Expected<ObserverSpec> ObserverSpec::fromModule(const ModuleInfo &M) {
  ObserverSpec Spec;
  AttrReader R{M, ""};
  std::string KindName = M.kind().str();
  if (KindName == "FakeQuantize") {
    Spec.FakeQuant = true;
    KindName.clear();
    R.readString("observer", KindName, /*Required=*/true);
  }
  std::string DtypeName, SchemeName;
  R.readString("dtype", DtypeName, /*Required=*/true);
  R.readString("qscheme", SchemeName, /*Required=*/true);
  R.readInt("quant_min", Spec.QuantMin, /*Required=*/true);
  R.readInt("quant_max", Spec.QuantMax, /*Required=*/true);
  R.readBool("reduce_range", Spec.ReduceRange);
  R.readReal("averaging_constant", Spec.AveragingConstant);
  R.readInt("ch_axis", Spec.ChAxis, /*Required=*/false);
  R.readInt("bins", Spec.Bins, /*Required=*/false);
  R.readReal("percentile", Spec.Percentile);
  R.readInt("upsample_rate", Spec.UpsampleRate, /*Required=*/false);
  if (!R.Problem.empty())
    return observerModuleError(R.Problem);

  std::optional<ObserverKind> K = parseObserverKind(KindName);
  if (!K)
    return observerModuleError("unknown observer kind '" + KindName + "'");
  Spec.Kind = *K;
  if (Spec.Kind == ObserverKind::FixedQParams) {
    R.readReal("scale", Spec.FixedScale, /*Required=*/true);
    R.readInt("zero_point", Spec.FixedZeroPoint, /*Required=*/true);
    if (!R.Problem.empty())
      return observerModuleError(R.Problem);
  }
  std::optional<DType> D = parseDtypeAttr(DtypeName);
  if (!D)
    return observerModuleError("unknown dtype '" + DtypeName +
                               "' (expected quint8, qint8 or float32)");
  Spec.Dtype = *D;
  std::optional<QScheme> S = parseQScheme(SchemeName);
  if (!S)
    return observerModuleError("unknown qscheme '" + SchemeName + "'");
  Spec.Scheme = *S;
  if (std::string Msg = Spec.validate(); !Msg.empty())
    return observerModuleError(Msg);
  return Spec;
}

//===----------------------------------------------------------------------===//
// QConfig
//===----------------------------------------------------------------------===//

bool QConfig::operator==(const QConfig &O) const {
  // The name is a label; two qconfigs that quantize alike are equal.
  return Activation == O.Activation && Weight == O.Weight &&
         IsDynamic == O.IsDynamic && IsWeightOnly == O.IsWeightOnly;
}

/// default_per_channel_weight_observer: qint8, per_channel_symmetric, axis 0.
static ObserverSpec perChannelWeight(ObserverKind K) {
  return ObserverSpec::make(K, DType::S8, QScheme::PerChannelSymmetric);
}

llvm::Expected<QConfig> QConfig::preset(StringRef Name) {
  QConfig Q;
  Q.Name = Name.str();
  if (Name == "x86" || Name == "onednn") {
    // get_default_qconfig: HistogramObserver(reduce_range=True on x86,
    // False on onednn) and default_per_channel_weight_observer.
    Q.Activation = ObserverSpec::make(ObserverKind::Histogram, DType::U8,
                                      QScheme::PerTensorAffine,
                                      /*ReduceRange=*/Name == "x86");
    Q.Weight = perChannelWeight(ObserverKind::PerChannelMinMax);
    return Q;
  }
  if (Name == "qat_x86") {
    // get_default_qat_qconfig("x86") (version 1): moving-average min/max
    // observers with fake quantization; quant_min=0, quant_max=255 and
    // reduce_range=True give [0, 127].
    Q.Activation = ObserverSpec::make(ObserverKind::MovingAverageMinMax,
                                      DType::U8, QScheme::PerTensorAffine,
                                      /*ReduceRange=*/true);
    Q.Activation.FakeQuant = true;
    Q.Weight = perChannelWeight(ObserverKind::MovingAveragePerChannelMinMax);
    Q.Weight.FakeQuant = true;
    return Q;
  }
  if (Name == "dynamic") {
    // per_channel_dynamic_qconfig: a quint8 placeholder for activations
    // (PyTorch's dynamic Linear on x86 then quantizes each batch with
    // reduce_range=True) and per-channel symmetric qint8 weights.
    Q.Activation = ObserverSpec::make(ObserverKind::Placeholder, DType::U8,
                                      QScheme::PerTensorAffine,
                                      /*ReduceRange=*/true);
    Q.Weight = perChannelWeight(ObserverKind::PerChannelMinMax);
    Q.IsDynamic = true;
    return Q;
  }
  if (Name == "weight_only") {
    // float_qparams_weight_only_qconfig: float activations, per-channel
    // quint8 weights along axis 0. PyTorch's weights there have float zero
    // points (per_channel_affine_float_qparams); the nearest scheme with
    // integer zero points is per_channel_affine.
    Q.Activation = ObserverSpec::make(ObserverKind::Placeholder, DType::F32,
                                      QScheme::PerTensorAffine);
    Q.Weight = ObserverSpec::make(ObserverKind::PerChannelMinMax, DType::U8,
                                  QScheme::PerChannelAffine);
    Q.IsWeightOnly = true;
    return Q;
  }
  return makeError("unknown qconfig preset '" + Name +
                   "' (known: x86, onednn, qat_x86, dynamic, weight_only)");
}
