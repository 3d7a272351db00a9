//===- TapeRecord.h - What the tape records per node ------------*- C++ -*-===//
//
// Private to the Train layer: the recorded form of one node (a chain of op
// applications, each with its bound operands, output and saved state, and
// where each operand came from), shared by the tape and the QAT module
// forwards that build records.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_LIB_TRAIN_TAPERECORD_H
#define QFX_LIB_TRAIN_TAPERECORD_H

#include "GradRules.h"

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace qfx {

class Node;

namespace train {

/// Where an operand came from: another node's value, a trainable parameter
/// (by qualified name), an earlier step of the same record, or a list of
/// those (cat). None: a constant or a buffer, no gradient.
struct Source {
  enum class Kind { None, Node, Param, Local, List };
  Kind K = Kind::None;
  const qfx::Node *N = nullptr;
  std::string Param;
  size_t Local = 0;
  std::vector<Source> Elems;

  static Source node(const qfx::Node *N) {
    Source S;
    S.K = Kind::Node;
    S.N = N;
    return S;
  }
  static Source param(std::string Name) {
    Source S;
    S.K = Kind::Param;
    S.Param = std::move(Name);
    return S;
  }
  static Source local(size_t I) {
    Source S;
    S.K = Kind::Local;
    S.Local = I;
    return S;
  }
};

/// One op application. With no Rule, the step passes its gradient straight
/// through to slot 0 (observers), multiplied by Mask when it has one
/// (fake quantization's straight-through estimator).
struct Step {
  const OpDef *Def = nullptr;
  const GradRule *Rule = nullptr;
  std::optional<BoundArgs> Args;
  Tensor Out;
  Saved S;
  std::vector<Source> Srcs;
  Tensor Mask;
};

class CustomBackward;

/// One node's recording: its steps in order (the last one's output is the
/// node's value), the straight-through masks of fake-quantized parameters,
/// or, for modules with their own backward (QAT ConvBn2d), a custom one.
struct Record {
  const qfx::Node *N = nullptr;
  std::vector<Step> Steps;
  std::map<std::string, Tensor> ParamMasks;
  std::unique_ptr<CustomBackward> Custom;
};

/// Routes gradients computed by a custom backward.
class GradSink {
public:
  virtual ~GradSink() = default;
  /// Adds \p G to the gradient of \p S.
  virtual void add(const Source &S, const Tensor &G) = 0;
  /// Whether \p S needs a gradient.
  virtual bool needs(const Source &S) const = 0;
};

/// A module whose backward is not a chain of op rules.
class CustomBackward {
public:
  virtual ~CustomBackward() = default;
  virtual llvm::Error backward(const Tensor &GradOut, GradSink &Sink) = 0;
};

/// Adds \p G into \p Acc (taking a private copy the first time, since
/// gradient tensors may share storage).
void accumulate(Tensor &Acc, const Tensor &G);

} // namespace train
} // namespace qfx

#endif // QFX_LIB_TRAIN_TAPERECORD_H
