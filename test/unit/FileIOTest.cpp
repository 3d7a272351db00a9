// Unit tests for whole-file reads, atomic writes and the error helpers.
#include "TestUtil.h"

#include "qfx/Support/Error.h"
#include "qfx/Support/FileIO.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

#include <catch2/catch.hpp>

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

/// The value of \p V; fails the test with the error message otherwise.
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
  CHECK_THAT(Msg, StartsWith(Target + ": "));
  CHECK_THAT(Msg, Contains("cannot rename"));
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
