// Unit tests for observer specs and qconfig presets: names, PyTorch's
// ranges, validation, module attributes and the presets PyTorch builds.
#include "qfx/Quant/QConfig.h"

#include "qfx/IR/GraphModule.h"
#include "qfx/Support/Error.h"
#include "qfx/Support/FileIO.h"

#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringRef.h"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <string>
#include <vector>

using namespace qfx;

namespace {

const ObserverKind AllKinds[] = {
    ObserverKind::MinMax,           ObserverKind::MovingAverageMinMax,
    ObserverKind::PerChannelMinMax, ObserverKind::MovingAveragePerChannelMinMax,
    ObserverKind::Histogram,        ObserverKind::Percentile,
    ObserverKind::Entropy,          ObserverKind::MSE,
    ObserverKind::Placeholder,      ObserverKind::FixedQParams};

ObserverSpec spec(ObserverKind K = ObserverKind::MinMax, DType D = DType::U8,
                  QScheme S = QScheme::PerTensorAffine) {
  return ObserverSpec::make(K, D, S);
}

std::string moduleError(const ModuleInfo &M) {
  llvm::Expected<ObserverSpec> S = ObserverSpec::fromModule(M);
  if (S)
    return "";
  return errorToString(S.takeError());
}

/// A preset that must exist.
QConfig presetOf(llvm::StringRef Name) {
  llvm::Expected<QConfig> Q = QConfig::preset(Name);
  if (!Q)
    FAIL(errorToString(Q.takeError()));
  return *Q;
}

ModuleInfo moduleOf(const ObserverSpec &S) {
  ModuleInfo M;
  S.toModule(M);
  return M;
}

} // namespace

TEST_CASE("observer kind and qscheme names", "[quant]") {
  for (ObserverKind K : AllKinds) {
    CHECK(parseObserverKind(observerKindName(K)) == K);
    CHECK(observerKindName(K).endswith("Observer"));
  }
  CHECK(observerKindName(ObserverKind::Histogram) == "HistogramObserver");
  CHECK(observerKindName(ObserverKind::MovingAveragePerChannelMinMax) ==
        "MovingAveragePerChannelMinMaxObserver");
  CHECK_FALSE(parseObserverKind("FakeQuantize"));
  CHECK_FALSE(parseObserverKind("histogramobserver"));
  CHECK(isPerChannel(ObserverKind::PerChannelMinMax));
  CHECK(isPerChannel(ObserverKind::MovingAveragePerChannelMinMax));
  CHECK_FALSE(isPerChannel(ObserverKind::Histogram));

  for (QScheme S : {QScheme::PerTensorAffine, QScheme::PerTensorSymmetric,
                    QScheme::PerChannelAffine, QScheme::PerChannelSymmetric})
    CHECK(parseQScheme(qschemeName(S)) == S);
  CHECK(qschemeName(QScheme::PerChannelSymmetric) == "per_channel_symmetric");
  CHECK_FALSE(parseQScheme("torch.per_tensor_affine"));
  CHECK(isSymmetric(QScheme::PerTensorSymmetric));
  CHECK(isSymmetric(QScheme::PerChannelSymmetric));
  CHECK_FALSE(isSymmetric(QScheme::PerChannelAffine));
}

TEST_CASE("ObserverSpec::make uses PyTorch's default ranges", "[quant]") {
  auto Range = [](DType D, bool RR) {
    ObserverSpec S = ObserverSpec::make(ObserverKind::MinMax, D,
                                        QScheme::PerTensorAffine, RR);
    CHECK(S.ReduceRange == RR);
    return std::make_pair(S.QuantMin, S.QuantMax);
  };
  CHECK(Range(DType::U8, false) == std::make_pair<int64_t, int64_t>(0, 255));
  CHECK(Range(DType::U8, true) == std::make_pair<int64_t, int64_t>(0, 127));
  CHECK(Range(DType::S8, false) == std::make_pair<int64_t, int64_t>(-128, 127));
  CHECK(Range(DType::S8, true) == std::make_pair<int64_t, int64_t>(-64, 63));
  ObserverSpec H = ObserverSpec::make(ObserverKind::Histogram, DType::U8,
                                      QScheme::PerTensorSymmetric);
  CHECK(H.Kind == ObserverKind::Histogram);
  CHECK(H.Scheme == QScheme::PerTensorSymmetric);
  CHECK(H.Bins == 2048);
  CHECK(H.UpsampleRate == 128);
  CHECK(H.AveragingConstant == 0.01);
  CHECK_FALSE(H.FakeQuant);
}

TEST_CASE("ObserverSpec::validate", "[quant]") {
  for (ObserverKind K : AllKinds) {
    ObserverSpec S = isPerChannel(K)
                         ? spec(K, DType::S8, QScheme::PerChannelSymmetric)
                         : spec(K);
    INFO(observerKindName(K).str());
    CHECK(S.validate() == "");
  }
  CHECK(spec(ObserverKind::Placeholder, DType::F32).validate() == "");
  CHECK(spec(ObserverKind::MinMax, DType::F32).validate() ==
        "observer dtype must be quint8 or qint8, got float32");
  CHECK(spec(ObserverKind::MinMax, DType::S32).validate() ==
        "observer dtype must be quint8 or qint8, got s32");
  CHECK(spec(ObserverKind::MinMax, DType::U8, QScheme::PerChannelAffine)
            .validate() ==
        "MinMaxObserver needs a per-tensor qscheme, got per_channel_affine");
  CHECK(spec(ObserverKind::PerChannelMinMax).validate() ==
        "PerChannelMinMaxObserver needs a per-channel qscheme, got "
        "per_tensor_affine");

  auto With = [](auto Edit) {
    ObserverSpec S = spec();
    Edit(S);
    return S.validate();
  };
  CHECK(With([](ObserverSpec &S) { S.QuantMin = S.QuantMax = 5; }) ==
        "quant_min 5 must be less than quant_max 5");
  CHECK(With([](ObserverSpec &S) { S.QuantMin = -1; }) ==
        "quant range [-1, 255] exceeds the quint8 range [0, 255]");
  CHECK(With([](ObserverSpec &S) {
          S.Dtype = DType::S8;
          S.QuantMax = 200;
        }) == "quant range [0, 200] exceeds the qint8 range [-128, 127]");
  CHECK(With([](ObserverSpec &S) { S.QuantMin = 3; }) ==
        "quant range [3, 255] must include 0");
  CHECK(With([](ObserverSpec &S) { S.QuantMax = 2; }) ==
        "quant range [0, 2] has fewer than 2 bits");
  CHECK(With([](ObserverSpec &S) { S.QuantMax = 3; }) == "");
  CHECK(With([](ObserverSpec &S) {
          S.Scheme = QScheme::PerTensorSymmetric;
          S.ReduceRange = true;
          S.QuantMax = 127;
        }) == "cannot reduce range for symmetric quantization for quint8");
  CHECK(With([](ObserverSpec &S) {
          S.Kind = ObserverKind::MovingAverageMinMax;
          S.AveragingConstant = 0;
        }) == "averaging_constant must be in (0, 1], got 0");
  CHECK(With([](ObserverSpec &S) {
          S.Kind = ObserverKind::Histogram;
          S.Bins = 0;
        }) == "bins must be in [1, 1048576], got 0");
  CHECK(With([](ObserverSpec &S) {
          S.Kind = ObserverKind::Histogram;
          S.UpsampleRate = 0;
        }) == "upsample_rate must be in [1, 4096], got 0");
  CHECK(With([](ObserverSpec &S) {
          S.Kind = ObserverKind::Percentile;
          S.Percentile = 100.5;
        }) == "percentile must be in (0, 100], got 100.5");
  CHECK(With([](ObserverSpec &S) {
          S.Kind = ObserverKind::FixedQParams;
          S.FixedScale = 0;
        }) == "scale must be positive and finite, got 0");
  CHECK(With([](ObserverSpec &S) {
          S.Kind = ObserverKind::FixedQParams;
          S.FixedZeroPoint = 300;
        }) == "zero_point 300 is outside [0, 255]");
  ObserverSpec PC = spec(ObserverKind::PerChannelMinMax, DType::S8,
                         QScheme::PerChannelAffine);
  PC.ChAxis = -1;
  CHECK(PC.validate() == "ch_axis must be non-negative, got -1");
  ObserverSpec FloatFQ = spec(ObserverKind::Placeholder, DType::F32);
  FloatFQ.FakeQuant = true;
  CHECK(FloatFQ.validate() ==
        "a float placeholder observer cannot fake-quantize");
}

TEST_CASE("ObserverSpec equality", "[quant]") {
  ObserverSpec A = spec(ObserverKind::Histogram), B = A;
  CHECK(A == B);
  B.UpsampleRate = 64;
  CHECK(A != B);
  B = A;
  B.FakeQuant = true;
  CHECK(A != B);
  B = A;
  B.Percentile = 99.9;
  CHECK(A != B);
  B = A;
  B.FixedScale = 0.5;
  CHECK(A != B);
}

TEST_CASE("ObserverSpec module attributes round-trip", "[quant]") {
  ObserverSpec H =
      spec(ObserverKind::Histogram, DType::U8, QScheme::PerTensorAffine);
  H.ReduceRange = true;
  H.QuantMax = 127;
  H.Bins = 1024;
  ObserverSpec PC = spec(ObserverKind::MovingAveragePerChannelMinMax, DType::S8,
                         QScheme::PerChannelSymmetric);
  PC.ChAxis = 1;
  PC.AveragingConstant = 0.25;
  PC.FakeQuant = true;
  ObserverSpec P =
      spec(ObserverKind::Percentile, DType::S8, QScheme::PerTensorSymmetric);
  P.Percentile = 99.9;
  ObserverSpec F = spec(ObserverKind::FixedQParams);
  F.FixedScale = 1.0 / 256.0;
  F.FixedZeroPoint = 0;
  ObserverSpec Ph = spec(ObserverKind::Placeholder, DType::F32);
  for (const ObserverSpec &S : {H, PC, P, F, Ph}) {
    INFO(observerKindName(S.Kind).str());
    ModuleInfo M = moduleOf(S);
    llvm::Expected<ObserverSpec> Back = ObserverSpec::fromModule(M);
    if (!Back)
      FAIL(errorToString(Back.takeError()));
    CHECK(*Back == S);
  }
  ModuleInfo HM = moduleOf(H);
  CHECK(HM.kind() == "HistogramObserver");
  CHECK(HM.attr("dtype")->getString() == "quint8");
  CHECK(HM.attr("qscheme")->getString() == "per_tensor_affine");
  CHECK(HM.attr("quant_max")->getInt() == 127);
  CHECK(HM.attr("reduce_range")->getBool());
  CHECK(HM.attr("bins")->getInt() == 1024);
  CHECK(HM.attr("scale") == nullptr);
  ModuleInfo FQ = moduleOf(PC);
  CHECK(FQ.kind() == "FakeQuantize");
  CHECK(FQ.attr("observer")->getString() ==
        "MovingAveragePerChannelMinMaxObserver");
  CHECK(FQ.attr("averaging_constant")->getFloat() == 0.25);
  ModuleInfo FM = moduleOf(F);
  CHECK(FM.attr("scale")->getFloat() == 1.0 / 256.0);
  CHECK(FM.attr("zero_point")->getInt() == 0);
  CHECK(moduleOf(Ph).attr("dtype")->getString() == "float32");

  // Optional attributes take their defaults.
  ModuleInfo Min("MinMaxObserver");
  Min.setAttr("dtype", Argument::string("qint8"));
  Min.setAttr("qscheme", Argument::string("per_tensor_symmetric"));
  Min.setAttr("quant_min", Argument::integer(-128));
  Min.setAttr("quant_max", Argument::integer(127));
  Min.setAttr("averaging_constant", Argument::integer(1));
  llvm::Expected<ObserverSpec> S = ObserverSpec::fromModule(Min);
  if (!S)
    FAIL(errorToString(S.takeError()));
  CHECK(*S == [] {
    ObserverSpec W =
        spec(ObserverKind::MinMax, DType::S8, QScheme::PerTensorSymmetric);
    W.AveragingConstant = 1.0;
    return W;
  }());
}

TEST_CASE("ObserverSpec::fromModule errors", "[quant]") {
  auto Edited = [](auto Edit) {
    ModuleInfo M = moduleOf(spec(ObserverKind::MinMax));
    Edit(M);
    return moduleError(M);
  };
  for (const char *Name : {"dtype", "qscheme", "quant_min", "quant_max"})
    CHECK(Edited([&](ModuleInfo &M) { M.eraseAttr(Name); }) ==
          "observer module: missing attribute '" + std::string(Name) + "'");
  CHECK(Edited([](ModuleInfo &M) {
          M.setAttr("quant_min", Argument::real(0.5));
        }) == "observer module: attribute 'quant_min' must be an int");
  CHECK(Edited([](ModuleInfo &M) {
          M.setAttr("reduce_range", Argument::integer(1));
        }) == "observer module: attribute 'reduce_range' must be a bool");
  CHECK(Edited([](ModuleInfo &M) {
          M.setAttr("dtype", Argument::integer(1));
        }) == "observer module: attribute 'dtype' must be a string");
  CHECK(Edited([](ModuleInfo &M) {
          M.setAttr("percentile", Argument::string("high"));
        }) == "observer module: attribute 'percentile' must be a number");
  CHECK(Edited([](ModuleInfo &M) {
          M.setAttr("dtype", Argument::string("int8"));
        }) == "observer module: unknown dtype 'int8' (expected quint8, qint8 "
              "or float32)");
  CHECK(Edited([](ModuleInfo &M) {
          M.setAttr("qscheme", Argument::string("symmetric"));
        }) == "observer module: unknown qscheme 'symmetric'");
  CHECK(Edited([](ModuleInfo &M) { M.setKind("Conv2d"); }) ==
        "observer module: unknown observer kind 'Conv2d'");
  CHECK(Edited([](ModuleInfo &M) {
          M.setAttr("quant_max", Argument::integer(300));
        }) == "observer module: quant range [0, 300] exceeds the quint8 range "
              "[0, 255]");
  CHECK(Edited([](ModuleInfo &M) { M.setKind("FakeQuantize"); }) ==
        "observer module: missing attribute 'observer'");
  ModuleInfo F = moduleOf(spec(ObserverKind::FixedQParams));
  F.eraseAttr("scale");
  CHECK(moduleError(F) == "observer module: missing attribute 'scale'");
}

TEST_CASE("qconfig presets match PyTorch's", "[quant]") {
  llvm::Expected<std::string> Text =
      readFile(std::string(QFX_TEST_DATA_DIR) + "/quant/presets.tsv");
  if (!Text)
    FAIL(errorToString(Text.takeError()));
  llvm::SmallVector<llvm::StringRef, 16> Lines;
  llvm::StringRef(*Text).trim().split(Lines, '\n');
  REQUIRE(Lines.size() == 10);
  for (llvm::StringRef Line : Lines) {
    llvm::SmallVector<llvm::StringRef, 11> C;
    Line.split(C, '\t');
    REQUIRE(C.size() == 11);
    INFO(Line.str());
    QConfig Q = presetOf(C[0]);
    CHECK(Q.Name == C[0].str());
    const ObserverSpec &S = C[1] == "activation" ? Q.Activation : Q.Weight;
    CHECK(S.validate() == "");
    CHECK(observerKindName(S.Kind) == C[2]);
    CHECK(S.FakeQuant == (C[10] == "1"));
    // PyTorch's float_qparams weights have float zero points, which qfx
    // does not represent (documented in QConfig::preset).
    bool FloatQParams = C[4] == "per_channel_affine_float_qparams";
    CHECK(S.Dtype == (C[3] == "quint8"  ? DType::U8
                      : C[3] == "qint8" ? DType::S8
                                        : DType::F32));
    if (C[4] != "-" && !FloatQParams)
      CHECK(qschemeName(S.Scheme) == C[4]);
    if (C[5] != "-") {
      CHECK(S.QuantMin == std::stoll(C[5].str()));
      CHECK(S.QuantMax == std::stoll(C[6].str()));
      CHECK(S.ReduceRange == (C[7] == "1"));
    }
    if (C[8] != "-")
      CHECK(S.AveragingConstant == std::strtod(C[8].str().c_str(), nullptr));
    if (C[9] != "-")
      CHECK(S.ChAxis == std::stoll(C[9].str()));
  }
  CHECK(presetOf("dynamic").IsDynamic);
  CHECK_FALSE(presetOf("dynamic").IsWeightOnly);
  CHECK(presetOf("weight_only").IsWeightOnly);
  CHECK(presetOf("qat_x86").isQAT());
  CHECK_FALSE(presetOf("x86").isQAT());
  CHECK(presetOf("weight_only").Weight.Scheme == QScheme::PerChannelAffine);
}

TEST_CASE("qconfig equality and unknown presets", "[quant]") {
  QConfig X86 = presetOf("x86");
  QConfig Copy = X86;
  Copy.Name = "custom";
  CHECK(Copy == X86); // The name is only a label.
  Copy.Activation.ReduceRange = false;
  CHECK(Copy != X86);
  CHECK(presetOf("onednn") != X86);
  Copy = X86;
  Copy.IsDynamic = true;
  CHECK(Copy != X86);
  llvm::Expected<QConfig> Bad = QConfig::preset("fbgemm");
  REQUIRE_FALSE(static_cast<bool>(Bad));
  CHECK(errorToString(Bad.takeError()) ==
        "unknown qconfig preset 'fbgemm' (known: x86, onednn, qat_x86, "
        "dynamic, weight_only)");
}
