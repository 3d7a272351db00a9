//===- ImportTable.cpp - The ONNX import table ----------------------------===//
//
// The one table of the importer: (domain, op type, reviewed since-versions)
// -> handler. A node's since-version comes from ONNX's schema registry; a
// version no row lists is an error, never a guess. Adding an op is one row
// here plus one handler in the family's file.
//
//===----------------------------------------------------------------------===//

#include "NodeReader.h"

using namespace qfx;
using namespace qfx::onnximport;

static const ImportRule Rules[] = {
    // Weighted ops: call_module of the standard kinds (ImportConv.cpp).
    {"", "Conv", {1, 11}, importConv},        // Conv2d, or conv2d on values
    {"", "Gemm", {7, 9, 11, 13}, importGemm}, // Linear (transB, alpha, beta)
    {"", "MatMul", {9, 13}, importMatMul},    // Linear from a [in, out] weight
    {"", "BatchNormalization", {9, 14, 15}, importBatchNorm}, // inference form
    // Conv family (ImportConvFamily.cpp); Conv with a 1-d kernel is Conv1d.
    {"", "ConvTranspose", {1, 11}, importConvTranspose}, // ConvTranspose2d
    // Activations and arithmetic (ImportElementwise.cpp).
    {"", "Relu", {6, 13, 14}, importRelu},
    {"", "Sigmoid", {6, 13}, importSigmoid},
    {"", "HardSwish", {14}, importHardSwish},
    {"", "HardSigmoid", {6}, importHardSigmoid}, // PyTorch's alpha 1/6 only
    {"", "Clip", {11, 12, 13}, importClip},      // min/max are inputs
    {"", "Add", {7, 13, 14}, importAdd},
    {"", "Mul", {7, 13, 14}, importMul},
    {"", "Softmax", {1, 11}, importSoftmaxFlat}, // over all dims from axis
    {"", "Softmax", {13}, importSoftmax},        // one axis, default -1
    {"", "Identity", {1, 13, 14, 16}, importPassThrough}, // no node
    {"", "Dropout", {10, 12, 13}, importDropout},         // inference: none
    // Transformer ops (ImportTransformer.cpp; MatMul and Gather of
    // activations dispatch there from their rows).
    {"", "LayerNormalization", {17}, importLayerNormalization},
    {"", "Expand", {8, 13}, importExpand}, // expand(x, sizes, batch_like)
    // GELU and the decomposed LayerNorm (ImportPatterns.cpp): Erf and Sqrt
    // only inside their pattern, Pow only as x * x.
    {"", "Erf", {9, 13}, importErf},
    {"", "Sqrt", {6, 13}, importSqrt},
    {"", "Pow", {7, 12, 13, 15}, importPow},
    {"", "Tanh", {6, 13}, importTanh},
    {"", "Transpose", {1, 13}, importTranspose},
    // Pooling and reshaping (ImportShape.cpp).
    {"", "GlobalAveragePool", {1}, importGlobalAveragePool},
    {"", "MaxPool", {8, 10, 11, 12}, importMaxPool},
    {"", "AveragePool", {7, 10, 11}, importAveragePool},
    {"", "ReduceMean", {11, 13}, importReduceMean},
    {"", "Flatten", {9, 11, 13}, importFlatten},
    {"", "Reshape", {5, 13, 14}, importReshape}, // target folded, batch -> -1
    {"", "Concat", {4, 11, 13}, importConcat},   // folded or cat
    // Shape computations, folded at import (ImportShape.cpp).
    {"", "Shape", {1, 13, 15}, importShape},
    {"", "Gather", {11, 13}, importGather},
    {"", "Unsqueeze", {11, 13}, importUnsqueeze},
    {"", "Squeeze", {11, 13}, importSqueeze},
    {"", "Slice", {10, 11, 13}, importSlice},
    {"", "Cast", {9, 13}, importCast},
    {"", "Constant", {9, 11, 12, 13}, importConstant},
    {"", "ConstantOfShape", {9}, importConstantOfShape},
    {"", "Equal", {11, 13}, importEqual}, // class_token.expand(N, -1, -1)
    {"", "Where", {9, 16}, importWhere},
    // arith family (ImportArith.cpp); Slice of a tensor and Gather from a
    // float table are handed over by importSlice / importGather.
    {"", "Sub", {7, 13, 14}, importSub},
    {"", "Div", {7, 13, 14}, importDiv},
    {"", "Neg", {6, 13}, importNeg},
    {"", "Reciprocal", {6, 13}, importReciprocal},
    {"", "Resize", {11, 13}, importResize},   // as F.interpolate
    {"", "Upsample", {7, 9}, importUpsample}, // opsets 7-9: nearest only
    {"", "Split", {11, 13}, importSplit},     // narrows
    // QDQ (ImportQdq.cpp).
    {"", "QuantizeLinear", {10, 13}, importQuantizeLinear},
    {"", "DequantizeLinear", {10, 13}, importDequantizeLinear},
};

std::vector<const ImportRule *>
qfx::onnximport::lookupRules(llvm::StringRef Domain, llvm::StringRef OpType) {
  if (Domain == "ai.onnx")
    Domain = "";
  std::vector<const ImportRule *> R;
  for (const ImportRule &Rule : Rules)
    if (Domain == Rule.Domain && OpType == Rule.OpType)
      R.push_back(&Rule);
  return R;
}
