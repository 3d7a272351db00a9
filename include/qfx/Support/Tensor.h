//===- Tensor.h - Dense tensors with quantization parameters ----*- C++ -*-===//
//
// The data container shared by every layer: a dtype, a shape, contiguous
// row-major 64-byte aligned storage and optional quantization parameters.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_SUPPORT_TENSOR_H
#define QFX_SUPPORT_TENSOR_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace qfx {

/// Element types. The names follow oneDNN's (f32, s8, u8, s32) because that
/// is where tensors end up; s64 exists for indices and PyTorch's
/// num_batches_tracked buffers.
enum class DType : uint8_t { F32, S8, U8, S32, S64 };

/// Size of one element in bytes.
size_t dtypeSize(DType T);
/// Short name used in the text form and in JSON: "f32", "s8", ...
llvm::StringRef dtypeName(DType T);
/// Parses a short name; returns std::nullopt for anything else.
std::optional<DType> parseDType(llvm::StringRef Name);

using Shape = llvm::SmallVector<int64_t, 4>;

/// The largest element count of any tensor or shape read from a file (2^40,
/// 4 TiB of f32): the one bound every loader (text IR, JSON, npy,
/// safetensors, IDX) applies through checkedNumElements.
constexpr int64_t MaxTensorElements = int64_t(1) << 40;

/// Number of elements of \p S (1 for a scalar shape). Asserts on negative
/// extents and stops the program on overflow; callers validate untrusted
/// shapes with checkedNumElements.
int64_t numElements(llvm::ArrayRef<int64_t> S);
/// The shape validation for untrusted shapes: fails on negative extents and
/// when the product of the non-zero extents exceeds \p Limit (so also for
/// [2^40,2^40,0]: a zero extent does not excuse huge others). Returns the
/// element count.
llvm::Expected<int64_t> checkedNumElements(llvm::ArrayRef<int64_t> S,
                                           int64_t Limit = MaxTensorElements);
/// "[1,40,26,26]".
std::string formatShape(llvm::ArrayRef<int64_t> S);

/// Quantization parameters, as torch.Tensor.qscheme() distinguishes them.
/// Affine vs symmetric is a property of how the parameters were chosen, not
/// of the parameters, so it is not stored here.
struct QuantParams {
  enum class Kind : uint8_t { None, PerTensor, PerChannel };
  Kind K = Kind::None;
  /// Per-tensor scale and zero point.
  double Scale = 1.0;
  int64_t ZeroPoint = 0;
  /// Per-channel scales and zero points along Axis.
  std::vector<double> Scales;
  std::vector<int64_t> ZeroPoints;
  int64_t Axis = 0;

  static QuantParams perTensor(double Scale, int64_t ZeroPoint);
  static QuantParams perChannel(std::vector<double> Scales,
                                std::vector<int64_t> ZeroPoints, int64_t Axis);

  bool isNone() const { return K == Kind::None; }
  bool isPerTensor() const { return K == Kind::PerTensor; }
  bool isPerChannel() const { return K == Kind::PerChannel; }
  bool operator==(const QuantParams &O) const;
  bool operator!=(const QuantParams &O) const { return !(*this == O); }

  /// Checks the parameters against a tensor of shape \p S: positive finite
  /// scales, per-channel vectors as long as the axis extent, axis in range.
  /// Returns a message describing the first problem, or "" when valid.
  std::string validate(llvm::ArrayRef<int64_t> S) const;
};

/// A dense tensor. Copies share storage (like torch.Tensor); use clone() for
/// a deep copy. Storage is contiguous, row-major and 64-byte aligned so it
/// can be handed to oneDNN without a copy.
class Tensor {
public:
  /// An empty f32 tensor of shape [0]; hasData() is false.
  Tensor();
  /// Allocates zero-initialized storage for \p S.
  Tensor(DType T, llvm::ArrayRef<int64_t> S);

  /// A tensor with a dtype and shape but no storage (hasData() is false):
  /// what the text IR gives for a parameter whose values were elided.
  static Tensor declared(DType T, llvm::ArrayRef<int64_t> S) {
    Tensor R;
    R.DT = T;
    R.Dims.assign(S.begin(), S.end());
    return R;
  }

  /// Factories.
  static Tensor zeros(DType T, llvm::ArrayRef<int64_t> S) { return {T, S}; }
  /// Storage that is not zero-filled, for kernels that write every element
  /// (zero-filling large outputs costs a tenth of a training step).
  static Tensor uninitialized(DType T, llvm::ArrayRef<int64_t> S);
  static Tensor fromFloats(llvm::ArrayRef<int64_t> S,
                           llvm::ArrayRef<float> Values);
  template <typename T>
  static Tensor fromValues(DType D, llvm::ArrayRef<int64_t> S,
                           llvm::ArrayRef<T> Values) {
    Tensor R(D, S);
    assert(R.numElements() == static_cast<int64_t>(Values.size()) &&
           "value count does not match shape");
    for (size_t I = 0; I < Values.size(); ++I)
      R.setFromDouble(static_cast<int64_t>(I), static_cast<double>(Values[I]));
    return R;
  }

  DType dtype() const { return DT; }
  llvm::ArrayRef<int64_t> shape() const { return Dims; }
  int64_t rank() const { return static_cast<int64_t>(Dims.size()); }
  int64_t dim(int64_t I) const;
  int64_t numElements() const;
  size_t byteSize() const;
  /// False for the default-constructed tensor and declared() tensors.
  bool hasData() const { return Store != nullptr; }

  const QuantParams &quant() const { return Q; }
  void setQuant(QuantParams P) { Q = std::move(P); }

  /// Raw bytes (64-byte aligned).
  void *rawData();
  const void *rawData() const;
  template <typename T> T *data() { return static_cast<T *>(rawData()); }
  template <typename T> const T *data() const {
    return static_cast<const T *>(rawData());
  }

  /// Element access by flat index through double (exact for every dtype in
  /// the ranges used here; s64 beyond 2^53 is not exact). Meant for tests,
  /// printing and reference kernels, not hot loops.
  double getAsDouble(int64_t FlatIndex) const;
  void setFromDouble(int64_t FlatIndex, double V);

  /// Deep copy (new storage, same quantization parameters).
  Tensor clone() const;
  /// A tensor sharing this one's storage with a new shape of the same
  /// element count.
  Tensor reshaped(llvm::ArrayRef<int64_t> NewShape) const;

  /// Same dtype, shape, quantization parameters and bytes.
  bool identical(const Tensor &O) const;

private:
  struct Storage;
  DType DT = DType::F32;
  Shape Dims;
  std::shared_ptr<Storage> Store;
  QuantParams Q;
};

/// Rows [Begin, End) of \p T along dimension 0, as a new tensor with the
/// same dtype and quantization parameters (batching calibration and
/// evaluation data).
Tensor sliceRows(const Tensor &T, int64_t Begin, int64_t End);

} // namespace qfx

#endif // QFX_SUPPORT_TENSOR_H
