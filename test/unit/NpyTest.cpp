// Unit tests for the .npy reader and writer, against files numpy wrote.
#include "TestUtil.h"

#include "qfx/Support/Error.h"
#include "qfx/Support/FileIO.h"
#include "qfx/Support/Npy.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

#include <catch2/catch.hpp>

#include <cstdint>
#include <string>

using namespace qfx;
using Catch::Contains;
using Catch::StartsWith;
using testutil::take;

namespace {

std::string goldenPath(llvm::StringRef Name) {
  return std::string(QFX_TEST_DATA_DIR) + "/npy/" + Name.str() + ".npy";
}

/// The bytes of a golden file; fails the test if it cannot be read.
std::string golden(llvm::StringRef Name) {
  llvm::Expected<std::string> Bytes = readFile(goldenPath(Name));
  if (!Bytes)
    FAIL(errorToString(Bytes.takeError()));
  return *Bytes;
}

/// A .npy file with header dict \p Dict (unpadded) and data \p Data.
std::string npy(llvm::StringRef Dict, llvm::StringRef Data = "",
                unsigned Major = 1) {
  std::string Header = Dict.str() + "\n";
  std::string R("\x93NUMPY", 6);
  R += static_cast<char>(Major);
  R += '\0';
  uint32_t Len = static_cast<uint32_t>(Header.size());
  for (unsigned I = 0; I < (Major == 1 ? 2u : 4u); ++I)
    R += static_cast<char>((Len >> (8 * I)) & 0xff);
  return R + Header + Data.str();
}

/// The header dict of a 2x3 f32 array with \p Descr.
std::string dict(llvm::StringRef Descr, llvm::StringRef Shape = "(2, 3)") {
  return "{'descr': '" + Descr.str() +
         "', 'fortran_order': False, 'shape': " + Shape.str() + ", }";
}

/// The error message of parsing \p Bytes as "x.npy".
std::string parseError(llvm::StringRef Bytes) {
  llvm::Expected<Tensor> T = parseNpy(Bytes, "x.npy");
  if (T)
    return "";
  std::string Msg = errorToString(T.takeError());
  CHECK_THAT(Msg, StartsWith("x.npy: "));
  return Msg;
}

Tensor parseOk(llvm::StringRef Bytes) {
  llvm::Expected<Tensor> T = parseNpy(Bytes, "x.npy");
  if (!T)
    FAIL(errorToString(T.takeError()));
  return *T;
}

/// The value of \p V; fails the test with the error message otherwise.
std::vector<double> values(const Tensor &T) {
  std::vector<double> V;
  for (int64_t I = 0; I < T.numElements(); ++I)
    V.push_back(T.getAsDouble(I));
  return V;
}

} // namespace

TEST_CASE("npy golden files parse", "[npy]") {
  Tensor F = parseOk(golden("f32_2x3"));
  CHECK(F.dtype() == DType::F32);
  CHECK(F.shape() == llvm::ArrayRef<int64_t>{2, 3});
  CHECK(values(F) == std::vector<double>{0.5, -1.25, 2, 3, -4.5, 1e6});
  CHECK(F.quant().isNone());

  Tensor U = parseOk(golden("u8_5"));
  CHECK(U.dtype() == DType::U8);
  CHECK(U.shape() == llvm::ArrayRef<int64_t>{5});
  CHECK(values(U) == std::vector<double>{0, 1, 127, 128, 255});

  Tensor S8 = parseOk(golden("s8_2x2"));
  CHECK(S8.dtype() == DType::S8);
  CHECK(values(S8) == std::vector<double>{-128, -1, 0, 127});

  Tensor S32 = parseOk(golden("s32_3"));
  CHECK(S32.dtype() == DType::S32);
  CHECK(values(S32) == std::vector<double>{-2147483648.0, 0, 2147483647.0});

  Tensor S64 = parseOk(golden("s64_2"));
  CHECK(S64.dtype() == DType::S64);
  CHECK(S64.data<int64_t>()[1] == int64_t(1) << 40);
  CHECK(S64.data<int64_t>()[0] == -5);

  Tensor Scalar = parseOk(golden("f32_scalar"));
  CHECK(Scalar.rank() == 0);
  CHECK(values(Scalar) == std::vector<double>{3.5});

  Tensor Empty = parseOk(golden("f32_0x3"));
  CHECK(Empty.shape() == llvm::ArrayRef<int64_t>{0, 3});
  CHECK(Empty.numElements() == 0);
}

TEST_CASE("npy format versions 2.0 and 3.0 parse", "[npy]") {
  Tensor V1 = parseOk(golden("f32_2x3"));
  CHECK(parseOk(golden("f32_2x3_v2")).identical(V1));
  CHECK(parseOk(golden("f32_2x3_v3")).identical(V1));
  CHECK(parseOk(npy(dict("<f4", "(1,)"), std::string(4, '\0'), 2))
            .identical(Tensor(DType::F32, {1})));
}

TEST_CASE("encodeNpy writes exactly what numpy writes", "[npy]") {
  for (const char *Name : {"f32_2x3", "u8_5", "s8_2x2", "s32_3", "s64_2",
                           "f32_scalar", "f32_0x3"}) {
    INFO(Name);
    std::string Bytes = golden(Name);
    std::string Encoded = encodeNpy(parseOk(Bytes));
    CHECK(Encoded == Bytes);
    // numpy aligns the data to 64 bytes.
    CHECK((Encoded.size() - parseOk(Bytes).byteSize()) % 64 == 0);
  }
}

TEST_CASE("npy round trip for every dtype", "[npy]") {
  std::vector<Tensor> Ts = {
      Tensor::fromFloats({2, 2}, {1.5f, -2, 0, 1e-3f}),
      Tensor::fromValues<int>(DType::S8, {3}, {-128, 5, 127}),
      Tensor::fromValues<int>(DType::U8, {1, 3}, {0, 200, 255}),
      Tensor::fromValues<int64_t>(DType::S32, {2}, {-2147483648LL, 7}),
      Tensor::fromValues<int64_t>(DType::S64, {}, {int64_t(1) << 50}),
      Tensor(DType::S32, {4, 0, 2}),
      Tensor(DType::U8, {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}),
  };
  for (const Tensor &T : Ts) {
    INFO(formatShape(T.shape()));
    Tensor Back = parseOk(encodeNpy(T));
    CHECK(Back.identical(T));
    CHECK(reinterpret_cast<uintptr_t>(Back.rawData()) % 64 == 0);
  }
}

TEST_CASE("encodeNpy falls back to version 2.0 for huge headers", "[npy]") {
  // 30000 unit extents need a header longer than 1.0's 16-bit length.
  Tensor T(DType::U8, Shape(30000, 1));
  std::string Bytes = encodeNpy(T);
  CHECK(Bytes[6] == 2);
  CHECK((Bytes.size() - 1) % 64 == 0);
  CHECK(parseOk(Bytes).identical(T));
}

TEST_CASE("encodeNpy drops quantization parameters", "[npy]") {
  Tensor T = Tensor::fromValues<int>(DType::S8, {2}, {1, 2});
  T.setQuant(QuantParams::perTensor(0.5, 0));
  Tensor Back = parseOk(encodeNpy(T));
  CHECK(Back.quant().isNone());
  CHECK(values(Back) == values(T));
}

TEST_CASE("writeNpy and readNpy", "[npy]") {
  llvm::SmallString<128> Dir;
  REQUIRE_FALSE(llvm::sys::fs::createUniqueDirectory("qfx-npy-test", Dir));
  std::string P = std::string(Dir) + "/t.npy";
  Tensor T = Tensor::fromFloats({3}, {1, 2, 3});
  REQUIRE(errorToString(writeNpy(P, T)) == "");
  CHECK(take(readNpy(P)).identical(T));
  std::string Missing = std::string(Dir) + "/missing.npy";
  CHECK_THAT(errorToString(readNpy(Missing).takeError()),
             StartsWith(Missing + ": cannot open"));
  llvm::sys::fs::remove_directories(Dir);
}

TEST_CASE("npy header parser is tolerant of valid variations", "[npy]") {
  std::string Data(24, '\0');
  Tensor Want(DType::F32, {2, 3});
  CHECK(parseOk(npy("{\"shape\": (2, 3), \"fortran_order\": False, "
                    "\"descr\": \"<f4\"}",
                    Data))
            .identical(Want));
  CHECK(parseOk(
            npy("{'descr':'<f4','fortran_order':False,'shape':(2,3)}   ", Data))
            .identical(Want));
  CHECK(parseOk(npy(dict("<f4", "(2L, 3L)"), Data)).identical(Want));
  for (const char *Descr : {"|i1", "i1", "<i1"})
    CHECK(parseOk(npy(dict(Descr, "(2,)"), "ab")).dtype() == DType::S8);
  for (const char *Descr : {"|u1", "u1", "<u1"})
    CHECK(parseOk(npy(dict(Descr, "(2,)"), "ab")).dtype() == DType::U8);
}

TEST_CASE("npy rejects bad magic and versions", "[npy]") {
  CHECK_THAT(parseError("PK\x03\x04 this is a zip file"),
             Contains("not a .npy file (bad magic)"));
  CHECK_THAT(parseError(""), Contains("truncated header"));
  CHECK_THAT(parseError("\x93NUMPY\x01"), Contains("truncated header"));
  std::string V4 = golden("f32_2x3");
  V4[6] = 4;
  CHECK_THAT(parseError(V4),
             Contains("unsupported .npy format version 4.0 (supported: 1.0, "
                      "2.0, 3.0)"));
  std::string V11 = golden("f32_2x3");
  V11[7] = 1;
  CHECK_THAT(parseError(V11), Contains("unsupported .npy format version 1.1"));
}

TEST_CASE("npy rejects truncated headers", "[npy]") {
  std::string G = golden("f32_2x3");
  CHECK_THAT(parseError(G.substr(0, 9)), Contains("truncated header"));
  CHECK_THAT(parseError(G.substr(0, 50)),
             Contains("truncated header: header length is 118 bytes but only "
                      "40 follow"));
  std::string V2 = golden("f32_2x3_v2");
  CHECK_THAT(parseError(V2.substr(0, 11)), Contains("truncated header"));
}

TEST_CASE("npy rejects malformed header dicts", "[npy]") {
  CHECK_THAT(parseError(npy("'descr': '<f4'")),
             Contains("malformed header: expected '{'"));
  CHECK_THAT(parseError(npy("{'descr' '<f4'}")),
             Contains("expected ':' after key 'descr'"));
  CHECK_THAT(parseError(npy("{'descr': '<f4}")),
             Contains("unterminated string"));
  CHECK_THAT(parseError(npy("{descr: '<f4'}")),
             Contains("expected a quoted key"));
  CHECK_THAT(parseError(npy("{'descr': 3}")),
             Contains("unsupported value for key 'descr'"));
  CHECK_THAT(parseError(npy("{'descr': '<f4' 'shape': ()}")),
             Contains("expected ',' or '}'"));
  CHECK_THAT(parseError(npy(dict("<f4", "(2, 3"))),
             Contains("in the tuple of 'shape'"));
  CHECK_THAT(parseError(npy(dict("<f4", "(2, x)"))),
             Contains("expected an integer in the tuple of 'shape'"));
  CHECK_THAT(parseError(npy(dict("<f4", "(5)"))),
             Contains("'shape' is a parenthesized integer, not a tuple"));
  CHECK_THAT(parseError(npy(dict("<f4") + " junk")),
             Contains("unexpected text after the closing '}'"));
  CHECK_THAT(parseError(npy("{'fortran_order': Falsey}")),
             Contains("unsupported value for key 'fortran_order'"));
  CHECK_THAT(parseError(npy(dict("<f4", "(99999999999999999999,)"))),
             Contains("integer too large in the tuple of 'shape'"));
  CHECK_THAT(parseError(npy("{'descr': 'a\\qb'}")),
             Contains("unsupported escape sequence"));
  // Offsets tell where the problem is.
  CHECK_THAT(parseError(npy("{'descr' '<f4'}")), Contains("(at offset 9 "));
}

TEST_CASE("npy rejects missing, duplicate, unexpected and mistyped keys",
          "[npy]") {
  CHECK_THAT(parseError(npy("{'descr': '<f4', 'shape': (), }")),
             Contains("header has no 'fortran_order' key"));
  CHECK_THAT(parseError(npy("{'fortran_order': False, 'shape': (), }")),
             Contains("header has no 'descr' key"));
  CHECK_THAT(parseError(npy("{'descr': '<f4', 'fortran_order': False}")),
             Contains("header has no 'shape' key"));
  CHECK_THAT(parseError(npy("{'descr': '<f4', 'descr': '<f4'}")),
             Contains("duplicate key 'descr'"));
  CHECK_THAT(parseError(npy("{'descr': '<f4', 'fortran_order': False, "
                            "'shape': (), 'extra': 'x'}")),
             Contains("unexpected key 'extra' in header"));
  CHECK_THAT(parseError(npy("{'descr': '<f4', 'fortran_order': 'no', "
                            "'shape': ()}")),
             Contains("header value of 'fortran_order' must be True or "
                      "False"));
  CHECK_THAT(parseError(npy("{'descr': (), 'fortran_order': False, "
                            "'shape': ()}")),
             Contains("header value of 'descr' must be a string"));
  CHECK_THAT(parseError(npy("{'descr': '<f4', 'fortran_order': False, "
                            "'shape': '2'}")),
             Contains("header value of 'shape' must be a tuple"));
}

TEST_CASE("npy rejects fortran order, big-endian and other dtypes", "[npy]") {
  CHECK_THAT(parseError(golden("f32_fortran")),
             Contains("fortran-order arrays are not supported; save with "
                      "np.ascontiguousarray"));
  CHECK_THAT(parseError(golden("f32_bigendian")),
             Contains("big-endian dtype '>f4' is not supported"));
  CHECK(parseError(golden("f64_2")) ==
        "x.npy: dtype float64 (<f8), expected float32: save with "
        "x.astype(np.float32)");
  CHECK_THAT(parseError(golden("bool_2")), Contains("unsupported dtype '|b1'"));
  CHECK_THAT(parseError(npy(dict("<f2"), std::string(12, '\0'))),
             Contains("unsupported dtype '<f2'"));
}

TEST_CASE("npy rejects bad shapes and data sizes", "[npy]") {
  CHECK_THAT(parseError(npy(dict("<f4", "(2, -3)"))),
             Contains("negative extent -3 in shape [2,-3]"));
  CHECK_THAT(parseError(npy(dict("<f4", "(4294967296, 4294967296)"))),
             Contains("too many elements"));
  std::string G = golden("f32_2x3");
  CHECK_THAT(parseError(G.substr(0, G.size() - 1)),
             Contains("data is truncated: expected 24 bytes, found 23"));
  CHECK_THAT(parseError(G + "xyz"),
             Contains("file has 3 trailing bytes after the array data"));
}

TEST_CASE("npy inputs convert float64 to float32", "[npy]") {
  // numpy's default float dtype; values chosen to need rounding.
  std::vector<double> D = {0.1, -2.5, 1e-40, 3.0000001, 3.4e38, 0.0};
  std::string Data(reinterpret_cast<const char *>(D.data()),
                   D.size() * sizeof(double));
  llvm::Expected<Tensor> T = parseNpyInput(npy(dict("<f8"), Data), "x.npy");
  if (!T)
    FAIL(errorToString(T.takeError()));
  REQUIRE(T->dtype() == DType::F32);
  REQUIRE(T->shape() == llvm::ArrayRef<int64_t>{2, 3});
  for (size_t I = 0; I < D.size(); ++I)
    CHECK(T->data<float>()[I] == static_cast<float>(D[I]));
  // Other dtypes read as parseNpy reads them; the length is checked in
  // float64 bytes.
  CHECK(parseNpyInput(golden("f32_2x3"), "x.npy")->dtype() == DType::F32);
  llvm::Expected<Tensor> Short =
      parseNpyInput(npy(dict("<f8"), Data.substr(8)), "x.npy");
  REQUIRE(!Short);
  CHECK_THAT(errorToString(Short.takeError()),
             Contains("data is truncated: expected 48 bytes, found 40"));
}
