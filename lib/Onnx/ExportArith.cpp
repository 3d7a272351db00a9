//===- ExportArith.cpp - ONNX forms of sub, div, interpolate, narrow ------===//
//
// The arith family's export rows: Sub / Div / Neg / Reciprocal, narrow as a
// one-axis Slice, and interpolate as the Resize torch.onnx.export writes
// (nearest: asymmetric + floor; bilinear: half_pixel or align_corners; from
// scales, or from sizes when PyTorch derives the scale from them). The
// importer (ImportArith.cpp) reads these back to the same ops.
//
//===----------------------------------------------------------------------===//

#include "ExportState.h"

#include "qfx/Runtime/ArithParams.h"
#include "qfx/Support/Error.h"

using namespace qfx;
using namespace qfx::onnxexport;

static void attrString(onnx::NodeProto &P, const char *Name,
                       const std::string &V) {
  onnx::AttributeProto *A = P.add_attribute();
  A->set_name(Name);
  A->set_type(onnx::AttributeProto::STRING);
  A->set_s(V);
}

/// input (op) other, or other (op) input for \p Swap (rsub).
static Result arith(ExportState &S, const NodeCall &C, llvm::StringRef Op,
                    bool Swap) {
  if (C.hasParam("alpha")) {
    QFX_TRY(Alpha, C.Args->real(C.param("alpha")));
    if (*Alpha != 1.0)
      return makeError(Op.lower() + " with alpha " + std::to_string(*Alpha) +
                       " has no ONNX form");
  }
  QFX_TRY(A, S.floatInput(C, 0));
  QFX_TRY(B, S.floatInput(C, 1));
  return ExportState::out(S.add(Op, Swap ? std::vector<std::string>{*B, *A}
                                         : std::vector<std::string>{*A, *B}));
}

Result onnxexport::emitSub(ExportState &S, const NodeCall &C) {
  return arith(S, C, "Sub", false);
}

Result onnxexport::emitRsub(ExportState &S, const NodeCall &C) {
  return arith(S, C, "Sub", true);
}

Result onnxexport::emitDiv(ExportState &S, const NodeCall &C) {
  QFX_TRY(R, divRounding(*C.Args));
  if (*R != ref::DivRounding::None)
    return makeError("div with a rounding mode has no ONNX form here");
  return arith(S, C, "Div", false);
}

Result onnxexport::emitNeg(ExportState &S, const NodeCall &C) {
  QFX_TRY(X, S.floatInput(C, 0));
  return ExportState::out(S.add("Neg", {*X}));
}

Result onnxexport::emitReciprocal(ExportState &S, const NodeCall &C) {
  QFX_TRY(X, S.floatInput(C, 0));
  return ExportState::out(S.add("Reciprocal", {*X}));
}

/// \p C's bound arguments with the input as a declared tensor of its real
/// shape (the driver binds tags), for the readers that check shapes.
static llvm::Expected<BoundArgs> withInputShape(ExportState &S,
                                                const NodeCall &C) {
  std::optional<Shape> Dims = S.dimsOf(C, 0);
  if (!Dims)
    return makeError(C.Def->Name + std::string(" of a value of unknown shape"));
  std::vector<const char *> Names;
  std::vector<Operand> Values;
  for (size_t I = 0; I < C.Args->size(); ++I) {
    Names.push_back(C.Def->Params[I].Name);
    Values.push_back(I == 0 ? Operand(Tensor::declared(DType::F32, *Dims))
                            : C.Args->operand(I));
  }
  return BoundArgs(C.Def->Name, std::move(Names), std::move(Values));
}

Result onnxexport::emitNarrow(ExportState &S, const NodeCall &C) {
  QFX_TRY(B, withInputShape(S, C));
  QFX_TRY(P, narrowParams(*B));
  QFX_TRY(X, S.floatInput(C, 0));
  std::string Starts = S.constInts("starts", {P->Start});
  std::string Ends = S.constInts("ends", {P->Start + P->Length});
  std::string Axes = S.constInts("axes", {P->Dim});
  return ExportState::out(S.add("Slice", {*X, Starts, Ends, Axes}));
}

Result onnxexport::emitInterpolate(ExportState &S, const NodeCall &C) {
  QFX_TRY(B, withInputShape(S, C));
  QFX_TRY(P, interpolateParams(*B));
  QFX_TRY(X, S.floatInput(C, 0));
  std::vector<std::string> Ins{*X, ""};
  if (P->Scales[0] && P->Scales[1]) {
    Tensor Sc =
        Tensor::fromFloats({4}, {1.0f, 1.0f, static_cast<float>(*P->Scales[0]),
                                 static_cast<float>(*P->Scales[1])});
    Ins.push_back(S.initializer(S.fresh("scales"), Sc));
  } else {
    // sizes = concat(shape(x)[0:2], [h, w]), as torch.onnx.export writes
    // it, so that the batch stays dynamic.
    std::string Shape = ExportState::out(S.add("Shape", {*X}));
    std::string NC = ExportState::out(S.add(
        "Slice", {Shape, S.constInts("nc_starts", {0}),
                  S.constInts("nc_ends", {2}), S.constInts("nc_axes", {0})}));
    onnx::NodeProto &Cat =
        S.add("Concat", {NC, S.constInts("hw", {P->Size[0], P->Size[1]})});
    attrInt(Cat, "axis", 0);
    Ins.push_back("");
    Ins.push_back(ExportState::out(Cat));
  }
  onnx::NodeProto &N = S.add("Resize", Ins);
  if (P->Mode == ref::InterpMode::Nearest) {
    attrString(N, "mode", "nearest");
    attrString(N, "coordinate_transformation_mode", "asymmetric");
    attrString(N, "nearest_mode", "floor");
  } else {
    attrString(N, "mode", "linear");
    attrString(N, "coordinate_transformation_mode",
               P->AlignCorners ? "align_corners" : "half_pixel");
  }
  return ExportState::out(N);
}
