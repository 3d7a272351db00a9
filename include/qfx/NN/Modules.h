//===- Modules.h - Built-in modules (torch.nn equivalents) ------*- C++ -*-===//
//
// The standard leaf modules, with torch.nn's constructor arguments, defaults
// and parameter names. Their forward() runs the op the module kind stands
// for (Runtime/Op.h's module table), the same path the interpreter takes
// for their call_module nodes.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_NN_MODULES_H
#define QFX_NN_MODULES_H

#include "qfx/NN/Module.h"

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace qfx {
namespace nn {

/// Base of built-in modules: forward() applies the module kind's op to the
/// input with this module's tensors and attributes.
class StandardModule : public Module {
public:
  using Module::Module;
  bool isStandardLeaf() const override { return true; }
  Value forward(Value X) override;
};

/// Conv2d(in, out, kernel) with builder-style options, as libtorch's
/// Conv2dOptions.
struct Conv2dOptions {
  Conv2dOptions(int64_t In, int64_t Out, std::array<int64_t, 2> Kernel)
      : In(In), Out(Out), Kernel(Kernel) {}
  Conv2dOptions(int64_t In, int64_t Out, int64_t Kernel)
      : Conv2dOptions(In, Out, {Kernel, Kernel}) {}
  Conv2dOptions &stride(int64_t S) {
    Stride = {S, S};
    return *this;
  }
  Conv2dOptions &padding(int64_t P) {
    Padding = {P, P};
    return *this;
  }
  Conv2dOptions &dilation(int64_t D) {
    Dilation = {D, D};
    return *this;
  }
  Conv2dOptions &groups(int64_t G) {
    Groups = G;
    return *this;
  }
  Conv2dOptions &bias(bool B) {
    Bias = B;
    return *this;
  }

  int64_t In, Out;
  std::array<int64_t, 2> Kernel;
  std::array<int64_t, 2> Stride{1, 1}, Padding{0, 0}, Dilation{1, 1};
  int64_t Groups = 1;
  bool Bias = true;
};

class Conv2d : public StandardModule {
public:
  explicit Conv2d(const Conv2dOptions &O);
  Conv2d(int64_t In, int64_t Out, int64_t Kernel)
      : Conv2d(Conv2dOptions(In, Out, Kernel)) {}
  Tensor weight, bias; ///< bias has no data when created with bias(false)
};

class Linear : public StandardModule {
public:
  Linear(int64_t In, int64_t Out, bool Bias = true);
  Tensor weight, bias;
};

class BatchNorm2d : public StandardModule {
public:
  explicit BatchNorm2d(int64_t NumFeatures, double Eps = 1e-5,
                       double Momentum = 0.1);
  Tensor weight, bias, running_mean, running_var, num_batches_tracked;
};

//===--- Conv family ---===//

/// Conv1d(in, out, kernel) with builder-style options, as libtorch's
/// Conv1dOptions; the weight is [out, in / groups, kernel].
struct Conv1dOptions {
  Conv1dOptions(int64_t In, int64_t Out, int64_t Kernel)
      : In(In), Out(Out), Kernel(Kernel) {}
  Conv1dOptions &stride(int64_t S) {
    Stride = S;
    return *this;
  }
  Conv1dOptions &padding(int64_t P) {
    Padding = P;
    return *this;
  }
  Conv1dOptions &dilation(int64_t D) {
    Dilation = D;
    return *this;
  }
  Conv1dOptions &groups(int64_t G) {
    Groups = G;
    return *this;
  }
  Conv1dOptions &bias(bool B) {
    Bias = B;
    return *this;
  }

  int64_t In, Out, Kernel;
  int64_t Stride = 1, Padding = 0, Dilation = 1, Groups = 1;
  bool Bias = true;
};

class Conv1d : public StandardModule {
public:
  explicit Conv1d(const Conv1dOptions &O);
  Conv1d(int64_t In, int64_t Out, int64_t Kernel)
      : Conv1d(Conv1dOptions(In, Out, Kernel)) {}
  Tensor weight, bias; ///< bias has no data when created with bias(false)
};

/// ConvTranspose2d(in, out, kernel) with builder-style options, as
/// libtorch's ConvTranspose2dOptions; the weight is [in, out / groups, kH,
/// kW] as PyTorch's.
struct ConvTranspose2dOptions {
  ConvTranspose2dOptions(int64_t In, int64_t Out, int64_t Kernel)
      : In(In), Out(Out), Kernel{Kernel, Kernel} {}
  ConvTranspose2dOptions &stride(int64_t S) {
    Stride = {S, S};
    return *this;
  }
  ConvTranspose2dOptions &padding(int64_t P) {
    Padding = {P, P};
    return *this;
  }
  ConvTranspose2dOptions &output_padding(int64_t P) {
    OutputPadding = {P, P};
    return *this;
  }
  ConvTranspose2dOptions &dilation(int64_t D) {
    Dilation = {D, D};
    return *this;
  }
  ConvTranspose2dOptions &groups(int64_t G) {
    Groups = G;
    return *this;
  }
  ConvTranspose2dOptions &bias(bool B) {
    Bias = B;
    return *this;
  }

  int64_t In, Out;
  std::array<int64_t, 2> Kernel;
  std::array<int64_t, 2> Stride{1, 1}, Padding{0, 0}, OutputPadding{0, 0},
      Dilation{1, 1};
  int64_t Groups = 1;
  bool Bias = true;
};

class ConvTranspose2d : public StandardModule {
public:
  explicit ConvTranspose2d(const ConvTranspose2dOptions &O);
  Tensor weight, bias; ///< bias has no data when created with bias(false)
};

/// BatchNorm1d over [N, C] or [N, C, L] input (eval: running statistics).
class BatchNorm1d : public StandardModule {
public:
  explicit BatchNorm1d(int64_t NumFeatures, double Eps = 1e-5,
                       double Momentum = 0.1);
  /// Checks the rank (2 or 3, as PyTorch's _check_input_dim) first.
  Value forward(Value X) override;
  Tensor weight, bias, running_mean, running_var, num_batches_tracked;
};

class ReLU : public StandardModule {
public:
  ReLU();
};
class ReLU6 : public StandardModule {
public:
  ReLU6();
};
class Hardtanh : public StandardModule {
public:
  Hardtanh(double MinVal = -1.0, double MaxVal = 1.0);
};
class Hardswish : public StandardModule {
public:
  Hardswish();
};
class Hardsigmoid : public StandardModule {
public:
  Hardsigmoid();
};
class Sigmoid : public StandardModule {
public:
  Sigmoid();
};
class Tanh : public StandardModule {
public:
  Tanh();
};
// MobileNetV3 / EfficientNet family.
/// x * sigmoid(x) (torch.nn.SiLU).
class SiLU : public StandardModule {
public:
  SiLU();
};
class LeakyReLU : public StandardModule {
public:
  explicit LeakyReLU(double NegativeSlope = 0.01);
};
class MaxPool2d : public StandardModule {
public:
  /// Stride 0 means "same as the kernel", PyTorch's default.
  MaxPool2d(int64_t Kernel, int64_t Stride = 0, int64_t Padding = 0,
            int64_t Dilation = 1, bool CeilMode = false);
};
class AvgPool2d : public StandardModule {
public:
  AvgPool2d(int64_t Kernel, int64_t Stride = 0, int64_t Padding = 0,
            bool CeilMode = false, bool CountIncludePad = true,
            std::optional<int64_t> DivisorOverride = std::nullopt);
};
class AdaptiveAvgPool2d : public StandardModule {
public:
  explicit AdaptiveAvgPool2d(std::array<int64_t, 2> OutputSize);
  explicit AdaptiveAvgPool2d(int64_t OutputSize)
      : AdaptiveAvgPool2d(std::array<int64_t, 2>{OutputSize, OutputSize}) {}
};
class Flatten : public StandardModule {
public:
  /// nn.Flatten's defaults (start_dim 1, unlike torch.flatten).
  explicit Flatten(int64_t StartDim = 1, int64_t EndDim = -1);
};
class Identity : public StandardModule {
public:
  Identity();
};
class Dropout : public StandardModule {
public:
  explicit Dropout(double P = 0.5);
  Value forward(Value X) override;
};
class Softmax : public StandardModule {
public:
  explicit Softmax(int64_t Dim);
};

//===--- arith family ---===//

/// nn.Upsample's options: exactly one of size and scale factor.
struct UpsampleOptions {
  std::optional<std::array<int64_t, 2>> Size;
  std::optional<std::array<double, 2>> ScaleFactor;
  /// "nearest" or "bilinear".
  std::string Mode = "nearest";
  /// Only for bilinear; unset means PyTorch's default (False).
  std::optional<bool> AlignCorners;
};

/// nn.Upsample: F.interpolate with the module's options.
class Upsample : public StandardModule {
public:
  explicit Upsample(const UpsampleOptions &O);
};

/// nn.Embedding(num_embeddings, embedding_dim, padding_idx): a lookup table
/// read with s64 (or s32) indices.
class Embedding : public StandardModule {
public:
  Embedding(int64_t NumEmbeddings, int64_t EmbeddingDim,
            std::optional<int64_t> PaddingIdx = std::nullopt);
  Tensor weight;
};

// Transformer modules.
/// nn.LayerNorm over the trailing \p NormalizedShape dimensions; with
/// \p ElementwiseAffine, a weight (ones) and bias (zeros) of that shape.
class LayerNorm : public StandardModule {
public:
  explicit LayerNorm(std::vector<int64_t> NormalizedShape, double Eps = 1e-5,
                     bool ElementwiseAffine = true);
  Tensor weight, bias; ///< no data without elementwise affine
};
/// nn.GELU; \p Approximate is "none" (erf) or "tanh".
class GELU : public StandardModule {
public:
  explicit GELU(const std::string &Approximate = "none");
};

/// Runs its children in order; registered as "0", "1", ... like PyTorch.
/// Not a leaf: the tracer inlines it, so its children appear by qualified
/// name ("features.0").
class Sequential : public Module {
public:
  Sequential();
  explicit Sequential(std::vector<std::shared_ptr<Module>> Mods);
  /// Appends a module named by its index.
  void push_back(std::shared_ptr<Module> M);
  size_t size() const { return children().size(); }
  Value forward(Value X) override;
};

} // namespace nn
} // namespace qfx

#endif // QFX_NN_MODULES_H
