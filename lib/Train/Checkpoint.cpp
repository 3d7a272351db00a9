//===- Checkpoint.cpp - Saving and restoring a model's state --------------===//
//
// Loading copies into the existing storage, as load_state_dict's copy_
// does, so tensors that share storage (tied weights, a GraphModule and the
// module it was traced from) stay shared.
//
//===----------------------------------------------------------------------===//

#include "qfx/Train/Checkpoint.h"

#include "qfx/IR/GraphModule.h"
#include "qfx/Support/Error.h"
#include "qfx/Support/Safetensors.h"

#include <cstring>
#include <set>
#include <string>
#include <utility>
#include <vector>

using namespace qfx;

llvm::Error qfx::saveCheckpoint(const GraphModule &GM, llvm::StringRef Path) {
  SafetensorsFile F;
  // safetensors.torch.save_file writes this marker; some loaders want it.
  F.Metadata["format"] = "pt";
  for (const auto &[Name, T] : GM.namedTensors())
    if (T->hasData())
      F.Tensors.emplace(Name, *T);
  return writeSafetensors(Path, F);
}

namespace {
/// What loadCheckpoint found: the copies to make, or the problems.
struct LoadPlan {
  std::vector<std::pair<std::string, Tensor *>> Copies;
  std::vector<std::string> Missing, Unexpected, Mismatched;
};
} // namespace

/// "f32[2,3]".
static std::string describe(const Tensor &T) {
  return dtypeName(T.dtype()).str() + formatShape(T.shape());
}

/// Matches the tensors of \p GM against those of \p F.
static LoadPlan planLoad(GraphModule &GM, const SafetensorsFile &F,
                         bool AllowMissing) {
  LoadPlan P;
  std::set<std::string> Known;
  for (const auto &[Name, Dst] : GM.namedTensors()) {
    Known.insert(Name);
    auto It = F.Tensors.find(Name);
    if (It == F.Tensors.end()) {
      // Tensors without data are not saved, so they are not required
      // either: loading what saveCheckpoint wrote always succeeds.
      if (!AllowMissing && Dst->hasData())
        P.Missing.push_back(Name);
      continue;
    }
    const Tensor &Src = It->second;
    if (Src.dtype() != Dst->dtype() || Src.shape() != Dst->shape()) {
      P.Mismatched.push_back("tensor '" + Name + "': expected " +
                             describe(*Dst) + ", got " + describe(Src));
      continue;
    }
    P.Copies.emplace_back(Name, GM.lookupTensor(Name));
  }
  for (const auto &KV : F.Tensors)
    if (!Known.count(KV.first))
      P.Unexpected.push_back(KV.first);
  return P;
}

/// One error per problem, each naming the file; long lists are cut short
/// since a wrong file would otherwise report every tensor.
static llvm::Error problemsError(llvm::StringRef Path, const LoadPlan &P) {
  std::vector<std::string> All;
  for (const std::string &N : P.Missing)
    All.push_back("tensor '" + N + "' of the model is missing from the file");
  for (const std::string &N : P.Unexpected)
    All.push_back("tensor '" + N + "' is not in the model");
  All.insert(All.end(), P.Mismatched.begin(), P.Mismatched.end());
  const size_t Shown = 8;
  llvm::Error E = llvm::Error::success();
  for (size_t I = 0; I < All.size() && I < Shown; ++I)
    E = llvm::joinErrors(std::move(E), fileError(Path, All[I]));
  if (All.size() > Shown)
    E = llvm::joinErrors(
        std::move(E), fileError(Path, "and " + llvm::Twine(All.size() - Shown) +
                                          " more problems"));
  return E;
}

llvm::Error qfx::loadCheckpoint(GraphModule &GM, llvm::StringRef Path,
                                bool AllowMissing) {
  llvm::Expected<SafetensorsFile> F = readSafetensors(Path);
  if (!F)
    return F.takeError(); // The reader names the file.
  LoadPlan P = planLoad(GM, *F, AllowMissing);
  if (!P.Missing.empty() || !P.Unexpected.empty() || !P.Mismatched.empty())
    return problemsError(Path, P);

  for (const auto &[Name, Dst] : P.Copies) {
    Tensor &Src = F->Tensors.find(Name)->second;
    if (!Dst->hasData()) {
      // A declared tensor (values elided in the text IR) gets the file's
      // storage; the file has no quantization parameters to offer.
      Src.setQuant(Dst->quant());
      *Dst = std::move(Src);
    } else if (Dst->byteSize()) {
      std::memcpy(Dst->rawData(), Src.rawData(), Dst->byteSize());
    }
  }
  return llvm::Error::success();
}
