//===- FuzzSafetensors.cpp - Fuzzes the .safetensors reader ---------------===//
//
// Any bytes through parseSafetensors; accepted contents must encode, parse
// again and encode to the same bytes.

#include "FuzzUtil.h"

#include "qfx/Support/Safetensors.h"

using namespace qfx;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *Data, size_t Size) {
  auto F = parseSafetensors(fuzz::bytes(Data, Size), "fuzz.safetensors");
  if (!fuzz::take(F))
    return 0;
  std::string First = encodeSafetensors(*F);
  auto Again = parseSafetensors(First, "again.safetensors");
  if (!Again) {
    fuzz::ignore(Again.takeError());
    fuzz::fail("safetensors", "encoded contents do not parse again");
  }
  if (encodeSafetensors(*Again) != First)
    fuzz::fail("safetensors", "parse -> encode is not a fixed point");
  return 0;
}
