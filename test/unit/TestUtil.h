//===- TestUtil.h - Small helpers shared by the unit tests ------*- C++ -*-===//
//
// Header-only, included by test files only (it uses Catch2's macros):
// unwrapping llvm::Expected values, conv parameters and scratch
// directories.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_TEST_UNIT_TESTUTIL_H
#define QFX_TEST_UNIT_TESTUTIL_H

#include "qfx/IR/GraphModule.h"
#include "qfx/Runtime/Kernels.h"
#include "qfx/Support/Error.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>

namespace qfx {
namespace testutil {

/// The value of \p V; fails the test with the error's message otherwise.
template <typename T> T take(llvm::Expected<T> V) {
  if (!V)
    FAIL(errorToString(V.takeError()));
  return std::move(*V);
}

/// The error message of \p V, or "" if it holds a value.
template <typename T> std::string errorOf(llvm::Expected<T> V) {
  return V ? std::string() : errorToString(V.takeError());
}

/// conv2d parameters with the same stride, padding and dilation on both
/// axes.
inline ref::Conv2dParams convParams(int64_t Stride, int64_t Pad, int64_t Dil,
                                    int64_t Groups) {
  ref::Conv2dParams P;
  P.Stride = {Stride, Stride};
  P.Padding = {Pad, Pad};
  P.Dilation = {Dil, Dil};
  P.Groups = Groups;
  return P;
}

/// A fresh directory under the system temporary directory, removed with
/// everything in it at the end of the test.
struct TempDir {
  llvm::SmallString<128> Path;
  TempDir() {
    REQUIRE_FALSE(llvm::sys::fs::createUniqueDirectory("qfx-test", Path));
  }
  ~TempDir() { llvm::sys::fs::remove_directories(Path); }
  std::string file(llvm::StringRef Name) const {
    llvm::SmallString<128> P(Path);
    llvm::sys::path::append(P, Name);
    return std::string(P);
  }
};

/// max |A - B| / max |B|: the error relative to the largest element (a
/// model's largest logit).
inline double relToLargest(const Tensor &A, const Tensor &B) {
  REQUIRE(A.shape() == B.shape());
  double MaxDiff = 0, MaxRef = 0;
  for (int64_t I = 0; I < B.numElements(); ++I) {
    MaxDiff = std::max(MaxDiff, std::fabs(A.getAsDouble(I) - B.getAsDouble(I)));
    MaxRef = std::max(MaxRef, std::fabs(B.getAsDouble(I)));
  }
  return MaxDiff / MaxRef;
}

/// How many nodes of each kind: call_function / call_method targets,
/// call_module kinds.
inline std::map<std::string, int> opCounts(const GraphModule &GM) {
  std::map<std::string, int> C;
  for (const Node &N : GM.graph()) {
    if (N.op() == OpCode::CallFunction || N.op() == OpCode::CallMethod)
      ++C[N.target().str()];
    if (N.op() == OpCode::CallModule)
      ++C[GM.lookupModule(N.target())->kind().str()];
  }
  return C;
}

} // namespace testutil
} // namespace qfx

#endif // QFX_TEST_UNIT_TESTUTIL_H
