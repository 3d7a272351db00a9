//===- ConvertPatterns.h - What convert does with each op -------*- C++ -*-===//
//
// Private to the convert pass: the class of every op (the table of
// docs/quantization.md), the quantized replacement of each, and reading
// quantization parameters out of observer and fake-quantize modules.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_LIB_TRANSFORMS_CONVERTPATTERNS_H
#define QFX_LIB_TRANSFORMS_CONVERTPATTERNS_H

#include "qfx/IR/GraphModule.h"
#include "qfx/Support/Tensor.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <string>
#include <vector>

namespace qfx {
namespace convert {

/// How convert treats an op.
enum class OpClass : uint8_t {
  Float,
  Weighted,
  General,
  SharesQParams,
  Cat,
  FixedQParams,
};

/// Where a weighted or batch-norm module keeps its float parameters.
enum class FloatPart : uint8_t {
  /// In the module itself (Conv2d, Linear, BatchNorm2d).
  Self,
  /// In child "0" (ConvReLU2d, LinearReLU, ConvAdd2d, BNReLU2d ...).
  Child0,
  /// In child "0" with a BatchNorm in child "1" to fold in first
  /// (ConvBn2d, ConvBnReLU2d, LinearBn1d from quantization-aware training).
  FoldBn,
};

/// What convert does with one node: its class (from the backend table) and
/// its int8 form.
struct OpPattern {
  OpClass Class = OpClass::Float;
  /// The op as the backend table spells it (module kind or target).
  std::string Op;
  /// Float nodes: why.
  std::string FloatReason;
  /// The int8 form: a module kind when ReplacementIsModule, else a function
  /// name; empty for shares-qparams ops (they stay as they are).
  llvm::StringRef Replacement;
  bool ReplacementIsModule = false;
  FloatPart Part = FloatPart::Self;
  /// Residual kinds (ConvAdd2d ...) take a second activation input.
  bool HasOther = false;
  /// Fixed-qparams ops: the output's quantization (quint8).
  double FixedScale = 0.0;
  int64_t FixedZeroPoint = 0;
  /// Weighted ops with a dynamic kernel.
  bool SupportsDynamic = false;
};

/// The pattern of \p N (the backend table's class, refined by the operands,
/// plus the int8 form).
OpPattern classify(const GraphModule &GM, const Node &N);

/// Whether \p Kind is an observer or fake-quantize class.
bool isObserverOrFakeQuantKind(llvm::StringRef Kind);

/// The float parameters a quantized module is built from.
struct FloatParams {
  /// The conv / linear / batch norm's attributes.
  AttrMap Attrs;
  /// Its tensors (weight and bias first for weighted modules), with a QAT
  /// BatchNorm folded into the weight and bias.
  std::vector<NamedTensor> Tensors;
};

/// Gathers the float parameters of module \p M (called \p Path) as \p Part
/// says: the module's own, child "0"'s, or child "0"'s with child "1" (a
/// BatchNorm) folded in as PyTorch's fuse_conv_bn_weights does.
llvm::Expected<FloatParams> floatParams(const ModuleInfo &M, FloatPart Part,
                                        llvm::StringRef Path);

/// What an activation observer says about the value it watches.
struct ActQuant {
  /// Dynamic (a quint8 / qint8 PlaceholderObserver): no static qparams;
  /// dynamic ops quantize the value per batch.
  bool Dynamic = false;
  /// A float32 placeholder (weight-only qconfigs): the value stays float.
  bool Float = false;
  DType Dtype = DType::U8;
  double Scale = 1.0;
  int64_t ZeroPoint = 0;
  bool ReduceRange = false;

  bool operator==(const ActQuant &O) const {
    return Dynamic == O.Dynamic && Float == O.Float && Dtype == O.Dtype &&
           Scale == O.Scale && ZeroPoint == O.ZeroPoint;
  }
  bool operator!=(const ActQuant &O) const { return !(*this == O); }
};

/// The activation quantization of observer or fake-quantize module \p M
/// (called \p Path) observing node \p Observed. Observers that saw nothing
/// are an error naming both.
llvm::Expected<ActQuant> activationQuant(const ModuleInfo &M,
                                         llvm::StringRef Path,
                                         llvm::StringRef Observed);

/// The qparams PyTorch 1.13's quantized::add (\p IsAdd) or quantized::mul
/// with the scalar \p C give their output, from the input's \p In (the
/// observer the output shares is ignored there): mul scales the scale by
/// |c| (the zero point mirrored for c < 0; scale 1, zero point 0 for
/// c == 0); add moves the zero point by round(c / scale) and, when that
/// leaves the dtype's range, pins it to the range's end and widens the
/// scale instead.
ActQuant scalarArithQuant(bool IsAdd, double C, const ActQuant &In);

/// Quantizes the weight \p W of weighted module \p Path (whose weight
/// observer child is \p WeightObs, an observer or fake-quantize module) as
/// PyTorch's convert does: the observer runs over the weight, then the
/// weight is quantized with the observer's (usually per-channel) qparams.
/// A weight without data (declared in the text form) uses what the observer
/// recorded.
llvm::Expected<Tensor> quantizeWeight(const Tensor &W,
                                      const ModuleInfo &WeightObs,
                                      llvm::StringRef Path);

/// "quint8" / "qint8", the dtype argument of quantize_per_tensor.
llvm::StringRef torchDtypeName(DType T);

/// "scale 0.0078125, zp 128" for remarks.
std::string formatQParams(double Scale, int64_t ZeroPoint);

} // namespace convert
} // namespace qfx

#endif // QFX_LIB_TRANSFORMS_CONVERTPATTERNS_H
