//===- FileIO.cpp - Whole-file reads and atomic writes --------------------===//

#include "qfx/Support/FileIO.h"
#include "qfx/Support/Error.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <cerrno>
#include <fcntl.h>
#include <unistd.h>

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

OutputKind classifyOutput(sys::fs::file_type T) {
  switch (T) {
  case sys::fs::file_type::file_not_found:
  case sys::fs::file_type::regular_file:
    return OutputKind::Replace;
  case sys::fs::file_type::character_file:
  case sys::fs::file_type::fifo_file:
    return OutputKind::WriteThrough;
  default:
    return OutputKind::Refuse;
  }
}

/// Why a path of type \p T cannot be written.
static const char *refusal(sys::fs::file_type T) {
  switch (T) {
  case sys::fs::file_type::directory_file:
    return "is a directory";
  case sys::fs::file_type::block_file:
    return "is a block device";
  case sys::fs::file_type::socket_file:
    return "is a socket";
  default:
    return "is not a regular file";
  }
}

/// Follows \p Path through symbolic links (also dangling ones, whose target
/// the write creates) to the path that is really written.
static Expected<std::string> resolveLinks(StringRef Path) {
  std::string Cur = Path.str();
  for (int Hops = 0; Hops < 40; ++Hops) {
    sys::fs::file_status St;
    if (sys::fs::status(Cur, St, /*Follow=*/false) ||
        St.type() != sys::fs::file_type::symlink_file)
      return Cur;
    char Buf[4096];
    ssize_t N = ::readlink(Cur.c_str(), Buf, sizeof(Buf));
    if (N < 0 || N == ssize_t(sizeof(Buf)))
      return fileError(Path, "cannot read symbolic link '" + Cur + "'");
    StringRef Target(Buf, static_cast<size_t>(N));
    if (sys::path::is_absolute(Target)) {
      Cur = Target.str();
    } else {
      SmallString<256> Next(sys::path::parent_path(Cur));
      sys::path::append(Next, Target);
      Cur = std::string(Next);
    }
  }
  return fileError(Path, "too many levels of symbolic links");
}

/// Writes \p Bytes into the existing device or FIFO \p Path, as `> Path`
/// in a shell does; such a target cannot be replaced atomically.
static Error writeThrough(StringRef Path, StringRef Target, StringRef Bytes) {
  int FD = ::open(Target.str().c_str(), O_WRONLY | O_CLOEXEC);
  if (FD < 0)
    return fileError(
        Path, "cannot open: " +
                  std::error_code(errno, std::generic_category()).message());
  if (std::error_code EC = writeAndClose(FD, Bytes))
    return fileError(Path, "cannot write: " + EC.message());
  return Error::success();
}

Error writeFileAtomically(StringRef Path, StringRef Bytes) {
  Expected<std::string> Target = resolveLinks(Path);
  if (!Target)
    return Target.takeError();
  sys::fs::file_status St;
  sys::fs::file_type Type = sys::fs::file_type::file_not_found;
  if (!sys::fs::status(*Target, St, /*Follow=*/false))
    Type = St.type();
  switch (classifyOutput(Type)) {
  case OutputKind::WriteThrough:
    return writeThrough(Path, *Target, Bytes);
  case OutputKind::Refuse:
    return fileError(Path, Twine("cannot write: ") + refusal(Type));
  case OutputKind::Replace:
    break;
  }
  // The temporary lives next to the target (not next to a link naming it)
  // so that the rename cannot cross file systems and is atomic.
  int FD = -1;
  SmallString<128> TmpPath;
  if (std::error_code EC =
          sys::fs::createUniqueFile(*Target + ".tmp-%%%%%%", FD, TmpPath))
    return fileError(Path, "cannot create temporary file: " + EC.message());
  // A replaced file keeps its permissions.
  if (Type == sys::fs::file_type::regular_file)
    sys::fs::setPermissions(FD, St.permissions());
  if (std::error_code EC = writeAndClose(FD, Bytes)) {
    sys::fs::remove(TmpPath);
    return fileError(Path, "cannot write: " + EC.message());
  }
  if (std::error_code EC = sys::fs::rename(TmpPath, *Target)) {
    sys::fs::remove(TmpPath);
    return fileError(Path, "cannot rename temporary file into place: " +
                               EC.message());
  }
  return Error::success();
}

} // namespace qfx
