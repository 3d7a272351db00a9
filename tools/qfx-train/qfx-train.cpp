//===- qfx-train.cpp - Train a zoo model on Fashion-MNIST; float/PTQ/QAT --===//
//
// Trains the zoo's Net from scratch in C++ (the weights the demo ships), or
// starts any Fashion-MNIST-sized zoo model (--model, e.g. vit_fashion) from
// its float weights, then quantizes it two ways and scores all three on the
// test set:
// post-training quantization (calibrate, convert) and quantization-aware
// training (prepare_qat_fx, fine-tune with fake-quant, convert_fx). The int8
// models run as convert_fx returns them (compiled oneDNN code), as users run
// them. With --bench it instead measures training throughput against
// PyTorch's on the same machine.
//
//===----------------------------------------------------------------------===//

#include "TorchPython.h"
#include "qfx/Codegen/Lowering.h"
#include "qfx/IR/GraphModule.h"
#include "qfx/Models/Zoo.h"
#include "qfx/NN/Module.h"
#include "qfx/Pipeline/QuantizeFx.h"
#include "qfx/Quant/ObserverModule.h"
#include "qfx/Quant/QConfigMapping.h"
#include "qfx/Support/Error.h"
#include "qfx/Support/Flags.h"
#include "qfx/Trace/SymbolicTrace.h"
#include "qfx/Train/Checkpoint.h"
#include "qfx/Train/GradKernels.h"
#include "qfx/Train/Trainer.h"

#include "llvm/ADT/Optional.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Process.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/raw_ostream.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <malloc.h>
#include <string>
#include <vector>

using namespace qfx;
namespace cl = llvm::cl;

static cl::opt<std::string>
    DataDir("data-dir", cl::desc("Fashion-MNIST IDX files"),
            cl::init("/usr/share/datasets/fashion-mnist"));
static cl::opt<std::string>
    ModelName("model",
              cl::desc("zoo model to train (one that takes [N,1,28,28]: net, "
                       "mobilenet_v3_cnn, vit_fashion)"),
              cl::init("net"));
static cl::opt<std::string>
    Output("o",
           cl::desc("write the trained float weights here (.safetensors; "
                    "rewritten after every epoch)"),
           cl::value_desc("file"));
static cl::opt<std::string>
    Weights("weights",
            cl::desc("start from these float weights instead of "
                     "training from scratch"),
            cl::value_desc("file"));
static cl::opt<int> Epochs("epochs", cl::desc("float training epochs"),
                           cl::init(5));
static cl::opt<int> BatchSize("batch-size", cl::desc("mini-batch size"),
                              cl::init(32));
static cl::opt<double> LR("lr", cl::desc("peak learning rate"), cl::init(0.05));
static cl::opt<double> Momentum("momentum", cl::desc("SGD momentum"),
                                cl::init(0.9));
static cl::opt<double> WeightDecay("weight-decay", cl::desc("L2 penalty"),
                                   cl::init(5e-4));
static cl::opt<std::string>
    Schedule("schedule",
             cl::desc("constant | step:<size>:<gamma> | cosine[:<warmup>]"),
             cl::init("cosine:400"));
static cl::opt<unsigned long long> Seed("seed",
                                        cl::desc("initialization, "
                                                 "shuffling"),
                                        cl::init(0));
static cl::opt<int> TrainImages("train-images",
                                cl::desc("training images (0 = all 60000)"),
                                cl::init(0));
static cl::opt<int> TestImages("test-images",
                               cl::desc("test images (0 = all 10000)"),
                               cl::init(0));
static cl::opt<int> QatEpochs("qat-epochs",
                              cl::desc("QAT fine-tuning epochs (0: no "
                                       "quantization table)"),
                              cl::init(1));
static cl::opt<double> QatLR("qat-lr", cl::desc("QAT learning rate"),
                             cl::init(1e-3));
static cl::opt<double> FreezeObserversAt(
    "freeze-observers-at",
    cl::desc("fraction of QAT training after which observers stop "
             "updating (PyTorch's disable_observer)"),
    cl::init(0.5));
static cl::opt<double> FreezeBnAt(
    "freeze-bn-at",
    cl::desc("fraction of QAT training after which batch norm uses and "
             "keeps its running statistics (PyTorch's freeze_bn_stats)"),
    cl::init(0.5));
static cl::opt<int> CalibImages("calibration-images",
                                cl::desc("PTQ calibration images"),
                                cl::init(1000));
static cl::opt<int> Threads("threads", cl::desc("oneDNN threads for int8"),
                            cl::init(2));
static cl::opt<bool> Bench("bench",
                           cl::desc("instead of training, measure training "
                                    "throughput (images/s) against PyTorch's"));
static cl::list<int>
    BenchThreads("bench-threads", cl::CommaSeparated,
                 cl::desc("--bench thread counts (default 2)"));
static cl::opt<int> BenchSteps("bench-steps",
                               cl::desc("--bench training steps per timed "
                                        "repetition"),
                               cl::init(50));
static cl::opt<int> BenchReps("bench-reps",
                              cl::desc("--bench timed repetitions (the "
                                       "median is reported)"),
                              cl::init(5));
static cl::opt<int> BenchWarmup("bench-warmup",
                                cl::desc("--bench untimed steps first"),
                                cl::init(10));
static cl::opt<std::string>
    Python("python", cl::desc("--bench: python interpreter for the PyTorch "
                              "baseline (default: the first python3 on PATH "
                              "that imports torch)"));
// Set by --bench on the copy of itself it runs per thread count.
static cl::opt<int> BenchChildThreads("bench-child-threads", cl::Hidden,
                                      cl::init(0));
static cl::opt<std::string> BenchScript("pytorch-script",
                                        cl::desc("path of "
                                                 "pytorch_train_bench.py"),
                                        cl::init(QFX_TRAIN_BENCH_SCRIPT));

/// Prints progress every tenth of an epoch.
static BatchCallback progress(llvm::StringRef What) {
  std::string W = What.str();
  return [W](int64_t I, double Loss, int64_t N) {
    if (N >= 10 && (I + 1) % (N / 10) == 0)
      llvm::errs() << "  " << W << ": batch " << (I + 1) << "/" << N
                   << "  loss " << llvm::format("%.4f", Loss) << "\n";
  };
}

/// Top-1 accuracy of the int8 model \p Q (compiled oneDNN code; the last
/// batch may be shorter and gets its own program).
static llvm::Expected<double> int8Accuracy(const QuantizedModule &Q,
                                           const Dataset &D) {
  int64_t Correct = 0, Batch = 100;
  for (int64_t Begin = 0; Begin < D.size(); Begin += Batch) {
    int64_t End = std::min(D.size(), Begin + Batch);
    auto Out = Q({sliceRows(D.Inputs, Begin, End)});
    if (!Out)
      return Out.takeError();
    for (int64_t I = Begin; I < End; ++I)
      Correct += argmaxRow((*Out)[0], I - Begin) == D.Labels[I];
  }
  return D.size() ? double(Correct) / D.size() : 0.0;
}

/// Options of the int8 models: oneDNN's thread count.
static CompileOptions int8Options() {
  CompileOptions Opts;
  Opts.NumThreads = Threads;
  return Opts;
}

/// The zoo entry --model names; it must take Fashion-MNIST's images.
static llvm::Expected<const models::ZooEntry *> zooEntry() {
  std::string Names;
  for (const models::ZooEntry &E : models::zoo()) {
    if (E.Name == ModelName) {
      if (llvm::makeArrayRef(E.InputShape).drop_front() !=
          llvm::makeArrayRef<int64_t>({1, 28, 28}))
        return makeError("--model: " + E.Name +
                         " does not take Fashion-MNIST's [N, 1, 28, 28] "
                         "images");
      return &E;
    }
    Names += (Names.empty() ? "" : ", ") + E.Name;
  }
  return makeError("--model: no zoo model named '" + ModelName +
                   "' (the zoo has " + Names + ")");
}

/// The --model zoo model (with --weights loaded), traced for the training
/// batch size.
static llvm::Expected<std::unique_ptr<GraphModule>> traceModel() {
  auto Entry = zooEntry();
  if (!Entry)
    return Entry.takeError();
  nn::manual_seed(Seed);
  std::shared_ptr<nn::Module> M = (*Entry)->Create();
  if (!Weights.empty())
    if (llvm::Error E = M->load_safetensors(Weights))
      return E;
  return symbolicTrace(
      *M, {InputSpec::symbolic("x", DType::F32, {BatchSize, 1, 28, 28})});
}

/// Seconds since \p Start.
static double secondsSince(std::chrono::steady_clock::time_point Start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - Start)
      .count();
}

/// The int8 model's program for test batches of 100, compiled now; an
/// error lists its fallbacks, if any (every op must lower to oneDNN).
static llvm::Error checkNoFallback(const QuantizedModule &Q,
                                   llvm::StringRef What) {
  auto L = Q.acquire({Shape{100, 1, 28, 28}});
  if (!L)
    return L.takeError();
  std::vector<FallbackInfo> F = (*L)->fallbacks();
  if (F.empty()) {
    llvm::outs() << What << " int8 model: compiled, no fallback\n";
    return llvm::Error::success();
  }
  std::string Msg = What.str() + " int8 model has " + std::to_string(F.size()) +
                    " fallback(s):";
  for (const FallbackInfo &I : F)
    Msg += "\n  " + formatFallback(I);
  return makeError(Msg);
}

/// Float training from scratch; writes -o after every epoch.
static llvm::Error trainFloat(GraphModule &GM, const Dataset &Train,
                              const Dataset &Test) {
  Tape T(GM, TapeOptions{});
  auto Opt = SGD::create({LR, Momentum, 0, WeightDecay, false});
  if (!Opt)
    return Opt.takeError();
  BatchLoader Loader(Train, BatchSize, /*Shuffle=*/true, Seed);
  auto Sched = LRSchedule::parse(Schedule, LR, Epochs * Loader.numBatches());
  if (!Sched)
    return Sched.takeError();
  int64_t Step = 0;
  for (int E = 0; E < Epochs; ++E) {
    auto S = trainEpoch(T, *Opt, Loader, *Sched, Step, progress("train"));
    if (!S)
      return S.takeError();
    auto Acc = evaluateAccuracy(T, Test, 500);
    if (!Acc)
      return Acc.takeError();
    llvm::outs() << llvm::format(
        "epoch %d/%d  loss %.4f  train %.2f%%  test %.2f%%  %.1f s  %.0f "
        "images/s\n",
        E + 1, int(Epochs), S->MeanLoss, 100 * S->Accuracy, 100 * *Acc,
        S->Seconds, S->Images / S->Seconds);
    llvm::outs().flush();
    if (!Output.empty())
      if (llvm::Error Err = saveCheckpoint(GM, Output))
        return Err;
  }
  return llvm::Error::success();
}

static llvm::Expected<double> ptq(const GraphModule &Float,
                                  const Dataset &Train, const Dataset &Test) {
  std::unique_ptr<GraphModule> GM = Float.clone();
  auto Mapping = QConfigMapping().setGlobal(cantFail(QConfig::preset("x86")));
  if (llvm::Error E = prepareGraph(*GM, Mapping, /*QAT=*/false))
    return E;
  int64_t N = std::min<int64_t>(CalibImages, Train.size());
  for (int64_t B = 0; B < N; B += 100)
    if (auto Out = runObserved(
            *GM, {sliceRows(Train.Inputs, B, std::min(N, B + 100))});
        !Out)
      return Out.takeError();
  auto Q = convert_fx(*GM, int8Options());
  if (!Q)
    return Q.takeError();
  if (llvm::Error E = checkNoFallback(*Q, "PTQ"))
    return E;
  return int8Accuracy(*Q, Test);
}

static llvm::Expected<double> qat(const GraphModule &Float,
                                  const Dataset &Train, const Dataset &Test) {
  std::unique_ptr<GraphModule> GM = Float.clone();
  auto Mapping =
      QConfigMapping().setGlobal(cantFail(QConfig::preset("qat_x86")));
  if (llvm::Error E = prepareGraph(*GM, Mapping, /*QAT=*/true))
    return E;
  Tape T(*GM, TapeOptions{});
  auto Opt = SGD::create({QatLR, Momentum, 0, WeightDecay, false});
  if (!Opt)
    return Opt.takeError();
  BatchLoader Loader(Train, BatchSize, /*Shuffle=*/true, Seed + 1);
  int64_t Total = QatEpochs * Loader.numBatches();
  auto Sched = LRSchedule::parse("cosine", QatLR, Total);
  if (!Sched)
    return Sched.takeError();
  // PyTorch's QAT recipe: after a while the observers stop updating
  // (disable_observer) and batch norm keeps its running statistics
  // (freeze_bn_stats), so the last steps train against the qparams and
  // statistics the int8 model will get.
  auto FreezeAt = static_cast<int64_t>(FreezeObserversAt * Total);
  auto FreezeBnStep = static_cast<int64_t>(FreezeBnAt * Total);
  int64_t Step = 0;
  for (int E = 0; E < QatEpochs; ++E) {
    auto Report = progress("qat");
    auto S = trainEpoch(T, *Opt, Loader, *Sched, Step,
                        [&](int64_t I, double Loss, int64_t N) {
                          Report(I, Loss, N);
                          if (Step == FreezeAt)
                            setObserverEnabled(*GM, false);
                          if (Step == FreezeBnStep)
                            T.options().FreezeBatchNorm = true;
                        });
    if (!S)
      return S.takeError();
    llvm::outs() << llvm::format(
        "qat epoch %d/%d  loss %.4f  train %.2f%%  %.1f s  %.0f images/s\n",
        E + 1, int(QatEpochs), S->MeanLoss, 100 * S->Accuracy, S->Seconds,
        S->Images / S->Seconds);
    llvm::outs().flush();
  }
  auto Q = convert_fx(*GM, int8Options());
  if (!Q)
    return Q.takeError();
  if (llvm::Error E = checkNoFallback(*Q, "QAT"))
    return E;
  return int8Accuracy(*Q, Test);
}

//===----------------------------------------------------------------------===//
// --bench: training throughput against PyTorch
//===----------------------------------------------------------------------===//

/// Median step time in ms and images/s of one side of the comparison.
struct Throughput {
  double StepMs = NAN;
  double ImagesPerSecond = NAN;
};

/// printf-style formatting into a string.
template <typename... Ts>
static std::string formatted(const char *Fmt, const Ts &...Vals) {
  std::string S;
  llvm::raw_string_ostream(S) << llvm::format(Fmt, Vals...);
  return S;
}

static double median(std::vector<double> V) {
  std::sort(V.begin(), V.end());
  size_t N = V.size();
  return N % 2 ? V[N / 2] : (V[N / 2 - 1] + V[N / 2]) / 2;
}

/// "load average 1.41 2.74 3.89": on a shared machine the figures mean
/// little without it.
static std::string loadAverage() {
  double L[3];
  if (getloadavg(L, 3) != 3)
    return "load average unknown";
  return formatted("load average %.2f %.2f %.2f", L[0], L[1], L[2]);
}

/// Times qfx's training step on \p Threads threads: forward, loss,
/// backward and SGD step on consecutive batches, as trainEpoch runs them
/// (at a constant learning rate: the PyTorch side has no schedule).
static llvm::Expected<Throughput> benchQfx(const Dataset &Train, int Threads) {
  // oneDNN runs on OpenMP; this is the thread count its primitives use.
  omp_set_num_threads(Threads);
  auto GM = traceModel(); // a fresh model per thread count, as PyTorch's
  if (!GM)
    return GM.takeError();
  Tape T(**GM, TapeOptions{});
  auto Opt = SGD::create({LR, Momentum, 0, WeightDecay, false});
  if (!Opt)
    return Opt.takeError();
  int64_t Batches = Train.size() / BatchSize, Cursor = 0;
  auto Step = [&]() -> llvm::Error {
    // Consecutive full batches, wrapping around, as the PyTorch script.
    int64_t Begin = (Cursor++ % Batches) * BatchSize;
    Tensor X = sliceRows(Train.Inputs, Begin, Begin + BatchSize);
    llvm::ArrayRef<int64_t> Y(Train.Labels.data() + Begin, BatchSize);
    T.zeroGrad();
    auto Out = T.forward({X});
    if (!Out)
      return Out.takeError();
    if (Out->size() != 1 || (*Out)[0].rank() != 2)
      return makeError("training needs a graph with one [N, classes] output");
    auto CE = grad::crossEntropy((*Out)[0], Y);
    if (!CE)
      return CE.takeError();
    if (llvm::Error E = T.backward({CE->GradLogits}))
      return E;
    return Opt->step(T.graphModule(), T.grads());
  };
  for (int I = 0; I < BenchWarmup; ++I)
    if (llvm::Error E = Step())
      return E;
  std::vector<double> StepMs;
  for (int R = 0; R < BenchReps; ++R) {
    auto Start = std::chrono::steady_clock::now();
    for (int I = 0; I < BenchSteps; ++I)
      if (llvm::Error E = Step())
        return E;
    StepMs.push_back(std::chrono::duration<double, std::milli>(
                         std::chrono::steady_clock::now() - Start)
                         .count() /
                     BenchSteps);
  }
  Throughput TP;
  TP.StepMs = median(StepMs);
  TP.ImagesPerSecond = BatchSize * 1e3 / TP.StepMs;
  return TP;
}

/// The python3 to run the PyTorch script with, or "".
static std::string findTorchPython() {
  return tools::findTorchPython(Python.getValue(), "torch, numpy");
}

/// Runs \p Args (the program first) with stdout captured and returns the
/// figures of its "<Tag> images_per_s_median=... step_ms_median=..." line;
/// \p Version, if given, receives the line's torch=... field. The
/// environment (OMP_WAIT_POLICY) is inherited.
static llvm::Expected<Throughput>
runMeasurement(const std::vector<std::string> &Args, llvm::StringRef Tag,
               std::string *Version = nullptr) {
  llvm::SmallString<128> OutFile;
  if (std::error_code EC =
          llvm::sys::fs::createTemporaryFile("qfx-train", "txt", OutFile))
    return fileError("temporary file", EC.message());
  std::vector<llvm::StringRef> Refs(Args.begin(), Args.end());
  llvm::Optional<llvm::StringRef> Redirects[] = {
      llvm::None, llvm::StringRef(OutFile), llvm::None};
  std::string Msg;
  int RC = llvm::sys::ExecuteAndWait(Refs[0], Refs, llvm::None, Redirects, 0, 0,
                                     &Msg);
  auto Buf = llvm::MemoryBuffer::getFile(OutFile);
  llvm::sys::fs::remove(OutFile);
  if (RC != 0 || !Buf)
    return makeError(Tag + " measurement failed (exit " + std::to_string(RC) +
                     ") " + Msg);
  llvm::SmallVector<llvm::StringRef, 8> Lines;
  (*Buf)->getBuffer().split(Lines, '\n');
  for (llvm::StringRef L : Lines) {
    llvm::SmallVector<llvm::StringRef, 8> Fields;
    L.trim().split(Fields, ' ', -1, false);
    if (Fields.empty() || Fields[0] != Tag)
      continue;
    Throughput TP;
    for (llvm::StringRef F : llvm::makeArrayRef(Fields).drop_front()) {
      auto [Key, Value] = F.split('=');
      if (Key == "images_per_s_median")
        Value.getAsDouble(TP.ImagesPerSecond);
      else if (Key == "step_ms_median")
        Value.getAsDouble(TP.StepMs);
      else if (Key == "torch" && Version)
        *Version = Value.str();
    }
    if (!std::isnan(TP.ImagesPerSecond))
      return TP;
  }
  return makeError(Tag + " measurement printed no result line");
}

/// pytorch_train_bench.py with the same protocol on \p Threads threads.
static llvm::Expected<Throughput> benchPyTorch(llvm::StringRef Py, int Threads,
                                               std::string &Version) {
  return runMeasurement(
      {Py.str(), BenchScript, "--data-dir=" + DataDir,
       "--threads=" + std::to_string(Threads),
       "--batch-size=" + std::to_string(BatchSize),
       "--steps-per-rep=" + std::to_string(BenchSteps),
       "--reps=" + std::to_string(BenchReps),
       "--warmup=" + std::to_string(BenchWarmup),
       formatted("--lr=%.17g", double(LR)),
       formatted("--momentum=%.17g", double(Momentum)),
       formatted("--weight-decay=%.17g", double(WeightDecay))},
      "pytorch_train", &Version);
}

/// This program's path and arguments, for the per-thread-count copies.
static std::vector<std::string> SelfArgs;

/// qfx on \p Threads threads, in a fresh copy of this program: the oneDNN
/// primitives fix their thread count when created, and qfx's primitive
/// caches key them by shape only, so a second thread count measured in the
/// same process would run the first one's primitives.
static llvm::Expected<Throughput> benchQfxIsolated(int Threads) {
  std::vector<std::string> Args = SelfArgs;
  Args.push_back("--bench-child-threads=" + std::to_string(Threads));
  return runMeasurement(Args, "qfx_train");
}

/// One thread count's measurements.
struct BenchResult {
  int Threads;
  Throughput Qfx, Torch;
};

/// The measuring child of --bench: one thread count in a fresh process.
static llvm::Error runBenchChild() {
  auto Train = loadFashionMnist(DataDir, "train", TrainImages);
  if (!Train)
    return Train.takeError();
  if (Train->size() < BatchSize)
    return makeError("fewer training images than one batch");
  auto Q = benchQfx(*Train, BenchChildThreads);
  if (!Q)
    return Q.takeError();
  llvm::outs() << llvm::format(
      "qfx_train images_per_s_median=%.1f step_ms_median=%.4f threads=%d\n",
      Q->ImagesPerSecond, Q->StepMs, int(BenchChildThreads));
  return llvm::Error::success();
}

/// The summary table (PyTorch columns only when it was measured).
static void printBenchTable(const std::vector<BenchResult> &Results,
                            llvm::StringRef Version, llvm::StringRef Py) {
  bool WithTorch = llvm::any_of(Results, [](const BenchResult &R) {
    return !std::isnan(R.Torch.ImagesPerSecond);
  });
  llvm::outs() << "\n";
  if (WithTorch)
    llvm::outs() << "PyTorch " << Version << " via " << BenchScript << " with "
                 << Py << "\n";
  llvm::outs() << "threads  qfx images/s"
               << (WithTorch ? "  PyTorch images/s  qfx/PyTorch" : "") << "\n";
  for (const BenchResult &R : Results) {
    llvm::outs() << llvm::format("%7d  %12.1f", R.Threads,
                                 R.Qfx.ImagesPerSecond);
    if (WithTorch)
      llvm::outs() << llvm::format("  %16.1f  %11.2f", R.Torch.ImagesPerSecond,
                                   R.Qfx.ImagesPerSecond /
                                       R.Torch.ImagesPerSecond);
    llvm::outs() << "\n";
  }
}

static llvm::Error runBench() {
  if (BenchSteps <= 0 || BenchReps <= 0 || BenchWarmup < 0)
    return makeError("--bench-steps and --bench-reps must be positive and "
                     "--bench-warmup not negative");
  if (BenchThreads.empty())
    BenchThreads.push_back(2);
  for (int T : BenchThreads)
    if (llvm::Error E = checkFlagRange("--bench-threads", T, 1, MaxThreads))
      return E;
  // The PyTorch side of the comparison trains the seed Net only.
  if (ModelName != "net")
    return makeError("--bench measures the seed Net only, not --model " +
                     ModelName);
  if (BenchChildThreads > 0)
    return runBenchChild();
  llvm::outs() << "training throughput of Net on Fashion-MNIST: batch "
               << BatchSize
               << llvm::format(", SGD(lr %g, momentum %g, weight decay %g)",
                               double(LR), double(Momentum),
                               double(WeightDecay))
               << ", " << BenchWarmup << " warm-up steps, median of "
               << BenchReps << " x " << BenchSteps
               << " steps; each side in a fresh process per thread count\n"
               << loadAverage() << "\n";
  llvm::outs().flush();

  std::string Py = findTorchPython();
  if (Py.empty())
    llvm::outs() << "note: no python3 on PATH (or --python) imports torch "
                    "and numpy; reporting qfx only\n";
  std::string Version;
  bool TorchFailed = false;
  std::vector<BenchResult> Results;
  for (int T : BenchThreads) {
    BenchResult R{T, {}, {}};
    auto Q = benchQfxIsolated(T);
    if (!Q)
      return Q.takeError();
    R.Qfx = *Q;
    llvm::outs() << llvm::format("  qfx      %d thr: %8.1f images/s  "
                                 "(%.2f ms/step)\n",
                                 T, R.Qfx.ImagesPerSecond, R.Qfx.StepMs);
    llvm::outs().flush();
    if (!Py.empty() && !TorchFailed) {
      auto P = benchPyTorch(Py, T, Version);
      if (P) {
        R.Torch = *P;
        llvm::outs() << llvm::format("  PyTorch  %d thr: %8.1f images/s  "
                                     "(%.2f ms/step)\n",
                                     T, R.Torch.ImagesPerSecond,
                                     R.Torch.StepMs);
      } else {
        // The baseline is optional: report qfx's figure regardless.
        llvm::outs() << "note: PyTorch baseline skipped: "
                     << errorToString(P.takeError()) << "\n";
        TorchFailed = true;
      }
      llvm::outs().flush();
    }
    Results.push_back(R);
  }

  printBenchTable(Results, Version, Py);
  llvm::outs() << loadAverage() << "\n";
  return llvm::Error::success();
}

static llvm::Error run() {
  if (BatchSize <= 0 || Epochs < 0 || QatEpochs < 0)
    return makeError("--batch-size must be positive and epochs not negative");
  if (llvm::Error E = checkFlagRange("--threads", Threads, 0, MaxThreads))
    return E;
  if (auto Entry = zooEntry(); !Entry)
    return Entry.takeError();
  for (auto [Flag, Value] :
       {std::make_pair("--freeze-observers-at", double(FreezeObserversAt)),
        std::make_pair("--freeze-bn-at", double(FreezeBnAt))})
    if (!(Value >= 0 && Value <= 1))
      return makeError(std::string(Flag) +
                       ": must be a fraction between 0 and 1, got " +
                       formatted("%g", Value));
  if (Bench)
    return runBench();
  auto Train = loadFashionMnist(DataDir, "train", TrainImages);
  if (!Train)
    return Train.takeError();
  auto Test = loadFashionMnist(DataDir, "t10k", TestImages);
  if (!Test)
    return Test.takeError();
  auto GM = traceModel();
  if (!GM)
    return GM.takeError();
  if (Weights.empty())
    if (llvm::Error E = trainFloat(**GM, *Train, *Test))
      return E;
  if (QatEpochs == 0)
    return llvm::Error::success();
  using Clock = std::chrono::steady_clock;
  auto Start = Clock::now();
  Tape Eval(**GM, TapeOptions{});
  auto FloatAcc = evaluateAccuracy(Eval, *Test, 500);
  if (!FloatAcc)
    return FloatAcc.takeError();
  double FloatSeconds = secondsSince(Start);
  Start = Clock::now();
  auto PtqAcc = ptq(**GM, *Train, *Test);
  if (!PtqAcc)
    return PtqAcc.takeError();
  double PtqSeconds = secondsSince(Start);
  Start = Clock::now();
  auto QatAcc = qat(**GM, *Train, *Test);
  if (!QatAcc)
    return QatAcc.takeError();
  double QatSeconds = secondsSince(Start);
  llvm::outs() << "\n== " << ModelName << ", Fashion-MNIST test set ("
               << Test->size() << " images) ==\n"
               << llvm::format("  float       top-1 %6.2f%%  (%.0f s)\n",
                               100 * *FloatAcc, FloatSeconds)
               << llvm::format("  int8 PTQ    top-1 %6.2f%%  (%d calibration "
                               "images; %.0f s)\n",
                               100 * *PtqAcc, int(CalibImages), PtqSeconds)
               << llvm::format("  int8 QAT    top-1 %6.2f%%  (%d epoch%s of "
                               "fake-quant fine-tuning on %d images; %.0f "
                               "s)\n",
                               100 * *QatAcc, int(QatEpochs),
                               QatEpochs == 1 ? "" : "s", int(Train->size()),
                               QatSeconds);
  return llvm::Error::success();
}

int main(int argc, char **argv) {
  // Training allocates and frees the same large activation and gradient
  // buffers every batch; glibc would return each to the kernel (mmap /
  // munmap) and fault it in again, which cost a third of the run. Keeping
  // them in the heap lets the next batch reuse them.
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  SelfArgs.assign(argv, argv + argc);
  SelfArgs[0] = llvm::sys::fs::getMainExecutable(argv[0], &SelfArgs);
  cl::ParseCommandLineOptions(
      argc, argv,
      "qfx-train: train a zoo model on Fashion-MNIST; float, PTQ, QAT\n");
  if (llvm::Error E = run()) {
    llvm::errs() << "qfx-train: error: " << errorToString(std::move(E)) << "\n";
    return 1;
  }
  return 0;
}
