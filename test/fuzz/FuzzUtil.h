//===- FuzzUtil.h - Helpers shared by the libFuzzer harnesses ---*- C++ -*-===//
//
// What every harness in test/fuzz/ needs: consuming an llvm::Error (a
// rejected input is the expected outcome, never a finding) and stopping
// loudly when a property that must hold for every input does not.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_TEST_FUZZ_FUZZUTIL_H
#define QFX_TEST_FUZZ_FUZZUTIL_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace qfx {
namespace fuzz {

/// The input as a StringRef (the loaders all take bytes this way).
inline llvm::StringRef bytes(const uint8_t *Data, size_t Size) {
  return llvm::StringRef(reinterpret_cast<const char *>(Data), Size);
}

/// Drops an error: bad input rejected with a message is correct behaviour.
inline void ignore(llvm::Error E) { llvm::consumeError(std::move(E)); }

/// Takes the value of \p V, or drops its error and returns false.
template <typename T> bool take(llvm::Expected<T> &V) {
  if (V)
    return true;
  ignore(V.takeError());
  return false;
}

/// A property that must hold for every input failed: print it and abort so
/// that libFuzzer (and the replay driver) records the input as a crash.
[[noreturn]] inline void fail(const char *Harness, const char *What) {
  std::fprintf(stderr, "fuzz %s: property violated: %s\n", Harness, What);
  std::abort();
}

} // namespace fuzz
} // namespace qfx

#endif // QFX_TEST_FUZZ_FUZZUTIL_H
