//===- qopt.cpp - Runs qfx passes over serialized graphs ------------------===//
//
// In the spirit of LLVM's opt: read a GraphModule (JSON or text IR), run a
// pipeline of registered passes, then calibrate, run, benchmark or explain
// it, and write the result.
//
//   qopt model.json --passes=dead-code-elimination -o out.json
//   qopt model.qir --qconfig=qc.json --passes=fuse,qconfig-propagation,prepare
//        --calibrate=data.npy --batch=8 -o observed.json
//   qopt quantized.json --run=in.npy --compiled -o out.npy
//   qopt quantized.json --bench --threads=4 --iterations=100 --profile
//   qopt quantized.json --bench --strict-lowering
//   qopt model.qir --emit=dot | dot -Tsvg > model.svg
//   qopt model.qir -o model.onnx                       (plain ONNX)
//   qopt model.qir --qconfig=q.json --calibrate=calib.npy -o model.int8.onnx
//        (no --passes: fuse,qconfig-propagation,prepare, calibrate, convert;
//         QDQ ONNX for ONNX Runtime)
//   qopt --list-passes
//
//===----------------------------------------------------------------------===//

#include "Dot.h"
#include "Explain.h"

#include "qfx/Backend/OneDNN/CpuIsa.h"
#include "qfx/Codegen/Lowering.h"
#include "qfx/IR/GraphModule.h"
#include "qfx/IR/Printer.h"
#include "qfx/IR/Serialization.h"
#include "qfx/IR/Verifier.h"
#include "qfx/Onnx/Export.h"
#include "qfx/Onnx/Import.h"
#include "qfx/Pipeline/QuantizeFx.h"
#include "qfx/Quant/ObserverModule.h"
#include "qfx/Quant/QConfigMapping.h"
#include "qfx/Runtime/Interpreter.h"
#include "qfx/Support/Error.h"
#include "qfx/Support/FileIO.h"
#include "qfx/Support/Flags.h"
#include "qfx/Support/Npy.h"
#include "qfx/Transforms/Pass.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Process.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

using namespace qfx;

namespace cl = llvm::cl;

static cl::opt<std::string>
    InputFile(cl::Positional, cl::desc("<input graph (.json, text or .onnx)>"));
static cl::opt<std::string>
    OutputFile("o", cl::desc("output file ('-' = stdout); the .npy with --run"),
               cl::value_desc("file"), cl::init("-"));
static cl::opt<std::string>
    Passes("passes", cl::desc("comma-separated pipeline of registered passes"),
           cl::value_desc("pass,pass,..."));
enum class Emit { Text, Json, Dot, Onnx };
static cl::opt<Emit> EmitFormat(
    "emit",
    cl::desc("output format (default: json for -o *.json, onnx for -o "
             "*.onnx, text otherwise)"),
    cl::init(Emit::Text),
    cl::values(clEnumValN(Emit::Text, "text", "the text IR"),
               clEnumValN(Emit::Json, "json", "the versioned JSON format"),
               clEnumValN(Emit::Dot, "dot", "a Graphviz drawing"),
               clEnumValN(Emit::Onnx, "onnx",
                          "ONNX; QDQ ONNX for quantized and observed graphs "
                          "(docs/onnx.md)")));
static cl::opt<int> OnnxOpset("onnx-opset", cl::init(13),
                              cl::desc("the opset of --emit=onnx (13..17)"));
static cl::opt<bool> ListPasses("list-passes",
                                cl::desc("list registered passes and exit"));
static cl::opt<bool> VerifyEach("verify-each",
                                cl::desc("run the verifier after every pass"));
static cl::opt<bool>
    PrintAfterAll("print-after-all",
                  cl::desc("print the IR to stderr after every pass"));
static cl::opt<std::string>
    QConfigFile("qconfig",
                cl::desc("the qconfig mapping (qconfig_dict JSON); with "
                         "--calibrate and no --passes, qopt quantizes: "
                         "fuse,qconfig-propagation,prepare, calibration, "
                         "convert"),
                cl::value_desc("file.json"));
static cl::opt<bool> QAT("qat", cl::desc("quantization-aware training"));
static cl::list<std::string>
    CalibrateFiles("calibrate", cl::CommaSeparated,
                   cl::desc("after the passes, run the observed graph over "
                            "these .npy files"),
                   cl::value_desc("data.npy,..."));
static cl::opt<int64_t> BatchSize("batch", cl::init(32),
                                  cl::desc("calibration batch size"));
static cl::opt<std::string>
    RunInput("run", cl::desc("run the graph on this .npy, write -o OUT.npy"),
             cl::value_desc("input.npy"));
static cl::opt<bool>
    Compiled("compiled",
             cl::desc("--run the compiled (oneDNN) module, not the reference "
                      "interpreter"));
static cl::opt<bool> Bench("bench",
                           cl::desc("compile and time runs on zero inputs"));
static cl::opt<std::string>
    CpuIsa("cpu-isa", cl::desc("cap oneDNN's instruction set "
                               "(avx512_core_vnni, avx512_core_amx, ...)"));
static cl::opt<int> Threads("threads", cl::init(0),
                            cl::desc("threads for compiled runs (0: default)"));
static cl::opt<int> Iterations("iterations", cl::init(20),
                               cl::desc("timed runs of --bench"));
static cl::opt<bool>
    Profile("profile",
            cl::desc("print the per-step profile (--bench, --run --compiled)"));
static cl::opt<bool> StrictLowering(
    "strict-lowering",
    cl::desc("fail to compile (--run --compiled, --bench) when a node has "
             "no oneDNN lowering and would run on a reference kernel"));
static cl::opt<bool> Explain("explain",
                             cl::desc("print the qconfig and the remarks of "
                                      "every node after the passes"));

static int fail(llvm::Error E) {
  llvm::errs() << "qopt: error: " << errorToString(std::move(E)) << "\n";
  return 1;
}

static void listPasses() {
  for (const PassInfo &P : registeredPasses())
    llvm::outs() << "  " << P.Name << " - " << P.Summary << "\n";
}

static Emit outputFormat();

/// Flag combinations that cannot work, caught before any work is done.
static llvm::Error checkFlags() {
  if (InputFile.empty())
    return makeError("no input file (see --help)");
  if (!RunInput.empty() && OutputFile.getNumOccurrences() == 0)
    return makeError("--run: needs -o OUT.npy for the result");
  if (!RunInput.empty() && Bench)
    return makeError("--run and --bench: choose one");
  if (Compiled && RunInput.empty())
    return makeError("--compiled: only meaningful with --run");
  if (Profile && !Bench && !(Compiled && !RunInput.empty()))
    return makeError("--profile: needs --bench or --run with --compiled");
  if (StrictLowering && !Bench && !(Compiled && !RunInput.empty()))
    return makeError("--strict-lowering: needs --bench or --run with "
                     "--compiled");
  // Bounded above too: the calibration loop adds --batch to row indices,
  // and OpenMP aborts on absurd thread counts.
  if (llvm::Error E = checkFlagRange("--batch", BatchSize, 1, MaxFlagCount))
    return E;
  if (llvm::Error E =
          checkFlagRange("--iterations", Iterations, 1, MaxFlagCount))
    return E;
  if (outputFormat() == Emit::Onnx && OutputFile == "-")
    return makeError("--emit=onnx: ONNX is binary; give -o FILE.onnx");
  if (llvm::Error E = checkFlagRange("--onnx-opset", OnnxOpset, 13, 17))
    return E;
  return checkFlagRange("--threads", Threads, 0, MaxThreads);
}

/// The format to write: --emit if given, else by the output's extension, so
/// that `-o model.json` writes JSON.
static Emit outputFormat() {
  if (EmitFormat.getNumOccurrences() || OutputFile == "-")
    return EmitFormat;
  llvm::StringRef Out(OutputFile);
  if (Out.endswith(".json"))
    return Emit::Json;
  return Out.endswith(".onnx") ? Emit::Onnx : Emit::Text;
}

static llvm::Error writeGraph(const GraphModule &GM) {
  Emit Format = outputFormat();
  if (Format == Emit::Onnx) {
    OnnxExportOptions Opts;
    Opts.Opset = OnnxOpset;
    return exportOnnx(GM, OutputFile, Opts);
  }
  if (Format == Emit::Dot) {
    std::string S;
    llvm::raw_string_ostream OS(S);
    printDot(GM, OS);
    if (OutputFile == "-") {
      llvm::outs() << S;
      return llvm::Error::success();
    }
    return writeFileAtomically(OutputFile, S);
  }
  if (OutputFile != "-")
    return saveGraphModule(GM, OutputFile,
                           Format == Emit::Json ? GraphFileFormat::Json
                                                : GraphFileFormat::Text);
  if (Format == Emit::Json)
    llvm::outs() << serializeToJson(GM);
  else
    printGraphModule(GM, llvm::outs());
  return llvm::Error::success();
}

//===----------------------------------------------------------------------===//
// --calibrate
//===----------------------------------------------------------------------===//

static bool hasObservers(const GraphModule &GM) {
  return llvm::any_of(GM.graph().nodes(), [&](const Node *N) {
    if (N->op() != OpCode::CallModule)
      return false;
    const ModuleInfo *M = GM.lookupModule(N->target());
    return M && isObserverModule(*M);
  });
}

/// Every dimension but the batch must agree with the placeholder's type.
static llvm::Error checkData(const Tensor &Data, const Node &In,
                             llvm::StringRef File) {
  if (Data.rank() == 0 || Data.dim(0) == 0)
    return makeError(File +
                     ": calibration data needs a non-empty batch "
                     "dimension, found shape " +
                     formatShape(Data.shape()));
  if (!In.type())
    return llvm::Error::success();
  const TensorType &T = *In.type();
  bool Match =
      Data.rank() == static_cast<int64_t>(T.Dims.size()) &&
      std::equal(T.Dims.begin() + 1, T.Dims.end(), Data.shape().begin() + 1);
  if (!Match)
    return makeError(File + ": calibration data of shape " +
                     formatShape(Data.shape()) + " does not match " +
                     "placeholder %" + In.name() + " of shape " +
                     formatShape(T.Dims) +
                     " (all but the first dimension "
                     "must agree)");
  if (Data.dtype() != T.Dtype)
    return makeError(File + ": calibration data of dtype " +
                     dtypeName(Data.dtype()) + " does not match placeholder %" +
                     In.name() + " of dtype " + dtypeName(T.Dtype));
  return llvm::Error::success();
}

/// Calibration progress on stderr: a redrawn bar on a terminal, a line per
/// tenth of the work otherwise (logs should not fill up with bars).
class Progress {
public:
  explicit Progress(int64_t TotalBatches)
      : Total(TotalBatches), Tty(llvm::sys::Process::StandardErrIsDisplayed()),
        Start(std::chrono::steady_clock::now()) {}

  void update(int64_t Done, int64_t Images) {
    double Secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - Start)
            .count();
    double Rate = Secs > 0 ? Images / Secs : 0.0;
    double Eta = Done > 0 ? Secs * (Total - Done) / Done : 0.0;
    if (Tty) {
      int Filled = static_cast<int>(30 * Done / Total);
      llvm::errs() << "\rcalibrate [" << std::string(Filled, '#')
                   << std::string(30 - Filled, ' ') << "] " << Done << "/"
                   << Total << " batches, " << llvm::format("%.1f", Rate)
                   << " images/s, ETA " << llvm::format("%.1f", Eta) << "s ";
      if (Done == Total)
        llvm::errs() << "\n";
      return;
    }
    int64_t Tenth = Done * 10 / Total;
    if (Tenth == LastTenth && Done != Total)
      return;
    LastTenth = Tenth;
    llvm::errs() << "calibrate: " << Done << "/" << Total << " batches, "
                 << Images << " images, " << llvm::format("%.1f", Rate)
                 << " images/s, ETA " << llvm::format("%.1f", Eta) << "s\n";
  }

private:
  int64_t Total;
  bool Tty;
  std::chrono::steady_clock::time_point Start;
  int64_t LastTenth = -1;
};

static llvm::Error calibrate(GraphModule &GM) {
  if (!hasObservers(GM))
    return makeError("--calibrate: nothing to calibrate: the graph has no "
                     "observers (run --passes=...,prepare first)");
  std::vector<Node *> Ins = GM.graph().placeholders();
  if (Ins.size() != 1)
    return makeError("--calibrate: feeds one input, but the graph has " +
                     llvm::Twine(Ins.size()) + " placeholders");
  std::vector<Tensor> Data;
  int64_t TotalBatches = 0;
  for (const std::string &File : CalibrateFiles) {
    auto T = readNpyInput(File);
    if (!T)
      return prefixError(T.takeError(), "--calibrate");
    if (llvm::Error E = checkData(*T, *Ins[0], File))
      return prefixError(std::move(E), "--calibrate");
    // Row counts and --batch are both at most 2^40: no overflow.
    TotalBatches += (T->dim(0) + BatchSize - 1) / BatchSize;
    Data.push_back(std::move(*T));
  }
  Progress P(TotalBatches);
  int64_t Done = 0, Images = 0;
  for (size_t F = 0; F < Data.size(); ++F)
    for (int64_t B = 0; B < Data[F].dim(0); B += BatchSize) {
      int64_t E = B + std::min<int64_t>(BatchSize, Data[F].dim(0) - B);
      auto Out = runObserved(GM, {sliceRows(Data[F], B, E)});
      if (!Out)
        return prefixError(
            Out.takeError(),
            (CalibrateFiles[F] + ": batch at row " + llvm::Twine(B)).str());
      Images += E - B;
      P.update(++Done, Images);
    }
  return llvm::Error::success();
}

//===----------------------------------------------------------------------===//
// --run, --bench, --profile
//===----------------------------------------------------------------------===//

static void printProfile(const CompiledModule &CM) {
  llvm::outs() << "profile (median per step):\n";
  for (const StepTime &S : CM.profile())
    llvm::outs() << llvm::format("  %10.1f us  ", S.MedianMs * 1000.0) << S.Kind
                 << "  " << S.Name << "\n";
}

static llvm::Expected<std::unique_ptr<CompiledModule>>
compileFor(const GraphModule &GM, int64_t Batch) {
  CompileOptions Opts;
  Opts.NumThreads = Threads;
  Opts.BatchSize = Batch;
  Opts.Profile = Profile;
  Opts.RejectFallbacks = StrictLowering;
  auto CM = compile(GM, Opts);
  if (!CM)
    return prefixError(CM.takeError(), "compile " + InputFile);
  // A reference kernel can make int8 slower than float; say so where the
  // numbers are read rather than only in the step listing.
  for (const FallbackInfo &F : (*CM)->fallbacks())
    llvm::errs() << "qopt: warning: " << InputFile << ": " << formatFallback(F)
                 << "\n";
  if (!(*CM)->fallbacks().empty())
    llvm::errs() << "qopt: warning: " << InputFile << ": "
                 << (*CM)->fallbacks().size()
                 << " node(s) run on reference kernels; --strict-lowering "
                    "makes this an error\n";
  return CM;
}

static llvm::Error runGraph(const GraphModule &GM) {
  auto In = readNpyInput(RunInput);
  if (!In)
    return prefixError(In.takeError(), "--run");
  llvm::Expected<std::vector<Tensor>> Out = std::vector<Tensor>();
  std::unique_ptr<CompiledModule> CM;
  if (Compiled) {
    auto C = compileFor(GM, In->rank() ? In->dim(0) : 0);
    if (!C)
      return C.takeError();
    CM = std::move(*C);
    Out = CM->run({*In});
  } else {
    Out = Interpreter(GM).run({*In});
  }
  if (!Out)
    return prefixError(Out.takeError(), "--run " + RunInput);
  if (Out->size() != 1)
    return makeError("--run: the graph has " + llvm::Twine(Out->size()) +
                     " outputs; one .npy holds one");
  if (llvm::Error E = writeNpy(OutputFile, (*Out)[0]))
    return E;
  if (CM && Profile)
    printProfile(*CM);
  return llvm::Error::success();
}

static llvm::Error bench(const GraphModule &GM) {
  std::vector<Tensor> Ins;
  for (const Node *P : GM.graph().placeholders()) {
    if (!P->type())
      return makeError("--bench: placeholder %" + P->name() +
                       " has no type to make an input from");
    Ins.push_back(Tensor::zeros(P->type()->Dtype, P->type()->Dims));
  }
  auto CM = compileFor(GM, 0);
  if (!CM)
    return CM.takeError();
  // One untimed run: first runs pay for page faults and JIT caches.
  if (auto Warm = (*CM)->run(Ins); !Warm)
    return prefixError(Warm.takeError(), "--bench");
  (*CM)->resetProfile();
  std::vector<double> Us;
  for (int I = 0; I < Iterations; ++I) {
    auto T0 = std::chrono::steady_clock::now();
    auto Out = (*CM)->run(Ins);
    auto T1 = std::chrono::steady_clock::now();
    if (!Out)
      return prefixError(Out.takeError(), "--bench");
    Us.push_back(std::chrono::duration<double, std::micro>(T1 - T0).count());
  }
  std::sort(Us.begin(), Us.end());
  llvm::outs() << "iterations: " << Iterations << ", threads: " << Threads
               << "\n"
               << llvm::format("median: %.1f us\nmin: %.1f us\nmax: %.1f us\n",
                               Us[Us.size() / 2], Us.front(), Us.back());
  if (Profile)
    printProfile(**CM);
  return llvm::Error::success();
}

//===----------------------------------------------------------------------===//
// main
//===----------------------------------------------------------------------===//

/// qopt's one-line quantization: --qconfig and --calibrate without
/// --passes run this pipeline, calibrate, then convert.
static bool standardPipeline() {
  return Passes.getNumOccurrences() == 0 && !QConfigFile.empty() &&
         !CalibrateFiles.empty();
}

static llvm::Error runPasses(GraphModule &GM, PassContext &Ctx,
                             llvm::StringRef Pipeline) {
  PassManager::Options Opts;
  Opts.VerifyEach = VerifyEach;
  if (PrintAfterAll)
    Opts.PrintAfterAll = &llvm::errs();
  PassManager PM(Opts);
  if (llvm::Error E = PM.addPipeline(Pipeline))
    return prefixError(std::move(E), "--passes");
  if (llvm::Error E = PM.run(GM, Ctx))
    return prefixError(std::move(E), InputFile);
  return llvm::Error::success();
}

/// The input graph: an ONNX model (sniffed by content; IR must not depend
/// on Onnx) or qfx's JSON / text form.
static llvm::Expected<std::unique_ptr<GraphModule>> loadInput() {
  auto Bytes = readFile(InputFile);
  if (!Bytes)
    return Bytes.takeError();
  if (looksLikeOnnx(*Bytes)) {
    // External data is found next to the model.
    llvm::StringRef Dir = llvm::sys::path::parent_path(InputFile);
    return importOnnxBuffer(*Bytes, InputFile, Dir.empty() ? "." : Dir);
  }
  return loadGraphModule(InputFile);
}

static llvm::Error runMain() {
  if (llvm::Error E = checkFlags())
    return E;
  if (!CpuIsa.empty())
    if (llvm::Error E = setMaxCpuIsa(CpuIsa))
      return prefixError(std::move(E), "--cpu-isa");
  PassContext Ctx;
  Ctx.QAT = QAT;
  if (!QConfigFile.empty()) {
    auto M = QConfigMapping::loadFile(QConfigFile);
    if (!M)
      return prefixError(M.takeError(), "--qconfig");
    Ctx.QConfigs = std::make_shared<const QConfigMapping>(std::move(*M));
  }
  // Check the pipeline before loading: a typo should not wait for a model.
  if (llvm::Error E = PassManager().addPipeline(Passes))
    return prefixError(std::move(E), "--passes");
  auto GM = loadInput();
  if (!GM)
    return GM.takeError();
  std::string Pipeline = Passes;
  if (standardPipeline())
    Pipeline = QAT ? "fuse,qconfig-propagation,prepare-qat"
                   : "fuse,qconfig-propagation,prepare";
  if (llvm::Error E = runPasses(**GM, Ctx, Pipeline))
    return E;
  if (!CalibrateFiles.empty())
    if (llvm::Error E = calibrate(**GM))
      return E;
  if (standardPipeline())
    if (llvm::Error E = runPasses(**GM, Ctx, "convert"))
      return E;
  if (llvm::Error E = verify(**GM))
    return prefixError(std::move(E), InputFile);
  bool GraphToStdout = RunInput.empty() && !Bench && OutputFile == "-";
  if (Explain)
    printExplain(**GM, Ctx, GraphToStdout ? llvm::errs() : llvm::outs());
  if (!RunInput.empty())
    return runGraph(**GM);
  if (Bench)
    return bench(**GM);
  return writeGraph(**GM);
}

int main(int argc, char **argv) {
  cl::ParseCommandLineOptions(argc, argv, "qfx graph optimizer\n");
  if (ListPasses) {
    listPasses();
    return 0;
  }
  if (llvm::Error E = runMain())
    return fail(std::move(E));
  return 0;
}
