//===- Base64.h - RFC 4648 base64 for tensor data in JSON -------*- C++ -*-===//
//
// Private to the IR library. Decoding is strict (padding required, no
// whitespace, unused bits zero) so that every byte string has exactly one
// encoding and load -> save stays byte-identical.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_LIB_IR_BASE64_H
#define QFX_LIB_IR_BASE64_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <string>

namespace qfx {

/// Encodes \p Bytes with the standard alphabet and '=' padding.
std::string encodeBase64(llvm::StringRef Bytes);

/// Decodes canonical base64 as encodeBase64 writes it; the error says what
/// is wrong and at which character offset.
llvm::Expected<std::string> decodeBase64(llvm::StringRef Text);

} // namespace qfx

#endif // QFX_LIB_IR_BASE64_H
