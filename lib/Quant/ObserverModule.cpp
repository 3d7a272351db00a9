//===- ObserverModule.cpp - Observer and FakeQuantize modules -------------===//

#include "qfx/Quant/ObserverModule.h"

#include "qfx/IR/GraphModule.h"
#include "qfx/IR/Printer.h"
#include "qfx/Quant/Quantize.h"
#include "qfx/Support/Error.h"

#include <cmath>

using namespace qfx;

bool qfx::isFakeQuantizeModule(const ModuleInfo &M) {
  return M.kind() == FakeQuantizeKind;
}

bool qfx::isObserverModule(const ModuleInfo &M) {
  return isFakeQuantizeModule(M) || parseObserverKind(M.kind()).has_value();
}

void qfx::initObserverModule(ModuleInfo &M, const ObserverSpec &Spec) {
  Observer::create(Spec)->toModule(M);
}

/// A one-element tensor.
static Tensor scalarTensor(DType T, double V) {
  Tensor R(T, {1});
  R.setFromDouble(0, V);
  return R;
}

void qfx::initFakeQuantizeModule(ModuleInfo &M, const ObserverSpec &Spec) {
  bool Fixed = Spec.Kind == ObserverKind::FixedQParams;
  M.setTensor("fake_quant_enabled", scalarTensor(DType::U8, 1), true);
  M.setTensor("observer_enabled", scalarTensor(DType::U8, 1), true);
  M.setTensor("scale", scalarTensor(DType::F32, Fixed ? Spec.FixedScale : 1.0),
              true);
  M.setTensor("zero_point",
              scalarTensor(DType::S32, Fixed ? Spec.FixedZeroPoint : 0), true);
  // A spec with FakeQuant set writes kind FakeQuantize and the `observer`
  // attribute.
  ObserverSpec FQ = Spec;
  FQ.FakeQuant = true;
  initObserverModule(M, FQ);
}

llvm::StringRef qfx::observerClassName(const ModuleInfo &M) {
  if (isFakeQuantizeModule(M))
    if (const Argument *A = M.attr("observer"))
      if (A->isString())
        return A->getString();
  return M.kind();
}

std::string qfx::describeObserverModule(const ModuleInfo &M) {
  if (isFakeQuantizeModule(M))
    return (M.kind() + "(" + observerClassName(M) + ")").str();
  return M.kind().str();
}

ModuleInfo *qfx::weightHolder(ModuleInfo &M) {
  if (M.tensor("weight"))
    return &M;
  if (ModuleInfo *C = M.child("0"))
    if (C->tensor("weight"))
      return C;
  return nullptr;
}

// ObserverSpec reads and writes FakeQuantize modules too, and an observer's
// state ignores buffers it does not own, so both kinds load alike.
llvm::Expected<std::unique_ptr<Observer>>
qfx::loadObserver(const ModuleInfo &M) {
  return Observer::fromModule(M);
}

void qfx::storeObserver(const Observer &O, ModuleInfo &M) { O.toModule(M); }

/// A FakeQuantize switch: a one-element buffer, on when non-zero.
static llvm::Expected<bool>
readSwitch(const ModuleInfo &M, llvm::StringRef Name, llvm::StringRef Path) {
  const Tensor *T = M.tensor(Name);
  if (!T || !T->hasData() || T->numElements() != 1)
    return makeError("FakeQuantize '" + Path + "': buffer '" + Name +
                     "' must hold one value");
  return T->getAsDouble(0) != 0.0;
}

/// Stores freshly computed qparams in the scale / zero_point buffers (f32 /
/// s32 as PyTorch's, resized for per-channel observers).
static void storeQParams(ModuleInfo &M, const QuantParams &QP) {
  std::vector<double> Scales =
      QP.isPerChannel() ? QP.Scales : std::vector<double>{QP.Scale};
  std::vector<int64_t> Zps =
      QP.isPerChannel() ? QP.ZeroPoints : std::vector<int64_t>{QP.ZeroPoint};
  int64_t N = static_cast<int64_t>(Scales.size());
  Tensor S(DType::F32, {N}), Z(DType::S32, {N});
  for (int64_t I = 0; I < N; ++I) {
    S.setFromDouble(I, Scales[I]);
    Z.setFromDouble(I, static_cast<double>(Zps[I]));
  }
  M.setTensor("scale", std::move(S), true);
  M.setTensor("zero_point", std::move(Z), true);
}

/// Zero point \p I of a FakeQuantize module's buffer \p Z: an integer that
/// fits int32 (a loaded file may hold anything).
static llvm::Expected<int64_t> zeroPointAt(const Tensor &Z, int64_t I,
                                           llvm::StringRef Path) {
  double V = Z.getAsDouble(I);
  if (!(std::fabs(V) < 0x1p31) || V != std::trunc(V))
    return makeError("FakeQuantize '" + Path + "': zero_point " +
                     formatFloat(V) + " is not an int32");
  return static_cast<int64_t>(V);
}

/// Fake-quantizes \p X with the module's current scale / zero_point; with
/// \p Mask, also stores the straight-through estimator's mask there.
static llvm::Expected<Tensor>
fakeQuantize(const ModuleInfo &M, const ObserverSpec &Spec,
             llvm::StringRef Path, const Tensor &X, Tensor *Mask = nullptr) {
  const Tensor *S = M.tensor("scale");
  const Tensor *Z = M.tensor("zero_point");
  if (!S || !Z || !S->hasData() || !Z->hasData() ||
      S->numElements() != Z->numElements() || S->numElements() == 0)
    return makeError("FakeQuantize '" + Path +
                     "': scale and zero_point must be non-empty and agree");
  bool PerChannel = Spec.Scheme == QScheme::PerChannelAffine ||
                    Spec.Scheme == QScheme::PerChannelSymmetric;
  if (!PerChannel) {
    double Scale = S->getAsDouble(0);
    auto Zp = zeroPointAt(*Z, 0, Path);
    if (!Zp)
      return Zp.takeError();
    return fakeQuantizePerTensor(X, Scale, *Zp, Spec.QuantMin, Spec.QuantMax,
                                 Mask);
  }
  int64_t Axis = Spec.ChAxis < 0 ? Spec.ChAxis + X.rank() : Spec.ChAxis;
  if (Axis < 0 || Axis >= X.rank() || X.dim(Axis) != S->numElements())
    return makeError(
        "FakeQuantize '" + Path + "': " + llvm::Twine(S->numElements()) +
        " per-channel scales do not fit a tensor of shape " +
        formatShape(X.shape()) + " along axis " + llvm::Twine(Spec.ChAxis));
  std::vector<double> Scales;
  std::vector<int64_t> Zps;
  for (int64_t I = 0; I < S->numElements(); ++I) {
    Scales.push_back(S->getAsDouble(I));
    auto Zp = zeroPointAt(*Z, I, Path);
    if (!Zp)
      return Zp.takeError();
    Zps.push_back(*Zp);
  }
  return fakeQuantizePerChannel(X, Scales, Zps, Axis, Spec.QuantMin,
                                Spec.QuantMax, Mask);
}

llvm::Expected<Tensor>
qfx::runObserverModule(ModuleInfo &M, llvm::StringRef Path, const Tensor &X) {
  return runObserverModule(M, Path, X, nullptr);
}

llvm::Expected<Tensor> qfx::runObserverModule(ModuleInfo &M,
                                              llvm::StringRef Path,
                                              const Tensor &X, Tensor *Mask) {
  auto Fail = [&](llvm::Error E) {
    return prefixError(std::move(E), ("observer '" + Path + "'").str());
  };
  if (X.dtype() != DType::F32)
    return makeError("observer '" + Path + "' expects an f32 tensor, got " +
                     dtypeName(X.dtype()));
  auto O = loadObserver(M);
  if (!O)
    return Fail(O.takeError());
  // PyTorch's observers raise on some tensors (NaN for a histogram, a
  // change of channel count); so does calibration, keeping the state.
  auto Observe = [&]() -> llvm::Error {
    (*O)->observe(X);
    if (!(*O)->problem().empty())
      return Fail(makeError((*O)->problem()));
    storeObserver(**O, M);
    return llvm::Error::success();
  };
  if (!isFakeQuantizeModule(M)) {
    if (llvm::Error E = Observe())
      return E;
    return X;
  }
  auto ObserverOn = readSwitch(M, "observer_enabled", Path);
  if (!ObserverOn)
    return ObserverOn.takeError();
  auto FakeQuantOn = readSwitch(M, "fake_quant_enabled", Path);
  if (!FakeQuantOn)
    return FakeQuantOn.takeError();
  if (*ObserverOn) {
    if (llvm::Error E = Observe())
      return E;
    auto QP = (*O)->calculateQParams();
    if (!QP)
      return Fail(QP.takeError());
    storeQParams(M, *QP);
  }
  if (!*FakeQuantOn)
    return X;
  return fakeQuantize(M, (*O)->spec(), Path, X, Mask);
}

/// Sets buffer \p Name of every FakeQuantize module under \p M.
static void setSwitches(ModuleInfo &M, llvm::StringRef Name, bool On) {
  if (isFakeQuantizeModule(M))
    M.setTensor(Name, scalarTensor(DType::U8, On ? 1 : 0), /*IsBuffer=*/true);
  for (const auto &C : M.children())
    setSwitches(*C.second, Name, On);
}

void qfx::setObserverEnabled(GraphModule &GM, bool On) {
  setSwitches(GM.root(), "observer_enabled", On);
}

void qfx::setFakeQuantEnabled(GraphModule &GM, bool On) {
  setSwitches(GM.root(), "fake_quant_enabled", On);
}
