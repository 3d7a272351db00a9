//===- qir-check.cpp - Runs text-IR pass tests with FileCheck -------------===//
//
// A .qir file holds one or more cases separated by a line "// -----". Each
// case is a graph in the text form plus directives in comments:
//
//   // PIPELINE: dead-code-elimination,topological-sort
//   // EXPECT-ERROR            (optional: the case must fail)
//   // SKIP-INPUT-VERIFY       (optional: do not verify the parsed input,
//                              for passes that repair it, such as sorting)
//   // QAT                     (optional: run with PassContext::QAT set)
//   // QCONFIG: <json>         (optional: the qconfig mapping, one line of
//                              QConfigMapping::fromJson input)
//   // CHECK: ... / CHECK-NEXT / CHECK-NOT / CHECK-LABEL / CHECK-DAG ...
//
// A .onnxtxt file holds ONNX models in ONNX's textual syntax instead: every
// `//` line is stripped before parsing, the model is imported
// (importOnnxText), verified, run through the pipeline if there is one and
// printed. `// EXPECT-ERROR: <text>` expects an error containing <text>;
// `// NO-FOLD-QDQ` imports with OnnxImportOptions::FoldQdq off (the Q/DQ
// nodes as imported, before the fold-qdq pass).
//
// The graph is parsed and verified, the pipeline runs with the verifier
// after every pass, and the CHECK lines are matched (by LLVM's FileCheck
// library) against the printed result, or against "error: <message>" lines
// when something failed.
//
//===----------------------------------------------------------------------===//

#include "qfx/IR/GraphModule.h"
#include "qfx/IR/Parser.h"
#include "qfx/IR/Printer.h"
#include "qfx/IR/Verifier.h"
#include "qfx/Onnx/Import.h"
#include "qfx/Quant/QConfigMapping.h"
#include "qfx/Support/Error.h"
#include "qfx/Support/FileIO.h"
#include "qfx/Transforms/Pass.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/FileCheck/FileCheck.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"

#include <string>
#include <vector>

using namespace qfx;

static llvm::cl::opt<std::string> InputFile(llvm::cl::Positional,
                                            llvm::cl::desc("<test.qir>"),
                                            llvm::cl::Required);
static llvm::cl::opt<bool> Verbose("v",
                                   llvm::cl::desc("print each case's output"));

namespace {

/// One case of a .qir file.
struct TestCase {
  unsigned FirstLine = 1; ///< 1-based line of the case's first line.
  std::string Text;       ///< Padded with newlines so lines match the file.
  std::string Pipeline;
  bool HasPipeline = false;
  bool ExpectError = false;
  bool VerifyInput = true;
  bool QAT = false;
  std::string QConfigJson;
  bool HasQConfig = false;
  std::string ExpectedError; ///< .onnxtxt: text the error must contain.
  bool FoldQdq = true;       ///< .onnxtxt: OnnxImportOptions::FoldQdq.
};

/// Whether \p File holds ONNX text models rather than text IR.
static bool isOnnxText(llvm::StringRef File) {
  return File.endswith(".onnxtxt");
}

/// The case without its `//` lines (ONNX's parser has no comments).
static std::string stripComments(llvm::StringRef Text) {
  std::string R;
  for (llvm::StringRef L : llvm::split(Text, '\n'))
    if (!L.trim().startswith("//"))
      R += L.str() + "\n";
  return R;
}

} // namespace

/// Splits a file into cases and reads each case's directives.
static std::vector<TestCase> splitCases(llvm::StringRef File) {
  std::vector<TestCase> Cases(1);
  llvm::SmallVector<llvm::StringRef, 0> Lines;
  File.split(Lines, '\n');
  for (unsigned I = 0; I < Lines.size(); ++I) {
    llvm::StringRef Line = Lines[I].rtrim("\r");
    if (Line.trim() == "// -----") {
      Cases.emplace_back();
      Cases.back().FirstLine = I + 2;
      continue;
    }
    TestCase &C = Cases.back();
    if (C.Text.empty())
      C.Text.assign(I, '\n'); // Keep line numbers equal to the file's.
    C.Text += Line.str() + "\n";
    llvm::StringRef Body = Line.trim();
    if (Body.consume_front("// PIPELINE:")) {
      C.Pipeline = Body.trim().str();
      C.HasPipeline = true;
    } else if (Body == "// EXPECT-ERROR") {
      C.ExpectError = true;
    } else if (Body == "// NO-FOLD-QDQ") {
      C.FoldQdq = false;
    } else if (Body.consume_front("// EXPECT-ERROR:")) {
      C.ExpectError = true;
      C.ExpectedError = Body.trim().str();
    } else if (Body == "// SKIP-INPUT-VERIFY") {
      C.VerifyInput = false;
    } else if (Body == "// QAT") {
      C.QAT = true;
    } else if (Body.consume_front("// QCONFIG:")) {
      C.QConfigJson = Body.trim().str();
      C.HasQConfig = true;
    }
  }
  return Cases;
}

/// Parses, verifies and runs the pipeline; returns the text to check and
/// whether an error happened.
static std::pair<std::string, bool> runCase(const TestCase &C,
                                            llvm::StringRef FileName) {
  auto Fail = [](llvm::Error E) {
    std::string Text = errorToString(std::move(E)), Msg;
    for (llvm::StringRef L : llvm::split(Text, '\n'))
      Msg += "error: " + L.str() + "\n";
    return std::make_pair(Msg, true);
  };
  OnnxImportOptions Onnx;
  Onnx.FoldQdq = C.FoldQdq;
  auto GM = isOnnxText(FileName)
                ? importOnnxText(stripComments(C.Text),
                                 llvm::sys::path::filename(FileName), Onnx)
                : parseGraphModule(C.Text, FileName);
  if (!GM)
    return Fail(GM.takeError());
  if (C.VerifyInput)
    if (llvm::Error E = verify(**GM))
      return Fail(std::move(E));
  PassManager::Options Opts;
  Opts.VerifyEach = true;
  PassManager PM(Opts);
  if (llvm::Error E = PM.addPipeline(C.Pipeline))
    return Fail(std::move(E));
  PassContext Ctx;
  Ctx.QAT = C.QAT;
  if (C.HasQConfig) {
    auto Mapping = QConfigMapping::fromJson(C.QConfigJson, "QCONFIG");
    if (!Mapping)
      return Fail(Mapping.takeError());
    Ctx.QConfigs = std::make_shared<const QConfigMapping>(std::move(*Mapping));
  }
  if (llvm::Error E = PM.run(**GM, Ctx))
    return Fail(std::move(E));
  return {printToString(**GM), false};
}

/// Matches the case's CHECK lines against \p Output with FileCheck.
static bool fileCheck(const TestCase &C, llvm::StringRef FileName,
                      llvm::StringRef Output) {
  llvm::FileCheckRequest Req;
  Req.CheckPrefixes = {"CHECK"};
  Req.IsDefaultCheckPrefix = true;
  Req.AllowEmptyInput = true;
  llvm::FileCheck FC(Req);
  if (!FC.ValidateCheckPrefixes())
    return false;
  llvm::Regex PrefixRE = FC.buildCheckPrefixRegex();
  llvm::SourceMgr SM;
  auto CheckBuf = llvm::MemoryBuffer::getMemBufferCopy(C.Text, FileName);
  llvm::SmallString<4096> CheckStorage;
  llvm::StringRef CheckText = FC.CanonicalizeFile(*CheckBuf, CheckStorage);
  SM.AddNewSourceBuffer(llvm::MemoryBuffer::getMemBuffer(CheckText, FileName),
                        llvm::SMLoc());
  if (FC.readCheckFile(SM, CheckText, PrefixRE))
    return false;
  auto InBuf = llvm::MemoryBuffer::getMemBufferCopy(Output, "<output>");
  llvm::SmallString<4096> InStorage;
  llvm::StringRef InText = FC.CanonicalizeFile(*InBuf, InStorage);
  SM.AddNewSourceBuffer(llvm::MemoryBuffer::getMemBuffer(InText, "<output>"),
                        llvm::SMLoc());
  return FC.checkInput(SM, InText);
}

static bool runAndCheck(const TestCase &C, llvm::StringRef FileName) {
  if (!C.HasPipeline && !isOnnxText(FileName)) {
    llvm::errs() << FileName << ":" << C.FirstLine
                 << ": case has no '// PIPELINE:' line\n";
    return false;
  }
  auto [Output, Failed] = runCase(C, FileName);
  if (Verbose)
    llvm::outs() << Output;
  if (Failed != C.ExpectError) {
    llvm::errs() << FileName << ":" << C.FirstLine << ": case "
                 << (Failed ? "failed unexpectedly" : "was expected to fail")
                 << "\n"
                 << Output;
    return false;
  }
  if (!C.ExpectedError.empty() &&
      Output.find(C.ExpectedError) == std::string::npos) {
    llvm::errs() << FileName << ":" << C.FirstLine
                 << ": the error does not contain '" << C.ExpectedError
                 << "'; output was:\n"
                 << Output;
    return false;
  }
  // An EXPECT-ERROR: text is check enough; CHECK lines may add to it.
  bool Checked =
      !C.ExpectedError.empty() && !llvm::StringRef(C.Text).contains("CHECK");
  if (!Checked && !fileCheck(C, FileName, Output)) {
    llvm::errs() << FileName << ":" << C.FirstLine
                 << ": checks failed; output was:\n"
                 << Output;
    return false;
  }
  return true;
}

int main(int argc, char **argv) {
  llvm::cl::ParseCommandLineOptions(argc, argv, "qfx text-IR test runner\n");
  auto File = readFile(InputFile);
  if (!File) {
    llvm::errs() << "qir-check: " << errorToString(File.takeError()) << "\n";
    return 2;
  }
  std::vector<TestCase> Cases = splitCases(*File);
  unsigned Passed = 0, Failed = 0;
  for (const TestCase &C : Cases)
    (runAndCheck(C, InputFile) ? Passed : Failed)++;
  llvm::outs() << InputFile << ": " << Passed << " passed, " << Failed
               << " failed\n";
  return Failed ? 1 : 0;
}
