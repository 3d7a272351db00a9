//===- Error.h - Helpers for user-facing llvm::Error values -----*- C++ -*-===//
//
// Errors users can cause travel as llvm::Error/Expected. These helpers build
// them with a location prefix ("file: ", "file:line:col: ", "node 'x': ").
// Messages start lower-case and have no final period.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_SUPPORT_ERROR_H
#define QFX_SUPPORT_ERROR_H

#include "llvm/ADT/StringRef.h"
#include "llvm/ADT/Twine.h"
#include "llvm/Support/Error.h"

#include <string>

namespace qfx {

/// An error with message \p Msg.
llvm::Error makeError(const llvm::Twine &Msg);

/// An error located in a file: "<File>: <Msg>".
llvm::Error fileError(llvm::StringRef File, const llvm::Twine &Msg);

/// An error at a position in a text buffer: "<File>:<Line>:<Col>: <Msg>".
llvm::Error locatedError(llvm::StringRef File, unsigned Line, unsigned Col,
                         const llvm::Twine &Msg);

/// Prefixes every message of \p E with "<Prefix>: " (used to add the file
/// name to errors produced by in-memory parsers).
llvm::Error prefixError(llvm::Error E, llvm::StringRef Prefix);

/// Consumes \p E and returns its message (all messages joined by newlines).
std::string errorToString(llvm::Error E);

} // namespace qfx

#endif // QFX_SUPPORT_ERROR_H
