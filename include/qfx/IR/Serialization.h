//===- Serialization.h - Versioned JSON files for GraphModules --*- C++ -*-===//
//
// A GraphModule at any stage saves to one JSON document (docs/format.md)
// with tensors embedded as base64. The same module always serializes to the
// same bytes, and load -> save is byte-identical.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_IR_SERIALIZATION_H
#define QFX_IR_SERIALIZATION_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <memory>
#include <string>

namespace qfx {

class GraphModule;

/// The format version this build writes and reads.
constexpr int SerializationVersion = 1;

/// Serializes \p GM (which should verify) to JSON text.
std::string serializeToJson(const GraphModule &GM);

/// Parses JSON produced by serializeToJson. Rejects malformed JSON, a wrong
/// format tag or version, unknown opcodes or dtypes, dangling or duplicate
/// node names, cycles, bad base64 and tensor data whose size does not match
/// its shape; then runs the verifier. Errors start with "<Name>: ".
llvm::Expected<std::unique_ptr<GraphModule>>
deserializeFromJson(llvm::StringRef Bytes, llvm::StringRef Name);

/// File formats a GraphModule can be stored in.
enum class GraphFileFormat { Json, Text };

/// Loads a file in either format, telling them apart by content (JSON
/// starts with '{'). A text file is verified after parsing.
llvm::Expected<std::unique_ptr<GraphModule>>
loadGraphModule(llvm::StringRef Path);

/// Saves atomically (temporary file + rename): nothing is written on error.
llvm::Error saveGraphModule(const GraphModule &GM, llvm::StringRef Path,
                            GraphFileFormat Format = GraphFileFormat::Json);

} // namespace qfx

#endif // QFX_IR_SERIALIZATION_H
