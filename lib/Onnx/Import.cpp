//===- Import.cpp - ONNX models into GraphModules -------------------------===//
//
// Placeholder of the importer entry points until the importer lands.
//
//===----------------------------------------------------------------------===//

#include "qfx/Onnx/Import.h"
#include "qfx/IR/GraphModule.h"
#include "qfx/Support/Error.h"

using namespace qfx;

llvm::Expected<std::unique_ptr<GraphModule>>
qfx::importOnnx(llvm::StringRef Path, const OnnxImportOptions &) {
  return makeError(Path + ": ONNX import is not built yet");
}
