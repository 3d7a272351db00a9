//===- JsonUtil.h - Shared helpers for reading JSON (private) ---*- C++ -*-===//
//
// Every JSON loader (graphs, qconfig files, safetensors headers) rejects
// duplicate keys and reports nlohmann's errors without its internal tags;
// this private header keeps that in one place. It includes json.hpp, so it
// must never be included from a public header.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_LIB_SUPPORT_JSONUTIL_H
#define QFX_LIB_SUPPORT_JSONUTIL_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <nlohmann/json.hpp>

#include <string>

namespace qfx {

/// nlohmann's exception message without its "[json.exception.<kind>.<id>] "
/// prefix, which means nothing to users.
std::string stripJsonExceptionTag(const char *What);

/// Parses \p Text (throwing nlohmann exceptions like json::parse); sets
/// \p DuplicateKey to the first key that appears twice in one object, which
/// nlohmann would otherwise silently collapse.
nlohmann::json parseJsonTrackingDuplicates(llvm::StringRef Text,
                                           std::string &DuplicateKey);

/// Parses a whole document, turning every parse failure into an error
/// "<Name>: not valid JSON ..." (with the byte position when known) and a
/// repeated key into "<Name>: <DuplicatePrefix>key 'k' appears twice in one
/// object".
llvm::Expected<nlohmann::json>
parseJsonDocument(llvm::StringRef Text, llvm::StringRef Name,
                  llvm::StringRef DuplicatePrefix);

} // namespace qfx

#endif // QFX_LIB_SUPPORT_JSONUTIL_H
