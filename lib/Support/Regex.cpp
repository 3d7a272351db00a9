//===- Regex.cpp - Linear-time regexes with Python re.match semantics ----===//
//
// A pattern is parsed (recursion bounded by the nesting limit) into a small
// syntax tree, compiled to an NFA program, and run by a Thompson/Pike state-
// set simulation: every step advances all live states by one input
// character, so matching takes O(program x input) time and constant stack.
// The parser follows Python 3.11's re/_parser.py where the syntax overlaps
// (which `{` is a literal, which escapes are bad, the `]` first in a set).
//
//===----------------------------------------------------------------------===//

#include "qfx/Support/Regex.h"

#include "qfx/Support/Error.h"

#include "llvm/ADT/Twine.h"

#include <algorithm>
#include <optional>

using namespace llvm;

namespace qfx {

namespace {

struct CodeRange {
  uint32_t Lo, Hi;
};

#include "RegexUnicode.inc"

constexpr uint32_t MaxCodePoint = 0x10FFFF;
constexpr unsigned Unbounded = ~0u;

enum AssertKind : uint32_t {
  AtBeginning,   ///< ^ and \A
  AtEnd,         ///< $: the end, or before a final newline
  AtEndAbsolute, ///< \Z
  AtBoundary,    ///< \b
  AtNonBoundary, ///< \B
};

/// Decodes UTF-8. A byte that starts no valid sequence becomes the lone
/// surrogate U+DC80..U+DCFF, as Python's "surrogateescape" decodes it: any
/// input has a meaning, nothing is skipped, and no stray byte passes for a
/// valid character.
std::vector<uint32_t> decodeUtf8(StringRef S) {
  std::vector<uint32_t> Out;
  Out.reserve(S.size());
  const auto *P = reinterpret_cast<const unsigned char *>(S.data());
  size_t N = S.size();
  for (size_t I = 0; I < N;) {
    unsigned char B = P[I];
    unsigned Len = B < 0x80         ? 1
                   : (B >> 5) == 6  ? 2
                   : (B >> 4) == 14 ? 3
                   : (B >> 3) == 30 ? 4
                                    : 0;
    uint32_t C = Len == 1   ? B
                 : Len == 2 ? B & 0x1F
                 : Len == 3 ? B & 0x0F
                            : B & 0x07;
    bool Ok = Len > 1 && I + Len <= N;
    for (unsigned K = 1; Ok && K < Len; ++K) {
      Ok = (P[I + K] & 0xC0) == 0x80;
      C = (C << 6) | (P[I + K] & 0x3F);
    }
    if (Len == 1 || Ok) {
      Out.push_back(C);
      I += Len;
    } else {
      Out.push_back(0xDC00 + B);
      ++I;
    }
  }
  return Out;
}

template <size_t N> bool inTable(const CodeRange (&T)[N], uint32_t C) {
  const CodeRange *It = std::upper_bound(
      T, T + N, C, [](uint32_t V, const CodeRange &R) { return V < R.Lo; });
  return It != T && C <= (It - 1)->Hi;
}

bool isWord(uint32_t C) { return inTable(WordRanges, C); }

/// Appends the ranges of \p T, or of its complement when \p Negate.
template <size_t N>
void addTable(Regex::CharSet &S, const CodeRange (&T)[N], bool Negate) {
  if (!Negate) {
    for (const CodeRange &R : T)
      S.Ranges.push_back({R.Lo, R.Hi});
    return;
  }
  uint32_t Next = 0;
  for (const CodeRange &R : T) {
    if (R.Lo > Next)
      S.Ranges.push_back({Next, R.Lo - 1});
    Next = R.Hi + 1;
  }
  if (Next <= MaxCodePoint)
    S.Ranges.push_back({Next, MaxCodePoint});
}

/// Sorts and merges the ranges of \p S, then complements them if \p Negate.
void normalize(Regex::CharSet &S, bool Negate) {
  auto &R = S.Ranges;
  std::sort(R.begin(), R.end());
  std::vector<std::pair<uint32_t, uint32_t>> Merged;
  for (const auto &P : R) {
    if (!Merged.empty() && P.first <= Merged.back().second + 1)
      Merged.back().second = std::max(Merged.back().second, P.second);
    else
      Merged.push_back(P);
  }
  if (Negate) {
    std::vector<std::pair<uint32_t, uint32_t>> Comp;
    uint32_t Next = 0;
    for (const auto &P : Merged) {
      if (P.first > Next)
        Comp.push_back({Next, P.first - 1});
      Next = P.second + 1;
    }
    if (Next <= MaxCodePoint)
      Comp.push_back({Next, MaxCodePoint});
    Merged = std::move(Comp);
  }
  R = std::move(Merged);
}

/// A parsed pattern. Groups leave no node of their own.
struct Node {
  enum Kind { Empty, Char, Any, Set, Assert, Concat, Alt, Repeat } K = Empty;
  uint32_t Val = 0; ///< the code point, set index or AssertKind
  unsigned Min = 0, Max = 0;
  std::vector<Node> Kids;
};

bool isDigit(uint32_t C) { return C >= '0' && C <= '9'; }
bool isOctal(uint32_t C) { return C >= '0' && C <= '7'; }
bool isAsciiAlnum(uint32_t C) {
  return isDigit(C) || (C >= 'a' && C <= 'z') || (C >= 'A' && C <= 'Z');
}
int hexValue(uint32_t C) {
  if (isDigit(C))
    return int(C - '0');
  if (C >= 'a' && C <= 'f')
    return int(C - 'a' + 10);
  if (C >= 'A' && C <= 'F')
    return int(C - 'A' + 10);
  return -1;
}

} // namespace

bool Regex::CharSet::contains(uint32_t C) const {
  auto It =
      std::upper_bound(Ranges.begin(), Ranges.end(), C,
                       [](uint32_t V, const std::pair<uint32_t, uint32_t> &R) {
                         return V < R.first;
                       });
  return It != Ranges.begin() && C <= (It - 1)->second;
}

/// Parses a pattern and compiles it into a Regex.
class RegexCompiler {
public:
  explicit RegexCompiler(std::vector<uint32_t> Pattern)
      : P(std::move(Pattern)) {}

  Expected<Regex> run();

private:
  std::vector<uint32_t> P;
  size_t Pos = 0;
  Regex R;

  bool atEnd() const { return Pos >= P.size(); }
  uint32_t peek(size_t Ahead = 0) const {
    return Pos + Ahead < P.size() ? P[Pos + Ahead] : ~0u;
  }
  /// The pattern text from \p From to the current position, as UTF-8.
  std::string text(size_t From, size_t To) const;
  Error error(const Twine &Msg, size_t Offset) const {
    return makeError(Msg + " at offset " + Twine(Offset));
  }
  Error unsupported(size_t From, size_t To) const {
    return error("unsupported regex syntax '" + text(From, To) + "'", From);
  }

  Expected<Node> parseAlternation(unsigned Depth);
  Expected<Node> parseConcatenation(unsigned Depth);
  Expected<Node> parseAtom(unsigned Depth);
  Expected<Node> parseGroup(unsigned Depth);
  Expected<Node> parseEscape();
  Expected<Node> parseSet();
  /// Parses one member of a set at the current position: returns its code
  /// point, or nothing after adding a class escape's ranges to \p S.
  Expected<std::optional<uint32_t>> parseSetItem(Regex::CharSet &S);
  Expected<uint32_t> parseNumericEscape(size_t Start, uint32_t Kind);
  /// Parses a {m}, {m,}, {,n} or {m,n} at the current position. Returns
  /// false, consuming nothing, when it is no repetition (then `{` is a
  /// literal, as in Python).
  Expected<bool> parseBraces(unsigned &Min, unsigned &Max);
  Expected<bool> parseQuantifier(unsigned &Min, unsigned &Max);
  Node setNode(Regex::CharSet S);

  Error emit(const Node &N);
  Error push(Regex::Inst I);
};

std::string RegexCompiler::text(size_t From, size_t To) const {
  std::string S;
  for (size_t I = From; I < To && I < P.size(); ++I) {
    uint32_t C = P[I];
    if (C < 0x80) {
      S += char(C);
    } else if (C < 0x800) {
      S += char(0xC0 | (C >> 6));
      S += char(0x80 | (C & 0x3F));
    } else if (C < 0x10000) {
      S += char(0xE0 | (C >> 12));
      S += char(0x80 | ((C >> 6) & 0x3F));
      S += char(0x80 | (C & 0x3F));
    } else {
      S += char(0xF0 | (C >> 18));
      S += char(0x80 | ((C >> 12) & 0x3F));
      S += char(0x80 | ((C >> 6) & 0x3F));
      S += char(0x80 | (C & 0x3F));
    }
  }
  return S;
}

Node RegexCompiler::setNode(Regex::CharSet S) {
  Node N;
  N.K = Node::Set;
  N.Val = uint32_t(R.Sets.size());
  R.Sets.push_back(std::move(S));
  return N;
}

Expected<Node> RegexCompiler::parseAlternation(unsigned Depth) {
  Node Alt;
  Alt.K = Node::Alt;
  while (true) {
    Expected<Node> Branch = parseConcatenation(Depth);
    if (!Branch)
      return Branch.takeError();
    Alt.Kids.push_back(std::move(*Branch));
    if (peek() != '|')
      break;
    ++Pos;
  }
  if (Alt.Kids.size() == 1)
    return std::move(Alt.Kids.front());
  return Alt;
}

Expected<Node> RegexCompiler::parseConcatenation(unsigned Depth) {
  Node Cat;
  Cat.K = Node::Concat;
  while (!atEnd() && peek() != '|' && peek() != ')') {
    bool Group = peek() == '(';
    Expected<Node> Atom = parseAtom(Depth);
    if (!Atom)
      return Atom.takeError();
    size_t QuantStart = Pos;
    unsigned Min, Max;
    Expected<bool> Quantified = parseQuantifier(Min, Max);
    if (!Quantified)
      return Quantified.takeError();
    if (!*Quantified) {
      Cat.Kids.push_back(std::move(*Atom));
      continue;
    }
    // Python repeats a group holding only an assertion, but no bare one.
    if (Atom->K == Node::Assert && !Group)
      return error("nothing to repeat", QuantStart);
    // Lazy and greedy repetitions accept the same strings.
    if (peek() == '?')
      ++Pos;
    else if (peek() == '+')
      return unsupported(QuantStart, Pos + 1);
    size_t Again = Pos;
    unsigned Min2, Max2;
    Expected<bool> Twice = parseQuantifier(Min2, Max2);
    if (!Twice)
      return Twice.takeError();
    if (*Twice)
      return error("multiple repeat", Again);
    Node Rep;
    Rep.K = Node::Repeat;
    Rep.Min = Min;
    Rep.Max = Max;
    Rep.Kids.push_back(std::move(*Atom));
    Cat.Kids.push_back(std::move(Rep));
  }
  if (Cat.Kids.size() == 1)
    return std::move(Cat.Kids.front());
  if (Cat.Kids.empty())
    return Node();
  return Cat;
}

Expected<bool> RegexCompiler::parseQuantifier(unsigned &Min, unsigned &Max) {
  switch (peek()) {
  case '*':
    ++Pos;
    Min = 0, Max = Unbounded;
    return true;
  case '+':
    ++Pos;
    Min = 1, Max = Unbounded;
    return true;
  case '?':
    ++Pos;
    Min = 0, Max = 1;
    return true;
  case '{':
    return parseBraces(Min, Max);
  default:
    return false;
  }
}

Expected<bool> RegexCompiler::parseBraces(unsigned &Min, unsigned &Max) {
  size_t Start = Pos, I = Pos + 1;
  auto Number = [&](bool &Present, uint64_t &Value) {
    Present = false;
    Value = 0;
    while (I < P.size() && isDigit(P[I])) {
      Present = true;
      Value = std::min<uint64_t>(Value * 10 + (P[I] - '0'), 1u << 30);
      ++I;
    }
  };
  if (I < P.size() && P[I] == '}')
    return false; // "{}" is two literals
  bool HasLo, HasHi;
  uint64_t Lo, Hi;
  Number(HasLo, Lo);
  if (I < P.size() && P[I] == ',') {
    ++I;
    Number(HasHi, Hi);
  } else {
    HasHi = HasLo;
    Hi = Lo;
  }
  if (I >= P.size() || P[I] != '}')
    return false;
  Pos = I + 1;
  if ((HasLo && Lo > Regex::MaxRepeat) || (HasHi && Hi > Regex::MaxRepeat))
    return error("repetition count above " + Twine(Regex::MaxRepeat), Start);
  Min = HasLo ? unsigned(Lo) : 0;
  Max = HasHi ? unsigned(Hi) : Unbounded;
  if (Max < Min)
    return error("min repeat greater than max repeat", Start);
  return true;
}

Expected<Node> RegexCompiler::parseAtom(unsigned Depth) {
  size_t Start = Pos;
  uint32_t C = P[Pos];
  Node N;
  switch (C) {
  case '(':
    return parseGroup(Depth);
  case '[':
    return parseSet();
  case '\\':
    return parseEscape();
  case '.':
    ++Pos;
    N.K = Node::Any;
    return N;
  case '^':
  case '$':
    ++Pos;
    N.K = Node::Assert;
    N.Val = C == '^' ? AtBeginning : AtEnd;
    return N;
  case '*':
  case '+':
  case '?':
    return error("nothing to repeat", Start);
  case '{': {
    unsigned Min, Max;
    Expected<bool> IsRepeat = parseBraces(Min, Max);
    if (!IsRepeat)
      return IsRepeat.takeError();
    if (*IsRepeat)
      return error("nothing to repeat", Start);
    break;
  }
  default:
    break;
  }
  ++Pos;
  N.K = Node::Char;
  N.Val = C;
  return N;
}

Expected<Node> RegexCompiler::parseGroup(unsigned Depth) {
  size_t Open = Pos;
  if (Depth >= Regex::MaxNesting)
    return error("nesting deeper than " + Twine(Regex::MaxNesting) + " groups",
                 Open);
  ++Pos;
  if (peek() == '?') {
    if (peek(1) != ':') {
      // Name the construct: "(?=", "(?<=", "(?P<", "(?i", ...
      size_t End = std::min(P.size(), Pos + 2);
      if (End < P.size() && (P[End - 1] == '<' || P[End - 1] == 'P'))
        ++End;
      return unsupported(Open, End);
    }
    Pos += 2;
  }
  Expected<Node> Inner = parseAlternation(Depth + 1);
  if (!Inner)
    return Inner.takeError();
  if (peek() != ')')
    return error("missing ')' for the group opened", Open);
  ++Pos;
  return Inner;
}

Expected<uint32_t> RegexCompiler::parseNumericEscape(size_t Start,
                                                     uint32_t Kind) {
  if (Kind == '0' || isOctal(Kind)) {
    // Python: \0 takes up to two more octal digits; inside a set, \1..\7
    // do too (outside a set those are backreferences, rejected earlier).
    uint32_t V = Kind - '0';
    for (unsigned K = 0; K < 2 && isOctal(peek()); ++K)
      V = V * 8 + (P[Pos++] - '0');
    if (V > 0377)
      return error("octal escape '" + text(Start, Pos) + "' above \\377",
                   Start);
    return V;
  }
  unsigned Digits = Kind == 'x' ? 2 : Kind == 'u' ? 4 : 8;
  uint32_t V = 0;
  for (unsigned K = 0; K < Digits; ++K) {
    int H = hexValue(peek());
    if (H < 0)
      return error("incomplete escape '" + text(Start, Pos) + "'", Start);
    V = V * 16 + uint32_t(H);
    ++Pos;
  }
  if (V > MaxCodePoint)
    return error("bad escape '" + text(Start, Pos) + "'", Start);
  return V;
}

/// The code point of the one-letter escapes Python's ESCAPES table lists
/// (\b only inside sets, where it is a backspace).
static std::optional<uint32_t> simpleEscape(uint32_t C, bool InSet) {
  switch (C) {
  case 'a':
    return 7;
  case 'f':
    return 12;
  case 'n':
    return 10;
  case 'r':
    return 13;
  case 't':
    return 9;
  case 'v':
    return 11;
  case 'b':
    if (InSet)
      return 8;
    return std::nullopt;
  default:
    return std::nullopt;
  }
}

/// Adds the class of \d \D \w \W \s \S to \p S; false for other letters.
static bool addClassEscape(Regex::CharSet &S, uint32_t C) {
  switch (C) {
  case 'd':
  case 'D':
    addTable(S, DigitRanges, C == 'D');
    return true;
  case 'w':
  case 'W':
    addTable(S, WordRanges, C == 'W');
    return true;
  case 's':
  case 'S':
    addTable(S, SpaceRanges, C == 'S');
    return true;
  default:
    return false;
  }
}

Expected<Node> RegexCompiler::parseEscape() {
  size_t Start = Pos++;
  if (atEnd())
    return error("trailing backslash", Start);
  uint32_t C = P[Pos++];
  Regex::CharSet S;
  if (addClassEscape(S, C)) {
    normalize(S, false);
    return setNode(std::move(S));
  }
  Node N;
  if (C == 'A' || C == 'Z' || C == 'b' || C == 'B') {
    N.K = Node::Assert;
    N.Val = C == 'A'   ? AtBeginning
            : C == 'Z' ? AtEndAbsolute
            : C == 'b' ? AtBoundary
                       : AtNonBoundary;
    return N;
  }
  N.K = Node::Char;
  if (std::optional<uint32_t> V = simpleEscape(C, /*InSet=*/false)) {
    N.Val = *V;
    return N;
  }
  if (C == 'x' || C == 'u' || C == 'U' || C == '0') {
    Expected<uint32_t> V = parseNumericEscape(Start, C);
    if (!V)
      return V.takeError();
    N.Val = *V;
    return N;
  }
  if (isDigit(C) || C == 'N')
    return unsupported(Start, Pos);
  if (isAsciiAlnum(C))
    return error("bad escape '" + text(Start, Pos) + "'", Start);
  N.Val = C;
  return N;
}

Expected<std::optional<uint32_t>>
RegexCompiler::parseSetItem(Regex::CharSet &S) {
  if (P[Pos] != '\\')
    return std::optional<uint32_t>(P[Pos++]);
  size_t Start = Pos++;
  if (atEnd())
    return error("trailing backslash", Start);
  uint32_t C = P[Pos++];
  if (addClassEscape(S, C))
    return std::optional<uint32_t>();
  if (std::optional<uint32_t> V = simpleEscape(C, /*InSet=*/true))
    return V;
  if (C == 'x' || C == 'u' || C == 'U' || isOctal(C)) {
    Expected<uint32_t> V = parseNumericEscape(Start, C);
    if (!V)
      return V.takeError();
    return std::optional<uint32_t>(*V);
  }
  if (C == 'N')
    return unsupported(Start, Pos);
  if (isAsciiAlnum(C))
    return error("bad escape '" + text(Start, Pos) + "'", Start);
  return std::optional<uint32_t>(C);
}

Expected<Node> RegexCompiler::parseSet() {
  size_t Open = Pos++;
  bool Negate = peek() == '^';
  if (Negate)
    ++Pos;
  Regex::CharSet S;
  bool First = true;
  auto Unterminated = [&] { return error("unterminated character set", Open); };
  while (true) {
    if (atEnd())
      return Unterminated();
    // As in Python, a ']' first in the set is a member.
    if (P[Pos] == ']' && !First) {
      ++Pos;
      break;
    }
    First = false;
    size_t ItemStart = Pos;
    Expected<std::optional<uint32_t>> Lo = parseSetItem(S);
    if (!Lo)
      return Lo.takeError();
    if (peek() != '-') {
      if (*Lo)
        S.Ranges.push_back({**Lo, **Lo});
      continue;
    }
    ++Pos;
    if (atEnd())
      return Unterminated();
    if (P[Pos] == ']') {
      // A trailing '-' is a member: "[a-]".
      if (*Lo)
        S.Ranges.push_back({**Lo, **Lo});
      S.Ranges.push_back({'-', '-'});
      ++Pos;
      break;
    }
    Regex::CharSet Scratch;
    Expected<std::optional<uint32_t>> Hi = parseSetItem(Scratch);
    if (!Hi)
      return Hi.takeError();
    if (!*Lo || !*Hi || **Hi < **Lo)
      return error("bad character range '" + text(ItemStart, Pos) + "'",
                   ItemStart);
    S.Ranges.push_back({**Lo, **Hi});
  }
  normalize(S, Negate);
  return setNode(std::move(S));
}

Error RegexCompiler::push(Regex::Inst I) {
  if (R.Prog.size() >= Regex::MaxProgramSize)
    return makeError("pattern compiles to more than " +
                     Twine(Regex::MaxProgramSize) + " states");
  R.Prog.push_back(I);
  return Error::success();
}

Error RegexCompiler::emit(const Node &N) {
  using Inst = Regex::Inst;
  switch (N.K) {
  case Node::Empty:
    return Error::success();
  case Node::Char:
    return push({Inst::Char, N.Val});
  case Node::Any:
    return push({Inst::Any});
  case Node::Set:
    return push({Inst::Set, N.Val});
  case Node::Assert:
    return push({Inst::Assert, N.Val});
  case Node::Concat:
    for (const Node &K : N.Kids)
      if (Error E = emit(K))
        return E;
    return Error::success();
  case Node::Alt: {
    // split L1, next; L1: kid0; jump end; next: split L2, ...; last kid
    std::vector<size_t> Jumps;
    for (size_t I = 0; I < N.Kids.size(); ++I) {
      size_t Split = R.Prog.size();
      bool Last = I + 1 == N.Kids.size();
      if (!Last)
        if (Error E = push({Inst::Split, uint32_t(Split + 1)}))
          return E;
      if (Error E = emit(N.Kids[I]))
        return E;
      if (Last)
        break;
      Jumps.push_back(R.Prog.size());
      if (Error E = push({Inst::Jump}))
        return E;
      R.Prog[Split].Arg2 = uint32_t(R.Prog.size());
    }
    for (size_t J : Jumps)
      R.Prog[J].Arg = uint32_t(R.Prog.size());
    return Error::success();
  }
  case Node::Repeat: {
    const Node &Body = N.Kids.front();
    for (unsigned I = 0; I < N.Min; ++I)
      if (Error E = emit(Body))
        return E;
    if (N.Max == Unbounded) {
      // loop: split body, out; body; jump loop
      size_t Loop = R.Prog.size();
      if (Error E = push({Inst::Split, uint32_t(Loop + 1)}))
        return E;
      if (Error E = emit(Body))
        return E;
      if (Error E = push({Inst::Jump, uint32_t(Loop)}))
        return E;
      R.Prog[Loop].Arg2 = uint32_t(R.Prog.size());
      return Error::success();
    }
    // x{m,n} = x^m (x?)^(n-m): the same strings as the nested form.
    for (unsigned I = N.Min; I < N.Max; ++I) {
      size_t Split = R.Prog.size();
      if (Error E = push({Inst::Split, uint32_t(Split + 1)}))
        return E;
      if (Error E = emit(Body))
        return E;
      R.Prog[Split].Arg2 = uint32_t(R.Prog.size());
    }
    return Error::success();
  }
  }
  return Error::success();
}

Expected<Regex> RegexCompiler::run() {
  if (P.size() > Regex::MaxPatternLength)
    return makeError("pattern is " + Twine(P.size()) +
                     " characters long, more than " +
                     Twine(Regex::MaxPatternLength));
  Expected<Node> Root = parseAlternation(0);
  if (!Root)
    return Root.takeError();
  if (!atEnd())
    return error("unbalanced ')'", Pos);
  if (Error E = emit(*Root))
    return E;
  if (Error E = push({Regex::Inst::Match}))
    return E;
  return std::move(R);
}

Expected<Regex> Regex::compile(StringRef Pattern) {
  return RegexCompiler(decodeUtf8(Pattern)).run();
}

/// Whether assertion \p K holds before character \p Pos of \p S.
static bool assertionHolds(uint32_t K, const std::vector<uint32_t> &S,
                           size_t Pos) {
  size_t N = S.size();
  switch (K) {
  case AtBeginning:
    return Pos == 0;
  case AtEnd:
    return Pos == N || (Pos + 1 == N && S[Pos] == '\n');
  case AtEndAbsolute:
    return Pos == N;
  case AtBoundary:
  case AtNonBoundary: {
    // Python's sre: neither holds in an empty string.
    if (N == 0)
      return false;
    bool Before = Pos > 0 && isWord(S[Pos - 1]);
    bool After = Pos < N && isWord(S[Pos]);
    return (Before != After) == (K == AtBoundary);
  }
  default:
    return false;
  }
}

bool Regex::matchPrefix(StringRef Text) const {
  std::vector<uint32_t> S = decodeUtf8(Text);
  // Mark[pc] == Step + 1 when state pc is already in the set being built.
  std::vector<size_t> Mark(Prog.size(), 0);
  std::vector<uint32_t> Current, Next, Stack;
  // Adds the states reachable from \p Start without consuming input before
  // character \p At to \p List; true when one of them is Match.
  auto AddClosure = [&](std::vector<uint32_t> &List, uint32_t Start,
                        size_t At) {
    Stack.push_back(Start);
    while (!Stack.empty()) {
      uint32_t PC = Stack.back();
      Stack.pop_back();
      if (Mark[PC] == At + 1)
        continue;
      Mark[PC] = At + 1;
      const Inst &I = Prog[PC];
      switch (I.K) {
      case Inst::Match:
        Stack.clear();
        return true;
      case Inst::Jump:
        Stack.push_back(I.Arg);
        break;
      case Inst::Split:
        Stack.push_back(I.Arg2);
        Stack.push_back(I.Arg);
        break;
      case Inst::Assert:
        if (assertionHolds(I.Arg, S, At))
          Stack.push_back(PC + 1);
        break;
      default:
        List.push_back(PC);
        break;
      }
    }
    return false;
  };
  if (AddClosure(Current, 0, 0))
    return true;
  for (size_t At = 0; At < S.size() && !Current.empty(); ++At) {
    uint32_t C = S[At];
    Next.clear();
    for (uint32_t PC : Current) {
      const Inst &I = Prog[PC];
      bool Takes = I.K == Inst::Char  ? I.Arg == C
                   : I.K == Inst::Any ? C != '\n'
                                      : Sets[I.Arg].contains(C);
      if (Takes && AddClosure(Next, PC + 1, At + 1))
        return true;
    }
    std::swap(Current, Next);
  }
  return false;
}

} // namespace qfx
