//===- TestUtil.h - Small helpers shared by the unit tests ------*- C++ -*-===//
//
// Header-only, included by test files only (it uses Catch2's macros):
// unwrapping llvm::Expected values, conv parameters, scratch directories and
// compiling without fallbacks.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_TEST_UNIT_TESTUTIL_H
#define QFX_TEST_UNIT_TESTUTIL_H

#include "qfx/Codegen/CompiledModule.h"
#include "qfx/Codegen/Lowering.h"
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
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

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

/// \p GM compiled for \p BatchSize on one thread; the test fails, naming
/// them, if any node runs on a reference kernel.
inline std::unique_ptr<CompiledModule> compileStrict(const GraphModule &GM,
                                                     int64_t BatchSize) {
  CompileOptions O;
  O.BatchSize = BatchSize;
  O.NumThreads = 1;
  auto C = take(compile(GM, O));
  std::string Fallbacks;
  for (const FallbackInfo &F : C->fallbacks())
    Fallbacks += formatFallback(F) + "\n";
  CHECK(Fallbacks == "");
  return C;
}

/// One line of a golden script's qparams file: "<observer module>
/// <observed node> <scale> <zero point>" per observer call of PyTorch's
/// prepared graph, in graph order.
struct GoldenQParams {
  std::string Observer, Observed;
  double Scale = 0;
  int64_t ZeroPoint = 0;
};

inline std::vector<GoldenQParams> readGoldenQParams(const std::string &Path) {
  std::ifstream In(Path);
  REQUIRE(In.good());
  std::vector<GoldenQParams> R;
  for (std::string Line; std::getline(In, Line);) {
    std::istringstream S(Line);
    GoldenQParams G;
    S >> G.Observer >> G.Observed >> G.Scale >> G.ZeroPoint;
    REQUIRE(!S.fail());
    R.push_back(G);
  }
  return R;
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
