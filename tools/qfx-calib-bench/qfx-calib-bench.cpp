//===- qfx-calib-bench.cpp - Cost of each observer during calibration -----===//
//
// Calibration runs the observed model over many batches, so an observer
// that is slow to update dominates it. For each observer kind this prints
// the time of one observed batch relative to the plain float forward pass
// (both through the interpreter, the path calibration takes), and the time
// of one observe() per image for the activation sizes of the model.
//
//===----------------------------------------------------------------------===//

#include "qfx/Models/Zoo.h"
#include "qfx/Pipeline/QuantizeFx.h"
#include "qfx/Quant/Observer.h"
#include "qfx/Quant/QConfigMapping.h"
#include "qfx/Runtime/Interpreter.h"
#include "qfx/Support/Error.h"
#include "qfx/Trace/SymbolicTrace.h"
#include "qfx/Transforms/Pass.h"

#include "llvm/Support/CommandLine.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <chrono>
#include <random>
#include <vector>

using namespace qfx;
namespace cl = llvm::cl;

static cl::opt<std::string> Model("model", cl::desc("zoo model"),
                                  cl::init("net"));
static cl::opt<int> Batch("batch", cl::desc("images per batch"), cl::init(32));
static cl::opt<int> Reps("reps", cl::desc("timed batches per observer"),
                         cl::init(10));

using Clock = std::chrono::steady_clock;

static Tensor randomBatch(llvm::ArrayRef<int64_t> Shape, uint64_t Seed) {
  Tensor T(DType::F32, Shape);
  std::mt19937_64 Gen(Seed);
  std::normal_distribution<float> Dist(0.0f, 1.0f);
  for (int64_t I = 0; I < T.numElements(); ++I)
    T.data<float>()[I] = Dist(Gen);
  return T;
}

static double median(std::vector<double> V) {
  std::nth_element(V.begin(), V.begin() + V.size() / 2, V.end());
  return V[V.size() / 2];
}

/// Median milliseconds of \p Fn over \p N runs (-1 on failure).
template <typename F> static double medianMs(F &&Fn, int N) {
  std::vector<double> T;
  for (int I = 0; I < N; ++I) {
    auto Start = Clock::now();
    if (!Fn())
      return -1.0;
    T.push_back(std::chrono::duration<double, std::milli>(Clock::now() - Start)
                    .count());
  }
  return median(T);
}

static QConfig withActivation(ObserverKind K) {
  QConfig QC = cantFail(QConfig::preset("x86"));
  QC.Name = "custom";
  QC.Activation = ObserverSpec::make(K, DType::U8, QScheme::PerTensorAffine,
                                     /*ReduceRange=*/true);
  if (K == ObserverKind::Entropy)
    QC.Activation =
        ObserverSpec::make(K, DType::U8, QScheme::PerTensorSymmetric, false);
  return QC;
}

static llvm::Error run() {
  const models::ZooEntry *Entry = nullptr;
  for (const models::ZooEntry &E : models::zoo())
    if (E.Name == Model)
      Entry = &E;
  if (!Entry)
    return makeError("--model: unknown zoo model '" + Model + "'");
  std::vector<int64_t> Shape = Entry->InputShape;
  Shape[0] = Batch;
  auto Net = Entry->Create();
  Net->eval();
  Tensor X = randomBatch(Shape, 1);
  auto Float =
      symbolicTrace(*Net, {InputSpec::symbolic("x", DType::F32, Shape)});
  if (!Float)
    return Float.takeError();
  // The observed graph is fused, so the baseline is the fused float graph.
  PassManager PM;
  if (llvm::Error E = PM.addPipeline("fuse"))
    return E;
  if (llvm::Error E = PM.run(**Float))
    return E;
  auto RunFloat = [&] {
    auto Out = interpret(**Float, {X});
    bool Ok = static_cast<bool>(Out);
    llvm::consumeError(Out.takeError());
    return Ok;
  };
  llvm::outs() << "model " << Model << ", batch " << Batch
               << ": each observed batch is timed right after a fused float "
                  "batch (interpreter); medians of "
               << Reps << " pairs\n\n"
               << "observer                        float (ms)  observed (ms)"
                  "  observed/float\n";
  for (ObserverKind K :
       {ObserverKind::MinMax, ObserverKind::MovingAverageMinMax,
        ObserverKind::Histogram, ObserverKind::Percentile,
        ObserverKind::Entropy, ObserverKind::MSE}) {
    QConfigMapping Mapping;
    Mapping.setGlobal(withActivation(K));
    auto Observed = prepare_fx(*Net, Mapping,
                               {InputSpec::symbolic("x", DType::F32, Shape)});
    if (!Observed)
      return Observed.takeError();
    auto RunObserved = [&] {
      auto Out = (*Observed)({X});
      bool Ok = static_cast<bool>(Out);
      llvm::consumeError(Out.takeError());
      return Ok;
    };
    // Alternate the two so that load from other processes hits both alike.
    std::vector<double> F, O, Ratio;
    for (int I = 0; I <= Reps; ++I) {
      double Fm = medianMs(RunFloat, 1), Om = medianMs(RunObserved, 1);
      if (Fm < 0 || Om < 0)
        return makeError("run failed for " + observerKindName(K));
      if (I == 0)
        continue; // warm-up
      F.push_back(Fm);
      O.push_back(Om);
      Ratio.push_back(Om / Fm);
    }
    llvm::outs() << llvm::format("%-30s %10.2f %14.2f %15.2f\n",
                                 observerKindName(K).str().c_str(), median(F),
                                 median(O), median(Ratio));
  }
  return llvm::Error::success();
}

int main(int argc, char **argv) {
  cl::ParseCommandLineOptions(argc, argv,
                              "qfx calibration cost per observer\n");
  if (llvm::Error E = run()) {
    llvm::errs() << "qfx-calib-bench: error: " << errorToString(std::move(E))
                 << "\n";
    return 1;
  }
  return 0;
}
