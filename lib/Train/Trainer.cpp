//===- Trainer.cpp - Mini-batch training and evaluation loops ------------===//

#include "qfx/Train/Trainer.h"

#include "qfx/Support/Error.h"
#include "qfx/Train/GradKernels.h"

#include <chrono>

using namespace qfx;

int64_t qfx::argmaxRow(const Tensor &Logits, int64_t Row) {
  int64_t K = Logits.dim(1);
  const float *L = Logits.data<float>() + Row * K;
  int64_t Best = 0;
  for (int64_t J = 1; J < K; ++J)
    if (L[J] > L[Best])
      Best = J;
  return Best;
}

/// Forward, loss and backward of one batch; returns the loss and the number
/// of correct predictions.
static llvm::Expected<grad::CrossEntropyResult> trainStep(Tape &T,
                                                          const Batch &B) {
  auto Out = T.forward({B.Inputs});
  if (!Out)
    return Out.takeError();
  if (Out->size() != 1 || (*Out)[0].rank() != 2)
    return makeError("training needs a graph with one [N, classes] output");
  auto CE = grad::crossEntropy((*Out)[0], B.Labels);
  if (!CE)
    return CE.takeError();
  if (llvm::Error E = T.backward({CE->GradLogits}))
    return E;
  return CE;
}

llvm::Expected<EpochStats> qfx::trainEpoch(Tape &T, SGD &Opt,
                                           BatchLoader &Loader,
                                           const LRSchedule &Schedule,
                                           int64_t &GlobalStep,
                                           const BatchCallback &OnBatch) {
  auto Start = std::chrono::steady_clock::now();
  T.setTraining(true);
  Loader.startEpoch();
  EpochStats S;
  double LossSum = 0;
  int64_t Correct = 0, Index = 0;
  Batch B;
  while (Loader.next(B)) {
    T.zeroGrad();
    auto CE = trainStep(T, B);
    if (!CE)
      return prefixError(CE.takeError(), ("batch " + llvm::Twine(Index)).str());
    Opt.setLR(Schedule.at(GlobalStep++));
    if (llvm::Error E = Opt.step(T.graphModule(), T.grads()))
      return E;
    LossSum += CE->Loss;
    Correct += CE->Correct;
    S.Images += static_cast<int64_t>(B.Labels.size());
    if (OnBatch)
      OnBatch(Index, CE->Loss, Loader.numBatches());
    ++Index;
  }
  S.MeanLoss = Index ? LossSum / Index : 0;
  S.Accuracy = S.Images ? double(Correct) / S.Images : 0;
  S.Seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - Start)
          .count();
  return S;
}

llvm::Expected<double> qfx::evaluateAccuracy(Tape &T, const Dataset &D,
                                             int64_t BatchSize) {
  if (BatchSize <= 0)
    return makeError("evaluation batch size must be positive");
  bool Was = T.options().Training;
  T.setTraining(false);
  int64_t Correct = 0;
  for (int64_t Begin = 0; Begin < D.size(); Begin += BatchSize) {
    int64_t End = std::min(D.size(), Begin + BatchSize);
    auto Out = T.forward({sliceRows(D.Inputs, Begin, End)});
    if (!Out) {
      T.setTraining(Was);
      return Out.takeError();
    }
    for (int64_t I = Begin; I < End; ++I)
      Correct += argmaxRow((*Out)[0], I - Begin) == D.Labels[I];
  }
  T.setTraining(Was);
  return D.size() ? double(Correct) / D.size() : 0.0;
}
