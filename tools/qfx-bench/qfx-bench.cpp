//===- qfx-bench.cpp - fp32 vs int8 latency of the zoo, vs PyTorch FX -----===//
//
// For each zoo model, batch and thread count: compiles the traced float
// graph and runs convert_fx's int8 module, reports median latencies, achieved
// int8 GOPS against the measured VNNI peak, compile time and the share of
// time spent outside oneDNN primitives; optionally runs the same models
// through PyTorch's FX quantization (onednn engine) and compares; optionally
// times given ONNX files with ONNX Runtime on the same inputs (OrtBench.h).
//
//===----------------------------------------------------------------------===//

#include "BusyLoad.h"
#include "OrtBench.h"
#include "TorchPython.h"
#include "qfx/Backend/OneDNN/CpuIsa.h"
#include "qfx/Codegen/Lowering.h"
#include "qfx/IR/GraphModule.h"
#include "qfx/Models/Zoo.h"
#include "qfx/Onnx/Export.h"
#include "qfx/Onnx/Import.h"
#include "qfx/Pipeline/QuantizeFx.h"
#include "qfx/Quant/QConfigMapping.h"
#include "qfx/Support/Error.h"
#include "qfx/Support/Flags.h"
#include "qfx/Trace/SymbolicTrace.h"

#include "llvm/ADT/Optional.h"
#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Process.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

using namespace qfx;
namespace cl = llvm::cl;

/// VnniPeak.cpp (compiled with VNNI enabled): per-thread GOPS with
/// \p Threads threads busy at once, 0 without AVX512-VNNI.
double vnniPeakGops(int Threads, double Seconds);

static cl::list<std::string> ModelNames("models", cl::CommaSeparated,
                                        cl::desc("zoo models to run"));
static cl::opt<std::string>
    Preset("preset", cl::init("x86"),
           cl::desc("qconfig preset of the int8 column (x86, onednn, "
                    "dynamic ...; default x86)"));
static cl::list<int> Batches("batches", cl::CommaSeparated,
                             cl::desc("batch sizes (default 1,32)"));
static cl::list<int> ThreadCounts("threads", cl::CommaSeparated,
                                  cl::desc("thread counts (default 1,2)"));
static cl::opt<int>
    Iterations("iterations",
               cl::desc("timed runs per measurement (0: at least 20 runs "
                        "or 2 s, 0.5 s for the 224x224 models at batch > 8)"),
               cl::init(0));
static cl::opt<std::string>
    CpuIsa("cpu-isa", cl::desc("cap oneDNN's instruction set for the whole run "
                               "(avx512_core_vnni, avx512_core_amx, ...)"));
static cl::opt<bool> Profile("profile",
                             cl::desc("print per-node fp32 and int8 profiles"));
static cl::opt<cl::boolOrDefault>
    PyTorch("pytorch",
            cl::desc("compare with PyTorch FX (default: when python3 can "
                     "import torch)"));
static cl::opt<std::string> Python("python",
                                   cl::desc("python interpreter to use"));
static cl::opt<std::string> Script("pytorch-script",
                                   cl::desc("path of pytorch_fx_bench.py"),
                                   cl::init(QFX_BENCH_SCRIPT));
static cl::opt<bool> Quick("quick", cl::desc("net only, batch 1"));
static cl::opt<LayoutChoice>
    Layouts("layouts",
            cl::desc("layout plan of the fp32 column's conv activations"),
            cl::values(clEnumValN(LayoutChoice::Measure, "measure",
                                  "time both plans at compile time (default)"),
                       clEnumValN(LayoutChoice::ChannelsLast, "channels-last",
                                  "nhwc everywhere"),
                       clEnumValN(LayoutChoice::Blocked, "blocked",
                                  "nChw16c conv chains")),
            cl::init(LayoutChoice::Measure));
static cl::opt<int>
    Busy("busy",
         cl::desc("run this many competing processes, each spinning on a "
                  "core, for the whole run (latency under load)"),
         cl::init(0));
static cl::list<std::string> PyTorchFail(
    "pytorch-fail", cl::CommaSeparated, cl::Hidden,
    cl::desc("make these PyTorch configurations fail (tests the reporting)"),
    cl::value_desc("model:batch:threads,..."));

static cl::list<std::string> OnnxFloat(
    "onnx-fp32", cl::CommaSeparated,
    cl::desc("time this float ONNX file of a zoo model with ONNX Runtime "
             "(scripts/install-ort.sh); the ratio is against qfx fp32"),
    cl::value_desc("model=file.onnx,..."));
static cl::list<std::string>
    OnnxInt8("onnx-int8", cl::CommaSeparated,
             cl::desc("time this int8 (QDQ) ONNX file of a zoo model with ONNX "
                      "Runtime; the ratio is against qfx int8"),
             cl::value_desc("model=file.onnx,..."));
static cl::list<std::string> ImportOnnx(
    "import", cl::CommaSeparated,
    cl::desc("take this zoo model's float graph from an ONNX file (e.g. "
             "torch.onnx.export's) instead of tracing the C++ model"),
    cl::value_desc("model=file.onnx,..."));
static cl::opt<bool>
    OrtOwn("ort", cl::desc("also time qfx's own fp32 and QDQ int8 exports of "
                           "each model with ONNX Runtime (as --onnx-fp32 / "
                           "--onnx-int8 would)"));
static cl::opt<std::string>
    NodeExe("node", cl::desc("node executable for --onnx-*"), cl::init("node"));
static cl::opt<std::string> OrtRunner("ort-runner",
                                      cl::desc("path of ort-run.mjs"),
                                      cl::init(QFX_BENCH_ORT_RUNNER));
static cl::opt<std::string> OrtDir(
    "ort-dir",
    cl::desc("onnxruntime-node install folder (default: $QFX_ORT_DIR, else "
             "the repository's .deps/ort)"));

using Clock = std::chrono::steady_clock;

static double msSince(Clock::time_point T) {
  return std::chrono::duration<double, std::milli>(Clock::now() - T).count();
}

/// One line of the table; PyTorch columns are NaN when not measured.
struct Row {
  std::string Model;
  int Batch = 1, Threads = 1;
  double FloatMs = 0, Int8Ms = 0, FloatCompileMs = 0, Int8CompileMs = 0;
  double Gops = 0, PeakFraction = 0, Overhead = 0;
  double TorchFloatMs = NAN, TorchInt8Ms = NAN;
  /// ONNX Runtime on the --onnx-fp32 / --onnx-int8 files (NaN: not run).
  double OrtFloatMs = NAN, OrtInt8Ms = NAN;
  /// Why ONNX Runtime has no numbers for this configuration, if it failed.
  std::string OrtError;
  /// Why PyTorch has no numbers for this configuration, if it failed.
  std::string TorchError;
  /// oneDNN implementations of the int8 conv / matmul steps, with counts.
  std::string Impls;
  /// Int8 nodes on reference (op-table) kernels.
  size_t Fallbacks = 0;
  /// Why qfx has no numbers for this configuration, if it failed.
  std::string Error;
};

/// "brg:avx512_core_amx x20, ..." for the conv / matmul steps: AMX or VNNI
/// decides what fraction of the VNNI peak is reachable.
static std::string implSummary(const CompiledModule &CM) {
  std::map<std::string, int> Count;
  for (const StepInfo &S : CM.steps())
    if (S.Kind == "conv" || S.Kind == "matmul")
      ++Count[S.Impl];
  std::string R;
  for (auto &[Impl, N] : Count)
    R += (R.empty() ? "" : ", ") + Impl + " x" + std::to_string(N);
  return R;
}

/// "1:5 2:3": steps per OpenMP thread count (chosen at compile time), then
/// the runs the module made on one thread because the machine was busy.
/// The fp32 layout plan and, when measured, both plans' times.
static std::string layoutSummary(const CompiledModule &CM) {
  LayoutReport L = CM.layouts();
  std::string R = "fp32 layouts " + L.Plan;
  if (L.Measured)
    R += llvm::formatv(" (channels-last {0:f3} ms, blocked {1:f3} ms)",
                       L.ChannelsLastMs, L.BlockedMs)
             .str();
  return R;
}

static std::string threadSummary(const CompiledModule &CM) {
  std::map<int, int> Count;
  for (const StepInfo &S : CM.steps())
    ++Count[S.Threads];
  std::string R;
  for (auto &[Threads, N] : Count)
    R += (R.empty() ? "" : " ") + std::to_string(Threads) + ":" +
         std::to_string(N);
  if (long Single = CM.singleThreadRuns())
    R += ", " + std::to_string(Single) + " runs on 1 thread";
  return R;
}

static Tensor randomNormal(llvm::ArrayRef<int64_t> Shape, unsigned Seed) {
  Tensor T(DType::F32, Shape);
  std::mt19937 Gen(Seed);
  std::normal_distribution<float> D;
  float *P = T.data<float>();
  for (int64_t I = 0, E = T.numElements(); I < E; ++I)
    P[I] = D(Gen);
  return T;
}

/// Multiply-accumulates of the conv / linear modules of a traced float
/// graph, from the output types and weight shapes.
static double countMacs(const GraphModule &GM) {
  double Macs = 0;
  for (const Node *N : GM.graph().nodes()) {
    if (N->op() != OpCode::CallModule || !N->type())
      continue;
    const ModuleInfo *M = GM.lookupModule(N->target());
    const Tensor *W = M ? M->tensor("weight") : nullptr;
    if (!W || (M->kind() != "Conv2d" && M->kind() != "Linear"))
      continue;
    double Out = 1, PerOut = 1;
    for (int64_t D : N->type()->Dims)
      Out *= static_cast<double>(D);
    // Weight [Cout, Cin/groups, kh, kw] or [Out, In]: all but dim 0.
    for (int64_t I = 1; I < W->rank(); ++I)
      PerOut *= static_cast<double>(W->dim(I));
    Macs += Out * PerOut;
  }
  return Macs;
}

/// One run of a compiled program or module, its outputs dropped.
using RunFn = llvm::function_ref<llvm::Error()>;

template <typename Callee>
static llvm::Error runOnce(Callee &C, const Tensor &X) {
  auto Out = C.run({X});
  return Out ? llvm::Error::success() : Out.takeError();
}

/// Median of the timed calls of \p Run, in ms: \p Iterations runs, or
/// adaptively until 20 runs or \p BudgetS seconds (and at least 3 runs).
static llvm::Expected<double> medianMs(RunFn Run, double BudgetS,
                                       size_t *Runs = nullptr) {
  for (int I = 0; I < 2; ++I) // first runs touch fresh memory
    if (llvm::Error E = Run())
      return E;
  std::vector<double> T;
  auto Start = Clock::now();
  for (;;) {
    auto T0 = Clock::now();
    if (llvm::Error E = Run())
      return E;
    T.push_back(msSince(T0));
    if (Iterations > 0 ? T.size() >= size_t(Iterations)
                       : T.size() >= 20 ||
                             (msSince(Start) >= BudgetS * 1e3 && T.size() >= 3))
      break;
  }
  if (Runs)
    *Runs = T.size();
  std::nth_element(T.begin(), T.begin() + T.size() / 2, T.end());
  return T[T.size() / 2];
}

static llvm::Expected<std::unique_ptr<CompiledModule>>
timedCompile(const GraphModule &GM, int Batch, int Threads, double &Ms) {
  CompileOptions Opts;
  Opts.NumThreads = Threads;
  Opts.BatchSize = Batch;
  Opts.Layouts = Layouts;
  auto T0 = Clock::now();
  auto CM = compile(GM, Opts);
  Ms = msSince(T0);
  return CM;
}

/// Prints the per-step medians of \p CM's profiled runs; \p Label names the
/// column ("fp32" or "int8") and \p TotalMs is its unprofiled median.
static void printProfile(const CompiledModule &CM, const Row &R,
                         llvm::StringRef Label, double TotalMs) {
  llvm::outs() << "  " << Label << " profile: " << R.Model << " batch "
               << R.Batch << ", " << R.Threads
               << " threads (median per step)\n";
  for (const StepTime &S : CM.profile())
    llvm::outs() << llvm::format("    %-44s %-10s %9.3f ms %5.1f%%  %d thr\n",
                                 S.Name.c_str(), S.Kind.c_str(), S.MedianMs,
                                 100.0 * S.MedianMs / TotalMs, S.Threads);
}

/// The --onnx-fp32 / --onnx-int8 file given for \p Model, or "".
static std::string onnxFileFor(const std::vector<std::string> &Flag,
                               llvm::StringRef Model) {
  for (const std::string &Entry : Flag) {
    auto [Name, File] = llvm::StringRef(Entry).split('=');
    if (Name == Model)
      return File.str();
  }
  return "";
}

/// The ONNX Runtime columns of \p R, measured right after qfx's on the same
/// input, thread count and number of runs. A failure only marks the row.
static void benchOrt(const Tensor &X, size_t Runs, Row &R) {
  static tools::OrtBench Ort(NodeExe, OrtRunner, OrtDir);
  int Iters = Iterations > 0 ? int(Iterations) : int(std::max<size_t>(Runs, 3));
  for (auto [Flag, Ms] : {std::make_pair(&OnnxFloat, &R.OrtFloatMs),
                          std::make_pair(&OnnxInt8, &R.OrtInt8Ms)}) {
    std::string File = onnxFileFor(*Flag, R.Model);
    if (File.empty() || !R.OrtError.empty())
      continue;
    llvm::Expected<double> M = Ort.medianMs(File, X, R.Threads, Iters);
    if (M)
      *Ms = *M;
    else
      R.OrtError = errorToString(M.takeError());
  }
}

/// Fills in the qfx columns of \p R from the float graph and the int8
/// module (convert_fx's, compiled with R.Threads threads).
static llvm::Error benchOne(const GraphModule &Float,
                            const QuantizedModule &Int8, const Tensor &X,
                            double MacsPerImage, double PeakPerThread, Row &R) {
  auto FC = timedCompile(Float, R.Batch, R.Threads, R.FloatCompileMs);
  if (!FC)
    return FC.takeError();
  // The module compiles on the first call with a shape: do it untimed.
  std::vector<Shape> Shapes = {Shape(X.shape().begin(), X.shape().end())};
  auto T0 = Clock::now();
  if (llvm::Error E = Int8.precompile(Shapes))
    return E;
  R.Int8CompileMs = msSince(T0);
  // The 224x224 models at large batches take ~0.1-1 s a run.
  double Budget = R.Batch > 8 && R.Model != "net" ? 0.5 : 2.0;
  auto FMs = medianMs([&] { return runOnce(**FC, X); }, Budget);
  if (!FMs)
    return FMs.takeError();
  size_t Runs = 0;
  auto QMs = medianMs([&] { return runOnce(Int8, X); }, Budget, &Runs);
  if (!QMs)
    return QMs.takeError();
  R.FloatMs = *FMs;
  R.Int8Ms = *QMs;
  benchOrt(X, Runs, R);
  R.Gops = 2 * MacsPerImage * R.Batch / (R.Int8Ms * 1e-3) / 1e9;
  R.PeakFraction = PeakPerThread > 0 ? R.Gops / (PeakPerThread * R.Threads) : 0;
  // The program the calls ran (the only one of its shape: calls were
  // sequential). Separate profiled runs: timing every step must not skew
  // the medians.
  auto QC = Int8.acquire(Shapes);
  if (!QC)
    return QC.takeError();
  R.Impls = implSummary(**QC) + "; steps per thread count: fp32 " +
            threadSummary(**FC) + ", int8 " + threadSummary(**QC) + "; " +
            layoutSummary(**FC);
  R.Fallbacks = (*QC)->fallbacks().size();
  // Once per model: the same graph falls back the same way at every size.
  if (R.Fallbacks && R.Batch == Batches.front() &&
      R.Threads == ThreadCounts.front())
    for (const FallbackInfo &F : (*QC)->fallbacks())
      llvm::errs() << "qfx-bench: warning: " << R.Model
                   << " int8: " << formatFallback(F) << "\n";
  size_t ProfiledRuns = std::max<size_t>(3, Runs / 4);
  (*QC)->setProfiling(true);
  for (size_t I = 0; I < ProfiledRuns; ++I)
    if (llvm::Error Err = runOnce(**QC, X))
      return Err;
  (*QC)->setProfiling(false);
  R.Overhead = (R.Int8Ms - (*QC)->primitiveTimeSum()) / R.Int8Ms;
  if (!Profile)
    return llvm::Error::success();
  // The float side too, so that the two can be compared step by step.
  (*FC)->setProfiling(true);
  for (size_t I = 0; I < ProfiledRuns; ++I)
    if (llvm::Error Err = runOnce(**FC, X))
      return Err;
  (*FC)->setProfiling(false);
  printProfile(**FC, R, "fp32", R.FloatMs);
  printProfile(**QC, R, "int8", R.Int8Ms);
  return llvm::Error::success();
}

/// The float graph of \p Entry: traced from the C++ model, or imported
/// from the --import file named for it.
static llvm::Expected<std::unique_ptr<GraphModule>>
floatGraph(const models::ZooEntry &Entry) {
  std::string File = onnxFileFor(ImportOnnx, Entry.Name);
  if (!File.empty())
    return importOnnx(File);
  std::shared_ptr<nn::Module> Model = Entry.Create();
  Model->eval();
  return symbolicTrace(
      *Model, {InputSpec::symbolic("x", DType::F32, Entry.InputShape)});
}

/// --ort's exported files and their folder, removed before exiting.
static llvm::SmallString<128> OwnExportDir;
static std::vector<std::string> OwnExports;
static void removeOwnExports() {
  for (const std::string &F : OwnExports)
    llvm::sys::fs::remove(F);
  if (!OwnExportDir.empty())
    llvm::sys::fs::remove(OwnExportDir);
}

/// --ort: writes qfx's float and int8 graphs of \p Model as ONNX into a
/// temporary folder (removed at exit) and names them for benchOrt.
static llvm::Error exportForOrt(const std::string &Model,
                                const GraphModule &Float,
                                const GraphModule &Int8) {
  if (OwnExportDir.empty())
    if (std::error_code EC =
            llvm::sys::fs::createUniqueDirectory("qfx-bench-ort", OwnExportDir))
      return fileError("temporary folder", EC.message());
  llvm::StringRef Dir = OwnExportDir;
  std::string FloatFile = (Dir + "/" + Model + ".fp32.onnx").str();
  std::string Int8File = (Dir + "/" + Model + ".int8.onnx").str();
  if (llvm::Error E = exportOnnx(Float, FloatFile))
    return E;
  if (llvm::Error E = exportOnnx(Int8, Int8File))
    return E;
  OnnxFloat.push_back(Model + "=" + FloatFile);
  OnnxInt8.push_back(Model + "=" + Int8File);
  OwnExports.push_back(FloatFile);
  OwnExports.push_back(Int8File);
  return llvm::Error::success();
}

/// Traces (or imports), calibrates on random data (the --preset qconfig),
/// converts, then measures every batch and thread count.
static llvm::Error benchModel(const models::ZooEntry &Entry,
                              const std::map<int, double> &Peak,
                              std::vector<Row> &Rows) {
  auto Float = floatGraph(Entry);
  if (!Float)
    return Float.takeError();
  auto QC = QConfig::preset(Preset);
  if (!QC)
    return prefixError(QC.takeError(), "--preset");
  auto Mapping = QConfigMapping().setGlobal(*QC);
  ObservedModule Observed((*Float)->clone());
  if (llvm::Error E = prepareGraph(Observed.graphModule(), Mapping, false))
    return E;
  Shape CalibShape(Entry.InputShape.begin(), Entry.InputShape.end());
  CalibShape[0] = 8; // 4 batches of 2: enough to set ranges
  if (llvm::Error E = Observed.calibrate(randomNormal(CalibShape, 1), 2))
    return E;
  // One int8 module per thread count, each caching a program per batch.
  std::map<int, QuantizedModule> Int8;
  for (int Threads : ThreadCounts) {
    CompileOptions Opts;
    Opts.NumThreads = Threads;
    auto Q = convert_fx(Observed.graphModule(), Opts);
    if (!Q)
      return Q.takeError();
    Int8.emplace(Threads, std::move(*Q));
  }
  if (OrtOwn)
    if (llvm::Error E = exportForOrt(Entry.Name, **Float,
                                     Int8.begin()->second.graphModule()))
      return E;
  double Macs = countMacs(**Float);
  llvm::outs() << llvm::format("%s: %.3f GMACs per image\n", Entry.Name.c_str(),
                               Macs / 1e9);
  for (int Batch : Batches) {
    Shape In(Entry.InputShape.begin(), Entry.InputShape.end());
    In[0] = Batch;
    Tensor X = randomNormal(In, 2);
    for (int Threads : ThreadCounts) {
      Row R;
      R.Model = Entry.Name;
      R.Batch = Batch;
      R.Threads = Threads;
      // One configuration failing keeps the others (and the table).
      if (llvm::Error E = benchOne(**Float, Int8.at(Threads), X, Macs,
                                   Peak.at(Threads), R)) {
        R.Error = errorToString(std::move(E));
        llvm::outs() << "  " << R.Model << " b" << Batch << " t" << Threads
                     << ": failed: " << R.Error << "\n";
        Rows.push_back(R);
        continue;
      }
      llvm::outs() << llvm::format(
          "  %s b%d t%d: fp32 %.3f ms, int8 %.3f ms (%s)", R.Model.c_str(),
          Batch, Threads, R.FloatMs, R.Int8Ms, R.Impls.c_str());
      if (R.Fallbacks)
        llvm::outs() << ", " << R.Fallbacks << " node(s) on reference kernels";
      llvm::outs() << "\n";
      llvm::outs().flush();
      Rows.push_back(R);
    }
  }
  return llvm::Error::success();
}

/// The python3 to run the PyTorch script with, or "". The net is defined
/// in the script; the other models come from torchvision.
static std::string findTorchPython() {
  bool NetOnly =
      llvm::all_of(ModelNames, [](const std::string &M) { return M == "net"; });
  return tools::findTorchPython(Python.getValue(),
                                NetOnly ? "torch" : "torch, torchvision");
}

/// The last non-empty line of \p Text (a Python traceback's exception).
static std::string lastLine(llvm::StringRef Text) {
  llvm::SmallVector<llvm::StringRef, 16> Lines;
  Text.split(Lines, '\n', -1, false);
  for (auto It = Lines.rbegin(); It != Lines.rend(); ++It)
    if (!It->trim().empty())
      return It->trim().str();
  return "";
}

static std::string joinInts(const std::vector<int> &V) {
  std::string S;
  for (int I : V)
    S += (S.empty() ? "" : ",") + std::to_string(I);
  return S;
}

/// Fills in the PyTorch columns of \p Rows from the script's output: lines
/// "RESULT model batch threads fp32 int8" and "ERROR model batch threads
/// reason...". Rows without either keep NaN.
static void parsePyTorchResults(llvm::StringRef Output,
                                std::vector<Row> &Rows) {
  llvm::SmallVector<llvm::StringRef, 32> Lines;
  Output.split(Lines, '\n');
  for (llvm::StringRef L : Lines) {
    llvm::SmallVector<llvm::StringRef, 6> F;
    L.trim().split(F, ' ', /*MaxSplit=*/4);
    if (F.size() != 5 || (F[0] != "RESULT" && F[0] != "ERROR"))
      continue;
    llvm::SmallVector<llvm::StringRef, 2> Ms;
    if (F[0] == "RESULT") {
      F[4].split(Ms, ' ');
      if (Ms.size() != 2)
        continue;
    }
    for (Row &R : Rows) {
      if (R.Model != F[1] || std::to_string(R.Batch) != F[2] ||
          std::to_string(R.Threads) != F[3])
        continue;
      if (F[0] == "ERROR") {
        R.TorchError = F[4].str();
        continue;
      }
      Ms[0].getAsDouble(R.TorchFloatMs);
      Ms[1].getAsDouble(R.TorchInt8Ms);
    }
  }
}

/// Runs pytorch_fx_bench.py for the same configurations and fills in the
/// PyTorch columns. The script failing as a whole still keeps what it
/// reported; the other rows say why they have no numbers.
static llvm::Error runPyTorch(llvm::StringRef Py, std::vector<Row> &Rows) {
  llvm::SmallString<128> OutFile, ErrFile;
  if (std::error_code EC =
          llvm::sys::fs::createTemporaryFile("qfx-bench", "txt", OutFile))
    return fileError("temporary file", EC.message());
  if (std::error_code EC =
          llvm::sys::fs::createTemporaryFile("qfx-bench", "err", ErrFile))
    return fileError("temporary file", EC.message());
  std::vector<std::string> Models;
  for (const Row &R : Rows)
    if (Models.empty() || Models.back() != R.Model)
      Models.push_back(R.Model);
  std::vector<std::string> ArgStore = {
      Py.str(),
      Script,
      "--models=" + llvm::join(Models, ","),
      "--batches=" + joinInts({Batches.begin(), Batches.end()}),
      "--threads=" + joinInts({ThreadCounts.begin(), ThreadCounts.end()}),
      "--iterations=" + std::to_string(Iterations)};
  for (const std::string &F : PyTorchFail)
    ArgStore.push_back("--fail=" + F);
  std::vector<llvm::StringRef> Args(ArgStore.begin(), ArgStore.end());
  llvm::Optional<llvm::StringRef> Redirects[] = {
      llvm::None, llvm::StringRef(OutFile), llvm::StringRef(ErrFile)};
  std::string Msg;
  int RC =
      llvm::sys::ExecuteAndWait(Py, Args, llvm::None, Redirects, 0, 0, &Msg);
  auto Buf = llvm::MemoryBuffer::getFile(OutFile);
  auto ErrBuf = llvm::MemoryBuffer::getFile(ErrFile);
  llvm::sys::fs::remove(OutFile);
  llvm::sys::fs::remove(ErrFile);
  std::string Stderr = ErrBuf ? (*ErrBuf)->getBuffer().str() : "";
  if (!Stderr.empty())
    llvm::errs() << Stderr;
  if (Buf)
    parsePyTorchResults((*Buf)->getBuffer(), Rows);
  std::string Why = "no result from pytorch_fx_bench.py";
  if (RC != 0) {
    std::string Last = lastLine(Stderr);
    Why = "pytorch_fx_bench.py exited with " +
          (RC < 0 ? "an error: " + Msg : "code " + std::to_string(RC)) +
          (Last.empty() ? "" : ": " + Last);
  }
  for (Row &R : Rows)
    if (R.TorchError.empty() &&
        (std::isnan(R.TorchFloatMs) || std::isnan(R.TorchInt8Ms)))
      R.TorchError = Why;
  return llvm::Error::success();
}

/// The ONNX Runtime columns of one row: ms and qfx/ORT for fp32 and int8,
/// "-" where no file was given.
static void printOrtColumns(const Row &R) {
  if (!R.OrtError.empty()) {
    llvm::outs() << "  ORT failed: " << R.OrtError;
    return;
  }
  for (auto [Ort, Qfx] : {std::make_pair(R.OrtFloatMs, R.FloatMs),
                          std::make_pair(R.OrtInt8Ms, R.Int8Ms)}) {
    if (std::isnan(Ort))
      llvm::outs() << llvm::format(" %8s %7s", static_cast<const char *>("-"),
                                   static_cast<const char *>("-"));
    else
      llvm::outs() << llvm::format(" %8.3f %7.2f", Ort, Qfx / Ort);
  }
}

static void printTable(const std::vector<Row> &Rows, bool WithTorch) {
  bool WithOrt = !OnnxFloat.empty() || !OnnxInt8.empty();
  llvm::outs() << "\nlatency: median ms; speedup = fp32/int8; GOPS and %peak "
                  "of int8; overhead = share of int8 time outside oneDNN "
                  "primitives"
               << (WithTorch ? "; qfx/PT = qfx ms / PyTorch ms (<1: qfx "
                               "faster)\n"
                             : "\n")
               << (WithOrt ? "ORT = ONNX Runtime on the --onnx-fp32 / "
                             "--onnx-int8 files; qfx/ORT = qfx ms / ORT ms\n"
                           : "");
  llvm::outs() << "model         batch thr  fp32 ms  int8 ms speedup   GOPS "
                  "%peak  compile f/q ms overhd";
  if (WithTorch)
    llvm::outs() << "  PT fp32  PT int8 PT spd qfx/PT fp32 qfx/PT int8";
  if (WithOrt)
    llvm::outs() << " ORT fp32 qfx/ORT ORT int8 qfx/ORT";
  llvm::outs() << "\n";
  for (const Row &R : Rows) {
    if (!R.Error.empty()) {
      llvm::outs() << llvm::format("%-13s %5d %3d  ", R.Model.c_str(), R.Batch,
                                   R.Threads)
                   << "failed: " << R.Error << "\n";
      continue;
    }
    llvm::outs() << llvm::format(
        "%-13s %5d %3d %8.3f %8.3f %6.2fx %6.1f %4.1f%% %7.1f/%-7.1f %5.1f%%",
        R.Model.c_str(), R.Batch, R.Threads, R.FloatMs, R.Int8Ms,
        R.FloatMs / R.Int8Ms, R.Gops, 100 * R.PeakFraction, R.FloatCompileMs,
        R.Int8CompileMs, 100 * R.Overhead);
    if (WithTorch && !R.TorchError.empty())
      llvm::outs() << "  PyTorch failed: " << R.TorchError;
    else if (WithTorch)
      llvm::outs() << llvm::format(
          " %8.3f %8.3f %5.2fx %11.2f %11.2f", R.TorchFloatMs, R.TorchInt8Ms,
          R.TorchFloatMs / R.TorchInt8Ms, R.FloatMs / R.TorchFloatMs,
          R.Int8Ms / R.TorchInt8Ms);
    if (WithOrt)
      printOrtColumns(R);
    llvm::outs() << "\n";
  }
  size_t Slow = llvm::count_if(Rows, [](const Row &R) { return R.Fallbacks; });
  if (Slow)
    llvm::outs() << "\n"
                 << Slow
                 << " int8 configuration(s) run nodes on reference kernels "
                    "(see the warnings; qopt --bench --strict-lowering "
                    "names them)\n";
}

/// Measures and prints the VNNI peak per thread for every thread count.
static std::map<int, double> measurePeak() {
  std::map<int, double> Peak;
  for (int T : ThreadCounts)
    Peak[T] = vnniPeakGops(T, 0.3);
  llvm::outs() << "VNNI peak (vpdpbusd, u8*s8, 2 ops per MAC), "
               << std::thread::hardware_concurrency() << " hardware threads:";
  for (auto [T, G] : Peak)
    llvm::outs() << llvm::format("  %d thr: %.0f GOPS/core, %.0f GOPS total;",
                                 T, G, G * T);
  llvm::outs() << "\n";
  if (Peak.begin()->second == 0)
    llvm::outs() << "(no AVX512-VNNI on this CPU: %peak is 0)\n";
  return Peak;
}

/// Every --onnx-fp32 / --onnx-int8 / --import entry names a model of the run
/// and an existing file.
static llvm::Error checkOnnxFlags() {
  for (auto [Flag, List] : {std::make_pair("--onnx-fp32", &OnnxFloat),
                            std::make_pair("--onnx-int8", &OnnxInt8),
                            std::make_pair("--import", &ImportOnnx)})
    for (const std::string &Entry : *List) {
      auto [Name, File] = llvm::StringRef(Entry).split('=');
      if (Name.empty() || File.empty())
        return makeError(llvm::Twine(Flag) +
                         ": expected model=file.onnx, got '" + Entry + "'");
      if (!llvm::is_contained(ModelNames, Name.str()))
        return makeError(llvm::Twine(Flag) + ": model '" + Name +
                         "' is not among the models run");
      if (!llvm::sys::fs::is_regular_file(File))
        return fileError(File, "no such file");
    }
  return llvm::Error::success();
}

static llvm::Error run() {
  if (Quick) {
    ModelNames.clear();
    ModelNames.push_back("net");
    Batches.clear();
    Batches.push_back(1);
  }
  if (ModelNames.empty())
    for (const char *M :
         {"net", "resnet18", "mobilenet_v2", "mobilenet_v3_small",
          "mobilenet_v3_cnn", "vit_fashion"})
      ModelNames.push_back(M);
  if (Batches.empty())
    for (int B : {1, 32})
      Batches.push_back(B);
  if (ThreadCounts.empty())
    for (int T : {1, 2})
      ThreadCounts.push_back(T);
  for (int T : ThreadCounts)
    if (llvm::Error E = checkFlagRange("--threads", T, 1, MaxThreads))
      return E;
  for (int B : Batches)
    if (llvm::Error E = checkFlagRange("--batches", B, 1, MaxFlagCount))
      return E;
  if (llvm::Error E = checkOnnxFlags())
    return E;
  if (llvm::Error E = checkFlagRange("--busy", Busy, 0, MaxThreads))
    return E;
  if (!CpuIsa.empty())
    if (llvm::Error E = setMaxCpuIsa(CpuIsa))
      return prefixError(std::move(E), "--cpu-isa");
  llvm::outs() << "oneDNN instruction set: " << effectiveCpuIsa() << "\n";
  // The load before the busy processes start is the rest of the machine's;
  // the VNNI peak is the machine's own, measured before them too.
  std::optional<double> LoadBefore = bench::loadAverage();
  auto Start = Clock::now();
  std::map<int, double> Peak = measurePeak();
  bench::BusyProcesses BusyProcs;
  if (llvm::Error E = BusyProcs.start(Busy))
    return E;
  if (Busy)
    llvm::outs() << "competing busy processes: " << Busy << "\n";
  std::vector<Row> Rows;
  for (const std::string &Name : ModelNames) {
    auto It = llvm::find_if(models::zoo(), [&](const models::ZooEntry &E) {
      return E.Name == Name;
    });
    if (It == models::zoo().end())
      return makeError("unknown model '" + Name + "'");
    if (llvm::Error E = benchModel(*It, Peak, Rows))
      return prefixError(std::move(E), Name);
  }
  std::string Py = PyTorch == cl::BOU_FALSE ? "" : findTorchPython();
  if (PyTorch == cl::BOU_TRUE && Py.empty())
    return makeError("--pytorch: no python3 on PATH can import torch");
  if (!Py.empty()) {
    llvm::outs() << "running " << Script << " with " << Py << "\n";
    llvm::outs().flush();
    if (llvm::Error E = runPyTorch(Py, Rows))
      return E;
  }
  std::optional<double> LoadAfter = bench::loadAverage();
  BusyProcs.stop();
  printTable(Rows, !Py.empty());
  llvm::outs() << llvm::format("\ntotal %.1f s\n", msSince(Start) / 1e3);
  // The 1-minute average lags: the end figure includes the run itself (and
  // the busy processes).
  if (LoadBefore && LoadAfter)
    llvm::outs() << llvm::format("machine load (1-minute average): %.2f before "
                                 "the run, %.2f at its end\n",
                                 *LoadBefore, *LoadAfter);
  else
    llvm::outs() << "machine load: unknown (no /proc/loadavg)\n";
  size_t Failed =
      llvm::count_if(Rows, [](const Row &R) { return !R.Error.empty(); });
  if (Failed)
    return makeError(llvm::Twine(Failed) + " qfx configuration(s) failed "
                                           "(see the table)");
  return llvm::Error::success();
}

int main(int argc, char **argv) {
  cl::ParseCommandLineOptions(
      argc, argv, "qfx benchmark: fp32 vs int8 on the zoo, vs PyTorch FX\n");
  llvm::Error Err = run();
  removeOwnExports();
  if (llvm::Error E = std::move(Err)) {
    llvm::errs() << "qfx-bench: error: " << errorToString(std::move(E)) << "\n";
    return 1;
  }
  return 0;
}
