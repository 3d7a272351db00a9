//===- ReplayMain.cpp - Runs inputs through a harness without libFuzzer ---===//
//
// Linked in place of libFuzzer so that every harness also builds with any
// compiler as a plain executable: each argument is a file, or a directory
// whose regular files (sorted by name, recursively) are each one input. Used
// by the "fuzz-replay: <harness>" ctests to replay the committed corpora.
//
//===----------------------------------------------------------------------===//

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *Data, size_t Size);

namespace fs = std::filesystem;

/// Regular files of \p Arg: itself, or those under it in name order.
static bool collect(const fs::path &Arg, std::vector<fs::path> &Files) {
  std::error_code EC;
  if (fs::is_regular_file(Arg, EC)) {
    Files.push_back(Arg);
    return true;
  }
  if (!fs::is_directory(Arg, EC))
    return false;
  std::vector<fs::path> Found;
  for (const auto &E : fs::recursive_directory_iterator(Arg, EC))
    if (E.is_regular_file())
      Found.push_back(E.path());
  std::sort(Found.begin(), Found.end());
  Files.insert(Files.end(), Found.begin(), Found.end());
  return !EC;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s FILE-OR-DIR...\n", argv[0]);
    return 2;
  }
  std::vector<fs::path> Files;
  for (int I = 1; I < argc; ++I)
    if (!collect(argv[I], Files)) {
      std::fprintf(stderr, "%s: error: '%s': no such file or directory\n",
                   argv[0], argv[I]);
      return 2;
    }
  for (const fs::path &F : Files) {
    // Printed first so that a crash names the input that caused it.
    std::fprintf(stderr, "replay: %s\n", F.string().c_str());
    std::ifstream In(F, std::ios::binary);
    std::vector<uint8_t> Bytes((std::istreambuf_iterator<char>(In)),
                               std::istreambuf_iterator<char>());
    if (!In.good() && !In.eof()) {
      std::fprintf(stderr, "%s: error: '%s': cannot read\n", argv[0],
                   F.string().c_str());
      return 2;
    }
    LLVMFuzzerTestOneInput(Bytes.data(), Bytes.size());
  }
  std::printf("replayed %zu inputs\n", Files.size());
  return Files.empty() ? 1 : 0;
}
