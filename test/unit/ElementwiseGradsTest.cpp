//===- ElementwiseGradsTest.cpp - Activation, shape and loss gradients ----===//

#include "GradCheck.h"

#include "qfx/Runtime/Kernels.h"
#include "qfx/Support/Error.h"
#include "qfx/Train/GradKernels.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

using namespace qfx;
using namespace qfx::gradcheck;
using Catch::Contains;

namespace {

std::vector<float> values(const Tensor &T) {
  REQUIRE(T.dtype() == DType::F32);
  const float *P = T.data<float>();
  return std::vector<float>(P, P + T.numElements());
}

/// Moves every element of \p T at least \p Margin away from each kink, so
/// that central differences never straddle one.
Tensor avoidKinks(Tensor T, std::vector<float> Kinks, float Margin = 0.05f) {
  float *D = T.data<float>();
  for (int64_t I = 0; I < T.numElements(); ++I)
    for (float K : Kinks)
      if (std::fabs(D[I] - K) < Margin)
        D[I] = D[I] >= K ? K + 2 * Margin : K - 2 * Margin;
  return T;
}

/// Checks the vector-Jacobian product \p Backward (called with the
/// cotangent) of the unary \p Forward at \p X.
void checkUnary(const std::function<Tensor(const Tensor &)> &Forward,
                const std::function<Tensor(const Tensor &)> &Backward,
                const Tensor &X, uint64_t Seed = 99) {
  Tensor R = randomTensor(Forward(X).shape(), Seed);
  CHECK(compareWithFiniteDifferences(Forward, X, R, Backward(R)) == "");
}

} // namespace

//===----------------------------------------------------------------------===//
// Activations against finite differences
//===----------------------------------------------------------------------===//

TEST_CASE("grad: relu and leaky relu match finite differences") {
  Tensor X = avoidKinks(randomTensor({3, 4, 5}, 1), {0.0f});
  checkUnary([](const Tensor &T) { return ref::relu(T); },
             [&](const Tensor &G) { return grad::reluBackward(X, G); }, X);
  checkUnary(
      [](const Tensor &T) { return ref::leakyRelu(T, 0.1); },
      [&](const Tensor &G) { return grad::leakyReluBackward(X, 0.1, G); }, X);
}

TEST_CASE("grad: hardtanh and relu6 match finite differences") {
  Tensor X = avoidKinks(randomTensor({4, 6}, 2, -2.0f, 2.0f), {-0.5f, 1.0f});
  checkUnary(
      [](const Tensor &T) { return ref::hardtanh(T, -0.5, 1.0); },
      [&](const Tensor &G) { return grad::hardtanhBackward(X, -0.5, 1.0, G); },
      X);
  Tensor Y = avoidKinks(randomTensor({4, 6}, 3, -2.0f, 8.0f), {0.0f, 6.0f});
  checkUnary(
      [](const Tensor &T) { return ref::relu6(T); },
      [&](const Tensor &G) { return grad::hardtanhBackward(Y, 0.0, 6.0, G); },
      Y);
}

TEST_CASE("grad: hardswish and hardsigmoid match finite differences") {
  Tensor X = avoidKinks(randomTensor({5, 8}, 4, -5.0f, 5.0f), {-3.0f, 3.0f});
  checkUnary([](const Tensor &T) { return ref::hardswish(T); },
             [&](const Tensor &G) { return grad::hardswishBackward(X, G); }, X);
  checkUnary([](const Tensor &T) { return ref::hardsigmoid(T); },
             [&](const Tensor &G) { return grad::hardsigmoidBackward(X, G); },
             X);
}

TEST_CASE("grad: sigmoid and tanh match finite differences") {
  Tensor X = randomTensor({3, 7}, 5, -3.0f, 3.0f);
  Tensor S = ref::sigmoid(X), T = ref::tanh(X);
  checkUnary([](const Tensor &V) { return ref::sigmoid(V); },
             [&](const Tensor &G) { return grad::sigmoidBackward(S, G); }, X);
  checkUnary([](const Tensor &V) { return ref::tanh(V); },
             [&](const Tensor &G) { return grad::tanhBackward(T, G); }, X);
}

TEST_CASE("grad: silu matches finite differences") {
  Tensor X = randomTensor({4, 9}, 7, -6.0f, 6.0f);
  checkUnary([](const Tensor &V) { return ref::silu(V); },
             [&](const Tensor &G) { return grad::siluBackward(X, G); }, X);
}

TEST_CASE("grad: softmax matches finite differences along every dim") {
  Tensor X = randomTensor({2, 3, 4}, 6, -2.0f, 2.0f);
  for (int64_t Dim : {0, 1, 2, -1}) {
    INFO("dim " << Dim);
    Tensor Y = ref::softmax(X, Dim);
    checkUnary(
        [=](const Tensor &V) { return ref::softmax(V, Dim); },
        [&](const Tensor &G) { return grad::softmaxBackward(Y, Dim, G); }, X);
  }
}

//===----------------------------------------------------------------------===//
// Activations at their kinks (PyTorch 1.13's values)
//===----------------------------------------------------------------------===//

TEST_CASE("grad: activation gradients at the boundary points") {
  const float NaN = std::numeric_limits<float>::quiet_NaN();
  auto Ones = [](const Tensor &X) {
    return Tensor::fromFloats(X.shape(),
                              std::vector<float>(X.numElements(), 1.0f));
  };
  // threshold_backward: 0 at x == 0; NaN fails `x <= 0` and passes g.
  Tensor R = Tensor::fromFloats({4}, {-1.0f, 0.0f, 1.0f, NaN});
  CHECK(values(grad::reluBackward(R, Ones(R))) ==
        std::vector<float>{0, 0, 1, 1});
  // hardtanh_backward excludes both ends.
  Tensor H = Tensor::fromFloats({5}, {-1.5f, -1.0f, 0.0f, 1.0f, 1.5f});
  CHECK(values(grad::hardtanhBackward(H, -1.0, 1.0, Ones(H))) ==
        std::vector<float>{0, 0, 1, 0, 0});
  Tensor R6 = Tensor::fromFloats({4}, {0.0f, 3.0f, 6.0f, 7.0f});
  CHECK(values(grad::hardtanhBackward(R6, 0.0, 6.0, Ones(R6))) ==
        std::vector<float>{0, 1, 0, 0});
  // hardswish_backward: -3 and 3 take the middle piece x / 3 + 0.5.
  Tensor S = Tensor::fromFloats({5}, {-4.0f, -3.0f, 0.0f, 3.0f, 4.0f});
  CHECK(values(grad::hardswishBackward(S, Ones(S))) ==
        std::vector<float>{0.0f, -0.5f, 0.5f, 1.5f, 1.0f});
  // hardsigmoid_backward: open interval (-3, 3).
  Tensor G = Tensor::fromFloats({4}, {-3.0f, -2.0f, 2.0f, 3.0f});
  CHECK(values(grad::hardsigmoidBackward(G, Ones(G))) ==
        std::vector<float>{0.0f, 1.0f / 6.0f, 1.0f / 6.0f, 0.0f});
  // leaky_relu_backward: x > 0 takes g, x == 0 the slope.
  Tensor L = Tensor::fromFloats({3}, {-1.0f, 0.0f, 1.0f});
  CHECK(values(grad::leakyReluBackward(L, 0.25, Ones(L))) ==
        std::vector<float>{0.25f, 0.25f, 1.0f});
}

//===----------------------------------------------------------------------===//
// Shapes and arithmetic
//===----------------------------------------------------------------------===//

TEST_CASE("grad: sumToShape is the adjoint of broadcasting") {
  const Shape Big = {2, 3, 4};
  Tensor Zeros(DType::F32, Big);
  for (Shape To : {Shape{3, 1}, Shape{1, 4}, Shape{2, 1, 4}, Shape{4}, Shape{},
                   Shape{2, 3, 4}}) {
    INFO("to " << formatShape(To));
    Tensor X = randomTensor(To, 7);
    checkUnary([&](const Tensor &V) { return ref::add(Zeros, V); },
               [&](const Tensor &G) { return grad::sumToShape(G, To); }, X);
  }
  Tensor G = Tensor::fromFloats({2, 3}, {1, 2, 3, 4, 5, 6});
  CHECK(values(grad::sumToShape(G, {3})) == std::vector<float>{5, 7, 9});
  CHECK(values(grad::sumToShape(G, {2, 1})) == std::vector<float>{6, 15});
  CHECK(values(grad::sumToShape(G, {})) == std::vector<float>{21});
}

TEST_CASE("grad: add and mul with broadcasting match finite differences") {
  Tensor A = randomTensor({2, 3, 4}, 8), B = randomTensor({3, 1}, 9);
  for (double Alpha : {1.0, -2.5}) {
    INFO("alpha " << Alpha);
    Tensor R = randomTensor({2, 3, 4}, 10);
    auto Grads = grad::addBackward(A.shape(), B.shape(), Alpha, R);
    CHECK(compareWithFiniteDifferences(
              [&](const Tensor &V) { return ref::add(V, B, Alpha); }, A, R,
              Grads[0]) == "");
    CHECK(compareWithFiniteDifferences(
              [&](const Tensor &V) { return ref::add(A, V, Alpha); }, B, R,
              Grads[1]) == "");
  }
  // Broadcasting on both sides: [3,1] * [1,4] -> [3,4].
  Tensor C = randomTensor({3, 1}, 11), D = randomTensor({1, 4}, 12);
  for (const auto &Operands : {std::pair{A, B}, std::pair{C, D}}) {
    const Tensor &P = Operands.first, &Q = Operands.second;
    Tensor R = randomTensor(ref::mul(P, Q).shape(), 13);
    auto Grads = grad::mulBackward(P, Q, R);
    CHECK(compareWithFiniteDifferences(
              [&](const Tensor &V) { return ref::mul(V, Q); }, P, R,
              Grads[0]) == "");
    CHECK(compareWithFiniteDifferences(
              [&](const Tensor &V) { return ref::mul(P, V); }, Q, R,
              Grads[1]) == "");
  }
}

TEST_CASE("grad: cat splits the gradient along the dimension") {
  for (int64_t Dim : {0, 1, -1}) {
    INFO("dim " << Dim);
    int64_t D = Dim < 0 ? Dim + 3 : Dim;
    std::vector<Tensor> In;
    std::vector<Shape> Shapes;
    for (int64_t Extent : {2, 0, 3, 1}) {
      Shape S = {2, 3, 4};
      S[D] = Extent;
      In.push_back(randomTensor(S, 14 + Extent));
      Shapes.push_back(S);
    }
    Tensor R = randomTensor(ref::cat(In, Dim).shape(), 20);
    std::vector<Tensor> Grads = grad::catBackward(Shapes, Dim, R);
    REQUIRE(Grads.size() == In.size());
    for (size_t I = 0; I < In.size(); ++I) {
      INFO("input " << I);
      CHECK(Grads[I].shape() == llvm::ArrayRef<int64_t>(Shapes[I]));
      auto F = [&](const Tensor &V) {
        std::vector<Tensor> Args = In;
        Args[I] = V;
        return ref::cat(Args, Dim);
      };
      CHECK(compareWithFiniteDifferences(F, In[I], R, Grads[I]) == "");
    }
  }
}

TEST_CASE("grad: permute applies the inverse permutation") {
  Tensor X = randomTensor({2, 3, 4, 5}, 21);
  for (std::vector<int64_t> Dims :
       {std::vector<int64_t>{0, 2, 3, 1}, {3, 1, 0, 2}, {-1, 0, -3, 2}}) {
    Tensor R = randomTensor(ref::permute(X, Dims).shape(), 22);
    Tensor G = grad::permuteBackward(R, Dims);
    CHECK(G.shape() == X.shape());
    CHECK(compareWithFiniteDifferences(
              [&](const Tensor &V) { return ref::permute(V, Dims); }, X, R,
              G) == "");
  }
}

TEST_CASE("grad: mean spreads the gradient over the reduced elements") {
  Tensor X = randomTensor({2, 3, 4}, 23);
  for (std::vector<int64_t> Dims :
       {std::vector<int64_t>{1}, {0, 2}, {-1}, {}, {0, 1, 2}}) {
    for (bool Keep : {false, true}) {
      INFO("dims " << formatShape(Dims) << " keepdim " << Keep);
      checkUnary([&](const Tensor &V) { return ref::mean(V, Dims, Keep); },
                 [&](const Tensor &G) {
                   return grad::meanBackward(X.shape(), Dims, Keep, G);
                 },
                 X);
    }
  }
  Tensor G = Tensor::fromFloats({2}, {4, 8});
  CHECK(values(grad::meanBackward({2, 2}, {1}, false, G)) ==
        std::vector<float>{2, 2, 4, 4});
}

TEST_CASE("grad: mulElementwise matches finite differences") {
  Tensor A = randomTensor({3, 5}, 24), B = randomTensor({3, 5}, 25);
  checkUnary([&](const Tensor &V) { return grad::mulElementwise(V, B); },
             [&](const Tensor &G) { return grad::mulElementwise(G, B); }, A);
}

//===----------------------------------------------------------------------===//
// Dropout
//===----------------------------------------------------------------------===//

TEST_CASE("grad: dropout keeps 1 - p of the elements, scaled by 1/(1-p)") {
  const double P = 0.3;
  Tensor X = Tensor::fromFloats({100000}, std::vector<float>(100000, 1.0f));
  std::mt19937_64 Rng(42);
  grad::DropoutResult D = grad::dropoutTrain(X, P, Rng);
  const float Scale = 1.0f / static_cast<float>(1.0 - P);
  int64_t Kept = 0;
  bool OnlyTwoValues = true, OutIsXTimesMask = true;
  for (int64_t I = 0; I < X.numElements(); ++I) {
    float M = D.Mask.data<float>()[I];
    Kept += M != 0.0f;
    OnlyTwoValues &= M == 0.0f || M == Scale;
    OutIsXTimesMask &= D.Out.data<float>()[I] == M;
  }
  CHECK(OnlyTwoValues);
  CHECK(OutIsXTimesMask);
  // The standard deviation of the fraction is about 0.0015.
  CHECK(double(Kept) / X.numElements() == Approx(1.0 - P).margin(0.01));
}

TEST_CASE("grad: dropout masks are fixed by the seed") {
  Tensor X = randomTensor({64}, 26);
  std::mt19937_64 R1(7), R2(7), R3(8);
  grad::DropoutResult A = grad::dropoutTrain(X, 0.5, R1);
  grad::DropoutResult B = grad::dropoutTrain(X, 0.5, R2);
  grad::DropoutResult C = grad::dropoutTrain(X, 0.5, R3);
  CHECK(A.Mask.identical(B.Mask));
  CHECK(A.Out.identical(B.Out));
  CHECK_FALSE(A.Mask.identical(C.Mask));
  // The draw uses only the engine, whose output the standard fixes, so this
  // mask is the same with every standard library.
  std::mt19937_64 R4(1234);
  Tensor Ones = Tensor::fromFloats({16}, std::vector<float>(16, 1.0f));
  std::vector<float> M = values(grad::dropoutTrain(Ones, 0.5, R4).Mask);
  std::string Bits;
  for (float V : M)
    Bits += V != 0.0f ? '1' : '0';
  CHECK(Bits == "1011011101100101");
}

TEST_CASE("grad: dropout backward matches finite differences") {
  Tensor X = randomTensor({4, 6}, 27);
  std::mt19937_64 Rng(3);
  grad::DropoutResult D = grad::dropoutTrain(X, 0.25, Rng);
  // Reseeding gives the same mask, so the forward is a fixed function of X.
  auto F = [](const Tensor &V) {
    std::mt19937_64 Same(3);
    return grad::dropoutTrain(V, 0.25, Same).Out;
  };
  checkUnary(
      F, [&](const Tensor &G) { return grad::mulElementwise(G, D.Mask); }, X);
}

TEST_CASE("grad: dropout with p = 0 and p = 1") {
  Tensor X = randomTensor({10}, 28);
  std::mt19937_64 Rng(5);
  grad::DropoutResult Keep = grad::dropoutTrain(X, 0.0, Rng);
  CHECK(values(Keep.Mask) == std::vector<float>(10, 1.0f));
  CHECK(Keep.Out.identical(X));
  grad::DropoutResult Drop = grad::dropoutTrain(X, 1.0, Rng);
  CHECK(values(Drop.Mask) == std::vector<float>(10, 0.0f));
  CHECK(values(Drop.Out) == std::vector<float>(10, 0.0f));
}

//===----------------------------------------------------------------------===//
// Cross-entropy
//===----------------------------------------------------------------------===//

TEST_CASE("grad: cross entropy on a hand-computed example") {
  Tensor L = Tensor::fromFloats({1, 3}, {1, 2, 3});
  llvm::Expected<grad::CrossEntropyResult> R = grad::crossEntropy(L, {2});
  REQUIRE(bool(R));
  double Z = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  CHECK(R->Loss == Approx(std::log(Z) - 3.0).epsilon(1e-12));
  CHECK(R->Correct == 1);
  std::vector<float> G = values(R->GradLogits);
  CHECK(G[0] == Approx(std::exp(1.0) / Z));
  CHECK(G[1] == Approx(std::exp(2.0) / Z));
  CHECK(G[2] == Approx(std::exp(3.0) / Z - 1.0));

  // Mean over rows; ties go to the first maximum (row 1 predicts 0).
  Tensor T = Tensor::fromFloats({2, 3}, {0, 0, 5, 1, 1, 0});
  llvm::Expected<grad::CrossEntropyResult> S = grad::crossEntropy(T, {2, 1});
  REQUIRE(bool(S));
  CHECK(S->Correct == 1);
  double Row0 = std::log(2.0 + std::exp(5.0)) - 5.0;
  double Row1 = std::log(2.0 * std::exp(1.0) + 1.0) - 1.0;
  CHECK(S->Loss == Approx((Row0 + Row1) / 2).epsilon(1e-12));
}

TEST_CASE("grad: cross entropy is stable for large logits") {
  Tensor L = Tensor::fromFloats({1, 2}, {1000.0f, 0.0f});
  llvm::Expected<grad::CrossEntropyResult> R = grad::crossEntropy(L, {1});
  REQUIRE(bool(R));
  CHECK(R->Loss == Approx(1000.0));
  CHECK(values(R->GradLogits) == std::vector<float>{1.0f, -1.0f});
}

TEST_CASE("grad: cross entropy gradient matches finite differences") {
  Tensor L = randomTensor({4, 5}, 29, -2.0f, 2.0f);
  std::vector<int64_t> Labels = {3, 0, 4, 1};
  llvm::Expected<grad::CrossEntropyResult> R = grad::crossEntropy(L, Labels);
  REQUIRE(bool(R));
  auto F = [&](const Tensor &V) {
    llvm::Expected<grad::CrossEntropyResult> E = grad::crossEntropy(V, Labels);
    REQUIRE(bool(E));
    return Tensor::fromFloats({1}, {static_cast<float>(E->Loss)});
  };
  Tensor One = Tensor::fromFloats({1}, {1.0f});
  CHECK(compareWithFiniteDifferences(F, L, One, R->GradLogits) == "");
}

TEST_CASE("grad: cross entropy rejects bad operands") {
  auto Message = [](const Tensor &L, std::vector<int64_t> Labels) {
    llvm::Expected<grad::CrossEntropyResult> R = grad::crossEntropy(L, Labels);
    REQUIRE_FALSE(bool(R));
    return errorToString(R.takeError());
  };
  Tensor L = randomTensor({3, 4}, 30);
  CHECK(Message(L, {0, 4, 1}) ==
        "cross_entropy: label 4 of row 1 is outside [0, 4)");
  CHECK(Message(L, {0, 1, -1}) ==
        "cross_entropy: label -1 of row 2 is outside [0, 4)");
  CHECK(Message(L, {0, 1}) == "cross_entropy: 2 labels for a batch of 3");
  CHECK_THAT(Message(randomTensor({3, 4, 1}, 31), {0, 1, 2}),
             Contains("must have rank 2") && Contains("[3,4,1]"));
  CHECK_THAT(Message(randomTensor({12}, 32), {0}),
             Contains("must have rank 2"));
}
