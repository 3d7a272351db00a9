//===- Safetensors.cpp - .safetensors reader and writer -------------------===//
//
// nlohmann/json is used only here; its exceptions never leave this file.
//
//===----------------------------------------------------------------------===//

#include "qfx/Support/Safetensors.h"

#include "JsonUtil.h"
#include "qfx/Support/Error.h"
#include "qfx/Support/FileIO.h"

#include "llvm/Support/Endian.h"
#include "llvm/Support/ErrorHandling.h"
#include "llvm/Support/SwapByteOrder.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <optional>
#include <set>
#include <vector>

using namespace llvm;
using json = nlohmann::json;

namespace qfx {

// Tensor storage is little-endian because the host is; see Npy.cpp.
static_assert(sys::IsLittleEndianHost, "qfx assumes a little-endian host");

namespace {

/// Supported dtypes by their safetensors names.
const std::pair<StringRef, DType> DTypeTable[] = {{"F32", DType::F32},
                                                  {"I8", DType::S8},
                                                  {"U8", DType::U8},
                                                  {"I32", DType::S32},
                                                  {"I64", DType::S64}};

/// The reference implementation refuses larger headers too.
constexpr uint64_t MaxHeaderLen = 100000000;

const char MetadataKey[] = "__metadata__";

/// A validated header entry whose bytes have not been copied yet.
struct Entry {
  std::string Name;
  DType DT;
  Shape Dims;
  uint64_t Begin, End;
};

} // namespace

/// Parses the header JSON. nlohmann keeps the last of duplicate keys, which
/// would silently drop a tensor, so a parser callback watches for them.
static Expected<json> parseHeaderJson(StringRef Text) {
  std::vector<std::set<std::string>> Open; // Keys seen per open object.
  std::string TopKey, Duplicate;
  auto Callback = [&](int, json::parse_event_t Ev, json &Parsed) {
    if (Ev == json::parse_event_t::object_start)
      Open.emplace_back();
    else if (Ev == json::parse_event_t::object_end && !Open.empty())
      Open.pop_back();
    else if (Ev == json::parse_event_t::key && !Open.empty()) {
      const std::string &K = Parsed.get_ref<const std::string &>();
      if (!Open.back().insert(K).second && Duplicate.empty())
        Duplicate = Open.size() == 1
                        ? "duplicate tensor name '" + K + "'"
                        : "duplicate key '" + K + "' in entry '" + TopKey + "'";
      if (Open.size() == 1)
        TopKey = K;
    }
    return true;
  };
  try {
    json J = json::parse(Text.begin(), Text.end(), Callback);
    if (!Duplicate.empty())
      return makeError(Duplicate);
    return J;
  } catch (const json::exception &E) {
    return makeError("header is not valid JSON: " +
                     stripJsonExceptionTag(E.what()));
  }
}

static Expected<DType> dtypeFromName(StringRef Name, StringRef Tensor) {
  for (const auto &[N, T] : DTypeTable)
    if (N == Name)
      return T;
  return makeError("unsupported dtype '" + Name + "' for tensor '" + Tensor +
                   "' (supported: F32, I8, U8, I32, I64)");
}

static StringRef nameOfDType(DType T) {
  for (const auto &[N, D] : DTypeTable)
    if (D == T)
      return N;
  llvm_unreachable("every dtype has a safetensors name");
}

/// True if \p V is a JSON integer in [0, INT64_MAX]; sets \p Out.
static bool getNonNegative(const json &V, uint64_t &Out) {
  if (!V.is_number_unsigned())
    return false; // Negative integers are stored as signed.
  Out = V.get<uint64_t>();
  return Out <= uint64_t(INT64_MAX);
}

static Error readShape(const json &V, StringRef Name, Shape &Out) {
  auto Bad = [&] {
    return makeError("shape of tensor '" + Name +
                     "' is not a list of non-negative integers");
  };
  if (!V.is_array())
    return Bad();
  for (const json &D : V) {
    uint64_t N;
    if (!getNonNegative(D, N))
      return Bad();
    Out.push_back(int64_t(N));
  }
  return Error::success();
}

static Error readOffsets(const json &V, StringRef Name, uint64_t &Begin,
                         uint64_t &End) {
  if (!V.is_array() || V.size() != 2 || !getNonNegative(V[0], Begin) ||
      !getNonNegative(V[1], End))
    return makeError("data_offsets of tensor '" + Name +
                     "' is not a list of two non-negative integers");
  if (Begin > End)
    return makeError("data_offsets of tensor '" + Name +
                     "' are reversed: " + Twine(Begin) + " > " + Twine(End));
  return Error::success();
}

/// The member \p Key of the entry of tensor \p Name.
static Expected<const json *> member(const json &V, const char *Key,
                                     StringRef Name) {
  auto It = V.find(Key);
  if (It == V.end())
    return makeError("tensor '" + Name + "' has no '" + Key + "'");
  return &*It;
}

/// Validates one tensor entry against a data buffer of \p BufSize bytes.
static Expected<Entry> readEntry(const std::string &Name, const json &V,
                                 uint64_t BufSize) {
  if (!V.is_object())
    return makeError("entry for tensor '" + Name + "' is not an object");
  Expected<const json *> DTV = member(V, "dtype", Name);
  Expected<const json *> ShapeV = member(V, "shape", Name);
  Expected<const json *> OffV = member(V, "data_offsets", Name);
  if (Error E = joinErrors(joinErrors(DTV.takeError(), ShapeV.takeError()),
                           OffV.takeError()))
    return E;
  if (!(*DTV)->is_string())
    return makeError("dtype of tensor '" + Name + "' is not a string");
  Entry En{Name, DType::F32, {}, 0, 0};
  Expected<DType> DT = dtypeFromName((*DTV)->get<std::string>(), Name);
  if (!DT)
    return DT.takeError();
  En.DT = *DT;
  if (Error E = readShape(**ShapeV, Name, En.Dims))
    return E;
  Expected<int64_t> N = checkedNumElements(En.Dims);
  if (!N)
    return prefixError(N.takeError(), "tensor '" + Name + "'");
  if (Error E = readOffsets(**OffV, Name, En.Begin, En.End))
    return E;
  if (En.End > BufSize)
    return makeError("data_offsets [" + Twine(En.Begin) + "," + Twine(En.End) +
                     "] of tensor '" + Name + "' exceed the data buffer of " +
                     Twine(BufSize) + " bytes");
  uint64_t Need = uint64_t(*N) * dtypeSize(En.DT);
  if (En.End - En.Begin != Need)
    return makeError("tensor '" + Name + "' has " + Twine(En.End - En.Begin) +
                     " bytes of data but dtype " + nameOfDType(En.DT) +
                     " and shape " + formatShape(En.Dims) + " need " +
                     Twine(Need));
  return En;
}

static Error readMetadata(const json &V,
                          std::map<std::string, std::string> &Out) {
  if (!V.is_object())
    return makeError("__metadata__ is not an object");
  for (auto It = V.begin(); It != V.end(); ++It) {
    if (!It.value().is_string())
      return makeError("__metadata__ value for '" + It.key() +
                       "' is not a string");
    Out[It.key()] = It.value().get<std::string>();
  }
  return Error::success();
}

/// Reads every entry of the header object.
static Error readHeader(const json &J, uint64_t BufSize,
                        std::map<std::string, std::string> &Metadata,
                        std::vector<Entry> &Entries) {
  if (!J.is_object())
    return makeError("header is not a JSON object");
  for (auto It = J.begin(); It != J.end(); ++It) {
    if (It.key() == MetadataKey) {
      if (Error E = readMetadata(It.value(), Metadata))
        return E;
      continue;
    }
    Expected<Entry> En = readEntry(It.key(), It.value(), BufSize);
    if (!En)
      return En.takeError();
    Entries.push_back(std::move(*En));
  }
  return Error::success();
}

/// Checks that the tensors tile the data buffer exactly: no overlaps, no
/// gaps, nothing left over (as the reference implementation requires).
static Error checkCoverage(std::vector<Entry> &Entries, uint64_t BufSize) {
  std::sort(Entries.begin(), Entries.end(), [](const Entry &A, const Entry &B) {
    return std::tie(A.Begin, A.End) < std::tie(B.Begin, B.End);
  });
  uint64_t Cursor = 0;
  const Entry *Prev = nullptr;
  for (const Entry &E : Entries) {
    if (E.Begin < Cursor)
      return makeError("tensors '" + Prev->Name + "' and '" + E.Name +
                       "' overlap in the data buffer");
    if (E.Begin > Cursor)
      break;
    Cursor = E.End;
    Prev = &E;
  }
  if (Cursor < BufSize) {
    // Find the end of the gap for the message.
    uint64_t GapEnd = BufSize;
    for (const Entry &E : Entries)
      if (E.Begin > Cursor)
        GapEnd = std::min(GapEnd, E.Begin);
    return makeError("data buffer has " + Twine(GapEnd - Cursor) +
                     " bytes not covered by any tensor (at offset " +
                     Twine(Cursor) + ")");
  }
  return Error::success();
}

/// What kind of PyTorch checkpoint \p Bytes starts like, if any:
/// torch.save's zip archive ("PK\\3\\4") or its legacy pickle (protocol 2 or
/// later: 0x80 then the protocol number).
static std::optional<StringRef> torchCheckpointKind(StringRef Bytes) {
  if (Bytes.startswith(StringRef("PK\x03\x04", 4)))
    return StringRef("zip archive");
  if (Bytes.size() >= 2 && static_cast<unsigned char>(Bytes[0]) == 0x80 &&
      Bytes[1] >= 2 && Bytes[1] <= 5)
    return StringRef("legacy pickle");
  return std::nullopt;
}

/// parseSafetensors without the name prefix on errors.
static Expected<SafetensorsFile> parseUnprefixed(StringRef Bytes) {
  if (Bytes.size() < 8)
    return makeError("file is too short: " + Twine(Bytes.size()) +
                     " bytes, a safetensors file starts with an 8-byte "
                     "header length");
  uint64_t N = support::endian::read64le(Bytes.data());
  bool Implausible = N > MaxHeaderLen || N > Bytes.size() - 8;
  // A PyTorch checkpoint is the usual mistake; its first bytes read as an
  // absurd header length, which says nothing useful. Only an implausible
  // length is checked, so no real header can be mistaken for one.
  if (Implausible)
    if (std::optional<StringRef> Kind = torchCheckpointKind(Bytes))
      return makeError("not a safetensors file: this looks like a PyTorch .pt "
                       "checkpoint (" +
                       *Kind +
                       "); save the state_dict with "
                       "safetensors.torch.save_file(model.state_dict(), "
                       "\"model.safetensors\")");
  if (N > MaxHeaderLen)
    return makeError("header length " + Twine(N) + " exceeds the limit of " +
                     Twine(MaxHeaderLen) +
                     " bytes: not a safetensors file, or a corrupt one");
  if (N > Bytes.size() - 8)
    return makeError("header length " + Twine(N) + " exceeds file size " +
                     Twine(Bytes.size()) +
                     ": not a safetensors file, or a truncated one");
  Expected<json> J = parseHeaderJson(Bytes.substr(8, N));
  if (!J)
    return J.takeError();
  StringRef Buffer = Bytes.substr(8 + N);
  SafetensorsFile F;
  std::vector<Entry> Entries;
  if (Error E = readHeader(*J, Buffer.size(), F.Metadata, Entries))
    return E;
  if (Error E = checkCoverage(Entries, Buffer.size()))
    return E;
  for (const Entry &En : Entries) {
    Tensor T(En.DT, En.Dims);
    if (T.byteSize())
      std::memcpy(T.rawData(), Buffer.data() + En.Begin, T.byteSize());
    F.Tensors.emplace(En.Name, std::move(T));
  }
  return F;
}

Expected<SafetensorsFile> parseSafetensors(StringRef Bytes, StringRef Name) {
  // Validation only uses checked accessors, but no nlohmann exception may
  // escape whatever the input.
  try {
    Expected<SafetensorsFile> F = parseUnprefixed(Bytes);
    if (!F)
      return prefixError(F.takeError(), Name);
    return F;
  } catch (const json::exception &E) {
    return fileError(Name,
                     "invalid header: " + stripJsonExceptionTag(E.what()));
  }
}

Expected<SafetensorsFile> readSafetensors(StringRef Path) {
  Expected<std::string> Bytes = readFile(Path);
  if (!Bytes)
    return Bytes.takeError();
  return parseSafetensors(*Bytes, Path);
}

//===----------------------------------------------------------------------===//
// Writing
//===----------------------------------------------------------------------===//

/// The header as compact JSON, tensors at contiguous offsets in name order.
static std::string headerJson(const SafetensorsFile &F) {
  json H = json::object();
  uint64_t Offset = 0;
  for (const auto &[Name, T] : F.Tensors) {
    json Dims = json::array();
    for (int64_t D : T.shape())
      Dims.push_back(D);
    json E = json::object();
    E["dtype"] = nameOfDType(T.dtype()).str();
    E["shape"] = std::move(Dims);
    E["data_offsets"] = json::array({Offset, Offset + T.byteSize()});
    H[Name] = std::move(E);
    Offset += T.byteSize();
  }
  if (!F.Metadata.empty())
    H[MetadataKey] = F.Metadata;
  // Names are arbitrary bytes; replacing invalid UTF-8 beats throwing.
  return H.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string encodeSafetensors(const SafetensorsFile &F) {
  std::string Header = headerJson(F);
  Header.append((8 - Header.size() % 8) % 8, ' ');
  std::string R(8, '\0');
  support::endian::write64le(&R[0], Header.size());
  R += Header;
  for (const auto &KV : F.Tensors)
    if (KV.second.byteSize())
      R.append(static_cast<const char *>(KV.second.rawData()),
               KV.second.byteSize());
  return R;
}

Error writeSafetensors(StringRef Path, const SafetensorsFile &F) {
  // A tensor with the reserved name would be read back as metadata.
  if (F.Tensors.count(MetadataKey))
    return fileError(Path, "tensor name '__metadata__' is reserved");
  return writeFileAtomically(Path, encodeSafetensors(F));
}

} // namespace qfx
