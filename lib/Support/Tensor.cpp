//===- Tensor.cpp - Dense tensors with quantization parameters ------------===//

#include "qfx/Support/Tensor.h"
#include "qfx/Support/Error.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/ErrorHandling.h"

#include <cassert>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>

using namespace llvm;

namespace qfx {

//===----------------------------------------------------------------------===//
// DType
//===----------------------------------------------------------------------===//

size_t dtypeSize(DType T) {
  switch (T) {
  case DType::F32:
  case DType::S32:
    return 4;
  case DType::S8:
  case DType::U8:
    return 1;
  case DType::S64:
    return 8;
  }
  llvm_unreachable("unknown dtype");
}

StringRef dtypeName(DType T) {
  switch (T) {
  case DType::F32:
    return "f32";
  case DType::S8:
    return "s8";
  case DType::U8:
    return "u8";
  case DType::S32:
    return "s32";
  case DType::S64:
    return "s64";
  }
  llvm_unreachable("unknown dtype");
}

std::optional<DType> parseDType(StringRef Name) {
  for (DType T : {DType::F32, DType::S8, DType::U8, DType::S32, DType::S64})
    if (Name == dtypeName(T))
      return T;
  return std::nullopt;
}

//===----------------------------------------------------------------------===//
// Shapes
//===----------------------------------------------------------------------===//

int64_t numElements(ArrayRef<int64_t> S) {
  // A zero extent first, so that the product of the others is never formed.
  if (llvm::is_contained(S, 0))
    return 0;
  int64_t N = 1;
  for (int64_t D : S) {
    assert(D >= 0 && "negative extent");
    // Loaders bound shapes with checkedNumElements; an overflow here is a
    // bug, but must not silently wrap into a small allocation.
    if (__builtin_mul_overflow(N, D, &N))
      report_fatal_error(Twine("shape ") + formatShape(S) +
                         " overflows the element count");
  }
  return N;
}

Expected<int64_t> checkedNumElements(ArrayRef<int64_t> S, int64_t Limit) {
  for (int64_t D : S)
    if (D < 0)
      return makeError("negative extent " + Twine(D) + " in shape " +
                       formatShape(S));
  // The non-zero extents are bounded even next to a zero extent: code that
  // walks a shape (strides, loops over the leading dimensions) multiplies
  // them, and a zero-element tensor of shape [2^40,2^40,0] is nonsense.
  int64_t N = 1;
  for (int64_t D : S) {
    if (D == 0)
      continue;
    if (N > Limit / D)
      return makeError("shape " + formatShape(S) +
                       " has too many elements (limit " + Twine(Limit) + ")");
    N *= D;
  }
  return llvm::is_contained(S, 0) ? 0 : N;
}

std::string formatShape(ArrayRef<int64_t> S) {
  std::string R = "[";
  for (size_t I = 0; I < S.size(); ++I) {
    if (I)
      R += ',';
    R += std::to_string(S[I]);
  }
  return R + "]";
}

//===----------------------------------------------------------------------===//
// QuantParams
//===----------------------------------------------------------------------===//

QuantParams QuantParams::perTensor(double Scale, int64_t ZeroPoint) {
  QuantParams P;
  P.K = Kind::PerTensor;
  P.Scale = Scale;
  P.ZeroPoint = ZeroPoint;
  return P;
}

QuantParams QuantParams::perChannel(std::vector<double> Scales,
                                    std::vector<int64_t> ZeroPoints,
                                    int64_t Axis) {
  QuantParams P;
  P.K = Kind::PerChannel;
  P.Scales = std::move(Scales);
  P.ZeroPoints = std::move(ZeroPoints);
  P.Axis = Axis;
  return P;
}

bool QuantParams::operator==(const QuantParams &O) const {
  if (K != O.K)
    return false;
  switch (K) {
  case Kind::None:
    return true;
  case Kind::PerTensor:
    return Scale == O.Scale && ZeroPoint == O.ZeroPoint;
  case Kind::PerChannel:
    return Axis == O.Axis && Scales == O.Scales && ZeroPoints == O.ZeroPoints;
  }
  llvm_unreachable("unknown quantization kind");
}

/// "%g" keeps messages short; the exact value rarely matters to the reader.
static std::string formatDouble(double V) {
  char Buf[32];
  std::snprintf(Buf, sizeof(Buf), "%g", V);
  return Buf;
}

/// "" if \p V is usable as a scale, else the complaint after \p What.
static std::string checkScale(double V, const Twine &What) {
  if (std::isfinite(V) && V > 0)
    return "";
  return (What + " must be positive and finite, got " + formatDouble(V)).str();
}

std::string QuantParams::validate(ArrayRef<int64_t> S) const {
  if (K == Kind::None)
    return "";
  if (K == Kind::PerTensor)
    return checkScale(Scale, "scale");
  int64_t Rank = static_cast<int64_t>(S.size());
  if (Axis < 0 || Axis >= Rank)
    return ("per-channel axis " + Twine(Axis) + " out of range for rank " +
            Twine(Rank))
        .str();
  int64_t Channels = S[Axis];
  auto CountMsg = [&](size_t N, StringRef What) {
    return (Twine(N) + " " + What + " for " + Twine(Channels) +
            " channels on axis " + Twine(Axis))
        .str();
  };
  if (static_cast<int64_t>(Scales.size()) != Channels)
    return CountMsg(Scales.size(), "scales");
  if (static_cast<int64_t>(ZeroPoints.size()) != Channels)
    return CountMsg(ZeroPoints.size(), "zero points");
  for (size_t I = 0; I < Scales.size(); ++I) {
    std::string Msg = checkScale(Scales[I], "channel " + Twine(I) + " scale");
    if (!Msg.empty())
      return Msg;
  }
  return "";
}

//===----------------------------------------------------------------------===//
// Tensor
//===----------------------------------------------------------------------===//

/// Zero-initialized 64-byte aligned bytes, shared by copies of a tensor.
struct Tensor::Storage {
  static constexpr size_t Align = 64;
  void *Ptr = nullptr;

  Storage(size_t Bytes, bool Zero) {
    // aligned_alloc needs a size that is a multiple of the alignment; never
    // ask for zero bytes so that even empty tensors have a valid pointer.
    size_t Rounded = (std::max<size_t>(Bytes, 1) + Align - 1) / Align * Align;
    Ptr = std::aligned_alloc(Align, Rounded);
    if (!Ptr)
      report_bad_alloc_error("tensor allocation failed");
    if (Zero)
      std::memset(Ptr, 0, Rounded);
  }
  ~Storage() { std::free(Ptr); }
  Storage(const Storage &) = delete;
  Storage &operator=(const Storage &) = delete;
};

Tensor::Tensor() : Dims({0}) {}

/// The byte size of a \p T tensor of shape \p S. Shapes from files are
/// validated by their loaders; one that gets here unvalidated fails like a
/// failed allocation rather than wrapping into a small one.
static size_t storageBytes(DType T, ArrayRef<int64_t> S) {
  Expected<int64_t> N = checkedNumElements(S);
  if (!N) {
    consumeError(N.takeError());
    std::string Msg = "tensor allocation failed: shape " + formatShape(S) +
                      " is invalid or too large";
    report_bad_alloc_error(Msg.c_str());
  }
  return static_cast<size_t>(*N) * dtypeSize(T);
}

Tensor::Tensor(DType T, ArrayRef<int64_t> S)
    : DT(T), Dims(S.begin(), S.end()),
      Store(std::make_shared<Storage>(storageBytes(T, S), /*Zero=*/true)) {}

Tensor Tensor::uninitialized(DType T, ArrayRef<int64_t> S) {
  Tensor R = declared(T, S);
  R.Store = std::make_shared<Storage>(storageBytes(T, S), /*Zero=*/false);
  return R;
}

Tensor Tensor::fromFloats(ArrayRef<int64_t> S, ArrayRef<float> Values) {
  Tensor R(DType::F32, S);
  assert(R.numElements() == static_cast<int64_t>(Values.size()) &&
         "value count does not match shape");
  if (!Values.empty())
    std::memcpy(R.rawData(), Values.data(), Values.size() * sizeof(float));
  return R;
}

int64_t Tensor::dim(int64_t I) const {
  assert(I >= 0 && I < rank() && "dimension index out of range");
  return Dims[I];
}

int64_t Tensor::numElements() const { return qfx::numElements(Dims); }

size_t Tensor::byteSize() const {
  return static_cast<size_t>(numElements()) * dtypeSize(DT);
}

void *Tensor::rawData() { return Store ? Store->Ptr : nullptr; }

const void *Tensor::rawData() const { return Store ? Store->Ptr : nullptr; }

double Tensor::getAsDouble(int64_t FlatIndex) const {
  assert(FlatIndex >= 0 && FlatIndex < numElements() && "index out of range");
  switch (DT) {
  case DType::F32:
    return data<float>()[FlatIndex];
  case DType::S8:
    return data<int8_t>()[FlatIndex];
  case DType::U8:
    return data<uint8_t>()[FlatIndex];
  case DType::S32:
    return data<int32_t>()[FlatIndex];
  case DType::S64:
    return static_cast<double>(data<int64_t>()[FlatIndex]);
  }
  llvm_unreachable("unknown dtype");
}

/// Converts \p V to the integer type \p T; a fractional or unrepresentable
/// value is a caller bug (the conversion would silently lose information).
template <typename T> static T toInteger(double V) {
  assert(std::nearbyint(V) == V && "value is not integral");
  assert(V >= static_cast<double>(std::numeric_limits<T>::min()) &&
         V < static_cast<double>(std::numeric_limits<T>::max()) + 1.0 &&
         "value out of range for the dtype");
  return static_cast<T>(V);
}

void Tensor::setFromDouble(int64_t FlatIndex, double V) {
  assert(FlatIndex >= 0 && FlatIndex < numElements() && "index out of range");
  switch (DT) {
  case DType::F32:
    data<float>()[FlatIndex] = static_cast<float>(V);
    return;
  case DType::S8:
    data<int8_t>()[FlatIndex] = toInteger<int8_t>(V);
    return;
  case DType::U8:
    data<uint8_t>()[FlatIndex] = toInteger<uint8_t>(V);
    return;
  case DType::S32:
    data<int32_t>()[FlatIndex] = toInteger<int32_t>(V);
    return;
  case DType::S64:
    data<int64_t>()[FlatIndex] = toInteger<int64_t>(V);
    return;
  }
  llvm_unreachable("unknown dtype");
}

Tensor Tensor::clone() const {
  if (!hasData()) {
    // A declared tensor stays declared: type, no storage.
    Tensor R = declared(DT, Dims);
    R.Q = Q;
    return R;
  }
  Tensor R = uninitialized(DT, Dims);
  std::memcpy(R.rawData(), rawData(), byteSize());
  R.Q = Q;
  return R;
}

Tensor Tensor::reshaped(ArrayRef<int64_t> NewShape) const {
  assert(qfx::numElements(NewShape) == numElements() &&
         "reshape must keep the element count");
  // Quantization parameters come along; a per-channel axis is the caller's
  // to adjust.
  Tensor R = *this;
  R.Dims.assign(NewShape.begin(), NewShape.end());
  return R;
}

bool Tensor::identical(const Tensor &O) const {
  if (DT != O.DT || Dims != O.Dims || Q != O.Q || hasData() != O.hasData())
    return false;
  if (!hasData())
    return true;
  size_t N = byteSize();
  return N == 0 || std::memcmp(rawData(), O.rawData(), N) == 0;
}

Tensor sliceRows(const Tensor &T, int64_t Begin, int64_t End) {
  assert(T.rank() > 0 && T.hasData() && "slicing rows of a scalar or no data");
  assert(0 <= Begin && Begin <= End && End <= T.dim(0) && "rows out of range");
  Shape S(T.shape().begin(), T.shape().end());
  S[0] = End - Begin;
  Tensor R(T.dtype(), S);
  size_t Row = T.dim(0) ? T.byteSize() / static_cast<size_t>(T.dim(0)) : 0;
  std::memcpy(R.rawData(), static_cast<const char *>(T.rawData()) + Begin * Row,
              (End - Begin) * Row);
  R.setQuant(T.quant());
  return R;
}

} // namespace qfx
