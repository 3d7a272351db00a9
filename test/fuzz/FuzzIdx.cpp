//===- FuzzIdx.cpp - Fuzzes the IDX (MNIST) reader ------------------------===//
//
// readIdx takes a path (it may have to gunzip), so each input is written to
// one temporary file (in $TMPDIR: the scripts and ctest point it into the
// build folder) and read from there, whole and with a limit of one item.

#include "FuzzUtil.h"

#include "qfx/Support/Idx.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdlib>
#include <string>

using namespace qfx;

/// The one scratch file of this process, removed at exit.
static const std::string &scratchPath() {
  static const std::string Path = [] {
    llvm::SmallString<128> P;
    if (llvm::sys::fs::createTemporaryFile("qfx-fuzz-idx", "bin", P)) {
      std::fprintf(stderr, "fuzz idx: cannot create a temporary file\n");
      std::exit(2);
    }
    std::atexit([] { llvm::sys::fs::remove(scratchPath()); });
    return std::string(P);
  }();
  return Path;
}

static void check(const Tensor &T) {
  if (T.rank() == 4)
    normalizeImages(T);
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *Data, size_t Size) {
  const std::string &Path = scratchPath();
  {
    std::error_code EC;
    llvm::raw_fd_ostream OS(Path, EC);
    if (EC)
      fuzz::fail("idx", "cannot write the scratch file");
    OS << fuzz::bytes(Data, Size);
  }
  auto All = readIdx(Path);
  if (!fuzz::take(All))
    return 0;
  check(*All);
  auto One = readIdx(Path, 1);
  if (!One) {
    fuzz::ignore(One.takeError());
    fuzz::fail("idx", "a file read whole fails with a limit of 1");
  }
  check(*One);
  return 0;
}
