//===- Lowerer.h - The graph walk that builds a Program ---------*- C++ -*-===//
//
// Shared by the lowering sources: Lowering.cpp (types, fusion groups,
// values and layouts, views, inputs and outputs, the op-table fallback) and
// LowerOps.cpp (one function per kind of step).
//
//===----------------------------------------------------------------------===//

#ifndef QFX_LIB_CODEGEN_LOWERER_H
#define QFX_LIB_CODEGEN_LOWERER_H

#include "Program.h"
#include "SupportTable.h"

#include "qfx/Codegen/Lowering.h"
#include "qfx/IR/Graph.h"
#include "qfx/Runtime/Kernels.h"
#include "qfx/Runtime/Op.h"

#include "llvm/ADT/DenseMap.h"

#include <limits>
#include <map>
#include <optional>
#include <vector>

namespace qfx {

class ModuleInfo;

namespace codegen {

/// Physical layout of an activation (NHWC: channels last, nwc at rank 3;
/// Blocked: f32 nChw16c, rank 4 only, read only by the steps that
/// blockedReadersOnly accepts).
enum class Layout : uint8_t { Plain, NHWC, Blocked };

/// A tensor of the program: bytes in a buffer and how to read them.
struct Value {
  int Buf = -1;
  size_t Offset = 0;
  dnnl::memory::desc Md;
  DType Dt = DType::F32;
  /// Logical (PyTorch, NCHW) dimensions.
  Shape Dims;
  QuantParams Q;
  Layout L = Layout::Plain;
  /// A flatten of an NHWC value fed only to linears: the bytes are those of
  /// value PermSource (in H, W, C order) and the linears read them with
  /// permuted weights; anything else converts first (inLayout).
  int PermSource = -1;
  /// A permuted view whose Md has non-dense strides, read only by matmuls
  /// (LowerTransformer.cpp); anything else makes a dense copy first.
  bool Strided = false;
  /// F32 data holding the integers q - Q.ZeroPoint of an int8 value of type
  /// IntDt with qparams Q (an exact-f32 matmul's result, or a linear's whose
  /// readers are such matmuls), made only for readers that take them as
  /// they are (exact-f32 matmuls, the softmax island, views); the int8
  /// value itself does not exist.
  bool IntF32 = false;
  DType IntDt = DType::U8;
};

/// A clamp in real units (relu: [0, inf)).
struct RealClamp {
  double Lo = -std::numeric_limits<double>::infinity();
  double Hi = std::numeric_limits<double>::infinity();
  bool Active = false;

  void intersect(double L, double H);
};

/// An activation fused after a group's anchor (and its clamp): the
/// function and the type of the node applying it (int8 nodes requantize).
struct ActPost {
  ActKind Act = ActKind::None;
  DType Dt = DType::F32;
  QuantParams Q;
};

/// An op and the nodes fused after it, lowered as one step at the position
/// of the last member (where every operand is available).
struct Group {
  const Node *Anchor = nullptr;
  const LoweringRule *Rule = nullptr;
  std::vector<const Node *> Members;
  /// The residual operand of a sum post-op (built in or a fused add).
  const Node *SumOther = nullptr;
  RealClamp Clamp;
  /// A fused dequantize: the step writes f32.
  bool Dequant = false;
  /// Activations after the clamp, in order (LowerEltwise.cpp).
  std::vector<ActPost> Acts;
  /// Transformer: a fused gelu (eltwise post-op after the clamp) and a
  /// scalar the output is multiplied by (matmul * c as the output scale).
  enum class GeluKind : uint8_t { None, Erf, Tanh } Gelu = GeluKind::None;
  double OutScale = 1.0;

  const Node *last() const { return Members.back(); }
  std::string name() const;
};

/// What conv and linear share once their input is in place: output type,
/// attributes (scales, zero points, post-ops), bias and residual operand.
struct WeightedOp {
  bool Int8 = false;
  DType OutDt = DType::F32;
  /// The destination's qparams (the last fused activation's, if any).
  QuantParams OutQ;
  /// The anchor's own output qparams (int8).
  QuantParams AnchorQ;
  /// The residual operand's value, or -1.
  int Other = -1;
  dnnl::primitive_attr Attr;
  /// The bias in the primitive's units (int8: accumulator units), [out].
  Tensor Bias;
  std::string Detail;
};

/// Builds a Program from a GraphModule.
class Lowerer {
public:
  Lowerer(const GraphModule &GM, const CompileOptions &Opts, Program &P)
      : GM(GM), Opts(Opts), P(P) {}
  llvm::Error run();

  //===--- Analysis (Lowering.cpp) ---===//
  llvm::Error computeTypes();
  void planGroups();
  /// The group of \p Anchor: its built-in post-ops and, if \p Grow, the
  /// single-user chain of ops that fuse after it.
  std::optional<Group> growGroup(const Node &Anchor, const LoweringRule &R,
                                 bool Grow);
  /// The real bounds of a clamp of kind \p K applied by \p N.
  llvm::Expected<std::pair<double, double>> clampBounds(const Node &N,
                                                        ClampKind K) const;
  /// The inferred or declared type of \p N (after the batch override).
  const TensorType &typeOf(const Node *N) const;

  //===--- Values (Lowering.cpp) ---===//
  int addValue(Value V);
  /// A fresh arena value.
  int newValue(DType Dt, llvm::ArrayRef<int64_t> Dims, Layout L,
               const QuantParams &Q, const std::string &Name);
  /// Binds node \p N to value \p V (and records that N lives in its buffer).
  void bindNode(const Node *N, int V);
  llvm::Expected<int> valueOf(const Node *N) const;
  /// \p V in layout \p L: itself, a view when the strides agree, else a
  /// (cached) reorder.
  int inLayout(int V, Layout L);
  /// A view of \p V with new dims (plain layout, same bytes).
  int viewAs(int V, llvm::ArrayRef<int64_t> Dims);
  /// \p V's bytes in plain order for a linear: the value itself, or for a
  /// permuted flatten its NHWC source, with \p Perm set to (C, H, W).
  int linearInput(int V, std::optional<std::array<int64_t, 3>> &Perm);
  /// Whether every reader of \p N (the last node of a group) takes a
  /// Blocked value: an fp32 conv (as its source or residual), batch norm,
  /// same-shape add or pool, under the blocked plan.
  bool blockedReadersOnly(const Node &N) const;
  /// After \p Last's group wrote its value: a Blocked value whose readers
  /// do not all take it is reordered to NHWC (plain when only the graph's
  /// output reads it), which \p Last is bound to.
  void leaveBlocked(const Node &Last);
  /// The layout plan (LayoutChoice::Measure resolved by measuring).
  LayoutChoice Plan = LayoutChoice::ChannelsLast;
  /// Whether Measure has something to measure: an fp32 2-d conv.
  bool hasFloatConv() const;
  /// Lowers the module under both plans and keeps the faster (Layouts.cpp).
  llvm::Error measureLayouts();
  /// Whether every node living in \p Buf is dead after position \p Pos.
  bool bufferDeadAfter(int Buf, size_t Pos) const;

  //===--- Steps (Lowering.cpp) ---===//
  PrimitiveStep &addPrimitive(const dnnl::primitive_desc_base &PD,
                              dnnl::primitive Prim, std::string Name,
                              std::string Kind, std::vector<MemArg> Args);
  HostStep &addHost(std::string Name, std::string Kind,
                    std::function<llvm::Error(Program &)> Fn,
                    std::vector<int> Reads, std::vector<int> Writes);
  /// Reorders \p From into \p To (with \p Attr for scales / zero points).
  void addReorder(int From, int To, const dnnl::primitive_attr &Attr,
                  std::string Name, std::string Kind);
  /// Reorders a host tensor into a new constant buffer of layout \p Md.
  int addConstant(const Tensor &T, const dnnl::memory::desc &UserMd,
                  const dnnl::memory::desc &Md, const std::string &Name);
  MemArg arg(int ArgId, int V) const;
  /// \p PD, or the implementation Opts.Implementations chooses instead
  /// (chooseImplementation).
  template <typename PDT> PDT chosenImplementation(const PDT &PD) const {
    if (Opts.Implementations == ImplChoice::First)
      return PD;
    return PDT(chooseImplementation(PD, Opts.Implementations, P.Engine).get());
  }

  //===--- Nodes (Lowering.cpp) ---===//
  llvm::Error lowerNode(const Node &N);
  llvm::Error lowerGroup(const Group &G);
  llvm::Error lowerPlaceholder(const Node &N, int Index);
  llvm::Error lowerGetAttr(const Node &N);
  llvm::Error lowerView(const Node &N);
  /// identity, contiguous, eval-mode dropout: the input's value.
  llvm::Error lowerAlias(const Node &N);
  llvm::Error lowerOutputs(const Node &N);
  /// Runs \p N through the op table; \p Why says why it has no primitive
  /// ("no oneDNN lowering for 'hardswish' (quint8 input)") and is recorded
  /// in Program::Fallbacks.
  llvm::Error lowerFallback(const Node &N, llvm::StringRef Why);
  /// Rejects observer and fake-quant modules before anything is lowered.
  llvm::Error checkNoObservers() const;
  /// The op of \p N as fallbacks name it (module kind or target).
  std::string opName(const Node &N) const;

  //===--- Ops (LowerOps.cpp) ---===//
  /// Each returns true when lowered, false when the parameters are outside
  /// what the primitive supports (the caller falls back to the op table).
  llvm::Expected<bool> lowerConv(const Group &G);
  /// The layout the conv of \p G reads its source \p X in: Blocked (or
  /// Plain for a few image channels) under the blocked plan when X is
  /// Blocked or the conv's readers all take Blocked, else NHWC.
  Layout convSourceLayout(const Group &G, int X) const;
  /// Conv family (LowerConvFamily.cpp): a Conv1d kind as a unit-height 2-d
  /// convolution on its nwc input.
  llvm::Expected<bool> lowerConv1d(const Group &G);
  /// QuantizedBatchNorm2d / QuantizedBNReLU2d as an int8 depthwise 1x1
  /// convolution (oneDNN's batch normalization takes no u8).
  llvm::Expected<bool> lowerQuantizedBatchNorm(const Group &G);
  /// \p V itself if 4-d, else a 4-d view of the same bytes: [N, C] as
  /// [N, C, 1, 1], [N, C, L] (ncw or nwc) as [N, C, 1, L].
  int unitHeightView(int V);
  /// ConvTranspose2d kinds as oneDNN deconvolutions on nhwc activations.
  llvm::Expected<bool> lowerConvTranspose2d(const Group &G);
  /// The shared part of conv and linear for input \p XI, weight \p W.
  /// \p CodesAsF32: an int8 op writes its output's codes minus the zero
  /// point as f32 (Value::IntF32), for exact-f32 matmuls to read.
  llvm::Expected<WeightedOp> weightedOp(const Group &G, const Value &XI,
                                        const Tensor &W, const Tensor *B,
                                        bool CodesAsF32 = false);
  /// Whether every reader of \p N, through views and permutes, is an int8
  /// matmul of two activations that runs as exact f32.
  bool onlyExactMatmulsRead(const Node &N) const;
  /// f32 codes (Value::IntF32) \p V as the int8 value they stand for.
  int codesAsInt8(int V);
  /// The destination of a weighted op: new, or the sum's identity buffer.
  int weightedDestination(const Group &G, const WeightedOp &Op,
                          llvm::ArrayRef<int64_t> Dims, Layout L, int SrcBuf,
                          SumMode &Mode);
  void finishWeighted(PrimitiveStep &S, const Group &G, const WeightedOp &Op,
                      SumMode Mode, int Dst);
  llvm::Expected<bool> lowerLinear(const Group &G);
  llvm::Expected<bool> lowerLinearDynamic(const Group &G);
  /// The per-run quantization of a dynamic linear's input: the u8 value
  /// and the constant buffers its scale and zero point are written to.
  struct DynamicInput {
    int Xq = -1, Scale = -1, ZeroPoint = -1;
  };
  DynamicInput addDynamicQuantize(const std::string &Name, const Value &XI,
                                  int64_t Rows, int64_t K, int QMax);
  llvm::Expected<bool> lowerBatchNorm(const Group &G);
  llvm::Expected<bool> lowerAdd(const Group &G);
  /// A binary primitive, or the int8 host kernel, on values \p A and \p B
  /// of one layout.
  llvm::Expected<bool> lowerAddF32(const Group &G, int A, int B);
  llvm::Expected<bool> lowerAddScalar(const Node &N);
  llvm::Expected<bool> lowerAddInt8(const Group &G, int A, int B);
  llvm::Expected<bool> lowerPool(const Node &N, const LoweringRule &R);
  llvm::Expected<bool> lowerEltwise(const Node &N, const LoweringRule &R);
  llvm::Expected<bool> lowerCat(const Node &N);

  //===--- Activations and mul (LowerEltwise.cpp) ---===//
  /// Whether activation \p U (rule \p RU) applied to \p Cur fuses into
  /// \p G; if so it is recorded in G.Acts.
  bool growActivation(Group &G, const Node &U, const LoweringRule &RU,
                      const Node *Cur) const;
  /// The post-ops of a group with an activation after an int8 anchor whose
  /// own output qparams are \p AnchorQ (the output scales leave the
  /// accumulator on its grid): the anchor's rounding and saturation, the
  /// activation in real units and its requantization (\p OutQ), or its
  /// dequantized value when \p OutDt is f32.
  /// After an int8 anchor's fused dequantize \p Deq: a float activation
  /// PyTorch keeps float (silu) between it and a quantize_per_tensor joins
  /// \p G as if it were the activation's int8 form.
  void growFloatIsland(Group &G, const Node &Deq) const;
  /// The float island from dequantize \p Deq to the quantize that ends it:
  /// single-user element-wise ops (activations, gelu, eval dropout) on the
  /// dequantized int8 value, per-tensor on both ends. Empty if none.
  std::vector<const Node *> tableIsland(const Node &Deq) const;
  /// Whether the island at \p Deq runs faster as a 256-entry table than as
  /// post-ops of the int8 op before it (gelu: oneDNN's erf post-op costs
  /// more than the matmul).
  bool prefersTable(const Node &Deq) const;
  /// dequantize \p Deq -> (mul by positive constants) -> softmax over the
  /// last dimension -> quantize, per-tensor int8 on both ends (attention's
  /// scores, as PyTorch converts them). Empty if not.
  std::vector<const Node *> softmaxIsland(const Node &Deq) const;
  /// The softmax island at \p Deq as one host loop over the int8 codes.
  llvm::Expected<bool> lowerSoftmaxIsland(const Node &Deq,
                                          llvm::ArrayRef<const Node *> Island);
  /// The island at \p Deq as one table lookup per byte.
  llvm::Expected<bool> lowerTableIsland(const Node &Deq,
                                        llvm::ArrayRef<const Node *> Island);
  dnnl::post_ops int8ActPostOps(const Group &G, DType OutDt,
                                const QuantParams &AnchorQ,
                                const QuantParams &OutQ,
                                std::string &Detail) const;
  llvm::Expected<bool> lowerActivation(const Node &N, const LoweringRule &R);
  llvm::Expected<bool> lowerMul(const Node &N);
  /// Alpha * x + beta on value \p X as node \p N's result (x * s, x + s).
  llvm::Expected<bool> lowerScalarLinear(const Node &N, int X, double Alpha,
                                         double Beta);
  llvm::Expected<bool> lowerQuantize(const Node &N);
  llvm::Expected<bool> lowerDequantize(const Node &N);
  // arith family (LowerArith.cpp).
  llvm::Expected<bool> lowerArithBinary(const Node &N);
  llvm::Expected<bool> lowerInterpolate(const Node &N);
  llvm::Expected<bool> lowerEmbedding(const Node &N);
  llvm::Expected<bool> lowerNarrow(const Node &N);

  //===--- Transformer ops (LowerTransformer.cpp) ---===//
  llvm::Expected<bool> lowerMatmul(const Group &G);
  /// An int8 matmul of two activations as an exact f32 matmul.
  llvm::Expected<bool> lowerMatmulExactF32(const Group &G, int A, int B);
  /// layer_norm, softmax, gelu, permute / transpose, select, expand.
  llvm::Expected<bool> lowerTransformerOp(const Node &N, const LoweringRule &R);
  /// \p V as a dense plain value: itself, or a reorder of a strided view.
  int denseValue(int V);
  /// Dense \p V (plain) broadcast to \p To by a host copy (int8 adds of a
  /// position embedding).
  int broadcastValue(int V, llvm::ArrayRef<int64_t> To,
                     const std::string &Name);

  /// The post-ops of \p G: the sum (with \p Other's scale and zero point
  /// for int8) and the clamp, in units of \p OutQ for an int8 destination,
  /// in real units with the int8 saturation for a fused dequantize
  /// (\p OutDt f32 after an int8 anchor). Appends to \p Detail.
  dnnl::post_ops postOps(const Group &G, DType OutDt, const QuantParams &OutQ,
                         const Value *Other, std::string &Detail) const;
  /// The value a sum post-op accumulates into: the identity itself when it
  /// is dead after the group (and not the source in buffer \p SrcBuf), a
  /// copy otherwise. \p Md is the destination's.
  int sumDestination(const Group &G, int Other, const dnnl::memory::desc &Md,
                     Layout L, int SrcBuf, SumMode &Mode);
  /// Binds the operands of \p N (args and kwargs) to its op's schema with
  /// declared tensors (types only).
  llvm::Expected<std::pair<const OpDef *, BoundArgs>>
  bindDeclared(const Node &N) const;

  const GraphModule &GM;
  const CompileOptions &Opts;
  Program &P;

  std::vector<Value> Vals;
  llvm::DenseMap<const Node *, int> ValOf;
  llvm::DenseMap<const Node *, TensorType> Types;
  llvm::DenseMap<const Node *, size_t> Pos, LastUse;
  std::map<int, std::vector<const Node *>> BufNodes;
  std::map<std::pair<int, int>, int> Converted;
  /// Buffers made by layout conversions: read by every later consumer of
  /// the converted value, which the per-node liveness does not see, so a
  /// sum never writes them in place.
  std::vector<bool> Shared;
  std::vector<Group> Groups;
  llvm::DenseMap<const Node *, size_t> GroupOf;
};

/// oneDNN's name for a dtype.
dnnl::memory::data_type toDnnl(DType T);
/// A dense descriptor of \p Dims in layout \p L.
dnnl::memory::desc makeDesc(DType T, llvm::ArrayRef<int64_t> Dims, Layout L);
/// Whether values of \p Dims have a channels-last form (rank 4: nhwc; rank
/// 3, the conv family's 1-d ops: nwc).
bool hasChannelsLast(llvm::ArrayRef<int64_t> Dims);
/// Whether plain and channels-last order the bytes of \p Dims identically
/// (trivial channels or spatial extent; always for other ranks).
bool layoutsAgree(llvm::ArrayRef<int64_t> Dims);
/// An error naming node \p N.
llvm::Error nodeError(const Node &N, const llvm::Twine &Msg);
/// Appends activation \p A (in real units, its result times \p Scale) to
/// \p PO and its name to \p Detail.
void appendActivation(dnnl::post_ops &PO, ActKind A, std::string &Detail,
                      float Scale = 1.0f);
/// A clamp as an eltwise post-op: relu when it is one, else clip.
void appendClamp(dnnl::post_ops &PO, double Lo, double Hi, std::string &D);

/// The strides of a plain (blocked, unblocked) descriptor, or nothing.
std::optional<dnnl::memory::dims> plainStrides(const dnnl::memory::desc &Md);

/// The single user of \p N, if it reads \p N as its first operand (the
/// next node of an island: dequantize -> op -> quantize), or null.
const Node *firstOperandUser(const Node &N);

} // namespace codegen
} // namespace qfx

#endif // QFX_LIB_CODEGEN_LOWERER_H
