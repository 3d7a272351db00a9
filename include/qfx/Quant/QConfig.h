//===- QConfig.h - Quantization specs, observers and qconfigs ---*- C++ -*-===//
//
// What torch.ao.quantization calls an observer constructor and a QConfig,
// as plain data: which observer, which dtype and scheme, which range. The
// same data is written into observer modules' attributes, so an observed
// graph carries everything convert needs when it is saved and reloaded.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_QUANT_QCONFIG_H
#define QFX_QUANT_QCONFIG_H

#include "qfx/Support/Tensor.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <optional>
#include <string>

namespace qfx {

class ModuleInfo;

/// torch.ao.quantization's observers, plus calibrators PyTorch lacks
/// (Percentile, Entropy as TensorRT's, MSE).
enum class ObserverKind : uint8_t {
  MinMax,
  MovingAverageMinMax,
  PerChannelMinMax,
  MovingAveragePerChannelMinMax,
  Histogram,
  Percentile,
  Entropy,
  MSE,
  /// Records nothing; dynamic quantization computes activation qparams per
  /// batch at run time (PyTorch's PlaceholderObserver).
  Placeholder,
  /// Constant qparams for ops with a fixed output range (sigmoid, tanh ...):
  /// no state; calculateQParams returns ObserverSpec::FixedScale and
  /// FixedZeroPoint (PyTorch's FixedQParamsObserver).
  FixedQParams,
};

/// PyTorch's class name ("MinMaxObserver", "HistogramObserver" ...), which
/// is also the kind of the observer module in the IR.
llvm::StringRef observerKindName(ObserverKind K);
std::optional<ObserverKind> parseObserverKind(llvm::StringRef Name);
bool isPerChannel(ObserverKind K);

enum class QScheme : uint8_t {
  PerTensorAffine,
  PerTensorSymmetric,
  PerChannelAffine,
  PerChannelSymmetric,
};

/// "per_tensor_affine" ... (torch.qscheme names without "torch.").
llvm::StringRef qschemeName(QScheme S);
std::optional<QScheme> parseQScheme(llvm::StringRef Name);
bool isSymmetric(QScheme S);

/// One observer constructor with its arguments.
struct ObserverSpec {
  ObserverKind Kind = ObserverKind::MinMax;
  /// U8 = torch.quint8, S8 = torch.qint8 (F32 for Placeholder of float
  /// activations in dynamic quantization).
  DType Dtype = DType::U8;
  QScheme Scheme = QScheme::PerTensorAffine;
  /// Effective range (reduce_range already applied, as PyTorch's
  /// _calculate_qmin_qmax does).
  int64_t QuantMin = 0;
  int64_t QuantMax = 255;
  bool ReduceRange = false;
  /// Moving-average observers.
  double AveragingConstant = 0.01;
  /// Per-channel observers.
  int64_t ChAxis = 0;
  /// Histogram-based observers.
  int64_t Bins = 2048;
  /// Percentile observer (e.g. 99.99).
  double Percentile = 99.99;
  /// Wrap in FakeQuantize (quantization-aware training).
  bool FakeQuant = false;
  /// Divides scale search for Histogram-family upsampling (PyTorch's
  /// upsample_rate).
  int64_t UpsampleRate = 128;
  /// FixedQParams observers: the constant qparams (module attributes
  /// `scale` and `zero_point`).
  double FixedScale = 1.0;
  int64_t FixedZeroPoint = 0;

  /// PyTorch's defaults for a dtype: quint8 [0,255] or qint8 [-128,127],
  /// halved by reduce_range ([0,127] / [-64,63]).
  static ObserverSpec make(ObserverKind K, DType D, QScheme S,
                           bool ReduceRange = false);
  /// Validates (dtype u8/s8 unless Placeholder, 2..8 bits, quant_min <
  /// quant_max within the dtype, per-channel kinds with per-channel
  /// schemes); "" when valid, else the problem.
  std::string validate() const;
  bool operator==(const ObserverSpec &O) const;
  bool operator!=(const ObserverSpec &O) const { return !(*this == O); }

  /// Writes / reads the spec as module attributes (dtype = "quint8" |
  /// "qint8" | "float32", qscheme, quant_min, quant_max, reduce_range,
  /// averaging_constant, ch_axis, bins, percentile, upsample_rate); the
  /// kind is the module kind.
  void toModule(ModuleInfo &M) const;
  static llvm::Expected<ObserverSpec> fromModule(const ModuleInfo &M);
};

/// torch.ao.quantization.QConfig: how to observe activations and weights.
struct QConfig {
  /// A preset name ("x86", "onednn", "qat_x86", "dynamic", "weight_only")
  /// or "custom".
  std::string Name = "custom";
  ObserverSpec Activation;
  ObserverSpec Weight;
  /// Activations are quantized per batch at run time (Linear only).
  bool IsDynamic = false;
  /// Only weights are quantized; activations stay float.
  bool IsWeightOnly = false;

  bool isQAT() const { return Activation.FakeQuant || Weight.FakeQuant; }
  bool operator==(const QConfig &O) const;
  bool operator!=(const QConfig &O) const { return !(*this == O); }

  /// PyTorch 1.13's presets: "x86" (= get_default_qconfig("x86"):
  /// HistogramObserver quint8 reduce_range=True, PerChannelMinMaxObserver
  /// qint8 per_channel_symmetric), "onednn" (reduce_range=False), "qat_x86"
  /// (get_default_qat_qconfig("x86")), "dynamic" (per-channel dynamic),
  /// "weight_only".
  static llvm::Expected<QConfig> preset(llvm::StringRef Name);
};

} // namespace qfx

#endif // QFX_QUANT_QCONFIG_H
