# Generates regex/golden.json used by test/unit/RegexTest.cpp: for each
# pattern and each module name of a fixed list, whether Python's
# re.match(pattern, name) is truthy -- the test PyTorch 1.13 applies to
# module_name_regex rules in torch/ao/quantization/qconfig_mapping_utils.py
# -- or "error" when re rejects the pattern. Run by hand with the Python PyTorch runs under and
# commit the output.
import json
import os
import re
import sys

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "regex",
                   "golden.json")

NAMES = ["", "a", "aa", "ab", "b", "abc", "layer1", "layer10", "layer1.0",
         "layer1.0.conv1", "layer2.conv", "features.0", "features.12.conv",
         "conv1", "conv", "head", "head.fc", "fc\n", "fc\nx", "a_b", "A-b",
         "x.y.z", "{", "a{", "a{2}", "aaa", "aaaa", "\u00e9t\u00e9",
         "\u0663\u0664", "caf\u00e9.0", "a b", "\u3000x", "_", "-", "[",
         "]", "a]", "\t", "0", "9x", "x9"]

PATTERNS = [
    # literals, prefix semantics
    "layer1", "conv", "", "abc", "a", "b",
    # dot and escapes
    "layer1\\.0", "layer1.0", ".", "..", ".*", "fc.", "fc\\n", "fc$",
    "fc\\Z", "\\.", "\\\\", "a\\{2\\}", "\\x61", "\\u00e9", "\\0",
    "\\t", "\\-", "\\_", "\\{",
    # classes
    "\\d", "\\D", "\\w+$", "\\W", "\\s", "\\S", "\\d+", "[\\d]", "[\\w.]+$",
    "[a-z]+[0-9]+", "[^a-z]", "[^\\W\\d]", "[]a]", "[^]a]", "[a-]", "[-a]",
    "[a\\]]+", "[\\-]", "[.]", "[\\t]", "[\\b]", "[\\x61-\\x63]+$", "[\u00e0-\u00ff]",
    # anchors and boundaries
    "^layer", "^$", "$", "\\A", "\\Aa", "a\\b", "\\b", "\\B", "a\\B",
    "layer1\\b", "conv1$", "layer1$",
    # groups and alternation
    "(layer1|conv)", "(?:layer1|conv)1", "a|b", "|", "a|", "(|a)b",
    "()", "(a)(b)", "((a|b)c|a)", "(a|ab)(c|bcd)", "(?:)",
    # quantifiers
    "a*", "a+", "a?", "a*?", "a+?", "a??", "a{2}", "a{2,}", "a{,2}$",
    "a{1,2}$", "a{2,3}?", "a{0}b", "a{,}", "(a|b)*$", "(a*)*$", "(a*)+b",
    "(?:a|aa)*b", "(a|aa)*$", "a{", "a{}", "a{x}", "a{1", "a{,", "{",
    "{1", "x{2,1}", "a**", "a*+", "*a", "+", "?", "{2}", "a{2}{3}",
    "^*", "\\b+", "(*)", "a|*", "(\\A)?a", "(?:\\b)*a", "(^)+l", "($)*",
    "((?:a|b)?){3}c", "(a|b|)+$",
    # errors Python reports too
    "(", ")", "a)", "(a", "[a", "[", "[]", "[z-a]", "[\\d-z]", "\\",
    "\\q", "\\x6", "[\\A]", "\\1", "(a)\\1", "(?P<n>a)", "(?=a)",
    "(?<=a)b", "(?i)a", "[\\8]", "\\N",
    # module-name rules people write
    "features\\.\\d+\\.conv", "layer[0-9]+\\.0", "head(\\.fc)?$",
    "(features|head)\\.", ".*conv", "layer1\\.0\\.conv[12]",
    "(?:layer[12])\\.0.*", "[a-z_][a-z0-9_]*$",
]


# Patterns Python accepts but qfx rejects on purpose (the engine would have to
# backtrack or keep captures to follow them): the test expects an error.
UNSUPPORTED = ["a*+", "(a)\\1", "(?P<n>a)", "(?=a)", "(?<=a)b", "(?i)a"]


def verdict(pattern, name):
    try:
        rx = re.compile(pattern)
    except (re.error, OverflowError, RecursionError):
        return "error"
    return rx.match(name) is not None


def main():
    # One entry per pattern: "match" has one '1' or '0' per entry of "names",
    # or is "error" when re rejects the pattern.
    entries = []
    for p in PATTERNS:
        verdicts = [verdict(p, n) for n in NAMES]
        entry = {"pattern": p}
        if "error" in verdicts:
            entry["match"] = "error"
        else:
            entry["match"] = "".join("1" if v else "0" for v in verdicts)
        if p in UNSUPPORTED:
            entry["qfx"] = "error"
        entries.append(entry)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        f.write('{"python": "%d.%d.%d",\n "names": %s,\n "cases": [\n' %
                (sys.version_info[:3] + (json.dumps(NAMES),)))
        f.write(",\n".join("  " + json.dumps(e) for e in entries))
        f.write("\n]}\n")


if __name__ == "__main__":
    main()
