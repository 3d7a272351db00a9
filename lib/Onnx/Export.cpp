//===- Export.cpp - GraphModules out as ONNX ------------------------------===//
//
// Placeholder of the exporter entry points until the exporter lands.
//
//===----------------------------------------------------------------------===//

#include "qfx/Onnx/Export.h"
#include "qfx/IR/GraphModule.h"
#include "qfx/Support/Error.h"

#include "onnx/onnx_pb.h"

using namespace qfx;

llvm::Error qfx::exportOnnx(const GraphModule &, llvm::StringRef Path,
                            const OnnxExportOptions &) {
  return makeError(Path + ": ONNX export is not built yet");
}
