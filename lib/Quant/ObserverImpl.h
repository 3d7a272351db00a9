//===- ObserverImpl.h - Concrete observers (private) ------------*- C++ -*-===//
//
// The observer classes behind Observer::create, and the helpers they share:
// PyTorch's float32 qparams arithmetic and reading state buffers back.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_LIB_QUANT_OBSERVERIMPL_H
#define QFX_LIB_QUANT_OBSERVERIMPL_H

#include "qfx/Quant/Observer.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

namespace qfx {
namespace quant_detail {

constexpr float Inf = std::numeric_limits<float>::infinity();

// Calibration runs on every activation, so the per-element loops use GCC /
// Clang vector extensions (4 lanes, SSE2 on x86-64) when available; a scalar
// loop handles the tail and other compilers. Both compute the same IEEE
// operations, so results do not depend on the path.
#if defined(__GNUC__) || defined(__clang__)
#define QFX_QUANT_VECTOR_EXT 1
typedef float Float4 __attribute__((vector_size(16)));
typedef int32_t Int4 __attribute__((vector_size(16)));
inline Float4 splat4(float V) { return Float4{V, V, V, V}; }
inline Int4 splat4(int32_t V) { return Int4{V, V, V, V}; }
inline Float4 load4(const float *P) {
  Float4 V;
  std::memcpy(&V, P, sizeof(V));
  return V;
}
inline void store4(int32_t *P, Int4 V) { std::memcpy(P, &V, sizeof(V)); }
#endif

/// PyTorch's _calculate_qparams for one (min, max) pair, in float32 as its
/// tensors compute it.
void qparamsFromRange(float MinVal, float MaxVal, const ObserverSpec &Spec,
                      float &Scale, int64_t &ZeroPoint);

/// Minimum and maximum of \p N floats; NaN if any element is NaN (as
/// torch.aminmax). Empty input gives (+inf, -inf).
struct MinMax {
  float Min = Inf;
  float Max = -Inf;
};
MinMax aminmax(const float *X, int64_t N);
/// The same over the non-NaN elements (infinities included); \p SawNaN
/// tells whether there were NaNs.
MinMax aminmaxSkippingNaN(const float *X, int64_t N, bool &SawNaN);
/// The problem() of a histogram observer (\p Kind) that saw a tensor with
/// extremes \p Seen (NaN skipped) and, if \p SawNaN, NaNs: these observers
/// need finite values, and HistogramObserver (\p Int64Range) magnitudes
/// below 2^63, where PyTorch's int() of the range overflows. Empty if the
/// tensor is fine.
std::string histogramProblem(llvm::StringRef Kind, MinMax Seen, bool SawNaN,
                             bool Int64Range);

/// A 0-dim f32 buffer.
NamedTensor scalarBuffer(llvm::StringRef Name, float V);
/// A 1-dim f32 buffer.
NamedTensor vectorBuffer(llvm::StringRef Name, llvm::ArrayRef<float> V);
/// Reads the 0-dim f32 buffer \p Name of \p M.
llvm::Error readScalarBuffer(const ModuleInfo &M, llvm::StringRef Name,
                             float &Out);
/// Reads the 1-dim f32 buffer \p Name; \p Length < 0 accepts any length.
llvm::Error readVectorBuffer(const ModuleInfo &M, llvm::StringRef Name,
                             int64_t Length, std::vector<float> &Out);
/// Checks histogram counts: finite, and non-negative unless \p
/// AllowNegative (PyTorch's re-interpolated histograms have tiny negative
/// bins).
llvm::Error checkCounts(llvm::StringRef Name, llvm::ArrayRef<float> Counts,
                        bool AllowNegative);

/// "observer module: " + Msg.
llvm::Error stateError(const llvm::Twine &Msg);
/// The error for calculateQParams before any observation.
llvm::Error notObservedError(const ObserverSpec &Spec);
/// "%.9g" of \p V, for messages.
std::string formatNumber(double V);
/// Errors for unusable ranges (NaN, min > max); success otherwise.
llvm::Error checkRange(float MinVal, float MaxVal);
/// An error if \p Scale, computed from the observed range [\p MinVal, \p
/// MaxVal], is not finite (a range wider than the float range: PyTorch's
/// scale is inf there, which no quantized tensor can use).
llvm::Error checkScale(float Scale, float MinVal, float MaxVal);
/// The error of calculateQParams for a non-empty problem().
llvm::Error problemError(const std::string &Problem);

/// MinMaxObserver and MovingAverageMinMaxObserver.
class MinMaxObserver : public Observer {
public:
  using Observer::Observer;
  void observe(const Tensor &X) override;
  bool hasObserved() const override;
  llvm::Expected<QuantParams> calculateQParams() const override;
  std::vector<NamedTensor> state() const override;
  llvm::Error loadState(const ModuleInfo &M) override;

private:
  float MinVal = Inf;
  float MaxVal = -Inf;
};

/// PerChannelMinMaxObserver and MovingAveragePerChannelMinMaxObserver.
class PerChannelMinMaxObserver : public Observer {
public:
  using Observer::Observer;
  void observe(const Tensor &X) override;
  bool hasObserved() const override { return !MinVals.empty(); }
  llvm::Expected<QuantParams> calculateQParams() const override;
  std::vector<NamedTensor> state() const override;
  llvm::Error loadState(const ModuleInfo &M) override;

private:
  std::vector<float> MinVals, MaxVals;
};

/// PyTorch 1.13's HistogramObserver, bit for bit.
class HistogramObserver : public Observer {
public:
  explicit HistogramObserver(ObserverSpec Spec);
  void observe(const Tensor &X) override;
  bool hasObserved() const override;
  llvm::Expected<QuantParams> calculateQParams() const override;
  std::vector<NamedTensor> state() const override;
  llvm::Error loadState(const ModuleInfo &M) override;

private:
  /// A combined range after _adjust_min_max.
  struct Adjusted {
    float Min = 0, Max = 0;
    int64_t DownsampleRate = 1, StartIdx = 0;
  };
  bool adjust(float Min, float Max, Adjusted &A) const;
  void merge(std::vector<float> &New, const Adjusted &A);
  void combine(std::vector<float> &New, int64_t DownsampleRate,
               int64_t StartIdx) const;
  void nonLinearParamSearch(float &NewMin, float &NewMax) const;
  double quantizationError(int64_t StartBin, int64_t EndBin,
                           std::vector<float> &Norm) const;

  std::vector<float> Histogram;
  float MinVal = Inf;
  float MaxVal = -Inf;
};

/// Percentile, Entropy and MSE: calibrators PyTorch lacks, sharing one
/// histogram of |x| (see Calibrators.cpp for the exact definitions).
class HistogramCalibrator : public Observer {
public:
  explicit HistogramCalibrator(ObserverSpec Spec);
  void observe(const Tensor &X) override;
  bool hasObserved() const override;
  llvm::Expected<QuantParams> calculateQParams() const override;
  std::vector<NamedTensor> state() const override;
  llvm::Error loadState(const ModuleInfo &M) override;

  /// The clipping threshold on |x| the calibrator chose (for tests and
  /// reports); 0 before any observation.
  double threshold() const;

private:
  double binWidth() const;
  double percentileThreshold() const;
  double entropyThreshold() const;
  double mseThreshold() const;

  /// Counts of |x| over [0, R) in Bins bins, R the smallest power of two
  /// above max |x|; all values and the negative ones.
  std::vector<double> Counts, NegCounts;
  float MinVal = Inf;
  float MaxVal = -Inf;
};

/// PlaceholderObserver: records nothing.
class PlaceholderObserver : public Observer {
public:
  using Observer::Observer;
  void observe(const Tensor &X) override {}
  bool hasObserved() const override { return false; }
  llvm::Expected<QuantParams> calculateQParams() const override;
  std::vector<NamedTensor> state() const override { return {}; }
  llvm::Error loadState(const ModuleInfo &M) override {
    return llvm::Error::success();
  }
};

/// FixedQParamsObserver: constant qparams from the spec, no state.
class FixedQParamsObserver : public Observer {
public:
  using Observer::Observer;
  void observe(const Tensor &X) override {}
  /// Always true: the qparams need no data.
  bool hasObserved() const override { return true; }
  llvm::Expected<QuantParams> calculateQParams() const override;
  std::vector<NamedTensor> state() const override { return {}; }
  llvm::Error loadState(const ModuleInfo &M) override {
    return llvm::Error::success();
  }
};

} // namespace quant_detail
} // namespace qfx

#endif // QFX_LIB_QUANT_OBSERVERIMPL_H
