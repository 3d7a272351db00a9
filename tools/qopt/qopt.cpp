//===- qopt.cpp - Runs qfx passes over serialized graphs ------------------===//
//
// In the spirit of LLVM's opt: read a GraphModule (JSON or text IR), run a
// pipeline of registered passes, write the result.
//
//   qopt model.json --passes=dead-code-elimination -o out.json
//   qopt model.qir --emit=json -o model.json
//   qopt --list-passes
//
//===----------------------------------------------------------------------===//

#include "qfx/IR/GraphModule.h"
#include "qfx/IR/Printer.h"
#include "qfx/IR/Serialization.h"
#include "qfx/IR/Verifier.h"
#include "qfx/Support/Error.h"
#include "qfx/Support/FileIO.h"
#include "qfx/Transforms/Pass.h"

#include "llvm/Support/CommandLine.h"
#include "llvm/Support/raw_ostream.h"

#include <string>

using namespace qfx;

namespace cl = llvm::cl;

static cl::opt<std::string>
    InputFile(cl::Positional, cl::desc("<input graph (.json or text)>"));
static cl::opt<std::string> OutputFile("o",
                                       cl::desc("output file ('-' = stdout)"),
                                       cl::value_desc("file"), cl::init("-"));
static cl::opt<std::string>
    Passes("passes", cl::desc("comma-separated pipeline of registered passes"),
           cl::value_desc("pass,pass,..."));
enum class Emit { Text, Json };
static cl::opt<Emit> EmitFormat(
    "emit", cl::desc("output format"), cl::init(Emit::Text),
    cl::values(clEnumValN(Emit::Text, "text", "the text IR"),
               clEnumValN(Emit::Json, "json", "the versioned JSON format")));
static cl::opt<bool> ListPasses("list-passes",
                                cl::desc("list registered passes and exit"));
static cl::opt<bool> VerifyEach("verify-each",
                                cl::desc("run the verifier after every pass"));
static cl::opt<bool>
    PrintAfterAll("print-after-all",
                  cl::desc("print the IR to stderr after every pass"));

static int fail(llvm::Error E) {
  llvm::errs() << "qopt: error: " << errorToString(std::move(E)) << "\n";
  return 1;
}

static void listPasses() {
  for (const PassInfo &P : registeredPasses())
    llvm::outs() << "  " << P.Name << " - " << P.Summary << "\n";
}

static llvm::Error writeOutput(const GraphModule &GM) {
  if (OutputFile != "-")
    return saveGraphModule(GM, OutputFile,
                           EmitFormat == Emit::Json ? GraphFileFormat::Json
                                                    : GraphFileFormat::Text);
  if (EmitFormat == Emit::Json)
    llvm::outs() << serializeToJson(GM);
  else
    printGraphModule(GM, llvm::outs());
  return llvm::Error::success();
}

int main(int argc, char **argv) {
  cl::ParseCommandLineOptions(argc, argv, "qfx graph optimizer\n");
  if (ListPasses) {
    listPasses();
    return 0;
  }
  if (InputFile.empty())
    return fail(makeError("no input file (see --help)"));
  PassManager::Options Opts;
  Opts.VerifyEach = VerifyEach;
  if (PrintAfterAll)
    Opts.PrintAfterAll = &llvm::errs();
  PassManager PM(Opts);
  if (llvm::Error E = PM.addPipeline(Passes))
    return fail(prefixError(std::move(E), "--passes"));
  auto GM = loadGraphModule(InputFile);
  if (!GM)
    return fail(GM.takeError());
  if (llvm::Error E = PM.run(**GM))
    return fail(prefixError(std::move(E), InputFile));
  if (llvm::Error E = verify(**GM))
    return fail(prefixError(std::move(E), InputFile));
  if (llvm::Error E = writeOutput(**GM))
    return fail(std::move(E));
  return 0;
}
