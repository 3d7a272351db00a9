//===- Trainer.h - Mini-batch training and evaluation loops -----*- C++ -*-===//
//
// The loop every training run repeats: for each shuffled mini-batch, a
// training-mode forward through the tape, cross-entropy loss, backward, one
// SGD step at the scheduled learning rate; and top-1 evaluation in eval
// mode. Float training and QAT fine-tuning both use it.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_TRAIN_TRAINER_H
#define QFX_TRAIN_TRAINER_H

#include "qfx/Train/Data.h"
#include "qfx/Train/Optim.h"
#include "qfx/Train/Tape.h"

#include "llvm/Support/Error.h"

#include <cstdint>
#include <functional>

namespace qfx {

/// What one epoch measured.
struct EpochStats {
  double MeanLoss = 0; ///< mean of the batch losses
  double Accuracy = 0; ///< training top-1 over the epoch, in [0, 1]
  int64_t Images = 0;
  double Seconds = 0; ///< wall time of the epoch
};

/// Called after each batch with its index, the batch loss and the number of
/// batches in the epoch (progress reports).
using BatchCallback = std::function<void(int64_t, double, int64_t)>;

/// Trains \p T's graph (a single input, a single [N, classes] output) for
/// one epoch over \p Loader. Step \p GlobalStep (advanced per batch) picks
/// the learning rate from \p Schedule. The tape is left in training mode.
llvm::Expected<EpochStats> trainEpoch(Tape &T, SGD &Opt, BatchLoader &Loader,
                                      const LRSchedule &Schedule,
                                      int64_t &GlobalStep,
                                      const BatchCallback &OnBatch = {});

/// Top-1 accuracy in [0, 1] of \p T's graph in eval mode over \p D, in
/// batches of \p BatchSize; restores the tape's mode.
llvm::Expected<double> evaluateAccuracy(Tape &T, const Dataset &D,
                                        int64_t BatchSize);

/// Index of the largest of \p K logits at \p Row (the first on ties).
int64_t argmaxRow(const Tensor &Logits, int64_t Row);

} // namespace qfx

#endif // QFX_TRAIN_TRAINER_H
