//===- TorchPython.h - Finding a python3 that has PyTorch -------*- C++ -*-===//
//
// The benchmarks compare against PyTorch by running a script with a python3
// that can import it. Shared by qfx-bench and qfx-train.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_TOOLS_COMMON_TORCHPYTHON_H
#define QFX_TOOLS_COMMON_TORCHPYTHON_H

#include "llvm/ADT/StringRef.h"

#include <string>

namespace qfx {
namespace tools {

/// \p Requested if it can import \p Modules ("torch, numpy"), or, when
/// \p Requested is empty, the first python3 on PATH that can (a virtualenv's
/// or pyenv's python3 often shadows the system one that has torch); "" if
/// none.
std::string findTorchPython(llvm::StringRef Requested, llvm::StringRef Modules);

} // namespace tools
} // namespace qfx

#endif // QFX_TOOLS_COMMON_TORCHPYTHON_H
