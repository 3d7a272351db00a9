//===- Import.h - ONNX models into GraphModules ----------------*- C++ -*-===//
//
// Reads an ONNX model (opsets 7-17, external data included) into a float
// GraphModule that the quantization pipeline takes unchanged: Conv, Gemm or
// MatMul with a constant weight and BatchNormalization become call_module
// Conv2d / Linear / BatchNorm2d with their initializers as parameters, every
// other op a call_function of the op table. Module paths and node names come
// from the exporter's names (`/layer1/layer1.0/conv1/Conv` and
// `layer1.0.conv1.weight` give module `layer1.0.conv1`), so module_name and
// regex qconfig rules written for the PyTorch model apply. A QDQ model
// (QuantizeLinear / DequantizeLinear around the ops) imports as
// quantize_per_tensor / dequantize nodes around float ops, which the
// fold-qdq pass (run when registered, see FoldQdq) turns into the reference
// quantized graph that compile() lowers to int8.
//
// Every error names the file, and the node (index, ONNX name, op type,
// opset) when one is at fault; nothing asserts on input (docs/onnx.md).
//
//===----------------------------------------------------------------------===//

#ifndef QFX_ONNX_IMPORT_H
#define QFX_ONNX_IMPORT_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <memory>

namespace qfx {

class GraphModule;

/// Knobs of the importer; the defaults suit a model from torch.onnx.export.
struct OnnxImportOptions {
  /// Turn DequantizeLinear -> op -> QuantizeLinear groups into quantized
  /// modules and functions (the reference quantized graph convert produces).
  /// Off, Q/DQ stay quantize_per_tensor / dequantize nodes around float ops.
  bool FoldQdq = true;
};

/// Reads the ONNX model at \p Path. External-data files are resolved
/// relative to the model's folder and may not leave it.
llvm::Expected<std::unique_ptr<GraphModule>>
importOnnx(llvm::StringRef Path, const OnnxImportOptions &Opts = {});

/// Reads a serialized ModelProto from memory. \p Name prefixes errors;
/// \p BaseDir is where external data is looked up (empty: none allowed).
llvm::Expected<std::unique_ptr<GraphModule>>
importOnnxBuffer(llvm::StringRef Bytes, llvm::StringRef Name,
                 llvm::StringRef BaseDir = "",
                 const OnnxImportOptions &Opts = {});

/// Reads a model in ONNX's textual syntax (onnx/defs/parser.h), as the
/// import tests are written.
llvm::Expected<std::unique_ptr<GraphModule>>
importOnnxText(llvm::StringRef Text, llvm::StringRef Name,
               const OnnxImportOptions &Opts = {});

/// True when \p Bytes start like a serialized ONNX ModelProto (tools use it
/// to tell .onnx files from qfx's JSON and text formats).
bool looksLikeOnnx(llvm::StringRef Bytes);

} // namespace qfx

#endif // QFX_ONNX_IMPORT_H
