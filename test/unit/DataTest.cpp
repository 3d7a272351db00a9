//===- DataTest.cpp - Datasets, Fashion-MNIST loading and batching --------===//

#include "TestUtil.h"

#include "qfx/Train/Data.h"

#include "qfx/Support/Error.h"
#include "qfx/Support/FileIO.h"
#include "qfx/Support/Idx.h"
#include "qfx/Support/Npy.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

using namespace qfx;
using Catch::Contains;
using Catch::StartsWith;
using testutil::errorOf;
using testutil::take;
using testutil::TempDir;

namespace {

/// Row I of the returned [N,2] inputs is [I, I + 0.5].
Tensor rowInputs(int64_t N) {
  Tensor T(DType::F32, {N, 2});
  for (int64_t I = 0; I < N; ++I) {
    T.data<float>()[2 * I] = static_cast<float>(I);
    T.data<float>()[2 * I + 1] = static_cast<float>(I) + 0.5f;
  }
  return T;
}

/// Ten rows whose label is the row number, so batches show which rows they
/// hold.
Dataset tenRows() {
  std::vector<int64_t> L(10);
  for (int64_t I = 0; I < 10; ++I)
    L[I] = I;
  return take(makeDataset(rowInputs(10), L, 10));
}

/// The rows of every batch of one epoch, checking that each batch's inputs
/// are the rows its labels name.
std::vector<std::vector<int64_t>> epoch(BatchLoader &L) {
  std::vector<std::vector<int64_t>> R;
  Batch B;
  while (L.next(B)) {
    REQUIRE(B.Inputs.dim(0) == static_cast<int64_t>(B.Labels.size()));
    for (size_t I = 0; I < B.Labels.size(); ++I) {
      CHECK(B.Inputs.data<float>()[2 * I] == B.Labels[I]);
      CHECK(B.Inputs.data<float>()[2 * I + 1] == B.Labels[I] + 0.5f);
    }
    R.push_back(B.Labels);
  }
  return R;
}

std::vector<int64_t> flatten(const std::vector<std::vector<int64_t>> &Bs) {
  std::vector<int64_t> R;
  for (const auto &B : Bs)
    R.insert(R.end(), B.begin(), B.end());
  return R;
}

/// A plain (uncompressed) IDX file: big-endian magic and extents, then
/// bytes.
void writeIdx(const std::string &Path, uint32_t Magic,
              std::vector<uint32_t> Dims, std::vector<uint8_t> Data) {
  std::string Bytes;
  auto Put = [&](uint32_t V) {
    for (int S = 24; S >= 0; S -= 8)
      Bytes += static_cast<char>((V >> S) & 0xff);
  };
  Put(Magic);
  for (uint32_t D : Dims)
    Put(D);
  Bytes.append(Data.begin(), Data.end());
  REQUIRE(errorToString(writeFileAtomically(Path, Bytes)) == "");
}

} // namespace

TEST_CASE("train: makeDataset validates inputs and labels", "[train][data]") {
  Dataset D = take(makeDataset(rowInputs(3), {0, 2, 1}, 3));
  CHECK(D.size() == 3);
  CHECK(D.NumClasses == 3);
  CHECK(errorOf(makeDataset(rowInputs(3), {0, 3, 1}, 3)) ==
        "row 1: label 3 is not in [0, 3)");
  CHECK(errorOf(makeDataset(rowInputs(3), {0, 1, -1}, 3)) ==
        "row 2: label -1 is not in [0, 3)");
  CHECK(errorOf(makeDataset(rowInputs(3), {0, 1}, 3)) ==
        "inputs have 3 rows but there are 2 labels");
  CHECK(errorOf(makeDataset(rowInputs(2), {0, 1}, 0)) ==
        "the number of classes must be positive, got 0");
  CHECK(errorOf(makeDataset(Tensor(DType::U8, {2, 2}), {0, 1}, 2)) ==
        "inputs must be an f32 tensor [N,...] with data, got u8[2,2]");
  CHECK(errorOf(makeDataset(Tensor::declared(DType::F32, {2, 2}), {0, 1}, 2)) ==
        "inputs must be an f32 tensor [N,...] with "
        "data, got f32[2,2] (no data)");
}

TEST_CASE("train: loadNpyDataset", "[train][data]") {
  TempDir Dir;
  std::string X = Dir.file("x.npy"), Y = Dir.file("y.npy");
  REQUIRE(errorToString(writeNpy(X, rowInputs(4))) == "");

  SECTION("labels of every integer dtype") {
    for (DType T : {DType::U8, DType::S32, DType::S64}) {
      REQUIRE(errorToString(writeNpy(
                  Y, Tensor::fromValues<int>(T, {4}, {3, 0, 1, 3}))) == "");
      Dataset D = take(loadNpyDataset(X, Y));
      CHECK(D.Labels == std::vector<int64_t>{3, 0, 1, 3});
      CHECK(D.NumClasses == 4); // 1 + the largest label.
      CHECK(D.Inputs.identical(rowInputs(4)));
      CHECK(take(loadNpyDataset(X, Y, 10)).NumClasses == 10);
    }
  }
  SECTION("bad labels name the file and row") {
    REQUIRE(errorToString(writeNpy(
                Y, Tensor::fromValues<int>(DType::S32, {4}, {3, 0, -1, 3}))) ==
            "");
    CHECK(errorOf(loadNpyDataset(X, Y)) ==
          Y + ": row 2: label -1 is not in [0, 4)");
    REQUIRE(errorToString(writeNpy(
                Y, Tensor::fromValues<int>(DType::S64, {4}, {3, 0, 1, 3}))) ==
            "");
    CHECK(errorOf(loadNpyDataset(X, Y, 3)) ==
          Y + ": row 0: label 3 is not in [0, 3)");
  }
  SECTION("mismatched counts") {
    REQUIRE(errorToString(writeNpy(
                Y, Tensor::fromValues<int>(DType::S64, {3}, {0, 1, 2}))) == "");
    CHECK(errorOf(loadNpyDataset(X, Y)) ==
          Y + ": 3 labels but '" + X + "' has 4 rows");
  }
  SECTION("wrong dtypes and shapes") {
    REQUIRE(errorToString(writeNpy(Y, Tensor::fromFloats({4}, {0, 1, 2, 3}))) ==
            "");
    CHECK(errorOf(loadNpyDataset(X, Y)) ==
          Y + ": expected labels as a 1-d u8, s32 or s64 array, got f32[4]");
    REQUIRE(errorToString(writeNpy(Y, Tensor(DType::S64, {4, 1}))) == "");
    CHECK_THAT(errorOf(loadNpyDataset(X, Y)), Contains("got s64[4,1]"));
    CHECK(errorOf(loadNpyDataset(Y, Y)) ==
          Y + ": expected f32 inputs [N,...], got s64[4,1]");
  }
  SECTION("missing files") {
    CHECK_THAT(errorOf(loadNpyDataset(Dir.file("none.npy"), Y)),
               StartsWith(Dir.file("none.npy") + ": "));
    CHECK_THAT(errorOf(loadNpyDataset(X, Dir.file("none.npy"))),
               StartsWith(Dir.file("none.npy") + ": "));
  }
}

TEST_CASE("train: Fashion-MNIST from plain IDX files", "[train][data]") {
  TempDir Dir;
  // Two 2x2 images; the loader falls back from .gz to the plain name.
  writeIdx(Dir.file("t10k-images-idx3-ubyte"), 0x803, {2, 2, 2},
           {0, 255, 51, 102, 255, 255, 0, 0});
  writeIdx(Dir.file("t10k-labels-idx1-ubyte"), 0x801, {2}, {9, 0});
  Dataset D = take(loadFashionMnist(Dir.Path, "t10k"));
  CHECK(D.Inputs.dtype() == DType::F32);
  CHECK(D.Inputs.shape() == llvm::ArrayRef<int64_t>({2, 1, 2, 2}));
  CHECK(D.Inputs.data<float>()[0] == -1.0f);
  CHECK(D.Inputs.data<float>()[1] == 1.0f);
  CHECK(D.Labels == std::vector<int64_t>{9, 0});
  CHECK(D.NumClasses == 10);
  CHECK(take(loadFashionMnist(Dir.Path, "t10k", 1)).size() == 1);

  std::string Labels = Dir.file("t10k-labels-idx1-ubyte");
  writeIdx(Labels, 0x801, {3}, {1, 2, 3});
  CHECK(errorOf(loadFashionMnist(Dir.Path, "t10k")) ==
        Labels + ": 3 labels but '" + Dir.file("t10k-images-idx3-ubyte") +
            "' has 2 images");
  writeIdx(Labels, 0x801, {2}, {1, 10});
  CHECK(errorOf(loadFashionMnist(Dir.Path, "t10k")) ==
        Labels + ": row 1: label 10 is not in [0, 10)");
  // Images and labels swapped.
  writeIdx(Labels, 0x803, {2, 2, 2}, std::vector<uint8_t>(8));
  CHECK(errorOf(loadFashionMnist(Dir.Path, "t10k")) ==
        Labels + ": expected labels [N], got u8[2,1,2,2]");

  CHECK(errorOf(loadFashionMnist(Dir.Path, "train")) ==
        Dir.file("train-images-idx3-ubyte.gz") + ": no such file (nor '" +
            Dir.file("train-images-idx3-ubyte") + "')");
  CHECK(errorOf(loadFashionMnist(Dir.Path, "test")) ==
        "fashion-mnist split 'test': expected train or t10k");
  CHECK(errorOf(loadFashionMnist(Dir.Path, "t10k", -1)) ==
        "fashion-mnist: the row limit must not be negative, got -1");
}

TEST_CASE("train: Fashion-MNIST from the installed dataset", "[train][data]") {
  // A directory that does not exist: the error names the file looked for.
  TempDir Tmp;
  std::string Missing = Tmp.file("no-such-dir");
  CHECK_THAT(errorOf(loadFashionMnist(Missing, "t10k")),
             StartsWith(Missing + "/t10k-images-idx3-ubyte.gz: "));

  // Debian's dataset-fashion-mnist (scripts/install-deps.sh installs it).
  const char *Installed = "/usr/share/datasets/fashion-mnist";
  if (!llvm::sys::fs::is_directory(Installed)) {
    WARN("skipped: " << Installed << " is not installed");
    return;
  }
  Dataset D = take(loadFashionMnist(Installed, "t10k", 100));
  CHECK(D.size() == 100);
  CHECK(D.Inputs.shape() == llvm::ArrayRef<int64_t>({100, 1, 28, 28}));
  CHECK(D.NumClasses == 10);
  const float *X = D.Inputs.data<float>();
  auto [Lo, Hi] = std::minmax_element(X, X + D.Inputs.numElements());
  CHECK(*Lo >= -1.0f);
  CHECK(*Hi <= 1.0f);
  CHECK(*Lo < *Hi);
  std::set<int64_t> Classes(D.Labels.begin(), D.Labels.end());
  CHECK(*Classes.begin() >= 0);
  CHECK(*Classes.rbegin() <= 9);
  CHECK(Classes.size() == 10); // 100 test images cover every class.
}

TEST_CASE("train: BatchLoader covers every row once per epoch",
          "[train][data]") {
  Dataset D = tenRows();
  BatchLoader L(D, 3, /*Shuffle=*/true, /*Seed=*/42);
  CHECK(L.numBatches() == 4);
  L.startEpoch();
  std::vector<std::vector<int64_t>> E1 = epoch(L);
  REQUIRE(E1.size() == 4);
  CHECK(E1.back().size() == 1);
  std::vector<int64_t> Rows = flatten(E1);
  CHECK(Rows == L.order());
  std::sort(Rows.begin(), Rows.end());
  CHECK(Rows == std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  Batch B;
  CHECK_FALSE(L.next(B)); // The epoch stays over until the next one starts.

  L.startEpoch();
  std::vector<int64_t> Rows2 = flatten(epoch(L));
  CHECK(Rows2 != flatten(E1));
  std::sort(Rows2.begin(), Rows2.end());
  CHECK(Rows2 == Rows);
}

TEST_CASE("train: BatchLoader order is fixed by the seed", "[train][data]") {
  Dataset D = tenRows();
  BatchLoader A(D, 4, true, 42), B(D, 4, true, 42), C(D, 4, true, 43);
  // The Fisher-Yates shuffle over std::mt19937_64(42), computed
  // independently: the order must be the same with every standard library.
  A.startEpoch();
  CHECK(A.order() == std::vector<int64_t>{1, 7, 9, 0, 3, 8, 4, 2, 5, 6});
  A.startEpoch();
  CHECK(A.order() == std::vector<int64_t>{1, 2, 8, 0, 5, 4, 3, 6, 9, 7});
  // next() starts the first epoch when startEpoch was not called.
  std::vector<int64_t> FromNext = flatten(epoch(B));
  CHECK(FromNext == std::vector<int64_t>{1, 7, 9, 0, 3, 8, 4, 2, 5, 6});
  C.startEpoch();
  CHECK(C.order() != std::vector<int64_t>{1, 7, 9, 0, 3, 8, 4, 2, 5, 6});
}

TEST_CASE("train: BatchLoader without shuffling and with DropLast",
          "[train][data]") {
  Dataset D = tenRows();
  BatchLoader Seq(D, 4, /*Shuffle=*/false);
  Seq.startEpoch();
  CHECK(epoch(Seq) ==
        std::vector<std::vector<int64_t>>{{0, 1, 2, 3}, {4, 5, 6, 7}, {8, 9}});

  BatchLoader Drop(D, 4, true, 7, /*DropLast=*/true);
  CHECK(Drop.numBatches() == 2);
  for (int E = 0; E < 3; ++E) {
    Drop.startEpoch();
    std::vector<std::vector<int64_t>> Bs = epoch(Drop);
    REQUIRE(Bs.size() == 2);
    std::vector<int64_t> Rows = flatten(Bs);
    CHECK(std::set<int64_t>(Rows.begin(), Rows.end()).size() == 8);
    // The rows left out are the last two of the epoch's order.
    CHECK(std::equal(Rows.begin(), Rows.end(), Drop.order().begin()));
  }

  BatchLoader Big(D, 32, false, 0, true);
  CHECK(Big.numBatches() == 0);
  Big.startEpoch();
  CHECK(epoch(Big).empty());

  Dataset Empty;
  BatchLoader None(Empty, 2, true);
  CHECK(None.numBatches() == 0);
  None.startEpoch();
  CHECK(epoch(None).empty());
}

TEST_CASE("readIdx bounds every extent, also next to a zero one",
          "[train][data]") {
  TempDir Dir;
  // N = H = 0xffffffff, W = 0: zero elements, but the extents multiply to
  // more than int64 holds.
  std::string Images = Dir.file("images-idx3-ubyte");
  writeIdx(Images, 0x803, {0xffffffff, 0xffffffff, 0}, {});
  CHECK(errorOf(readIdx(Images)) ==
        Images + ": shape [4294967295,1,4294967295,0] has too many elements "
                 "(limit 1099511627776)");
}

TEST_CASE("readIdxPair checks that images and labels belong together",
          "[train][data]") {
  TempDir Dir;
  std::string Images = Dir.file("images"), Labels = Dir.file("labels");
  writeIdx(Images, 0x803, {3, 1, 2}, {1, 2, 3, 4, 5, 6});
  writeIdx(Labels, 0x801, {3}, {0, 9, 4});
  IdxPair P = take(readIdxPair(Images, Labels, 0, 10));
  CHECK(P.Images.shape() == llvm::ArrayRef<int64_t>({3, 1, 1, 2}));
  CHECK(P.Labels.shape() == llvm::ArrayRef<int64_t>({3}));
  // Limits apply to both files.
  CHECK(take(readIdxPair(Images, Labels, 2, 10)).Labels.dim(0) == 2);

  writeIdx(Labels, 0x801, {2}, {0, 9});
  CHECK(errorOf(readIdxPair(Images, Labels, 0, 10)) ==
        Labels + ": 2 labels but '" + Images + "' has 3 images");
  writeIdx(Labels, 0x801, {3}, {0, 9, 200});
  CHECK(errorOf(readIdxPair(Images, Labels, 0, 10)) ==
        Labels + ": row 2: label 200 is not in [0, 10)");
  CHECK(errorOf(readIdxPair(Labels, Labels, 0, 10)) ==
        Labels + ": expected images [N,1,H,W], got u8[3]");
}
