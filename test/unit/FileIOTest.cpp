// Unit tests for whole-file reads, atomic writes and the error helpers.
#include "TestUtil.h"

#include "qfx/Support/Error.h"
#include "qfx/Support/FileIO.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

using namespace qfx;
using Catch::Contains;
using Catch::StartsWith;
using testutil::errorOf;
using testutil::take;
using testutil::TempDir;

namespace {

/// The names of the entries of directory \p Dir.
std::vector<std::string> listDir(llvm::StringRef Dir) {
  std::vector<std::string> Names;
  std::error_code EC;
  for (llvm::sys::fs::directory_iterator It(Dir, EC), End; It != End && !EC;
       It.increment(EC))
    Names.push_back(std::string(llvm::sys::path::filename(It->path())));
  return Names;
}

/// The type of \p Path itself (a link is not followed).
llvm::sys::fs::file_type typeOf(const std::string &Path) {
  llvm::sys::fs::file_status St;
  if (llvm::sys::fs::status(Path, St, /*Follow=*/false))
    return llvm::sys::fs::file_type::file_not_found;
  return St.type();
}

/// Everything readable now from the non-blocking descriptor \p FD.
std::string drain(int FD) {
  std::string R;
  char Buf[4096];
  ssize_t N;
  while ((N = ::read(FD, Buf, sizeof(Buf))) > 0)
    R.append(Buf, static_cast<size_t>(N));
  return R;
}
} // namespace

TEST_CASE("makeError, fileError and locatedError format messages",
          "[fileio][error]") {
  CHECK(errorToString(makeError("bad thing")) == "bad thing");
  CHECK(errorToString(fileError("a.npy", "bad magic")) == "a.npy: bad magic");
  CHECK(errorToString(locatedError("m.qir", 3, 14, "unknown op 'foo'")) ==
        "m.qir:3:14: unknown op 'foo'");
  CHECK(errorToString(llvm::Error::success()) == "");
}

TEST_CASE("prefixError prefixes every joined error", "[fileio][error]") {
  CHECK(errorToString(prefixError(makeError("oops"), "f.txt")) ==
        "f.txt: oops");
  llvm::Error Both = llvm::joinErrors(makeError("first"), makeError("second"));
  CHECK(errorToString(prefixError(std::move(Both), "f.txt")) ==
        "f.txt: first\nf.txt: second");
  CHECK(errorToString(prefixError(llvm::Error::success(), "f.txt")) == "");
}

TEST_CASE("writeFileAtomically then readFile round-trips bytes", "[fileio]") {
  TempDir D;
  std::string P = D.file("out.bin");
  std::string Bytes("a\0b\xff\n", 5);
  REQUIRE(errorToString(writeFileAtomically(P, Bytes)) == "");
  CHECK(take(readFile(P)) == Bytes);
  // Only the target is left: no temporary file.
  CHECK(listDir(D.Path) == std::vector<std::string>{"out.bin"});
}

TEST_CASE("readFile of an empty and of a large file", "[fileio]") {
  TempDir D;
  REQUIRE(errorToString(writeFileAtomically(D.file("empty"), "")) == "");
  CHECK(take(readFile(D.file("empty"))).empty());
  std::string Big(1 << 20, '\0');
  for (size_t I = 0; I < Big.size(); ++I)
    Big[I] = static_cast<char>(I * 7);
  REQUIRE(errorToString(writeFileAtomically(D.file("big"), Big)) == "");
  CHECK(take(readFile(D.file("big"))) == Big);
}

TEST_CASE("writeFileAtomically replaces an existing file", "[fileio]") {
  TempDir D;
  std::string P = D.file("f.txt");
  REQUIRE(errorToString(writeFileAtomically(P, "old contents")) == "");
  REQUIRE(errorToString(writeFileAtomically(P, "new")) == "");
  CHECK(take(readFile(P)) == "new");
  CHECK(listDir(D.Path).size() == 1);
}

TEST_CASE("writeFileAtomically into a missing directory fails", "[fileio]") {
  TempDir D;
  std::string P = D.file("no-such-dir/out.bin");
  std::string Msg = errorToString(writeFileAtomically(P, "data"));
  CHECK_THAT(Msg, StartsWith(P + ": "));
  CHECK_THAT(Msg, Contains("cannot create temporary file"));
  CHECK_FALSE(llvm::sys::fs::exists(P));
  CHECK(listDir(D.Path).empty());
}

TEST_CASE("a failed write clobbers nothing and leaves no temporary",
          "[fileio]") {
  TempDir D;
  // Renaming a file over a non-empty directory fails after the temporary
  // has been written.
  std::string Target = D.file("target");
  REQUIRE_FALSE(llvm::sys::fs::create_directory(Target));
  std::string Inner = D.file("target/keep.txt");
  REQUIRE(errorToString(writeFileAtomically(Inner, "precious")) == "");
  std::string Msg = errorToString(writeFileAtomically(Target, "data"));
  CHECK(Msg == Target + ": cannot write: is a directory");
  CHECK(llvm::sys::fs::is_directory(Target));
  CHECK(take(readFile(Inner)) == "precious");
  CHECK(listDir(D.Path) == std::vector<std::string>{"target"});
}

TEST_CASE("readFile errors name the file and the reason", "[fileio]") {
  TempDir D;
  std::string Missing = D.file("missing.npy");
  CHECK(errorOf(readFile(Missing)) ==
        Missing + ": cannot open: No such file or directory");
  std::string Msg = errorOf(readFile(D.Path));
  CHECK_THAT(Msg, StartsWith(std::string(D.Path) + ": cannot"));
}

TEST_CASE("outputs that are not regular files are written through or refused",
          "[fileio]") {
  using llvm::sys::fs::file_type;
  CHECK(classifyOutput(file_type::regular_file) == OutputKind::Replace);
  CHECK(classifyOutput(file_type::file_not_found) == OutputKind::Replace);
  // Replacing /dev/null with a regular file would break the machine.
  CHECK(classifyOutput(file_type::character_file) == OutputKind::WriteThrough);
  CHECK(classifyOutput(file_type::fifo_file) == OutputKind::WriteThrough);
  CHECK(classifyOutput(file_type::directory_file) == OutputKind::Refuse);
  CHECK(classifyOutput(file_type::block_file) == OutputKind::Refuse);
  CHECK(classifyOutput(file_type::socket_file) == OutputKind::Refuse);
}

TEST_CASE("writeFileAtomically writes into a FIFO instead of replacing it",
          "[fileio]") {
  TempDir D;
  std::string Fifo = D.file("pipe");
  REQUIRE(::mkfifo(Fifo.c_str(), 0600) == 0);
  // With a reader already open, the writer's open does not block, and the
  // payload fits in the pipe buffer so the write does not either.
  int Reader = ::open(Fifo.c_str(), O_RDONLY | O_NONBLOCK);
  REQUIRE(Reader >= 0);
  std::string Bytes(1000, 'q');
  CHECK(errorToString(writeFileAtomically(Fifo, Bytes)) == "");
  CHECK(drain(Reader) == Bytes);
  ::close(Reader);
  CHECK(typeOf(Fifo) == llvm::sys::fs::file_type::fifo_file);
  CHECK(listDir(D.Path) == std::vector<std::string>{"pipe"});
}

TEST_CASE("writeFileAtomically through a symlink replaces its target",
          "[fileio]") {
  TempDir D;
  REQUIRE_FALSE(llvm::sys::fs::create_directory(D.file("real")));
  std::string Target = D.file("real/model.json");
  REQUIRE(errorToString(writeFileAtomically(Target, "old")) == "");
  std::string Link = D.file("link.json");
  REQUIRE(::symlink("real/model.json", Link.c_str()) == 0);

  CHECK(errorToString(writeFileAtomically(Link, "new")) == "");
  CHECK(typeOf(Link) == llvm::sys::fs::file_type::symlink_file);
  CHECK(take(readFile(Target)) == "new");
  // The temporary was made (and renamed away) next to the target.
  CHECK(listDir(D.file("real")) == std::vector<std::string>{"model.json"});
  CHECK(listDir(D.Path).size() == 2);

  SECTION("a dangling link creates its target") {
    std::string Dangling = D.file("dangling.json");
    REQUIRE(::symlink("real/new.json", Dangling.c_str()) == 0);
    CHECK(errorToString(writeFileAtomically(Dangling, "fresh")) == "");
    CHECK(typeOf(Dangling) == llvm::sys::fs::file_type::symlink_file);
    CHECK(take(readFile(D.file("real/new.json"))) == "fresh");
  }
  SECTION("a link cycle is an error") {
    std::string A = D.file("a"), B = D.file("b");
    REQUIRE(::symlink("b", A.c_str()) == 0);
    REQUIRE(::symlink("a", B.c_str()) == 0);
    CHECK(errorToString(writeFileAtomically(A, "x")) ==
          A + ": too many levels of symbolic links");
    CHECK(typeOf(A) == llvm::sys::fs::file_type::symlink_file);
  }
}
