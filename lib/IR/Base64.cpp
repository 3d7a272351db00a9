//===- Base64.cpp - RFC 4648 base64 for tensor data in JSON ---------------===//

#include "Base64.h"
#include "qfx/Support/Error.h"

#include <cctype>
#include <cstdint>

using namespace llvm;

namespace qfx {

static const char Alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string encodeBase64(StringRef Bytes) {
  std::string Out;
  Out.reserve((Bytes.size() + 2) / 3 * 4);
  size_t I = 0;
  for (; I + 3 <= Bytes.size(); I += 3) {
    uint32_t V = uint32_t(uint8_t(Bytes[I])) << 16 |
                 uint32_t(uint8_t(Bytes[I + 1])) << 8 | uint8_t(Bytes[I + 2]);
    Out += Alphabet[V >> 18 & 63];
    Out += Alphabet[V >> 12 & 63];
    Out += Alphabet[V >> 6 & 63];
    Out += Alphabet[V & 63];
  }
  size_t Rest = Bytes.size() - I;
  if (Rest == 0)
    return Out;
  uint32_t V = uint32_t(uint8_t(Bytes[I])) << 16;
  if (Rest == 2)
    V |= uint32_t(uint8_t(Bytes[I + 1])) << 8;
  Out += Alphabet[V >> 18 & 63];
  Out += Alphabet[V >> 12 & 63];
  Out += Rest == 2 ? Alphabet[V >> 6 & 63] : '=';
  Out += '=';
  return Out;
}

/// The 6-bit value of an alphabet character, or -1.
static int digitValue(char C) {
  if (C >= 'A' && C <= 'Z')
    return C - 'A';
  if (C >= 'a' && C <= 'z')
    return C - 'a' + 26;
  if (C >= '0' && C <= '9')
    return C - '0' + 52;
  if (C == '+')
    return 62;
  if (C == '/')
    return 63;
  return -1;
}

/// Describes character \p C for a message: printable ones quoted, others
/// as a byte value.
static std::string describeChar(char C) {
  if (std::isprint(static_cast<unsigned char>(C)))
    return std::string("'") + C + "'";
  return "byte " + std::to_string(static_cast<unsigned char>(C));
}

Expected<std::string> decodeBase64(StringRef Text) {
  if (Text.size() % 4 != 0)
    return makeError("invalid base64: length " + Twine(Text.size()) +
                     " is not a multiple of 4");
  size_t Pad = 0;
  if (Text.endswith("=="))
    Pad = 2;
  else if (Text.endswith("="))
    Pad = 1;
  std::string Out;
  Out.reserve(Text.size() / 4 * 3);
  uint32_t Acc = 0;
  for (size_t I = 0, E = Text.size() - Pad; I < E; ++I) {
    int D = digitValue(Text[I]);
    if (D < 0)
      return makeError("invalid base64: unexpected " + describeChar(Text[I]) +
                       " at offset " + Twine(I));
    Acc = Acc << 6 | uint32_t(D);
    if (I % 4 == 3) {
      Out += char(Acc >> 16 & 255);
      Out += char(Acc >> 8 & 255);
      Out += char(Acc & 255);
      Acc = 0;
    }
  }
  if (Pad == 0)
    return Out;
  // The last quantum holds 2 (one '=' of padding) or 1 (two) bytes; the
  // bits below them must be zero or two texts would decode alike.
  uint32_t UnusedMask = Pad == 1 ? 0x3 : 0xF;
  if (Acc & UnusedMask)
    return makeError("invalid base64: non-zero padding bits at offset " +
                     Twine(Text.size() - Pad - 1));
  if (Pad == 1) {
    Out += char(Acc >> 10 & 255);
    Out += char(Acc >> 2 & 255);
  } else {
    Out += char(Acc >> 4 & 255);
  }
  return Out;
}

} // namespace qfx
