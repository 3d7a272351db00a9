//===- Flags.h - Range checks for numeric command-line flags ----*- C++ -*-===//
//
// The tools' numeric flags (batch sizes, thread and image counts) are checked
// against one set of bounds, so that no flag value reaches an overflowing
// add or a library that aborts on it (OpenMP on 100000 threads).
//
//===----------------------------------------------------------------------===//

#ifndef QFX_SUPPORT_FLAGS_H
#define QFX_SUPPORT_FLAGS_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>

namespace qfx {

/// The most threads any tool or CompileOptions::NumThreads accepts; far
/// above any machine here, far below what makes OpenMP abort.
constexpr int64_t MaxThreads = 1024;

/// The largest batch or row count a flag accepts: the element bound of any
/// tensor (MaxTensorElements), so sums of such counts cannot overflow.
constexpr int64_t MaxFlagCount = int64_t(1) << 40;

/// Fails unless \p Min <= \p Value <= \p Max, with a message naming the
/// flag: "--threads: must be between 0 and 1024, got 100000".
llvm::Error checkFlagRange(llvm::StringRef Flag, int64_t Value, int64_t Min,
                           int64_t Max);

} // namespace qfx

#endif // QFX_SUPPORT_FLAGS_H
