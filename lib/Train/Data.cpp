//===- Data.cpp - Labelled datasets and shuffled mini-batches -------------===//
//
// The shuffle is written out rather than left to std::shuffle, whose
// algorithm (and so the order it gives for a seed) differs between standard
// libraries.
//
//===----------------------------------------------------------------------===//

#include "qfx/Train/Data.h"

#include "qfx/Support/Error.h"
#include "qfx/Support/Idx.h"
#include "qfx/Support/Npy.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

#include <algorithm>
#include <cassert>
#include <cstring>
#include <numeric>

using namespace qfx;

/// "f32[2,3]".
static std::string describe(const Tensor &T) {
  return dtypeName(T.dtype()).str() + formatShape(T.shape());
}

llvm::Expected<Dataset> qfx::makeDataset(Tensor Inputs,
                                         std::vector<int64_t> Labels,
                                         int64_t NumClasses) {
  if (Inputs.dtype() != DType::F32 || !Inputs.hasData() || Inputs.rank() < 1)
    return makeError("inputs must be an f32 tensor [N,...] with data, got " +
                     describe(Inputs) + (Inputs.hasData() ? "" : " (no data)"));
  if (Inputs.dim(0) != static_cast<int64_t>(Labels.size()))
    return makeError("inputs have " + llvm::Twine(Inputs.dim(0)) +
                     " rows but there are " + llvm::Twine(Labels.size()) +
                     " labels");
  if (NumClasses <= 0)
    return makeError("the number of classes must be positive, got " +
                     llvm::Twine(NumClasses));
  for (size_t I = 0; I < Labels.size(); ++I)
    if (Labels[I] < 0 || Labels[I] >= NumClasses)
      return makeError("row " + llvm::Twine(I) + ": label " +
                       llvm::Twine(Labels[I]) + " is not in [0, " +
                       llvm::Twine(NumClasses) + ")");
  Dataset D;
  D.Inputs = std::move(Inputs);
  D.Labels = std::move(Labels);
  D.NumClasses = NumClasses;
  return D;
}

//===----------------------------------------------------------------------===//
// Fashion-MNIST
//===----------------------------------------------------------------------===//

/// \p Dir/\p Name.gz if it exists, else \p Dir/\p Name if that exists;
/// otherwise an error naming the compressed file (the form the dataset is
/// distributed in).
static llvm::Expected<std::string> findIdx(llvm::StringRef Dir,
                                           llvm::StringRef Name) {
  llvm::SmallString<256> Plain(Dir);
  llvm::sys::path::append(Plain, Name);
  std::string Gz = (Plain + ".gz").str();
  if (llvm::sys::fs::exists(Gz))
    return Gz;
  if (llvm::sys::fs::exists(Plain))
    return std::string(Plain);
  return fileError(Gz, "no such file (nor '" + Plain + "')");
}

llvm::Expected<Dataset> qfx::loadFashionMnist(llvm::StringRef Dir,
                                              llvm::StringRef Split,
                                              int64_t Limit) {
  if (Split != "train" && Split != "t10k")
    return makeError("fashion-mnist split '" + Split +
                     "': expected train or t10k");
  if (Limit < 0)
    return makeError("fashion-mnist: the row limit must not be negative, "
                     "got " +
                     llvm::Twine(Limit));
  llvm::Expected<std::string> ImagesPath =
      findIdx(Dir, (Split + "-images-idx3-ubyte").str());
  if (!ImagesPath)
    return ImagesPath.takeError();
  llvm::Expected<std::string> LabelsPath =
      findIdx(Dir, (Split + "-labels-idx1-ubyte").str());
  if (!LabelsPath)
    return LabelsPath.takeError();
  auto Pair = readIdxPair(*ImagesPath, *LabelsPath, Limit, 10);
  if (!Pair)
    return Pair.takeError();
  const Tensor &L = Pair->Labels;
  std::vector<int64_t> Labels(L.data<uint8_t>(),
                              L.data<uint8_t>() + L.numElements());
  // normalizeImages gives f32, as makeDataset requires.
  llvm::Expected<Dataset> D =
      makeDataset(normalizeImages(Pair->Images), std::move(Labels), 10);
  if (!D)
    return prefixError(D.takeError(), *LabelsPath);
  return D;
}

//===----------------------------------------------------------------------===//
// .npy datasets
//===----------------------------------------------------------------------===//

/// The labels of a 1-d integer tensor, widened to int64.
static llvm::Expected<std::vector<int64_t>>
labelsFromTensor(const Tensor &T, llvm::StringRef Path) {
  if (T.rank() != 1 || (T.dtype() != DType::U8 && T.dtype() != DType::S32 &&
                        T.dtype() != DType::S64))
    return fileError(Path, "expected labels as a 1-d u8, s32 or s64 array, "
                           "got " +
                               describe(T));
  std::vector<int64_t> Labels(static_cast<size_t>(T.numElements()));
  for (size_t I = 0; I < Labels.size(); ++I) {
    switch (T.dtype()) {
    case DType::U8:
      Labels[I] = T.data<uint8_t>()[I];
      break;
    case DType::S32:
      Labels[I] = T.data<int32_t>()[I];
      break;
    default:
      Labels[I] = T.data<int64_t>()[I];
      break;
    }
  }
  return Labels;
}

llvm::Expected<Dataset> qfx::loadNpyDataset(llvm::StringRef InputsPath,
                                            llvm::StringRef LabelsPath,
                                            int64_t NumClasses) {
  if (NumClasses < 0)
    return makeError("the number of classes must not be negative, got " +
                     llvm::Twine(NumClasses));
  // numpy saves float64 by default; inputs are converted (labels are
  // integers and read as they are).
  llvm::Expected<Tensor> Inputs = readNpyInput(InputsPath);
  if (!Inputs)
    return Inputs.takeError();
  if (Inputs->dtype() != DType::F32 || Inputs->rank() < 1)
    return fileError(InputsPath,
                     "expected f32 inputs [N,...], got " + describe(*Inputs));
  llvm::Expected<Tensor> LabelT = readNpy(LabelsPath);
  if (!LabelT)
    return LabelT.takeError();
  llvm::Expected<std::vector<int64_t>> Labels =
      labelsFromTensor(*LabelT, LabelsPath);
  if (!Labels)
    return Labels.takeError();
  if (static_cast<int64_t>(Labels->size()) != Inputs->dim(0))
    return fileError(LabelsPath, llvm::Twine(Labels->size()) + " labels but '" +
                                     InputsPath + "' has " +
                                     llvm::Twine(Inputs->dim(0)) + " rows");
  if (NumClasses == 0) {
    // A negative largest label is left for makeDataset to report.
    int64_t Max =
        Labels->empty() ? 0 : *std::max_element(Labels->begin(), Labels->end());
    NumClasses = std::max<int64_t>(Max, 0) + 1;
  }
  llvm::Expected<Dataset> D =
      makeDataset(std::move(*Inputs), std::move(*Labels), NumClasses);
  if (!D)
    return prefixError(D.takeError(), LabelsPath);
  return D;
}

//===----------------------------------------------------------------------===//
// BatchLoader
//===----------------------------------------------------------------------===//

BatchLoader::BatchLoader(const Dataset &D, int64_t BatchSize, bool Shuffle,
                         uint64_t Seed, bool DropLast)
    : D(D), BatchSize(BatchSize), Shuffle(Shuffle), DropLast(DropLast),
      Rng(Seed), Order(static_cast<size_t>(D.size())) {
  assert(BatchSize > 0 && "batch size must be positive");
  assert(D.Inputs.rank() >= 1 && D.Inputs.dim(0) == D.size() &&
         (D.Inputs.hasData() || D.size() == 0) &&
         "dataset inputs do not match its labels (build it with makeDataset)");
  std::iota(Order.begin(), Order.end(), int64_t(0));
  // No epoch has started: next() starts the first one itself.
  Pos = -1;
}

void BatchLoader::startEpoch() {
  Pos = 0;
  Order.resize(static_cast<size_t>(D.size()));
  std::iota(Order.begin(), Order.end(), int64_t(0));
  if (!Shuffle)
    return;
  // Fisher-Yates from the top. Rng() % (I + 1) is slightly biased towards
  // small values (by at most (I + 1) / 2^64, far below anything training
  // could notice) but, unlike std::uniform_int_distribution, gives the same
  // numbers with every standard library.
  for (size_t I = Order.size(); I-- > 1;) {
    size_t J = static_cast<size_t>(Rng() % (uint64_t(I) + 1));
    std::swap(Order[I], Order[J]);
  }
}

bool BatchLoader::next(Batch &B) {
  if (Pos < 0)
    startEpoch();
  int64_t N = D.size();
  int64_t Take = std::min(BatchSize, N - Pos);
  if (Take <= 0 || (DropLast && Take < BatchSize)) {
    Pos = N;
    return false;
  }
  Shape S(D.Inputs.shape().begin(), D.Inputs.shape().end());
  S[0] = Take;
  B.Inputs = Tensor(D.Inputs.dtype(), S);
  B.Labels.resize(static_cast<size_t>(Take));
  size_t RowBytes = D.Inputs.byteSize() / static_cast<size_t>(N);
  const char *Src = static_cast<const char *>(D.Inputs.rawData());
  char *Dst = static_cast<char *>(B.Inputs.rawData());
  for (int64_t I = 0; I < Take; ++I) {
    int64_t Row = Order[static_cast<size_t>(Pos + I)];
    if (RowBytes)
      std::memcpy(Dst + I * RowBytes, Src + Row * RowBytes, RowBytes);
    B.Labels[static_cast<size_t>(I)] = D.Labels[static_cast<size_t>(Row)];
  }
  Pos += Take;
  return true;
}

int64_t BatchLoader::numBatches() const {
  int64_t N = D.size();
  return DropLast ? N / BatchSize : (N + BatchSize - 1) / BatchSize;
}
