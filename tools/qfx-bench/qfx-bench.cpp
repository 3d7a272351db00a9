//===- qfx-bench.cpp - fp32 vs int8 latency of the zoo, vs its peers ------===//
//
// For each zoo model, batch and thread count: compiles the traced float
// graph and runs convert_fx's int8 module, reports median latencies, achieved
// int8 GOPS against the measured VNNI peak, compile time and the share of
// time spent outside oneDNN primitives; optionally runs the same models
// through PyTorch's FX quantization (onednn engine, TorchBench.h) and ONNX
// files through ONNX Runtime (OrtBench.h), in persistent worker processes.
// Every engine is timed in short bursts, interleaved in rotating order over
// several rounds, so that a load spike on the shared machine hits them all
// alike; the figures are medians over every engine's runs of all rounds.
//
//===----------------------------------------------------------------------===//

#include "BusyLoad.h"
#include "OrtBench.h"
#include "TorchBench.h"
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
#include "qfx/Support/Npy.h"
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
#include "llvm/Support/Signals.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
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
static cl::opt<int> Iterations(
    "iterations",
    cl::desc("timed runs per engine and configuration, spread over the "
             "rounds (0: bursts of about 2 s / rounds of qfx fp32 runs, "
             "0.5 s for the 224x224 models at batch > 8, 1 to 20 runs each; a "
             "slower engine's burst ends after twice that time)"),
    cl::init(0));
static cl::opt<int> Rounds(
    "rounds",
    cl::desc("interleaved rounds per configuration: each round times a "
             "burst of every engine, in an order that rotates (default 7)"),
    cl::init(7));
static cl::opt<int> WorkerTimeout(
    "worker-timeout",
    cl::desc("seconds to wait for any reply of the PyTorch or ONNX Runtime "
             "worker before giving it up (default 300)"),
    cl::init(300));
static cl::opt<std::string>
    CpuIsa("cpu-isa", cl::desc("cap oneDNN's instruction set for the whole run "
                               "(avx512_core_vnni, avx512_core_amx, ...)"));
static cl::opt<bool> Profile("profile",
                             cl::desc("print per-node fp32 and int8 profiles"));
static cl::opt<cl::boolOrDefault>
    PyTorch("pytorch",
            cl::desc("compare with PyTorch FX, timed by a persistent "
                     "pytorch_fx_bench.py --worker (default: when python3 "
                     "can import torch)"));
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
    NodeExe("node", cl::desc("node executable for --onnx-* and --ort"),
            cl::init("node"));
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
/// Latencies are medians over all rounds.
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
  /// Rounds run, the fewest and most timed runs of an engine (a slow one's
  /// bursts are cut short), the load average after them.
  int RoundsRun = 0;
  size_t MinRuns = 0, MaxRuns = 0;
  double LoadAfter = NAN;
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
template <typename Callee>
static llvm::Error runOnce(Callee &C, const Tensor &X) {
  auto Out = C.run({X});
  return Out ? llvm::Error::success() : Out.takeError();
}

/// Burst \p B of calls of \p C on \p X; the timed ones in ms.
template <typename Callee>
static llvm::Expected<std::vector<double>> qfxBurst(Callee &C, const Tensor &X,
                                                    const bench::Burst &B) {
  for (int I = 0; I < B.Warmup; ++I)
    if (llvm::Error E = runOnce(C, X))
      return E;
  std::vector<double> Ms;
  auto Start = Clock::now();
  for (int I = 0; I < B.N; ++I) {
    auto T0 = Clock::now();
    if (llvm::Error E = runOnce(C, X))
      return E;
    Ms.push_back(msSince(T0));
    if (B.MaxMs > 0 && msSince(Start) >= B.MaxMs)
      break;
  }
  return Ms;
}

static double median(std::vector<double> V) {
  std::nth_element(V.begin(), V.begin() + V.size() / 2, V.end());
  return V[V.size() / 2];
}

/// One engine's part of a row: a burst of timed runs per round. \p Median
/// receives the median of all its runs (the smaller one when several slots
/// share a column: PyTorch's int8 is its best of static and dynamic), \p Why
/// its first failure.
struct Slot {
  using BurstFn =
      std::function<llvm::Expected<std::vector<double>>(const bench::Burst &)>;
  Slot(BurstFn Burst, double *Median, std::string *Why)
      : Burst(std::move(Burst)), Median(Median), Why(Why) {}
  BurstFn Burst;
  double *Median;
  std::string *Why;
  std::vector<double> Ms;
  std::string Error;
};

/// \p NumRounds rounds of one burst \p B per slot, in an order
/// rotated by one slot each round, so that every engine runs early and late
/// and right after each of the others: a load spike, or the previous
/// engine's threads still spinning, lands on all of them alike. A failing
/// slot sits out the remaining rounds.
static void runRounds(std::vector<Slot> &Slots, int NumRounds, bench::Burst B) {
  for (int Round = 0; Round < NumRounds; ++Round)
    for (size_t I = 0; I < Slots.size(); ++I) {
      Slot &S = Slots[(I + Round) % Slots.size()];
      if (!S.Error.empty())
        continue;
      // The first burst also touches fresh memory and creates primitives.
      B.Warmup = Round == 0 ? 2 : 1;
      auto Ms = S.Burst(B);
      if (!Ms)
        S.Error = errorToString(Ms.takeError());
      else
        S.Ms.insert(S.Ms.end(), Ms->begin(), Ms->end());
    }
  for (Slot &S : Slots) {
    if (!S.Error.empty()) {
      if (S.Why->empty())
        *S.Why = S.Error;
      continue;
    }
    double M = median(S.Ms);
    *S.Median = std::isnan(*S.Median) ? M : std::min(*S.Median, M);
  }
}

/// Rounds, and the bursts: --iterations runs spread over the rounds, or
/// bursts of about \p BudgetS / rounds of runs taking \p OneMs (qfx fp32's),
/// cut at twice that time for a slower engine.
static std::pair<int, bench::Burst> roundsAndBurst(double OneMs,
                                                   double BudgetS) {
  int NumRounds = Rounds;
  bench::Burst B;
  if (Iterations > 0) {
    NumRounds = std::min<int>(NumRounds, Iterations);
    B.N = (Iterations + NumRounds - 1) / NumRounds;
    return {NumRounds, B};
  }
  double SlotMs = BudgetS * 1e3 / NumRounds;
  B.N = std::clamp(int(SlotMs / std::max(OneMs, 1e-3)), 1, 20);
  B.MaxMs = 2 * std::max(SlotMs, OneMs);
  return {NumRounds, B};
}

/// The PyTorch and ONNX Runtime workers of the run (null: not compared),
/// and what PyTorch can time of the current model, or why it cannot.
struct Peers {
  std::unique_ptr<tools::TorchBench> Torch;
  std::unique_ptr<tools::OrtBench> Ort;
  std::vector<std::string> TorchVariants;
  std::string TorchError;
};

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

/// The peers' slots of \p R: ONNX Runtime on the row's files (sessions
/// created here, untimed) and input \p InputNpy, PyTorch on every variant
/// its worker has. Peers that cannot run mark the row.
static void addPeerSlots(Peers &P, const std::string &InputNpy, Row &R,
                         std::vector<Slot> &Slots) {
  for (auto [Flag, Ms] : {std::make_pair(&OnnxFloat, &R.OrtFloatMs),
                          std::make_pair(&OnnxInt8, &R.OrtInt8Ms)}) {
    std::string File = onnxFileFor(*Flag, R.Model);
    if (!P.Ort || File.empty() || !R.OrtError.empty())
      continue;
    if (llvm::Error E = P.Ort->load(File, R.Threads)) {
      R.OrtError = errorToString(std::move(E));
      continue;
    }
    int Threads = R.Threads;
    Slots.push_back({[&P, File, Threads, &InputNpy](const bench::Burst &B) {
                       return P.Ort->run(File, Threads, InputNpy, B);
                     },
                     Ms, &R.OrtError});
  }
  if (!P.Torch)
    return;
  R.TorchError = P.TorchError;
  for (const std::string &V : P.TorchVariants)
    Slots.push_back({[&P, V, &R](const bench::Burst &B) {
                       return P.Torch->run(R.Model, V, R.Batch, R.Threads, B);
                     },
                     V == "fp32" ? &R.TorchFloatMs : &R.TorchInt8Ms,
                     &R.TorchError});
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

/// Fills in the columns of \p R: qfx's from the float graph and the int8
/// module (convert_fx's, compiled with R.Threads threads), the peers' from
/// their workers (\p InputNpy holds \p X for ONNX Runtime), all timed in
/// interleaved rounds.
static llvm::Error benchOne(const GraphModule &Float,
                            const QuantizedModule &Int8, const Tensor &X,
                            const std::string &InputNpy, Peers &P,
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
  // One fp32 run after two warm-up runs sizes the bursts.
  auto One = qfxBurst(**FC, X, bench::Burst{1, 2, 0});
  if (!One)
    return One.takeError();
  auto [NumRounds, B] = roundsAndBurst(One->front(), Budget);
  std::string QfxError;
  R.FloatMs = R.Int8Ms = NAN;
  std::vector<Slot> Slots;
  Slots.push_back(
      {[&](const bench::Burst &Spec) { return qfxBurst(**FC, X, Spec); },
       &R.FloatMs, &QfxError});
  Slots.push_back(
      {[&](const bench::Burst &Spec) { return qfxBurst(Int8, X, Spec); },
       &R.Int8Ms, &QfxError});
  addPeerSlots(P, InputNpy, R, Slots);
  runRounds(Slots, NumRounds, B);
  if (!QfxError.empty())
    return makeError(QfxError);
  R.RoundsRun = NumRounds;
  R.MinRuns = R.MaxRuns = Slots.front().Ms.size();
  for (const Slot &S : Slots)
    if (S.Error.empty()) {
      R.MinRuns = std::min(R.MinRuns, S.Ms.size());
      R.MaxRuns = std::max(R.MaxRuns, S.Ms.size());
    }
  R.LoadAfter = bench::loadAverage().value_or(NAN);
  size_t Runs = Slots[1].Ms.size(); // qfx int8's
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

/// qfx-bench's temporary files (--ort's exports, ONNX Runtime's inputs) and
/// their folder, removed before exiting.
static llvm::SmallString<128> TempDir;
static std::vector<std::string> TempFiles;
static void removeTempFiles() {
  for (const std::string &F : TempFiles) {
    llvm::sys::fs::remove(F);
    llvm::sys::DontRemoveFileOnSignal(F);
  }
  if (!TempDir.empty())
    llvm::sys::fs::remove(TempDir);
}

/// The path of a new temporary file \p Name (removed at exit).
static llvm::Expected<std::string> tempFile(llvm::StringRef Name) {
  if (TempDir.empty())
    if (std::error_code EC =
            llvm::sys::fs::createUniqueDirectory("qfx-bench", TempDir))
      return fileError("temporary folder", EC.message());
  TempFiles.push_back((TempDir + "/" + Name).str());
  llvm::sys::RemoveFileOnSignal(TempFiles.back());
  return TempFiles.back();
}

/// --ort: writes qfx's float and int8 graphs of \p Model as ONNX into a
/// temporary folder (removed at exit) and names them for the ONNX Runtime
/// columns.
static llvm::Error exportForOrt(const std::string &Model,
                                const GraphModule &Float,
                                const GraphModule &Int8) {
  auto FloatFile = tempFile(Model + ".fp32.onnx");
  if (!FloatFile)
    return FloatFile.takeError();
  auto Int8File = tempFile(Model + ".int8.onnx");
  if (!Int8File)
    return Int8File.takeError();
  if (llvm::Error E = exportOnnx(Float, *FloatFile))
    return E;
  if (llvm::Error E = exportOnnx(Int8, *Int8File))
    return E;
  OnnxFloat.push_back(Model + "=" + *FloatFile);
  OnnxInt8.push_back(Model + "=" + *Int8File);
  return llvm::Error::success();
}

/// Has the PyTorch worker (if any) convert \p Model; what it can time of it
/// or why it cannot go into \p P.
static void loadTorchModel(Peers &P, llvm::StringRef Model) {
  P.TorchVariants.clear();
  P.TorchError.clear();
  if (!P.Torch)
    return;
  auto V = P.Torch->load(Model);
  if (V)
    P.TorchVariants = std::move(*V);
  else
    P.TorchError = errorToString(V.takeError());
}

/// \p X as a temporary .npy file for the ONNX Runtime worker ("" without
/// one).
static llvm::Expected<std::string>
ortInput(const Peers &P, llvm::StringRef Model, const Tensor &X) {
  if (!P.Ort)
    return "";
  auto File = tempFile(Model.str() + ".b" + std::to_string(X.dim(0)) + ".npy");
  if (!File)
    return File.takeError();
  if (llvm::Error E = writeNpy(*File, X))
    return E;
  return File;
}

/// One line per finished row: every engine's median, how it was measured.
static void printProgress(const Row &R) {
  llvm::outs() << llvm::format("  %s b%d t%d: fp32 %.3f ms, int8 %.3f ms",
                               R.Model.c_str(), R.Batch, R.Threads, R.FloatMs,
                               R.Int8Ms);
  for (auto [Label, Ms] : {std::make_pair("ORT fp32", R.OrtFloatMs),
                           std::make_pair("ORT int8", R.OrtInt8Ms),
                           std::make_pair("PT fp32", R.TorchFloatMs),
                           std::make_pair("PT int8", R.TorchInt8Ms)})
    if (!std::isnan(Ms))
      llvm::outs() << llvm::format(", %s %.3f ms", Label, Ms);
  llvm::outs() << " (" << R.RoundsRun << " rounds, " << R.MinRuns;
  if (R.MaxRuns != R.MinRuns)
    llvm::outs() << "-" << R.MaxRuns;
  llvm::outs() << " runs per engine";
  if (!std::isnan(R.LoadAfter))
    llvm::outs() << llvm::format(", load %.2f", R.LoadAfter);
  llvm::outs() << "; " << R.Impls << ")";
  if (R.Fallbacks)
    llvm::outs() << ", " << R.Fallbacks << " node(s) on reference kernels";
  llvm::outs() << "\n";
  llvm::outs().flush();
}

/// Traces (or imports), calibrates on random data (the --preset qconfig),
/// converts, then measures every batch and thread count.
static llvm::Error benchModel(const models::ZooEntry &Entry,
                              const std::map<int, double> &Peak, Peers &P,
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
  loadTorchModel(P, Entry.Name);
  double Macs = countMacs(**Float);
  llvm::outs() << llvm::format("%s: %.3f GMACs per image\n", Entry.Name.c_str(),
                               Macs / 1e9);
  for (int Batch : Batches) {
    Shape In(Entry.InputShape.begin(), Entry.InputShape.end());
    In[0] = Batch;
    Tensor X = randomNormal(In, 2);
    auto InputNpy = ortInput(P, Entry.Name, X);
    if (!InputNpy)
      return InputNpy.takeError();
    for (int Threads : ThreadCounts) {
      Row R;
      R.Model = Entry.Name;
      R.Batch = Batch;
      R.Threads = Threads;
      // One configuration failing keeps the others (and the table).
      if (llvm::Error E = benchOne(**Float, Int8.at(Threads), X, *InputNpy, P,
                                   Macs, Peak.at(Threads), R)) {
        R.Error = errorToString(std::move(E));
        llvm::outs() << "  " << R.Model << " b" << Batch << " t" << Threads
                     << ": failed: " << R.Error << "\n";
        Rows.push_back(R);
        continue;
      }
      printProgress(R);
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

/// The PyTorch worker's command line: \p Py, the script, its flags.
static std::vector<std::string> torchArgs(llvm::StringRef Py) {
  std::vector<std::string> Args = {Py.str(), Script};
  for (const std::string &F : PyTorchFail)
    Args.push_back("--fail=" + F);
  return Args;
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
  llvm::outs() << "\nlatency: median ms over all runs of interleaved rounds "
                  "(each round a burst of every engine, in rotating order); "
                  "speedup = fp32/int8; GOPS and %peak of int8; overhead = "
                  "share of int8 time outside oneDNN primitives"
               << (WithTorch ? "; qfx/PT = qfx ms / PyTorch ms (<1: qfx "
                               "faster)\n"
                             : "\n")
               << (WithOrt ? "ORT = ONNX Runtime on the --onnx-fp32 / "
                             "--onnx-int8 files or qfx's exports (--ort); "
                             "qfx/ORT = qfx ms / ORT ms\n"
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
  if (llvm::Error E = checkFlagRange("--rounds", Rounds, 1, 1000))
    return E;
  if (llvm::Error E =
          checkFlagRange("--worker-timeout", WorkerTimeout, 1, 86400))
    return E;
  std::string Py = PyTorch == cl::BOU_FALSE ? "" : findTorchPython();
  if (PyTorch == cl::BOU_TRUE && Py.empty())
    return makeError(Python.empty()
                         ? "--pytorch: no python3 on PATH can import torch"
                         : "--pytorch: '" + Python +
                               "' (--python) cannot import torch (or "
                               "torchvision)");
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
  // The workers start after the busy processes: those are forked.
  Peers P;
  if (!Py.empty()) {
    llvm::outs() << "PyTorch FX: " << Script << " --worker with " << Py << "\n";
    P.Torch = std::make_unique<tools::TorchBench>(torchArgs(Py), WorkerTimeout);
  }
  if (OrtOwn || !OnnxFloat.empty() || !OnnxInt8.empty())
    P.Ort = std::make_unique<tools::OrtBench>(NodeExe, OrtRunner, OrtDir,
                                              WorkerTimeout);
  std::vector<Row> Rows;
  for (const std::string &Name : ModelNames) {
    auto It = llvm::find_if(models::zoo(), [&](const models::ZooEntry &E) {
      return E.Name == Name;
    });
    if (It == models::zoo().end())
      return makeError("unknown model '" + Name + "'");
    if (llvm::Error E = benchModel(*It, Peak, P, Rows))
      return prefixError(std::move(E), Name);
  }
  P.Torch.reset();
  P.Ort.reset();
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
      argc, argv,
      "qfx benchmark: fp32 vs int8 on the zoo, vs PyTorch FX and ONNX "
      "Runtime\n\n"
      "Every engine is timed in the same run: PyTorch FX and ONNX Runtime in\n"
      "persistent worker processes, each configuration in --rounds rounds of\n"
      "one short burst per engine (qfx fp32, qfx int8, ORT fp32, ORT int8,\n"
      "PyTorch fp32, PyTorch int8) in an order that rotates every round.\n"
      "Latencies are medians over all of an engine's runs; the ratios are\n"
      "of those medians, and the machine's load is printed. --busy=N adds\n"
      "competing spinning processes.\n");
  llvm::Error Err = run();
  removeTempFiles();
  if (llvm::Error E = std::move(Err)) {
    llvm::errs() << "qfx-bench: error: " << errorToString(std::move(E)) << "\n";
    return 1;
  }
  return 0;
}
