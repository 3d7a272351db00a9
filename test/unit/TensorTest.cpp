// Unit tests for qfx::Tensor, shapes, dtypes and QuantParams.
#include "qfx/Support/Tensor.h"
#include "qfx/Support/Error.h"

#include <catch2/catch.hpp>

#include <cstdint>
#include <limits>

using namespace qfx;
using Catch::Contains;

namespace {

const DType AllDTypes[] = {DType::F32, DType::S8, DType::U8, DType::S32,
                           DType::S64};

/// The message of a failed Expected, or "" if it succeeded.
template <typename T> std::string errorOf(llvm::Expected<T> V) {
  if (V)
    return "";
  return errorToString(V.takeError());
}

bool isAligned64(const void *P) {
  return reinterpret_cast<uintptr_t>(P) % 64 == 0;
}

} // namespace

TEST_CASE("dtype sizes and names", "[tensor]") {
  CHECK(dtypeSize(DType::F32) == 4);
  CHECK(dtypeSize(DType::S8) == 1);
  CHECK(dtypeSize(DType::U8) == 1);
  CHECK(dtypeSize(DType::S32) == 4);
  CHECK(dtypeSize(DType::S64) == 8);
  CHECK(dtypeName(DType::F32) == "f32");
  CHECK(dtypeName(DType::S8) == "s8");
  CHECK(dtypeName(DType::U8) == "u8");
  CHECK(dtypeName(DType::S32) == "s32");
  CHECK(dtypeName(DType::S64) == "s64");
  for (DType T : AllDTypes)
    CHECK(parseDType(dtypeName(T)) == T);
  CHECK_FALSE(parseDType("f64").has_value());
  CHECK_FALSE(parseDType("F32").has_value());
  CHECK_FALSE(parseDType("").has_value());
}

TEST_CASE("shape helpers", "[tensor]") {
  CHECK(numElements({}) == 1);
  CHECK(numElements({1, 40, 26, 26}) == 40 * 26 * 26);
  CHECK(numElements({3, 0, 5}) == 0);
  CHECK(formatShape({1, 40, 26, 26}) == "[1,40,26,26]");
  CHECK(formatShape({}) == "[]");
  CHECK(formatShape({7}) == "[7]");
}

TEST_CASE("checkedNumElements validates untrusted shapes", "[tensor]") {
  CHECK(errorOf(checkedNumElements({2, 3})).empty());
  CHECK(*checkedNumElements({2, 3}) == 6);
  CHECK(*checkedNumElements({}) == 1);
  CHECK_THAT(errorOf(checkedNumElements({2, -1})),
             Contains("negative extent -1 in shape [2,-1]"));
  const int64_t Big = int64_t(1) << 32;
  CHECK_THAT(errorOf(checkedNumElements({Big, Big, Big})),
             Contains("too many elements"));
  CHECK_THAT(errorOf(checkedNumElements({INT64_MAX, 2})),
             Contains("too many elements"));
  CHECK_THAT(errorOf(checkedNumElements({10, 11}, 100)),
             Contains("has too many elements (limit 100)"));
  CHECK(*checkedNumElements({10, 10}, 100) == 100);
  CHECK(*checkedNumElements({Big, 0}) == 0);
}

TEST_CASE("a zero extent does not excuse huge other extents", "[tensor]") {
  // An IDX header with N = H = 0xffffffff and W = 0 counts 0 elements, but
  // anything walking the shape multiplies the other extents.
  const int64_t Huge = 0xffffffff;
  CHECK(errorOf(checkedNumElements({Huge, 1, Huge, 0})) ==
        "shape [4294967295,1,4294967295,0] has too many elements (limit "
        "1099511627776)");
  CHECK_THAT(errorOf(checkedNumElements({INT64_MAX, 2, 0})),
             Contains("too many elements"));
  // numElements itself never forms the overflowing product.
  CHECK(numElements({INT64_MAX, 2, 0}) == 0);
  CHECK(numElements({Huge, 0, Huge}) == 0);
}

TEST_CASE("default tensor is empty", "[tensor]") {
  Tensor T;
  CHECK_FALSE(T.hasData());
  CHECK(T.dtype() == DType::F32);
  CHECK(T.shape() == llvm::ArrayRef<int64_t>{0});
  CHECK(T.numElements() == 0);
  CHECK(T.byteSize() == 0);
  CHECK(T.rawData() == nullptr);
  CHECK(T.quant().isNone());
  CHECK_FALSE(T.clone().hasData());
  CHECK(T.identical(Tensor()));
}

TEST_CASE("storage is zero-initialized and 64-byte aligned", "[tensor]") {
  for (DType D : AllDTypes) {
    for (const Shape &S : std::vector<Shape>{{}, {3}, {5, 7, 3}, {0, 4}}) {
      Tensor T(D, S);
      REQUIRE(T.hasData());
      CHECK(isAligned64(T.rawData()));
      CHECK(T.numElements() == numElements(S));
      CHECK(T.byteSize() == T.numElements() * dtypeSize(D));
      const auto *Bytes = static_cast<const unsigned char *>(T.rawData());
      size_t NonZero = 0;
      for (size_t I = 0; I < T.byteSize(); ++I)
        NonZero += Bytes[I] != 0;
      CHECK(NonZero == 0);
      CHECK(isAligned64(T.clone().rawData()));
    }
  }
}

TEST_CASE("shape accessors", "[tensor]") {
  Tensor T = Tensor::zeros(DType::S32, {2, 3, 4});
  CHECK(T.rank() == 3);
  CHECK(T.dim(0) == 2);
  CHECK(T.dim(2) == 4);
  CHECK(T.numElements() == 24);
  CHECK(T.byteSize() == 96);
  Tensor S(DType::F32, {});
  CHECK(S.rank() == 0);
  CHECK(S.numElements() == 1);
  CHECK(S.byteSize() == 4);
}

TEST_CASE("copies share storage, clone is deep", "[tensor]") {
  Tensor A = Tensor::fromFloats({2, 2}, {1, 2, 3, 4});
  A.setQuant(QuantParams::perTensor(0.5, 3));
  Tensor B = A;
  CHECK(B.rawData() == A.rawData());
  B.setFromDouble(0, 42);
  CHECK(A.getAsDouble(0) == 42);

  Tensor C = A.clone();
  CHECK(C.rawData() != A.rawData());
  CHECK(C.identical(A));
  CHECK(C.quant() == A.quant());
  C.setFromDouble(1, -7);
  CHECK(A.getAsDouble(1) == 2);
  CHECK_FALSE(C.identical(A));
}

TEST_CASE("reshaped shares storage", "[tensor]") {
  Tensor A = Tensor::fromFloats({2, 3}, {0, 1, 2, 3, 4, 5});
  Tensor R = A.reshaped({3, 2});
  CHECK(R.shape() == llvm::ArrayRef<int64_t>{3, 2});
  CHECK(A.shape() == llvm::ArrayRef<int64_t>{2, 3});
  CHECK(R.rawData() == A.rawData());
  R.setFromDouble(5, 99);
  CHECK(A.getAsDouble(5) == 99);
  CHECK(A.reshaped({6}).rank() == 1);
  Tensor S = Tensor::fromFloats({1}, {2.5f}).reshaped({});
  CHECK(S.rank() == 0);
  CHECK(S.getAsDouble(0) == 2.5);
}

TEST_CASE("element access through double for every dtype", "[tensor]") {
  Tensor F(DType::F32, {3});
  F.setFromDouble(0, -1.5);
  F.setFromDouble(2, 1e6);
  CHECK(F.getAsDouble(0) == -1.5);
  CHECK(F.getAsDouble(1) == 0);
  CHECK(F.getAsDouble(2) == 1e6);
  CHECK(F.data<float>()[0] == -1.5f);

  Tensor S8 = Tensor::fromValues<int>(DType::S8, {3}, {-128, 0, 127});
  CHECK(S8.data<int8_t>()[0] == -128);
  CHECK(S8.getAsDouble(2) == 127);

  Tensor U8 = Tensor::fromValues<int>(DType::U8, {3}, {0, 128, 255});
  CHECK(U8.data<uint8_t>()[2] == 255);
  CHECK(U8.getAsDouble(1) == 128);

  Tensor S32 = Tensor::fromValues<int64_t>(
      DType::S32, {2}, {std::numeric_limits<int32_t>::min(), 2147483647});
  CHECK(S32.data<int32_t>()[0] == std::numeric_limits<int32_t>::min());
  CHECK(S32.getAsDouble(1) == 2147483647.0);

  const int64_t Big = int64_t(1) << 53;
  Tensor S64 = Tensor::fromValues<int64_t>(DType::S64, {2}, {-Big, Big});
  CHECK(S64.data<int64_t>()[0] == -Big);
  CHECK(S64.getAsDouble(1) == static_cast<double>(Big));
}

TEST_CASE("fromFloats and fromValues", "[tensor]") {
  Tensor A = Tensor::fromFloats({2, 2}, {1, 2, 3, 4});
  CHECK(A.dtype() == DType::F32);
  CHECK(A.data<float>()[3] == 4);
  Tensor B = Tensor::fromValues<float>(DType::F32, {2, 2}, {1, 2, 3, 4});
  CHECK(A.identical(B));
  Tensor E = Tensor::fromFloats({0}, {});
  CHECK(E.numElements() == 0);
}

TEST_CASE("identical compares dtype, shape, quant and bytes", "[tensor]") {
  Tensor A = Tensor::fromValues<int>(DType::S32, {2, 2}, {1, 2, 3, 4});
  CHECK(A.identical(A.clone()));
  CHECK_FALSE(A.identical(A.reshaped({4})));
  Tensor OtherType = Tensor::fromValues<int>(DType::S64, {2, 2}, {1, 2, 3, 4});
  CHECK_FALSE(A.identical(OtherType));
  Tensor OtherBytes = A.clone();
  OtherBytes.setFromDouble(3, 5);
  CHECK_FALSE(A.identical(OtherBytes));
  Tensor OtherQuant = A.clone();
  OtherQuant.setQuant(QuantParams::perTensor(1.0, 0));
  CHECK_FALSE(A.identical(OtherQuant));
}

TEST_CASE("QuantParams equality", "[tensor]") {
  QuantParams None;
  CHECK(None.isNone());
  CHECK(None == QuantParams());
  QuantParams T1 = QuantParams::perTensor(0.1, 3);
  CHECK(T1.isPerTensor());
  CHECK(T1 == QuantParams::perTensor(0.1, 3));
  CHECK(T1 != QuantParams::perTensor(0.1, 4));
  CHECK(T1 != QuantParams::perTensor(0.2, 3));
  CHECK(T1 != None);
  QuantParams C1 = QuantParams::perChannel({0.1, 0.2}, {0, 1}, 0);
  CHECK(C1.isPerChannel());
  CHECK(C1 == QuantParams::perChannel({0.1, 0.2}, {0, 1}, 0));
  CHECK(C1 != QuantParams::perChannel({0.1, 0.2}, {0, 1}, 1));
  CHECK(C1 != QuantParams::perChannel({0.1, 0.3}, {0, 1}, 0));
  CHECK(C1 != QuantParams::perChannel({0.1, 0.2}, {0, 2}, 0));
  CHECK(C1 != T1);
}

TEST_CASE("QuantParams validate", "[tensor]") {
  CHECK(QuantParams().validate({2, 3}) == "");
  CHECK(QuantParams::perTensor(0.5, -3).validate({2, 3}) == "");
  CHECK(QuantParams::perTensor(0, 0).validate({2}) ==
        "scale must be positive and finite, got 0");
  CHECK(QuantParams::perTensor(-1.5, 0).validate({2}) ==
        "scale must be positive and finite, got -1.5");
  CHECK_THAT(QuantParams::perTensor(std::numeric_limits<double>::infinity(), 0)
                 .validate({2}),
             Contains("scale must be positive and finite, got inf"));
  CHECK_THAT(QuantParams::perTensor(std::nan(""), 0).validate({2}),
             Contains("scale must be positive and finite, got"));

  CHECK(QuantParams::perChannel({1, 2, 3}, {0, 0, 0}, 0).validate({3, 4}) ==
        "");
  CHECK(QuantParams::perChannel({1, 2}, {0, 0}, 4).validate({3, 2}) ==
        "per-channel axis 4 out of range for rank 2");
  CHECK(QuantParams::perChannel({1, 2}, {0, 0}, -1).validate({3, 2}) ==
        "per-channel axis -1 out of range for rank 2");
  CHECK(QuantParams::perChannel({1, 2}, {0, 0, 0}, 0).validate({3, 4}) ==
        "2 scales for 3 channels on axis 0");
  CHECK(QuantParams::perChannel({1, 2, 3}, {0, 0}, 0).validate({3, 4}) ==
        "2 zero points for 3 channels on axis 0");
  CHECK(QuantParams::perChannel({1, 0, 3}, {0, 0, 0}, 0).validate({3, 4}) ==
        "channel 1 scale must be positive and finite, got 0");
}
