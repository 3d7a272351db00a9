//===- OrtClient.cpp - Runs ONNX models with ONNX Runtime in tests --------===//
//
// Spawns test/ort/ort-run.mjs under Node.js (no shell) with .npy files in a
// scratch folder, reads the outputs back with qfx's .npy reader, and parses
// ONNX Runtime's optimized model with ONNX's protobuf types.
//
//===----------------------------------------------------------------------===//

#include "OrtClient.h"

#include "qfx/Support/Error.h"
#include "qfx/Support/FileIO.h"
#include "qfx/Support/Npy.h"

#include "llvm/ADT/Optional.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"

#include "onnx/onnx_pb.h"

using namespace llvm;

namespace qfx {
namespace testutil {

namespace {

#ifdef QFX_ORT_ENABLED
constexpr bool OrtEnabled = true;
constexpr const char *NodePath = QFX_NODE_PATH;
constexpr const char *OrtDir = QFX_ORT_DIR;
constexpr const char *Runner = QFX_ORT_RUNNER;
constexpr const char *WorkDir = QFX_ORT_WORK_DIR;
#else
constexpr bool OrtEnabled = false;
constexpr const char *NodePath = "";
constexpr const char *OrtDir = "";
constexpr const char *Runner = "";
constexpr const char *WorkDir = "";
#endif

/// A fresh folder under the build folder's scratch area, removed with all
/// its files when the run is over (whatever its result).
class ScratchDir {
public:
  static Expected<ScratchDir> create(StringRef Parent) {
    if (std::error_code EC = sys::fs::create_directories(Parent))
      return fileError(Parent, "cannot create folder: " + EC.message());
    SmallString<256> Model(Parent);
    sys::path::append(Model, "run-%%%%%%%%");
    for (int Attempt = 0; Attempt < 16; ++Attempt) {
      SmallString<256> Path;
      sys::fs::createUniquePath(Model, Path, /*MakeAbsolute=*/false);
      std::error_code EC =
          sys::fs::create_directory(Path, /*IgnoreExisting=*/false);
      if (!EC)
        return ScratchDir(std::string(Path));
      if (EC != std::errc::file_exists)
        return fileError(Path, "cannot create folder: " + EC.message());
    }
    return fileError(Parent, "cannot create a unique scratch folder");
  }
  ScratchDir(ScratchDir &&O) : Path(std::move(O.Path)) { O.Path.clear(); }
  ScratchDir(const ScratchDir &) = delete;
  ~ScratchDir() {
    if (!Path.empty())
      sys::fs::remove_directories(Path);
  }
  std::string file(StringRef Name) const {
    SmallString<256> P(Path);
    sys::path::append(P, Name);
    return std::string(P);
  }

private:
  explicit ScratchDir(std::string P) : Path(std::move(P)) {}
  std::string Path;
};

/// The last lines of the client's stderr, which hold its error message.
std::string clientMessage(StringRef ErrFile) {
  Expected<std::string> Err = readFile(ErrFile);
  if (!Err) {
    consumeError(Err.takeError());
    return "no message";
  }
  StringRef Text = StringRef(*Err).trim();
  if (Text.empty())
    return "no message";
  // Keep it short: an unexpected crash may print a long stack.
  if (Text.size() > 2000)
    Text = Text.take_back(2000);
  return Text.str();
}

/// Reads DIR/outputs.json (the runner's listing) and the .npy files it names.
Error readOutputs(const ScratchDir &Dir, OrtResult &R) {
  std::string ListPath = Dir.file("out/outputs.json");
  Expected<std::string> Text = readFile(ListPath);
  if (!Text)
    return Text.takeError();
  Expected<json::Value> List = json::parse(*Text);
  if (!List)
    return prefixError(List.takeError(), ListPath);
  const json::Array *Items = List->getAsArray();
  if (!Items)
    return fileError(ListPath, "expected a list of outputs");
  for (const json::Value &Item : *Items) {
    const json::Object *O = Item.getAsObject();
    Optional<StringRef> Name = O ? O->getString("name") : None;
    Optional<StringRef> File = O ? O->getString("file") : None;
    if (!Name || !File || File->contains('/'))
      return fileError(ListPath, "malformed output entry");
    Expected<Tensor> T = readNpy(Dir.file("out/" + File->str()));
    if (!T)
      return prefixError(T.takeError(), "output '" + Name->str() + "'");
    R.OutputNames.push_back(Name->str());
    R.Outputs.push_back(std::move(*T));
  }
  return Error::success();
}

} // namespace

bool ortAvailable() { return OrtEnabled; }

OrtRunOptions::OrtRunOptions()
    : NodePath(testutil::NodePath), OrtDir(testutil::OrtDir),
      Runner(testutil::Runner), WorkDir(testutil::WorkDir) {}

std::string OrtNodeType::str() const {
  if (Domain.empty() || Domain == "ai.onnx")
    return OpType;
  return Domain + ":" + OpType;
}

Expected<std::vector<OrtNodeType>> readOnnxNodeTypes(StringRef Path) {
  Expected<std::string> Bytes = readFile(Path);
  if (!Bytes)
    return Bytes.takeError();
  onnx::ModelProto Model;
  if (!Model.ParseFromString(*Bytes))
    return fileError(Path, "not a valid ONNX model (protobuf parse failed)");
  std::vector<OrtNodeType> Types;
  for (const onnx::NodeProto &N : Model.graph().node())
    Types.push_back({N.domain(), N.op_type()});
  return Types;
}

Expected<OrtResult> runOrtFull(StringRef Model,
                               ArrayRef<std::pair<std::string, Tensor>> Inputs,
                               const OrtRunOptions &Opts) {
  if (Opts.NodePath.empty() || Opts.Runner.empty() || Opts.WorkDir.empty())
    return makeError("ONNX Runtime is not configured in this build (run "
                     "scripts/install-ort.sh and configure with "
                     "QFX_ORT_TESTS=ON)");
  Expected<ScratchDir> Dir = ScratchDir::create(Opts.WorkDir);
  if (!Dir)
    return Dir.takeError();

  std::vector<std::string> Args = {
      Opts.NodePath,  Opts.Runner,
      "--model",      Model.str(),
      "--output-dir", Dir->file("out"),
      "--threads",    std::to_string(Opts.Threads)};
  if (!Opts.OrtDir.empty()) {
    Args.push_back("--ort-dir");
    Args.push_back(Opts.OrtDir);
  }
  for (size_t I = 0; I < Inputs.size(); ++I) {
    std::string File = Dir->file("in" + std::to_string(I) + ".npy");
    if (Error E = writeNpy(File, Inputs[I].second))
      return E;
    Args.push_back("--input");
    Args.push_back(Inputs[I].first + "=" + File);
  }
  std::string Optimized = Dir->file("optimized.onnx");
  if (Opts.WantOptimizedOps) {
    Args.push_back("--optimized-model");
    Args.push_back(Optimized);
  }

  std::string OutFile = Dir->file("stdout.txt"), ErrFile = Dir->file("stderr");
  Optional<StringRef> Redirects[] = {StringRef(""), StringRef(OutFile),
                                     StringRef(ErrFile)};
  std::vector<StringRef> Refs(Args.begin(), Args.end());
  std::string Msg;
  bool Failed = false;
  int Status = sys::ExecuteAndWait(Opts.NodePath, Refs, None, Redirects,
                                   Opts.TimeoutSeconds, 0, &Msg, &Failed);
  if (Failed)
    return makeError("cannot run " + Opts.NodePath + ": " + Msg);
  if (Status == -2)
    return makeError(Model + ": ONNX Runtime client did not finish: " +
                     (Msg.empty() ? "killed" : Msg) + " (timeout " +
                     Twine(Opts.TimeoutSeconds) + " s)");
  if (Status != 0)
    return makeError(Model + ": ONNX Runtime client failed (status " +
                     Twine(Status) + "): " + clientMessage(ErrFile));

  OrtResult R;
  if (Error E = readOutputs(*Dir, R))
    return E;
  if (Opts.WantOptimizedOps) {
    Expected<std::vector<OrtNodeType>> Ops = readOnnxNodeTypes(Optimized);
    if (!Ops)
      return Ops.takeError();
    R.OptimizedOps = std::move(*Ops);
  }
  return R;
}

Expected<std::vector<Tensor>>
runOrt(StringRef Model, ArrayRef<std::pair<std::string, Tensor>> Inputs,
       const OrtRunOptions &Opts) {
  Expected<OrtResult> R = runOrtFull(Model, Inputs, Opts);
  if (!R)
    return R.takeError();
  return std::move(R->Outputs);
}

} // namespace testutil
} // namespace qfx
