//===- qfx-demo.cpp - The main job: Net or ViT on Fashion-MNIST, int8 -----===//
//
// Takes the zoo's Net (or, with --model=vit_fashion, its small ViT) with the
// trained weights shipped in models/ and traces it (or, with --onnx, imports
// the same model exported by PyTorch), fuses, calibrates on training images
// and converts to int8 (--preset, static x86 by default) with convert_fx (a
// module that runs compiled oneDNN code for any batch size); the float graph is
// compiled with compile() for comparison. Then evaluates top-1 on the test set
// and measures latency. Every stage's graph is written to the output directory
// so that qopt can continue from any of them, and the int8 model also as QDQ
// ONNX for ONNX Runtime.
//
//===----------------------------------------------------------------------===//

#include "qfx/Backend/OneDNN/CpuIsa.h"
#include "qfx/Codegen/Lowering.h"
#include "qfx/IR/GraphModule.h"
#include "qfx/IR/Printer.h"
#include "qfx/IR/Serialization.h"
#include "qfx/Models/Zoo.h"
#include "qfx/Onnx/Export.h"
#include "qfx/Onnx/Import.h"
#include "qfx/Pipeline/QuantizeFx.h"
#include "qfx/Quant/QConfigMapping.h"
#include "qfx/Runtime/Interpreter.h"
#include "qfx/Support/Error.h"
#include "qfx/Support/Flags.h"
#include "qfx/Support/Idx.h"
#include "qfx/Trace/SymbolicTrace.h"
#include "qfx/Transforms/Pass.h"

#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Process.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

using namespace qfx;
namespace cl = llvm::cl;

static cl::opt<std::string>
    DataDir("data-dir", cl::desc("Fashion-MNIST IDX files"),
            cl::init("/usr/share/datasets/fashion-mnist"));
/// The zoo models trained on Fashion-MNIST, with weights in models/.
enum class DemoModel { Net, VitFashion };
static cl::opt<DemoModel> Model(
    "model", cl::desc("the zoo model to run"),
    cl::values(clEnumValN(DemoModel::Net, "net", "the seed CNN (default)"),
               clEnumValN(DemoModel::VitFashion, "vit_fashion",
                          "the small vision transformer")),
    cl::init(DemoModel::Net));
static cl::opt<std::string>
    Weights("weights",
            cl::desc("trained weights (.safetensors); by default "
                     "models/net_fashion.safetensors or "
                     "models/vit_fashion.safetensors, as --model says"));
static cl::opt<std::string>
    Preset("preset",
           cl::desc("QConfig preset for the int8 model: x86 (static), "
                    "dynamic (int8 weights, activations quantized on the "
                    "fly), or another QConfig::preset name"),
           cl::init("x86"));
static cl::opt<std::string>
    OnnxModel("onnx",
              cl::desc("import this ONNX model (e.g. PyTorch's "
                       "torch.onnx.export) instead of tracing the zoo model; "
                       "--weights is then unused"),
              cl::value_desc("model.onnx"));
static cl::opt<std::string> OutDir("out-dir",
                                   cl::desc("where to write stage graphs"),
                                   cl::init("qfx-demo-out"));
static cl::opt<int> NumCalib("calibration-images",
                             cl::desc("training images for calibration"),
                             cl::init(1000));
static cl::opt<int> NumTest("test-images", cl::desc("test images to score"),
                            cl::init(10000));
static cl::opt<std::string>
    CpuIsa("cpu-isa", cl::desc("cap oneDNN's instruction set "
                               "(avx512_core_vnni, avx512_core_amx, ...)"));
static cl::opt<int> Threads("threads", cl::desc("oneDNN threads"), cl::init(2));
static cl::opt<bool> Quiet("quiet", cl::desc("do not print the graphs"));

using Clock = std::chrono::steady_clock;

static double secondsSince(Clock::time_point T) {
  return std::chrono::duration<double>(Clock::now() - T).count();
}

/// A progress bar on a terminal, periodic plain lines otherwise.
class Progress {
public:
  Progress(llvm::StringRef What, int64_t Total)
      : What(What.str()), Total(Total), Start(Clock::now()),
        Tty(llvm::sys::Process::StandardErrIsDisplayed()) {}

  void update(int64_t Done) {
    double Secs = secondsSince(Start);
    double Rate = Secs > 0 ? Done / Secs : 0.0;
    double Eta = Rate > 0 ? (Total - Done) / Rate : 0.0;
    if (Tty) {
      int Width = 30, Filled = static_cast<int>(Width * Done / Total);
      llvm::errs() << "\r" << What << " [" << std::string(Filled, '#')
                   << std::string(Width - Filled, '.') << "] " << Done << "/"
                   << Total << "  " << llvm::format("%.0f", Rate)
                   << " images/s  ETA " << llvm::format("%.1f", Eta) << " s ";
      if (Done == Total)
        llvm::errs() << "\n";
    } else if (Done == Total || Secs - LastPrint >= 2.0) {
      LastPrint = Secs;
      llvm::errs() << What << ": " << Done << "/" << Total << " images, "
                   << llvm::format("%.0f", Rate) << " images/s, ETA "
                   << llvm::format("%.1f", Eta) << " s\n";
    }
  }

private:
  std::string What;
  int64_t Total;
  Clock::time_point Start;
  bool Tty;
  double LastPrint = -1e9;
};

/// The zoo name of --model, which also names the stage files.
static const char *modelName() {
  return Model == DemoModel::Net ? "net" : "vit_fashion";
}

/// Writes \p GM as <out-dir>/<Stage>-<model>.<Suffix>.
static llvm::Error save(const GraphModule &GM, llvm::StringRef Stage,
                        llvm::StringRef Suffix) {
  llvm::SmallString<256> Path(OutDir);
  llvm::sys::path::append(Path, Stage + "-" + modelName() + "." + Suffix);
  if (llvm::Error E = saveGraphModule(GM, Path, GraphFileFormat::Json))
    return E;
  llvm::outs() << "  wrote " << Path << "\n";
  return llvm::Error::success();
}

static llvm::Error runPasses(GraphModule &GM, llvm::StringRef Pipeline,
                             PassContext &Ctx) {
  PassManager::Options Opts;
  Opts.VerifyEach = true;
  PassManager PM(Opts);
  if (llvm::Error E = PM.addPipeline(Pipeline))
    return E;
  return PM.run(GM, Ctx);
}

/// Something that maps a batch of images to logits.
using Runner = std::function<llvm::Expected<Tensor>(const Tensor &)>;

struct Scores {
  int64_t Correct = 0;
  std::vector<int64_t> Predictions;
};

static llvm::Expected<Scores> evaluate(const Runner &Run, const Tensor &X,
                                       const Tensor &Labels, int64_t Batch,
                                       llvm::StringRef What) {
  Scores S;
  Progress P(What, X.dim(0));
  for (int64_t B = 0; B < X.dim(0); B += Batch) {
    int64_t E = std::min(X.dim(0), B + Batch);
    auto Logits = Run(sliceRows(X, B, E));
    if (!Logits)
      return Logits.takeError();
    const float *L = Logits->data<float>();
    for (int64_t I = 0; I < E - B; ++I) {
      int64_t Best =
          std::max_element(L + I * 10, L + I * 10 + 10) - (L + I * 10);
      S.Predictions.push_back(Best);
      S.Correct += Best == Labels.data<uint8_t>()[B + I];
    }
    P.update(E);
  }
  return S;
}

/// Median latency in microseconds of \p Run on \p X over \p Reps runs.
static llvm::Expected<double> latency(const Runner &Run, const Tensor &X,
                                      int Reps) {
  std::vector<double> T;
  for (int I = 0; I < Reps + 3; ++I) {
    auto Start = Clock::now();
    auto Out = Run(X);
    if (!Out)
      return Out.takeError();
    if (I >= 3) // warm-up runs excluded
      T.push_back(secondsSince(Start) * 1e6);
  }
  std::nth_element(T.begin(), T.begin() + T.size() / 2, T.end());
  return T[T.size() / 2];
}

static Runner compiledRunner(CompiledModule &CM) {
  return [&CM](const Tensor &X) -> llvm::Expected<Tensor> {
    auto Out = CM.run({X});
    if (!Out)
      return Out.takeError();
    return (*Out)[0];
  };
}

static Runner moduleRunner(const QuantizedModule &Q) {
  return [&Q](const Tensor &X) -> llvm::Expected<Tensor> {
    auto Out = Q({X});
    if (!Out)
      return Out.takeError();
    return (*Out)[0];
  };
}

static CompileOptions compileOptions(int64_t Batch = 0) {
  CompileOptions Opts;
  Opts.NumThreads = Threads;
  Opts.BatchSize = Batch;
  return Opts;
}

static llvm::Expected<std::unique_ptr<CompiledModule>>
compileFor(const GraphModule &GM, int64_t Batch) {
  return compile(GM, compileOptions(Batch));
}

/// The input shapes of a batch of \p Batch images.
static std::vector<Shape> imageBatch(int64_t Batch) {
  return {Shape{Batch, 1, 28, 28}};
}

/// Runs batches of \p Batch rows on \p Full (compiled from \p GM for that
/// batch size) and any other batch, like the shorter last one of the test
/// set, on a module compiled from \p GM for its size on first use.
static Runner evalRunner(CompiledModule &Full, int64_t Batch,
                         const GraphModule &GM) {
  auto Others =
      std::make_shared<std::map<int64_t, std::unique_ptr<CompiledModule>>>();
  return
      [&Full, Batch, &GM, Others](const Tensor &X) -> llvm::Expected<Tensor> {
        if (X.dim(0) == Batch)
          return compiledRunner(Full)(X);
        std::unique_ptr<CompiledModule> &CM = (*Others)[X.dim(0)];
        if (!CM) {
          auto C = compileFor(GM, X.dim(0));
          if (!C)
            return C.takeError();
          CM = std::move(*C);
        }
        return compiledRunner(*CM)(X);
      };
}

static llvm::Error checkFlags() {
  if (llvm::Error E = checkFlagRange("--threads", Threads, 0, MaxThreads))
    return E;
  if (llvm::Error E =
          checkFlagRange("--calibration-images", NumCalib, 1, MaxFlagCount))
    return E;
  return checkFlagRange("--test-images", NumTest, 1, MaxFlagCount);
}

/// The float model: the --model zoo model with the shipped weights, traced,
/// or the --onnx model imported.
static llvm::Expected<std::unique_ptr<GraphModule>> loadFloatModel() {
  if (!OnnxModel.empty())
    return importOnnx(OnnxModel);
  bool IsNet = Model == DemoModel::Net;
  std::shared_ptr<nn::Module> M;
  if (IsNet)
    M = std::make_shared<models::Net>();
  else
    M = models::vit_fashion();
  std::string Path = Weights;
  if (Path.empty())
    Path = IsNet ? "models/net_fashion.safetensors"
                 : "models/vit_fashion.safetensors";
  if (llvm::Error E = M->load_safetensors(Path))
    return E;
  M->eval();
  return symbolicTrace(*M,
                       {InputSpec::symbolic("x", DType::F32, {1, 1, 28, 28})});
}

static llvm::Error run() {
  auto Start = Clock::now();
  if (llvm::Error E = checkFlags())
    return E;
  if (!CpuIsa.empty())
    if (llvm::Error E = setMaxCpuIsa(CpuIsa))
      return prefixError(std::move(E), "--cpu-isa");
  if (std::error_code EC = llvm::sys::fs::create_directories(OutDir))
    return fileError(OutDir, "cannot create directory: " + EC.message());

  // 1. The model, its weights and the data.
  auto Float = loadFloatModel();
  if (!Float)
    return Float.takeError();
  auto TrainX = readIdx(DataDir + "/train-images-idx3-ubyte.gz", NumCalib);
  if (!TrainX)
    return TrainX.takeError();
  // Checked to match the images, as evaluate indexes labels by image row.
  auto TestSet =
      readIdxPair(DataDir + "/t10k-images-idx3-ubyte.gz",
                  DataDir + "/t10k-labels-idx1-ubyte.gz", NumTest, 10);
  if (!TestSet)
    return TestSet.takeError();
  const Tensor *TestY = &TestSet->Labels;
  Tensor Calib = normalizeImages(*TrainX),
         Test = normalizeImages(TestSet->Images);

  // 2. Fuse, prepare.
  llvm::outs() << (OnnxModel.empty() ? "== 1. traced float graph ==\n"
                                     : "== 1. imported float graph ==\n");
  if (!Quiet)
    printGraphModule(**Float, llvm::outs());
  if (llvm::Error E = save(**Float, "1", "float.json"))
    return E;

  PassContext Ctx;
  auto QC = QConfig::preset(Preset);
  if (!QC)
    return prefixError(QC.takeError(), "--preset");
  auto Mapping = QConfigMapping().setGlobal(*QC);
  Ctx.QConfigs = std::make_shared<const QConfigMapping>(Mapping);
  std::unique_ptr<GraphModule> Fused = (*Float)->clone();
  if (llvm::Error E = runPasses(*Fused, "fuse", Ctx))
    return E;
  llvm::outs() << "== 2. fused ==\n";
  if (!Quiet)
    printGraphModule(*Fused, llvm::outs());
  if (llvm::Error E = save(*Fused, "2", "fused.json"))
    return E;

  std::unique_ptr<GraphModule> Observed = Fused->clone();
  if (llvm::Error E = runPasses(*Observed, "qconfig-propagation,prepare", Ctx))
    return E;
  llvm::outs() << "== 3. observed (qconfig " << Preset << ") ==\n";
  if (!Quiet)
    printGraphModule(*Observed, llvm::outs());
  if (llvm::Error E = save(*Observed, "3", "observed.json"))
    return E;

  // 3. Calibrate.
  llvm::outs() << "== 4. calibration on " << Calib.dim(0)
               << " training images ==\n";
  Progress CalibBar("calibrating", Calib.dim(0));
  for (int64_t B = 0; B < Calib.dim(0); B += 100) {
    int64_t E = std::min(Calib.dim(0), B + 100);
    auto Out = runObserved(*Observed, {sliceRows(Calib, B, E)});
    if (!Out)
      return Out.takeError();
    CalibBar.update(E);
  }
  if (llvm::Error E = save(*Observed, "4", "calibrated.json"))
    return E;

  // 4. Convert: the int8 module compiles a program per batch size on first
  // use.
  auto Quantized = convert_fx(*Observed, compileOptions(), &Ctx);
  if (!Quantized)
    return Quantized.takeError();
  llvm::outs() << "== 5. quantized (reference int8) ==\n";
  if (!Quiet)
    Quantized->print(llvm::outs());
  if (llvm::Error E = save(Quantized->graphModule(), "5", "int8.json"))
    return E;
  // The same int8 model as QDQ ONNX, for ONNX Runtime or TensorRT. A side
  // product: a model with ops the exporter has no form for (the ViT) still
  // gets scored, with a warning.
  bool WroteOnnx = true;
  if (llvm::Error E = exportOnnx(Quantized->graphModule(),
                                 OutDir + "/5-" + modelName() + ".int8.onnx")) {
    WroteOnnx = false;
    llvm::errs() << "qfx-demo: warning: int8 ONNX not written: "
                 << errorToString(std::move(E)) << "\n";
  }

  // 5. Evaluate float (compiled for batch 100) and int8.
  auto F100 = compileFor(**Float, 100);
  if (!F100)
    return F100.takeError();
  llvm::outs() << "== 6. compiled int8 program (batch 100) ==\n";
  std::string Report;
  llvm::raw_string_ostream ReportOS(Report);
  if (llvm::Error E = Quantized->printCompiled(imageBatch(100), ReportOS))
    return E;
  if (!Quiet)
    llvm::outs() << ReportOS.str();
  // Reference kernels explain an int8 program slower than float; say so
  // even in quiet mode.
  {
    auto Q100 = Quantized->acquire(imageBatch(100));
    if (!Q100)
      return Q100.takeError();
    std::vector<FallbackInfo> Slow = (**Q100).fallbacks();
    llvm::outs() << "  " << Slow.size()
                 << " node(s) on reference kernels (op-table fallback)\n";
    for (const FallbackInfo &F : Slow)
      llvm::errs() << "qfx-demo: warning: int8: " << formatFallback(F) << "\n";
  }

  auto FScores = evaluate(evalRunner(**F100, 100, **Float), Test, *TestY, 100,
                          "float eval");
  if (!FScores)
    return FScores.takeError();
  auto QScores =
      evaluate(moduleRunner(*Quantized), Test, *TestY, 100, "int8 eval");
  if (!QScores)
    return QScores.takeError();
  int64_t Agree = 0;
  for (size_t I = 0; I < FScores->Predictions.size(); ++I)
    Agree += FScores->Predictions[I] == QScores->Predictions[I];

  double N = static_cast<double>(Test.dim(0));
  llvm::outs()
      << "\n== Fashion-MNIST test set (" << Test.dim(0) << " images) ==\n"
      << llvm::format("  float top-1  %6.2f%%\n", 100.0 * FScores->Correct / N)
      << llvm::format("  int8  top-1  %6.2f%%\n", 100.0 * QScores->Correct / N)
      << llvm::format("  argmax agreement %6.2f%%\n", 100.0 * Agree / N);

  llvm::outs() << "\n== latency (median, " << Threads << " threads) ==\n"
               << "  batch    float (us)    int8 (us)   speedup\n";
  for (int64_t Batch : {int64_t(1), int64_t(64)}) {
    if (Batch > Test.dim(0)) // too few test images to time this batch
      continue;
    // Compiling happens here, before the timed runs (which also exclude
    // warm-up runs).
    auto FC = compileFor(**Float, Batch);
    if (!FC)
      return FC.takeError();
    if (llvm::Error E = Quantized->precompile(imageBatch(Batch)))
      return E;
    int Reps = Batch == 1 ? 200 : 30;
    auto FL = latency(compiledRunner(**FC), sliceRows(Test, 0, Batch), Reps);
    auto QL =
        latency(moduleRunner(*Quantized), sliceRows(Test, 0, Batch), Reps);
    if (!FL)
      return FL.takeError();
    if (!QL)
      return QL.takeError();
    llvm::outs() << llvm::format("  %5lld  %12.1f %12.1f   %6.2fx\n",
                                 static_cast<long long>(Batch), *FL, *QL,
                                 *FL / *QL);
  }
  llvm::outs() << llvm::format("\ndone in %.1f s; continue with qopt on ",
                               secondsSince(Start))
               << OutDir << "/*.json";
  if (WroteOnnx)
    llvm::outs() << ", or run " << OutDir << "/5-" << modelName()
                 << ".int8.onnx with ONNX Runtime";
  llvm::outs() << "\n";
  return llvm::Error::success();
}

int main(int argc, char **argv) {
  cl::ParseCommandLineOptions(
      argc, argv, "qfx demo: Net or ViT on Fashion-MNIST, float vs int8\n");
  if (llvm::Error E = run()) {
    llvm::errs() << "qfx-demo: error: " << errorToString(std::move(E)) << "\n";
    return 1;
  }
  return 0;
}
