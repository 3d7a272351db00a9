//===- Printer.cpp - The textual form of the IR ---------------------------===//
//
// Implements the printer half of docs/ir.md. Parser.cpp reads what this
// writes; any change here needs the matching change there.
//
//===----------------------------------------------------------------------===//

#include "qfx/IR/Printer.h"

#include "Lexer.h"

#include "qfx/IR/GraphModule.h"

#include "llvm/ADT/StringExtras.h"

#include <charconv>

using namespace llvm;

namespace qfx {

namespace {

/// Makes the output of std::to_chars read back as a float, not an int.
std::string ensureFloatSpelling(std::string S) {
  StringRef R(S);
  if (!R.contains('.') && !R.contains('e') && !R.contains("inf") &&
      !R.contains("nan"))
    S += ".0";
  return S;
}

/// The shortest spelling that reads back as the same float. Printing the
/// value widened to double would spell out binary noise ("0.10000000149").
std::string formatFloat32(float V) {
  char Buf[64];
  auto Res = std::to_chars(Buf, Buf + sizeof(Buf), V);
  return ensureFloatSpelling(std::string(Buf, Res.ptr));
}

bool isSegmentChar(char C) { return isAlnum(C) || C == '_'; }

bool isIdentifier(StringRef S) {
  if (S.empty() || isDigit(S[0]))
    return false;
  return llvm::all_of(S, isSegmentChar);
}

/// [A-Za-z0-9_]+ joined by '.': what the parser reads without quotes.
bool isQualifiedName(StringRef S) {
  if (S.empty())
    return false;
  SmallVector<StringRef, 8> Parts;
  S.split(Parts, '.');
  return llvm::all_of(Parts, [](StringRef P) {
    return !P.empty() && llvm::all_of(P, isSegmentChar);
  });
}

void printString(StringRef S, raw_ostream &OS) {
  OS << '"';
  for (char C : S) {
    unsigned char U = static_cast<unsigned char>(C);
    if (C == '\\' || C == '"')
      OS << '\\' << C;
    else if (C == '\n')
      OS << "\\n";
    else if (C == '\t')
      OS << "\\t";
    else if (U < 0x20 || U >= 0x7f)
      OS << "\\x" << hexByte(U);
    else
      OS << C;
  }
  OS << '"';
}

/// Identifiers print bare, anything else as a string.
void printName(StringRef S, raw_ostream &OS) {
  if (isIdentifier(S))
    OS << S;
  else
    printString(S, OS);
}

/// Qualified names print bare, anything else as a string.
void printQualifiedName(StringRef S, raw_ostream &OS) {
  if (isQualifiedName(S))
    OS << S;
  else
    printString(S, OS);
}

void printAttrDict(const AttrMap &Attrs, raw_ostream &OS) {
  OS << '{';
  bool First = true;
  for (const auto &[Key, Value] : Attrs) {
    if (!First)
      OS << ", ";
    First = false;
    printName(Key, OS);
    OS << " = ";
    printArgument(Value, OS);
  }
  OS << '}';
}

void printTensorValues(const Tensor &T, raw_ostream &OS) {
  OS << " = dense<[";
  int64_t N = T.numElements();
  for (int64_t I = 0; I < N; ++I) {
    if (I)
      OS << ", ";
    switch (T.dtype()) {
    case DType::F32:
      OS << formatFloat32(T.data<float>()[I]);
      break;
    case DType::S64:
      // Read directly: going through double loses precision above 2^53.
      OS << T.data<int64_t>()[I];
      break;
    default:
      OS << static_cast<int64_t>(T.getAsDouble(I));
      break;
    }
  }
  OS << "]>";
}

void printTensorDecl(const NamedTensor &NT, unsigned Indent, raw_ostream &OS,
                     const PrintOptions &Opts) {
  const Tensor &T = NT.Value;
  OS.indent(Indent) << (NT.IsBuffer ? "buffer " : "param ");
  printName(NT.Name, OS);
  OS << " : ";
  printType(TensorType{T.dtype(), Shape(T.shape().begin(), T.shape().end()),
                       T.quant()},
            OS);
  if (T.hasData() &&
      (Opts.ElideTensorsAbove < 0 || T.numElements() <= Opts.ElideTensorsAbove))
    printTensorValues(T, OS);
  OS << '\n';
}

void printModuleDecl(StringRef Path, const ModuleInfo &M, raw_ostream &OS,
                     const PrintOptions &Opts) {
  OS << "  module ";
  printQualifiedName(Path, OS);
  OS << " : ";
  printName(M.kind(), OS);
  if (!M.attrs().empty()) {
    OS << ' ';
    printAttrDict(M.attrs(), OS);
  }
  if (!M.tensors().empty()) {
    OS << " {\n";
    for (const NamedTensor &NT : M.tensors())
      printTensorDecl(NT, 4, OS, Opts);
    OS << "  }";
  }
  OS << '\n';
}

} // namespace

std::string formatFloat(double V) {
  char Buf[64];
  auto Res = std::to_chars(Buf, Buf + sizeof(Buf), V);
  return ensureFloatSpelling(std::string(Buf, Res.ptr));
}

void printType(const TensorType &T, raw_ostream &OS) {
  OS << dtypeName(T.Dtype) << formatShape(T.Dims);
  const QuantParams &Q = T.Quant;
  if (Q.isPerTensor()) {
    OS << "<scale=" << formatFloat(Q.Scale) << ", zero_point=" << Q.ZeroPoint
       << '>';
  } else if (Q.isPerChannel()) {
    OS << "<axis=" << Q.Axis << ", scales=[";
    ListSeparator Sep;
    for (double S : Q.Scales)
      OS << Sep << formatFloat(S);
    OS << "], zero_points=[";
    ListSeparator Sep2;
    for (int64_t Z : Q.ZeroPoints)
      OS << Sep2 << Z;
    OS << "]>";
  }
}

std::string formatType(const TensorType &T) {
  std::string S;
  raw_string_ostream OS(S);
  printType(T, OS);
  return OS.str();
}

void printArgument(const Argument &A, raw_ostream &OS) {
  switch (A.kind()) {
  case Argument::Kind::None:
    OS << "none";
    return;
  case Argument::Kind::NodeRef:
    OS << '%' << A.getNode()->name();
    return;
  case Argument::Kind::Int:
    OS << A.getInt();
    return;
  case Argument::Kind::Float:
    OS << formatFloat(A.getFloat());
    return;
  case Argument::Kind::Bool:
    OS << (A.getBool() ? "true" : "false");
    return;
  case Argument::Kind::String:
    printString(A.getString(), OS);
    return;
  case Argument::Kind::List: {
    OS << '[';
    ListSeparator Sep;
    for (const Argument &E : A.getList()) {
      OS << Sep;
      printArgument(E, OS);
    }
    OS << ']';
    return;
  }
  }
}

std::string formatArgument(const Argument &A) {
  std::string S;
  raw_string_ostream OS(S);
  printArgument(A, OS);
  return OS.str();
}

void printNode(const Node &N, raw_ostream &OS) {
  OS << '%' << N.name();
  if (N.type()) {
    OS << " : ";
    printType(*N.type(), OS);
  }
  OS << " = " << opcodeName(N.op()) << '[';
  printQualifiedName(N.target(), OS);
  OS << ']';
  if (N.numArgs() || !N.kwargs().empty()) {
    OS << '(';
    ListSeparator Sep;
    for (const Argument &A : N.args()) {
      OS << Sep;
      printArgument(A, OS);
    }
    for (const auto &[Key, Value] : N.kwargs()) {
      OS << Sep;
      printName(Key, OS);
      OS << '=';
      printArgument(Value, OS);
    }
    OS << ')';
  }
  if (!N.scope().empty()) {
    OS << " scope(";
    printString(N.scope(), OS);
    OS << ')';
  }
  // Annotations are a map of constants, exactly what an attribute dict
  // holds, so they share its spelling and the parser's code for it.
  if (!N.meta().empty()) {
    OS << " meta";
    printAttrDict(N.meta(), OS);
  }
}

void printGraphModule(const GraphModule &GM, raw_ostream &OS,
                      const PrintOptions &Opts) {
  const ModuleInfo &Root = GM.root();
  OS << "graph_module ";
  printName(Root.kind(), OS);
  if (!Root.attrs().empty()) {
    OS << ' ';
    printAttrDict(Root.attrs(), OS);
  }
  OS << " {\n";

  bool PrintedDecls = false;
  for (const NamedTensor &NT : Root.tensors()) {
    printTensorDecl(NT, 2, OS, Opts);
    PrintedDecls = true;
  }
  for (const std::string &Path : GM.moduleNames()) {
    const ModuleInfo *M = GM.lookupModule(Path);
    assert(M && "moduleNames() lists a module lookupModule() cannot find");
    printModuleDecl(Path, *M, OS, Opts);
    PrintedDecls = true;
  }
  if (PrintedDecls)
    OS << '\n';

  OS << "  graph {\n";
  for (const Node &N : GM.graph()) {
    OS.indent(4);
    printNode(N, OS);
    OS << '\n';
  }
  OS << "  }\n}\n";
}

std::string printToString(const GraphModule &GM, const PrintOptions &Opts) {
  std::string S;
  raw_string_ostream OS(S);
  printGraphModule(GM, OS, Opts);
  return OS.str();
}

} // namespace qfx
