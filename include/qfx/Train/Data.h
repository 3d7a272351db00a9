//===- Data.h - Labelled datasets and shuffled mini-batches -----*- C++ -*-===//
//
// Training data for the trainer: images with integer labels, read from the
// Fashion-MNIST IDX files or from a pair of .npy files, and cut into
// mini-batches in an order drawn from a seeded generator (the same seed gives
// the same batches on every machine).
//
//===----------------------------------------------------------------------===//

#ifndef QFX_TRAIN_DATA_H
#define QFX_TRAIN_DATA_H

#include "qfx/Support/Tensor.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <random>
#include <vector>

namespace qfx {

/// Inputs [N, ...] (f32) with one label in [0, NumClasses) per row.
struct Dataset {
  Tensor Inputs;
  std::vector<int64_t> Labels;
  int64_t NumClasses = 0;

  int64_t size() const { return static_cast<int64_t>(Labels.size()); }
};

/// Builds a dataset, checking that \p Inputs is f32 with data, has one row
/// per label and that every label is in [0, NumClasses) (the error names the
/// first bad row).
llvm::Expected<Dataset> makeDataset(Tensor Inputs, std::vector<int64_t> Labels,
                                    int64_t NumClasses);

/// Fashion-MNIST's "train" or "t10k" split from \p Dir
/// (<split>-images-idx3-ubyte[.gz] and <split>-labels-idx1-ubyte[.gz]),
/// images normalized as the demo does (normalizeImages), at most \p Limit
/// rows (0 = all). Errors name the file.
llvm::Expected<Dataset>
loadFashionMnist(llvm::StringRef Dir, llvm::StringRef Split, int64_t Limit = 0);

/// Inputs from an f32 (or f64, converted: readNpyInput) .npy file and
/// labels from a 1-d integer .npy file
/// (any of u8, s32, s64) of the same length; \p NumClasses classes, or with
/// 0, 1 + the largest label. Errors name the file.
llvm::Expected<Dataset> loadNpyDataset(llvm::StringRef InputsPath,
                                       llvm::StringRef LabelsPath,
                                       int64_t NumClasses = 0);

/// One mini-batch: rows gathered from the dataset.
struct Batch {
  Tensor Inputs;
  std::vector<int64_t> Labels;
};

/// Iterates over a dataset in mini-batches. With shuffling, each epoch
/// draws a new permutation from a generator seeded once with \p Seed (a
/// Fisher-Yates shuffle over std::mt19937_64, whose output the standard
/// fixes, so the order is the same everywhere).
class BatchLoader {
public:
  /// Asserts BatchSize > 0 (callers validate user input).
  BatchLoader(const Dataset &D, int64_t BatchSize, bool Shuffle,
              uint64_t Seed = 0, bool DropLast = false);

  /// Starts a new epoch (reshuffling when shuffling).
  void startEpoch();
  /// The next batch of the current epoch; false at its end. The first call
  /// starts the first epoch if startEpoch was not called.
  bool next(Batch &B);
  /// Batches per epoch.
  int64_t numBatches() const;
  /// The current epoch's order (tests).
  const std::vector<int64_t> &order() const { return Order; }

private:
  const Dataset &D;
  int64_t BatchSize;
  bool Shuffle;
  bool DropLast;
  std::mt19937_64 Rng;
  std::vector<int64_t> Order;
  int64_t Pos = 0;
};

} // namespace qfx

#endif // QFX_TRAIN_DATA_H
