//===- QoptTest.cpp - Runs the qopt binary over small graphs and data
//------===//

#include "qfx/IR/GraphModule.h"
#include "qfx/IR/Serialization.h"
#include "qfx/Runtime/Interpreter.h"
#include "qfx/Support/Error.h"
#include "qfx/Support/FileIO.h"
#include "qfx/Support/Npy.h"

#include "llvm/ADT/Optional.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/raw_ostream.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

using namespace qfx;

namespace {

const std::string DataDir = QFX_TEST_DATA_DIR "/qopt/";

/// A fresh directory, removed with everything in it at the end of a test.
struct TempDir {
  llvm::SmallString<128> Path;
  TempDir() {
    REQUIRE(!llvm::sys::fs::createUniqueDirectory("qopt-test", Path));
  }
  ~TempDir() { llvm::sys::fs::remove_directories(Path); }
  std::string file(llvm::StringRef Name) const {
    llvm::SmallString<128> P(Path);
    llvm::sys::path::append(P, Name);
    return std::string(P);
  }
};

struct Result {
  int Status = -1;
  std::string Out, Err;
};

/// Runs qopt with \p Args, capturing stdout and stderr through files in
/// \p Dir (no shell involved).
Result qopt(const TempDir &Dir, std::vector<std::string> Args) {
  Args.insert(Args.begin(), QFX_QOPT_PATH);
  std::vector<llvm::StringRef> Refs(Args.begin(), Args.end());
  std::string OutFile = Dir.file("stdout.txt"), ErrFile = Dir.file("stderr");
  // The redirections do not truncate: a shorter output would keep the tail
  // of the previous run's.
  llvm::sys::fs::remove(OutFile);
  llvm::sys::fs::remove(ErrFile);
  llvm::Optional<llvm::StringRef> Redirects[] = {
      llvm::StringRef(""), llvm::StringRef(OutFile), llvm::StringRef(ErrFile)};
  std::string Msg;
  Result R;
  R.Status = llvm::sys::ExecuteAndWait(QFX_QOPT_PATH, Refs, llvm::None,
                                       Redirects, 120, 0, &Msg);
  INFO(Msg);
  REQUIRE(R.Status >= 0);
  R.Out = cantFail(readFile(OutFile));
  R.Err = cantFail(readFile(ErrFile));
  return R;
}

/// The value of \p E, failing the test with its message if it is an error.
template <typename T> T must(llvm::Expected<T> E) {
  if (!E)
    FAIL(errorToString(E.takeError()));
  return std::move(*E);
}

bool contains(llvm::StringRef Haystack, llvm::StringRef Needle) {
  return Haystack.contains(Needle);
}

std::string model() { return DataDir + "model.ir"; }

/// The observed (prepared, calibrated) model written to \p Out.
void prepareAndCalibrate(const TempDir &Dir, const std::string &Out) {
  Result R = qopt(
      Dir, {model(), "--qconfig=" + DataDir + "qconfig.json",
            "--passes=fuse,qconfig-propagation,prepare",
            "--calibrate=" + DataDir + "calib.npy," + DataDir + "calib2.npy",
            "--batch=2", "--emit=json", "-o", Out});
  INFO(R.Err);
  REQUIRE(R.Status == 0);
}

/// The quantized model: prepared, calibrated, then converted.
std::string quantized(const TempDir &Dir) {
  std::string Observed = Dir.file("observed.json");
  std::string Q = Dir.file("quantized.json");
  prepareAndCalibrate(Dir, Observed);
  Result R = qopt(Dir, {Observed, "--passes=convert", "--emit=json", "-o", Q});
  INFO(R.Err);
  REQUIRE(R.Status == 0);
  return Q;
}

float observedMin(const GraphModule &GM) {
  const Tensor *T = GM.lookupTensor("activation_post_process_0.min_val");
  REQUIRE(T);
  REQUIRE(T->numElements() == 1);
  return static_cast<float>(T->getAsDouble(0));
}

} // namespace

TEST_CASE("qopt --list-passes lists the registry", "[qopt]") {
  TempDir Dir;
  Result R = qopt(Dir, {"--list-passes"});
  CHECK(R.Status == 0);
  CHECK(contains(R.Out, "  prepare - insert observers"));
  CHECK(contains(R.Out, "  convert - "));
}

TEST_CASE("qopt --passes --emit=text prints the transformed IR", "[qopt]") {
  TempDir Dir;
  Result R = qopt(Dir, {model(), "--passes=fuse"});
  INFO(R.Err);
  REQUIRE(R.Status == 0);
  CHECK(contains(R.Out, "module conv1 : ConvReLU2d"));
  CHECK(contains(R.Out, "%conv1 : f32[1,2,2,2] = call_module[conv1](%x)"));
  CHECK(!contains(R.Out, "%relu"));
}

TEST_CASE("qopt --emit=json writes a loadable module", "[qopt]") {
  TempDir Dir;
  std::string Out = Dir.file("out.json");
  Result R = qopt(Dir, {model(), "--passes=fuse", "--emit=json", "-o", Out});
  INFO(R.Err);
  REQUIRE(R.Status == 0);
  CHECK(llvm::StringRef(cantFail(readFile(Out))).startswith("{"));
  auto GM = must(loadGraphModule(Out));
  CHECK(GM->graph().lookup("fc"));
  CHECK(!GM->graph().lookup("relu"));
  CHECK(GM->lookupModule("conv1")->kind() == "ConvReLU2d");
}

TEST_CASE("qopt --emit=dot draws fused modules and float edges", "[qopt]") {
  TempDir Dir;
  Result R = qopt(Dir, {model(), "--passes=fuse", "--emit=dot"});
  INFO(R.Err);
  REQUIRE(R.Status == 0);
  CHECK(llvm::StringRef(R.Out).startswith("digraph G {"));
  CHECK(contains(R.Out, "\"conv1\" [label=\"%conv1\\ncall_module[conv1]\\n"
                        "ConvReLU2d\", shape=box, style=filled, "
                        "fillcolor=gold];"));
  CHECK(contains(R.Out, "\"x\" -> \"conv1\" [color=gray40, style=dashed];"));
  CHECK(contains(R.Out, "cluster_legend"));
  CHECK(!contains(R.Out, "color=blue, penwidth=2, label="));
}

TEST_CASE("qopt --emit=dot labels int8 edges with qparams", "[qopt]") {
  TempDir Dir;
  std::string Q = quantized(Dir);
  Result R = qopt(Dir, {Q, "--emit=dot"});
  INFO(R.Err);
  REQUIRE(R.Status == 0);
  CHECK(contains(R.Out, "\"conv1\" -> \"flatten\" [color=blue, penwidth=2, "
                        "label=\"u8[1,2,2,2]<scale="));
  CHECK(contains(R.Out, "QuantizedConvReLU2d\", shape=box, style=filled, "
                        "fillcolor=lightblue"));
  CHECK(contains(R.Out, "\"dequantize\" -> \"output\" [color=gray40"));
}

TEST_CASE("qopt --qconfig --calibrate stores observer state", "[qopt]") {
  TempDir Dir;
  std::string Prepared = Dir.file("prepared.json");
  Result R = qopt(Dir, {model(), "--qconfig=" + DataDir + "qconfig.json",
                        "--passes=fuse,qconfig-propagation,prepare",
                        "--emit=json", "-o", Prepared});
  INFO(R.Err);
  REQUIRE(R.Status == 0);
  auto Before = must(loadGraphModule(Prepared));
  CHECK(std::isinf(observedMin(*Before)));

  std::string Observed = Dir.file("observed.json");
  prepareAndCalibrate(Dir, Observed);
  auto After = must(loadGraphModule(Observed));
  // The smallest value over both files: -3.0 is only in calib2.npy.
  CHECK(observedMin(*After) == -3.0f);
}

TEST_CASE("qopt --calibrate reports progress per batch", "[qopt]") {
  TempDir Dir;
  std::string Prepared = Dir.file("prepared.json");
  REQUIRE(
      qopt(Dir, {model(), "--qconfig=" + DataDir + "qconfig.json",
                 "--passes=fuse,qconfig-propagation,prepare", "-o", Prepared})
          .Status == 0);
  Result R = qopt(Dir, {Prepared, "--calibrate=" + DataDir + "calib.npy",
                        "--batch=3", "-o", Dir.file("out.qir")});
  INFO(R.Err);
  REQUIRE(R.Status == 0);
  // Not a terminal: plain lines, the last one for all 2 batches of 4 rows.
  CHECK(contains(R.Err, "calibrate: 2/2 batches, 4 images, "));
  CHECK(contains(R.Err, "images/s"));
}

TEST_CASE("qopt --passes=convert after calibration quantizes", "[qopt]") {
  TempDir Dir;
  auto GM = must(loadGraphModule(quantized(Dir)));
  CHECK(GM->lookupModule("conv1")->kind() == "QuantizedConvReLU2d");
  CHECK(GM->lookupModule("fc")->kind() == "QuantizedLinear");
  CHECK(GM->graph().lookup("quantize_per_tensor"));
  CHECK(GM->graph().lookup("dequantize"));
}

TEST_CASE("qopt --run writes the interpreter's output", "[qopt]") {
  TempDir Dir;
  std::string Q = quantized(Dir);
  std::string Out = Dir.file("out.npy");
  Result R = qopt(Dir, {Q, "--run=" + DataDir + "input.npy", "-o", Out});
  INFO(R.Err);
  REQUIRE(R.Status == 0);
  auto Got = must(readNpy(Out));
  auto GM = must(loadGraphModule(Q));
  auto Want = must(interpret(*GM, {cantFail(readNpy(DataDir + "input.npy"))}));
  CHECK(Got.shape() == llvm::ArrayRef<int64_t>({1, 2}));
  CHECK(Got.identical(Want));
}

TEST_CASE("qopt --run --compiled --profile", "[qopt]") {
  TempDir Dir;
  std::string Q = quantized(Dir);
  std::string Ref = Dir.file("ref.npy"), Out = Dir.file("out.npy");
  std::string In = "--run=" + DataDir + "input.npy";
  REQUIRE(qopt(Dir, {Q, In, "-o", Ref}).Status == 0);
  Result R = qopt(Dir, {Q, In, "--compiled", "--profile", "-o", Out});
  INFO(R.Err);
  REQUIRE(R.Status == 0);
  CHECK(contains(R.Out, "profile (median per step):"));
  CHECK(contains(R.Out, "conv1"));
  Tensor A = cantFail(readNpy(Ref)), B = cantFail(readNpy(Out));
  REQUIRE(A.shape() == B.shape());
  // oneDNN may round differently from the reference by one output step.
  for (int64_t I = 0; I < A.numElements(); ++I)
    CHECK(std::abs(A.getAsDouble(I) - B.getAsDouble(I)) < 0.05);
}

TEST_CASE("qopt --bench prints latency statistics", "[qopt]") {
  TempDir Dir;
  std::string Q = quantized(Dir);
  Result R = qopt(Dir, {Q, "--bench", "--threads=1", "--iterations=3"});
  INFO(R.Err);
  REQUIRE(R.Status == 0);
  CHECK(contains(R.Out, "iterations: 3, threads: 1"));
  CHECK(contains(R.Out, "median: "));
  CHECK(contains(R.Out, "min: "));
  CHECK(contains(R.Out, "max: "));
  CHECK(!contains(R.Out, "profile"));
  Result P = qopt(Dir, {Q, "--bench", "--iterations=2", "--profile"});
  REQUIRE(P.Status == 0);
  CHECK(contains(P.Out, "profile (median per step):"));
  CHECK(contains(P.Out, "quantize_per_tensor"));
}

TEST_CASE("qopt --explain shows rules, fusion and boundaries", "[qopt]") {
  TempDir Dir;
  Result R = qopt(Dir, {model(), "--qconfig=" + DataDir + "qconfig.json",
                        "--passes=fuse,qconfig-propagation,prepare",
                        "--explain", "-o", Dir.file("out.qir")});
  INFO(R.Err);
  REQUIRE(R.Status == 0);
  CHECK(contains(R.Out, "%conv1 = call_module[conv1]\n  qconfig: x86\n"
                        "  qconfig_rule: global\n"));
  CHECK(contains(R.Out, "[fuse] fused conv1 + relu into ConvReLU2d"));

  std::string Q = quantized(Dir);
  Result C = qopt(Dir, {Dir.file("observed.json"), "--passes=convert",
                        "--explain", "-o", Dir.file("q.qir")});
  REQUIRE(C.Status == 0);
  CHECK(contains(C.Out, "[convert] inserted quantize_per_tensor for x"));
  CHECK(contains(C.Out, "[convert] dequantize fc at the output"));
}

TEST_CASE("qopt --explain says why a fusion did not fire", "[qopt]") {
  TempDir Dir;
  Result R = qopt(Dir, {DataDir + "residual.ir",
                        "--qconfig=" + DataDir + "qconfig-add-none.json",
                        "--passes=fuse,qconfig-propagation", "--explain", "-o",
                        Dir.file("out.qir")});
  INFO(R.Err);
  REQUIRE(R.Status == 0);
  CHECK(contains(R.Out, "%conv1 = call_module[conv1]\n  qconfig: x86\n"
                        "  qconfig_rule: global\n"
                        "  [fuse] not fused (conv-add-relu): add has qconfig "
                        "none (object_type:add) but conv1 has x86 (global)\n"));
  CHECK(contains(R.Out, "%add = call_function[add]\n  qconfig: none\n"
                        "  qconfig_rule: object_type:add\n"));
}

namespace {

/// Runs qopt expecting failure: non-zero status, \p Message on stderr, and
/// no file at \p Out.
void expectFailure(const TempDir &Dir, std::vector<std::string> Args,
                   llvm::StringRef Message, const std::string &Out) {
  Result R = qopt(Dir, std::move(Args));
  INFO(R.Err);
  CHECK(R.Status != 0);
  CHECK(contains(R.Err, "qopt: error: "));
  CHECK(contains(R.Err, Message));
  CHECK(!llvm::sys::fs::exists(Out));
}

} // namespace

TEST_CASE("qopt errors name the flag or file and write nothing", "[qopt]") {
  TempDir Dir;
  std::string Out = Dir.file("out.json");
  SECTION("unknown pass") {
    expectFailure(Dir, {model(), "--passes=fuse,bogus", "-o", Out},
                  "--passes: unknown pass 'bogus' (known passes: convert,",
                  Out);
  }
  SECTION("bad qconfig JSON") {
    expectFailure(Dir,
                  {model(), "--qconfig=" + DataDir + "bad-qconfig.json",
                   "--passes=qconfig-propagation", "-o", Out},
                  "--qconfig: " + DataDir + "bad-qconfig.json: not valid JSON",
                  Out);
  }
  SECTION("malformed graph file") {
    expectFailure(Dir, {DataDir + "malformed.ir", "-o", Out},
                  DataDir + "malformed.ir:7:1: expected a node", Out);
  }
  SECTION("graph without observers") {
    expectFailure(Dir,
                  {model(), "--calibrate=" + DataDir + "calib.npy", "-o", Out},
                  "nothing to calibrate: the graph has no observers (run "
                  "--passes=...,prepare first)",
                  Out);
  }
}

TEST_CASE("qopt calibration and run errors", "[qopt]") {
  TempDir Dir;
  std::string Observed = Dir.file("observed.json");
  prepareAndCalibrate(Dir, Observed);
  std::string Out = Dir.file("out.json");
  SECTION("missing data file") {
    expectFailure(
        Dir, {Observed, "--calibrate=" + DataDir + "missing.npy", "-o", Out},
        "--calibrate: " + DataDir + "missing.npy: cannot open", Out);
  }
  SECTION("calibration shape mismatch") {
    expectFailure(
        Dir, {Observed, "--calibrate=" + DataDir + "bad-shape.npy", "-o", Out},
        DataDir + "bad-shape.npy: calibration data of shape [4,3] "
                  "does not match placeholder %x of shape [1,1,2,2]",
        Out);
  }
  SECTION("--run without -o") {
    expectFailure(Dir, {Observed, "--run=" + DataDir + "input.npy"},
                  "--run: needs -o OUT.npy", Out);
  }
  SECTION("--run with a missing input") {
    std::string Npy = Dir.file("out.npy");
    expectFailure(Dir,
                  {Observed, "--run=" + DataDir + "missing.npy", "-o", Npy},
                  "--run: " + DataDir + "missing.npy: cannot open", Npy);
  }
  SECTION("--profile alone") {
    expectFailure(Dir, {Observed, "--profile", "-o", Out},
                  "--profile: needs --bench or --run with --compiled", Out);
  }
}

TEST_CASE("qopt warns about nodes on reference kernels", "[qopt]") {
  TempDir Dir;
  std::string Slow = DataDir + "slowpath.ir";
  const std::string Warn = "qopt: warning: " + Slow + ": node '";
  Result R = qopt(Dir, {Slow, "--bench", "--iterations=1", "--threads=1"});
  INFO(R.Err);
  REQUIRE(R.Status == 0);
  CHECK(contains(R.Out, "median: "));
  // conv1 writes NHWC, so the leaky relu reads a reordered copy.
  CHECK(contains(R.Err, Warn + "leaky_relu' (leaky_relu): no oneDNN lowering "
                               "for 'leaky_relu' (float input); runs the "
                               "op-table kernel on the host with reorders "
                               "to plain layout\n"));
  CHECK(contains(R.Err, Warn + "leaky_relu_1' (leaky_relu): no oneDNN "
                               "lowering for 'leaky_relu' (float input); runs "
                               "the op-table kernel on the host\n"));
  // mul has a lowering: not a reference kernel.
  CHECK(!contains(R.Err, Warn + "mul' (mul): "));
  CHECK(contains(R.Err, "qopt: warning: " + Slow +
                            ": 2 node(s) run on reference kernels; "
                            "--strict-lowering makes this an error\n"));
  // The fully lowered model compiles without a word.
  Result Clean = qopt(Dir, {model(), "--bench", "--iterations=1"});
  REQUIRE(Clean.Status == 0);
  CHECK(!contains(Clean.Err, "warning"));
  // --run --compiled warns too; the interpreter path compiles nothing.
  std::string Out = Dir.file("out.npy");
  std::string In = "--run=" + DataDir + "input.npy";
  Result Run = qopt(Dir, {Slow, In, "--compiled", "-o", Out});
  REQUIRE(Run.Status == 0);
  CHECK(contains(Run.Err, Warn + "leaky_relu_1' (leaky_relu): "));
  Result Ref = qopt(Dir, {Slow, In, "-o", Out});
  REQUIRE(Ref.Status == 0);
  CHECK(!contains(Ref.Err, "warning"));
}

TEST_CASE("qopt --strict-lowering rejects reference kernels", "[qopt]") {
  TempDir Dir;
  std::string Slow = DataDir + "slowpath.ir";
  Result R =
      qopt(Dir, {Slow, "--bench", "--iterations=1", "--strict-lowering"});
  INFO(R.Err);
  CHECK(R.Status != 0);
  CHECK(contains(R.Err, "qopt: error: compile " + Slow +
                            ": strict lowering: 2 nodes would run on "
                            "reference kernels:\n  node 'leaky_relu' "
                            "(leaky_relu): no oneDNN lowering"));
  CHECK(contains(R.Err, "\n  node 'leaky_relu_1' (leaky_relu): "));
  CHECK(!contains(R.Err, "\n  node 'mul' (mul): "));
  CHECK(!contains(R.Out, "median: "));
  Result Clean =
      qopt(Dir, {model(), "--bench", "--iterations=1", "--strict-lowering"});
  INFO(Clean.Err);
  CHECK(Clean.Status == 0);
  Result Flag = qopt(Dir, {model(), "--strict-lowering"});
  CHECK(Flag.Status != 0);
  CHECK(contains(Flag.Err, "qopt: error: --strict-lowering: needs --bench or "
                           "--run with --compiled"));
}

TEST_CASE("qopt compiling an observed graph says to convert first", "[qopt]") {
  TempDir Dir;
  std::string Observed = Dir.file("observed.json");
  prepareAndCalibrate(Dir, Observed);
  Result R = qopt(Dir, {Observed, "--bench", "--iterations=1"});
  CHECK(R.Status != 0);
  CHECK(contains(R.Err, "qopt: error: compile " + Observed +
                            ": graph still has observers (e.g. "
                            "'activation_post_process_0', "));
  CHECK(contains(R.Err, "): run convert (convert_fx / qopt --passes=convert) "
                        "before compiling"));
}

TEST_CASE("qopt --run and --calibrate take float64 .npy data", "[qopt]") {
  TempDir Dir;
  // numpy's default dtype: what np.save(np.random.rand(...)) writes.
  Tensor F32 = cantFail(readNpy(DataDir + "input.npy"));
  std::vector<double> D(F32.numElements());
  for (size_t I = 0; I < D.size(); ++I)
    D[I] = F32.data<float>()[I];
  std::string Header = "{'descr': '<f8', 'fortran_order': False, 'shape': "
                       "(1, 1, 2, 2), }";
  Header += std::string((64 - (10 + Header.size() + 1) % 64) % 64, ' ') + "\n";
  std::string Bytes("\x93NUMPY\x01\x00", 8);
  Bytes += static_cast<char>(Header.size());
  Bytes += '\0';
  Bytes += Header;
  Bytes.append(reinterpret_cast<const char *>(D.data()),
               D.size() * sizeof(double));
  std::string F64 = Dir.file("input64.npy");
  if (llvm::Error E = writeFileAtomically(F64, Bytes))
    FAIL(errorToString(std::move(E)));
  std::string Out64 = Dir.file("out64.npy"), Out32 = Dir.file("out32.npy");
  Result R = qopt(Dir, {model(), "--run=" + F64, "-o", Out64});
  INFO(R.Err);
  REQUIRE(R.Status == 0);
  REQUIRE(qopt(Dir, {model(), "--run=" + DataDir + "input.npy", "-o", Out32})
              .Status == 0);
  CHECK(cantFail(readNpy(Out64)).identical(cantFail(readNpy(Out32))));
  Result C = qopt(Dir, {model(), "--qconfig=" + DataDir + "qconfig.json",
                        "--passes=fuse,qconfig-propagation,prepare",
                        "--calibrate=" + F64, "--emit=json", "-o",
                        Dir.file("observed.json")});
  INFO(C.Err);
  CHECK(C.Status == 0);
}

TEST_CASE("qopt --calibrate with x86 observers rejects non-finite and huge "
          "values by name",
          "[qopt]") {
  // HistogramObserver crashed on the huge values (a bin index overflowed)
  // and ignored NaN, so convert later said "observed no data".
  const float Inf = std::numeric_limits<float>::infinity();
  const char *Finite = " during calibration; histogram observers need finite "
                       "values";
  const char *Int64 = " during calibration; it needs magnitudes below 2^63 "
                      "(PyTorch's int() of the histogram range overflows "
                      "there)";
  struct Case {
    float A, B;
    std::string Message;
  } Cases[] = {
      {3.4e38f, 0, "HistogramObserver saw 3.39999995e+38" + std::string(Int64)},
      {0x1p95f, -1,
       "HistogramObserver saw 3.96140813e+28" + std::string(Int64)},
      {-3e38f, 3e38f,
       "HistogramObserver saw 3.00000001e+38" + std::string(Int64)},
      {std::nanf(""), 1,
       "HistogramObserver saw a non-finite value (nan)" + std::string(Finite)},
      {-Inf, 1,
       "HistogramObserver saw a non-finite value (-inf)" + std::string(Finite)},
  };
  for (const Case &C : Cases) {
    INFO(C.Message);
    TempDir Dir;
    std::vector<float> V(8, 0.0f);
    V[0] = C.A;
    V[5] = C.B;
    std::string Data = Dir.file("data.npy");
    REQUIRE(!writeNpy(Data, Tensor::fromFloats({2, 1, 2, 2}, V)));
    Result R = qopt(Dir, {model(), "--qconfig=" + DataDir + "qconfig.json",
                          "--passes=fuse,qconfig-propagation,prepare",
                          "--calibrate=" + Data, "-o", Dir.file("out.qir")});
    CHECK(R.Status == 1);
    CHECK(contains(R.Err, "batch at row 0: node 'activation_post_process_0': "
                          "observer 'activation_post_process_0': " +
                              C.Message + "\n"));
  }
}

namespace {

/// The test model with \p From replaced by \p To, written to \p Dir.
std::string editedModel(const TempDir &Dir, llvm::StringRef Name,
                        llvm::StringRef From, llvm::StringRef To) {
  std::string Text = cantFail(readFile(model()));
  size_t At = Text.find(From.str());
  REQUIRE(At != std::string::npos);
  Text.replace(At, From.size(), To.str());
  std::string Path = Dir.file(Name);
  REQUIRE(errorToString(writeFileAtomically(Path, Text)) == "");
  return Path;
}

} // namespace

TEST_CASE("qopt -o through a symlink writes the file it names", "[qopt]") {
  TempDir Dir;
  REQUIRE(!llvm::sys::fs::create_directory(Dir.file("real")));
  std::string Target = Dir.file("real/model.json"), Link = Dir.file("l.json");
  REQUIRE(!llvm::sys::fs::create_link("real/model.json", Link));
  Result R = qopt(Dir, {model(), "--emit=json", "-o", Link});
  INFO(R.Err);
  REQUIRE(R.Status == 0);
  llvm::sys::fs::file_status St;
  REQUIRE(!llvm::sys::fs::status(Link, St, /*Follow=*/false));
  CHECK(St.type() == llvm::sys::fs::file_type::symlink_file);
  auto GM = loadGraphModule(Target);
  CHECK(errorToString(GM.takeError()) == "");
}

TEST_CASE("qopt --run and --calibrate on a parameter without data", "[qopt]") {
  // Legal to declare, verifiable, but nothing to compute with: a located
  // error, not an assertion in a kernel.
  TempDir Dir;
  std::string NoData = editedModel(
      Dir, "nodata.ir",
      "param weight : f32[2,8] = dense<[0.125, -0.25, 0.5, 0.75, -0.5, "
      "0.25, 1.0, -0.125, 0.5, 0.5, -0.25, 0.125, 0.25, -0.75, 0.5, 1.0]>",
      "param weight : f32[2,8]");
  std::string Npy = Dir.file("out.npy"), Out = Dir.file("out.json");
  SECTION("--run") {
    expectFailure(Dir, {NoData, "--run=" + DataDir + "input.npy", "-o", Npy},
                  "node 'fc': module 'fc': parameter 'weight' has no data",
                  Npy);
  }
  SECTION("--calibrate") {
    expectFailure(Dir,
                  {NoData, "--qconfig=" + DataDir + "qconfig.json",
                   "--passes=qconfig-propagation,prepare",
                   "--calibrate=" + DataDir + "calib.npy", "-o", Out},
                  "module 'fc': parameter 'weight' has no data", Out);
  }
}

TEST_CASE("qopt bounds shapes in the text IR as in JSON", "[qopt]") {
  TempDir Dir;
  std::string Big = editedModel(Dir, "big.ir", "%x : f32[1,1,2,2]",
                                "%x : f32[1000000000000,1000000000000]");
  std::string Out = Dir.file("out.json");
  expectFailure(Dir, {Big, "--emit=json", "-o", Out},
                "value '%x': shape [1000000000000,1000000000000] has too "
                "many elements (limit 1099511627776)",
                Out);
  expectFailure(Dir, {Big, "--bench", "--iterations=1"},
                "has too many elements", Out);
}

TEST_CASE("qopt bounds --batch and --threads", "[qopt]") {
  TempDir Dir;
  std::string Out = Dir.file("out.json");
  expectFailure(Dir, {model(), "--bench", "--threads=100000", "--iterations=1"},
                "--threads: must be between 0 and 1024, got 100000", Out);
  expectFailure(Dir,
                {model(), "--calibrate=" + DataDir + "calib.npy",
                 "--batch=9223372036854775807", "-o", Out},
                "--batch: must be between 1 and 1099511627776, got "
                "9223372036854775807",
                Out);
  expectFailure(Dir, {model(), "--batch=0", "-o", Out},
                "--batch: must be between 1 and", Out);
}

TEST_CASE("qopt --qconfig --calibrate without --passes quantizes in one line",
          "[qopt]") {
  TempDir Dir;
  // The same graph as --passes=...,prepare, --calibrate, then convert.
  std::string Q = Dir.file("model.int8.json");
  Result R = qopt(
      Dir, {model(), "--qconfig=" + DataDir + "qconfig.json",
            "--calibrate=" + DataDir + "calib.npy," + DataDir + "calib2.npy",
            "--batch=2", "-o", Q});
  INFO(R.Err);
  REQUIRE(R.Status == 0);
  auto GM = must(loadGraphModule(Q));
  auto Want = must(loadGraphModule(quantized(Dir)));
  CHECK(serializeToJson(*GM) == serializeToJson(*Want));

  // -o *.onnx writes QDQ ONNX of the same graph.
  std::string Onnx = Dir.file("model.int8.onnx");
  R = qopt(Dir, {model(), "--qconfig=" + DataDir + "qconfig.json",
                 "--calibrate=" + DataDir + "calib.npy", "-o", Onnx});
  INFO(R.Err);
  REQUIRE(R.Status == 0);
  std::string Bytes = must(readFile(Onnx));
  CHECK(contains(Bytes, "QuantizeLinear"));
  CHECK(contains(Bytes, "DequantizeLinear"));
}

TEST_CASE("qopt -o *.onnx and --emit=onnx write ONNX", "[qopt]") {
  TempDir Dir;
  std::string Onnx = Dir.file("model.onnx");
  Result R = qopt(Dir, {model(), "-o", Onnx});
  INFO(R.Err);
  REQUIRE(R.Status == 0);
  std::string Bytes = must(readFile(Onnx));
  CHECK(contains(Bytes, "Conv"));
  CHECK_FALSE(contains(Bytes, "QuantizeLinear"));
  std::string Other = Dir.file("model.bin");
  REQUIRE(qopt(Dir, {model(), "--emit=onnx", "-o", Other}).Status == 0);
  CHECK(must(readFile(Other)) == Bytes);
  R = qopt(Dir, {model(), "--emit=onnx"});
  CHECK(R.Status == 1);
  CHECK(R.Err == "qopt: error: --emit=onnx: ONNX is binary; give -o "
                 "FILE.onnx\n");
}

TEST_CASE("qopt reads .onnx models (told from JSON and text by content)",
          "[qopt]") {
  TempDir Dir;
  std::string Onnx = QFX_TEST_DATA_DIR "/onnx/net_opset13.onnx";
  Result R = qopt(Dir, {Onnx, "--passes=fuse"});
  INFO(R.Err);
  REQUIRE(R.Status == 0);
  CHECK(contains(R.Out, "module conv1 : ConvReLU2d"));
  CHECK(contains(R.Out, "call_method[reshape](%max_pool2d_1, [-1, 1000])"));
  // A broken model is an error naming the file.
  std::string Bad = Dir.file("bad.onnx");
  {
    std::string Bytes = cantFail(readFile(Onnx));
    std::error_code EC;
    llvm::raw_fd_ostream Out(Bad, EC);
    REQUIRE(!EC);
    Out << Bytes.substr(0, Bytes.size() / 2);
  }
  R = qopt(Dir, {Bad, "--passes=fuse"});
  CHECK(R.Status != 0);
  CHECK(contains(R.Err, Bad + ": not a valid ONNX model"));
}
