//===- FileIO.h - Whole-file reads and atomic writes ------------*- C++ -*-===//
//
// Every writer in qfx goes through writeFileAtomically so that a failed or
// interrupted write never leaves a half-written output behind.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_SUPPORT_FILEIO_H
#define QFX_SUPPORT_FILEIO_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <string>

namespace qfx {

/// Reads the whole file; the error names the file and the OS reason.
llvm::Expected<std::string> readFile(llvm::StringRef Path);

/// Writes \p Bytes to a temporary file in the directory of \p Path and
/// renames it over \p Path. On failure nothing is left at \p Path (an
/// existing file there is untouched) and no temporary remains.
llvm::Error writeFileAtomically(llvm::StringRef Path, llvm::StringRef Bytes);

} // namespace qfx

#endif // QFX_SUPPORT_FILEIO_H
