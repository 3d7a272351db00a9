//===- qfx-train.cpp - Train Net on Fashion-MNIST; float vs PTQ vs QAT ----===//
//
// Trains the zoo's Net from scratch in C++ (the weights the demo ships),
// then quantizes it two ways and scores all three on the test set:
// post-training quantization (calibrate, convert) and quantization-aware
// training (prepare_qat_fx, fine-tune with fake-quant, convert). The int8
// models are compiled to oneDNN, as users run them.
//
//===----------------------------------------------------------------------===//

#include "qfx/Codegen/CompiledModule.h"
#include "qfx/Codegen/Lowering.h"
#include "qfx/IR/GraphModule.h"
#include "qfx/Models/Zoo.h"
#include "qfx/NN/Module.h"
#include "qfx/Pipeline/QuantizeFx.h"
#include "qfx/Quant/ObserverModule.h"
#include "qfx/Quant/QConfigMapping.h"
#include "qfx/Support/Error.h"
#include "qfx/Trace/SymbolicTrace.h"
#include "qfx/Train/Checkpoint.h"
#include "qfx/Train/Trainer.h"

#include "llvm/Support/CommandLine.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/raw_ostream.h"

#include <malloc.h>
#include <map>
#include <string>

using namespace qfx;
namespace cl = llvm::cl;

static cl::opt<std::string>
    DataDir("data-dir", cl::desc("Fashion-MNIST IDX files"),
            cl::init("/usr/share/datasets/fashion-mnist"));
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
                              cl::init(64));
static cl::opt<double> LR("lr", cl::desc("peak learning rate"), cl::init(0.05));
static cl::opt<double> Momentum("momentum", cl::desc("SGD momentum"),
                                cl::init(0.9));
static cl::opt<double> WeightDecay("weight-decay", cl::desc("L2 penalty"),
                                   cl::init(5e-4));
static cl::opt<std::string>
    Schedule("schedule",
             cl::desc("constant | step:<size>:<gamma> | cosine[:<warmup>]"),
             cl::init("cosine:200"));
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
static cl::opt<int> CalibImages("calibration-images",
                                cl::desc("PTQ calibration images"),
                                cl::init(1000));
static cl::opt<int> Threads("threads", cl::desc("oneDNN threads for int8"),
                            cl::init(2));

/// Prints progress every tenth of an epoch.
static BatchCallback progress(llvm::StringRef What) {
  std::string W = What.str();
  return [W](int64_t I, double Loss, int64_t N) {
    if (N >= 10 && (I + 1) % (N / 10) == 0)
      llvm::errs() << "  " << W << ": batch " << (I + 1) << "/" << N
                   << "  loss " << llvm::format("%.4f", Loss) << "\n";
  };
}

/// Top-1 accuracy of the int8 graph \p GM compiled for oneDNN.
static llvm::Expected<double> int8Accuracy(const GraphModule &GM,
                                           const Dataset &D) {
  int64_t Correct = 0, Batch = 100;
  // One compiled module per batch size (the last batch may be shorter).
  std::map<int64_t, std::unique_ptr<CompiledModule>> Compiled;
  for (int64_t Begin = 0; Begin < D.size(); Begin += Batch) {
    int64_t End = std::min(D.size(), Begin + Batch);
    std::unique_ptr<CompiledModule> &CM = Compiled[End - Begin];
    if (!CM) {
      CompileOptions Opts;
      Opts.NumThreads = Threads;
      Opts.BatchSize = End - Begin;
      auto C = compile(GM, Opts);
      if (!C)
        return C.takeError();
      CM = std::move(*C);
    }
    auto Out = CM->run({sliceRows(D.Inputs, Begin, End)});
    if (!Out)
      return Out.takeError();
    for (int64_t I = Begin; I < End; ++I)
      Correct += argmaxRow((*Out)[0], I - Begin) == D.Labels[I];
  }
  return D.size() ? double(Correct) / D.size() : 0.0;
}

static llvm::Expected<std::unique_ptr<GraphModule>> traceNet() {
  nn::manual_seed(Seed);
  models::Net Net;
  if (!Weights.empty())
    if (llvm::Error E = Net.load_safetensors(Weights))
      return E;
  return symbolicTrace(
      Net, {InputSpec::symbolic("x", DType::F32, {BatchSize, 1, 28, 28})});
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
  auto Q = convert_fx(*GM);
  if (!Q)
    return Q.takeError();
  return int8Accuracy(**Q, Test);
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
  auto FreezeAt = static_cast<int64_t>(FreezeObserversAt * Total);
  int64_t Step = 0;
  for (int E = 0; E < QatEpochs; ++E) {
    auto Report = progress("qat");
    auto S = trainEpoch(T, *Opt, Loader, *Sched, Step,
                        [&](int64_t I, double Loss, int64_t N) {
                          Report(I, Loss, N);
                          if (Step == FreezeAt)
                            setObserverEnabled(*GM, false);
                        });
    if (!S)
      return S.takeError();
    llvm::outs() << llvm::format(
        "qat epoch %d/%d  loss %.4f  train %.2f%%  %.1f s  %.0f images/s\n",
        E + 1, int(QatEpochs), S->MeanLoss, 100 * S->Accuracy, S->Seconds,
        S->Images / S->Seconds);
    llvm::outs().flush();
  }
  auto Q = convert_fx(*GM);
  if (!Q)
    return Q.takeError();
  return int8Accuracy(**Q, Test);
}

static llvm::Error run() {
  if (BatchSize <= 0 || Epochs < 0 || QatEpochs < 0)
    return makeError("--batch-size must be positive and epochs not negative");
  auto Train = loadFashionMnist(DataDir, "train", TrainImages);
  if (!Train)
    return Train.takeError();
  auto Test = loadFashionMnist(DataDir, "t10k", TestImages);
  if (!Test)
    return Test.takeError();
  auto GM = traceNet();
  if (!GM)
    return GM.takeError();
  if (Weights.empty())
    if (llvm::Error E = trainFloat(**GM, *Train, *Test))
      return E;
  if (QatEpochs == 0)
    return llvm::Error::success();
  Tape Eval(**GM, TapeOptions{});
  auto FloatAcc = evaluateAccuracy(Eval, *Test, 500);
  if (!FloatAcc)
    return FloatAcc.takeError();
  auto PtqAcc = ptq(**GM, *Train, *Test);
  if (!PtqAcc)
    return PtqAcc.takeError();
  auto QatAcc = qat(**GM, *Train, *Test);
  if (!QatAcc)
    return QatAcc.takeError();
  llvm::outs() << "\n== Fashion-MNIST test set (" << Test->size()
               << " images) ==\n"
               << llvm::format("  float       top-1 %6.2f%%\n", 100 * *FloatAcc)
               << llvm::format("  int8 PTQ    top-1 %6.2f%%  (%d calibration "
                               "images)\n",
                               100 * *PtqAcc, int(CalibImages))
               << llvm::format("  int8 QAT    top-1 %6.2f%%  (%d epoch%s of "
                               "fake-quant fine-tuning)\n",
                               100 * *QatAcc, int(QatEpochs),
                               QatEpochs == 1 ? "" : "s");
  return llvm::Error::success();
}

int main(int argc, char **argv) {
  // Training allocates and frees the same large activation and gradient
  // buffers every batch; glibc would return each to the kernel (mmap /
  // munmap) and fault it in again, which cost a third of the run. Keeping
  // them in the heap lets the next batch reuse them.
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  cl::ParseCommandLineOptions(
      argc, argv, "qfx-train: train Net on Fashion-MNIST; float, PTQ, QAT\n");
  if (llvm::Error E = run()) {
    llvm::errs() << "qfx-train: error: " << errorToString(std::move(E)) << "\n";
    return 1;
  }
  return 0;
}
