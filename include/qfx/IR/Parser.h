//===- Parser.h - Reads the textual form of the IR --------------*- C++ -*-===//
//
// The inverse of Printer.h. Errors carry "<buffer>:<line>:<col>: " and say
// what was expected. The parser checks syntax and name resolution; run the
// verifier for the semantic checks.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_IR_PARSER_H
#define QFX_IR_PARSER_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <memory>

namespace qfx {

class GraphModule;

/// Parses a whole GraphModule from \p Text; \p BufferName (a file name)
/// prefixes error locations.
llvm::Expected<std::unique_ptr<GraphModule>>
parseGraphModule(llvm::StringRef Text, llvm::StringRef BufferName);

} // namespace qfx

#endif // QFX_IR_PARSER_H
