//===- GradCheck.h - Finite-difference gradient checks for tests -*- C++
//-*-===//
//
// Shared by the gradient tests: an analytic vector-Jacobian product is right
// when it matches central differences of L(x) = sum(f(x) * r) for a fixed
// random cotangent r. Header-only; included by test files only.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_TEST_UNIT_GRADCHECK_H
#define QFX_TEST_UNIT_GRADCHECK_H

#include "qfx/Support/Tensor.h"

#include <cmath>
#include <functional>
#include <random>
#include <sstream>
#include <string>

namespace qfx {
namespace gradcheck {

/// An f32 tensor of shape \p S with values uniform in [Lo, Hi), fixed by
/// \p Seed.
inline Tensor randomTensor(llvm::ArrayRef<int64_t> S, uint64_t Seed,
                           float Lo = -1.0f, float Hi = 1.0f) {
  Tensor T(DType::F32, S);
  std::mt19937_64 Rng(Seed);
  std::uniform_real_distribution<float> U(Lo, Hi);
  float *D = T.data<float>();
  for (int64_t I = 0; I < T.numElements(); ++I)
    D[I] = U(Rng);
  return T;
}

/// sum(A * B) in double.
inline double dot(const Tensor &A, const Tensor &B) {
  double S = 0;
  for (int64_t I = 0; I < A.numElements(); ++I)
    S += double(A.data<float>()[I]) * double(B.data<float>()[I]);
  return S;
}

/// Compares \p Analytic (the gradient of L(x) = dot(F(x), R) at \p X) with
/// central differences of step \p H on up to \p MaxElems elements of X
/// (evenly strided). Returns "" on agreement, else a description of the
/// first element where |analytic - numeric| > Atol + Rtol * |numeric|.
inline std::string compareWithFiniteDifferences(
    const std::function<Tensor(const Tensor &)> &F, const Tensor &X,
    const Tensor &R, const Tensor &Analytic, double H = 1e-2,
    double Atol = 2e-3, double Rtol = 2e-2, int64_t MaxElems = 256) {
  if (Analytic.numElements() != X.numElements())
    return "analytic gradient has " + std::to_string(Analytic.numElements()) +
           " elements, input has " + std::to_string(X.numElements());
  int64_t N = X.numElements();
  int64_t Stride = std::max<int64_t>(1, N / MaxElems);
  for (int64_t I = 0; I < N; I += Stride) {
    Tensor Plus = X.clone(), Minus = X.clone();
    Plus.data<float>()[I] += static_cast<float>(H);
    Minus.data<float>()[I] -= static_cast<float>(H);
    // The perturbation actually applied, after rounding to f32.
    double Step =
        double(Plus.data<float>()[I]) - double(Minus.data<float>()[I]);
    double Numeric = (dot(F(Plus), R) - dot(F(Minus), R)) / Step;
    double A = Analytic.data<float>()[I];
    if (!(std::fabs(A - Numeric) <= Atol + Rtol * std::fabs(Numeric))) {
      std::ostringstream OS;
      OS << "element " << I << ": analytic " << A << ", numeric " << Numeric;
      return OS.str();
    }
  }
  return "";
}

} // namespace gradcheck
} // namespace qfx

#endif // QFX_TEST_UNIT_GRADCHECK_H
