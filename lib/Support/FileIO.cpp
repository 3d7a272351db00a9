//===- FileIO.cpp - Whole-file reads and atomic writes --------------------===//

#include "qfx/Support/FileIO.h"
#include "qfx/Support/Error.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/raw_ostream.h"

using namespace llvm;

namespace qfx {

/// The OS reason carried by \p E, consuming it.
static std::string reason(Error E) {
  return errorToErrorCode(std::move(E)).message();
}

/// Reads everything from \p FD into \p Out, growing it as needed; the size
/// hint only saves reallocations, so a file that changes size is still read
/// correctly.
static Error readAll(sys::fs::file_t FD, size_t SizeHint, std::string &Out) {
  size_t Used = 0;
  Out.resize(std::max<size_t>(SizeHint + 1, 4096));
  for (;;) {
    if (Used == Out.size())
      Out.resize(Out.size() * 2);
    MutableArrayRef<char> Chunk(&Out[Used], Out.size() - Used);
    Expected<size_t> Got = sys::fs::readNativeFile(FD, Chunk);
    if (!Got)
      return Got.takeError();
    if (*Got == 0)
      break;
    Used += *Got;
  }
  Out.resize(Used);
  return Error::success();
}

Expected<std::string> readFile(StringRef Path) {
  Expected<sys::fs::file_t> FD = sys::fs::openNativeFileForRead(Path);
  if (!FD)
    return fileError(Path, "cannot open: " + reason(FD.takeError()));
  sys::fs::file_status Status;
  size_t SizeHint = 0;
  if (!sys::fs::status(*FD, Status))
    SizeHint = Status.getSize();
  std::string Bytes;
  Error E = readAll(*FD, SizeHint, Bytes);
  sys::fs::closeFile(*FD);
  if (E)
    return fileError(Path, "cannot read: " + reason(std::move(E)));
  return Bytes;
}

/// Writes \p Bytes to the open descriptor \p FD and closes it.
static std::error_code writeAndClose(int FD, StringRef Bytes) {
  raw_fd_ostream OS(FD, /*shouldClose=*/true);
  OS << Bytes;
  OS.close();
  std::error_code EC = OS.error();
  // raw_fd_ostream aborts on destruction with an unchecked error.
  OS.clear_error();
  return EC;
}

Error writeFileAtomically(StringRef Path, StringRef Bytes) {
  // The temporary lives next to the target so that the rename cannot cross
  // file systems and is atomic.
  int FD = -1;
  SmallString<128> TmpPath;
  if (std::error_code EC =
          sys::fs::createUniqueFile(Path + ".tmp-%%%%%%", FD, TmpPath))
    return fileError(Path, "cannot create temporary file: " + EC.message());
  if (std::error_code EC = writeAndClose(FD, Bytes)) {
    sys::fs::remove(TmpPath);
    return fileError(Path, "cannot write: " + EC.message());
  }
  if (std::error_code EC = sys::fs::rename(TmpPath, Path)) {
    sys::fs::remove(TmpPath);
    return fileError(Path, "cannot rename temporary file into place: " +
                               EC.message());
  }
  return Error::success();
}

} // namespace qfx
