//===- qfx-demo.cpp - The main job: builds, prints and saves a graph ------===//
//
// Until the tracer and the quantization pipeline land, the demo builds the
// seed Net of the PyTorch quantization notes by hand (conv1 1->40 3x3, relu,
// max_pool2d 2x2, conv2 40->40 3x3, relu, max_pool2d, reshape, fc 1000->10)
// with seeded random weights, verifies it, prints its text form, and writes
// it as JSON and text IR so that qopt can continue from there.
//
//===----------------------------------------------------------------------===//

#include "qfx/IR/GraphModule.h"
#include "qfx/IR/Printer.h"
#include "qfx/IR/Serialization.h"
#include "qfx/IR/Verifier.h"
#include "qfx/Support/Error.h"
#include "qfx/Support/FileIO.h"
#include "qfx/Transforms/Pass.h"

#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <cmath>
#include <cstdint>
#include <string>

using namespace qfx;

static llvm::cl::opt<std::string>
    OutDir("out-dir", llvm::cl::desc("where to write the graph files"),
           llvm::cl::init("qfx-demo-out"));

/// Kaiming-uniform-like weights from a fixed-seed generator, so every run
/// writes the same bytes.
static Tensor seededTensor(llvm::ArrayRef<int64_t> Shape, int64_t FanIn,
                           uint64_t &State) {
  Tensor T(DType::F32, Shape);
  float Bound = 1.0f / std::sqrt(static_cast<float>(FanIn));
  float *D = T.data<float>();
  for (int64_t I = 0; I < T.numElements(); ++I) {
    State = State * 6364136223846793005ULL + 1442695040888963407ULL;
    double U = static_cast<double>(State >> 11) / 9007199254740992.0;
    D[I] = static_cast<float>((2.0 * U - 1.0) * Bound);
  }
  return T;
}

static void addConv(GraphModule &GM, llvm::StringRef Name, int64_t In,
                    int64_t Out, uint64_t &Seed) {
  ModuleInfo &M = GM.addModule(Name, "Conv2d");
  M.setAttr("in_channels", Argument::integer(In));
  M.setAttr("out_channels", Argument::integer(Out));
  M.setAttr("kernel_size", Argument::ints({3, 3}));
  M.setAttr("stride", Argument::ints({1, 1}));
  M.setAttr("padding", Argument::ints({0, 0}));
  M.setAttr("dilation", Argument::ints({1, 1}));
  M.setAttr("groups", Argument::integer(1));
  M.setTensor("weight", seededTensor({Out, In, 3, 3}, In * 9, Seed));
  M.setTensor("bias", seededTensor({Out}, In * 9, Seed));
}

static TensorType f32(llvm::ArrayRef<int64_t> Dims) {
  return TensorType{DType::F32, Shape(Dims.begin(), Dims.end()), {}};
}

/// The seed Net, as symbolic_trace will record it.
static std::unique_ptr<GraphModule> buildNet() {
  auto GM = std::make_unique<GraphModule>("Net");
  uint64_t Seed = 2026;
  addConv(*GM, "conv1", 1, 40, Seed);
  addConv(*GM, "conv2", 40, 40, Seed);
  ModuleInfo &Fc = GM->addModule("fc", "Linear");
  Fc.setAttr("in_features", Argument::integer(1000));
  Fc.setAttr("out_features", Argument::integer(10));
  Fc.setTensor("weight", seededTensor({10, 1000}, 1000, Seed));
  Fc.setTensor("bias", seededTensor({10}, 1000, Seed));

  Graph &G = GM->graph();
  Node *X = G.placeholder("x", f32({1, 1, 28, 28}));
  Node *C1 = G.callModule("conv1", {X});
  C1->setType(f32({1, 40, 26, 26}));
  Node *R1 = G.callFunction("relu", {C1});
  R1->setType(f32({1, 40, 26, 26}));
  Kwargs Pool = {{"kernel_size", Argument::integer(2)},
                 {"stride", Argument::integer(2)}};
  Node *P1 = G.callFunction("max_pool2d", {R1}, Pool);
  P1->setType(f32({1, 40, 13, 13}));
  Node *C2 = G.callModule("conv2", {P1});
  C2->setType(f32({1, 40, 11, 11}));
  Node *R2 = G.callFunction("relu", {C2});
  R2->setType(f32({1, 40, 11, 11}));
  Node *P2 = G.callFunction("max_pool2d", {R2}, Pool);
  P2->setType(f32({1, 40, 5, 5}));
  Node *Flat = G.callMethod("reshape", {P2, Argument::ints({-1, 5 * 5 * 40})});
  Flat->setType(f32({1, 1000}));
  Node *Out = G.callModule("fc", {Flat});
  Out->setType(f32({1, 10}));
  G.output(Out);
  return GM;
}

static llvm::Error run() {
  auto GM = buildNet();
  if (llvm::Error E = verify(*GM))
    return E;
  llvm::outs() << "== The seed Net (hand-built; the tracer will record the "
                  "same graph) ==\n";
  printGraphModule(*GM, llvm::outs());

  PassManager::Options Opts;
  Opts.VerifyEach = true;
  PassManager PM(Opts);
  if (llvm::Error E = PM.addPipeline("dead-code-elimination,topological-sort"))
    return E;
  if (llvm::Error E = PM.run(*GM))
    return E;

  if (std::error_code EC = llvm::sys::fs::create_directories(OutDir))
    return fileError(OutDir, "cannot create directory: " + EC.message());
  llvm::SmallString<256> Json(OutDir), Text(OutDir);
  llvm::sys::path::append(Json, "net.float.json");
  llvm::sys::path::append(Text, "net.float.qir");
  if (llvm::Error E = saveGraphModule(*GM, Json, GraphFileFormat::Json))
    return E;
  if (llvm::Error E = saveGraphModule(*GM, Text, GraphFileFormat::Text))
    return E;

  // Prove the files are complete: reload and compare bytes.
  auto Reloaded = loadGraphModule(Json);
  if (!Reloaded)
    return Reloaded.takeError();
  if (serializeToJson(**Reloaded) != serializeToJson(*GM))
    return makeError("reloaded graph differs from the saved one");
  llvm::outs() << "\nwrote " << Json << " and " << Text << " ("
               << GM->graph().size() << " nodes, " << GM->namedTensors().size()
               << " tensors); continue with: qopt " << Json
               << " --passes=... \n";
  return llvm::Error::success();
}

int main(int argc, char **argv) {
  llvm::cl::ParseCommandLineOptions(argc, argv, "qfx demo\n");
  if (llvm::Error E = run()) {
    llvm::errs() << "qfx-demo: error: " << errorToString(std::move(E)) << "\n";
    return 1;
  }
  return 0;
}
