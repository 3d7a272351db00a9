//===- MemoryPlan.cpp - Arena placement of activation buffers by liveness -===//

#include "Program.h"

#include <algorithm>
#include <numeric>

using namespace qfx;
using namespace qfx::codegen;

namespace {

/// oneDNN's kernels prefer cache-line aligned tensors.
constexpr size_t Alignment = 64;

size_t alignUp(size_t V) { return (V + Alignment - 1) / Alignment * Alignment; }

bool overlaps(const Buffer &A, const Buffer &B) {
  return A.FirstStep <= B.LastStep && B.FirstStep <= A.LastStep;
}

} // namespace

size_t codegen::planMemory(std::vector<Buffer> &Buffers) {
  std::vector<size_t> Order;
  for (size_t I = 0; I < Buffers.size(); ++I)
    if (Buffers[I].Kind == BufferKind::Arena && Buffers[I].FirstStep >= 0)
      Order.push_back(I);
  // Big buffers first: they are the hardest to fit into gaps later.
  std::stable_sort(Order.begin(), Order.end(), [&](size_t A, size_t B) {
    const Buffer &X = Buffers[A], &Y = Buffers[B];
    if (X.Bytes != Y.Bytes)
      return X.Bytes > Y.Bytes;
    return X.FirstStep < Y.FirstStep;
  });
  std::vector<size_t> Placed;
  size_t ArenaBytes = 0;
  for (size_t I : Order) {
    Buffer &B = Buffers[I];
    std::vector<size_t> Conflicts;
    for (size_t J : Placed)
      if (overlaps(B, Buffers[J]))
        Conflicts.push_back(J);
    std::sort(Conflicts.begin(), Conflicts.end(), [&](size_t X, size_t Y) {
      return Buffers[X].Offset < Buffers[Y].Offset;
    });
    size_t Offset = 0, Size = alignUp(B.Bytes);
    for (size_t J : Conflicts) {
      const Buffer &C = Buffers[J];
      if (Offset + Size <= C.Offset)
        break;
      Offset = std::max(Offset, alignUp(C.Offset + C.Bytes));
    }
    B.Offset = Offset;
    Placed.push_back(I);
    ArenaBytes = std::max(ArenaBytes, Offset + Size);
  }
  return ArenaBytes;
}
