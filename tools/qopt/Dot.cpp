//===- Dot.cpp - Graphviz rendering of a GraphModule for qopt -------------===//

#include "Dot.h"

#include "qfx/IR/GraphModule.h"
#include "qfx/IR/Printer.h"

#include <string>
#include <vector>

using namespace qfx;

static std::string escape(llvm::StringRef S) {
  std::string R;
  for (char C : S) {
    if (C == '"')
      R += '\\';
    R += C;
  }
  return R;
}

static bool isInt8(const Node &N) {
  return N.type() &&
         (N.type()->Dtype == DType::U8 || N.type()->Dtype == DType::S8);
}

static bool isFusedKind(llvm::StringRef K) {
  bool Head =
      K.startswith("Conv") || K.startswith("Linear") || K.startswith("BN");
  return Head && (K.contains("ReLU") || K.contains("Bn") || K.contains("Add"));
}

static llvm::StringRef moduleKind(const GraphModule &GM, const Node &N) {
  if (N.op() != OpCode::CallModule)
    return "";
  const ModuleInfo *M = GM.lookupModule(N.target());
  return M ? M->kind() : "";
}

/// Float compute nodes of a graph that also computes in int8: the parts
/// that fell back to float between a dequantize and a quantize.
static bool isFloatFallback(const GraphModule &GM, const Node &N,
                            bool Quantized) {
  if (!Quantized || isInt8(N) || N.op() == OpCode::Placeholder ||
      N.op() == OpCode::Output || N.op() == OpCode::GetAttr)
    return false;
  llvm::StringRef T = N.target();
  if (T == "dequantize" || T.startswith("quantize_per"))
    return false;
  llvm::StringRef K = moduleKind(GM, N);
  return !K.endswith("Observer") && !K.contains("FakeQuantize");
}

static void printNodeStmt(const GraphModule &GM, const Node &N, bool Fallback,
                          llvm::raw_ostream &OS) {
  llvm::StringRef Kind = moduleKind(GM, N);
  std::string Label = "%" + N.name().str() + "\\n" + opcodeName(N.op()).str() +
                      "[" + N.target().str() + "]";
  if (!Kind.empty())
    Label += "\\n" + Kind.str();
  std::string Style = "shape=box";
  if (Kind.startswith("Quantized"))
    Style += ", style=filled, fillcolor=lightblue";
  else if (isFusedKind(Kind))
    Style += ", style=filled, fillcolor=gold";
  else if (Fallback)
    Style += ", style=filled, fillcolor=mistyrose, color=red";
  OS << "  \"" << escape(N.name()) << "\" [label=\"" << escape(Label) << "\", "
     << Style << "];\n";
}

static void printLegend(llvm::raw_ostream &OS) {
  OS << "  subgraph cluster_legend {\n    label=\"legend\";\n"
     << "    legend_int8 [label=\"int8 (u8/s8) edge\", shape=plaintext];\n"
     << "    legend_float [label=\"float edge\", shape=plaintext];\n"
     << "    legend_fused [label=\"fused module\", shape=box, style=filled, "
        "fillcolor=gold];\n"
     << "    legend_quant [label=\"Quantized* module\", shape=box, "
        "style=filled, fillcolor=lightblue];\n"
     << "    legend_fallback [label=\"float fallback\", shape=box, "
        "style=filled, fillcolor=mistyrose, color=red];\n"
     << "    legend_int8 -> legend_float [color=blue, penwidth=2];\n"
     << "  }\n";
}

void qfx::printDot(const GraphModule &GM, llvm::raw_ostream &OS) {
  std::vector<const Node *> Nodes = GM.graph().nodes();
  bool Quantized = false;
  for (const Node *N : Nodes)
    Quantized |= isInt8(*N);
  OS << "digraph G {\n  rankdir=TB;\n  node [fontname=\"monospace\"];\n";
  std::vector<const Node *> Fallbacks;
  for (const Node *N : Nodes) {
    if (isFloatFallback(GM, *N, Quantized))
      Fallbacks.push_back(N);
    else
      printNodeStmt(GM, *N, false, OS);
  }
  if (!Fallbacks.empty()) {
    OS << "  subgraph cluster_float_fallback {\n    label=\"float "
          "fallback\";\n    color=red;\n";
    for (const Node *N : Fallbacks)
      printNodeStmt(GM, *N, true, OS << "  ");
    OS << "  }\n";
  }
  for (const Node *N : Nodes)
    for (const Node *In : N->inputs()) {
      OS << "  \"" << escape(In->name()) << "\" -> \"" << escape(N->name())
         << "\"";
      if (isInt8(*In))
        OS << " [color=blue, penwidth=2, label=\""
           << escape(formatType(*In->type())) << "\"]";
      else
        OS << " [color=gray40, style=dashed]";
      OS << ";\n";
    }
  printLegend(OS);
  OS << "}\n";
}
