//===- BackendConfig.cpp - Which ops quantize, and how --------------------===//

#include "qfx/Quant/BackendConfig.h"

#include "qfx/IR/GraphModule.h"
#include "qfx/IR/Printer.h"

#include "llvm/ADT/STLExtras.h"

#include <cassert>
#include <tuple>

using namespace qfx;

llvm::StringRef qfx::nodeClassName(NodeClass C) {
  switch (C) {
  case NodeClass::Weighted:
    return "weighted";
  case NodeClass::General:
    return "general";
  case NodeClass::SharesQParams:
    return "shares_qparams";
  case NodeClass::Cat:
    return "cat";
  case NodeClass::FixedQParams:
    return "fixed_qparams";
  case NodeClass::Float:
    return "float";
  }
  llvm_unreachable("unknown node class");
}

namespace {

constexpr NodeClass W = NodeClass::Weighted;
constexpr NodeClass G = NodeClass::General;
constexpr NodeClass S = NodeClass::SharesQParams;
constexpr NodeClass C = NodeClass::Cat;

/// PyTorch 1.13's fixed qparams for quint8 outputs: [0, 1) ops use 1/256
/// with zero point 0, [-1, 1) ops 2/256 with zero point 128.
BackendOpEntry fixed01(const char *Op, bool IsModule) {
  return {Op, IsModule, NodeClass::FixedQParams, 1.0 / 256.0, 0};
}
BackendOpEntry fixedNeg11(const char *Op, bool IsModule) {
  return {Op, IsModule, NodeClass::FixedQParams, 2.0 / 256.0, 128};
}
BackendOpEntry dynamic(const char *Op) {
  return {Op, true, W, 0.0, 0, /*SupportsDynamic=*/true};
}

// The table of docs/quantization.md. Functions and methods first, then
// module kinds, each sorted by name. ConvBn2d, ConvBnReLU2d and LinearBn1d
// are what fusion leaves for quantization-aware training (BatchNorm kept).
// The Flatten module is absent on purpose: PyTorch 1.13's native config
// lists torch.flatten but not nn.Flatten, which stays float there.
const BackendOpEntry Table[] = {
    {"adaptive_avg_pool2d", false, S},
    {"add", false, G},
    {"avg_pool2d", false, S},
    {"cat", false, C},
    {"contiguous", false, S},
    {"dropout", false, S},
    {"flatten", false, S},
    fixed01("hardsigmoid", false),
    {"hardswish", false, G},
    {"hardtanh", false, S},
    // arith family: F.interpolate shares its input's qparams in PyTorch
    // 1.13's x86 config; sub, div, embedding, narrow, nn.Upsample and the
    // functional softmax (only the nn.Softmax module has fixed qparams
    // there) are not listed, so they stay float.
    {"interpolate", false, S},
    {"leaky_relu", false, G},
    {"matmul", false, G}, // transformer: activation x activation
    {"max_pool2d", false, S},
    {"mean", false, S},
    {"mul", false, G},
    {"permute", false, S},
    {"relu", false, S},
    {"relu6", false, S},
    {"reshape", false, S},
    fixed01("sigmoid", false),
    fixedNeg11("tanh", false),
    {"transpose", false, S},
    {"view", false, S},
    {"AdaptiveAvgPool2d", true, S},
    {"AvgPool2d", true, S},
    {"BNReLU2d", true, G},
    {"BatchNorm2d", true, G},
    {"Conv1d", true, W}, // conv family: Conv1d and its fused kinds
    {"Conv2d", true, W},
    {"ConvAdd2d", true, W},
    {"ConvAddReLU2d", true, W},
    {"ConvBn1d", true, W},
    {"ConvBn2d", true, W},
    {"ConvBnReLU1d", true, W},
    {"ConvBnReLU2d", true, W},
    {"ConvReLU1d", true, W},
    {"ConvReLU2d", true, W},
    {"ConvTranspose2d", true, W},
    {"Dropout", true, S},
    fixed01("Hardsigmoid", true),
    {"Hardswish", true, G},
    {"Hardtanh", true, S},
    {"Identity", true, S},
    {"LayerNorm", true, G}, // transformer: f32 weight and bias
    {"LeakyReLU", true, G},
    dynamic("Linear"),
    {"LinearBn1d", true, W},
    dynamic("LinearReLU"),
    {"MaxPool2d", true, S},
    {"ReLU", true, S},
    {"ReLU6", true, S},
    fixed01("Sigmoid", true),
    fixed01("Softmax", true),
    fixedNeg11("Tanh", true),
};

bool tableIsSorted() {
  return llvm::is_sorted(
      Table, [](const BackendOpEntry &A, const BackendOpEntry &B) {
        return std::make_tuple(A.IsModule, llvm::StringRef(A.Op)) <
               std::make_tuple(B.IsModule, llvm::StringRef(B.Op));
      });
}

} // namespace

llvm::ArrayRef<BackendOpEntry> qfx::backendOpTable() {
  assert(tableIsSorted() && "backend op table must be sorted");
  return Table;
}

const BackendOpEntry *qfx::lookupBackendOp(llvm::StringRef Op, bool IsModule) {
  for (const BackendOpEntry &E : backendOpTable())
    if (E.IsModule == IsModule && Op == E.Op)
      return &E;
  return nullptr;
}

bool qfx::isObserverModuleKind(llvm::StringRef Kind) {
  return Kind.endswith("Observer") || Kind.endswith("FakeQuantize");
}

Node *qfx::soleReluUser(const Node &N, const GraphModule &GM) {
  if (N.users().size() != 1)
    return nullptr;
  Node *U = N.users()[0];
  bool IsRelu = false;
  if (U->op() == OpCode::CallFunction || U->op() == OpCode::CallMethod)
    IsRelu = U->target() == "relu";
  else if (U->op() == OpCode::CallModule)
    if (const ModuleInfo *M = GM.lookupModule(U->target()))
      IsRelu = M->kind() == "ReLU";
  if (!IsRelu || U->numArgs() != 1 || !U->kwargs().empty() ||
      !U->arg(0).isNode() || U->arg(0).getNode() != &N)
    return nullptr;
  return U;
}

/// Node operands (positional and keyword), not looking into lists.
static unsigned countNodeOperands(const Node &N) {
  unsigned Count = 0;
  for (const Argument &A : N.args())
    Count += A.isNode();
  for (const auto &KV : N.kwargs())
    Count += KV.second.isNode();
  return Count;
}

std::optional<double> qfx::scalarArithOperand(const Node &N) {
  if ((N.op() != OpCode::CallFunction && N.op() != OpCode::CallMethod) ||
      (N.target() != "add" && N.target() != "mul") || N.numArgs() < 2 ||
      !N.arg(0).isNode() || countNodeOperands(N) != 1)
    return std::nullopt;
  const Argument &A = N.arg(1);
  if (A.isInt())
    return double(A.getInt());
  if (A.isFloat())
    return A.getFloat();
  return std::nullopt;
}

/// The table's verdict refined by what the node's arguments say: binary
/// ops need two tensors or a tensor and a number, cat a list of tensors.
/// "" when the node qualifies.
static std::string operandProblem(const Node &N, llvm::StringRef Op,
                                  NodeClass Class) {
  if (Class == NodeClass::Cat) {
    bool AllNodes = N.numArgs() > 0 && N.arg(0).isList() &&
                    !N.arg(0).getList().empty() &&
                    llvm::all_of(N.arg(0).getList(),
                                 [](const Argument &A) { return A.isNode(); });
    return AllNodes ? "" : "no int8 implementation for 'cat' of non-tensors";
  }
  if (N.op() != OpCode::CallModule && (Op == "add" || Op == "mul")) {
    if (countNodeOperands(N) != 2 && !scalarArithOperand(N))
      return ("no int8 implementation for '" + Op +
              "' with a non-numeric operand")
          .str();
    const Argument *Alpha = N.kwarg("alpha");
    if (Op == "add" && N.numArgs() > 2)
      Alpha = &N.arg(2);
    if (Alpha && !((Alpha->isInt() && Alpha->getInt() == 1) ||
                   (Alpha->isFloat() && Alpha->getFloat() == 1.0)))
      return "no int8 implementation for 'add' with alpha " +
             formatArgument(*Alpha);
    return "";
  }
  if (N.numArgs() == 0 || !N.arg(0).isNode())
    return ("no int8 implementation for '" + Op + "' of a non-tensor").str();
  return "";
}

NodeClassification qfx::classify(const Node &N, const GraphModule &GM) {
  NodeClassification R;
  bool IsModule = N.op() == OpCode::CallModule;
  if (IsModule) {
    const ModuleInfo *M = GM.lookupModule(N.target());
    if (!M) {
      R.FloatReason = ("no module '" + N.target() + "'").str();
      return R;
    }
    R.Op = M->kind().str();
    if (isObserverModuleKind(R.Op)) {
      R.FloatReason = "observer module";
      return R;
    }
  } else if (N.op() == OpCode::CallFunction || N.op() == OpCode::CallMethod) {
    R.Op = N.target().str();
  } else {
    R.FloatReason = ("not an op (" + opcodeName(N.op()) + ")").str();
    return R;
  }
  const BackendOpEntry *E = lookupBackendOp(R.Op, IsModule);
  if (!E) {
    R.FloatReason = "no int8 implementation for '" + R.Op + "'";
    return R;
  }
  std::string Problem = operandProblem(N, R.Op, E->Class);
  if (!Problem.empty()) {
    R.FloatReason = std::move(Problem);
    return R;
  }
  R.Class = E->Class;
  // PyTorch 1.13 maps one tensor operand to OUTPUT_SHARE_OBSERVER_WITH_INPUT.
  if (R.Class == NodeClass::General && scalarArithOperand(N))
    R.Class = NodeClass::SharesQParams;
  R.FixedScale = E->FixedScale;
  R.FixedZeroPoint = E->FixedZeroPoint;
  R.SupportsDynamic = E->SupportsDynamic;
  return R;
}
