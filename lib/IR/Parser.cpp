//===- Parser.cpp - Reads the textual form of the IR ----------------------===//
//
// A recursive-descent parser for the grammar in docs/ir.md. Node references
// are collected by name and resolved after the whole graph has been read, so
// that a text can state use-before-def and cycles for the verifier to catch.
//
//===----------------------------------------------------------------------===//

#include "qfx/IR/Parser.h"

#include "Lexer.h"

#include "qfx/IR/GraphModule.h"
#include "qfx/Support/Error.h"

#include "llvm/ADT/StringMap.h"

#include <charconv>
#include <cstdint>
#include <iterator>

using namespace llvm;

namespace qfx {

namespace {

/// Lists deeper than this are rejected so that hostile input cannot exhaust
/// the stack of the recursive value parser.
constexpr unsigned MaxListDepth = 64;

/// A value as written: node references are still names.
struct ParsedValue {
  enum class Kind { Constant, Ref, List };
  Kind K = Kind::Constant;
  Argument Constant;
  std::string Ref;
  size_t Offset = 0;
  std::vector<ParsedValue> Elems;
};

/// A node statement before its references are resolved.
struct ParsedNode {
  std::string Name;
  size_t Offset = 0;
  std::optional<TensorType> Type;
  OpCode Op = OpCode::CallFunction;
  std::string Target;
  std::vector<ParsedValue> Args;
  std::vector<std::pair<std::string, ParsedValue>> KwArgs;
  std::string Scope;
  NodeMeta Meta;
};

/// What an attribute dict holds: module attributes or node annotations
/// share the syntax and differ only in the wording of errors.
enum class DictKind { Attributes, Annotations };

/// Methods return true on failure (the LLVM parser convention); the first
/// error is recorded and parsing stops there.
class Parser {
public:
  Parser(StringRef Text, StringRef BufferName)
      : Lex(Text), BufferName(BufferName) {}

  Expected<std::unique_ptr<GraphModule>> run();

private:
  // Tokens and diagnostics.
  void consume() { Tok = Lex.lex(); }
  Token peek(unsigned N = 1);
  void relexAsQualifiedName();
  bool error(size_t Offset, const Twine &Msg);
  bool errorExpected(const Twine &What);
  bool expect(Token::Kind K, const Twine &What);
  static std::string describe(const Token &T);

  // Module tree.
  bool parseFile();
  bool parseRootItems();
  bool parseModuleDecl();
  bool parseModuleBody(ModuleInfo &M, StringRef Path);
  bool parseTensorDecl(ModuleInfo &M, StringRef Path);
  bool parseTensorValues(const TensorType &Ty, Tensor &Out);
  bool parseName(std::string &Out, const Twine &What);
  bool parseAttrDict(AttrMap &Attrs, DictKind Kind = DictKind::Attributes);
  bool startsAttrDict();

  // Types and values.
  bool parseType(TensorType &Ty);
  bool parseShape(Shape &Dims);
  bool parseQuant(QuantParams &Q);
  bool parseInteger(int64_t &V, const Twine &What);
  bool parseFloat(double &V, const Twine &What);
  bool parseFloat32(float &V, const Twine &What);
  bool parseValue(ParsedValue &V, unsigned Depth);
  bool toConstant(const ParsedValue &V, Argument &Out, DictKind Kind);

  // Graph.
  bool parseGraph();
  bool parseNode(ParsedNode &N);
  bool parseArgList(ParsedNode &N);
  bool parseScope(ParsedNode &N);
  bool parseMeta(ParsedNode &N);
  bool buildGraph();
  bool resolve(const ParsedValue &V, Argument &Out);

  Lexer Lex;
  StringRef BufferName;
  Token Tok;
  std::unique_ptr<GraphModule> GM;
  std::vector<ParsedNode> Nodes;
  /// Offsets of node definitions, for redefinition errors.
  StringMap<size_t> Defined;

  bool HasError = false;
  size_t ErrorOffset = 0;
  std::string ErrorMessage;
};

//===----------------------------------------------------------------------===//
// Tokens and diagnostics
//===----------------------------------------------------------------------===//

Token Parser::peek(unsigned N) {
  size_t Saved = Lex.position();
  Token T;
  for (unsigned I = 0; I < N; ++I)
    T = Lex.lex();
  Lex.resetTo(Saved);
  return T;
}

void Parser::relexAsQualifiedName() {
  Lex.resetTo(Tok.Offset);
  Tok = Lex.lexQualifiedName();
}

bool Parser::error(size_t Offset, const Twine &Msg) {
  if (!HasError) {
    HasError = true;
    ErrorOffset = Offset;
    ErrorMessage = Msg.str();
  }
  return true;
}

std::string Parser::describe(const Token &T) {
  if (T.is(Token::Kind::Eof))
    return "end of input";
  StringRef S = T.Spelling;
  std::string Short = S.take_front(40).str();
  if (S.size() > 40)
    Short += "...";
  if (T.is(Token::Kind::String))
    return "string " + Short;
  return "'" + Short + "'";
}

bool Parser::errorExpected(const Twine &What) {
  // The lexer's own message is more precise than "found <garbage>".
  if (Tok.is(Token::Kind::Error))
    return error(Tok.Offset, Tok.Value);
  return error(Tok.Offset, "expected " + What + ", found " + describe(Tok));
}

bool Parser::expect(Token::Kind K, const Twine &What) {
  if (!Tok.is(K))
    return errorExpected(What);
  consume();
  return false;
}

//===----------------------------------------------------------------------===//
// Module tree
//===----------------------------------------------------------------------===//

Expected<std::unique_ptr<GraphModule>> Parser::run() {
  consume();
  if (parseFile() || buildGraph()) {
    auto [Line, Col] = Lex.lineAndColumn(ErrorOffset);
    return locatedError(BufferName, Line, Col, ErrorMessage);
  }
  return std::move(GM);
}

bool Parser::parseFile() {
  if (!Tok.isIdentifier("graph_module"))
    return errorExpected("'graph_module'");
  consume();
  std::string Kind;
  if (parseName(Kind, "module kind after 'graph_module'"))
    return true;
  GM = std::make_unique<GraphModule>(Kind);
  if (startsAttrDict()) {
    AttrMap Attrs;
    if (parseAttrDict(Attrs))
      return true;
    for (auto &[Key, Value] : Attrs)
      GM->root().setAttr(Key, std::move(Value));
  }
  if (expect(Token::Kind::LBrace, "'{' after module kind") ||
      parseRootItems() ||
      expect(Token::Kind::RBrace, "'}' after the graph block"))
    return true;
  if (!Tok.is(Token::Kind::Eof))
    return errorExpected("end of input after the final '}'");
  return false;
}

bool Parser::parseRootItems() {
  while (true) {
    if (Tok.isIdentifier("param") || Tok.isIdentifier("buffer")) {
      if (parseTensorDecl(GM->root(), ""))
        return true;
    } else if (Tok.isIdentifier("module")) {
      if (parseModuleDecl())
        return true;
    } else if (Tok.isIdentifier("graph")) {
      return parseGraph();
    } else {
      return errorExpected("'param', 'buffer', 'module' or 'graph'");
    }
  }
}

bool Parser::parseModuleDecl() {
  consume(); // 'module'
  relexAsQualifiedName();
  size_t NameOffset = Tok.Offset;
  std::string Path;
  if (Tok.is(Token::Kind::QualifiedName)) {
    Path = Tok.Spelling.str();
  } else if (Tok.is(Token::Kind::String)) {
    Path = Tok.Value;
    SmallVector<StringRef, 8> Parts;
    StringRef(Path).split(Parts, '.');
    if (llvm::any_of(Parts, [](StringRef P) { return P.empty(); }))
      return error(NameOffset, "invalid module name " + describe(Tok));
  } else {
    return errorExpected("module name after 'module'");
  }
  consume();

  if (GM->lookupModule(Path))
    return error(NameOffset, "module '" + Path + "' is already declared");
  StringRef Parent = splitQualifiedName(Path).first;
  if (!Parent.empty() && !GM->lookupModule(Parent))
    return error(NameOffset, "module '" + Path +
                                 "' declared before its parent '" + Parent +
                                 "'");
  std::string Kind;
  if (expect(Token::Kind::Colon, "':' after module name") ||
      parseName(Kind, "module kind"))
    return true;
  ModuleInfo &M = GM->addModule(Path, Kind);
  return parseModuleBody(M, Path);
}

bool Parser::parseModuleBody(ModuleInfo &M, StringRef Path) {
  if (startsAttrDict()) {
    AttrMap Attrs;
    if (parseAttrDict(Attrs))
      return true;
    for (auto &[Key, Value] : Attrs)
      M.setAttr(Key, std::move(Value));
  }
  if (!Tok.is(Token::Kind::LBrace))
    return false;
  consume();
  while (!Tok.is(Token::Kind::RBrace)) {
    if (!Tok.isIdentifier("param") && !Tok.isIdentifier("buffer"))
      return errorExpected("'param', 'buffer' or '}' in module '" + Path + "'");
    if (parseTensorDecl(M, Path))
      return true;
  }
  consume();
  return false;
}

bool Parser::parseTensorDecl(ModuleInfo &M, StringRef Path) {
  bool IsBuffer = Tok.isIdentifier("buffer");
  consume();
  size_t NameOffset = Tok.Offset;
  std::string Name;
  TensorType Ty;
  if (parseName(Name, IsBuffer ? "buffer name" : "parameter name") ||
      expect(Token::Kind::Colon, "':' after tensor name") || parseType(Ty))
    return true;
  if (M.tensor(Name))
    return error(NameOffset, "tensor '" + Name + "' is already declared in " +
                                 (Path.empty() ? Twine("the root module")
                                               : "module '" + Path + "'"));
  Expected<int64_t> N = checkedNumElements(Ty.Dims);
  if (!N)
    return error(NameOffset,
                 "tensor '" + Name + "': " + errorToString(N.takeError()));

  Tensor T = Tensor::declared(Ty.Dtype, Ty.Dims);
  if (Tok.is(Token::Kind::Equal)) {
    consume();
    if (parseTensorValues(Ty, T))
      return true;
  }
  T.setQuant(Ty.Quant);
  M.setTensor(Name, std::move(T), IsBuffer);
  return false;
}

/// The values an integer dtype can hold.
static std::pair<int64_t, int64_t> integerRange(DType T) {
  switch (T) {
  case DType::S8:
    return {INT8_MIN, INT8_MAX};
  case DType::U8:
    return {0, UINT8_MAX};
  case DType::S32:
    return {INT32_MIN, INT32_MAX};
  default:
    return {INT64_MIN, INT64_MAX};
  }
}

/// A tensor of type \p Ty holding \p Floats (f32) or \p Ints (the others,
/// already range-checked), written directly: s64 values above 2^53 would
/// not survive a trip through double.
static Tensor makeTensor(const TensorType &Ty, ArrayRef<float> Floats,
                         ArrayRef<int64_t> Ints) {
  Tensor T(Ty.Dtype, Ty.Dims);
  int64_t N = T.numElements();
  for (int64_t I = 0; I < N; ++I) {
    switch (Ty.Dtype) {
    case DType::F32:
      T.data<float>()[I] = Floats[I];
      break;
    case DType::S8:
      T.data<int8_t>()[I] = static_cast<int8_t>(Ints[I]);
      break;
    case DType::U8:
      T.data<uint8_t>()[I] = static_cast<uint8_t>(Ints[I]);
      break;
    case DType::S32:
      T.data<int32_t>()[I] = static_cast<int32_t>(Ints[I]);
      break;
    case DType::S64:
      T.data<int64_t>()[I] = Ints[I];
      break;
    }
  }
  return T;
}

/// Reads `dense<[v, ...]>` into a new tensor of type \p Ty.
bool Parser::parseTensorValues(const TensorType &Ty, Tensor &Out) {
  size_t DenseOffset = Tok.Offset;
  if (!Tok.isIdentifier("dense"))
    return errorExpected("'dense' after '='");
  consume();
  if (expect(Token::Kind::Less, "'<' after 'dense'") ||
      expect(Token::Kind::LSquare, "'[' after 'dense<'"))
    return true;

  bool IsFloat = Ty.Dtype == DType::F32;
  std::vector<float> Floats;
  std::vector<int64_t> Ints;
  auto [Min, Max] = integerRange(Ty.Dtype);
  while (!Tok.is(Token::Kind::RSquare)) {
    if ((!Floats.empty() || !Ints.empty()) &&
        expect(Token::Kind::Comma, "',' or ']' in tensor values"))
      return true;
    if (IsFloat) {
      Floats.emplace_back();
      if (parseFloat32(Floats.back(), "a float value"))
        return true;
      continue;
    }
    size_t ValueOffset = Tok.Offset;
    Ints.emplace_back();
    if (parseInteger(Ints.back(),
                     "an integer value for dtype " + dtypeName(Ty.Dtype)))
      return true;
    if (Ints.back() < Min || Ints.back() > Max)
      return error(ValueOffset, "value " + Twine(Ints.back()) +
                                    " is out of range for " +
                                    dtypeName(Ty.Dtype));
  }
  consume(); // ']'
  if (expect(Token::Kind::Greater, "'>' after tensor values"))
    return true;

  // parseTensorDecl checked the shape, so this count cannot overflow.
  int64_t Want = numElements(Ty.Dims);
  int64_t Got = static_cast<int64_t>(IsFloat ? Floats.size() : Ints.size());
  if (Got != Want)
    return error(DenseOffset, "expected " + Twine(Want) + " values for " +
                                  dtypeName(Ty.Dtype) + formatShape(Ty.Dims) +
                                  ", found " + Twine(Got));
  Out = makeTensor(Ty, Floats, Ints);
  return false;
}

/// An identifier or a string (for names the printer had to quote).
bool Parser::parseName(std::string &Out, const Twine &What) {
  if (Tok.is(Token::Kind::Identifier))
    Out = Tok.Spelling.str();
  else if (Tok.is(Token::Kind::String))
    Out = Tok.Value;
  else
    return errorExpected(What);
  consume();
  return false;
}

/// At '{': an attribute dict starts with `name =`, while a module body or
/// tensor block starts with a keyword followed by a name. An empty `{}` is
/// an attribute dict only if another block follows; otherwise it is an
/// empty body (for a module, both readings mean the same).
bool Parser::startsAttrDict() {
  if (!Tok.is(Token::Kind::LBrace))
    return false;
  if (peek(1).is(Token::Kind::RBrace))
    return peek(2).is(Token::Kind::LBrace);
  return peek(2).is(Token::Kind::Equal);
}

bool Parser::parseAttrDict(AttrMap &Attrs, DictKind Kind) {
  StringRef Noun = Kind == DictKind::Attributes ? "attribute" : "annotation";
  StringRef Dict = Kind == DictKind::Attributes ? "attribute dictionary"
                                                : "node annotations";
  consume(); // '{'
  if (Tok.is(Token::Kind::RBrace)) {
    consume();
    return false;
  }
  while (true) {
    size_t KeyOffset = Tok.Offset;
    std::string Key;
    ParsedValue V;
    Argument A;
    if (parseName(Key, Noun + " name") ||
        expect(Token::Kind::Equal, "'=' after " + Noun + " name") ||
        parseValue(V, 0) || toConstant(V, A, Kind))
      return true;
    if (!Attrs.emplace(Key, std::move(A)).second)
      return error(KeyOffset, "duplicate " + Noun + " '" + Key + "'");
    if (Tok.is(Token::Kind::RBrace)) {
      consume();
      return false;
    }
    if (expect(Token::Kind::Comma, "',' or '}' in " + Dict))
      return true;
  }
}

//===----------------------------------------------------------------------===//
// Types and values
//===----------------------------------------------------------------------===//

bool Parser::parseType(TensorType &Ty) {
  if (!Tok.is(Token::Kind::Identifier))
    return errorExpected("a dtype");
  std::optional<DType> DT = parseDType(Tok.Spelling);
  if (!DT)
    return error(Tok.Offset, "unknown dtype " + describe(Tok));
  Ty.Dtype = *DT;
  consume();
  if (parseShape(Ty.Dims))
    return true;
  if (Tok.is(Token::Kind::Less))
    return parseQuant(Ty.Quant);
  return false;
}

bool Parser::parseShape(Shape &Dims) {
  if (expect(Token::Kind::LSquare, "'[' after dtype"))
    return true;
  while (!Tok.is(Token::Kind::RSquare)) {
    if (!Dims.empty() && expect(Token::Kind::Comma, "',' or ']' in shape"))
      return true;
    int64_t D;
    if (parseInteger(D, "an integer extent in shape"))
      return true;
    Dims.push_back(D);
  }
  consume();
  return false;
}

bool Parser::parseQuant(QuantParams &Q) {
  consume(); // '<'
  auto Key = [&](StringRef Name) {
    if (!Tok.isIdentifier(Name))
      return errorExpected("'" + Name + "' in quantization parameters");
    consume();
    return expect(Token::Kind::Equal, "'=' after '" + Name + "'");
  };
  if (Tok.isIdentifier("scale")) {
    double Scale;
    int64_t ZeroPoint;
    if (Key("scale") || parseFloat(Scale, "a float scale") ||
        expect(Token::Kind::Comma, "',' after scale") || Key("zero_point") ||
        parseInteger(ZeroPoint, "an integer zero point") ||
        expect(Token::Kind::Greater, "'>' after quantization parameters"))
      return true;
    Q = QuantParams::perTensor(Scale, ZeroPoint);
    return false;
  }
  if (!Tok.isIdentifier("axis"))
    return errorExpected("'scale' or 'axis' in quantization parameters");
  int64_t Axis;
  std::vector<double> Scales;
  std::vector<int64_t> ZeroPoints;
  auto List = [&](auto &Out, auto ParseOne) {
    if (expect(Token::Kind::LSquare, "'['"))
      return true;
    while (!Tok.is(Token::Kind::RSquare)) {
      if (!Out.empty() && expect(Token::Kind::Comma, "',' or ']' in list"))
        return true;
      Out.emplace_back();
      if (ParseOne(Out.back()))
        return true;
    }
    consume();
    return false;
  };
  if (Key("axis") || parseInteger(Axis, "an integer axis") ||
      expect(Token::Kind::Comma, "',' after axis") || Key("scales") ||
      List(Scales, [&](double &S) { return parseFloat(S, "a float scale"); }) ||
      expect(Token::Kind::Comma, "',' after scales") || Key("zero_points") ||
      List(ZeroPoints,
           [&](int64_t &Z) {
             return parseInteger(Z, "an integer zero point");
           }) ||
      expect(Token::Kind::Greater, "'>' after quantization parameters"))
    return true;
  Q = QuantParams::perChannel(std::move(Scales), std::move(ZeroPoints), Axis);
  return false;
}

bool Parser::parseInteger(int64_t &V, const Twine &What) {
  if (!Tok.is(Token::Kind::Integer))
    return errorExpected(What);
  StringRef S = Tok.Spelling;
  auto [Ptr, Ec] = std::from_chars(S.begin(), S.end(), V);
  if (Ec != std::errc() || Ptr != S.end())
    return error(Tok.Offset, "integer " + describe(Tok) + " is out of range");
  consume();
  return false;
}

/// Whether \p T spells a float: a float literal, an int, or inf / nan.
static bool isFloatToken(const Token &T) {
  return T.is(Token::Kind::Float) || T.is(Token::Kind::Integer) ||
         T.isIdentifier("inf") || T.isIdentifier("nan");
}

bool Parser::parseFloat(double &V, const Twine &What) {
  if (!isFloatToken(Tok))
    return errorExpected(What);
  StringRef S = Tok.Spelling;
  auto [Ptr, Ec] = std::from_chars(S.begin(), S.end(), V);
  if (Ec != std::errc() || Ptr != S.end())
    return error(Tok.Offset, "float " + describe(Tok) + " is out of range");
  consume();
  return false;
}

/// f32 tensor values read straight into a float: the printer writes the
/// shortest spelling that reads back as the same float, which read as a
/// double and then narrowed could round differently.
bool Parser::parseFloat32(float &V, const Twine &What) {
  if (!isFloatToken(Tok))
    return errorExpected(What);
  StringRef S = Tok.Spelling;
  auto [Ptr, Ec] = std::from_chars(S.begin(), S.end(), V);
  if (Ec != std::errc() || Ptr != S.end())
    return error(Tok.Offset,
                 "float " + describe(Tok) + " is out of range for f32");
  consume();
  return false;
}

bool Parser::parseValue(ParsedValue &V, unsigned Depth) {
  V.Offset = Tok.Offset;
  switch (Tok.K) {
  case Token::Kind::ValueName:
    V.K = ParsedValue::Kind::Ref;
    V.Ref = Tok.Value;
    consume();
    return false;
  case Token::Kind::Integer: {
    int64_t I;
    if (parseInteger(I, "an integer"))
      return true;
    V.Constant = Argument::integer(I);
    return false;
  }
  case Token::Kind::String:
    V.Constant = Argument::string(Tok.Value);
    consume();
    return false;
  case Token::Kind::LSquare:
    break;
  default: {
    if (Tok.isIdentifier("true") || Tok.isIdentifier("false")) {
      V.Constant = Argument::boolean(Tok.Spelling == "true");
      consume();
      return false;
    }
    if (Tok.isIdentifier("none")) {
      V.Constant = Argument::none();
      consume();
      return false;
    }
    if (!isFloatToken(Tok))
      return errorExpected("a value");
    double D;
    if (parseFloat(D, "a value"))
      return true;
    V.Constant = Argument::real(D);
    return false;
  }
  }

  if (Depth >= MaxListDepth)
    return error(Tok.Offset, "lists are nested too deeply (more than " +
                                 Twine(MaxListDepth) + " levels)");
  V.K = ParsedValue::Kind::List;
  consume(); // '['
  while (!Tok.is(Token::Kind::RSquare)) {
    if (!V.Elems.empty() && expect(Token::Kind::Comma, "',' or ']' in list"))
      return true;
    V.Elems.emplace_back();
    if (parseValue(V.Elems.back(), Depth + 1))
      return true;
  }
  consume();
  return false;
}

/// Module attributes and node annotations are constants: a node reference
/// is an error.
bool Parser::toConstant(const ParsedValue &V, Argument &Out, DictKind Kind) {
  switch (V.K) {
  case ParsedValue::Kind::Constant:
    Out = V.Constant;
    return false;
  case ParsedValue::Kind::Ref:
    if (Kind == DictKind::Annotations)
      return error(V.Offset, "node annotations cannot refer to nodes");
    return error(V.Offset, "node reference '%" + V.Ref +
                               "' is not allowed in a module attribute");
  case ParsedValue::Kind::List: {
    std::vector<Argument> Elems(V.Elems.size());
    for (size_t I = 0; I < Elems.size(); ++I)
      if (toConstant(V.Elems[I], Elems[I], Kind))
        return true;
    Out = Argument::list(std::move(Elems));
    return false;
  }
  }
  return false;
}

//===----------------------------------------------------------------------===//
// Graph
//===----------------------------------------------------------------------===//

bool Parser::parseGraph() {
  consume(); // 'graph'
  if (expect(Token::Kind::LBrace, "'{' after 'graph'"))
    return true;
  while (!Tok.is(Token::Kind::RBrace)) {
    if (!Tok.is(Token::Kind::ValueName))
      return errorExpected("a node ('%name = ...') or '}'");
    Nodes.emplace_back();
    if (parseNode(Nodes.back()))
      return true;
  }
  consume();
  return false;
}

bool Parser::parseNode(ParsedNode &N) {
  N.Name = Tok.Value;
  N.Offset = Tok.Offset;
  auto [It, Inserted] = Defined.try_emplace(N.Name, N.Offset);
  if (!Inserted)
    return error(N.Offset, "redefinition of value '%" + N.Name +
                               "' (first defined at line " +
                               Twine(Lex.lineAndColumn(It->second).first) +
                               ")");
  consume();
  if (Tok.is(Token::Kind::Colon)) {
    consume();
    N.Type.emplace();
    size_t TypeOffset = Tok.Offset;
    if (parseType(*N.Type))
      return true;
    // The same bound as the JSON loader's, so that what parses here can be
    // saved as JSON and loaded again, and tensors of this type allocated.
    if (Expected<int64_t> Count = checkedNumElements(N.Type->Dims); !Count)
      return error(TypeOffset, "value '%" + N.Name +
                                   "': " + errorToString(Count.takeError()));
  }
  if (expect(Token::Kind::Equal,
             N.Type ? "'=' after node type" : "':' or '=' after value name"))
    return true;

  if (!Tok.is(Token::Kind::Identifier))
    return errorExpected("an opcode");
  std::optional<OpCode> Op = parseOpCode(Tok.Spelling);
  if (!Op)
    return error(Tok.Offset, "unknown opcode " + describe(Tok));
  N.Op = *Op;
  consume();

  if (expect(Token::Kind::LSquare, "'[' after opcode"))
    return true;
  relexAsQualifiedName();
  if (Tok.is(Token::Kind::QualifiedName))
    N.Target = Tok.Spelling.str();
  else if (Tok.is(Token::Kind::String))
    N.Target = Tok.Value;
  else
    return errorExpected("a target name");
  consume();
  if (expect(Token::Kind::RSquare, "']' after target"))
    return true;

  if (Tok.is(Token::Kind::LParen) && parseArgList(N))
    return true;
  if (Tok.isIdentifier("scope") && parseScope(N))
    return true;
  if (Tok.isIdentifier("meta"))
    return parseMeta(N);
  return false;
}

bool Parser::parseScope(ParsedNode &N) {
  consume(); // 'scope'
  if (expect(Token::Kind::LParen, "'(' after 'scope'"))
    return true;
  if (!Tok.is(Token::Kind::String))
    return errorExpected("a string scope");
  N.Scope = Tok.Value;
  consume();
  return expect(Token::Kind::RParen, "')' after scope");
}

/// Annotations are constants, so they are final here, unlike arguments.
bool Parser::parseMeta(ParsedNode &N) {
  consume(); // 'meta'
  if (!Tok.is(Token::Kind::LBrace))
    return errorExpected("'{' after 'meta'");
  return parseAttrDict(N.Meta, DictKind::Annotations);
}

bool Parser::parseArgList(ParsedNode &N) {
  consume(); // '('
  if (Tok.is(Token::Kind::RParen)) {
    consume();
    return false;
  }
  while (true) {
    bool IsKwarg =
        (Tok.is(Token::Kind::Identifier) || Tok.is(Token::Kind::String)) &&
        peek().is(Token::Kind::Equal);
    if (IsKwarg) {
      size_t KeyOffset = Tok.Offset;
      std::string Key;
      if (parseName(Key, "keyword name"))
        return true;
      consume(); // '='
      if (llvm::any_of(N.KwArgs,
                       [&](const auto &KV) { return KV.first == Key; }))
        return error(KeyOffset, "duplicate keyword argument '" + Key + "'");
      N.KwArgs.emplace_back(Key, ParsedValue());
      if (parseValue(N.KwArgs.back().second, 0))
        return true;
    } else {
      if (!N.KwArgs.empty())
        return error(Tok.Offset, "positional argument after keyword argument");
      N.Args.emplace_back();
      if (parseValue(N.Args.back(), 0))
        return true;
    }
    if (Tok.is(Token::Kind::RParen)) {
      consume();
      return false;
    }
    if (expect(Token::Kind::Comma, "',' or ')' in argument list"))
      return true;
  }
}

/// Creates every node first and sets arguments afterwards, so references
/// may point forward. Use lists then follow node order, as if the graph had
/// been built front to back.
bool Parser::buildGraph() {
  Graph &G = GM->graph();
  for (ParsedNode &PN : Nodes) {
    Expected<Node *> N = G.createNamed(PN.Op, PN.Name, PN.Target);
    if (!N)
      return error(PN.Offset, errorToString(N.takeError()));
    (*N)->setType(PN.Type);
    (*N)->setScope(PN.Scope);
    for (auto &[Key, Value] : PN.Meta)
      (*N)->setMeta(Key, std::move(Value));
  }
  for (ParsedNode &PN : Nodes) {
    std::vector<Argument> Args(PN.Args.size());
    for (size_t I = 0; I < Args.size(); ++I)
      if (resolve(PN.Args[I], Args[I]))
        return true;
    Kwargs KwArgs;
    for (auto &[Key, Value] : PN.KwArgs) {
      KwArgs.emplace_back(Key, Argument());
      if (resolve(Value, KwArgs.back().second))
        return true;
    }
    Node *N = G.lookup(PN.Name);
    N->setArgs(std::move(Args));
    N->setKwargs(std::move(KwArgs));
  }
  return false;
}

bool Parser::resolve(const ParsedValue &V, Argument &Out) {
  switch (V.K) {
  case ParsedValue::Kind::Constant:
    Out = V.Constant;
    return false;
  case ParsedValue::Kind::Ref: {
    Node *N = GM->graph().lookup(V.Ref);
    if (!N)
      return error(V.Offset, "use of undefined value '%" + V.Ref + "'");
    Out = Argument(N);
    return false;
  }
  case ParsedValue::Kind::List: {
    std::vector<Argument> Elems(V.Elems.size());
    for (size_t I = 0; I < Elems.size(); ++I)
      if (resolve(V.Elems[I], Elems[I]))
        return true;
    Out = Argument::list(std::move(Elems));
    return false;
  }
  }
  return false;
}

} // namespace

Expected<std::unique_ptr<GraphModule>> parseGraphModule(StringRef Text,
                                                        StringRef BufferName) {
  return Parser(Text, BufferName).run();
}

} // namespace qfx
