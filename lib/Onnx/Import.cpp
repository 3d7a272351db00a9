//===- Import.cpp - ONNX models into GraphModules -------------------------===//
//
// The model walk: parse (protobuf or ONNX text), list unsupported ops before
// any work, check that every input is defined before use, read the
// initializers (sizes, external data), run ONNX's checker, read the graph
// inputs, import each node through the import table (ImportTable.cpp), then
// let ONNX's shape inference check the declared shapes and name nodes as the
// tracer would. Every protobuf / ONNX exception is caught here.
//
//===----------------------------------------------------------------------===//

#include "NodeReader.h"

#include "qfx/IR/GraphModule.h"
#include "qfx/IR/Verifier.h"
#include "qfx/Onnx/Import.h"
#include "qfx/Support/Error.h"
#include "qfx/Support/FileIO.h"
#include "qfx/Transforms/Pass.h"

#include "onnx/checker.h"
#include "onnx/defs/parser.h"
#include "onnx/defs/schema.h"
#include "onnx/onnx_pb.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/Path.h"

#include <climits>
#include <exception>
#include <map>
#include <set>

using namespace qfx;
using namespace qfx::onnximport;

/// Bounds on what a model may hold (a fuzzed file cannot make us allocate
/// or loop without end).
static constexpr int MaxNodes = 200000;
static constexpr int MaxTensors = 200000;
static constexpr int MaxGraphValues = 10000;

namespace {

/// Imports one ModelProto.
class ModelImporter {
public:
  ModelImporter(onnx::ModelProto &M, llvm::StringRef File,
                llvm::StringRef BaseDir, const OnnxImportOptions &Opts)
      : M(M), BaseDir(BaseDir.str()), Opts(Opts) {
    S.File = File.str();
  }

  llvm::Expected<std::unique_ptr<GraphModule>> run();

private:
  llvm::Error checkOpsets();
  llvm::Error checkCounts();
  llvm::Error listUnsupported();
  llvm::Error checkOrder();
  llvm::Error runChecker();
  llvm::Error readInitializers();
  llvm::Error readInputs();
  llvm::Error importNodes();
  llvm::Error writeOutputs();
  llvm::Error checkDeclaredShape(const onnx::ValueInfoProto &Out,
                                 const Node &N) const;
  llvm::Error foldQdq();
  std::string nodeLabel(int I) const;

  onnx::ModelProto &M;
  std::string BaseDir;
  const OnnxImportOptions &Opts;
  ImportState S;
  std::unique_ptr<GraphModule> GM;
};

} // namespace

/// The first line of an exception message.
static std::string firstLine(const char *What) {
  return llvm::StringRef(What).split('\n').first.trim().str();
}

llvm::Error ModelImporter::checkOpsets() {
  for (const onnx::OperatorSetIdProto &O : M.opset_import())
    if (O.domain().empty() || O.domain() == "ai.onnx")
      S.Opset = O.version();
  // Below 11 only for old exports (Upsample): each op's row lists the
  // versions it was reviewed for, so an older op version is still an error.
  if (S.Opset < 7 || S.Opset > 17)
    return fileError(S.File, "opset " + llvm::Twine(S.Opset) +
                                 " of domain 'ai.onnx' is not supported "
                                 "(opsets 7 to 17 are)");
  return llvm::Error::success();
}

llvm::Error ModelImporter::checkCounts() {
  const onnx::GraphProto &G = M.graph();
  if (G.node_size() > MaxNodes)
    return fileError(S.File, "the graph has " + llvm::Twine(G.node_size()) +
                                 " nodes, more than the limit of " +
                                 llvm::Twine(MaxNodes));
  if (G.initializer_size() > MaxTensors)
    return fileError(S.File, "the graph has " +
                                 llvm::Twine(G.initializer_size()) +
                                 " initializers, more than the limit of " +
                                 llvm::Twine(MaxTensors));
  if (G.input_size() > MaxGraphValues || G.output_size() > MaxGraphValues)
    return fileError(S.File, "the graph has more than " +
                                 llvm::Twine(MaxGraphValues) +
                                 " inputs or outputs");
  if (G.output_size() == 0)
    return fileError(S.File, "the graph has no outputs");
  return llvm::Error::success();
}

std::string ModelImporter::nodeLabel(int I) const {
  const onnx::NodeProto &N = M.graph().node(I);
  return N.domain().empty() || N.domain() == "ai.onnx"
             ? N.op_type()
             : N.domain() + "." + N.op_type();
}

llvm::Error ModelImporter::listUnsupported() {
  // Op label -> (count, first node names), in order of first appearance.
  std::vector<std::string> Order;
  std::map<std::string, std::pair<int, std::vector<std::string>>> Missing;
  for (int I = 0; I < M.graph().node_size(); ++I) {
    const onnx::NodeProto &N = M.graph().node(I);
    if (!lookupRules(N.domain(), N.op_type()).empty())
      continue;
    std::string Label = nodeLabel(I);
    auto &Entry = Missing[Label];
    if (Entry.first++ == 0)
      Order.push_back(Label);
    if (Entry.second.size() < 3)
      Entry.second.push_back("'" + N.name() + "'");
  }
  if (Order.empty())
    return llvm::Error::success();
  std::string Msg = "unsupported ops: ";
  for (size_t I = 0; I < Order.size(); ++I) {
    const auto &Entry = Missing[Order[I]];
    Msg += (I ? ", " : "") + Order[I] + " x" + std::to_string(Entry.first) +
           " (" + llvm::join(Entry.second, ", ") +
           (Entry.first > 3 ? ", ..." : "") + ")";
  }
  return fileError(S.File, Msg);
}

llvm::Error ModelImporter::checkOrder() {
  std::set<std::string> Defined;
  for (const onnx::TensorProto &T : M.graph().initializer())
    Defined.insert(T.name());
  for (const onnx::ValueInfoProto &In : M.graph().input())
    Defined.insert(In.name());
  for (int I = 0; I < M.graph().node_size(); ++I) {
    const onnx::NodeProto &N = M.graph().node(I);
    for (const std::string &In : N.input())
      if (!In.empty() && !Defined.count(In))
        return NodeReader(S, N, I).error(
            "input '" + In +
            "' is not defined by an earlier node, an initializer or a graph "
            "input");
    for (const std::string &Out : N.output())
      if (!Out.empty() && !Defined.insert(Out).second)
        return NodeReader(S, N, I).error("output '" + Out +
                                         "' is already defined");
  }
  return llvm::Error::success();
}

/// The checker's context for this model: its IR version, opsets and folder
/// (external data is looked up there, not in the working directory).
static onnx::checker::CheckerContext checkerContext(const onnx::ModelProto &M,
                                                    const std::string &Dir) {
  onnx::checker::CheckerContext Ctx;
  Ctx.set_ir_version(static_cast<int>(M.ir_version()));
  std::unordered_map<std::string, int> Imports;
  for (const onnx::OperatorSetIdProto &O : M.opset_import())
    Imports[O.domain()] = static_cast<int>(O.version());
  Ctx.set_opset_imports(Imports);
  Ctx.set_model_dir(Dir);
  return Ctx;
}

llvm::Error ModelImporter::runChecker() {
  // onnx::checker::check_model(ModelProto) looks for external data in the
  // working directory; this is its body with the model's folder.
  onnx::checker::CheckerContext Ctx = checkerContext(M, BaseDir);
  try {
    if (M.ir_version() < 3 || M.ir_version() > onnx::IR_VERSION)
      return fileError(S.File, "IR version " + llvm::Twine(M.ir_version()) +
                                   " is not supported (3 to " +
                                   llvm::Twine(int(onnx::IR_VERSION)) +
                                   " are)");
    onnx::checker::LexicalScopeContext Lex;
    onnx::checker::check_graph(M.graph(), Ctx, Lex);
    onnx::checker::check_model_local_functions(M, Ctx, Lex);
    return llvm::Error::success();
  } catch (const std::exception &E) {
    std::string Whole = firstLine(E.what());
    // Find the node at fault by checking nodes one by one, in order.
    onnx::checker::LexicalScopeContext Lex;
    for (int I = 0; I < M.graph().node_size(); ++I) {
      const onnx::NodeProto &N = M.graph().node(I);
      try {
        onnx::checker::check_node(N, Ctx, Lex);
      } catch (const std::exception &NE) {
        NodeReader R(S, N, I);
        return R.error("invalid node: " + firstLine(NE.what()));
      }
    }
    return fileError(S.File, "invalid model: " + Whole);
  }
}

llvm::Error ModelImporter::readInitializers() {
  for (const onnx::TensorProto &T : M.graph().initializer()) {
    std::string Where = "initializer '" + T.name() + "'";
    if (S.Values.count(T.name()))
      return fileError(S.File, Where + ": the name is defined twice");
    auto Value = tensorFromProto(T, BaseDir);
    if (!Value)
      return fileError(S.File, Where + ": " + errorToString(Value.takeError()));
    OnnxValue V;
    V.Const = std::move(*Value);
    V.InitName = T.name();
    S.Values[T.name()] = std::move(V);
  }
  return llvm::Error::success();
}

llvm::Error ModelImporter::readInputs() {
  for (const onnx::ValueInfoProto &In : M.graph().input()) {
    if (S.Values.count(In.name()))
      continue; // An initializer listed as an input (IR version < 4).
    std::string Where = "input '" + In.name() + "'";
    if (!In.type().has_tensor_type())
      return fileError(S.File, Where + ": only tensor inputs are supported");
    const onnx::TypeProto::Tensor &TT = In.type().tensor_type();
    std::optional<DType> D = dtypeFromOnnx(TT.elem_type());
    // int64 inputs are indices (nn.Embedding's, arith family).
    if (!D || (*D != DType::F32 && *D != DType::S64))
      return fileError(S.File,
                       Where + ": only float and int64 inputs are supported");
    if (!TT.has_shape())
      return fileError(S.File, Where + ": the shape is unknown");
    TensorType Ty;
    Ty.Dtype = *D;
    bool Batch = false;
    for (int I = 0; I < TT.shape().dim_size(); ++I) {
      const auto &Dim = TT.shape().dim(I);
      if (Dim.has_dim_value() && Dim.dim_value() >= 0) {
        Ty.Dims.push_back(Dim.dim_value());
        continue;
      }
      if (I != 0)
        return fileError(S.File, Where + ": dimension " + llvm::Twine(I) +
                                     " is symbolic ('" + Dim.dim_param() +
                                     "'); only the batch dimension (0) may be");
      // A symbolic batch: typed as 1, kept symbolic in reshape targets.
      Ty.Dims.push_back(1);
      Batch = true;
    }
    if (auto N = checkedNumElements(Ty.Dims, int64_t(1) << 32); !N)
      return fileError(S.File, Where + ": " + errorToString(N.takeError()));
    std::string Name = In.name();
    for (char &C : Name)
      if (!llvm::isAlnum(C) && C != '_')
        C = '_';
    if (Name.empty() || llvm::isDigit(Name[0]))
      Name = "input_" + Name;
    Node *P = GM->graph().placeholder(GM->graph().uniqueName(Name), Ty);
    if (P->name() != In.name())
      P->setMeta("onnx_name", Argument::string(In.name()));
    OnnxValue V;
    V.N = P;
    V.BatchDim0 = Batch;
    S.Values[In.name()] = std::move(V);
  }
  return llvm::Error::success();
}

llvm::Error ModelImporter::importNodes() {
  for (const onnx::NodeProto &N : M.graph().node())
    for (const std::string &In : N.input())
      ++S.Uses[In];
  for (const onnx::ValueInfoProto &Out : M.graph().output()) {
    ++S.Uses[Out.name()];
    S.Outputs.insert(Out.name());
  }
  for (int I = 0; I < M.graph().node_size(); ++I) {
    const onnx::NodeProto &N = M.graph().node(I);
    NodeReader R(S, N, I);
    for (const std::string &In : N.input())
      if (!In.empty() && !S.Values.count(In))
        return R.error("input '" + In +
                       "' is not defined by an earlier node, an initializer "
                       "or a graph input");
    std::string Domain = N.domain() == "ai.onnx" ? "" : N.domain();
    int Opset = static_cast<int>(S.Opset);
    const onnx::OpSchema *Schema =
        onnx::OpSchemaRegistry::Schema(N.op_type(), Opset, Domain);
    if (!Schema)
      return R.error("ONNX has no schema for this op at this opset");
    const ImportHandler *Handler = nullptr;
    std::string Known;
    for (const ImportRule *Rule : lookupRules(Domain, N.op_type()))
      for (int V : Rule->SinceVersions) {
        Known += (Known.empty() ? "" : ", ") + std::to_string(V);
        if (V == Schema->since_version())
          Handler = &Rule->Handler;
      }
    if (!Handler)
      return R.error("version " + llvm::Twine(Schema->since_version()) +
                     " of the op is not supported (versions " + Known +
                     " are)");
    if (llvm::Error E = (*Handler)(R))
      return E;
    S.SeenPaths.insert(R.modulePath());
  }
  return llvm::Error::success();
}

/// The declared shape of a graph output must agree with the shape the op
/// table computed (symbolic dims agree with anything). This replaces ONNX's
/// own shape inference, whose conv/pool rules crash on contradictory
/// declarations in ONNX 1.12 (found by fuzz-onnx-import).
llvm::Error ModelImporter::checkDeclaredShape(const onnx::ValueInfoProto &Out,
                                              const Node &N) const {
  if (!Out.has_type() || !Out.type().has_tensor_type() ||
      !Out.type().tensor_type().has_shape() || !N.type())
    return llvm::Error::success();
  const onnx::TensorShapeProto &Declared = Out.type().tensor_type().shape();
  llvm::ArrayRef<int64_t> Computed = N.type()->Dims;
  bool Agree = Declared.dim_size() == static_cast<int>(Computed.size());
  for (int I = 0; Agree && I < Declared.dim_size(); ++I)
    Agree = !Declared.dim(I).has_dim_value() ||
            Declared.dim(I).dim_value() == Computed[I];
  if (Agree)
    return llvm::Error::success();
  std::string Want;
  for (int I = 0; I < Declared.dim_size(); ++I) {
    const onnx::TensorShapeProto::Dimension &D = Declared.dim(I);
    Want += (I ? "," : "") +
            (D.has_dim_value() ? std::to_string(D.dim_value()) : D.dim_param());
  }
  return fileError(S.File, "output '" + Out.name() + "' is declared [" + Want +
                               "] but computes " + formatShape(Computed));
}

llvm::Error ModelImporter::writeOutputs() {
  std::vector<Argument> Results;
  for (const onnx::ValueInfoProto &Out : M.graph().output()) {
    auto It = S.Values.find(Out.name());
    if (It == S.Values.end())
      return fileError(S.File, "output '" + Out.name() + "' is not defined");
    if (It->second.Part != Partial::None)
      return fileError(S.File, "output '" + Out.name() + "' is " +
                                   describePartial(It->second.Part));
    if (!It->second.N)
      return fileError(S.File, "output '" + Out.name() +
                                   "' is a constant; only computed outputs "
                                   "are supported");
    if (llvm::Error E = checkDeclaredShape(Out, *It->second.N))
      return E;
    Results.push_back(Argument(It->second.N));
  }
  Argument Result =
      Results.size() == 1 ? Results[0] : Argument::list(std::move(Results));
  GM->graph().output(std::move(Result));
  GM->graph().eliminateDeadCode();
  return llvm::Error::success();
}

/// Renames function nodes the way the tracer names them: an op that is the
/// only node of a leaf scope (the ONNX form of a module such as nn.ReLU or
/// nn.AdaptiveAvgPool2d) is named after the module ("maxpool",
/// "features_1_block_1_avgpool"); an op in a container's forward is named
/// after the op ("add", "mul"). Scopes used twice keep their numbered
/// names ("layer1_0_relu", "layer1_0_relu_1").
static void nameLikeTracer(GraphModule &GM) {
  Graph &G = GM.graph();
  std::map<std::string, int> Count;
  std::set<std::string> Containers;
  auto AddParents = [&](llvm::StringRef Path) {
    for (llvm::StringRef P = splitQualifiedName(Path).first; !P.empty();
         P = splitQualifiedName(P).first)
      Containers.insert(P.str());
  };
  for (const std::string &M : GM.moduleNames()) {
    Containers.insert(M); // A scope with a module is no function's leaf.
    AddParents(M);
  }
  for (const Node &N : G) {
    ++Count[N.scope().str()];
    AddParents(N.scope());
  }
  std::vector<std::pair<Node *, std::string>> Wanted;
  for (Node *N : G.nodes()) {
    std::string Want = N->name().str();
    llvm::StringRef Scope = N->scope();
    bool Call =
        N->op() == OpCode::CallFunction || N->op() == OpCode::CallMethod;
    if (Call && !Scope.empty()) {
      if (Containers.count(Scope.str()))
        Want = N->target().str();
      else if (Count[Scope.str()] == 1)
        Want = Scope.str();
    }
    Wanted.emplace_back(N, Want);
  }
  // Free every name first, then hand them out in graph order.
  for (size_t I = 0; I < Wanted.size(); ++I)
    llvm::consumeError(
        G.rename(Wanted[I].first, "__onnx_import_" + std::to_string(I)));
  for (auto &[N, Want] : Wanted) {
    std::string Name = Want;
    for (char &C : Name)
      if (!llvm::isAlnum(C) && C != '_')
        C = '_';
    llvm::consumeError(G.rename(N, G.uniqueName(Name)));
  }
}

llvm::Error ModelImporter::foldQdq() {
  if (!Opts.FoldQdq || !S.SawQdq)
    return llvm::Error::success();
  // The pass lives in Transforms; without it the Q/DQ nodes stay.
  const PassInfo *P = lookupPass("fold-qdq");
  if (!P)
    return llvm::Error::success();
  PassContext Ctx;
  if (llvm::Error E = P->Create()->run(*GM, Ctx))
    return prefixError(std::move(E), S.File);
  return llvm::Error::success();
}

llvm::Expected<std::unique_ptr<GraphModule>> ModelImporter::run() {
  GM = std::make_unique<GraphModule>();
  S.GM = GM.get();
  if (llvm::Error E = checkOpsets())
    return E;
  if (llvm::Error E = checkCounts())
    return E;
  if (llvm::Error E = listUnsupported())
    return E;
  if (llvm::Error E = checkOrder())
    return E;
  // Initializers first: their errors (sizes, external data leaving the
  // folder) are more precise than the checker's.
  if (llvm::Error E = readInitializers())
    return E;
  if (llvm::Error E = runChecker())
    return E;
  if (llvm::Error E = readInputs())
    return E;
  if (llvm::Error E = importNodes())
    return E;
  // Types come from the op table (every handler types its node); ONNX's
  // own shape inference is not run, as its conv/pool rules divide by zero
  // strides and read out of bounds on contradictory shapes in ONNX 1.12
  // (found by fuzz-onnx-import). Declared output shapes are checked below.
  if (llvm::Error E = writeOutputs())
    return E;
  nameLikeTracer(*GM);
  if (llvm::Error E = verify(*GM))
    return prefixError(std::move(E), S.File);
  if (llvm::Error E = foldQdq())
    return E;
  return std::move(GM);
}

/// Runs the importer, turning any exception into an error on \p Name.
static llvm::Expected<std::unique_ptr<GraphModule>>
importModel(onnx::ModelProto &M, llvm::StringRef Name, llvm::StringRef BaseDir,
            const OnnxImportOptions &Opts) {
  try {
    return ModelImporter(M, Name, BaseDir, Opts).run();
  } catch (const std::exception &E) {
    return fileError(Name, firstLine(E.what()));
  }
}

llvm::Expected<std::unique_ptr<GraphModule>>
qfx::importOnnxBuffer(llvm::StringRef Bytes, llvm::StringRef Name,
                      llvm::StringRef BaseDir, const OnnxImportOptions &Opts) {
  if (Bytes.size() > size_t(INT_MAX))
    return fileError(Name, "the file is larger than 2 GiB; keep the weights "
                           "in external data");
  onnx::ModelProto M;
  try {
    if (!M.ParseFromArray(Bytes.data(), static_cast<int>(Bytes.size())))
      return fileError(Name, "not a valid ONNX model (the protobuf does not "
                             "parse; truncated or not ONNX)");
  } catch (const std::exception &E) {
    return fileError(Name, "not a valid ONNX model: " + firstLine(E.what()));
  }
  return importModel(M, Name, BaseDir, Opts);
}

llvm::Expected<std::unique_ptr<GraphModule>>
qfx::importOnnx(llvm::StringRef Path, const OnnxImportOptions &Opts) {
  auto Bytes = readFile(Path);
  if (!Bytes)
    return Bytes.takeError();
  llvm::StringRef Dir = llvm::sys::path::parent_path(Path);
  return importOnnxBuffer(*Bytes, Path, Dir.empty() ? "." : Dir, Opts);
}

llvm::Expected<std::unique_ptr<GraphModule>>
qfx::importOnnxText(llvm::StringRef Text, llvm::StringRef Name,
                    const OnnxImportOptions &Opts) {
  onnx::ModelProto M;
  try {
    std::string Copy = Text.str();
    onnx::OnnxParser Parser(Copy.c_str());
    auto Status = Parser.Parse(M);
    if (!Status.IsOK()) {
      // "[ParseError at position (line: 3 column: 16)]\nError context: ...
      // \nExpected character > not found.": position and reason.
      llvm::SmallVector<llvm::StringRef, 4> Lines;
      llvm::StringRef(Status.ErrorMessage()).split(Lines, '\n', -1, false);
      std::string Msg = Lines.empty() ? "" : Lines.front().trim().str();
      if (Lines.size() > 1)
        Msg += ": " + Lines.back().trim().rtrim('.').str();
      return fileError(Name, "ONNX text: " + Msg);
    }
  } catch (const std::exception &E) {
    return fileError(Name, "ONNX text: " + firstLine(E.what()));
  }
  return importModel(M, Name, "", Opts);
}

bool qfx::looksLikeOnnx(llvm::StringRef Bytes) {
  // A serialized ModelProto starts with field 1 (ir_version, a varint):
  // tag byte 0x08, then a small version number. JSON starts with '{' and the
  // text IR with a letter or '/', so neither can look like this.
  return Bytes.size() >= 2 && uint8_t(Bytes[0]) == 0x08 &&
         uint8_t(Bytes[1]) >= 1 && uint8_t(Bytes[1]) < 0x40;
}
