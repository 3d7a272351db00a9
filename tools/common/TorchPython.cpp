//===- TorchPython.cpp - Finding a python3 that has PyTorch --------------===//

#include "TorchPython.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Process.h"
#include "llvm/Support/Program.h"

/// True if \p Py runs and imports \p Modules.
static bool canImport(llvm::StringRef Py, llvm::StringRef Modules) {
  llvm::Optional<llvm::StringRef> Quiet[] = {
      llvm::StringRef(""), llvm::StringRef(""), llvm::StringRef("")};
  std::string Code = ("import " + Modules).str();
  llvm::StringRef Args[] = {Py, "-c", Code};
  return llvm::sys::ExecuteAndWait(Py, Args, llvm::None, Quiet) == 0;
}

std::string qfx::tools::findTorchPython(llvm::StringRef Requested,
                                        llvm::StringRef Modules) {
  if (!Requested.empty())
    return canImport(Requested, Modules) ? Requested.str() : "";
  // Dirs points into PathList, which must outlive the loop (a conditional
  // over the Optional would make a temporary copy that dies at once).
  std::string PathList =
      llvm::sys::Process::GetEnv("PATH").getValueOr(std::string());
  llvm::SmallVector<llvm::StringRef, 16> Dirs;
  llvm::StringRef(PathList).split(Dirs, ':', -1, false);
  for (llvm::StringRef Dir : Dirs) {
    llvm::SmallString<256> Py(Dir);
    llvm::sys::path::append(Py, "python3");
    if (llvm::sys::fs::can_execute(Py) && canImport(Py, Modules))
      return Py.str().str();
  }
  return "";
}
