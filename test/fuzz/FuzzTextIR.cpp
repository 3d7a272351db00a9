//===- FuzzTextIR.cpp - Fuzzes the text IR parser -------------------------===//
//
// Any bytes through parseGraphModule and the verifier; a module that parses
// and verifies must print, parse again and print the same text.

#include "FuzzUtil.h"

#include "qfx/IR/GraphModule.h"
#include "qfx/IR/Parser.h"
#include "qfx/IR/Printer.h"
#include "qfx/IR/Verifier.h"

#include "llvm/Support/raw_ostream.h"

using namespace qfx;

static std::string print(const GraphModule &GM) {
  std::string S;
  llvm::raw_string_ostream OS(S);
  printGraphModule(GM, OS);
  return OS.str();
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *Data, size_t Size) {
  auto GM = parseGraphModule(fuzz::bytes(Data, Size), "fuzz.qir");
  if (!fuzz::take(GM))
    return 0;
  if (llvm::Error E = verify(**GM)) {
    fuzz::ignore(std::move(E));
    return 0;
  }
  std::string First = print(**GM);
  auto Again = parseGraphModule(First, "again.qir");
  if (!Again) {
    fuzz::ignore(Again.takeError());
    fuzz::fail("text-ir", "a printed module does not parse again");
  }
  if (print(**Again) != First)
    fuzz::fail("text-ir", "parse -> print is not a fixed point");
  return 0;
}
