//===- LoweringTestUtil.h - Graph building and comparison for lowering tests
//===//
//
// Shared by the lowering tests: random data, a builder that types every node
// as the op table infers it, quantized and float conv / linear modules, and
// comparisons of compiled runs with the reference interpreter.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_TEST_UNIT_LOWERINGTESTUTIL_H
#define QFX_TEST_UNIT_LOWERINGTESTUTIL_H

#include "qfx/Backend/OneDNN/CpuIsa.h"
#include "qfx/Codegen/Lowering.h"
#include "qfx/IR/GraphModule.h"
#include "qfx/Models/Zoo.h"
#include "qfx/Runtime/Interpreter.h"
#include "qfx/Runtime/ModuleRunner.h"
#include "qfx/Runtime/Op.h"
#include "qfx/Support/Error.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <iostream>
#include <random>
#include <string>
#include <vector>

namespace qfx {
namespace lowering_test {

//===----------------------------------------------------------------------===//
// Host kernels
//===----------------------------------------------------------------------===//

/// Caps the host kernels at avx2 (their portable loops) for its lifetime
/// when \p Portable, and lifts the cap again at the end. Host-kernel tests
/// open one with GENERATE(false, true), so every machine with AVX-512 also
/// checks the loops of machines without it.
class HostIsaScope {
public:
  explicit HostIsaScope(bool Portable) : Portable(Portable) {
    if (Portable)
      REQUIRE(!llvm::errorToBool(setMaxHostCpuIsa("avx2")));
  }
  ~HostIsaScope() {
    if (Portable)
      llvm::consumeError(setMaxHostCpuIsa("all"));
  }
  HostIsaScope(const HostIsaScope &) = delete;
  HostIsaScope &operator=(const HostIsaScope &) = delete;

private:
  bool Portable;
};

//===----------------------------------------------------------------------===//
// Data
//===----------------------------------------------------------------------===//

/// A small input shape for zoo model \p E: batch 2, images at most 32x32
/// (global average pooling makes any size work).
inline Shape smallZooInput(const models::ZooEntry &E) {
  Shape S(E.InputShape.begin(), E.InputShape.end());
  S[0] = 2;
  if (S.size() == 4 && S[2] > 32)
    S[2] = S[3] = 32;
  return S;
}

/// Uniform floats in [Lo, Hi) from raw mt19937 output (the same with every
/// standard library).
inline float uniform(std::mt19937 &Gen, float Lo, float Hi) {
  return Lo + (Hi - Lo) * float(Gen() >> 8) * (1.0f / 16777216.0f);
}

inline Tensor randomF32(llvm::ArrayRef<int64_t> S, uint32_t Seed,
                        float Lo = -1.0f, float Hi = 1.0f) {
  std::mt19937 Gen(Seed);
  Tensor T(DType::F32, S);
  for (int64_t I = 0; I < T.numElements(); ++I)
    T.data<float>()[I] = uniform(Gen, Lo, Hi);
  return T;
}

/// An s8 weight with symmetric per-channel (axis 0) or per-tensor qparams.
inline Tensor randomWeight(llvm::ArrayRef<int64_t> S, bool PerChannel,
                           uint32_t Seed) {
  std::mt19937 Gen(Seed);
  Tensor W(DType::S8, S);
  for (int64_t I = 0; I < W.numElements(); ++I)
    W.data<int8_t>()[I] = static_cast<int8_t>(int(Gen() % 255) - 127);
  if (!PerChannel) {
    W.setQuant(QuantParams::perTensor(0.004, 0));
    return W;
  }
  std::vector<double> Scales;
  for (int64_t C = 0; C < S[0]; ++C)
    Scales.push_back(0.002 + 0.004 * uniform(Gen, 0.0f, 1.0f));
  W.setQuant(QuantParams::perChannel(Scales, std::vector<int64_t>(S[0], 0), 0));
  return W;
}

//===----------------------------------------------------------------------===//
// Graph building
//===----------------------------------------------------------------------===//

/// A graph under construction; every node gets the type the op table infers
/// (the same inference the reference interpreter checks).
struct Builder {
  std::unique_ptr<GraphModule> GM = std::make_unique<GraphModule>();
  uint32_t Seed = 1;

  Graph &G() { return GM->graph(); }

  Operand declared(const Argument &A) {
    if (A.isNode()) {
      const TensorType &T = *A.getNode()->type();
      Tensor D = Tensor::declared(T.Dtype, T.Dims);
      D.setQuant(T.Quant);
      return Operand(D);
    }
    if (A.isList() && !A.getList().empty() && A.getList()[0].isNode()) {
      std::vector<Operand> L;
      for (const Argument &E : A.getList())
        L.push_back(declared(E));
      return Operand::list(L);
    }
    return Operand(A);
  }

  Node *typed(Node *N) {
    std::vector<Operand> Ops;
    for (const Argument &A : N->args())
      Ops.push_back(declared(A));
    std::vector<std::pair<std::string, Operand>> KW;
    for (const auto &KV : N->kwargs())
      KW.emplace_back(KV.first, declared(KV.second));
    auto T = N->op() == OpCode::CallModule ? inferModule(*GM, N->target(), Ops)
                                           : inferOp(N->target(), Ops, KW);
    if (!T)
      FAIL("type inference of " << N->name().str() << ": "
                                << errorToString(T.takeError()));
    N->setType(*T);
    return N;
  }

  Node *input(llvm::StringRef Name, llvm::ArrayRef<int64_t> S) {
    return G().placeholder(
        Name, TensorType{DType::F32, Shape(S.begin(), S.end()), {}});
  }
  Node *quantize(Node *X, double Scale, int64_t Zp, bool Signed = false) {
    return typed(
        G().callFunction("quantize_per_tensor",
                         {X, Argument::real(Scale), Argument::integer(Zp),
                          Argument::string(Signed ? "qint8" : "quint8")}));
  }
  Node *dequantize(Node *Q) { return typed(G().callMethod("dequantize", {Q})); }
  Node *fn(llvm::StringRef Op, std::vector<Argument> Args, Kwargs KW = {}) {
    return typed(G().callFunction(Op, std::move(Args), std::move(KW)));
  }
  void output(Node *N) { G().output(N); }
  void output(std::vector<Argument> Ns) { G().output(Argument::list(Ns)); }
};

/// Hyper-parameters of one conv.
struct ConvSpec {
  int64_t In = 8, Out = 16, K = 3, Stride = 1, Pad = 1, Dil = 1, Groups = 1;
};

inline void setConvAttrs(ModuleInfo &M, const ConvSpec &S) {
  M.setAttr("in_channels", Argument::integer(S.In));
  M.setAttr("out_channels", Argument::integer(S.Out));
  M.setAttr("kernel_size", Argument::ints({S.K, S.K}));
  M.setAttr("stride", Argument::ints({S.Stride, S.Stride}));
  M.setAttr("padding", Argument::ints({S.Pad, S.Pad}));
  M.setAttr("dilation", Argument::ints({S.Dil, S.Dil}));
  M.setAttr("groups", Argument::integer(S.Groups));
}

/// A quantized conv module of \p Kind (QuantizedConv2d ...) applied to \p X
/// (and \p Other for the ConvAdd kinds).
inline Node *qconv(Builder &B, llvm::StringRef Name, llvm::StringRef Kind,
                   Node *X, Node *Other, const ConvSpec &S, double OutScale,
                   int64_t OutZp, bool PerChannel = true, bool Bias = true) {
  ModuleInfo &M = B.GM->addModule(Name, Kind.str());
  setConvAttrs(M, S);
  M.setAttr("scale", Argument::real(OutScale));
  M.setAttr("zero_point", Argument::integer(OutZp));
  M.setTensor("weight", randomWeight({S.Out, S.In / S.Groups, S.K, S.K},
                                     PerChannel, B.Seed++));
  if (Bias)
    M.setTensor("bias", randomF32({S.Out}, B.Seed++, -0.5f, 0.5f));
  std::vector<Argument> Args = {X};
  if (Other)
    Args.push_back(Other);
  return B.typed(B.G().callModule(Name, Args));
}

inline Node *qlinear(Builder &B, llvm::StringRef Name, llvm::StringRef Kind,
                     Node *X, int64_t In, int64_t Out, double OutScale,
                     int64_t OutZp, bool PerChannel = true) {
  ModuleInfo &M = B.GM->addModule(Name, Kind.str());
  M.setAttr("in_features", Argument::integer(In));
  M.setAttr("out_features", Argument::integer(Out));
  M.setAttr("scale", Argument::real(OutScale));
  M.setAttr("zero_point", Argument::integer(OutZp));
  M.setTensor("weight", randomWeight({Out, In}, PerChannel, B.Seed++));
  M.setTensor("bias", randomF32({Out}, B.Seed++, -0.5f, 0.5f));
  return B.typed(B.G().callModule(Name, {X}));
}

/// A float Conv2d, or a fused float kind (ConvReLU2d ...) around one.
inline Node *fconv(Builder &B, llvm::StringRef Name, llvm::StringRef Kind,
                   Node *X, Node *Other, const ConvSpec &S) {
  B.GM->addModule(Name, Kind.str());
  std::string ConvPath = Name.str();
  if (Kind != "Conv2d") {
    ConvPath += ".0";
    B.GM->addModule(ConvPath, "Conv2d");
    if (Kind.endswith("ReLU2d"))
      B.GM->addModule(Name.str() + ".1", "ReLU");
  }
  ModuleInfo &C = *B.GM->lookupModule(ConvPath);
  setConvAttrs(C, S);
  float Bound = 1.0f / std::sqrt(float(S.In / S.Groups * S.K * S.K));
  C.setTensor("weight", randomF32({S.Out, S.In / S.Groups, S.K, S.K}, B.Seed++,
                                  -Bound, Bound));
  C.setTensor("bias", randomF32({S.Out}, B.Seed++, -0.1f, 0.1f));
  std::vector<Argument> Args = {X};
  if (Other)
    Args.push_back(Other);
  return B.typed(B.G().callModule(Name, Args));
}

inline Node *flinear(Builder &B, llvm::StringRef Name, Node *X, int64_t In,
                     int64_t Out) {
  ModuleInfo &M = B.GM->addModule(Name, "Linear");
  M.setAttr("in_features", Argument::integer(In));
  M.setAttr("out_features", Argument::integer(Out));
  float Bound = 1.0f / std::sqrt(float(In));
  M.setTensor("weight", randomF32({Out, In}, B.Seed++, -Bound, Bound));
  M.setTensor("bias", randomF32({Out}, B.Seed++, -0.1f, 0.1f));
  return B.typed(B.G().callModule(Name, {X}));
}

//===----------------------------------------------------------------------===//
// Running and comparing
//===----------------------------------------------------------------------===//

inline std::vector<Tensor> interpretAll(const GraphModule &GM,
                                        const std::vector<Tensor> &In) {
  auto R = Interpreter(GM).run(In);
  if (!R)
    FAIL("interpreter: " << errorToString(R.takeError()));
  return std::move(*R);
}

inline std::unique_ptr<CompiledModule> compileOrFail(const GraphModule &GM,
                                                     CompileOptions Opts = {}) {
  auto C = compile(GM, Opts);
  if (!C)
    FAIL("compile: " << errorToString(C.takeError()));
  return std::move(*C);
}

inline std::vector<Tensor> runOrFail(CompiledModule &C,
                                     const std::vector<Tensor> &In) {
  auto R = C.run(In);
  if (!R)
    FAIL("run: " << errorToString(R.takeError()));
  return std::move(*R);
}

/// The largest difference between two tensors in units of \p Lsb (integer
/// tensors compare their integers; \p Lsb is then 1).
inline double maxLsb(const Tensor &Got, const Tensor &Want, double Lsb) {
  REQUIRE(Got.dtype() == Want.dtype());
  REQUIRE(Got.shape() == Want.shape());
  double M = 0.0;
  for (int64_t I = 0; I < Want.numElements(); ++I)
    M = std::max(M, std::fabs(Got.getAsDouble(I) - Want.getAsDouble(I)) / Lsb);
  return M;
}

/// Whether \p Got is within 1e-5 relative (plus 1e-5 absolute near zero).
inline bool closeF32(const Tensor &Got, const Tensor &Want) {
  if (Got.shape() != Want.shape() || Got.dtype() != DType::F32)
    return false;
  for (int64_t I = 0; I < Want.numElements(); ++I) {
    float G = Got.data<float>()[I], W = Want.data<float>()[I];
    if (!(std::fabs(G - W) <= 1e-5f * std::fabs(W) + 1e-5f)) {
      UNSCOPED_INFO("element " << I << ": " << G << " vs " << W);
      return false;
    }
  }
  return true;
}

/// Reports a pattern's largest difference when QFX_LOWERING_VERBOSE is set.
inline void report(const std::string &Pattern, double Lsb) {
  if (std::getenv("QFX_LOWERING_VERBOSE"))
    std::cout << "lowering: " << Pattern << ": max " << Lsb << " LSB\n";
}

inline const StepInfo *findStep(const CompiledModule &C, llvm::StringRef Kind,
                                llvm::StringRef NamePart) {
  static std::vector<StepInfo> Steps;
  Steps = C.steps();
  for (const StepInfo &S : Steps)
    if (S.Kind == Kind && llvm::StringRef(S.Name).contains(NamePart))
      return &S;
  return nullptr;
}

inline size_t countKind(const CompiledModule &C, llvm::StringRef Kind) {
  size_t N = 0;
  for (const StepInfo &S : C.steps())
    N += S.Kind == Kind;
  return N;
}

/// Restores the float interpreter's kernel mode on scope exit.
struct ReferenceKernels {
  ReferenceKernels() { setKernelMode(KernelMode::Reference); }
  ~ReferenceKernels() { setKernelMode(KernelMode::OneDNN); }
};

} // namespace lowering_test
} // namespace qfx

#endif // QFX_TEST_UNIT_LOWERINGTESTUTIL_H
