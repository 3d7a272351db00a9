//===- Lexer.cpp - Tokens of the textual IR -------------------------------===//

#include "Lexer.h"

#include "llvm/ADT/StringExtras.h"

using namespace llvm;

namespace qfx {

static bool isDigit(char C) { return C >= '0' && C <= '9'; }

static bool isIdentifierStart(char C) {
  return (C >= 'a' && C <= 'z') || (C >= 'A' && C <= 'Z') || C == '_';
}

/// A character for a message: quoted when printable, hex otherwise, so that
/// binary garbage cannot corrupt the diagnostic.
static std::string describeChar(char C) {
  unsigned char U = static_cast<unsigned char>(C);
  if (U >= 0x20 && U < 0x7f)
    return "'" + std::string(1, C) + "'";
  return "byte 0x" + hexByte(U);
}

std::pair<unsigned, unsigned> Lexer::lineAndColumn(size_t Offset) const {
  Offset = std::min(Offset, Buf.size());
  unsigned Line = 1;
  size_t LineStart = 0;
  for (size_t I = 0; I < Offset; ++I)
    if (Buf[I] == '\n') {
      ++Line;
      LineStart = I + 1;
    }
  return {Line, static_cast<unsigned>(Offset - LineStart + 1)};
}

void Lexer::skipWhitespaceAndComments() {
  while (Pos < Buf.size()) {
    char C = Buf[Pos];
    if (C == ' ' || C == '\t' || C == '\n' || C == '\r') {
      ++Pos;
    } else if (C == '/' && Pos + 1 < Buf.size() && Buf[Pos + 1] == '/') {
      while (Pos < Buf.size() && Buf[Pos] != '\n')
        ++Pos;
    } else {
      return;
    }
  }
}

Token Lexer::make(Token::Kind K, size_t Start) {
  Token T;
  T.K = K;
  T.Offset = Start;
  T.Spelling = Buf.slice(Start, Pos);
  return T;
}

Token Lexer::makeError(size_t Start, std::string Message) {
  Token T;
  T.K = Token::Kind::Error;
  T.Offset = Start;
  T.Spelling = Buf.slice(Start, std::max(Pos, Start));
  T.Value = std::move(Message);
  return T;
}

Token Lexer::lex() {
  skipWhitespaceAndComments();
  size_t Start = Pos;
  if (Pos >= Buf.size())
    return make(Token::Kind::Eof, Start);

  char C = Buf[Pos];
  if (isIdentifierStart(C))
    return lexIdentifier(Start);
  if (isDigit(C) || C == '-')
    return lexNumber(Start);
  if (C == '"')
    return lexString(Start);
  if (C == '%')
    return lexValueName(Start);

  ++Pos;
  switch (C) {
  case '{':
    return make(Token::Kind::LBrace, Start);
  case '}':
    return make(Token::Kind::RBrace, Start);
  case '[':
    return make(Token::Kind::LSquare, Start);
  case ']':
    return make(Token::Kind::RSquare, Start);
  case '(':
    return make(Token::Kind::LParen, Start);
  case ')':
    return make(Token::Kind::RParen, Start);
  case '<':
    return make(Token::Kind::Less, Start);
  case '>':
    return make(Token::Kind::Greater, Start);
  case ',':
    return make(Token::Kind::Comma, Start);
  case ':':
    return make(Token::Kind::Colon, Start);
  case '=':
    return make(Token::Kind::Equal, Start);
  default:
    return makeError(Start, "unexpected character " + describeChar(C));
  }
}

Token Lexer::lexIdentifier(size_t Start) {
  while (Pos < Buf.size() && isIdentifierChar(Buf[Pos]))
    ++Pos;
  return make(Token::Kind::Identifier, Start);
}

Token Lexer::lexValueName(size_t Start) {
  ++Pos; // '%'
  if (Pos >= Buf.size() || !isIdentifierStart(Buf[Pos]))
    return makeError(Start, "expected a value name after '%'");
  while (Pos < Buf.size() && isIdentifierChar(Buf[Pos]))
    ++Pos;
  Token T = make(Token::Kind::ValueName, Start);
  T.Value = T.Spelling.drop_front().str();
  return T;
}

Token Lexer::lexNumber(size_t Start) {
  auto DigitsAt = [&](size_t P) { return P < Buf.size() && isDigit(Buf[P]); };
  bool IsFloat = false;
  if (Buf[Pos] == '-')
    ++Pos;
  StringRef Rest = Buf.drop_front(Pos);
  if ((Rest.startswith("inf") || Rest.startswith("nan")) &&
      (Rest.size() == 3 || !isIdentifierChar(Rest[3]))) {
    Pos += 3;
    return make(Token::Kind::Float, Start);
  }
  if (!DigitsAt(Pos))
    return makeError(Start, "expected a number after '-'");
  while (DigitsAt(Pos))
    ++Pos;
  if (Pos < Buf.size() && Buf[Pos] == '.' && DigitsAt(Pos + 1)) {
    IsFloat = true;
    ++Pos;
    while (DigitsAt(Pos))
      ++Pos;
  }
  if (Pos < Buf.size() && (Buf[Pos] == 'e' || Buf[Pos] == 'E')) {
    size_t P = Pos + 1;
    if (P < Buf.size() && (Buf[P] == '+' || Buf[P] == '-'))
      ++P;
    if (DigitsAt(P)) {
      IsFloat = true;
      Pos = P;
      while (DigitsAt(Pos))
        ++Pos;
    }
  }
  // "1abc", "1.", "1.2.3" and "1e" are one malformed word, not a number
  // followed by something else.
  if (Pos < Buf.size() && (isIdentifierChar(Buf[Pos]) || Buf[Pos] == '.')) {
    while (Pos < Buf.size() && (isIdentifierChar(Buf[Pos]) || Buf[Pos] == '.'))
      ++Pos;
    return makeError(Start, "invalid number '" +
                                Buf.slice(Start, Pos).take_front(40).str() +
                                "'");
  }
  return make(IsFloat ? Token::Kind::Float : Token::Kind::Integer, Start);
}

Token Lexer::lexString(size_t Start) {
  ++Pos; // '"'
  std::string Value;
  while (true) {
    if (Pos >= Buf.size() || Buf[Pos] == '\n')
      return makeError(Start, "unterminated string");
    char C = Buf[Pos];
    if (C == '"') {
      ++Pos;
      break;
    }
    if (C != '\\') {
      Value.push_back(C);
      ++Pos;
      continue;
    }
    size_t EscapeStart = Pos;
    ++Pos;
    if (Pos >= Buf.size() || Buf[Pos] == '\n')
      return makeError(Start, "unterminated string");
    char E = Buf[Pos++];
    switch (E) {
    case '\\':
    case '"':
      Value.push_back(E);
      break;
    case 'n':
      Value.push_back('\n');
      break;
    case 't':
      Value.push_back('\t');
      break;
    case 'x': {
      if (Pos + 2 > Buf.size() || !isHexDigit(Buf[Pos]) ||
          !isHexDigit(Buf[Pos + 1]))
        return makeError(EscapeStart, "expected two hex digits after '\\x'");
      Value.push_back(
          static_cast<char>(hexFromNibbles(Buf[Pos], Buf[Pos + 1])));
      Pos += 2;
      break;
    }
    default:
      return makeError(
          EscapeStart,
          "invalid escape sequence '\\" +
              (static_cast<unsigned char>(E) >= 0x20 &&
                       static_cast<unsigned char>(E) < 0x7f
                   ? std::string(1, E)
                   : "x" + hexByte(static_cast<unsigned char>(E))) +
              "'");
    }
  }
  Token T = make(Token::Kind::String, Start);
  T.Value = std::move(Value);
  return T;
}

Token Lexer::lexQualifiedName() {
  skipWhitespaceAndComments();
  size_t Start = Pos;
  if (Pos >= Buf.size() || !isIdentifierChar(Buf[Pos]))
    return lex();
  while (true) {
    while (Pos < Buf.size() && isIdentifierChar(Buf[Pos]))
      ++Pos;
    if (Pos >= Buf.size() || Buf[Pos] != '.')
      break;
    if (Pos + 1 >= Buf.size() || !isIdentifierChar(Buf[Pos + 1])) {
      ++Pos;
      return makeError(Start, "expected a name segment after '.' in '" +
                                  Buf.slice(Start, Pos).take_front(40).str() +
                                  "'");
    }
    ++Pos;
  }
  return make(Token::Kind::QualifiedName, Start);
}

} // namespace qfx
