//===- FoldQdq.h - QDQ groups into the reference quantized graph -*- C++
//-*-===//
//
// The counterpart of PyTorch's _lower_to_native_backend for graphs
// quantized elsewhere (an ONNX QDQ model, or one exported by qfx): every
// "dequantize -> float op -> quantize_per_tensor" group becomes the int8
// form convert produces, so compile() lowers it to oneDNN int8. Walking the
// quantize_per_tensor nodes in graph order, the pass rewrites
//
//   dq(x) -> conv2d(dq(w), b) [-> relu] -> q   QuantizedConv2d / ConvReLU2d
//   dq(x) -> conv2d(dq(w), b) -> add(dq(y)) [-> relu] -> q
//                                              QuantizedConvAdd[ReLU]2d
//   dq(x) -> linear(dq(w), b) [-> relu] -> q   QuantizedLinear[ReLU]
//   dq(x), dq(y) -> add [-> relu] / mul -> q   quantized_add[_relu] / _mul
//   [dq(x), ...] -> cat -> q                   quantized_cat
//   dq(x) -> hardswish / leaky_relu -> q       quantized_hardswish / ...
//   dq(x) -> sigmoid / hardsigmoid / tanh / softmax -> q
//                                              quantized_sigmoid / ...
//   dq(x) -> BatchNorm2d module [-> relu] -> q QuantizedBatchNorm2d /
//                                              QuantizedBNReLU2d, in place
//   dq(x) -> max_pool2d / flatten / reshape / relu ... -> q
//                                              the op on the int8 x
//   q(dq(x)) with x's qparams                  x
//
// where w is a get_attr of an s8 tensor with per-tensor or per-channel
// (axis 0) qparams and zero points 0, and b is none, an f32 get_attr, or a
// dequantized get_attr (an s32 bias with scales s_x * s_w), which becomes
// the module's f32 bias. relu may be a function, a method or a ReLU module;
// shares-qparams ops (the backend table's: pools, reshapes, relu, hardtanh,
// dropout ...) may be functions, methods or modules. The quantized module
// takes the place of the module that held the weight ("layer1.0.conv1" for
// get_attr[layer1.0.conv1.weight]), else the conv's scope, else its name,
// with convert's attributes plus the quantize's scale and zero point; the
// new node takes the op's name, scope and meta. Dequantizes, weights and
// modules that nothing reads any more are removed.
//
// Near misses stay as QDQ around float ops (the interpreter runs them as
// the reference), each with a remark saying why: a u8 weight, nonzero
// weight zero points, per-channel qparams on another axis, a weight or bias
// that is not a constant, an input that is not a dequantized int8 value, an
// output dtype other than the input's, an intermediate value with other
// users, linear -> add (no int8 module), mul by a scalar, a fixed-qparams op
// (sigmoid ...) whose quantize is not PyTorch's fixed qparams, a
// shares-qparams op whose quantize differs from its input's qparams (which
// PyTorch's shared observer never produces), a BatchNorm2d module called
// more than once, and other modules (a float Conv2d is not a QDQ group). A
// quantize of a dequantize with other qparams is a requantization and
// stays.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_TRANSFORMS_FOLDQDQ_H
#define QFX_TRANSFORMS_FOLDQDQ_H

#include "qfx/Transforms/Pass.h"

namespace qfx {

/// The fold-qdq pass.
class FoldQdq : public Pass {
public:
  llvm::StringRef name() const override { return "fold-qdq"; }
  llvm::Error run(GraphModule &GM, PassContext &Ctx) override;
  /// Groups rewritten into int8 ops by the last run.
  size_t numFolded() const { return NumFolded; }
  /// quantize(dequantize(x)) pairs removed by the last run.
  size_t numCancelled() const { return NumCancelled; }

private:
  size_t NumFolded = 0;
  size_t NumCancelled = 0;
};

} // namespace qfx

#endif // QFX_TRANSFORMS_FOLDQDQ_H
