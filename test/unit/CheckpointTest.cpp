//===- CheckpointTest.cpp - Saving and restoring a GraphModule's state ----===//

#include "TestUtil.h"

#include "qfx/Train/Checkpoint.h"

#include "qfx/IR/GraphModule.h"
#include "qfx/Support/Error.h"
#include "qfx/Support/FileIO.h"
#include "qfx/Support/Safetensors.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

#include <catch2/catch.hpp>

#include <memory>
#include <string>
#include <vector>

using namespace qfx;
using Catch::Contains;
using Catch::StartsWith;
using testutil::take;
using testutil::TempDir;

namespace {

std::string errorText(llvm::Error E) {
  return E ? errorToString(std::move(E)) : std::string();
}

/// A tensor of \p S holding Start, Start + 1, ...
Tensor ramp(llvm::ArrayRef<int64_t> S, float Start) {
  Tensor T(DType::F32, S);
  for (int64_t I = 0; I < T.numElements(); ++I)
    T.data<float>()[I] = Start + static_cast<float>(I) * 0.25f;
  return T;
}

/// conv1 (weight, bias), bn (running_mean and num_batches_tracked buffers)
/// and a root-level parameter.
std::unique_ptr<GraphModule> smallModel() {
  auto GM = std::make_unique<GraphModule>("Net");
  GM->addModule("conv1", "Conv2d");
  GM->addModule("bn", "BatchNorm2d");
  REQUIRE(errorText(GM->setTensor("conv1.weight", ramp({2, 1, 3, 3}, -1))) ==
          "");
  REQUIRE(errorText(GM->setTensor("conv1.bias", ramp({2}, 3))) == "");
  REQUIRE(errorText(GM->setTensor("bn.running_mean", ramp({2}, 7), true)) ==
          "");
  REQUIRE(errorText(GM->setTensor(
              "bn.num_batches_tracked",
              Tensor::fromValues<int64_t>(DType::S64, {}, {12}), true)) == "");
  REQUIRE(errorText(GM->setTensor("scale", ramp({1}, 0.5))) == "");
  return GM;
}

/// Overwrites every f32 tensor of \p GM with other values.
void scramble(GraphModule &GM) {
  for (const auto &NT : GM.namedTensors()) {
    Tensor *T = GM.lookupTensor(NT.first);
    if (T->hasData() && T->dtype() == DType::F32)
      for (int64_t I = 0; I < T->numElements(); ++I)
        T->data<float>()[I] = 100.0f + static_cast<float>(I);
  }
}

/// Every tensor of \p A is identical to the tensor of that name in \p B.
void checkSame(const GraphModule &A, const GraphModule &B) {
  auto TA = A.namedTensors(), TB = B.namedTensors();
  REQUIRE(TA.size() == TB.size());
  for (size_t I = 0; I < TA.size(); ++I) {
    INFO(TA[I].first);
    CHECK(TA[I].first == TB[I].first);
    CHECK(TA[I].second->identical(*TB[I].second));
  }
}

} // namespace

TEST_CASE("train: checkpoint round trip is bit-exact", "[train][checkpoint]") {
  TempDir Dir;
  std::string P = Dir.file("net.safetensors");
  auto GM = smallModel();
  auto Saved = GM->clone();
  REQUIRE(errorText(saveCheckpoint(*GM, P)) == "");

  // The file is a state_dict under PyTorch's names.
  SafetensorsFile F = take(readSafetensors(P));
  std::vector<std::string> Names;
  for (const auto &KV : F.Tensors)
    Names.push_back(KV.first);
  CHECK(Names == std::vector<std::string>{"bn.num_batches_tracked",
                                          "bn.running_mean", "conv1.bias",
                                          "conv1.weight", "scale"});
  CHECK(F.Metadata.at("format") == "pt");

  scramble(*GM);
  Tensor Alias = *GM->lookupTensor("conv1.weight"); // Shares storage.
  REQUIRE(errorText(loadCheckpoint(*GM, P)) == "");
  checkSame(*GM, *Saved);
  // Loading copies into the existing storage, like load_state_dict.
  CHECK(Alias.identical(*Saved->lookupTensor("conv1.weight")));
}

TEST_CASE("train: checkpoint loading is strict and all-or-nothing",
          "[train][checkpoint]") {
  TempDir Dir;
  std::string P = Dir.file("net.safetensors");
  auto GM = smallModel();
  REQUIRE(errorText(saveCheckpoint(*GM, P)) == "");
  scramble(*GM);

  SECTION("a tensor missing from the file") {
    GM->addModule("fc", "Linear");
    REQUIRE(errorText(GM->setTensor("fc.weight", ramp({2, 2}, 0))) == "");
    auto Before = GM->clone();
    CHECK(errorText(loadCheckpoint(*GM, P)) ==
          P + ": tensor 'fc.weight' of the model is missing from the file");
    checkSame(*GM, *Before);

    // With AllowMissing the others load and fc.weight keeps its value.
    REQUIRE(errorText(loadCheckpoint(*GM, P, /*AllowMissing=*/true)) == "");
    CHECK(GM->lookupTensor("fc.weight")->identical(ramp({2, 2}, 0)));
    auto Fresh = smallModel();
    CHECK(GM->lookupTensor("conv1.weight")
              ->identical(*Fresh->lookupTensor("conv1.weight")));
  }
  SECTION("a file entry the model does not have") {
    REQUIRE(GM->lookupModule("bn")->eraseTensor("running_mean"));
    auto Before = GM->clone();
    for (bool AllowMissing : {false, true}) {
      CHECK(errorText(loadCheckpoint(*GM, P, AllowMissing)) ==
            P + ": tensor 'bn.running_mean' is not in the model");
      checkSame(*GM, *Before);
    }
  }
  SECTION("shape and dtype mismatches") {
    REQUIRE(errorText(GM->setTensor("conv1.weight", ramp({2, 3, 3, 3}, 0))) ==
            "");
    REQUIRE(errorText(GM->setTensor(
                "bn.num_batches_tracked",
                Tensor::fromValues<int>(DType::S32, {}, {1}), true)) == "");
    auto Before = GM->clone();
    std::string Msg = errorText(loadCheckpoint(*GM, P));
    CHECK_THAT(Msg, Contains(P + ": tensor 'conv1.weight': expected "
                                 "f32[2,3,3,3], got f32[2,1,3,3]"));
    CHECK_THAT(Msg, Contains(P + ": tensor 'bn.num_batches_tracked': "
                                 "expected s32[], got s64[]"));
    checkSame(*GM, *Before);
  }
  SECTION("a truncated file") {
    std::string Bytes = take(readFile(P));
    std::string Cut = Dir.file("cut.safetensors");
    REQUIRE(errorText(writeFileAtomically(
                Cut, llvm::StringRef(Bytes).drop_back(4))) == "");
    auto Before = GM->clone();
    CHECK_THAT(errorText(loadCheckpoint(*GM, Cut)), StartsWith(Cut + ": "));
    checkSame(*GM, *Before);
  }
  SECTION("a missing file") {
    std::string None = Dir.file("none.safetensors");
    CHECK_THAT(errorText(loadCheckpoint(*GM, None)), StartsWith(None + ": "));
  }
}

TEST_CASE("train: checkpoint of tensors without data", "[train][checkpoint]") {
  TempDir Dir;
  std::string P = Dir.file("net.safetensors");
  auto GM = smallModel();
  REQUIRE(errorText(saveCheckpoint(*GM, P)) == "");
  // A graph read from text IR with elided values gets them from the file.
  GraphModule Declared("Net");
  Declared.addModule("conv1", "Conv2d");
  Declared.addModule("bn", "BatchNorm2d");
  for (const auto &NT : GM->namedTensors()) {
    auto [Mod, Leaf] = splitQualifiedName(NT.first);
    Declared.lookupModule(Mod)->setTensor(
        Leaf, Tensor::declared(NT.second->dtype(), NT.second->shape()));
  }
  REQUIRE(errorText(loadCheckpoint(Declared, P)) == "");
  checkSame(Declared, *GM);

  // Declared tensors are not saved, so they are not required either.
  REQUIRE(errorText(
              GM->setTensor("extra", Tensor::declared(DType::F32, {4}))) == "");
  REQUIRE(errorText(saveCheckpoint(*GM, P)) == "");
  REQUIRE(errorText(loadCheckpoint(*GM, P)) == "");
  CHECK_FALSE(GM->lookupTensor("extra")->hasData());
}

TEST_CASE("train: a failed checkpoint write leaves nothing",
          "[train][checkpoint]") {
  TempDir Dir;
  auto GM = smallModel();
  std::string P = Dir.file("no-such-dir/net.safetensors");
  CHECK_THAT(errorText(saveCheckpoint(*GM, P)), Contains("net.safetensors"));
  CHECK_FALSE(llvm::sys::fs::exists(P));
  CHECK_FALSE(llvm::sys::fs::exists(Dir.file("no-such-dir")));
  std::error_code EC;
  llvm::sys::fs::directory_iterator It(Dir.Path, EC);
  CHECK(It == llvm::sys::fs::directory_iterator()); // No temporary left.
}
