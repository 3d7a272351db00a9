//===- KernelsTest.cpp - Reference kernels and shape functions vs PyTorch -===//

#include "qfx/Runtime/Kernels.h"
#include "qfx/Support/Error.h"
#include "qfx/Support/Npy.h"

#include <catch2/catch.hpp>

#include <chrono>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

using namespace qfx;
using namespace qfx::ref;
using Catch::Contains;
using Catch::StartsWith;

namespace {

const float Inf = std::numeric_limits<float>::infinity();
const float NaN = std::numeric_limits<float>::quiet_NaN();

/// Test data case \p Name ("conv_s2p1.x") from the PyTorch golden files.
Tensor golden(const std::string &Name) {
  std::string Path =
      std::string(QFX_TEST_DATA_DIR) + "/kernels/" + Name + ".npy";
  llvm::Expected<Tensor> T = readNpy(Path);
  if (!T)
    FAIL(errorToString(T.takeError()));
  REQUIRE(T->dtype() == DType::F32);
  return *T;
}

std::vector<float> values(const Tensor &T) {
  REQUIRE(T.dtype() == DType::F32);
  const float *P = T.data<float>();
  return std::vector<float>(P, P + T.numElements());
}

/// Same shape, and every element within 1e-5 relative + 1e-6 absolute of
/// \p Want (NaN matches NaN, infinities must match exactly).
void requireClose(const Tensor &Got, const Tensor &Want) {
  REQUIRE(formatShape(Got.shape()) == formatShape(Want.shape()));
  std::vector<float> G = values(Got), W = values(Want);
  for (size_t I = 0; I < G.size(); ++I) {
    bool Ok = std::isnan(W[I]) ? std::isnan(G[I])
              : std::isinf(W[I])
                  ? G[I] == W[I]
                  : std::fabs(G[I] - W[I]) <= 1e-6 + 1e-5 * std::fabs(W[I]);
    if (!Ok)
      FAIL("element " << I << ": got " << G[I] << ", want " << W[I]);
  }
}

/// Exact comparison for hand-computed results, with a readable diff.
void requireValues(const Tensor &Got, llvm::ArrayRef<int64_t> Shape,
                   std::vector<float> Want) {
  REQUIRE(formatShape(Got.shape()) == formatShape(Shape));
  CHECK(values(Got) == Want);
}

Tensor tensor(llvm::ArrayRef<int64_t> Shape, std::vector<float> V) {
  return Tensor::fromFloats(Shape, V);
}

/// 0, 1, 2, ... in shape \p Shape, plus \p Base.
Tensor iota(llvm::ArrayRef<int64_t> Shape, float Base = 0) {
  std::vector<float> V(numElements(Shape));
  for (size_t I = 0; I < V.size(); ++I)
    V[I] = Base + static_cast<float>(I);
  return tensor(Shape, V);
}

std::string shapeOf(llvm::Expected<Shape> S) {
  if (!S)
    FAIL(errorToString(S.takeError()));
  return formatShape(*S);
}

std::string errorOf(llvm::Expected<Shape> S) {
  if (S)
    FAIL("expected an error, got shape " << formatShape(*S));
  return errorToString(S.takeError());
}

Conv2dParams convParams(std::array<int64_t, 2> Stride,
                        std::array<int64_t, 2> Padding,
                        std::array<int64_t, 2> Dilation, int64_t Groups) {
  Conv2dParams P;
  P.Stride = Stride;
  P.Padding = Padding;
  P.Dilation = Dilation;
  P.Groups = Groups;
  return P;
}

Pool2dParams poolParams(std::array<int64_t, 2> Kernel,
                        std::array<int64_t, 2> Stride,
                        std::array<int64_t, 2> Padding = {0, 0}) {
  Pool2dParams P;
  P.Kernel = Kernel;
  P.Stride = Stride;
  P.Padding = Padding;
  return P;
}

} // namespace

//===----------------------------------------------------------------------===//
// Hand-computed cases
//===----------------------------------------------------------------------===//

TEST_CASE("conv2d: hand-computed cases", "[kernels]") {
  Tensor X = iota({1, 1, 3, 3}, 1); // 1..9
  Tensor Diag = tensor({1, 1, 2, 2}, {1, 0, 0, 1});
  Tensor B = tensor({1}, {0.5f});
  SECTION("valid, with bias") {
    requireValues(conv2d(X, Diag, &B, {}), {1, 1, 2, 2},
                  {6.5f, 8.5f, 12.5f, 14.5f});
  }
  SECTION("padding reads zeros, stride skips") {
    requireValues(
        conv2d(X, Diag, nullptr, convParams({2, 2}, {1, 1}, {1, 1}, 1)),
        {1, 1, 2, 2}, {1, 3, 7, 14});
  }
  SECTION("dilation spreads the taps") {
    Tensor Ones = tensor({1, 1, 2, 2}, {1, 1, 1, 1});
    requireValues(
        conv2d(X, Ones, nullptr, convParams({1, 1}, {0, 0}, {2, 2}, 1)),
        {1, 1, 1, 1}, {1 + 3 + 7 + 9});
  }
  SECTION("groups keep channels apart") {
    Tensor X2 = tensor({1, 2, 1, 1}, {2, 3});
    Tensor W2 = tensor({2, 1, 1, 1}, {10, 100});
    requireValues(
        conv2d(X2, W2, nullptr, convParams({1, 1}, {0, 0}, {1, 1}, 2)),
        {1, 2, 1, 1}, {20, 300});
    Tensor W1 = tensor({2, 2, 1, 1}, {10, 100, 1, -1});
    requireValues(conv2d(X2, W1, nullptr, {}), {1, 2, 1, 1}, {320, -1});
  }
  SECTION("bias is added after the sum") {
    // (1e8 - 1e8) + 1 is 1, but 1 + 1e8 rounds to 1e8 in float, so adding
    // the bias first would give 0.
    Tensor X2 = tensor({1, 2, 1, 1}, {1, 1});
    Tensor W2 = tensor({1, 2, 1, 1}, {1e8f, -1e8f});
    Tensor One = tensor({1}, {1});
    requireValues(conv2d(X2, W2, &One, {}), {1, 1, 1, 1}, {1});
  }
}

TEST_CASE("conv2d: deterministic and fast enough", "[kernels]") {
  Tensor X = golden("conv_basic.x");
  Tensor W = golden("conv_basic.w");
  Tensor B = golden("conv_basic.b");
  CHECK(conv2d(X, W, &B, {}).identical(conv2d(X, W, &B, {})));

  // The layer of the demo network; plain loops take about a millisecond.
  std::vector<float> XV(40 * 13 * 13), WV(40 * 40 * 9);
  for (size_t I = 0; I < XV.size(); ++I)
    XV[I] = static_cast<float>(I % 7) - 3;
  for (size_t I = 0; I < WV.size(); ++I)
    WV[I] = static_cast<float>(I % 5) - 2;
  Tensor BX = tensor({1, 40, 13, 13}, XV), BW = tensor({40, 40, 3, 3}, WV);
  auto Start = std::chrono::steady_clock::now();
  Tensor Y = conv2d(BX, BW, nullptr, convParams({1, 1}, {1, 1}, {1, 1}, 1));
  auto Ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::steady_clock::now() - Start)
                .count();
  CHECK(Ms < 1000);
  // Output (0, 5, 6, 7) computed directly; all terms are small integers, so
  // the float sum is exact.
  double Want = 0;
  for (int C = 0; C < 40; ++C)
    for (int KY = 0; KY < 3; ++KY)
      for (int KX = 0; KX < 3; ++KX)
        Want += XV[(C * 13 + 5 + KY) * 13 + 6 + KX] *
                WV[((5 * 40 + C) * 3 + KY) * 3 + KX];
  REQUIRE(formatShape(Y.shape()) == "[1,40,13,13]");
  CHECK(Y.data<float>()[(5 * 13 + 6) * 13 + 7] == static_cast<float>(Want));
}

TEST_CASE("linear and batch_norm: hand-computed cases", "[kernels]") {
  Tensor X = tensor({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor W = tensor({2, 3}, {1, 0, -1, 0.5f, 0.5f, 0.5f});
  Tensor B = tensor({2}, {1, -1});
  requireValues(linear(X, W, &B), {2, 2}, {-1, 2, -1, 6.5f});
  requireValues(linear(X, W, nullptr), {2, 2}, {-2, 3, -2, 7.5f});
  // Leading dimensions are batch dimensions.
  requireValues(linear(X.reshaped({2, 1, 3}), W, &B), {2, 1, 2},
                {-1, 2, -1, 6.5f});

  Tensor BX = tensor({1, 2, 2}, {1, 3, 2, 4});
  Tensor Mean = tensor({2}, {2, 1}), Var = tensor({2}, {4, 0.25f});
  Tensor Gamma = tensor({2}, {2, 1}), Beta = tensor({2}, {0, 1});
  requireValues(batchNorm(BX, Mean, Var, &Gamma, &Beta, 0.0), {1, 2, 2},
                {-1, 1, 3, 7});
  requireValues(batchNorm(BX, Mean, Var, nullptr, nullptr, 0.0), {1, 2, 2},
                {-0.5f, 0.5f, 2, 6});
  // eps is added to the variance: sqrt(0 + 0.25) = 0.5.
  Tensor Zero = tensor({2}, {0, 0});
  requireValues(batchNorm(BX, Mean, Zero, nullptr, nullptr, 0.25), {1, 2, 2},
                {-2, 2, 2, 6});
}

TEST_CASE("activations: hand-computed cases", "[kernels]") {
  Tensor X = tensor({7}, {-4, -3, -1, 0, 1, 3, 7});
  requireValues(relu(X), {7}, {0, 0, 0, 0, 1, 3, 7});
  requireValues(relu6(X), {7}, {0, 0, 0, 0, 1, 3, 6});
  requireValues(hardtanh(X, -2, 1.5), {7}, {-2, -2, -1, 0, 1, 1.5f, 1.5f});
  requireValues(hardswish(X), {7}, {0, 0, -1 * 2 / 6.0f, 0, 4 / 6.0f, 3, 7});
  requireValues(hardsigmoid(X), {7}, {0, 0, 2 / 6.0f, 0.5f, 4 / 6.0f, 1, 1});
  requireValues(leakyRelu(X, 0.5), {7}, {-2, -1.5f, -0.5f, 0, 1, 3, 7});
  Tensor Z = tensor({3}, {0, 100, -100});
  requireValues(sigmoid(Z), {3}, {0.5f, 1, 0});
  requireValues(tanh(Z), {3}, {0, 1, -1});
  // Shapes are kept, including scalars.
  requireValues(relu(tensor({}, {-5})), {}, {0});

  // NaN propagates, as in PyTorch.
  Tensor N = tensor({1}, {NaN});
  for (const Tensor &Y :
       {relu(N), relu6(N), hardtanh(N, -1, 1), hardswish(N), hardsigmoid(N),
        sigmoid(N), tanh(N), leakyRelu(N, 0.1)})
    CHECK(std::isnan(Y.data<float>()[0]));
}

TEST_CASE("pooling: hand-computed cases", "[kernels]") {
  Tensor X = iota({1, 1, 4, 4}, 1);
  requireValues(maxPool2d(X, poolParams({2, 2}, {2, 2})), {1, 1, 2, 2},
                {6, 8, 14, 16});
  // Padding is -inf for max pooling, not zero.
  Tensor Neg = tensor({1, 1, 2, 2}, {-1, -2, -3, -4});
  requireValues(maxPool2d(Neg, poolParams({3, 3}, {1, 1}, {1, 1})),
                {1, 1, 2, 2}, {-1, -1, -1, -1});
  // A dilated ceil-mode window can see nothing but padding: -inf.
  Pool2dParams Empty = poolParams({2, 2}, {2, 2}, {1, 1});
  Empty.Dilation = {3, 3};
  Empty.CeilMode = true;
  requireValues(maxPool2d(tensor({1, 1, 1, 1}, {5}), Empty), {1, 1, 1, 1},
                {-Inf});
  Tensor WithNaN = tensor({1, 1, 1, 2}, {NaN, 1});
  CHECK(std::isnan(
      maxPool2d(WithNaN, poolParams({1, 2}, {1, 2})).data<float>()[0]));

  Tensor A = tensor({1, 1, 2, 2}, {1, 2, 3, 4});
  Pool2dParams P = poolParams({2, 2}, {1, 1}, {1, 1});
  requireValues(avgPool2d(A, P), {1, 1, 3, 3},
                {0.25f, 0.75f, 0.5f, 1, 2.5f, 1.5f, 0.75f, 1.75f, 1});
  P.CountIncludePad = false;
  requireValues(avgPool2d(A, P), {1, 1, 3, 3},
                {1, 1.5f, 2, 2, 2.5f, 3, 3, 3.5f, 4});
  P.DivisorOverride = 2;
  requireValues(avgPool2d(A, P), {1, 1, 3, 3},
                {0.5f, 1.5f, 1, 2, 5, 3, 1.5f, 3.5f, 2});

  // Bins [0, 3) and [2, 5) overlap.
  requireValues(adaptiveAvgPool2d(iota({1, 1, 1, 5}, 1), {1, 2}), {1, 1, 1, 2},
                {2, 4});
  // Upsampling repeats elements.
  requireValues(adaptiveAvgPool2d(tensor({1, 1, 1, 2}, {1, 3}), {1, 4}),
                {1, 1, 1, 4}, {1, 1, 3, 3});
}

TEST_CASE("elementwise arithmetic: hand-computed cases", "[kernels]") {
  Tensor A = tensor({2, 1}, {1, 2});
  Tensor B = tensor({3}, {10, 20, 30});
  requireValues(add(A, B), {2, 3}, {11, 21, 31, 12, 22, 32});
  requireValues(add(A, B, 2), {2, 3}, {21, 41, 61, 22, 42, 62});
  requireValues(add(B, A), {2, 3}, {11, 21, 31, 12, 22, 32});
  requireValues(mul(A, B), {2, 3}, {10, 20, 30, 20, 40, 60});
  requireValues(mul(B, B), {3}, {100, 400, 900});
  // Scalars broadcast against anything.
  requireValues(mul(tensor({}, {-1}), B), {3}, {-10, -20, -30});
  requireValues(add(tensor({}, {1}), tensor({}, {2})), {}, {3});
  requireValues(addScalar(B, 2.5), {3}, {12.5f, 22.5f, 32.5f});
  requireValues(mulScalar(B, -0.5), {3}, {-5, -10, -15});
}

TEST_CASE("data movement: hand-computed cases", "[kernels]") {
  Tensor A = tensor({1, 2}, {1, 2});
  Tensor B = tensor({1, 1}, {3});
  requireValues(cat({A, B}, 1), {1, 3}, {1, 2, 3});
  requireValues(cat({A, B, A}, -1), {1, 5}, {1, 2, 3, 1, 2});
  requireValues(cat({A, A}, 0), {2, 2}, {1, 2, 1, 2});
  requireValues(cat({A, Tensor::zeros(DType::F32, {1, 0})}, 1), {1, 2}, {1, 2});

  Tensor X = iota({2, 3});
  Tensor R = reshape(X, {3, -1});
  REQUIRE(formatShape(R.shape()) == "[3,2]");
  CHECK(R.rawData() == X.rawData());
  CHECK(formatShape(flatten(iota({2, 3, 4}), 1, -1).shape()) == "[2,12]");
  CHECK(formatShape(flatten(iota({2, 3, 4}), 0, 1).shape()) == "[6,4]");
  CHECK(formatShape(flatten(tensor({}, {1}), 0, -1).shape()) == "[1]");

  requireValues(permute(X, {1, 0}), {3, 2}, {0, 3, 1, 4, 2, 5});
  requireValues(transpose(X, 0, -1), {3, 2}, {0, 3, 1, 4, 2, 5});
  requireValues(permute(iota({2, 1, 2}), {2, 0, 1}), {2, 2, 1}, {0, 2, 1, 3});
  // Data movement works for any dtype.
  Tensor S8 = Tensor::fromValues<int>(DType::S8, {2, 2}, {1, -2, 3, -4});
  Tensor T8 = transpose(S8, 0, 1);
  REQUIRE(T8.dtype() == DType::S8);
  CHECK(T8.getAsDouble(1) == 3);
  CHECK(cat({S8, S8}, 0).getAsDouble(6) == 3);
}

TEST_CASE("reductions: hand-computed cases", "[kernels]") {
  Tensor X = tensor({2, 3}, {1, 2, 3, 4, 5, 7});
  requireValues(mean(X, {1}, true), {2, 1}, {2, 16 / 3.0f});
  requireValues(mean(X, {0}, false), {3}, {2.5f, 3.5f, 5});
  requireValues(mean(X, {-1, 0}, false), {}, {22 / 6.0f});
  // An empty list reduces everything.
  requireValues(mean(X, {}, true), {1, 1}, {22 / 6.0f});
  requireValues(mean(tensor({}, {4}), {0}, false), {}, {4});

  Tensor L = tensor({1, 2}, {0, std::log(3.0f)});
  Tensor Y = softmax(L, -1);
  REQUIRE(formatShape(Y.shape()) == "[1,2]");
  CHECK(Y.data<float>()[0] == Approx(0.25f).epsilon(1e-6));
  CHECK(Y.data<float>()[1] == Approx(0.75f).epsilon(1e-6));
  // Subtracting the max keeps large logits finite.
  requireValues(softmax(tensor({2}, {1000, 1000}), 0), {2}, {0.5f, 0.5f});
  requireValues(softmax(tensor({2, 1}, {5, -5}), 1), {2, 1}, {1, 1});
}

//===----------------------------------------------------------------------===//
// Shape functions
//===----------------------------------------------------------------------===//

TEST_CASE("normalizeDim", "[kernels]") {
  CHECK(llvm::cantFail(normalizeDim(-1, 4)) == 3);
  CHECK(llvm::cantFail(normalizeDim(2, 4)) == 2);
  CHECK(llvm::cantFail(normalizeDim(-1, 0)) == 0);
  llvm::Expected<int64_t> E = normalizeDim(4, 4);
  REQUIRE_FALSE(static_cast<bool>(E));
  CHECK(errorToString(E.takeError()) ==
        "dimension 4 is out of range for rank 4 (expected -4 to 3)");
  llvm::Expected<int64_t> E2 = normalizeDim(-5, 4);
  REQUIRE_FALSE(static_cast<bool>(E2));
  CHECK_THAT(errorToString(E2.takeError()), StartsWith("dimension -5"));
}

TEST_CASE("conv2d shape function", "[kernels]") {
  Shape W = {4, 3, 3, 3};
  CHECK(shapeOf(conv2dShape({1, 3, 7, 7}, W, std::nullopt, {})) == "[1,4,5,5]");
  CHECK(shapeOf(conv2dShape({2, 3, 7, 7}, W, llvm::ArrayRef<int64_t>{4},
                            convParams({2, 2}, {1, 1}, {1, 1}, 1))) ==
        "[2,4,4,4]");
  CHECK(shapeOf(conv2dShape({1, 6, 7, 7}, {6, 2, 3, 3}, std::nullopt,
                            convParams({2, 1}, {1, 0}, {2, 1}, 3))) ==
        "[1,6,3,5]");
  CHECK(errorOf(conv2dShape({3, 28, 28}, W, std::nullopt, {})) ==
        "conv2d: expected a 4-d input, got [3,28,28]");
  CHECK(errorOf(conv2dShape({1, 3, 7, 7}, {4, 3, 3}, std::nullopt, {})) ==
        "conv2d: expected a 4-d weight, got [4,3,3]");
  CHECK(errorOf(conv2dShape({1, 3, 28, 28}, {40, 1, 3, 3}, std::nullopt, {})) ==
        "conv2d: input has 3 channels but weight expects 1 (groups=1)");
  CHECK(errorOf(conv2dShape({1, 4, 8, 8}, {6, 1, 3, 3}, std::nullopt,
                            convParams({1, 1}, {0, 0}, {1, 1}, 3))) ==
        "conv2d: input has 4 channels but weight expects 3 (groups=3)");
  CHECK(errorOf(conv2dShape({1, 3, 8, 8}, {4, 1, 3, 3}, std::nullopt,
                            convParams({1, 1}, {0, 0}, {1, 1}, 3))) ==
        "conv2d: weight has 4 output channels, which groups=3 does not "
        "divide");
  CHECK(errorOf(conv2dShape({1, 3, 7, 7}, W, llvm::ArrayRef<int64_t>{3}, {})) ==
        "conv2d: expected a bias of shape [4], got [3]");
  CHECK(errorOf(conv2dShape({1, 1, 2, 2}, {1, 1, 3, 3}, std::nullopt, {})) ==
        "conv2d: output would be empty: input 2x2 is smaller than the "
        "dilated kernel 3x3");
  CHECK(errorOf(conv2dShape({1, 1, 4, 4}, {1, 1, 3, 3}, std::nullopt,
                            convParams({1, 1}, {1, 0}, {3, 1}, 1))) ==
        "conv2d: output would be empty: padded input 6x4 is smaller than "
        "the dilated kernel 7x3");
  CHECK_THAT(errorOf(conv2dShape({1, 3, 7, 7}, W, std::nullopt,
                                 convParams({0, 1}, {0, 0}, {1, 1}, 1))),
             StartsWith("conv2d: stride must be between 1 and"));
  CHECK_THAT(errorOf(conv2dShape({1, 3, 7, 7}, W, std::nullopt,
                                 convParams({1, 1}, {-1, 0}, {1, 1}, 1))),
             StartsWith("conv2d: padding must be between 0 and"));
  CHECK_THAT(errorOf(conv2dShape({1, 3, 7, 7}, W, std::nullopt,
                                 convParams({1, 1}, {0, 0}, {1, 0}, 1))),
             StartsWith("conv2d: dilation must be between 1 and"));
  CHECK_THAT(errorOf(conv2dShape({1, 3, 7, 7}, W, std::nullopt,
                                 convParams({1, 1}, {0, 0}, {1, 1}, 0))),
             StartsWith("conv2d: groups must be between 1 and"));
  CHECK_THAT(errorOf(conv2dShape({1, -3, 7, 7}, W, std::nullopt, {})),
             StartsWith("conv2d: input: negative extent -3"));
  CHECK(errorOf(conv2dShape({1, 0, 7, 7}, {4, 0, 3, 3}, std::nullopt, {})) ==
        "conv2d: weight has an empty dimension: [4,0,3,3]");
  CHECK_THAT(errorOf(conv2dShape({1 << 20, 1, 1 << 10, 1 << 8},
                                 {1 << 10, 1, 1, 1}, std::nullopt, {})),
             StartsWith("conv2d: output: shape"));
}

TEST_CASE("linear and batch_norm shape functions", "[kernels]") {
  CHECK(shapeOf(linearShape({2, 3, 10}, {5, 10}, llvm::ArrayRef<int64_t>{5})) ==
        "[2,3,5]");
  CHECK(shapeOf(linearShape({10}, {5, 10}, std::nullopt)) == "[5]");
  CHECK(errorOf(linearShape({1, 999}, {10, 1000}, std::nullopt)) ==
        "linear: input has 999 features but weight expects 1000");
  CHECK(errorOf(linearShape({}, {5, 10}, std::nullopt)) ==
        "linear: expected an input of rank at least 1, got []");
  CHECK(errorOf(linearShape({10}, {10}, std::nullopt)) ==
        "linear: expected a 2-d weight, got [10]");
  CHECK(errorOf(linearShape({10}, {5, 10}, llvm::ArrayRef<int64_t>{5, 1})) ==
        "linear: expected a bias of shape [5], got [5,1]");

  CHECK(shapeOf(batchNormShape({2, 3, 4, 5}, 3)) == "[2,3,4,5]");
  CHECK(shapeOf(batchNormShape({2, 3}, 3)) == "[2,3]");
  CHECK(errorOf(batchNormShape({2, 3, 4, 5}, 5)) ==
        "batch_norm: input has 3 channels but the statistics have 5");
  CHECK(errorOf(batchNormShape({3}, 3)) ==
        "batch_norm: expected an input of rank at least 2, got [3]");
}

TEST_CASE("pool2d shape function", "[kernels]") {
  CHECK(shapeOf(pool2dShape({1, 40, 26, 26}, poolParams({2, 2}, {2, 2}))) ==
        "[1,40,13,13]");
  Pool2dParams Ceil = poolParams({2, 2}, {2, 2}, {1, 1});
  Ceil.CeilMode = true;
  // 5 + 2 - 2 = 5, ceil(5 / 2) + 1 = 4, but the 4th window would start at 6
  // >= 5 + 1, in the right padding.
  CHECK(shapeOf(pool2dShape({1, 1, 5, 5}, Ceil)) == "[1,1,3,3]");
  CHECK(shapeOf(pool2dShape({1, 1, 6, 6}, Ceil)) == "[1,1,4,4]");
  Ceil.Padding = {0, 0};
  CHECK(shapeOf(pool2dShape({1, 1, 5, 5}, Ceil)) == "[1,1,3,3]");

  CHECK(
      errorOf(pool2dShape({1, 1, 8, 8}, poolParams({3, 3}, {1, 1}, {2, 0}))) ==
      "pool2d: padding 2 must be at most half of kernel 3");
  CHECK(errorOf(pool2dShape({1, 8, 8}, poolParams({2, 2}, {2, 2}))) ==
        "pool2d: expected a 4-d input, got [1,8,8]");
  CHECK(errorOf(pool2dShape({1, 1, 0, 8}, poolParams({2, 2}, {2, 2}))) ==
        "pool2d: expected non-empty channel and spatial dimensions, got "
        "[1,1,0,8]");
  CHECK(errorOf(pool2dShape({1, 1, 2, 2}, poolParams({3, 3}, {1, 1}))) ==
        "pool2d: output would be empty: input 2x2 is smaller than the "
        "dilated kernel 3x3");
  CHECK_THAT(errorOf(pool2dShape({1, 1, 8, 8}, poolParams({0, 2}, {1, 1}))),
             StartsWith("pool2d: kernel size must be between 1 and"));
  CHECK_THAT(errorOf(pool2dShape({1, 1, 8, 8}, poolParams({2, 2}, {1, 0}))),
             StartsWith("pool2d: stride must be between 1 and"));
  CHECK_THAT(
      errorOf(pool2dShape({1, 1, 8, 8}, poolParams({2, 2}, {1, 1}, {-1, 0}))),
      StartsWith("pool2d: padding must be between 0 and"));
  Pool2dParams Dil = poolParams({2, 2}, {1, 1});
  Dil.Dilation = {0, 1};
  CHECK_THAT(errorOf(pool2dShape({1, 1, 8, 8}, Dil)),
             StartsWith("pool2d: dilation must be between 1 and"));
  Pool2dParams Div = poolParams({2, 2}, {1, 1});
  Div.DivisorOverride = 0;
  CHECK(errorOf(pool2dShape({1, 1, 8, 8}, Div)) ==
        "pool2d: divisor_override must not be zero");

  CHECK(shapeOf(adaptivePool2dShape({2, 3, 7, 7}, {3, 1})) == "[2,3,3,1]");
  CHECK(errorOf(adaptivePool2dShape({3, 7, 7}, {1, 1})) ==
        "adaptive_avg_pool2d: expected a 4-d input, got [3,7,7]");
  CHECK_THAT(errorOf(adaptivePool2dShape({1, 3, 7, 7}, {0, 1})),
             StartsWith("adaptive_avg_pool2d: output size must be between 1"));
}

TEST_CASE("broadcast and cat shape functions", "[kernels]") {
  CHECK(shapeOf(broadcastShape({2, 1, 4}, {3, 1})) == "[2,3,4]");
  CHECK(shapeOf(broadcastShape({}, {3})) == "[3]");
  CHECK(shapeOf(broadcastShape({0, 1}, {1, 3})) == "[0,3]");
  CHECK(errorOf(broadcastShape({2, 3}, {4})) ==
        "broadcast: shapes [2,3] and [4] are not broadcastable");

  CHECK(shapeOf(catShape({{2, 3}, {2, 5}}, -1)) == "[2,8]");
  CHECK(errorOf(catShape({{1, 2, 5}, {1, 2, 6}}, 1)) ==
        "cat: inputs differ in dimension 2 (5 vs 6)");
  CHECK(errorOf(catShape({}, 0)) == "cat: expected at least one input");
  CHECK(errorOf(catShape({{2, 3}, {2}}, 0)) ==
        "cat: input 1 has rank 1 but input 0 has rank 2");
  CHECK(errorOf(catShape(std::vector<Shape>{Shape{}, Shape{}}, 0)) ==
        "cat: input 0 is zero-dimensional and cannot be concatenated");
  CHECK(errorOf(catShape({{2, 3}}, 2)) ==
        "cat: dimension 2 is out of range for rank 2 (expected -2 to 1)");
}

TEST_CASE("reshape, flatten, permute, transpose, mean shape functions",
          "[kernels]") {
  CHECK(shapeOf(reshapeShape({2, 3}, {3, -1})) == "[3,2]");
  CHECK(shapeOf(reshapeShape({2, 3}, {6})) == "[6]");
  CHECK(shapeOf(reshapeShape({1}, {})) == "[]");
  CHECK(errorOf(reshapeShape({2, 3}, {4, -1})) ==
        "reshape: cannot reshape [2,3] (6 elements) into [4,-1]");
  CHECK(errorOf(reshapeShape({2, 3}, {7})) ==
        "reshape: cannot reshape [2,3] (6 elements) into [7]");
  CHECK(errorOf(reshapeShape({0, 3}, {0, -1})) ==
        "reshape: cannot reshape [0,3] (0 elements) into [0,-1]");
  CHECK(errorOf(reshapeShape({2, 3}, {-1, -1})) ==
        "reshape: only one dimension can be -1, got [-1,-1]");
  CHECK(errorOf(reshapeShape({2, 3}, {-2, -3})) ==
        "reshape: invalid extent -2 in [-2,-3]");

  CHECK(shapeOf(flattenShape({2, 3, 4, 5}, 1, -1)) == "[2,60]");
  CHECK(shapeOf(flattenShape({2, 3, 4, 5}, -3, 2)) == "[2,12,5]");
  CHECK(shapeOf(flattenShape({}, 0, -1)) == "[1]");
  CHECK(errorOf(flattenShape({2, 3, 4}, 2, 1)) ==
        "flatten: start_dim 2 comes after end_dim 1");
  CHECK(errorOf(flattenShape({2, 3, 4}, 0, 3)) ==
        "flatten: dimension 3 is out of range for rank 3 (expected -3 to 2)");

  CHECK(shapeOf(permuteShape({2, 3, 4}, {2, -3, 1})) == "[4,2,3]");
  CHECK(errorOf(permuteShape({2, 3, 4}, {0, 1})) ==
        "permute: expected 3 dimensions for input [2,3,4], got [0,1]");
  CHECK(errorOf(permuteShape({2, 3, 4}, {1, -2, 0})) ==
        "permute: dimension 1 repeats in [1,-2,0]");
  CHECK_THAT(errorOf(permuteShape({2, 3}, {0, 2})),
             StartsWith("permute: dimension 2 is out of range"));

  CHECK(shapeOf(transposeShape({2, 3, 4}, 0, -1)) == "[4,3,2]");
  CHECK_THAT(errorOf(transposeShape({2, 3}, 0, -3)),
             StartsWith("transpose: dimension -3 is out of range"));

  CHECK(shapeOf(meanShape({2, 3, 4, 5}, {2, 3}, true)) == "[2,3,1,1]");
  CHECK(shapeOf(meanShape({2, 3, 4, 5}, {-1, 0}, false)) == "[3,4]");
  CHECK(shapeOf(meanShape({2, 3}, {}, false)) == "[]");
  CHECK(errorOf(meanShape({2, 3, 4}, {1, -2}, false)) ==
        "mean: dimension 1 repeats in [1,-2]");
  CHECK_THAT(errorOf(meanShape({2, 3}, {5}, false)),
             StartsWith("mean: dimension 5 is out of range"));
}

//===----------------------------------------------------------------------===//
// Golden comparisons against PyTorch (test/data/make_kernel_golden.py)
//===----------------------------------------------------------------------===//

TEST_CASE("conv2d matches PyTorch", "[kernels]") {
  struct Case {
    const char *Name;
    Conv2dParams P;
    bool HasBias;
  } Cases[] = {
      {"conv_basic", {}, true},
      {"conv_s2p1", convParams({2, 2}, {1, 1}, {1, 1}, 1), true},
      {"conv_d2", convParams({1, 1}, {2, 2}, {2, 2}, 1), false},
      {"conv_g3", convParams({2, 1}, {1, 0}, {1, 1}, 3), true},
      {"conv_dw", convParams({1, 1}, {1, 1}, {1, 1}, 4), true},
      {"conv_rect", convParams({1, 2}, {0, 1}, {2, 1}, 1), true},
  };
  for (const Case &C : Cases) {
    INFO(C.Name);
    std::string N = C.Name;
    Tensor B = C.HasBias ? golden(N + ".b") : Tensor();
    requireClose(conv2d(golden(N + ".x"), golden(N + ".w"),
                        C.HasBias ? &B : nullptr, C.P),
                 golden(N + ".y"));
  }
}

TEST_CASE("linear and batch_norm match PyTorch", "[kernels]") {
  Tensor B = golden("linear.b");
  requireClose(linear(golden("linear.x"), golden("linear.w"), &B),
               golden("linear.y"));
  requireClose(
      linear(golden("linear_nobias.x"), golden("linear_nobias.w"), nullptr),
      golden("linear_nobias.y"));
  Tensor W = golden("bn.weight"), Bias = golden("bn.bias");
  requireClose(batchNorm(golden("bn.x"), golden("bn.mean"), golden("bn.var"),
                         &W, &Bias, 1e-5),
               golden("bn.y"));
  requireClose(batchNorm(golden("bn_noaffine.x"), golden("bn_noaffine.mean"),
                         golden("bn_noaffine.var"), nullptr, nullptr, 1e-3),
               golden("bn_noaffine.y"));
}

TEST_CASE("activations match PyTorch", "[kernels]") {
  Tensor X = golden("act.x");
  requireClose(relu(X), golden("act.relu"));
  requireClose(relu6(X), golden("act.relu6"));
  requireClose(hardtanh(X, -2.0, 1.5), golden("act.hardtanh"));
  requireClose(hardswish(X), golden("act.hardswish"));
  requireClose(hardsigmoid(X), golden("act.hardsigmoid"));
  requireClose(sigmoid(X), golden("act.sigmoid"));
  requireClose(tanh(X), golden("act.tanh"));
  requireClose(leakyRelu(X, 0.1), golden("act.leaky_relu"));
  requireClose(silu(X), golden("act.silu"));
}

TEST_CASE("pooling matches PyTorch", "[kernels]") {
  struct Case {
    const char *Name;
    bool IsMax;
    Pool2dParams P;
  };
  auto With = [](Pool2dParams P, bool Ceil, bool CountPad,
                 std::optional<int64_t> Div, std::array<int64_t, 2> Dil) {
    P.CeilMode = Ceil;
    P.CountIncludePad = CountPad;
    P.DivisorOverride = Div;
    P.Dilation = Dil;
    return P;
  };
  Pool2dParams K3 = poolParams({3, 3}, {2, 2}, {1, 1});
  Case Cases[] = {
      {"maxpool_k2s2", true, poolParams({2, 2}, {2, 2})},
      {"maxpool_k3s2p1_ceil", true, With(K3, true, true, {}, {1, 1})},
      {"maxpool_d2", true,
       With(poolParams({3, 3}, {1, 1}, {1, 1}), false, true, {}, {2, 2})},
      {"maxpool_ceil_drop", true,
       With(poolParams({2, 2}, {2, 2}, {1, 1}), true, true, {}, {1, 1})},
      {"maxpool_rect", true,
       With(poolParams({2, 3}, {1, 2}, {1, 1}), false, true, {}, {1, 2})},
      {"avgpool_k3s2p1", false, K3},
      {"avgpool_nocount", false, With(K3, false, false, {}, {1, 1})},
      {"avgpool_ceil", false, With(K3, true, true, {}, {1, 1})},
      {"avgpool_ceil_nocount", false, With(K3, true, false, {}, {1, 1})},
      {"avgpool_div", false,
       With(poolParams({2, 2}, {1, 1}, {1, 1}), false, true, 3, {1, 1})},
      {"avgpool_rect", false, poolParams({3, 2}, {2, 1}, {1, 0})},
  };
  for (const Case &C : Cases) {
    INFO(C.Name);
    std::string N = C.Name;
    Tensor X = golden(N + ".x");
    requireClose(C.IsMax ? maxPool2d(X, C.P) : avgPool2d(X, C.P),
                 golden(N + ".y"));
  }
  requireClose(adaptiveAvgPool2d(golden("adaptive_7to3.x"), {3, 3}),
               golden("adaptive_7to3.y"));
  requireClose(adaptiveAvgPool2d(golden("adaptive_5to2.x"), {2, 2}),
               golden("adaptive_5to2.y"));
  requireClose(adaptiveAvgPool2d(golden("adaptive_rect.x"), {2, 3}),
               golden("adaptive_rect.y"));
}

TEST_CASE("broadcasting arithmetic matches PyTorch", "[kernels]") {
  requireClose(add(golden("add_bcast.a"), golden("add_bcast.b")),
               golden("add_bcast.y"));
  requireClose(add(golden("add_alpha.a"), golden("add_alpha.b"), 0.5),
               golden("add_alpha.y"));
  requireClose(mul(golden("mul_bcast.a"), golden("mul_bcast.b")),
               golden("mul_bcast.y"));
}

TEST_CASE("softmax and mean match PyTorch", "[kernels]") {
  requireClose(softmax(golden("softmax_d1.x"), 1), golden("softmax_d1.y"));
  requireClose(softmax(golden("softmax_dlast.x"), -1),
               golden("softmax_dlast.y"));
  Tensor X = golden("mean_hw_keep.x");
  requireClose(mean(X, {2, 3}, true), golden("mean_hw_keep.y"));
  requireClose(mean(golden("mean_d1.x"), {1}, false), golden("mean_d1.y"));
  requireClose(mean(golden("mean_neg.x"), {-1, 0}, false),
               golden("mean_neg.y"));
}

TEST_CASE("cat, permute and transpose match PyTorch", "[kernels]") {
  requireClose(
      cat({golden("cat_d1.a"), golden("cat_d1.b"), golden("cat_d1.c")}, 1),
      golden("cat_d1.y"));
  requireClose(cat({golden("cat_neg.a"), golden("cat_neg.d")}, -1),
               golden("cat_neg.y"));
  requireClose(permute(golden("permute.x"), {2, 0, 1}), golden("permute.y"));
  requireClose(transpose(golden("transpose.x"), 0, 2), golden("transpose.y"));
}
