//===- Lexer.h - Tokens of the textual IR -----------------------*- C++ -*-===//
//
// A hand-written lexer for the text form in docs/ir.md. It never fails
// eagerly: malformed input becomes an Error token carrying a message, which
// the parser reports at the token's position.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_LIB_IR_LEXER_H
#define QFX_LIB_IR_LEXER_H

#include "llvm/ADT/StringRef.h"

#include <cstddef>
#include <string>
#include <utility>

namespace qfx {

/// One token. Spelling points into the buffer, except for String tokens
/// whose decoded contents live in Value.
struct Token {
  enum class Kind {
    Eof,
    Error,         ///< Malformed input; Value holds the message.
    Identifier,    ///< [A-Za-z_][A-Za-z0-9_]*, including keywords.
    ValueName,     ///< %name; Value holds the name without '%'.
    Integer,       ///< -?[0-9]+
    Float,         ///< A number with '.' or exponent, or -inf / -nan.
    String,        ///< "..."; Value holds the decoded bytes.
    QualifiedName, ///< Only from lexQualifiedName: a.0.b
    LBrace,
    RBrace,
    LSquare,
    RSquare,
    LParen,
    RParen,
    Less,
    Greater,
    Comma,
    Colon,
    Equal,
  };

  Kind K = Kind::Eof;
  llvm::StringRef Spelling;
  /// Byte offset of the first character in the buffer.
  size_t Offset = 0;
  std::string Value;

  bool is(Kind Other) const { return K == Other; }
  bool isIdentifier(llvm::StringRef Word) const {
    return K == Kind::Identifier && Spelling == Word;
  }
};

/// Splits a buffer into tokens on demand. The only state is the position,
/// so the parser can peek ahead and re-lex a token in another mode.
class Lexer {
public:
  explicit Lexer(llvm::StringRef Buffer) : Buf(Buffer) {}

  /// The next token in the normal mode.
  Token lex();
  /// The next token read as a qualified name ("layer1.0.conv1": segments of
  /// [A-Za-z0-9_]+ joined by '.'), used for targets and module names whose
  /// segments may start with digits. Anything else lexes normally.
  Token lexQualifiedName();

  size_t position() const { return Pos; }
  void resetTo(size_t Offset) { Pos = Offset; }

  /// 1-based line and column of \p Offset.
  std::pair<unsigned, unsigned> lineAndColumn(size_t Offset) const;

private:
  void skipWhitespaceAndComments();
  Token make(Token::Kind K, size_t Start);
  Token makeError(size_t Start, std::string Message);
  Token lexNumber(size_t Start);
  Token lexString(size_t Start);
  Token lexIdentifier(size_t Start);
  Token lexValueName(size_t Start);

  llvm::StringRef Buf;
  size_t Pos = 0;
};

/// Whether \p C may appear in an identifier after the first character.
inline bool isIdentifierChar(char C) {
  return (C >= 'a' && C <= 'z') || (C >= 'A' && C <= 'Z') ||
         (C >= '0' && C <= '9') || C == '_';
}

/// Two lower-case hex digits for \p C ("0a"), as in the `\xHH` escape.
inline std::string hexByte(unsigned char C) {
  const char *Digits = "0123456789abcdef";
  return {Digits[C >> 4], Digits[C & 15]};
}

} // namespace qfx

#endif // QFX_LIB_IR_LEXER_H
