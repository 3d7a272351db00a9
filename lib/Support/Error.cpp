//===- Error.cpp - Helpers for user-facing llvm::Error values -------------===//

#include "qfx/Support/Error.h"

using namespace llvm;

namespace qfx {

Error makeError(const Twine &Msg) {
  return createStringError(inconvertibleErrorCode(), Msg.str());
}

Error fileError(StringRef File, const Twine &Msg) {
  return makeError(Twine(File) + ": " + Msg);
}

Error locatedError(StringRef File, unsigned Line, unsigned Col,
                   const Twine &Msg) {
  return makeError(Twine(File) + ":" + Twine(Line) + ":" + Twine(Col) + ": " +
                   Msg);
}

Error prefixError(Error E, StringRef Prefix) {
  // An Error may hold a list of errors (joinErrors); prefix each one so that
  // every line of the final message says where it comes from.
  Error Out = Error::success();
  handleAllErrors(std::move(E), [&](const ErrorInfoBase &Info) {
    Out = joinErrors(std::move(Out), makeError(Prefix + ": " + Info.message()));
  });
  return Out;
}

std::string errorToString(Error E) { return toString(std::move(E)); }

} // namespace qfx
