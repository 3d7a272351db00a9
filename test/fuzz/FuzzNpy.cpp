//===- FuzzNpy.cpp - Fuzzes the .npy reader -------------------------------===//
//
// Any bytes through parseNpy; an accepted tensor must encode, parse again
// to an identical tensor.

#include "FuzzUtil.h"

#include "qfx/Support/Npy.h"

using namespace qfx;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *Data, size_t Size) {
  auto T = parseNpy(fuzz::bytes(Data, Size), "fuzz.npy");
  if (!fuzz::take(T))
    return 0;
  auto Again = parseNpy(encodeNpy(*T), "again.npy");
  if (!Again) {
    fuzz::ignore(Again.takeError());
    fuzz::fail("npy", "an encoded tensor does not parse again");
  }
  if (!Again->identical(*T))
    fuzz::fail("npy", "parse -> encode -> parse changed the tensor");
  return 0;
}
