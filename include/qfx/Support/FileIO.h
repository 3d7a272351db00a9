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
#include "llvm/Support/FileSystem.h"

#include <string>

namespace qfx {

/// Reads the whole file; the error names the file and the OS reason.
llvm::Expected<std::string> readFile(llvm::StringRef Path);

/// How writeFileAtomically treats an output path of a given file type.
enum class OutputKind {
  /// Absent or a regular file: written to a temporary, renamed into place.
  Replace,
  /// A character device or FIFO: written in place, never replaced.
  WriteThrough,
  /// A directory, block device, socket...: refused with an error.
  Refuse,
};

/// The treatment of an output path whose (link-resolved) type is \p T.
OutputKind classifyOutput(llvm::sys::fs::file_type T);

/// Writes \p Bytes to \p Path. Symbolic links are followed and the file
/// they lead to is written. A regular (or absent) target gets a temporary
/// file in its directory that is renamed over it: on failure nothing is left
/// at the target (an existing file there is untouched) and no temporary
/// remains. A character device or FIFO is written in place, never replaced;
/// any other kind of file is refused.
llvm::Error writeFileAtomically(llvm::StringRef Path, llvm::StringRef Bytes);

} // namespace qfx

#endif // QFX_SUPPORT_FILEIO_H
