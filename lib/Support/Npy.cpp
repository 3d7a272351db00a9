//===- Npy.cpp - NumPy .npy reader and writer -----------------------------===//
//
// The format: "\x93NUMPY", a major and minor version byte, the header length
// (u16 for 1.0, u32 for 2.0 and 3.0), a Python dict literal describing dtype,
// order and shape, then the raw array bytes.
//
//===----------------------------------------------------------------------===//

#include "qfx/Support/Npy.h"
#include "qfx/Support/Error.h"
#include "qfx/Support/FileIO.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/Endian.h"
#include "llvm/Support/ErrorHandling.h"
#include "llvm/Support/SwapByteOrder.h"

#include <cstring>
#include <map>

using namespace llvm;

namespace qfx {

// Tensor storage is little-endian because the host is; supporting a
// big-endian host would need byte swaps on every read and write.
static_assert(sys::IsLittleEndianHost, "qfx assumes a little-endian host");

namespace {

/// The magic string every .npy file starts with.
const StringRef NpyMagic("\x93NUMPY", 6);

/// The descr strings accepted on input (numpy writes the first of each).
const std::pair<StringRef, DType> DescrTable[] = {
    {"<f4", DType::F32}, {"|i1", DType::S8},  {"i1", DType::S8},
    {"<i1", DType::S8},  {"|u1", DType::U8},  {"u1", DType::U8},
    {"<u1", DType::U8},  {"<i4", DType::S32}, {"<i8", DType::S64}};

/// A value of the header dict: the subset of Python literals .npy uses.
struct PyValue {
  enum Kind { Str, Bool, Tuple } K = Str;
  std::string S;
  bool B = false;
  Shape Ints;
};

using PyDict = std::map<std::string, PyValue>;

/// Parses the header, a Python dict literal such as
/// {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
/// Keys may come in any order and use either quote; anything beyond the
/// literals .npy needs (strings, True/False, tuples of ints) is rejected.
class HeaderParser {
public:
  explicit HeaderParser(StringRef Text) : Text(Text) {}
  Error parse(PyDict &Out);

private:
  StringRef Text;
  size_t Pos = 0;

  char peek() const { return Pos < Text.size() ? Text[Pos] : '\0'; }
  bool atEnd() const { return Pos >= Text.size(); }
  void skipSpace();
  bool consume(char C);
  bool consumeWord(StringRef W);
  Error fail(const Twine &Msg) const;
  Error parseEntry(PyDict &Out);
  Error parseString(std::string &Out, StringRef What);
  Error parseValue(PyValue &V, StringRef Key);
  Error parseTuple(Shape &Out, StringRef Key);
  Error parseInt(int64_t &Out, StringRef Key);
};

} // namespace

void HeaderParser::skipSpace() {
  while (!atEnd() &&
         (peek() == ' ' || peek() == '\t' || peek() == '\n' || peek() == '\r'))
    ++Pos;
}

bool HeaderParser::consume(char C) {
  if (atEnd() || peek() != C)
    return false;
  ++Pos;
  return true;
}

bool HeaderParser::consumeWord(StringRef W) {
  StringRef Rest = Text.substr(Pos);
  if (!Rest.startswith(W))
    return false;
  // "Falsey" is not False.
  if (Rest.size() > W.size() &&
      (isAlnum(Rest[W.size()]) || Rest[W.size()] == '_'))
    return false;
  Pos += W.size();
  return true;
}

Error HeaderParser::fail(const Twine &Msg) const {
  return makeError("malformed header: " + Msg + " (at offset " + Twine(Pos) +
                   " of the header dict)");
}

Error HeaderParser::parse(PyDict &Out) {
  skipSpace();
  if (!consume('{'))
    return fail("expected '{' at the start of the header dict");
  for (;;) {
    skipSpace();
    if (consume('}'))
      break;
    if (Error E = parseEntry(Out))
      return E;
    skipSpace();
    if (consume(','))
      continue;
    if (consume('}'))
      break;
    return fail("expected ',' or '}' after an entry");
  }
  skipSpace();
  if (!atEnd())
    return fail("unexpected text after the closing '}'");
  return Error::success();
}

Error HeaderParser::parseEntry(PyDict &Out) {
  std::string Key;
  if (Error E = parseString(Key, "a quoted key"))
    return E;
  skipSpace();
  if (!consume(':'))
    return fail("expected ':' after key '" + Key + "'");
  skipSpace();
  PyValue V;
  if (Error E = parseValue(V, Key))
    return E;
  if (!Out.emplace(Key, std::move(V)).second)
    return fail("duplicate key '" + Key + "'");
  return Error::success();
}

Error HeaderParser::parseString(std::string &Out, StringRef What) {
  char Quote = peek();
  if (Quote != '\'' && Quote != '"')
    return fail("expected " + What);
  ++Pos;
  while (!atEnd() && peek() != Quote) {
    if (peek() == '\\') {
      // Only escapes that stand for themselves; descr strings need no more.
      ++Pos;
      if (atEnd() || (peek() != '\\' && peek() != '\'' && peek() != '"'))
        return fail("unsupported escape sequence in a string");
    }
    Out += Text[Pos++];
  }
  if (!consume(Quote))
    return fail("unterminated string");
  return Error::success();
}

Error HeaderParser::parseValue(PyValue &V, StringRef Key) {
  if (peek() == '\'' || peek() == '"') {
    V.K = PyValue::Str;
    return parseString(V.S, "a string");
  }
  for (bool B : {true, false}) {
    if (consumeWord(B ? "True" : "False")) {
      V.K = PyValue::Bool;
      V.B = B;
      return Error::success();
    }
  }
  if (peek() == '(') {
    V.K = PyValue::Tuple;
    return parseTuple(V.Ints, Key);
  }
  return fail("unsupported value for key '" + Key +
              "' (expected a string, True, False or a tuple)");
}

Error HeaderParser::parseTuple(Shape &Out, StringRef Key) {
  consume('(');
  bool TrailingComma = false;
  for (;;) {
    skipSpace();
    if (consume(')'))
      break;
    int64_t N = 0;
    if (Error E = parseInt(N, Key))
      return E;
    Out.push_back(N);
    skipSpace();
    TrailingComma = consume(',');
    if (TrailingComma)
      continue;
    if (consume(')'))
      break;
    return fail("expected ',' or ')' in the tuple of '" + Key + "'");
  }
  // In Python "(5)" is the integer 5, not a tuple.
  if (Out.size() == 1 && !TrailingComma)
    return fail("'" + Key + "' is a parenthesized integer, not a tuple");
  return Error::success();
}

Error HeaderParser::parseInt(int64_t &Out, StringRef Key) {
  bool Negative = consume('-');
  if (!isDigit(peek()))
    return fail("expected an integer in the tuple of '" + Key + "'");
  uint64_t N = 0;
  while (isDigit(peek())) {
    N = N * 10 + (peek() - '0');
    if (N > uint64_t(INT64_MAX))
      return fail("integer too large in the tuple of '" + Key + "'");
    ++Pos;
  }
  consume('L'); // Python 2 wrote long integers as "3L".
  Out = Negative ? -int64_t(N) : int64_t(N);
  return Error::success();
}

/// Whether \p D is numpy's float64 (its default float dtype).
static bool isFloat64(StringRef D) { return D == "<f8" || D == "f8"; }

/// Maps a descr string to a dtype, explaining why it is rejected otherwise.
static Expected<DType> dtypeFromDescr(StringRef D) {
  for (const auto &[Name, T] : DescrTable)
    if (D == Name)
      return T;
  if (isFloat64(D))
    return makeError("dtype float64 (" + D +
                     "), expected float32: save with x.astype(np.float32)");
  if (D.startswith(">"))
    return makeError("big-endian dtype '" + D +
                     "' is not supported; convert with arr.astype('<" +
                     D.drop_front() + "')");
  return makeError("unsupported dtype '" + D +
                   "' (supported: <f4, |i1, |u1, <i4, <i8)");
}

/// Finds \p Key in \p D with kind \p K; \p KindName is for the message.
static Expected<const PyValue *> lookup(const PyDict &D, StringRef Key,
                                        PyValue::Kind K, StringRef KindName) {
  auto It = D.find(std::string(Key));
  if (It == D.end())
    return makeError("header has no '" + Key + "' key");
  if (It->second.K != K)
    return makeError("header value of '" + Key + "' must be " + KindName);
  return &It->second;
}

/// What the header says about the array.
struct ArrayInfo {
  DType DT;
  Shape Dims;
  /// The data is float64, to be narrowed to DT (f32).
  bool FromF64 = false;
};

/// Interprets the parsed header dict.
static Expected<ArrayInfo> interpretHeader(const PyDict &D, bool F64ToF32) {
  for (const auto &KV : D)
    if (KV.first != "descr" && KV.first != "fortran_order" &&
        KV.first != "shape")
      return makeError("unexpected key '" + KV.first + "' in header");
  auto Descr = lookup(D, "descr", PyValue::Str, "a string");
  if (!Descr)
    return Descr.takeError();
  auto Fortran = lookup(D, "fortran_order", PyValue::Bool, "True or False");
  if (!Fortran)
    return Fortran.takeError();
  auto Dims = lookup(D, "shape", PyValue::Tuple, "a tuple");
  if (!Dims)
    return Dims.takeError();
  bool FromF64 = F64ToF32 && isFloat64((*Descr)->S);
  Expected<DType> DT = FromF64 ? DType::F32 : dtypeFromDescr((*Descr)->S);
  if (!DT)
    return DT.takeError();
  if ((*Fortran)->B)
    return makeError("fortran-order arrays are not supported; save with "
                     "np.ascontiguousarray");
  return ArrayInfo{*DT, (*Dims)->Ints, FromF64};
}

/// Checks the preamble and returns the header text; sets \p DataStart to the
/// offset of the array bytes.
static Expected<StringRef> splitHeader(StringRef Bytes, size_t &DataStart) {
  if (Bytes.size() < 8 && NpyMagic.startswith(Bytes.take_front(6)))
    return makeError("truncated header: file has only " + Twine(Bytes.size()) +
                     " bytes");
  if (!Bytes.startswith(NpyMagic))
    return makeError("not a .npy file (bad magic)");
  unsigned Major = uint8_t(Bytes[6]), Minor = uint8_t(Bytes[7]);
  if (Major < 1 || Major > 3 || Minor != 0)
    return makeError("unsupported .npy format version " + Twine(Major) + "." +
                     Twine(Minor) + " (supported: 1.0, 2.0, 3.0)");
  size_t Pre = Major == 1 ? 10 : 12;
  if (Bytes.size() < Pre)
    return makeError("truncated header: file has only " + Twine(Bytes.size()) +
                     " bytes");
  const char *LenPtr = Bytes.data() + 8;
  size_t HLen = Major == 1 ? support::endian::read16le(LenPtr)
                           : support::endian::read32le(LenPtr);
  if (Bytes.size() - Pre < HLen)
    return makeError("truncated header: header length is " + Twine(HLen) +
                     " bytes but only " + Twine(Bytes.size() - Pre) +
                     " follow");
  DataStart = Pre + HLen;
  return Bytes.substr(Pre, HLen);
}

/// parseNpy without the name prefix on errors.
static Expected<Tensor> parseNpyUnprefixed(StringRef Bytes, bool F64ToF32) {
  size_t DataStart = 0;
  Expected<StringRef> Header = splitHeader(Bytes, DataStart);
  if (!Header)
    return Header.takeError();
  PyDict Dict;
  if (Error E = HeaderParser(*Header).parse(Dict))
    return E;
  Expected<ArrayInfo> Info = interpretHeader(Dict, F64ToF32);
  if (!Info)
    return Info.takeError();
  Expected<int64_t> N = checkedNumElements(Info->Dims);
  if (!N)
    return N.takeError();
  uint64_t Want =
      uint64_t(*N) * (Info->FromF64 ? sizeof(double) : dtypeSize(Info->DT));
  uint64_t Have = Bytes.size() - DataStart;
  if (Have < Want)
    return makeError("data is truncated: expected " + Twine(Want) +
                     " bytes, found " + Twine(Have));
  if (Have > Want)
    return makeError("file has " + Twine(Have - Want) +
                     " trailing bytes after the array data");
  Tensor T(Info->DT, Info->Dims);
  if (Info->FromF64) {
    // Round to nearest, as x.astype(np.float32) does.
    float *Out = T.data<float>();
    for (int64_t I = 0; I < *N; ++I) {
      double D;
      std::memcpy(&D, Bytes.data() + DataStart + I * sizeof(double),
                  sizeof(double));
      Out[I] = static_cast<float>(D);
    }
    return T;
  }
  if (Want)
    std::memcpy(T.rawData(), Bytes.data() + DataStart, Want);
  return T;
}

Expected<Tensor> parseNpy(StringRef Bytes, StringRef Name) {
  Expected<Tensor> T = parseNpyUnprefixed(Bytes, /*F64ToF32=*/false);
  if (!T)
    return prefixError(T.takeError(), Name);
  return T;
}

Expected<Tensor> parseNpyInput(StringRef Bytes, StringRef Name) {
  Expected<Tensor> T = parseNpyUnprefixed(Bytes, /*F64ToF32=*/true);
  if (!T)
    return prefixError(T.takeError(), Name);
  return T;
}

Expected<Tensor> readNpy(StringRef Path) {
  Expected<std::string> Bytes = readFile(Path);
  if (!Bytes)
    return Bytes.takeError();
  return parseNpy(*Bytes, Path);
}

Expected<Tensor> readNpyInput(StringRef Path) {
  Expected<std::string> Bytes = readFile(Path);
  if (!Bytes)
    return Bytes.takeError();
  return parseNpyInput(*Bytes, Path);
}

//===----------------------------------------------------------------------===//
// Writing
//===----------------------------------------------------------------------===//

/// The descr numpy writes for \p T.
static StringRef descrOf(DType T) {
  for (const auto &[Name, D] : DescrTable)
    if (D == T)
      return Name;
  llvm_unreachable("every dtype has a descr");
}

/// Python's repr of a tuple of ints: "()", "(5,)", "(2, 3)".
static std::string shapeRepr(ArrayRef<int64_t> S) {
  std::string R = "(";
  for (size_t I = 0; I < S.size(); ++I)
    R += (I ? ", " : "") + std::to_string(S[I]);
  return R + (S.size() == 1 ? ",)" : ")");
}

/// Prepends the preamble to \p Dict and pads it exactly as numpy 1.24 does:
/// spaces and a newline so that the data starts at a multiple of 64 bytes,
/// with at least one space.
static std::string wrapHeader(StringRef Dict, unsigned Major) {
  size_t Pre = Major == 1 ? 10 : 12;
  size_t HLen = Dict.size() + 1;
  size_t Pad = 64 - (Pre + HLen) % 64;
  std::string R(NpyMagic);
  R += char(Major);
  R += char(0);
  char Len[4];
  support::endian::write32le(Len, uint32_t(HLen + Pad));
  R.append(Len, Major == 1 ? 2 : 4);
  R += Dict;
  R.append(Pad, ' ');
  return R + "\n";
}

std::string encodeNpy(const Tensor &T) {
  std::string Dict =
      "{'descr': '" + descrOf(T.dtype()).str() +
      "', 'fortran_order': False, 'shape': " + shapeRepr(T.shape()) + ", }";
  // numpy leaves room for the first extent to grow to 21 digits so that the
  // header can be rewritten in place when appending.
  if (T.rank() > 0)
    Dict.append(std::max<int>(0, 21 - int(std::to_string(T.dim(0)).size())),
                ' ');
  // Version 1.0 stores the header length in 16 bits; like numpy, fall back
  // to 2.0 only when the padded header does not fit.
  std::string R = wrapHeader(Dict, 1);
  if (R.size() - 10 > 65535)
    R = wrapHeader(Dict, 2);
  if (T.byteSize())
    R.append(static_cast<const char *>(T.rawData()), T.byteSize());
  return R;
}

Error writeNpy(StringRef Path, const Tensor &T) {
  return writeFileAtomically(Path, encodeNpy(T));
}

} // namespace qfx
