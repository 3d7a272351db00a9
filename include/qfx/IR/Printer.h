//===- Printer.h - The textual form of the IR -------------------*- C++ -*-===//
//
// Prints a GraphModule in the text form described in docs/ir.md, which
// Parser.h reads back: print -> parse -> print is the identity.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_IR_PRINTER_H
#define QFX_IR_PRINTER_H

#include "qfx/IR/Graph.h"

#include "llvm/Support/raw_ostream.h"

#include <cstdint>
#include <string>

namespace qfx {

class GraphModule;

struct PrintOptions {
  /// Tensor values are printed for tensors with at most this many elements
  /// (others print as declarations only); a negative value prints all.
  int64_t ElideTensorsAbove = 16;
};

/// Prints the whole GraphModule: root, modules with their tensors, graph.
void printGraphModule(const GraphModule &GM, llvm::raw_ostream &OS,
                      const PrintOptions &Opts = {});
std::string printToString(const GraphModule &GM, const PrintOptions &Opts = {});

/// Pieces, also used by diagnostics and by other printers (dot, explain).
void printType(const TensorType &T, llvm::raw_ostream &OS);
std::string formatType(const TensorType &T);
void printArgument(const Argument &A, llvm::raw_ostream &OS);
std::string formatArgument(const Argument &A);
/// One node statement, without indentation or newline.
void printNode(const Node &N, llvm::raw_ostream &OS);
/// A double in the shortest form that reads back exactly, always with a '.'
/// or exponent so that it cannot be mistaken for an int ("1.0", "0.05",
/// "1e-07", "inf", "-inf", "nan").
std::string formatFloat(double V);

} // namespace qfx

#endif // QFX_IR_PRINTER_H
