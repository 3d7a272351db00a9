//===- LowerTransformer.cpp - oneDNN steps of the transformer ops --------===//
//
// matmul / bmm (batched, broadcasting, with a following `* c` as the output
// scale and a gelu post-op), layer normalization, softmax, gelu, and the
// shape ops attention is made of: permute / transpose become strided views
// when only matmuls read them (oneDNN's matmul takes any strides) and
// reorders otherwise, select a reorder of a strided view, expand of a
// constant a constant.
//
//===----------------------------------------------------------------------===//

#include "HostKernels.h"
#include "Lowerer.h"

#include "Runtime/TransformerKernels.h"

#include "qfx/IR/GraphModule.h"
#include "qfx/Support/Error.h"

#include "llvm/ADT/STLExtras.h"

#include <cstring>

using namespace qfx;
using namespace qfx::codegen;
using dnnl::memory;

namespace {

dnnl::primitive_attr scratchpadAttr() {
  dnnl::primitive_attr A;
  A.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return A;
}

/// Row-major strides of \p Dims.
memory::dims denseStrides(llvm::ArrayRef<int64_t> Dims) {
  memory::dims St(Dims.size(), 1);
  for (size_t I = Dims.size(); I-- > 1;)
    St[I - 1] = St[I] * Dims[I];
  return St;
}

memory::desc stridedDesc(DType T, llvm::ArrayRef<int64_t> Dims,
                         const memory::dims &Strides) {
  return memory::desc(memory::dims(Dims.begin(), Dims.end()), toDnnl(T),
                      Strides);
}

/// \p Dims with leading 1s up to rank \p R.
memory::dims padRank(llvm::ArrayRef<int64_t> Dims, size_t R) {
  memory::dims D(R - Dims.size(), 1);
  D.insert(D.end(), Dims.begin(), Dims.end());
  return D;
}

/// The permutation a permute / transpose node applies (nullopt if its
/// operands are not constant).
std::optional<std::vector<int64_t>>
permutation(const BoundArgs &B, llvm::StringRef Op, int64_t Rank) {
  std::vector<int64_t> Perm(Rank);
  for (int64_t I = 0; I < Rank; ++I)
    Perm[I] = I;
  if (Op == "transpose") {
    auto D0 = B.integer(1), D1 = B.integer(2);
    if (!D0 || !D1) {
      llvm::consumeError(D0.takeError());
      llvm::consumeError(D1.takeError());
      return std::nullopt;
    }
    auto A = ref::normalizeDim(*D0, Rank), C = ref::normalizeDim(*D1, Rank);
    if (!A || !C) {
      llvm::consumeError(A.takeError());
      llvm::consumeError(C.takeError());
      return std::nullopt;
    }
    std::swap(Perm[*A], Perm[*C]);
    return Perm;
  }
  auto Dims = B.ints(1);
  if (!Dims) {
    llvm::consumeError(Dims.takeError());
    return std::nullopt;
  }
  for (int64_t I = 0; I < Rank; ++I) {
    auto D = ref::normalizeDim((*Dims)[I], Rank);
    if (!D) {
      llvm::consumeError(D.takeError());
      return std::nullopt;
    }
    Perm[I] = *D;
  }
  return Perm;
}

/// Reorder attributes that dequantize (\p ToFloat) or quantize with \p Q:
/// dst = scale * (src - src_zp) + dst_zp.
dnnl::primitive_attr requantAttr(const QuantParams &Q, bool ToFloat) {
  dnnl::primitive_attr A = scratchpadAttr();
  A.set_output_scales(0,
                      {static_cast<float>(ToFloat ? Q.Scale : 1.0 / Q.Scale)});
  if (Q.ZeroPoint != 0)
    A.set_zero_points(ToFloat ? DNNL_ARG_SRC : DNNL_ARG_DST, 0,
                      {static_cast<int32_t>(Q.ZeroPoint)});
  return A;
}

} // namespace

/// Products of two 8-bit values less their zero points are below 2^16, so a
/// float sum of this many of them is exact: an f32 matmul of the integer
/// values computes the int8 matmul's int32 accumulator.
constexpr int64_t ExactFloatDepth = (int64_t(1) << 24) / (255 * 255);

/// \p V (int8) dequantized into a new dense f32 value.
static int dequantized(Lowerer &L, int V, const std::string &Name) {
  const Value X = L.Vals[V];
  int R = L.newValue(DType::F32, X.Dims, Layout::Plain, QuantParams(), Name);
  L.addReorder(V, R, requantAttr(X.Q, true), Name, "dequantize");
  return R;
}

/// f32 value \p V quantized to \p T with \p Q into a new value.
static int quantized(Lowerer &L, int V, DType T, const QuantParams &Q,
                     const std::string &Name) {
  const Value X = L.Vals[V];
  int R = L.newValue(T, X.Dims, Layout::Plain, Q, Name);
  L.addReorder(V, R, requantAttr(Q, false), Name, "quantize");
  return R;
}

int Lowerer::denseValue(int V) {
  if (!Vals[V].Strided)
    return V;
  auto Key = std::make_pair(V, -1);
  auto It = Converted.find(Key);
  if (It != Converted.end())
    return It->second;
  const Value X = Vals[V];
  int R = newValue(X.Dt, X.Dims, Layout::Plain, X.Q,
                   P.Buffers[X.Buf].Name + ".dense");
  addReorder(V, R, scratchpadAttr(), P.Buffers[X.Buf].Name + ".dense",
             "reorder");
  Vals[R].IntF32 = X.IntF32;
  Vals[R].IntDt = X.IntDt;
  Converted[Key] = R;
  return R;
}

int Lowerer::codesAsInt8(int V) {
  assert(Vals[V].IntF32 && "int8 again from f32 codes only");
  auto Key = std::make_pair(V, -2);
  auto It = Converted.find(Key);
  if (It != Converted.end())
    return It->second;
  int D = denseValue(V);
  const Value X = Vals[D];
  int R = newValue(X.IntDt, X.Dims, Layout::Plain, X.Q,
                   P.Buffers[X.Buf].Name + ".int8");
  dnnl::primitive_attr A = scratchpadAttr();
  if (X.Q.ZeroPoint != 0)
    A.set_zero_points(DNNL_ARG_DST, 0, {static_cast<int32_t>(X.Q.ZeroPoint)});
  addReorder(D, R, A, P.Buffers[X.Buf].Name + ".int8", "quantize");
  Converted[Key] = R;
  return R;
}

bool Lowerer::onlyExactMatmulsRead(const Node &N) const {
  if (!N.hasUsers())
    return false;
  return llvm::all_of(N.users(), [&](const Node *U) {
    const LoweringRule *R = lookupLoweringRule(*U, GM);
    if (!R || !U->numArgs() || !U->arg(0).isNode())
      return false;
    if (R->Kind == LowerKind::View || R->Kind == LowerKind::Permute ||
        R->Kind == LowerKind::Alias)
      return U->arg(0).getNode() == &N && onlyExactMatmulsRead(*U);
    if (R->Kind != LowerKind::Matmul || U->target() != "quantized_matmul" ||
        U->numArgs() < 2 || !U->arg(1).isNode())
      return false;
    // lowerMatmul's conditions for the exact path (a fused clamp or
    // activation would still turn it down: then the codes go int8 again).
    const TensorType &TA = typeOf(U->arg(0).getNode());
    const TensorType &TB = typeOf(U->arg(1).getNode());
    const TensorType &TO = typeOf(U);
    return !TA.Dims.empty() && TA.Dims.back() <= ExactFloatDepth &&
           TA.Dims.size() == TO.Dims.size() &&
           TB.Dims.size() == TO.Dims.size() && TO.Quant.isPerTensor();
  });
}

int Lowerer::broadcastValue(int V, llvm::ArrayRef<int64_t> To,
                            const std::string &Name) {
  V = denseValue(V);
  const Value X = Vals[V];
  int R = newValue(X.Dt, To, Layout::Plain, X.Q, Name);
  const Value Y = Vals[R];
  // The trailing dimensions that agree form one contiguous block, copied
  // whole; the outer dimensions step through the source (stride 0 where
  // broadcast).
  size_t Inner = To.size();
  while (Inner > 0 && X.Dims[Inner - 1] == To[Inner - 1])
    --Inner;
  size_t Block =
      static_cast<size_t>(numElements(To.drop_front(Inner))) * dtypeSize(X.Dt);
  memory::dims St = denseStrides(X.Dims);
  Shape Outer(To.begin(), To.begin() + Inner), SrcSt;
  for (size_t I = 0; I < Inner; ++I)
    SrcSt.push_back(X.Dims[I] == To[I] ? St[I] * dtypeSize(X.Dt) : 0);
  auto Fn = [X, Y, Outer, SrcSt, Block](Program &Prog) -> llvm::Error {
    const char *In = static_cast<const char *>(Prog.address(X.Buf, X.Offset));
    char *Out = static_cast<char *>(Prog.address(Y.Buf, Y.Offset));
    Shape Idx(Outer.size(), 0);
    for (int64_t I = 0, N = numElements(Outer); I < N; ++I) {
      int64_t Off = 0;
      for (size_t D = 0; D < Outer.size(); ++D)
        Off += Idx[D] * SrcSt[D];
      std::memcpy(Out + I * Block, In + Off, Block);
      for (size_t D = Outer.size(); D-- > 0;) {
        if (++Idx[D] < Outer[D])
          break;
        Idx[D] = 0;
      }
    }
    return llvm::Error::success();
  };
  addHost(Name, "broadcast", std::move(Fn), {X.Buf}, {Y.Buf});
  return R;
}

//===----------------------------------------------------------------------===//
// matmul
//===----------------------------------------------------------------------===//

/// Dense strides for \p Dims in the order of \p Like's strides (outermost
/// first): a copy in this order reads the source sequentially.
static memory::dims stridesInOrderOf(llvm::ArrayRef<int64_t> Dims,
                                     const memory::desc &Like) {
  std::optional<memory::dims> Src = plainStrides(Like);
  std::vector<size_t> Order(Dims.size());
  for (size_t I = 0; I < Order.size(); ++I)
    Order[I] = I;
  if (Src && Src->size() == Dims.size())
    std::stable_sort(Order.begin(), Order.end(),
                     [&](size_t X, size_t Y) { return (*Src)[X] > (*Src)[Y]; });
  memory::dims St(Dims.size());
  int64_t Next = 1;
  for (size_t I = Order.size(); I-- > 0;) {
    St[Order[I]] = Next;
    Next *= Dims[Order[I]];
  }
  return St;
}

/// quantized_matmul of two activations through oneDNN's f32 matmul: the
/// operands become the float integers q - zero_point and the accumulator is
/// exact, so the result is the int8 matmul's. oneDNN 2.6's int8 matmul pays
/// a u8 -> s8 reorder of the right operand and a fixed cost per small
/// matrix that, for attention's [17 x 16] heads, took several times the
/// f32 kernel's time. Post-ops round, clamp and (for a fused dequantize)
/// rescale.
llvm::Expected<bool> Lowerer::lowerMatmulExactF32(const Group &G, int A,
                                                  int B) {
  const TensorType &NT = typeOf(G.Anchor);
  const QuantParams &QA = Vals[A].Q, &QB = Vals[B].Q, &QO = NT.Quant;
  if (!QA.isPerTensor() || !QB.isPerTensor() || !QO.isPerTensor() ||
      G.Clamp.Active || !G.Acts.empty() || G.SumOther)
    return false;
  auto [Min, Max] = NT.Dtype == DType::U8 ? std::pair<int, int>(0, 255)
                                          : std::pair<int, int>(-128, 127);
  dnnl::primitive_attr Attr = scratchpadAttr();
  Attr.set_output_scales(0,
                         {static_cast<float>(QA.Scale * QB.Scale / QO.Scale)});
  // The reference's quantize_val: round half to even, then the zero point.
  dnnl::post_ops Post;
  Post.append_eltwise(1.0f, dnnl::algorithm::eltwise_round, 0.0f, 0.0f);
  Post.append_eltwise(1.0f, dnnl::algorithm::eltwise_clip,
                      static_cast<float>(Min - QO.ZeroPoint),
                      static_cast<float>(Max - QO.ZeroPoint));
  if (G.Dequant)
    Post.append_eltwise(1.0f, dnnl::algorithm::eltwise_linear,
                        static_cast<float>(QO.Scale * G.OutScale), 0.0f);
  Attr.set_post_ops(Post);
  const Shape &OutDims = NT.Dims;
  memory::desc DstMd(memory::dims(OutDims.begin(), OutDims.end()),
                     memory::data_type::f32, denseStrides(OutDims));
  // The float copies keep their sources' byte order where the matmul takes
  // those strides (a transposed right operand stays a sequential copy).
  auto Make = [&](const memory::desc &X, const memory::desc &Y)
      -> std::optional<dnnl::matmul::primitive_desc> {
    try {
      return dnnl::matmul::primitive_desc(dnnl::matmul::desc(X, Y, DstMd), Attr,
                                          P.Engine);
    } catch (const dnnl::error &) {
      return std::nullopt;
    }
  };
  // Operands already in f32 codes (Value::IntF32) are read where they are.
  auto F32Desc = [&](int V, bool KeepOrder) {
    const Value &X = Vals[V];
    if (X.IntF32 && KeepOrder)
      return X.Md;
    return memory::desc(
        memory::dims(X.Dims.begin(), X.Dims.end()), memory::data_type::f32,
        KeepOrder ? stridesInOrderOf(X.Dims, X.Md) : denseStrides(X.Dims));
  };
  memory::desc AMd = F32Desc(A, true), BMd = F32Desc(B, true);
  bool InPlace = true;
  auto PD = Make(AMd, BMd);
  if (!PD) {
    AMd = F32Desc(A, false);
    BMd = F32Desc(B, false);
    InPlace = false;
    PD = Make(AMd, BMd);
  }
  if (!PD)
    return false;
  std::string Name = G.name();
  // \p V as the float integers q - zero_point, laid out as \p Md.
  auto IntegerValued = [&](int V, const memory::desc &Md,
                           const std::string &Suffix) {
    if (Vals[V].IntF32 && InPlace)
      return V;
    Value F = Vals[V];
    F.Dt = DType::F32;
    F.Md = Md;
    F.Q = QuantParams();
    F.Offset = 0;
    F.PermSource = -1;
    F.Strided = plainStrides(Md) != denseStrides(F.Dims);
    F.Buf = P.addBuffer(BufferKind::Arena, Md.get_size(), Name + Suffix);
    int R = addValue(std::move(F));
    dnnl::primitive_attr RA = scratchpadAttr();
    if (Vals[V].Q.ZeroPoint != 0 && !Vals[V].IntF32)
      RA.set_zero_points(DNNL_ARG_SRC, 0,
                         {static_cast<int32_t>(Vals[V].Q.ZeroPoint)});
    addReorder(V, R, RA, Name + Suffix, "reorder");
    return R;
  };
  int AF = IntegerValued(A, AMd, ".lhs_f32");
  int BF = IntegerValued(B, BMd, ".rhs_f32");
  int Dst = newValue(DType::F32, OutDims, Layout::Plain, QuantParams(),
                     G.Dequant ? Name : Name + ".int_f32");
  PrimitiveStep &S =
      addPrimitive(*PD, dnnl::matmul(*PD), Name, "matmul",
                   {{DNNL_ARG_SRC, Vals[AF].Buf, Vals[AF].Offset, AMd},
                    {DNNL_ARG_WEIGHTS, Vals[BF].Buf, Vals[BF].Offset, BMd},
                    {DNNL_ARG_DST, Vals[Dst].Buf, Vals[Dst].Offset, DstMd}});
  S.Info.Detail =
      G.Dequant ? "int8 as exact f32, f32-dst" : "int8 as exact f32";
  const Node *Deq = firstOperandUser(*G.last());
  if (!G.Dequant && Deq && Deq->op() == OpCode::CallMethod &&
      Deq->target() == "dequantize" && !softmaxIsland(*Deq).empty()) {
    // The softmax island reads the float integers themselves.
    Vals[Dst].IntF32 = true;
    Vals[Dst].IntDt = NT.Dtype;
    Vals[Dst].Q = QO;
    S.Info.Detail += ", f32 integers";
  } else if (!G.Dequant) {
    // The float integers q - zero_point become the int8 output.
    int Q = newValue(NT.Dtype, OutDims, Layout::Plain, QO, Name);
    dnnl::primitive_attr QAttr = scratchpadAttr();
    if (QO.ZeroPoint != 0)
      QAttr.set_zero_points(DNNL_ARG_DST, 0,
                            {static_cast<int32_t>(QO.ZeroPoint)});
    addReorder(Dst, Q, QAttr, Name, "quantize");
    Dst = Q;
  }
  for (const Node *M : G.Members)
    bindNode(M, Dst);
  return true;
}

llvm::Expected<bool> Lowerer::lowerMatmul(const Group &G) {
  const Node &N = *G.Anchor;
  // matmul(a, b) / quantized_matmul(a, b, scale, zero_point).
  if (N.numArgs() < 2 || !N.arg(0).isNode() || !N.arg(1).isNode())
    return false;
  auto AV = valueOf(N.arg(0).getNode());
  if (!AV)
    return AV.takeError();
  auto BV = valueOf(N.arg(1).getNode());
  if (!BV)
    return BV.takeError();
  int A = inLayout(*AV, Layout::Plain), B = inLayout(*BV, Layout::Plain);
  bool Int8 = Vals[A].Dt != DType::F32 || Vals[A].IntF32;
  if (Vals[A].Dims.size() < 2 || Vals[B].Dims.size() < 2 ||
      (Vals[B].Dt != DType::F32 || Vals[B].IntF32) != Int8)
    return false;
  const TensorType &NT = typeOf(&N);
  const Shape &OutDims = NT.Dims;
  size_t R = std::max(Vals[A].Dims.size(), Vals[B].Dims.size());
  if (OutDims.size() != R)
    return false;
  // An int8 matmul writes its int8 output (rounded to the node's qparams,
  // as the reference does); a fused dequantize (and `* c`) is one reorder
  // after it.
  if (Int8 && G.Gelu != Group::GeluKind::None)
    return false;
  if (Int8 && Vals[A].Dims.back() <= ExactFloatDepth &&
      Vals[A].Dims.size() == R && Vals[B].Dims.size() == R) {
    auto Done = lowerMatmulExactF32(G, A, B);
    if (!Done || *Done)
      return Done;
  }
  // f32 codes for an exact matmul that did not take them: int8 again.
  for (int *V : {&A, &B})
    if (Vals[*V].IntF32)
      *V = codesAsInt8(*V);
  DType OutDt = Int8 ? NT.Dtype : DType::F32;
  std::string Detail;
  dnnl::primitive_attr Attr = scratchpadAttr();
  double Scale = Int8 ? 1.0 : G.OutScale;
  if (Int8) {
    // oneDNN's int8 matmul takes s8 weights: a u8 right operand moves to s8
    // (its zero point with it) in the reorder that also makes it dense.
    if (Vals[B].Dt == DType::U8) {
      // Dense first: oneDNN 2.6's reorder drops the source zero point for
      // some strided views (a [N, 17, 4, 16] buffer read as permute(0, 2,
      // 3, 1), as torch.onnx.export writes k.transpose(-2, -1) after the
      // head split), which moved every key by 128.
      B = denseValue(B);
      Value BV2 = Vals[B];
      int S8 =
          newValue(DType::S8, BV2.Dims, Layout::Plain,
                   QuantParams::perTensor(BV2.Q.Scale, BV2.Q.ZeroPoint - 128),
                   G.name() + ".rhs_s8");
      dnnl::primitive_attr RA = scratchpadAttr();
      RA.set_zero_points(DNNL_ARG_SRC, 0, {128});
      addReorder(B, S8, RA, G.name() + ".rhs_s8", "reorder");
      B = S8;
    }
    const QuantParams &QA = Vals[A].Q, &QB = Vals[B].Q;
    Scale *= QA.Scale * QB.Scale;
    if (OutDt != DType::F32)
      Scale /= NT.Quant.Scale;
    if (QA.ZeroPoint != 0)
      Attr.set_zero_points(DNNL_ARG_SRC, 0,
                           {static_cast<int32_t>(QA.ZeroPoint)});
    if (QB.ZeroPoint != 0)
      Attr.set_zero_points(DNNL_ARG_WEIGHTS, 0,
                           {static_cast<int32_t>(QB.ZeroPoint)});
    if (OutDt != DType::F32 && NT.Quant.ZeroPoint != 0)
      Attr.set_zero_points(DNNL_ARG_DST, 0,
                           {static_cast<int32_t>(NT.Quant.ZeroPoint)});
    Detail += G.Dequant ? " int8 f32-dst" : " int8";
  }
  if (Scale != 1.0)
    Attr.set_output_scales(0, {static_cast<float>(Scale)});
  if (G.OutScale != 1.0)
    Detail += " scale";
  Attr.set_post_ops(postOps(G, OutDt,
                            OutDt == DType::F32 ? QuantParams() : NT.Quant,
                            nullptr, Detail));
  // Operands of lower rank broadcast: leading 1s keep their strides valid.
  auto Desc = [&](int V) {
    const Value &X = Vals[V];
    memory::dims St =
        X.Md.data.format_kind == dnnl_blocked
            ? memory::dims(X.Md.data.format_desc.blocking.strides,
                           X.Md.data.format_desc.blocking.strides +
                               X.Dims.size())
            : denseStrides(X.Dims);
    memory::dims D = padRank(X.Dims, R);
    St.insert(St.begin(), R - X.Dims.size(),
              St.empty() ? 1 : St[0] * X.Dims[0]);
    return memory::desc(D, toDnnl(X.Dt), St);
  };
  memory::desc DstMd(padRank(OutDims, R), toDnnl(OutDt), denseStrides(OutDims));
  auto Make = [&](int X, int Y) -> std::optional<dnnl::matmul::primitive_desc> {
    try {
      return dnnl::matmul::primitive_desc(
          dnnl::matmul::desc(Desc(X), Desc(Y), DstMd), Attr, P.Engine);
    } catch (const dnnl::error &) {
      return std::nullopt;
    }
  };
  auto PD = Make(A, B);
  if (!PD && (Vals[A].Strided || Vals[B].Strided)) {
    A = denseValue(A);
    B = denseValue(B);
    PD = Make(A, B);
  }
  if (!PD)
    return false;
  int Dst = newValue(OutDt, OutDims, Layout::Plain,
                     OutDt == DType::F32 ? QuantParams() : NT.Quant, G.name());
  PrimitiveStep &S =
      addPrimitive(*PD, dnnl::matmul(*PD), G.name(), "matmul",
                   {{DNNL_ARG_SRC, Vals[A].Buf, Vals[A].Offset, Desc(A)},
                    {DNNL_ARG_WEIGHTS, Vals[B].Buf, Vals[B].Offset, Desc(B)},
                    {DNNL_ARG_DST, Vals[Dst].Buf, Vals[Dst].Offset, DstMd}});
  if (Vals[A].Strided || Vals[B].Strided)
    Detail += " strided";
  S.Info.Detail = llvm::StringRef(Detail).trim().str();
  if (Int8 && G.Dequant) {
    QuantParams Q = NT.Quant;
    Q.Scale *= G.OutScale;
    int F = newValue(DType::F32, OutDims, Layout::Plain, QuantParams(),
                     G.name() + ".f32");
    addReorder(Dst, F, requantAttr(Q, true), G.name() + ".f32", "dequantize");
    Dst = F;
  }
  for (const Node *M : G.Members)
    bindNode(M, Dst);
  return true;
}

//===----------------------------------------------------------------------===//
// layer_norm, softmax, gelu
//===----------------------------------------------------------------------===//

/// The tensor data of operand \p I of \p N: the module's own (bound with
/// data) or a get_attr's.
static const Tensor *constantOperand(const Lowerer &L, const Node &N,
                                     const BoundArgs &B, size_t I) {
  if (B.isNone(I) || !B.operand(I).isTensor())
    return nullptr;
  if (B.operand(I).tensor().hasData())
    return &B.operand(I).tensor();
  if (N.op() == OpCode::CallModule || I >= N.numArgs() || !N.arg(I).isNode())
    return nullptr;
  const Node *A = N.arg(I).getNode();
  if (A->op() != OpCode::GetAttr)
    return nullptr;
  return L.GM.lookupTensor(A->target());
}

/// quantized_layer_norm over the last dimension as a host loop.
static bool lowerLayerNormInt8(Lowerer &L, const Node &N, int X,
                               const Tensor *W, const Tensor *Bi, double Eps) {
  const Value XI = L.Vals[X];
  const TensorType &OutT = L.typeOf(&N);
  auto M = static_cast<size_t>(XI.Dims.back());
  size_t Rows = static_cast<size_t>(numElements(XI.Dims)) / M;
  auto Copy = [](const Tensor *T) {
    return T ? std::vector<float>(T->data<float>(),
                                  T->data<float>() + T->numElements())
             : std::vector<float>();
  };
  LayerNormInt8 P{XI.Dt,
                  OutT.Dtype,
                  static_cast<float>(XI.Q.Scale),
                  static_cast<int32_t>(XI.Q.ZeroPoint),
                  static_cast<float>(OutT.Quant.Scale),
                  static_cast<int32_t>(OutT.Quant.ZeroPoint),
                  nullptr,
                  nullptr,
                  Eps};
  int Dst = L.newValue(OutT.Dtype, XI.Dims, Layout::Plain, OutT.Quant,
                       N.name().str());
  const Value VD = L.Vals[Dst];
  auto Fn = [P, WV = Copy(W), BV = Copy(Bi), XI, VD, Rows,
             M](Program &Prog) mutable -> llvm::Error {
    P.W = WV.empty() ? nullptr : WV.data();
    P.B = BV.empty() ? nullptr : BV.data();
    layerNormInt8(P, Prog.address(XI.Buf, XI.Offset),
                  Prog.address(VD.Buf, VD.Offset), Rows, M);
    return llvm::Error::success();
  };
  HostStep &S = L.addHost(N.name().str(), "layer_norm_int8", std::move(Fn),
                          {XI.Buf}, {VD.Buf});
  S.Info.Detail = "int8 in and out";
  L.bindNode(&N, Dst);
  return true;
}

static llvm::Expected<bool> lowerLayerNorm(Lowerer &L, const Node &N,
                                           const BoundArgs &B) {
  auto Norm = B.ints(1);
  auto Eps = B.real(4);
  if (!Norm || !Eps) {
    llvm::consumeError(Norm.takeError());
    llvm::consumeError(Eps.takeError());
    return false;
  }
  auto XV = L.valueOf(N.arg(0).getNode());
  if (!XV)
    return XV.takeError();
  int X = L.denseValue(L.inLayout(*XV, Layout::Plain));
  const TensorType &OutT = L.typeOf(&N);
  if (Norm->size() != 1 || L.Vals[X].Dims.empty() ||
      L.Vals[X].Dims.back() != (*Norm)[0])
    return false;
  const Tensor *W = constantOperand(L, N, B, 2);
  const Tensor *Bi = constantOperand(L, N, B, 3);
  if ((!B.isNone(2) && !W) || (!B.isNone(3) && !Bi))
    return false;
  // quantized_layer_norm: oneDNN 2.6 normalizes f32 only, and a dequantize
  // and quantize around it cost twice the norm itself on a transformer's
  // rows, so a host loop goes from int8 to int8.
  if (L.Vals[X].Dt != DType::F32 && OutT.Dtype != DType::F32 &&
      L.Vals[X].Q.isPerTensor() && OutT.Quant.isPerTensor())
    return lowerLayerNormInt8(L, N, X, W, Bi, *Eps);
  if (L.Vals[X].Dt != DType::F32)
    X = dequantized(L, X, N.name().str() + ".f32");
  const Value XI = L.Vals[X];
  auto Flags = dnnl::normalization_flags::none;
  if (W)
    Flags |= dnnl::normalization_flags::use_scale;
  if (Bi)
    Flags |= dnnl::normalization_flags::use_shift;
  dnnl::layer_normalization_forward::primitive_desc PD;
  try {
    PD = dnnl::layer_normalization_forward::primitive_desc(
        dnnl::layer_normalization_forward::desc(
            dnnl::prop_kind::forward_inference, XI.Md, static_cast<float>(*Eps),
            Flags),
        scratchpadAttr(), L.P.Engine);
  } catch (const dnnl::error &) {
    return false;
  }
  int Dst = L.newValue(DType::F32, XI.Dims, Layout::Plain, QuantParams(),
                       N.name().str());
  std::vector<MemArg> Args = {L.arg(DNNL_ARG_SRC, X), L.arg(DNNL_ARG_DST, Dst)};
  int64_t C = (*Norm)[0];
  memory::desc CMd({C}, memory::data_type::f32, memory::format_tag::a);
  if (W)
    Args.push_back({DNNL_ARG_SCALE,
                    L.addConstant(*W, CMd, CMd, N.name().str() + ".weight"), 0,
                    CMd});
  if (Bi)
    Args.push_back({DNNL_ARG_SHIFT,
                    L.addConstant(*Bi, CMd, CMd, N.name().str() + ".bias"), 0,
                    CMd});
  L.addPrimitive(PD, dnnl::layer_normalization_forward(PD), N.name().str(),
                 "layer_norm", std::move(Args));
  if (OutT.Dtype != DType::F32)
    Dst = quantized(L, Dst, OutT.Dtype, OutT.Quant, N.name().str());
  L.bindNode(&N, Dst);
  return true;
}

std::vector<const Node *> Lowerer::softmaxIsland(const Node &Deq) const {
  const TensorType &In = typeOf(Deq.arg(0).getNode());
  if (In.Dtype == DType::F32 || !In.Quant.isPerTensor() || In.Dims.empty() ||
      In.Quant.Scale <= 0 || !Opts.FusePostOps)
    return {};
  std::vector<const Node *> Island = {&Deq};
  const Node *U = firstOperandUser(Deq);
  // Attention's scale: mul by positive constants.
  while (U && U->op() == OpCode::CallFunction && U->target() == "mul" &&
         U->numArgs() == 2 && U->kwargs().empty() &&
         (U->arg(1).isFloat() || U->arg(1).isInt()) &&
         (U->arg(1).isFloat() ? U->arg(1).getFloat() : U->arg(1).getInt()) >
             0) {
    Island.push_back(U);
    U = firstOperandUser(*U);
  }
  if (!U || U->target() != "softmax" || U->op() != OpCode::CallFunction)
    return {};
  auto B = bindDeclared(*U);
  if (!B) {
    llvm::consumeError(B.takeError());
    return {};
  }
  auto Dim = B->second.integer(1);
  if (!Dim) {
    llvm::consumeError(Dim.takeError());
    return {};
  }
  auto Rank = static_cast<int64_t>(In.Dims.size());
  if (*Dim != -1 && *Dim != Rank - 1)
    return {};
  Island.push_back(U);
  const Node *Q = firstOperandUser(*U);
  if (!Q || Q->op() != OpCode::CallFunction ||
      Q->target() != "quantize_per_tensor" || !typeOf(Q).Quant.isPerTensor() ||
      typeOf(Q).Dims != In.Dims)
    return {};
  Island.push_back(Q);
  return Island;
}

llvm::Expected<bool>
Lowerer::lowerSoftmaxIsland(const Node &Deq,
                            llvm::ArrayRef<const Node *> Island) {
  auto XV = valueOf(Deq.arg(0).getNode());
  if (!XV)
    return XV.takeError();
  int X = denseValue(inLayout(*XV, Layout::Plain));
  const Value XI = Vals[X];
  const TensorType &OutT = typeOf(Island.back());
  // Codes, or the float integers q - zp an exact-f32 matmul left: the
  // exponentials depend only on distances, which the zero point leaves.
  DType InDt = XI.IntF32 ? DType::F32 : XI.Dt;
  // The real value of code q is C * (q - zp); exp(x - max) only depends on
  // the distance of q below the row's largest code.
  double C = XI.Q.Scale;
  for (const Node *N : Island)
    if (N->target() == "mul")
      C *= N->arg(1).isFloat() ? N->arg(1).getFloat() : N->arg(1).getInt();
  std::vector<float> Exp(256);
  for (int D = 0; D < 256; ++D)
    Exp[D] = std::exp(static_cast<float>(-C * D));
  auto Len = static_cast<size_t>(XI.Dims.back());
  size_t Rows = static_cast<size_t>(numElements(XI.Dims)) / Len;
  std::string Name = Deq.name().str() + ".." + Island.back()->name().str();
  int Dst = newValue(OutT.Dtype, XI.Dims, Layout::Plain, OutT.Quant, Name);
  const Value VD = Vals[Dst];
  SoftmaxInt8 SP{InDt, OutT.Dtype, nullptr,
                 static_cast<float>(OutT.Quant.Scale),
                 static_cast<int32_t>(OutT.Quant.ZeroPoint)};
  auto Fn = [SP, Exp, XI, VD, Rows, Len](Program &Prog) mutable -> llvm::Error {
    SP.Exp = Exp.data();
    softmaxInt8(SP, Prog.address(XI.Buf, XI.Offset),
                Prog.address(VD.Buf, VD.Offset), Rows, Len);
    return llvm::Error::success();
  };
  HostStep &S =
      addHost(Name, "softmax_int8", std::move(Fn), {XI.Buf}, {VD.Buf});
  S.Info.Detail = "rows of " + std::to_string(Len);
  for (const Node *N : Island)
    bindNode(N, Dst);
  return true;
}

static llvm::Expected<bool> lowerSoftmax(Lowerer &L, const Node &N,
                                         const BoundArgs &B) {
  auto Dim = B.integer(1);
  if (!Dim) {
    llvm::consumeError(Dim.takeError());
    return false;
  }
  auto XV = L.valueOf(N.arg(0).getNode());
  if (!XV)
    return XV.takeError();
  int X = L.denseValue(L.inLayout(*XV, Layout::Plain));
  const TensorType &OutT = L.typeOf(&N);
  // quantized_softmax: the int8 input dequantized by a reorder, softmax_v2
  // writing the fixed-qparams int8 output itself.
  if (L.Vals[X].Dt != DType::F32)
    X = dequantized(L, X, N.name().str() + ".f32");
  const Value XI = L.Vals[X];
  auto Axis = ref::normalizeDim(*Dim, static_cast<int64_t>(XI.Dims.size()));
  if (!Axis) {
    llvm::consumeError(Axis.takeError());
    return false;
  }
  // A float softmax whose only user quantizes it (PyTorch keeps softmax
  // float and observes its output): softmax_v2 writes the int8 output
  // itself, and the quantize is bound here.
  const Node *Quantize = nullptr;
  if (OutT.Dtype == DType::F32 && L.Opts.FusePostOps && N.users().size() == 1 &&
      N.users()[0]->op() == OpCode::CallFunction &&
      N.users()[0]->target() == "quantize_per_tensor" &&
      L.typeOf(N.users()[0]).Quant.isPerTensor())
    Quantize = N.users()[0];
  const TensorType &DstT = Quantize ? L.typeOf(Quantize) : OutT;
  bool Int8 = DstT.Dtype != DType::F32;
  dnnl::primitive_attr Attr = scratchpadAttr();
  if (Int8) {
    Attr.set_output_scales(0, {static_cast<float>(1.0 / DstT.Quant.Scale)});
    if (DstT.Quant.ZeroPoint != 0)
      return false;
  }
  memory::desc DstMd = makeDesc(DstT.Dtype, XI.Dims, Layout::Plain);
  dnnl::softmax_v2_forward::primitive_desc PD;
  try {
    PD = dnnl::softmax_v2_forward::primitive_desc(
        dnnl::softmax_v2_forward::desc(dnnl::prop_kind::forward_inference,
                                       dnnl::algorithm::softmax_accurate, XI.Md,
                                       DstMd, static_cast<int>(*Axis)),
        Attr, L.P.Engine);
  } catch (const dnnl::error &) {
    return false;
  }
  std::string Name = N.name().str();
  if (Quantize)
    Name += "+" + Quantize->name().str();
  int Dst = L.newValue(DstT.Dtype, XI.Dims, Layout::Plain, DstT.Quant, Name);
  PrimitiveStep &S =
      L.addPrimitive(PD, dnnl::softmax_v2_forward(PD), Name, "softmax",
                     {L.arg(DNNL_ARG_SRC, X), L.arg(DNNL_ARG_DST, Dst)});
  if (Int8)
    S.Info.Detail = "int8 dst";
  L.bindNode(&N, Dst);
  if (Quantize)
    L.bindNode(Quantize, Dst);
  return true;
}

static llvm::Expected<bool> lowerGelu(Lowerer &L, const Node &N,
                                      const BoundArgs &B) {
  const Operand &A = B.operand(1);
  if (A.isTensor() || A.isList() || !A.arg().isString())
    return false;
  bool Tanh = A.arg().getString() == "tanh";
  auto XV = L.valueOf(N.arg(0).getNode());
  if (!XV)
    return XV.takeError();
  int X = L.denseValue(*XV);
  const Value XI = L.Vals[X];
  dnnl::eltwise_forward::primitive_desc PD;
  try {
    PD = dnnl::eltwise_forward::primitive_desc(
        dnnl::eltwise_forward::desc(dnnl::prop_kind::forward_inference,
                                    Tanh ? dnnl::algorithm::eltwise_gelu_tanh
                                         : dnnl::algorithm::eltwise_gelu_erf,
                                    XI.Md, 0.0f, 0.0f),
        scratchpadAttr(), L.P.Engine);
  } catch (const dnnl::error &) {
    return false;
  }
  int Dst =
      L.newValue(DType::F32, XI.Dims, XI.L, QuantParams(), N.name().str());
  PrimitiveStep &S =
      L.addPrimitive(PD, dnnl::eltwise_forward(PD), N.name().str(), "eltwise",
                     {L.arg(DNNL_ARG_SRC, X), L.arg(DNNL_ARG_DST, Dst)});
  S.Info.Detail = Tanh ? "gelu_tanh" : "gelu_erf";
  L.bindNode(&N, Dst);
  return true;
}

//===----------------------------------------------------------------------===//
// permute / transpose, select, expand
//===----------------------------------------------------------------------===//

/// Whether every user of \p N is a matmul reading it as an operand.
static bool onlyMatmulsRead(const Lowerer &L, const Node &N) {
  if (!N.hasUsers())
    return false;
  return llvm::all_of(N.users(), [&](const Node *U) {
    const LoweringRule *R = lookupLoweringRule(*U, L.GM);
    return R && R->Kind == LowerKind::Matmul;
  });
}

static llvm::Expected<bool> lowerPermute(Lowerer &L, const Node &N,
                                         const BoundArgs &B) {
  auto XV = L.valueOf(N.arg(0).getNode());
  if (!XV)
    return XV.takeError();
  int X = L.denseValue(L.inLayout(*XV, Layout::Plain));
  const Value XI = L.Vals[X];
  auto Perm = permutation(B, N.target(), static_cast<int64_t>(XI.Dims.size()));
  if (!Perm)
    return false;
  memory::dims In = denseStrides(XI.Dims), St;
  Shape Dims;
  for (int64_t P : *Perm) {
    St.push_back(In[P]);
    Dims.push_back(XI.Dims[P]);
  }
  Value V = XI;
  V.Dims = Dims;
  V.Md = stridedDesc(XI.Dt, Dims, St);
  V.Q = L.typeOf(&N).Quant;
  V.Strided = St != denseStrides(Dims);
  int View = L.addValue(std::move(V));
  // Matmuls read the strided view itself; anyone else gets dense bytes.
  L.bindNode(&N, onlyMatmulsRead(L, N) ? View : L.denseValue(View));
  return true;
}

static llvm::Expected<bool> lowerSelect(Lowerer &L, const Node &N,
                                        const BoundArgs &B) {
  auto XV = L.valueOf(N.arg(0).getNode());
  if (!XV)
    return XV.takeError();
  int X = L.denseValue(L.inLayout(*XV, Layout::Plain));
  const Value XI = L.Vals[X];
  auto Dim = B.integer(1), Index = B.integer(2);
  if (!Dim || !Index) {
    llvm::consumeError(Dim.takeError());
    llvm::consumeError(Index.takeError());
    return false;
  }
  auto S = ref::selectSpec(XI.Dims, *Dim, *Index);
  if (!S) {
    llvm::consumeError(S.takeError());
    return false;
  }
  memory::dims In = denseStrides(XI.Dims), St;
  for (size_t I = 0; I < XI.Dims.size(); ++I)
    if (static_cast<int64_t>(I) != S->Dim)
      St.push_back(In[I]);
  Value V = XI;
  V.Dims = S->Out;
  V.Md = stridedDesc(XI.Dt, S->Out, St);
  V.Offset += static_cast<size_t>(S->Index * In[S->Dim]) * dtypeSize(XI.Dt);
  V.Q = L.typeOf(&N).Quant;
  V.Strided = true;
  L.bindNode(&N, L.denseValue(L.addValue(std::move(V))));
  return true;
}

static llvm::Expected<bool> lowerExpand(Lowerer &L, const Node &N) {
  const Node *In = N.arg(0).getNode();
  const Shape &OutDims = L.typeOf(&N).Dims;
  // The ViT's class token: a parameter, expanded once at compile time.
  if (In->op() != OpCode::GetAttr)
    return false;
  const Tensor *T = L.GM.lookupTensor(In->target());
  if (!T || !T->hasData())
    return false;
  Tensor E = ref::expand(*T, OutDims);
  memory::desc Md = makeDesc(E.dtype(), OutDims, Layout::Plain);
  Value V;
  V.Buf = L.addConstant(E, Md, Md, N.name().str());
  V.Md = Md;
  V.Dt = E.dtype();
  V.Dims = OutDims;
  V.Q = L.typeOf(&N).Quant;
  L.bindNode(&N, L.addValue(std::move(V)));
  return true;
}

llvm::Expected<bool> Lowerer::lowerTransformerOp(const Node &N,
                                                 const LoweringRule &R) {
  if (!N.numArgs() || !N.arg(0).isNode())
    return false;
  auto B = bindDeclared(N);
  if (!B)
    return nodeError(N, llvm::toString(B.takeError()));
  switch (R.Kind) {
  case LowerKind::LayerNorm:
    return lowerLayerNorm(*this, N, B->second);
  case LowerKind::Softmax:
    return lowerSoftmax(*this, N, B->second);
  case LowerKind::Gelu:
    return lowerGelu(*this, N, B->second);
  case LowerKind::Permute:
    return lowerPermute(*this, N, B->second);
  case LowerKind::Select:
    return lowerSelect(*this, N, B->second);
  case LowerKind::Expand:
    return lowerExpand(*this, N);
  default:
    llvm_unreachable("not a transformer op");
  }
}
