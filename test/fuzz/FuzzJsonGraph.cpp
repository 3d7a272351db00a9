//===- FuzzJsonGraph.cpp - Fuzzes the JSON GraphModule loader -------------===//
//
// Any bytes through deserializeFromJson; an accepted module must serialize,
// load again and serialize to the same bytes (docs/format.md promises that
// load -> save is byte-identical).

#include "FuzzUtil.h"

#include "qfx/IR/GraphModule.h"
#include "qfx/IR/Serialization.h"

using namespace qfx;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *Data, size_t Size) {
  auto GM = deserializeFromJson(fuzz::bytes(Data, Size), "fuzz.json");
  if (!fuzz::take(GM))
    return 0;
  std::string First = serializeToJson(**GM);
  auto Again = deserializeFromJson(First, "again.json");
  if (!Again) {
    fuzz::ignore(Again.takeError());
    fuzz::fail("json-graph", "a saved module does not load again");
  }
  if (serializeToJson(**Again) != First)
    fuzz::fail("json-graph", "load -> save is not byte-identical");
  return 0;
}
