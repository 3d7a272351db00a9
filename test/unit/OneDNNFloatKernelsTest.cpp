//===- OneDNNFloatKernelsTest.cpp - oneDNN fp32 kernels vs reference -----===//

#include "TestUtil.h"

#include "qfx/Backend/OneDNN/FloatKernels.h"
#include "qfx/Runtime/Kernels.h"

#include <catch2/catch.hpp>

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using namespace qfx;
using testutil::convParams;

namespace {

//===----------------------------------------------------------------------===//
// Helpers
//===----------------------------------------------------------------------===//

/// Uniform values in [-1, 1) from a seeded generator, computed from raw
/// mt19937 output so they are the same with every standard library.
Tensor randomTensor(llvm::ArrayRef<int64_t> S, uint32_t Seed) {
  std::mt19937 Gen(Seed);
  Tensor T(DType::F32, S);
  for (int64_t I = 0; I < T.numElements(); ++I)
    T.data<float>()[I] = float(Gen() >> 8) * (2.0f / 16777216.0f) - 1.0f;
  return T;
}

/// Empty when \p Got matches \p Want within 1e-5 relative plus 1e-5
/// absolute (for values near zero); otherwise describes the first mismatch.
std::string mismatch(const Tensor &Got, const Tensor &Want) {
  if (Got.shape() != Want.shape())
    return "shape " + formatShape(Got.shape()) + " vs " +
           formatShape(Want.shape());
  for (int64_t I = 0; I < Want.numElements(); ++I) {
    double G = Got.data<float>()[I], W = Want.data<float>()[I];
    if (std::isnan(G) && std::isnan(W))
      continue;
    if (!(std::fabs(G - W) <= 1e-5 * std::fabs(W) + 1e-5)) {
      std::ostringstream OS;
      OS << "element " << I << ": " << G << " vs " << W;
      return OS.str();
    }
  }
  return "";
}

std::string describe(const ref::Conv2dParams &P) {
  std::ostringstream OS;
  OS << "stride " << P.Stride[0] << "," << P.Stride[1] << " padding "
     << P.Padding[0] << "," << P.Padding[1] << " dilation " << P.Dilation[0]
     << "," << P.Dilation[1] << " groups " << P.Groups;
  return OS.str();
}

std::string describe(const ref::Pool2dParams &P) {
  std::ostringstream OS;
  OS << "kernel " << P.Kernel[0] << "," << P.Kernel[1] << " stride "
     << P.Stride[0] << "," << P.Stride[1] << " padding " << P.Padding[0] << ","
     << P.Padding[1] << " dilation " << P.Dilation[0] << "," << P.Dilation[1]
     << " ceil " << P.CeilMode << " include_pad " << P.CountIncludePad;
  return OS.str();
}

ref::Pool2dParams poolParams(std::array<int64_t, 2> K, std::array<int64_t, 2> S,
                             std::array<int64_t, 2> Pad, int64_t Dil, bool Ceil,
                             bool IncludePad) {
  ref::Pool2dParams P;
  P.Kernel = K;
  P.Stride = S;
  P.Padding = Pad;
  P.Dilation = {Dil, Dil};
  P.CeilMode = Ceil;
  P.CountIncludePad = IncludePad;
  return P;
}

/// Runs conv2d both ways on seeded data; returns the mismatch, if any.
std::string checkConv(llvm::ArrayRef<int64_t> XS, llvm::ArrayRef<int64_t> WS,
                      bool HasBias, const ref::Conv2dParams &P, uint32_t Seed) {
  Tensor X = randomTensor(XS, Seed), W = randomTensor(WS, Seed + 1);
  Tensor B = randomTensor({WS[0]}, Seed + 2);
  const Tensor *Bias = HasBias ? &B : nullptr;
  return mismatch(onednn::conv2d(X, W, Bias, P), ref::conv2d(X, W, Bias, P));
}

} // namespace

//===----------------------------------------------------------------------===//
// conv2d
//===----------------------------------------------------------------------===//

TEST_CASE("onednn conv2d matches the reference kernel", "[onednn]") {
  struct GroupCase {
    int64_t C, O, Groups;
  };
  // Plain, grouped and depthwise (with a channel multiplier of two).
  const GroupCase GroupCases[] = {{4, 6, 1}, {4, 6, 2}, {4, 8, 4}};
  uint32_t Seed = 1;
  int Checked = 0;
  for (int64_t Stride : {1, 2})
    for (int64_t Pad : {0, 1, 2})
      for (int64_t Dil : {1, 2})
        for (const GroupCase &G : GroupCases)
          for (bool HasBias : {false, true})
            for (int64_t N : {1, 3}) {
              ref::Conv2dParams P = convParams(Stride, Pad, Dil, G.Groups);
              // Non-square input and kernel.
              std::string Why =
                  checkConv({N, G.C, 7, 10}, {G.O, G.C / G.Groups, 3, 2},
                            HasBias, P, Seed += 3);
              INFO(describe(P) << " batch " << N << " bias " << HasBias);
              CHECK(Why == "");
              ++Checked;
            }
  CHECK(Checked == 144);
}

TEST_CASE("onednn conv2d matches on layouts the primitive reorders",
          "[onednn]") {
  // Enough channels that oneDNN picks blocked layouts for activations and
  // weights, so the reorders in and out run.
  ref::Conv2dParams P = convParams(1, 1, 1, 1);
  CHECK(checkConv({2, 32, 12, 9}, {48, 32, 3, 3}, true, P, 101) == "");
  P = convParams(2, 1, 1, 2);
  CHECK(checkConv({1, 32, 13, 11}, {64, 16, 3, 3}, false, P, 102) == "");
  P = convParams(1, 1, 1, 32);
  CHECK(checkConv({3, 32, 10, 10}, {32, 1, 3, 3}, true, P, 103) == "");
  P = convParams(1, 0, 1, 1);
  CHECK(checkConv({2, 64, 5, 6}, {16, 64, 1, 1}, true, P, 104) == "");
}

TEST_CASE("onednn conv2d with asymmetric stride, padding and dilation",
          "[onednn]") {
  ref::Conv2dParams P;
  P.Stride = {1, 2};
  P.Padding = {2, 0};
  P.Dilation = {2, 1};
  CHECK(checkConv({2, 3, 9, 8}, {5, 3, 3, 3}, true, P, 201) == "");
  P.Stride = {3, 1};
  P.Padding = {0, 1};
  P.Dilation = {1, 3};
  CHECK(checkConv({1, 2, 11, 7}, {4, 2, 2, 3}, false, P, 202) == "");
}

TEST_CASE("onednn conv2d reads the weights of each call", "[onednn]") {
  // The cache keeps primitives, never reordered weights: a second call of
  // the same shape with other weights must see them.
  ref::Conv2dParams P = convParams(1, 1, 1, 1);
  Tensor X = randomTensor({1, 16, 8, 8}, 301);
  for (uint32_t Seed : {302u, 303u}) {
    Tensor W = randomTensor({16, 16, 3, 3}, Seed);
    Tensor B = randomTensor({16}, Seed + 10);
    CHECK(mismatch(onednn::conv2d(X, W, &B, P), ref::conv2d(X, W, &B, P)) ==
          "");
  }
}

//===----------------------------------------------------------------------===//
// linear
//===----------------------------------------------------------------------===//

TEST_CASE("onednn linear matches the reference kernel", "[onednn]") {
  const std::vector<Shape> Inputs = {
      {17}, {5, 17}, {1, 17}, {2, 3, 17}, {2, 1, 4, 17}};
  uint32_t Seed = 400;
  for (const Shape &XS : Inputs)
    for (int64_t Out : {1, 9})
      for (bool HasBias : {false, true}) {
        Tensor X = randomTensor(XS, ++Seed),
               W = randomTensor({Out, 17}, ++Seed);
        Tensor B = randomTensor({Out}, ++Seed);
        const Tensor *Bias = HasBias ? &B : nullptr;
        Tensor Y = onednn::linear(X, W, Bias);
        INFO("input " << formatShape(XS) << " out " << Out << " bias "
                      << HasBias);
        CHECK(Y.rank() == int64_t(XS.size()));
        CHECK(mismatch(Y, ref::linear(X, W, Bias)) == "");
      }
  // A long reduction, where summation order matters most.
  Tensor X = randomTensor({3, 7, 512}, 450), W = randomTensor({33, 512}, 451);
  Tensor B = randomTensor({33}, 452);
  CHECK(mismatch(onednn::linear(X, W, &B), ref::linear(X, W, &B)) == "");
}

TEST_CASE("onednn linear with empty dimensions", "[onednn]") {
  Tensor W = randomTensor({3, 4}, 460), B = randomTensor({3}, 461);
  Tensor Y = onednn::linear(Tensor(DType::F32, {0, 4}), W, &B);
  CHECK(Y.shape() == llvm::ArrayRef<int64_t>({0, 3}));
  // No input features: every output is the bias.
  Tensor W0(DType::F32, {3, 0});
  Tensor X0(DType::F32, {2, 0});
  CHECK(mismatch(onednn::linear(X0, W0, &B), ref::linear(X0, W0, &B)) == "");
  CHECK(onednn::linear(X0, W0, &B).data<float>()[4] == B.data<float>()[1]);
}

//===----------------------------------------------------------------------===//
// Pooling
//===----------------------------------------------------------------------===//

TEST_CASE("onednn max_pool2d matches the reference kernel", "[onednn]") {
  uint32_t Seed = 500;
  int Checked = 0;
  for (int64_t K : {2, 3})
    for (int64_t S : {1, 2, 3})
      for (int64_t Pad : {0, 1})
        for (int64_t Dil : {1, 2})
          for (bool Ceil : {false, true})
            for (Shape XS : {Shape{1, 3, 7, 10}, Shape{3, 2, 8, 9}}) {
              ref::Pool2dParams P =
                  poolParams({K, K}, {S, S}, {Pad, Pad}, Dil, Ceil, true);
              REQUIRE(onednn::supportsPool2d(P, /*IsMax=*/true));
              Tensor X = randomTensor(XS, ++Seed);
              INFO(describe(P) << " input " << formatShape(XS));
              CHECK(mismatch(onednn::maxPool2d(X, P), ref::maxPool2d(X, P)) ==
                    "");
              ++Checked;
            }
  CHECK(Checked == 96);
}

TEST_CASE("onednn avg_pool2d matches the reference kernel", "[onednn]") {
  uint32_t Seed = 700;
  int Checked = 0;
  for (int64_t K : {2, 3})
    for (int64_t S : {1, 2, 3})
      for (int64_t Pad : {0, 1})
        for (bool Ceil : {false, true})
          for (bool IncludePad : {false, true})
            for (Shape XS : {Shape{1, 3, 7, 10}, Shape{3, 2, 8, 9}}) {
              ref::Pool2dParams P =
                  poolParams({K, K}, {S, S}, {Pad, Pad}, 1, Ceil, IncludePad);
              INFO(describe(P) << " input " << formatShape(XS));
              // The one rejected combination has its own test below.
              bool Supported = !(Ceil && IncludePad && S > 1);
              REQUIRE(onednn::supportsPool2d(P, /*IsMax=*/false) == Supported);
              if (!Supported)
                continue;
              Tensor X = randomTensor(XS, ++Seed);
              CHECK(mismatch(onednn::avgPool2d(X, P), ref::avgPool2d(X, P)) ==
                    "");
              ++Checked;
            }
  CHECK(Checked == 80);
}

TEST_CASE("onednn pooling with non-square, asymmetric parameters", "[onednn]") {
  Tensor X = randomTensor({2, 3, 9, 14}, 900);
  ref::Pool2dParams P = poolParams({3, 2}, {2, 3}, {1, 1}, 1, true, false);
  CHECK(mismatch(onednn::avgPool2d(X, P), ref::avgPool2d(X, P)) == "");
  CHECK(mismatch(onednn::maxPool2d(X, P), ref::maxPool2d(X, P)) == "");
  P.Dilation = {2, 1};
  CHECK(mismatch(onednn::maxPool2d(X, P), ref::maxPool2d(X, P)) == "");
  // Ceil mode with stride 1 never extends windows, so counting the padding
  // is supported there.
  P = poolParams({3, 3}, {1, 1}, {1, 0}, 1, true, true);
  REQUIRE(onednn::supportsPool2d(P, false));
  CHECK(mismatch(onednn::avgPool2d(X, P), ref::avgPool2d(X, P)) == "");
}

TEST_CASE("onednn max_pool2d propagates NaN as PyTorch does", "[onednn]") {
  Tensor X = randomTensor({2, 3, 9, 8}, 920);
  const float NaN = std::numeric_limits<float>::quiet_NaN();
  // NaNs inside (at odd coordinates, which dilated windows read too), on
  // the border and in a corner.
  X.data<float>()[3 * 8 + 3] = NaN;
  X.data<float>()[(4 * 9 + 8) * 8 + 7] = NaN;
  X.data<float>()[(5 * 9 + 0) * 8 + 0] = NaN;
  for (bool Ceil : {false, true})
    for (int64_t Dil : {1, 2}) {
      ref::Pool2dParams P = poolParams({3, 3}, {2, 2}, {1, 1}, Dil, Ceil, true);
      INFO(describe(P));
      Tensor Y = onednn::maxPool2d(X, P);
      CHECK(mismatch(Y, ref::maxPool2d(X, P)) == "");
      const float *YP = Y.data<float>();
      CHECK(std::count_if(YP, YP + Y.numElements(),
                          [](float V) { return std::isnan(V); }) >= 2);
    }
}

TEST_CASE("onednn supportsPool2d rejects what oneDNN cannot match",
          "[onednn]") {
  ref::Pool2dParams P = poolParams({2, 2}, {2, 2}, {0, 0}, 1, false, true);
  CHECK(onednn::supportsPool2d(P, false));
  CHECK(onednn::supportsPool2d(P, true));

  ref::Pool2dParams Div = P;
  Div.DivisorOverride = 3;
  CHECK_FALSE(onednn::supportsPool2d(Div, false));
  // Max pooling has no divisor to override.
  CHECK(onednn::supportsPool2d(Div, true));

  ref::Pool2dParams Dil = P;
  Dil.Dilation = {1, 2};
  CHECK_FALSE(onednn::supportsPool2d(Dil, false));
  CHECK(onednn::supportsPool2d(Dil, true));

  // Counted padding with ceil mode and a stride above one, in either
  // dimension.
  ref::Pool2dParams Ceil = poolParams({3, 3}, {1, 2}, {1, 1}, 1, true, true);
  CHECK_FALSE(onednn::supportsPool2d(Ceil, false));
  CHECK(onednn::supportsPool2d(Ceil, true));
  Ceil.CountIncludePad = false;
  CHECK(onednn::supportsPool2d(Ceil, false));
  Ceil.CountIncludePad = true;
  Ceil.CeilMode = false;
  CHECK(onednn::supportsPool2d(Ceil, false));
}

TEST_CASE("onednn supportsPool2d's ceil-mode rule is needed", "[onednn]") {
  // H = 6, kernel 3, stride 2, padding 1, ceil mode: the last window covers
  // rows 5..7, of which row 7 is beyond the declared padding. PyTorch divides
  // by the window clipped to H + padding (2 rows), oneDNN would divide by 3.
  Tensor X = randomTensor({1, 1, 6, 6}, 950);
  ref::Pool2dParams P = poolParams({3, 3}, {2, 2}, {1, 1}, 1, true, true);
  Tensor Y = ref::avgPool2d(X, P);
  REQUIRE(Y.shape() == llvm::ArrayRef<int64_t>({1, 1, 4, 4}));
  // Only input element (5, 5) lies in that window.
  double Sum = X.data<float>()[5 * 6 + 5];
  CHECK(Y.data<float>()[15] == Approx(Sum / 4).epsilon(1e-6));
  CHECK(Y.data<float>()[15] != Approx(Sum / 9).epsilon(1e-6));
  CHECK_FALSE(onednn::supportsPool2d(P, false));
}

//===----------------------------------------------------------------------===//
// Primitive cache and threads
//===----------------------------------------------------------------------===//

TEST_CASE("onednn primitive cache grows once per distinct instance",
          "[onednn]") {
  // Shapes no other test uses, so each first call adds exactly one entry.
  ref::Conv2dParams CP = convParams(1, 1, 1, 1);
  size_t Before = onednn::primitiveCacheSize();
  CHECK(checkConv({1, 3, 11, 13}, {5, 3, 3, 3}, false, CP, 1002) == "");
  CHECK(onednn::primitiveCacheSize() == Before + 1);
  // Same shapes, other data: reused.
  CHECK(checkConv({1, 3, 11, 13}, {5, 3, 3, 3}, false, CP, 1003) == "");
  CHECK(onednn::primitiveCacheSize() == Before + 1);
  // Bias, batch and parameters are part of the key.
  CHECK(checkConv({1, 3, 11, 13}, {5, 3, 3, 3}, true, CP, 1004) == "");
  CHECK(checkConv({2, 3, 11, 13}, {5, 3, 3, 3}, true, CP, 1005) == "");
  CHECK(checkConv({2, 3, 11, 13}, {5, 3, 3, 3}, true, convParams(2, 1, 1, 1),
                  1006) == "");
  CHECK(onednn::primitiveCacheSize() == Before + 4);

  Tensor X = randomTensor({3, 11, 13}, 1007), LW = randomTensor({6, 13}, 1008);
  onednn::linear(X, LW, nullptr);
  onednn::linear(X, LW, nullptr);
  CHECK(onednn::primitiveCacheSize() == Before + 5);
  // A rank-2 input with the same flattened rows shares the primitive.
  onednn::linear(X.reshaped({33, 13}), LW, nullptr);
  CHECK(onednn::primitiveCacheSize() == Before + 5);

  Tensor PX = randomTensor({1, 2, 11, 13}, 1009);
  ref::Pool2dParams PP = poolParams({2, 2}, {2, 2}, {0, 0}, 1, false, true);
  onednn::maxPool2d(PX, PP);
  onednn::avgPool2d(PX, PP);
  onednn::maxPool2d(PX, PP);
  onednn::avgPool2d(PX, PP);
  CHECK(onednn::primitiveCacheSize() == Before + 7);
  // Ceil mode changes the output size, hence the instance.
  PP.CeilMode = true;
  onednn::maxPool2d(PX, PP);
  CHECK(onednn::primitiveCacheSize() == Before + 8);
}

TEST_CASE("onednn primitive cache keeps one primitive per thread count",
          "[onednn][threads]") {
  // A primitive is generated for the thread count at its creation, so a
  // caller on another count gets a primitive of its own.
  int Previous = omp_get_max_threads();
  Tensor X = randomTensor({3, 17}, 1010), W = randomTensor({7, 17}, 1011);
  size_t Before = onednn::primitiveCacheSize();
  omp_set_num_threads(1);
  Tensor One = onednn::linear(X, W, nullptr);
  CHECK(onednn::primitiveCacheSize() == Before + 1);
  omp_set_num_threads(2);
  Tensor Two = onednn::linear(X, W, nullptr);
  CHECK(onednn::primitiveCacheSize() == Before + 2);
  omp_set_num_threads(1);
  onednn::linear(X, W, nullptr);
  CHECK(onednn::primitiveCacheSize() == Before + 2);
  omp_set_num_threads(Previous);
  CHECK(One.identical(Two));
}

TEST_CASE("onednn kernels run concurrently on shared primitives", "[onednn]") {
  ref::Conv2dParams P = convParams(1, 1, 1, 1);
  Tensor W = randomTensor({24, 16, 3, 3}, 1101), B = randomTensor({24}, 1102);
  std::vector<Tensor> Inputs, Outputs(4);
  for (uint32_t I = 0; I < 4; ++I)
    Inputs.push_back(randomTensor({1, 16, 10, 10}, 1110 + I));
  std::vector<std::thread> Threads;
  for (size_t I = 0; I < 4; ++I)
    Threads.emplace_back([&, I] {
      for (int Rep = 0; Rep < 5; ++Rep)
        Outputs[I] = onednn::conv2d(Inputs[I], W, &B, P);
    });
  for (std::thread &T : Threads)
    T.join();
  for (size_t I = 0; I < 4; ++I)
    CHECK(mismatch(Outputs[I], ref::conv2d(Inputs[I], W, &B, P)) == "");
}
