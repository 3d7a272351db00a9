//===- OrtBench.cpp - ONNX Runtime latency for qfx-bench ------------------===//
//
// Spawns ort-run.mjs (no shell) with the input as a temporary .npy file and
// reads the JSON line its --bench mode prints.
//
//===----------------------------------------------------------------------===//

#include "OrtBench.h"

#include "qfx/Support/Error.h"
#include "qfx/Support/Npy.h"

#include "llvm/ADT/Optional.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FileUtilities.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Program.h"

namespace qfx {
namespace tools {

namespace {

/// The last non-empty line of \p Text (the runner's "ort-run: error: ...").
std::string lastLine(llvm::StringRef Text) {
  llvm::SmallVector<llvm::StringRef, 16> Lines;
  Text.split(Lines, '\n', -1, false);
  for (auto It = Lines.rbegin(); It != Lines.rend(); ++It)
    if (!It->trim().empty())
      return It->trim().str();
  return "";
}

/// The last line of \p Text that parses as a JSON object.
llvm::Optional<llvm::json::Object> lastJsonObject(llvm::StringRef Text) {
  llvm::SmallVector<llvm::StringRef, 16> Lines;
  Text.split(Lines, '\n', -1, false);
  for (auto It = Lines.rbegin(); It != Lines.rend(); ++It) {
    llvm::Expected<llvm::json::Value> V = llvm::json::parse(It->trim());
    if (!V) {
      llvm::consumeError(V.takeError());
      continue;
    }
    if (llvm::json::Object *O = V->getAsObject())
      return std::move(*O);
  }
  return llvm::None;
}

} // namespace

llvm::Expected<std::string> OrtBench::runRunner(std::vector<std::string> Args) {
  llvm::SmallString<128> OutFile, ErrFile;
  if (std::error_code EC =
          llvm::sys::fs::createTemporaryFile("qfx-bench-ort", "txt", OutFile))
    return fileError("temporary file", EC.message());
  llvm::FileRemover RemoveOut(OutFile);
  if (std::error_code EC =
          llvm::sys::fs::createTemporaryFile("qfx-bench-ort", "err", ErrFile))
    return fileError("temporary file", EC.message());
  llvm::FileRemover RemoveErr(ErrFile);
  // A bare name ("node") is looked up on PATH, as a shell would.
  std::string Exe = Node;
  if (!llvm::StringRef(Node).contains('/')) {
    llvm::ErrorOr<std::string> Found = llvm::sys::findProgramByName(Node);
    if (!Found)
      return makeError("'" + Node + "' not found on PATH (--node)");
    Exe = *Found;
  }
  Args.insert(Args.begin(), {Exe, Runner});
  if (!OrtDir.empty()) {
    Args.push_back("--ort-dir");
    Args.push_back(OrtDir);
  }
  std::vector<llvm::StringRef> Refs(Args.begin(), Args.end());
  llvm::Optional<llvm::StringRef> Redirects[] = {
      llvm::StringRef(""), llvm::StringRef(OutFile), llvm::StringRef(ErrFile)};
  std::string Msg;
  int RC =
      llvm::sys::ExecuteAndWait(Exe, Refs, llvm::None, Redirects, 0, 0, &Msg);
  auto Out = llvm::MemoryBuffer::getFile(OutFile);
  auto Err = llvm::MemoryBuffer::getFile(ErrFile);
  if (RC != 0) {
    std::string Last = Err ? lastLine((*Err)->getBuffer()) : "";
    return makeError(RC < 0 ? "cannot run " + Exe + ": " + Msg
                     : Last.empty()
                         ? "ort-run.mjs exited with code " + std::to_string(RC)
                         : Last);
  }
  if (!Out)
    return makeError("ort-run.mjs printed nothing");
  return (*Out)->getBuffer().str();
}

llvm::Expected<std::string> OrtBench::inputName(llvm::StringRef Model) {
  auto It = InputNames.find(Model.str());
  if (It != InputNames.end())
    return It->second;
  llvm::Expected<std::string> Out =
      runRunner({"--model", Model.str(), "--info"});
  if (!Out)
    return Out.takeError();
  llvm::Optional<llvm::json::Object> Info = lastJsonObject(*Out);
  const llvm::json::Array *Inputs = Info ? Info->getArray("inputs") : nullptr;
  if (!Inputs || Inputs->size() != 1 || !(*Inputs)[0].getAsObject() ||
      !(*Inputs)[0].getAsObject()->getString("name"))
    return fileError(Model, "expected a model with exactly one input");
  std::string Name = (*Inputs)[0].getAsObject()->getString("name")->str();
  InputNames[Model.str()] = Name;
  return Name;
}

llvm::Expected<double> OrtBench::medianMs(llvm::StringRef Model,
                                          const Tensor &X, int Threads,
                                          int Iterations) {
  llvm::Expected<std::string> Name = inputName(Model);
  if (!Name)
    return Name.takeError();
  llvm::SmallString<128> InFile;
  if (std::error_code EC =
          llvm::sys::fs::createTemporaryFile("qfx-bench-ort", "npy", InFile))
    return fileError("temporary file", EC.message());
  llvm::FileRemover RemoveIn(InFile);
  if (llvm::Error E = writeNpy(InFile, X))
    return std::move(E);
  // The same warm-up as qfx's medians: two untimed runs.
  llvm::Expected<std::string> Out = runRunner(
      {"--model", Model.str(), "--input", *Name + "=" + InFile.str().str(),
       "--threads", std::to_string(Threads), "--bench",
       std::to_string(Iterations), "--warmup", "2"});
  if (!Out)
    return Out.takeError();
  llvm::Optional<llvm::json::Object> Result = lastJsonObject(*Out);
  llvm::Optional<double> Median =
      Result ? Result->getNumber("median_ms") : llvm::None;
  if (!Median)
    return makeError("ort-run.mjs --bench printed no median_ms");
  return *Median;
}

} // namespace tools
} // namespace qfx
