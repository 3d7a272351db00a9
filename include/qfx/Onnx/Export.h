//===- Export.h - GraphModules out as ONNX and QDQ ONNX --------*- C++ -*-===//
//
// Writes a GraphModule as an ONNX model that ONNX Runtime and TensorRT run:
// a float graph as plain ONNX; a reference quantized graph (convert) or a
// fake-quant graph (prepare-qat, after training) as QDQ ONNX in the
// conventions of ONNX Runtime's own quantizer: uint8 per-tensor
// QuantizeLinear/DequantizeLinear around activations, int8 weights
// per-channel on axis 0 as initializers behind a DequantizeLinear, int32
// bias with scale s_in * s_w, opset 13 or later. Every file passes ONNX's
// checker, and one graph always writes the same bytes (docs/onnx.md).
//
//===----------------------------------------------------------------------===//

#ifndef QFX_ONNX_EXPORT_H
#define QFX_ONNX_EXPORT_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <optional>
#include <string>

namespace qfx {

class GraphModule;

/// Knobs of the exporter.
struct OnnxExportOptions {
  /// The default ONNX opset written (13..17).
  int Opset = 13;
  /// Name the first dimension of every graph input and output "batch" so
  /// one file runs at any batch size.
  bool DynamicBatch = true;
};

/// Serializes \p GM to ModelProto bytes; errors name the node that has no
/// ONNX form.
llvm::Expected<std::string>
exportOnnxBuffer(const GraphModule &GM, const OnnxExportOptions &Opts = {});

/// Writes \p GM to \p Path atomically (nothing is left behind on error).
llvm::Error exportOnnx(const GraphModule &GM, llvm::StringRef Path,
                       const OnnxExportOptions &Opts = {});

/// The export table's decision for qfx op \p Op (a call_function /
/// call_method target, or the op a module kind calls): "" when it has an
/// ONNX form, the reason when it has none, std::nullopt when the table has
/// no row for it (every op of the op table must have one).
std::optional<std::string> onnxExportDecision(llvm::StringRef Op);

} // namespace qfx

#endif // QFX_ONNX_EXPORT_H
