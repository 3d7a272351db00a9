//===- SupportTable.cpp - What the oneDNN lowering supports, as data ------===//

#include "SupportTable.h"

#include "qfx/IR/GraphModule.h"

using namespace qfx;
using namespace qfx::codegen;

namespace {

constexpr uint8_t All = DtF32 | DtInt8;
constexpr uint8_t EltDeq = PostEltwise | PostDequant;
constexpr uint8_t EltSum = PostEltwise | PostSum;

LoweringRule module(const char *Kind, LowerKind K, uint8_t Dt, uint8_t Post,
                    bool Sum = false, ClampKind C = ClampKind::None) {
  return {Kind, true, K, Dt, Post, Sum, C};
}

LoweringRule function(const char *Op, LowerKind K, uint8_t Dt, uint8_t Post,
                      ClampKind C = ClampKind::None) {
  return {Op, false, K, Dt, Post, false, C};
}

LoweringRule activation(const char *Op, bool IsModule, uint8_t Dt, ActKind A) {
  return {Op, IsModule, LowerKind::Activation, Dt,
          0,  false,    ClampKind::None,       A};
}

// Quantized conv / linear fuse a following clamp and dequantize; the
// residual add of the ConvAdd kinds is the sum post-op (with the identity's
// scale and zero point), so a dequantize cannot follow it (an f32
// destination cannot hold the u8 identity). Float conv / linear fuse a
// following add as the sum post-op. Pools take every activation dtype;
// int8 adds and clamps run as host kernels. Float batch norms left unfused
// by the front end are primitives too.
const LoweringRule Rules[] = {
    module("AdaptiveAvgPool2d", LowerKind::AdaptiveAvgPool, All, 0),
    module("AvgPool2d", LowerKind::AvgPool, All, 0),
    module("BNReLU2d", LowerKind::BatchNorm, DtF32, 0, false, ClampKind::Relu),
    module("BatchNorm2d", LowerKind::BatchNorm, DtF32, PostRelu),
    module("Conv2d", LowerKind::Conv, DtF32, EltSum),
    module("ConvAdd2d", LowerKind::Conv, DtF32, PostEltwise, true),
    module("ConvAddReLU2d", LowerKind::Conv, DtF32, PostEltwise, true,
           ClampKind::Relu),
    module("ConvReLU2d", LowerKind::Conv, DtF32, PostEltwise, false,
           ClampKind::Relu),
    module("Dropout", LowerKind::Alias, All, 0),
    module("Flatten", LowerKind::View, All, 0),
    module("Hardtanh", LowerKind::Eltwise, All, 0, false, ClampKind::Hardtanh),
    module("Identity", LowerKind::Alias, All, 0),
    module("Linear", LowerKind::Linear, DtF32, EltSum | PostGelu),
    module("LinearReLU", LowerKind::Linear, DtF32, PostEltwise, false,
           ClampKind::Relu),
    module("MaxPool2d", LowerKind::MaxPool, All, 0),
    module("QuantizedConv2d", LowerKind::Conv, DtInt8, EltDeq),
    module("QuantizedConvAdd2d", LowerKind::Conv, DtInt8, PostEltwise, true),
    module("QuantizedConvAddReLU2d", LowerKind::Conv, DtInt8, PostEltwise, true,
           ClampKind::Relu),
    module("QuantizedConvReLU2d", LowerKind::Conv, DtInt8, EltDeq, false,
           ClampKind::Relu),
    module("QuantizedLinear", LowerKind::Linear, DtInt8, EltDeq | PostGelu),
    module("QuantizedLinearDynamic", LowerKind::LinearDynamic, DtF32,
           PostEltwise | PostGelu),
    module("QuantizedLinearReLU", LowerKind::Linear, DtInt8, EltDeq, false,
           ClampKind::Relu),
    module("ReLU", LowerKind::Eltwise, All, 0, false, ClampKind::Relu),

    // Conv family (LowerConvFamily.cpp): 1-d convs as unit-height 2-d ones
    // on nwc activations, without a residual (sum) form; transposed convs
    // as deconvolutions; BatchNorm1d on [N, C] or [N, C, L] input.
    module("BatchNorm1d", LowerKind::BatchNorm, DtF32, PostRelu),
    module("Conv1d", LowerKind::Conv, DtF32, PostEltwise),
    module("ConvTranspose2d", LowerKind::Deconv, DtF32, PostEltwise),
    module("ConvReLU1d", LowerKind::Conv, DtF32, PostEltwise, false,
           ClampKind::Relu),
    module("QuantizedConv1d", LowerKind::Conv, DtInt8, EltDeq),
    module("QuantizedConvReLU1d", LowerKind::Conv, DtInt8, EltDeq, false,
           ClampKind::Relu),
    module("QuantizedConvTranspose2d", LowerKind::Deconv, DtInt8, EltDeq),
    // int8 batch norms (BatchNorm2d / BNReLU2d after convert) as depthwise
    // 1x1 convolutions, LowerConvFamily.cpp.
    module("QuantizedBNReLU2d", LowerKind::BatchNorm, DtInt8, EltDeq, false,
           ClampKind::Relu),
    module("QuantizedBatchNorm2d", LowerKind::BatchNorm, DtInt8, EltDeq),

    module("ReLU6", LowerKind::Eltwise, All, 0, false, ClampKind::Relu6),

    function("adaptive_avg_pool2d", LowerKind::AdaptiveAvgPool, All, 0),
    function("add", LowerKind::Add, DtF32, PostEltwise),
    function("avg_pool2d", LowerKind::AvgPool, All, 0),
    function("cat", LowerKind::Cat, DtF32, 0),
    function("contiguous", LowerKind::Alias, All, 0),
    function("dequantize", LowerKind::Dequantize, DtInt8, 0),
    function("dropout", LowerKind::Alias, All, 0),
    function("flatten", LowerKind::View, All, 0),
    function("hardtanh", LowerKind::Eltwise, All, 0, ClampKind::Hardtanh),
    function("identity", LowerKind::Alias, All, 0),
    function("max_pool2d", LowerKind::MaxPool, All, 0),
    function("quantize_per_tensor", LowerKind::Quantize, DtF32, 0),
    function("quantized_add", LowerKind::Add, DtInt8, PostEltwise),
    function("quantized_add_relu", LowerKind::Add, DtInt8, PostEltwise,
             ClampKind::Relu),
    function("quantized_cat", LowerKind::Cat, DtInt8, 0),
    function("relu", LowerKind::Eltwise, All, 0, ClampKind::Relu),
    function("relu6", LowerKind::Eltwise, All, 0, ClampKind::Relu6),
    function("reshape", LowerKind::View, All, 0),
    function("view", LowerKind::View, All, 0),
    // arith family.
    module("Embedding", LowerKind::Embedding, DtF32, 0),
    module("Upsample", LowerKind::Resample, All, 0),
    function("div", LowerKind::ArithBinary, DtF32, 0),
    function("embedding", LowerKind::Embedding, DtF32, 0),
    function("interpolate", LowerKind::Resample, All, 0),
    function("narrow", LowerKind::Narrow, All, 0),
    function("neg", LowerKind::ArithBinary, DtF32, 0),
    function("reciprocal", LowerKind::ArithBinary, DtF32, 0),
    function("rsub", LowerKind::ArithBinary, DtF32, 0),
    function("sub", LowerKind::ArithBinary, DtF32, 0),

    // MobileNetV3 family (LowerEltwise.cpp). Activations fuse as eltwise
    // post-ops wherever a clamp may (PostEltwise), in real units for int8
    // anchors; alone they are eltwise primitives (f32) or tables (int8, the
    // op table's own kernel evaluated on all 256 codes). PyTorch 1.13's x86
    // config quantizes all but silu, which stays float.
    activation("Hardsigmoid", true, DtF32, ActKind::Hardsigmoid),
    activation("Hardswish", true, DtF32, ActKind::Hardswish),
    activation("SiLU", true, DtF32, ActKind::Silu),
    activation("Sigmoid", true, DtF32, ActKind::Sigmoid),
    activation("Tanh", true, DtF32, ActKind::Tanh),
    activation("hardsigmoid", false, DtF32, ActKind::Hardsigmoid),
    activation("hardswish", false, DtF32, ActKind::Hardswish),
    activation("quantized_hardsigmoid", false, DtInt8, ActKind::Hardsigmoid),
    activation("quantized_hardswish", false, DtInt8, ActKind::Hardswish),
    activation("quantized_sigmoid", false, DtInt8, ActKind::Sigmoid),
    activation("quantized_tanh", false, DtInt8, ActKind::Tanh),
    activation("sigmoid", false, DtF32, ActKind::Sigmoid),
    activation("silu", false, DtF32, ActKind::Silu),
    activation("tanh", false, DtF32, ActKind::Tanh),
    function("mul", LowerKind::Mul, DtF32, 0),
    function("quantized_mul", LowerKind::Mul, DtInt8, 0),

    // Transformer ops (LowerTransformer.cpp): f32 for now; the shape ops
    // move int8 bytes too.
    module("GELU", LowerKind::Gelu, DtF32, 0),
    module("LayerNorm", LowerKind::LayerNorm, DtF32, 0),
    module("Softmax", LowerKind::Softmax, DtF32, 0),
    function("bmm", LowerKind::Matmul, DtF32, PostScale | PostGelu),
    function("expand", LowerKind::Expand, All, 0),
    function("gelu", LowerKind::Gelu, DtF32, 0),
    function("layer_norm", LowerKind::LayerNorm, DtF32, 0),
    function("matmul", LowerKind::Matmul, DtF32, PostScale | PostGelu),
    function("permute", LowerKind::Permute, All, 0),
    function("select", LowerKind::Select, All, 0),
    function("softmax", LowerKind::Softmax, DtF32, 0),
    function("transpose", LowerKind::Permute, All, 0),
    module("QuantizedLayerNorm", LowerKind::LayerNorm, DtInt8, 0),
    function("quantized_layer_norm", LowerKind::LayerNorm, DtInt8, 0),
    function("quantized_matmul", LowerKind::Matmul, DtInt8,
             PostDequant | PostScale | PostGelu),
    function("quantized_softmax", LowerKind::Softmax, DtInt8, 0),
};

} // namespace

const LoweringRule *codegen::lookupLoweringRule(llvm::StringRef Op,
                                                bool IsModule) {
  for (const LoweringRule &R : Rules)
    if (R.IsModule == IsModule && Op == R.Op)
      return &R;
  return nullptr;
}

const LoweringRule *codegen::lookupLoweringRule(const Node &N,
                                                const GraphModule &GM) {
  switch (N.op()) {
  case OpCode::CallModule:
    if (const ModuleInfo *M = GM.lookupModule(N.target()))
      return lookupLoweringRule(M->kind(), true);
    return nullptr;
  case OpCode::CallFunction:
  case OpCode::CallMethod:
    return lookupLoweringRule(N.target(), false);
  default:
    return nullptr;
  }
}

bool codegen::supportsDType(const LoweringRule &Rule, DType T) {
  switch (T) {
  case DType::F32:
    return Rule.Dtypes & DtF32;
  case DType::U8:
    return Rule.Dtypes & DtU8;
  case DType::S8:
    return Rule.Dtypes & DtS8;
  case DType::S64:
  case DType::S32:
    // arith family: embedding reads integer indices.
    return Rule.Kind == LowerKind::Embedding;
  default:
    return false;
  }
}
