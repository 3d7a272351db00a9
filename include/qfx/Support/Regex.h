//===- Regex.h - Linear-time regexes with Python re.match semantics -*- C++
//-*-//
//
// Regexes written by users (qconfig module_name_regex rules) are matched with
// this engine instead of std::regex, whose backtracking recursion overflows
// the stack on long inputs or deep nesting and can take exponential time.
// Patterns are bounded (length, nesting, program size) and compiled to an
// NFA program that a Thompson/Pike simulation runs in O(program x input)
// time with no recursion. Syntax and matching follow Python's re (str
// patterns, no flags); anything outside the supported subset is an error.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_SUPPORT_REGEX_H
#define QFX_SUPPORT_REGEX_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <string>
#include <vector>

namespace qfx {

/// A compiled regex. Supported syntax (Python re): literals; escaped
/// punctuation (\. \\ ...), \n \t \r \f \v \a \0 \xhh \uhhhh \Uhhhhhhhh, \d \D
/// \w \W \s \S (Unicode classes, as Python's), \A \Z \b \B; `.` (anything but a
/// newline); sets [...] and [^...] with ranges and class escapes; anchors ^ $;
/// groups ( ) and (?: ); alternation |; quantifiers * + ? {m} {m,} {,n} {m,n}
/// and their lazy forms. Backreferences, lookaround, named groups, inline
/// flags, atomic groups and possessive quantifiers are rejected.
class Regex {
public:
  /// Longest pattern accepted, in characters.
  static constexpr size_t MaxPatternLength = 4096;
  /// Deepest nesting of groups accepted.
  static constexpr unsigned MaxNesting = 64;
  /// Largest repetition count accepted in {m,n}.
  static constexpr unsigned MaxRepeat = 1000;
  /// Largest compiled program accepted, in NFA states.
  static constexpr size_t MaxProgramSize = 10000;

  /// Compiles \p Pattern (UTF-8). Errors say what is wrong and at which
  /// character offset, e.g. "unsupported regex syntax '(?<=' at offset 3";
  /// the caller adds which rule the pattern came from.
  static llvm::Expected<Regex> compile(llvm::StringRef Pattern);

  /// Whether the pattern matches a prefix of \p Text (UTF-8), as Python's
  /// re.match(pattern, text) is truthy: the match starts at the first
  /// character and need not reach the end.
  bool matchPrefix(llvm::StringRef Text) const;

  /// The number of NFA states of the compiled program.
  size_t programSize() const { return Prog.size(); }

  /// One NFA state (public only so the compiler in Regex.cpp can build it).
  struct Inst {
    enum Kind : uint8_t {
      Char,   ///< consumes code point Arg
      Any,    ///< consumes any code point but '\n'
      Set,    ///< consumes a code point in Sets[Arg]
      Split,  ///< continues at both Arg and Arg2
      Jump,   ///< continues at Arg
      Assert, ///< zero-width test AssertKind(Arg)
      Match,  ///< the pattern has matched
    };
    Kind K;
    uint32_t Arg = 0;
    uint32_t Arg2 = 0;
  };
  /// A character set: sorted, disjoint, inclusive code point ranges.
  struct CharSet {
    std::vector<std::pair<uint32_t, uint32_t>> Ranges;
    bool contains(uint32_t C) const;
  };

private:
  friend class RegexCompiler;
  std::vector<Inst> Prog;
  std::vector<CharSet> Sets;
};

} // namespace qfx

#endif // QFX_SUPPORT_REGEX_H
