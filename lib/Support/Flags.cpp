//===- Flags.cpp - Range checks for numeric command-line flags ------------===//

#include "qfx/Support/Flags.h"
#include "qfx/Support/Error.h"
#include "qfx/Support/Tensor.h"

using namespace llvm;

namespace qfx {

static_assert(MaxFlagCount == MaxTensorElements,
              "a batch can be as large as a tensor, no larger");

Error checkFlagRange(StringRef Flag, int64_t Value, int64_t Min, int64_t Max) {
  if (Value >= Min && Value <= Max)
    return Error::success();
  return makeError(Flag + ": must be between " + Twine(Min) + " and " +
                   Twine(Max) + ", got " + Twine(Value));
}

} // namespace qfx
