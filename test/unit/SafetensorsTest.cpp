// Unit tests for the .safetensors reader and writer.
#include "TestUtil.h"

#include "qfx/Support/Error.h"
#include "qfx/Support/FileIO.h"
#include "qfx/Support/Safetensors.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/Support/FileSystem.h"

#include <catch2/catch.hpp>

#include <cstdint>
#include <string>

using namespace qfx;
using Catch::Contains;
using Catch::StartsWith;
using testutil::take;

namespace {

std::string golden(llvm::StringRef Name) {
  std::string Path =
      std::string(QFX_TEST_DATA_DIR) + "/safetensors/" + Name.str();
  llvm::Expected<std::string> Bytes = readFile(Path);
  if (!Bytes)
    FAIL(errorToString(Bytes.takeError()));
  return *Bytes;
}

/// A file with header \p Json and data buffer \p Data.
std::string st(llvm::StringRef Json, llvm::StringRef Data = "") {
  std::string R;
  uint64_t N = Json.size();
  for (unsigned I = 0; I < 8; ++I)
    R += static_cast<char>((N >> (8 * I)) & 0xff);
  return R + Json.str() + Data.str();
}

/// A header with the single entry "x" described by \p Entry.
std::string one(llvm::StringRef Entry) { return "{\"x\":" + Entry.str() + "}"; }

std::string parseError(llvm::StringRef Bytes) {
  llvm::Expected<SafetensorsFile> F = parseSafetensors(Bytes, "m.safetensors");
  if (F)
    return "";
  std::string Msg = errorToString(F.takeError());
  CHECK_THAT(Msg, StartsWith("m.safetensors: "));
  return Msg;
}

SafetensorsFile parseOk(llvm::StringRef Bytes) {
  llvm::Expected<SafetensorsFile> F = parseSafetensors(Bytes, "m.safetensors");
  if (!F)
    FAIL(errorToString(F.takeError()));
  return std::move(*F);
}

/// The value of \p V; fails the test with the error message otherwise.
bool sameContents(const SafetensorsFile &A, const SafetensorsFile &B) {
  if (A.Metadata != B.Metadata || A.Tensors.size() != B.Tensors.size())
    return false;
  for (const auto &[Name, T] : A.Tensors) {
    auto It = B.Tensors.find(Name);
    if (It == B.Tensors.end() || !It->second.identical(T))
      return false;
  }
  return true;
}

/// A file with one tensor of every supported dtype.
SafetensorsFile everyDType() {
  SafetensorsFile F;
  F.Tensors["f32"] = Tensor::fromFloats({2, 2}, {1.5f, -2, 0, 1e-3f});
  F.Tensors["s8"] = Tensor::fromValues<int>(DType::S8, {3}, {-128, 5, 127});
  F.Tensors["u8"] = Tensor::fromValues<int>(DType::U8, {1, 3}, {0, 200, 255});
  F.Tensors["s32"] =
      Tensor::fromValues<int64_t>(DType::S32, {2}, {-2147483648LL, 7});
  F.Tensors["s64"] =
      Tensor::fromValues<int64_t>(DType::S64, {}, {int64_t(1) << 50});
  F.Tensors["empty"] = Tensor(DType::F32, {0, 3});
  return F;
}

} // namespace

TEST_CASE("safetensors golden file parses", "[safetensors]") {
  SafetensorsFile F = parseOk(golden("canonical.safetensors"));
  CHECK(F.Metadata == std::map<std::string, std::string>{{"format", "pt"}});
  REQUIRE(F.Tensors.size() == 6);
  const Tensor &A = F.Tensors.at("a.f32");
  CHECK(A.dtype() == DType::F32);
  CHECK(A.shape() == llvm::ArrayRef<int64_t>{2, 3});
  CHECK(A.getAsDouble(1) == -1.25);
  CHECK(A.getAsDouble(5) == 1e6);
  const Tensor &B = F.Tensors.at("b.i8");
  CHECK(B.dtype() == DType::S8);
  CHECK(B.getAsDouble(0) == -128);
  const Tensor &C = F.Tensors.at("c.u8");
  CHECK(C.dtype() == DType::U8);
  CHECK(C.getAsDouble(2) == 255);
  const Tensor &D = F.Tensors.at("d.i32");
  CHECK(D.dtype() == DType::S32);
  CHECK(D.data<int32_t>()[0] == INT32_MIN);
  const Tensor &E = F.Tensors.at("e.i64");
  CHECK(E.dtype() == DType::S64);
  CHECK(E.rank() == 0);
  CHECK(E.data<int64_t>()[0] == int64_t(1) << 40);
  CHECK(F.Tensors.at("f.empty").shape() == llvm::ArrayRef<int64_t>{0, 4});
  for (const auto &KV : F.Tensors)
    CHECK(reinterpret_cast<uintptr_t>(KV.second.rawData()) % 64 == 0);
}

TEST_CASE("safetensors encode reproduces the canonical golden file",
          "[safetensors]") {
  std::string Canonical = golden("canonical.safetensors");
  CHECK(encodeSafetensors(parseOk(Canonical)) == Canonical);
}

TEST_CASE("safetensors accepts any key and buffer order", "[safetensors]") {
  SafetensorsFile R = parseOk(golden("reordered.safetensors"));
  SafetensorsFile C = parseOk(golden("canonical.safetensors"));
  CHECK(sameContents(R, C));
  CHECK(encodeSafetensors(R) == golden("canonical.safetensors"));
}

TEST_CASE("safetensors round trip for every dtype", "[safetensors]") {
  SafetensorsFile F = everyDType();
  std::string Bytes = encodeSafetensors(F);
  SafetensorsFile Back = parseOk(Bytes);
  CHECK(sameContents(Back, F));
  CHECK(encodeSafetensors(Back) == Bytes);
  // No metadata, no "__metadata__" entry; the header is padded to 8 bytes.
  CHECK(Bytes.find("__metadata__") == std::string::npos);
  uint64_t N = 0;
  for (unsigned I = 0; I < 8; ++I)
    N |= uint64_t(static_cast<unsigned char>(Bytes[I])) << (8 * I);
  CHECK(N % 8 == 0);
  CHECK(Bytes.substr(8, 8) == "{\"empty\"");

  F.Metadata["format"] = "pt";
  F.Metadata["note"] = "quoted \"text\"";
  Back = parseOk(encodeSafetensors(F));
  CHECK(sameContents(Back, F));
}

TEST_CASE("safetensors of no tensors", "[safetensors]") {
  SafetensorsFile F;
  std::string Bytes = encodeSafetensors(F);
  CHECK(Bytes == st("{}      "));
  CHECK(parseOk(Bytes).Tensors.empty());
}

TEST_CASE("safetensors drops quantization parameters", "[safetensors]") {
  SafetensorsFile F;
  Tensor T = Tensor::fromValues<int>(DType::S8, {2}, {1, 2});
  T.setQuant(QuantParams::perTensor(0.5, 0));
  F.Tensors["q"] = T;
  CHECK(parseOk(encodeSafetensors(F)).Tensors.at("q").quant().isNone());
}

TEST_CASE("writeSafetensors and readSafetensors", "[safetensors]") {
  llvm::SmallString<128> Dir;
  REQUIRE_FALSE(llvm::sys::fs::createUniqueDirectory("qfx-st-test", Dir));
  std::string P = std::string(Dir) + "/m.safetensors";
  SafetensorsFile F = everyDType();
  REQUIRE(errorToString(writeSafetensors(P, F)) == "");
  CHECK(sameContents(take(readSafetensors(P)), F));

  SafetensorsFile Reserved;
  Reserved.Tensors["__metadata__"] = Tensor(DType::F32, {1});
  std::string R = std::string(Dir) + "/r.safetensors";
  CHECK_THAT(errorToString(writeSafetensors(R, Reserved)),
             Contains("tensor name '__metadata__' is reserved"));
  CHECK_FALSE(llvm::sys::fs::exists(R));

  std::string Missing = std::string(Dir) + "/missing.safetensors";
  CHECK_THAT(errorToString(readSafetensors(Missing).takeError()),
             StartsWith(Missing + ": cannot open"));
  llvm::sys::fs::remove_directories(Dir);
}

TEST_CASE("safetensors rejects bad header lengths", "[safetensors]") {
  CHECK_THAT(parseError(""), Contains("file is too short: 0 bytes"));
  CHECK_THAT(parseError(std::string("\x02\0\0", 3)),
             Contains("file is too short: 3 bytes"));
  CHECK_THAT(parseError(std::string("\x00\xe1\xf5\x05\0\0\0\0{}", 10)),
             Contains("header length 100000000 exceeds file size 10"));
  CHECK_THAT(parseError(std::string("\x01\xe1\xf5\x05\0\0\0\0{}", 10)),
             Contains("header length 100000001 exceeds the limit of "
                      "100000000 bytes"));
  CHECK_THAT(parseError(std::string(8, '\xff')), Contains("exceeds the limit"));
  CHECK_THAT(parseError(std::string("\x10\0\0\0\0\0\0\0{}", 10)),
             Contains("header length 16 exceeds file size 10"));
}

TEST_CASE("safetensors names PyTorch checkpoints and says what to do",
          "[safetensors]") {
  const std::string Fix =
      "; save the state_dict with safetensors.torch.save_file("
      "model.state_dict(), \"model.safetensors\")";
  // torch.save's zip archive: a local file header first.
  std::string Zip("PK\x03\x04\x14\x00\x08\x00\x00\x00"
                  "archive/data.pkl",
                  26);
  llvm::Expected<SafetensorsFile> F = parseSafetensors(Zip, "model.pt");
  REQUIRE(!F);
  CHECK(errorToString(F.takeError()) ==
        "model.pt: not a safetensors file: this looks like a PyTorch .pt "
        "checkpoint (zip archive)" +
            Fix);
  // The legacy format: pickle protocol 2, then torch's magic number.
  std::string Pickle("\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8", 12);
  CHECK(parseError(Pickle) ==
        "m.safetensors: not a safetensors file: this looks like a PyTorch "
        ".pt checkpoint (legacy pickle)" +
            Fix);
  // A plausible header length that happens to start like pickle is read
  // as a header (0x0280 = 640 bytes).
  std::string Header = "{}" + std::string(638, ' ');
  std::string Plausible = std::string("\x80\x02\0\0\0\0\0\0", 8) + Header;
  CHECK(parseError(Plausible) == "");
  // Lengths past the file: not safetensors, or cut short.
  CHECK(parseError(std::string("\x10\0\0\0\0\0\0\0{}", 10)) ==
        "m.safetensors: header length 16 exceeds file size 10: not a "
        "safetensors file, or a truncated one");
}

TEST_CASE("safetensors rejects headers that are not JSON objects",
          "[safetensors]") {
  CHECK_THAT(parseError(st("{\"x\":")), Contains("header is not valid JSON"));
  CHECK_THAT(parseError(st("")), Contains("header is not valid JSON"));
  CHECK_THAT(parseError(st("{} trailing")),
             Contains("header is not valid JSON"));
  CHECK_THAT(parseError(st("{\"\xff\":1}")),
             Contains("header is not valid JSON"));
  CHECK_THAT(parseError(st("[1,2]")), Contains("header is not a JSON object"));
  CHECK_THAT(parseError(st(one("[]"))),
             Contains("entry for tensor 'x' is not an object"));
}

TEST_CASE("safetensors rejects unsupported dtypes", "[safetensors]") {
  for (const char *DT : {"F16", "BF16", "F64", "BOOL", "U16", "WHAT"}) {
    std::string Entry = std::string("{\"dtype\":\"") + DT +
                        "\",\"shape\":[],\"data_offsets\":[0,0]}";
    CHECK_THAT(parseError(st(one(Entry))),
               Contains(std::string("unsupported dtype '") + DT +
                        "' for tensor 'x' (supported: F32, I8, U8, I32, "
                        "I64)"));
  }
  CHECK_THAT(
      parseError(st(one("{\"dtype\":4,\"shape\":[],\"data_offsets\":[0,0]}"))),
      Contains("dtype of tensor 'x' is not a string"));
}

TEST_CASE("safetensors rejects missing entry fields", "[safetensors]") {
  CHECK_THAT(parseError(st(one("{\"shape\":[],\"data_offsets\":[0,4]}"))),
             Contains("tensor 'x' has no 'dtype'"));
  CHECK_THAT(parseError(st(one("{\"dtype\":\"F32\",\"data_offsets\":[0,4]}"))),
             Contains("tensor 'x' has no 'shape'"));
  CHECK_THAT(parseError(st(one("{\"dtype\":\"F32\",\"shape\":[]}"))),
             Contains("tensor 'x' has no 'data_offsets'"));
}

TEST_CASE("safetensors rejects bad shapes", "[safetensors]") {
  auto WithShape = [](llvm::StringRef Shape) {
    return st(one("{\"dtype\":\"U8\",\"shape\":" + Shape.str() +
                  ",\"data_offsets\":[0,0]}"));
  };
  const char *Msg = "shape of tensor 'x' is not a list of non-negative "
                    "integers";
  CHECK_THAT(parseError(WithShape("3")), Contains(Msg));
  CHECK_THAT(parseError(WithShape("[2,-1]")), Contains(Msg));
  CHECK_THAT(parseError(WithShape("[2.0]")), Contains(Msg));
  CHECK_THAT(parseError(WithShape("[\"2\"]")), Contains(Msg));
  CHECK_THAT(parseError(WithShape("[18446744073709551615]")), Contains(Msg));
  CHECK_THAT(parseError(WithShape("[4294967296,4294967296]")),
             Contains("tensor 'x': shape [4294967296,4294967296] has too many "
                      "elements"));
}

TEST_CASE("safetensors rejects bad data offsets", "[safetensors]") {
  auto WithOffsets = [](llvm::StringRef Offsets, llvm::StringRef Data) {
    return st(one("{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":" +
                  Offsets.str() + "}"),
              Data);
  };
  std::string Eight(8, '\0');
  const char *Msg = "data_offsets of tensor 'x' is not a list of two "
                    "non-negative integers";
  CHECK_THAT(parseError(WithOffsets("[0]", Eight)), Contains(Msg));
  CHECK_THAT(parseError(WithOffsets("[0,8,8]", Eight)), Contains(Msg));
  CHECK_THAT(parseError(WithOffsets("[-1,7]", Eight)), Contains(Msg));
  CHECK_THAT(parseError(WithOffsets("{\"a\":0}", Eight)), Contains(Msg));
  CHECK_THAT(parseError(WithOffsets("[8,0]", Eight)),
             Contains("data_offsets of tensor 'x' are reversed: 8 > 0"));
  CHECK_THAT(parseError(WithOffsets("[0,16]", Eight)),
             Contains("data_offsets [0,16] of tensor 'x' exceed the data "
                      "buffer of 8 bytes"));
  CHECK_THAT(parseError(WithOffsets("[0,4]", Eight)),
             Contains("tensor 'x' has 4 bytes of data but dtype F32 and shape "
                      "[2] need 8"));
}

TEST_CASE("safetensors rejects overlaps, gaps and unused bytes",
          "[safetensors]") {
  auto Entry = [](const char *Name, llvm::StringRef Offsets) {
    return std::string("\"") + Name +
           "\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":" +
           Offsets.str() + "}";
  };
  std::string Data(12, 'd');
  CHECK_THAT(
      parseError(st("{" + Entry("a", "[0,4]") + "," + Entry("b", "[2,6]") + "}",
                    Data.substr(0, 6))),
      Contains("tensors 'a' and 'b' overlap in the data buffer"));
  CHECK_THAT(
      parseError(st(
          "{" + Entry("a", "[0,4]") + "," + Entry("b", "[8,12]") + "}", Data)),
      Contains("data buffer has 4 bytes not covered by any tensor (at "
               "offset 4)"));
  CHECK_THAT(parseError(st("{" + Entry("a", "[0,4]") + "}", Data)),
             Contains("data buffer has 8 bytes not covered by any tensor (at "
                      "offset 4)"));
  CHECK_THAT(parseError(st("{}", "x")),
             Contains("data buffer has 1 bytes not covered by any tensor"));
  // Zero-sized tensors may share an offset.
  std::string Zero =
      "\"z\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[4,4]}";
  CHECK(parseOk(st("{" + Entry("a", "[0,4]") + "," + Zero + "," +
                       Entry("b", "[4,8]") + "}",
                   Data.substr(0, 8)))
            .Tensors.size() == 3);
}

TEST_CASE("safetensors rejects bad metadata", "[safetensors]") {
  CHECK_THAT(parseError(st("{\"__metadata__\":[]}")),
             Contains("__metadata__ is not an object"));
  CHECK_THAT(parseError(st("{\"__metadata__\":{\"epoch\":3}}")),
             Contains("__metadata__ value for 'epoch' is not a string"));
  SafetensorsFile F = parseOk(st("{\"__metadata__\":{\"a\":\"b\"}}"));
  CHECK(F.Metadata.at("a") == "b");
}

TEST_CASE("safetensors rejects duplicate keys", "[safetensors]") {
  std::string E = "{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}";
  CHECK_THAT(parseError(st("{\"x\":" + E + ",\"x\":" + E + "}")),
             Contains("duplicate tensor name 'x'"));
  CHECK_THAT(
      parseError(st(one("{\"dtype\":\"U8\",\"dtype\":\"F32\",\"shape\":[0],"
                        "\"data_offsets\":[0,0]}"))),
      Contains("duplicate key 'dtype' in entry 'x'"));
  CHECK_THAT(parseError(st("{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}")),
             Contains("duplicate key 'k' in entry '__metadata__'"));
}
