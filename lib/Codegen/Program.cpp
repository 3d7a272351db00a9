//===- Program.cpp - Running a compiled module, profiles and reports ------===//

#include "Program.h"

#include "qfx/Codegen/CompiledModule.h"
#include "qfx/IR/GraphModule.h"
#include "qfx/Support/Error.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/ScopeExit.h"
#include "llvm/Support/Format.h"

#include <omp.h>

#include <algorithm>
#include <chrono>

using namespace qfx;
using namespace qfx::codegen;

dnnl::engine &codegen::cpuEngine() {
  static dnnl::engine E(dnnl::engine::kind::cpu, 0);
  return E;
}

Step::~Step() = default;

ThreadScope::ThreadScope(int Threads) {
  if (Threads <= 0 || omp_get_max_threads() == Threads)
    return;
  Previous = omp_get_max_threads();
  omp_set_num_threads(Threads);
}

ThreadScope::~ThreadScope() {
  if (Previous > 0)
    omp_set_num_threads(Previous);
}

//===----------------------------------------------------------------------===//
// Primitive steps
//===----------------------------------------------------------------------===//

void PrimitiveStep::bind(Program &P) {
  for (const MemArg &A : Args) {
    BufferKind K = P.Buffers[A.Buf].Kind;
    if (K == BufferKind::Input || K == BufferKind::Output) {
      dnnl::memory M(A.Md, P.Engine, DNNL_MEMORY_NONE);
      P.trackIO(M, A.Buf, A.Offset);
      Bound[A.Arg] = M;
      continue;
    }
    Bound[A.Arg] = dnnl::memory(A.Md, P.Engine, P.address(A.Buf, A.Offset));
  }
  // Every variant's scratchpad starts at the shared one (sized for the
  // largest in finalize).
  for (PrimitiveVariant &V : Variants)
    if (V.Scratch.get_size() != 0)
      V.ScratchMem = dnnl::memory(V.Scratch, P.Engine, P.Scratchpad.rawData());
  // The budget's primitive until chooseThreads picks.
  Selected = 0;
  select(Variants.back().Threads);
}

void PrimitiveStep::select(int T) {
  if (T == Selected)
    return;
  Selected = T;
  Active = 0;
  while (Active + 1 < Variants.size() && Variants[Active].Threads != T)
    ++Active;
  assert(Variants[Active].Threads == T && "no primitive for a thread count");
  if (Variants[Active].ScratchMem)
    Bound[DNNL_ARG_SCRATCHPAD] = Variants[Active].ScratchMem;
  else
    Bound.erase(DNNL_ARG_SCRATCHPAD);
}

llvm::Error PrimitiveStep::run(Program &P) {
  Variants[Active].Prim.execute(P.Stream, Bound);
  return llvm::Error::success();
}

//===----------------------------------------------------------------------===//
// Program
//===----------------------------------------------------------------------===//

Program::Program() : Engine(cpuEngine()), Stream(Engine) {}
Program::~Program() = default;

int Program::addBuffer(BufferKind K, size_t Bytes, std::string Name,
                       int Index) {
  Buffer B;
  B.Kind = K;
  B.Bytes = Bytes;
  B.Index = Index;
  B.Name = std::move(Name);
  Buffers.push_back(std::move(B));
  return static_cast<int>(Buffers.size()) - 1;
}

int Program::addConstant(size_t Bytes, std::string Name) {
  int Id = addBuffer(BufferKind::Constant, Bytes, std::move(Name));
  Buffers[Id].Storage =
      Tensor(DType::U8, {static_cast<int64_t>(std::max<size_t>(Bytes, 1))});
  return Id;
}

void *Program::address(int Buf, size_t Offset) {
  Buffer &B = Buffers[Buf];
  char *Base = nullptr;
  switch (B.Kind) {
  case BufferKind::Arena:
    Base = static_cast<char *>(Arena.rawData()) + B.Offset;
    break;
  case BufferKind::Constant:
    Base = static_cast<char *>(B.Storage.rawData());
    break;
  case BufferKind::Input:
  case BufferKind::Output:
    Base = static_cast<char *>(IOAddress[Buf]);
    break;
  }
  assert(Base && "address of an unbound buffer");
  return Base + Offset;
}

void Program::trackIO(dnnl::memory M, int Buf, size_t Offset) {
  IOMemories.push_back({std::move(M), Buf, Offset});
}

void Program::finalize() {
  for (Buffer &B : Buffers)
    B.FirstStep = B.LastStep = -1;
  for (size_t I = 0; I < Steps.size(); ++I) {
    auto Touch = [&](int Buf) {
      Buffer &B = Buffers[Buf];
      if (B.FirstStep < 0)
        B.FirstStep = static_cast<int>(I);
      B.LastStep = static_cast<int>(I);
    };
    llvm::for_each(Steps[I]->Reads, Touch);
    llvm::for_each(Steps[I]->Writes, Touch);
  }
  TotalActivationBytes = 0;
  for (const Buffer &B : Buffers)
    if (B.Kind == BufferKind::Arena && B.FirstStep >= 0)
      TotalActivationBytes += B.Bytes;
  ArenaBytes = planMemory(Buffers);
  Arena = Tensor(DType::U8,
                 {static_cast<int64_t>(std::max<size_t>(ArenaBytes, 1))});
  ScratchBytes = 0;
  for (const auto &S : Steps)
    if (S->isPrimitive())
      for (const PrimitiveVariant &V :
           static_cast<PrimitiveStep &>(*S).Variants)
        ScratchBytes = std::max(ScratchBytes, V.Scratch.get_size());
  Scratchpad = Tensor(
      DType::U8, {static_cast<int64_t>(std::max<size_t>(ScratchBytes, 1))});
  IOAddress.assign(Buffers.size(), nullptr);
  for (auto &S : Steps)
    S->bind(*this);
  Samples.assign(Steps.size(), {});
}

llvm::Expected<std::vector<Tensor>> Program::bindIO(llvm::ArrayRef<Tensor> In) {
  if (In.size() != Inputs.size())
    return makeError("expected " + llvm::Twine(Inputs.size()) +
                     " inputs, got " + llvm::Twine(In.size()));
  for (size_t I = 0; I < In.size(); ++I) {
    const IOSpec &S = Inputs[I];
    if (In[I].dtype() != S.Dt ||
        In[I].shape() != llvm::ArrayRef<int64_t>(S.Dims) || !In[I].hasData())
      return makeError("input '" + S.Name + "': expected " + dtypeName(S.Dt) +
                       formatShape(S.Dims) + " (the compiled shape), got " +
                       dtypeName(In[I].dtype()) + formatShape(In[I].shape()));
    // Inputs are only read; steps never write an Input buffer.
    IOAddress[S.Buf] = const_cast<void *>(In[I].rawData());
  }
  std::vector<Tensor> Out;
  for (const IOSpec &S : Outputs) {
    Tensor T(S.Dt, S.Dims);
    T.setQuant(S.Q);
    IOAddress[S.Buf] = T.rawData();
    Out.push_back(std::move(T));
  }
  for (Tracked &T : IOMemories)
    T.M.set_data_handle(static_cast<char *>(IOAddress[T.Buf]) + T.Offset);
  return Out;
}

llvm::Error Program::runSteps(llvm::ArrayRef<int> Counts,
                              std::vector<std::vector<double>> *Times,
                              double StopAfterMs) {
  // Each step runs with its own OpenMP count: a step on one thread never
  // enters a parallel region (oneDNN runs nthr == 1 inline), so it wakes
  // no worker. The caller's count is restored afterwards.
  int Previous = omp_get_max_threads(), Current = Previous;
  auto Restore = llvm::make_scope_exit([&] {
    if (Current != Previous)
      omp_set_num_threads(Previous);
  });
  using Clock = std::chrono::steady_clock;
  auto Start = Clock::now();
  for (size_t I = 0; I < Steps.size(); ++I) {
    if (StopAfterMs > 0 &&
        std::chrono::duration<double, std::milli>(Clock::now() - Start)
                .count() > StopAfterMs)
      break;
    Step &S = *Steps[I];
    if (Counts[I] != Current)
      omp_set_num_threads(Current = Counts[I]);
    S.select(Counts[I]);
    auto T0 = Times ? Clock::now() : Clock::time_point();
    if (llvm::Error E = S.run(*this))
      return prefixError(std::move(E), "step '" + S.Info.Name + "'");
    if (!Times)
      continue;
    Stream.wait();
    auto T1 = Clock::now();
    (*Times)[I].push_back(
        std::chrono::duration<double, std::milli>(T1 - T0).count());
  }
  Stream.wait();
  return llvm::Error::success();
}

llvm::Expected<std::vector<Tensor>> Program::run(llvm::ArrayRef<Tensor> In) {
  auto Out = bindIO(In);
  if (!Out)
    return Out.takeError();
  // A module following the process's count runs no step on more threads
  // than the process has now.
  int Cap = NumThreads > 0 ? NumThreads : omp_get_max_threads();
  bool Chosen = Governor.useChosen();
  auto T0 = std::chrono::steady_clock::now();
  if (llvm::Error E =
          runSteps(runCounts(Chosen ? Cap : 1), Profiling ? &Samples : nullptr))
    return std::move(E);
  Governor.record(Chosen, std::chrono::duration<double, std::milli>(
                              std::chrono::steady_clock::now() - T0)
                              .count());
  return Out;
}

//===----------------------------------------------------------------------===//
// CompiledModule
//===----------------------------------------------------------------------===//

CompiledModule::CompiledModule(std::unique_ptr<codegen::Program> P)
    : P(std::move(P)) {}
CompiledModule::~CompiledModule() = default;

llvm::Expected<std::vector<Tensor>>
CompiledModule::run(llvm::ArrayRef<Tensor> Inputs) {
  return P->run(Inputs);
}

void CompiledModule::setProfiling(bool Enable) { P->Profiling = Enable; }

void CompiledModule::resetProfile() { P->Samples.assign(P->Steps.size(), {}); }

static double median(std::vector<double> V) {
  if (V.empty())
    return 0.0;
  std::sort(V.begin(), V.end());
  size_t N = V.size();
  return N % 2 ? V[N / 2] : 0.5 * (V[N / 2 - 1] + V[N / 2]);
}

std::vector<StepTime> CompiledModule::profile() const {
  std::vector<StepTime> R;
  for (size_t I = 0; I < P->Steps.size(); ++I) {
    const Step &S = *P->Steps[I];
    R.push_back({S.Info.Name, S.Info.Kind, S.isPrimitive(),
                 median(P->Samples[I]), P->Samples[I].size(), S.Threads});
  }
  return R;
}

double CompiledModule::primitiveTimeSum() const {
  double Sum = 0.0;
  for (const StepTime &T : profile())
    if (T.IsPrimitive)
      Sum += T.MedianMs;
  return Sum;
}

long CompiledModule::singleThreadRuns() const {
  return P->Governor.singleRuns();
}

size_t CompiledModule::peakActivationBytes() const { return P->ArenaBytes; }
size_t CompiledModule::totalActivationBytes() const {
  return P->TotalActivationBytes;
}
size_t CompiledModule::scratchpadBytes() const { return P->ScratchBytes; }

size_t CompiledModule::constantBytes() const {
  size_t N = 0;
  for (const Buffer &B : P->Buffers)
    if (B.Kind == BufferKind::Constant)
      N += B.Bytes;
  return N;
}

size_t CompiledModule::numPrimitives() const {
  return llvm::count_if(P->Steps,
                        [](const auto &S) { return S->isPrimitive(); });
}

std::vector<StepInfo> CompiledModule::steps() const {
  std::vector<StepInfo> R;
  for (const auto &S : P->Steps)
    R.push_back(S->Info);
  return R;
}

std::vector<FallbackInfo> CompiledModule::fallbacks() const {
  return P->Fallbacks;
}

std::string qfx::formatFallback(const FallbackInfo &F) {
  return "node '" + F.NodeName + "' (" + F.Op + "): " + F.Reason;
}

std::vector<Shape> CompiledModule::inputShapes() const {
  std::vector<Shape> R;
  for (const auto &I : P->Inputs)
    R.push_back(I.Dims);
  return R;
}

void CompiledModule::print(llvm::raw_ostream &OS) const {
  for (size_t I = 0; I < P->Steps.size(); ++I) {
    const StepInfo &S = P->Steps[I]->Info;
    OS << llvm::format("%3zu  ", I) << S.Kind << "  " << S.Name;
    if (!S.Detail.empty())
      OS << "  [" << S.Detail << "]";
    if (!S.Impl.empty())
      OS << "  impl=" << S.Impl;
    OS << "  threads=" << S.Threads << "\n";
  }
  OS << "primitives: " << numPrimitives() << ", steps: " << P->Steps.size()
     << ", threads: " << P->Budget << " (steps per thread count:";
  for (int T : threadLadder(P->Budget))
    OS << " " << T << ":" << llvm::count_if(P->Steps, [&](const auto &S) {
      return S->Threads == T;
    });
  OS << ")\n";
  if (P->Layouts.Measured || P->Layouts.Plan != "channels-last") {
    OS << "fp32 conv layouts: " << P->Layouts.Plan;
    if (P->Layouts.Measured)
      OS << llvm::format(" (measured: channels-last %.3f ms, blocked %.3f ms)",
                         P->Layouts.ChannelsLastMs, P->Layouts.BlockedMs);
    OS << "\n";
  }
  OS << "activation arena: " << peakActivationBytes() << " bytes (without "
     << "reuse: " << totalActivationBytes()
     << "), scratchpad: " << scratchpadBytes()
     << " bytes, constants: " << constantBytes() << " bytes\n";
  if (P->Fallbacks.empty())
    return;
  OS << "reference kernels: " << P->Fallbacks.size()
     << " node(s) without a oneDNN lowering\n";
  for (const FallbackInfo &F : P->Fallbacks)
    OS << "  " << formatFallback(F) << "\n";
}

LayoutReport CompiledModule::layouts() const { return P->Layouts; }

std::string CompiledModule::summary() const {
  std::string S;
  llvm::raw_string_ostream OS(S);
  print(OS);
  return OS.str();
}
