//===- LayerGradsTest.cpp - Conv, linear, norm and pooling backward -------===//
//
// Every backward kernel against central differences of the forward reference
// kernel, plus the rules finite differences cannot see: running statistics,
// max pooling's tie rule and oneDNN's conv backward against the reference.
//
//===----------------------------------------------------------------------===//

#include "TestUtil.h"

#include "qfx/Train/GradKernels.h"

#include "GradCheck.h"

#include "qfx/Backend/OneDNN/GradKernels.h"
#include "qfx/Runtime/Kernels.h"
#include "qfx/Runtime/Op.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <vector>

using namespace qfx;
using gradcheck::compareWithFiniteDifferences;
using gradcheck::randomTensor;
using testutil::convParams;

namespace {

//===----------------------------------------------------------------------===//
// Helpers
//===----------------------------------------------------------------------===//

/// Sets the kernel mode for one scope.
struct KernelModeScope {
  KernelMode Saved;
  explicit KernelModeScope(KernelMode M) : Saved(kernelMode()) {
    setKernelMode(M);
  }
  ~KernelModeScope() { setKernelMode(Saved); }
};

using TensorFn = std::function<Tensor(const Tensor &)>;

/// Finite-difference check of \p Analytic, the gradient of dot(F(x), R) at
/// \p X, with a cotangent R drawn from \p Seed.
std::string fdCheck(const TensorFn &F, const Tensor &X, const Tensor &Analytic,
                    uint64_t Seed) {
  Tensor R = randomTensor(F(X).shape(), Seed);
  return compareWithFiniteDifferences(F, X, R, Analytic);
}

/// The cotangent fdCheck uses for \p F at \p X: the gradient of the output
/// that the analytic kernels take.
Tensor cotangent(const TensorFn &F, const Tensor &X, uint64_t Seed) {
  return randomTensor(F(X).shape(), Seed);
}

std::string describe(const ref::Conv2dParams &P) {
  std::ostringstream OS;
  OS << "stride " << P.Stride[0] << " padding " << P.Padding[0] << " dilation "
     << P.Dilation[0] << " groups " << P.Groups;
  return OS.str();
}

ref::Pool2dParams poolParams(int64_t K, int64_t S, int64_t Pad, int64_t Dil,
                             bool Ceil, bool IncludePad) {
  ref::Pool2dParams P;
  P.Kernel = {K, K};
  P.Stride = {S, S};
  P.Padding = {Pad, Pad};
  P.Dilation = {Dil, Dil};
  P.CeilMode = Ceil;
  P.CountIncludePad = IncludePad;
  return P;
}

/// Empty when \p Got matches \p Want to 1e-4 relative, measured against
/// |want| plus the mean magnitude of Want (so entries that cancel to near
/// zero are not held to a relative bound they cannot meet in f32).
std::string closeTo(const Tensor &Got, const Tensor &Want) {
  if (Got.shape() != Want.shape())
    return "shape " + formatShape(Got.shape()) + " vs " +
           formatShape(Want.shape());
  double Scale = 0;
  for (int64_t I = 0; I < Want.numElements(); ++I)
    Scale += std::fabs(Want.data<float>()[I]);
  Scale /= std::max<int64_t>(1, Want.numElements());
  for (int64_t I = 0; I < Want.numElements(); ++I) {
    double G = Got.data<float>()[I], W = Want.data<float>()[I];
    if (!(std::fabs(G - W) <= 1e-4 * (std::fabs(W) + Scale))) {
      std::ostringstream OS;
      OS << "element " << I << ": " << G << " vs " << W;
      return OS.str();
    }
  }
  return "";
}

/// A tensor of \p S holding a shuffled ramp: distinct values 0.05 apart, so
/// a finite-difference step of 1e-2 never changes which element is a max.
Tensor distinctTensor(llvm::ArrayRef<int64_t> S, uint64_t Seed) {
  Tensor T(DType::F32, S);
  std::vector<int64_t> Order(static_cast<size_t>(T.numElements()));
  std::iota(Order.begin(), Order.end(), 0);
  std::shuffle(Order.begin(), Order.end(), std::mt19937_64(Seed));
  for (size_t I = 0; I < Order.size(); ++I)
    T.data<float>()[I] = 0.05f * static_cast<float>(Order[I]) - 1.0f;
  return T;
}

} // namespace

//===----------------------------------------------------------------------===//
// conv2d
//===----------------------------------------------------------------------===//

namespace {

/// Checks conv2dBackwardRef's three gradients against finite differences.
void checkConvRef(llvm::ArrayRef<int64_t> XS, llvm::ArrayRef<int64_t> WS,
                  const ref::Conv2dParams &P, uint64_t Seed) {
  INFO(describe(P));
  Tensor X = randomTensor(XS, Seed), W = randomTensor(WS, Seed + 1);
  Tensor B = randomTensor({WS[0]}, Seed + 2);
  TensorFn OfX = [&](const Tensor &T) { return ref::conv2d(T, W, &B, P); };
  TensorFn OfW = [&](const Tensor &T) { return ref::conv2d(X, T, &B, P); };
  TensorFn OfB = [&](const Tensor &T) { return ref::conv2d(X, W, &T, P); };
  Tensor GY = cotangent(OfX, X, Seed + 3);
  grad::Conv2dGrads G = grad::conv2dBackwardRef(X, W, true, GY, P);
  CHECK(fdCheck(OfX, X, G.X, Seed + 3) == "");
  CHECK(fdCheck(OfW, W, G.W, Seed + 3) == "");
  CHECK(fdCheck(OfB, B, G.Bias, Seed + 3) == "");
}

/// conv2dBackward on oneDNN against the reference loops, with and without
/// a bias.
void checkConvOneDNN(llvm::ArrayRef<int64_t> XS, llvm::ArrayRef<int64_t> WS,
                     const ref::Conv2dParams &P, uint64_t Seed) {
  Tensor X = randomTensor(XS, Seed), W = randomTensor(WS, Seed + 1);
  Tensor Y = ref::conv2d(X, W, nullptr, P);
  Tensor GY = randomTensor(Y.shape(), Seed + 2);
  for (bool HasBias : {false, true}) {
    INFO(describe(P) << " bias " << HasBias);
    grad::Conv2dGrads Want = grad::conv2dBackwardRef(X, W, HasBias, GY, P);
    KernelModeScope Mode(KernelMode::OneDNN);
    grad::Conv2dGrads Got = grad::conv2dBackward(X, W, HasBias, GY, P);
    CHECK(closeTo(Got.X, Want.X) == "");
    CHECK(closeTo(Got.W, Want.W) == "");
    CHECK(Got.Bias.hasData() == HasBias);
    if (HasBias)
      CHECK(closeTo(Got.Bias, Want.Bias) == "");
  }
}

} // namespace

TEST_CASE("grad: conv2d reference backward matches finite differences",
          "[grad]") {
  checkConvRef({2, 3, 5, 6}, {4, 3, 3, 2}, convParams(1, 0, 1, 1), 10);
  checkConvRef({2, 4, 7, 7}, {4, 2, 3, 3}, convParams(2, 1, 1, 2), 20);
  checkConvRef({1, 4, 8, 7}, {6, 2, 3, 3}, convParams(1, 2, 2, 2), 30);
  // Depthwise, stride 2 with unused trailing input rows.
  checkConvRef({2, 3, 8, 8}, {3, 1, 3, 3}, convParams(2, 0, 1, 3), 40);
}

TEST_CASE("grad: conv2d backward honours NeedX and NeedW", "[grad]") {
  Tensor X = randomTensor({1, 2, 4, 4}, 1), W = randomTensor({3, 2, 3, 3}, 2);
  Tensor GY = randomTensor({1, 3, 2, 2}, 3);
  ref::Conv2dParams P;
  for (KernelMode M : {KernelMode::Reference, KernelMode::OneDNN}) {
    KernelModeScope Mode(M);
    grad::Conv2dGrads OnlyX =
        grad::conv2dBackward(X, W, true, GY, P, true, false);
    CHECK(OnlyX.X.hasData());
    CHECK_FALSE(OnlyX.W.hasData());
    // The bias gradient is a cheap sum, returned whenever there is a bias.
    CHECK(OnlyX.Bias.hasData());
    grad::Conv2dGrads OnlyW =
        grad::conv2dBackward(X, W, false, GY, P, false, true);
    CHECK_FALSE(OnlyW.X.hasData());
    CHECK(OnlyW.W.hasData());
    CHECK_FALSE(OnlyW.Bias.hasData());
  }
}

TEST_CASE("grad: conv2d oneDNN backward matches the reference", "[grad]") {
  checkConvOneDNN({2, 4, 7, 9}, {6, 4, 3, 3}, convParams(1, 0, 1, 1), 100);
  checkConvOneDNN({2, 4, 7, 9}, {6, 4, 3, 3}, convParams(2, 1, 1, 1), 110);
  checkConvOneDNN({2, 4, 7, 9}, {6, 2, 3, 3}, convParams(1, 1, 1, 2), 120);
  checkConvOneDNN({2, 4, 9, 9}, {6, 4, 3, 3}, convParams(1, 0, 2, 1), 130);
  checkConvOneDNN({2, 4, 9, 10}, {6, 2, 3, 2}, convParams(2, 1, 2, 2), 140);
  // Enough channels that oneDNN picks blocked layouts and reorders.
  checkConvOneDNN({2, 16, 6, 6}, {32, 16, 3, 3}, convParams(1, 1, 1, 1), 150);
  checkConvOneDNN({2, 32, 6, 6}, {32, 16, 3, 3}, convParams(2, 1, 1, 2), 160);
}

TEST_CASE("grad: conv2d oneDNN backward caches its primitives", "[grad]") {
  Tensor X = randomTensor({1, 3, 5, 5}, 1), W = randomTensor({2, 3, 3, 3}, 2);
  Tensor GY = randomTensor({1, 2, 3, 3}, 3);
  ref::Conv2dParams P = convParams(1, 0, 1, 1);
  KernelModeScope Mode(KernelMode::OneDNN);
  grad::conv2dBackward(X, W, true, GY, P);
  size_t Size = onednn::gradPrimitiveCacheSize();
  grad::Conv2dGrads Again = grad::conv2dBackward(X, W, true, GY, P);
  CHECK(onednn::gradPrimitiveCacheSize() == Size);
  CHECK(closeTo(Again.W, grad::conv2dBackwardRef(X, W, true, GY, P).W) == "");
}

TEST_CASE("grad: oneDNN conv backward data and weights entry points",
          "[grad]") {
  Tensor X = randomTensor({2, 4, 6, 5}, 1), W = randomTensor({6, 2, 3, 3}, 2);
  ref::Conv2dParams P = convParams(2, 1, 1, 2);
  Tensor GY = randomTensor(ref::conv2d(X, W, nullptr, P).shape(), 3);
  grad::Conv2dGrads Want = grad::conv2dBackwardRef(X, W, true, GY, P);
  CHECK(closeTo(onednn::conv2dBackwardData(GY, W, X.shape(), P), Want.X) == "");
  Tensor GW, GB;
  onednn::conv2dBackwardWeights(X, GY, W.shape(), P, GW, &GB);
  CHECK(closeTo(GW, Want.W) == "");
  CHECK(closeTo(GB, Want.Bias) == "");
  // An empty batch gives zero gradients without running a primitive.
  Tensor X0(DType::F32, {0, 4, 6, 5}), GY0(DType::F32, {0, 6, 3, 3});
  onednn::conv2dBackwardWeights(X0, GY0, W.shape(), P, GW, &GB);
  CHECK(GW.shape() == W.shape());
  CHECK(GW.data<float>()[0] == 0.0f);
  CHECK(GB.data<float>()[0] == 0.0f);
}

//===----------------------------------------------------------------------===//
// linear
//===----------------------------------------------------------------------===//

TEST_CASE("grad: linear backward matches finite differences", "[grad]") {
  Tensor X = randomTensor({2, 3, 5}, 1), W = randomTensor({4, 5}, 2);
  Tensor B = randomTensor({4}, 3);
  TensorFn OfX = [&](const Tensor &T) { return ref::linear(T, W, &B); };
  TensorFn OfW = [&](const Tensor &T) { return ref::linear(X, T, &B); };
  TensorFn OfB = [&](const Tensor &T) { return ref::linear(X, W, &T); };
  Tensor GY = cotangent(OfX, X, 4);
  grad::LinearGrads G = grad::linearBackward(X, W, true, GY);
  CHECK(fdCheck(OfX, X, G.X, 4) == "");
  CHECK(fdCheck(OfW, W, G.W, 4) == "");
  CHECK(fdCheck(OfB, B, G.Bias, 4) == "");
  grad::LinearGrads NoBias = grad::linearBackward(X, W, false, GY, false);
  CHECK_FALSE(NoBias.X.hasData());
  CHECK_FALSE(NoBias.Bias.hasData());
  CHECK(closeTo(NoBias.W, G.W) == "");
}

//===----------------------------------------------------------------------===//
// Batch norm
//===----------------------------------------------------------------------===//

TEST_CASE("grad: batch norm training normalizes and updates running stats",
          "[grad]") {
  // One channel holding {1, 2, 3, 6}: mean 3, biased variance 14/4,
  // unbiased 14/3.
  Tensor X = Tensor::fromFloats({2, 1, 2}, {1, 2, 3, 6});
  Tensor RM = Tensor::fromFloats({1}, {0.5f});
  Tensor RV = Tensor::fromFloats({1}, {2.0f});
  Tensor Wt = Tensor::fromFloats({1}, {2.0f}), B = Tensor::fromFloats({1}, {1});
  Tensor Out;
  const double Eps = 1e-5;
  grad::BatchNormSaved S =
      grad::batchNormTrain(X, RM, RV, &Wt, &B, /*Momentum=*/0.1, Eps, Out);
  CHECK(RM.data<float>()[0] == Approx(0.9 * 0.5 + 0.1 * 3.0));
  CHECK(RV.data<float>()[0] == Approx(0.9 * 2.0 + 0.1 * 14.0 / 3.0));
  CHECK(S.Mean.data<float>()[0] == Approx(3.0));
  double InvStd = 1.0 / std::sqrt(3.5 + Eps);
  CHECK(S.InvStd.data<float>()[0] == Approx(InvStd));
  REQUIRE(Out.shape() == X.shape());
  const float Xs[] = {1, 2, 3, 6};
  for (int I = 0; I < 4; ++I)
    CHECK(Out.data<float>()[I] == Approx((Xs[I] - 3.0) * InvStd * 2.0 + 1.0));
  // Without running buffers (track_running_stats=False) nothing is updated.
  Tensor NoMean, NoVar, Out2;
  grad::batchNormTrain(X, NoMean, NoVar, nullptr, nullptr, 0.1, Eps, Out2);
  CHECK(Out2.data<float>()[3] == Approx(3.0 * InvStd));
}

namespace {

/// batchNormTrain's output as a function of one of X, weight and bias
/// (running statistics updated on throwaway copies).
Tensor bnTrainForward(const Tensor &X, const Tensor *Wt, const Tensor *B) {
  int64_t C = X.dim(1);
  Tensor RM(DType::F32, {C}), RV(DType::F32, {C}), Out;
  grad::batchNormTrain(X, RM, RV, Wt, B, 0.1, 1e-5, Out);
  return Out;
}

} // namespace

TEST_CASE("grad: batch norm training backward matches finite differences",
          "[grad]") {
  Tensor X = randomTensor({3, 2, 2, 2}, 1), Wt = randomTensor({2}, 2, 0.5, 2);
  Tensor B = randomTensor({2}, 3);
  TensorFn OfX = [&](const Tensor &T) { return bnTrainForward(T, &Wt, &B); };
  TensorFn OfW = [&](const Tensor &T) { return bnTrainForward(X, &T, &B); };
  TensorFn OfB = [&](const Tensor &T) { return bnTrainForward(X, &Wt, &T); };
  Tensor GY = cotangent(OfX, X, 4);
  Tensor RM(DType::F32, {2}), RV(DType::F32, {2}), Out;
  grad::BatchNormSaved S =
      grad::batchNormTrain(X, RM, RV, &Wt, &B, 0.1, 1e-5, Out);
  grad::BatchNormGrads G = grad::batchNormTrainBackward(X, S, &Wt, GY);
  CHECK(fdCheck(OfX, X, G.X, 4) == "");
  CHECK(fdCheck(OfW, Wt, G.Weight, 4) == "");
  CHECK(fdCheck(OfB, B, G.Bias, 4) == "");
  // Affine-free: no weight gradient, the input gradient still right.
  TensorFn Plain = [&](const Tensor &T) {
    return bnTrainForward(T, nullptr, nullptr);
  };
  grad::BatchNormSaved S2 =
      grad::batchNormTrain(X, RM, RV, nullptr, nullptr, 0.1, 1e-5, Out);
  grad::BatchNormGrads G2 = grad::batchNormTrainBackward(X, S2, nullptr, GY);
  CHECK_FALSE(G2.Weight.hasData());
  CHECK(fdCheck(Plain, X, G2.X, 4) == "");
}

TEST_CASE("grad: batch norm eval backward matches finite differences",
          "[grad]") {
  Tensor X = randomTensor({2, 3, 2, 3}, 1), Wt = randomTensor({3}, 2);
  Tensor B = randomTensor({3}, 3), M = randomTensor({3}, 4);
  Tensor V = randomTensor({3}, 5, 0.5f, 2.0f);
  const double Eps = 1e-5;
  TensorFn OfX = [&](const Tensor &T) {
    return ref::batchNorm(T, M, V, &Wt, &B, Eps);
  };
  TensorFn OfW = [&](const Tensor &T) {
    return ref::batchNorm(X, M, V, &T, &B, Eps);
  };
  TensorFn OfB = [&](const Tensor &T) {
    return ref::batchNorm(X, M, V, &Wt, &T, Eps);
  };
  Tensor GY = cotangent(OfX, X, 6);
  grad::BatchNormGrads G = grad::batchNormEvalBackward(X, M, V, &Wt, Eps, GY);
  CHECK(fdCheck(OfX, X, G.X, 6) == "");
  CHECK(fdCheck(OfW, Wt, G.Weight, 6) == "");
  CHECK(fdCheck(OfB, B, G.Bias, 6) == "");
}

//===----------------------------------------------------------------------===//
// Pooling
//===----------------------------------------------------------------------===//

TEST_CASE("grad: max pool backward matches finite differences", "[grad]") {
  const ref::Pool2dParams Cases[] = {
      poolParams(2, 2, 0, 1, false, true), poolParams(3, 2, 1, 1, false, true),
      poolParams(3, 2, 1, 1, true, true), poolParams(2, 1, 1, 2, true, true)};
  uint64_t Seed = 1;
  for (const ref::Pool2dParams &P : Cases) {
    INFO("kernel " << P.Kernel[0] << " stride " << P.Stride[0] << " padding "
                   << P.Padding[0] << " dilation " << P.Dilation[0] << " ceil "
                   << P.CeilMode);
    Tensor X = distinctTensor({1, 2, 6, 7}, ++Seed);
    REQUIRE(bool(ref::pool2dShape(X.shape(), P)));
    TensorFn F = [&](const Tensor &T) { return ref::maxPool2d(T, P); };
    Tensor GY = cotangent(F, X, Seed + 10);
    CHECK(fdCheck(F, X, grad::maxPool2dBackward(X, GY, P), Seed + 10) == "");
  }
}

TEST_CASE("grad: max pool sends a tie's gradient to the first maximum",
          "[grad]") {
  // Every element equal: each window's gradient goes to its top-left tap.
  Tensor X(DType::F32, {1, 1, 3, 3});
  for (int I = 0; I < 9; ++I)
    X.data<float>()[I] = 1.0f;
  // Overlapping 2x2 windows with stride 1 (four of them).
  ref::Pool2dParams P = poolParams(2, 1, 0, 1, false, true);
  Tensor GY = Tensor::fromFloats({1, 1, 2, 2}, {1, 2, 3, 4});
  Tensor GX = grad::maxPool2dBackward(X, GY, P);
  const float Want[] = {1, 2, 0, 3, 4, 0, 0, 0, 0};
  for (int I = 0; I < 9; ++I) {
    INFO("element " << I);
    CHECK(GX.data<float>()[I] == Want[I]);
  }
  // A tie between later taps: the first in row-major order wins.
  Tensor Y = Tensor::fromFloats({1, 1, 2, 2}, {0, 5, 5, 5});
  ref::Pool2dParams Whole = poolParams(2, 2, 0, 1, false, true);
  Tensor G1 =
      grad::maxPool2dBackward(Y, Tensor::fromFloats({1, 1, 1, 1}, {7}), Whole);
  CHECK(G1.data<float>()[1] == 7.0f);
  CHECK(G1.data<float>()[2] == 0.0f);
  CHECK(G1.data<float>()[3] == 0.0f);
}

TEST_CASE("grad: avg pool backward matches finite differences", "[grad]") {
  ref::Pool2dParams Override = poolParams(3, 2, 1, 1, false, true);
  Override.DivisorOverride = 5;
  // Padding counted or not, ceil mode with a clipped last window (6 wide,
  // kernel 3, stride 2) and a divisor override.
  const ref::Pool2dParams Cases[] = {
      poolParams(2, 2, 0, 1, false, true),  poolParams(3, 2, 1, 1, false, true),
      poolParams(3, 2, 1, 1, false, false), poolParams(3, 2, 0, 1, true, true),
      poolParams(3, 2, 1, 1, true, false),  Override};
  uint64_t Seed = 1;
  for (const ref::Pool2dParams &P : Cases) {
    INFO("kernel " << P.Kernel[0] << " stride " << P.Stride[0] << " padding "
                   << P.Padding[0] << " ceil " << P.CeilMode << " include_pad "
                   << P.CountIncludePad);
    Tensor X = randomTensor({2, 2, 5, 6}, ++Seed);
    REQUIRE(bool(ref::pool2dShape(X.shape(), P)));
    TensorFn F = [&](const Tensor &T) { return ref::avgPool2d(T, P); };
    Tensor GY = cotangent(F, X, Seed + 10);
    Tensor GX = grad::avgPool2dBackward(X.shape(), GY, P);
    CHECK(fdCheck(F, X, GX, Seed + 10) == "");
  }
}

TEST_CASE("grad: adaptive avg pool backward matches finite differences",
          "[grad]") {
  // Overlapping bins (5 -> 3, 7 -> 4) and a global pool.
  for (std::array<int64_t, 2> Out :
       {std::array<int64_t, 2>{3, 4}, std::array<int64_t, 2>{1, 1}}) {
    INFO("output " << Out[0] << "x" << Out[1]);
    Tensor X = randomTensor({2, 2, 5, 7}, 1);
    REQUIRE(bool(ref::adaptivePool2dShape(X.shape(), Out)));
    TensorFn F = [&](const Tensor &T) {
      return ref::adaptiveAvgPool2d(T, Out);
    };
    Tensor GY = cotangent(F, X, 2);
    Tensor GX = grad::adaptiveAvgPool2dBackward(X.shape(), GY);
    CHECK(fdCheck(F, X, GX, 2) == "");
  }
}
