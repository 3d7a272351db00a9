//===- DnnlSupport.h - Shared oneDNN engine, cache, execution --*- C++ -*-===//
//
// Private to Backend/OneDNN: what every oneDNN kernel file needs (the CPU
// engine and stream, turning oneDNN errors into fatal errors, primitives with
// user-managed scratchpads, layout reorders and a thread-safe cache of built
// primitives keyed by shape and parameters).
//
//===----------------------------------------------------------------------===//

#ifndef QFX_LIB_BACKEND_ONEDNN_DNNLSUPPORT_H
#define QFX_LIB_BACKEND_ONEDNN_DNNLSUPPORT_H

#include "dnnl.hpp"

#include <omp.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace qfx {
namespace onednn {
namespace detail {

dnnl::engine &engine();
/// A CPU stream executes synchronously in the calling thread and keeps no
/// per-execution state, so all threads share this one.
dnnl::stream &stream();

/// Reports a oneDNN error from op \p Op as a fatal error: inputs were
/// validated before they got here, so it is a bug, not a user error.
[[noreturn]] void reportDnnlError(const char *Op, const dnnl::error &E);

template <typename Fn> void guarded(const char *Op, Fn &&F) {
  try {
    F();
  } catch (const dnnl::error &E) {
    reportDnnlError(Op, E);
  }
}

/// A primitive and its scratchpad layout. Scratchpads are user-managed and
/// allocated per execution: with the library-managed default, a primitive
/// must run on the thread that created it, which a shared cache cannot
/// promise.
struct Step {
  dnnl::primitive Prim;
  dnnl::memory::desc Scratch;

  explicit operator bool() const { return static_cast<bool>(Prim); }
};

/// Attributes asking for a user-managed scratchpad.
dnnl::primitive_attr userScratchpad();

/// An empty step when the layouts agree, a reorder otherwise.
Step makeReorder(const dnnl::memory::desc &From, const dnnl::memory::desc &To);

/// Executes \p S on \p Args, adding a fresh scratchpad if it needs one.
void run(const Step &S, std::unordered_map<int, dnnl::memory> Args);

/// Cache keys: an op id, then its shapes and parameters (a fixed count per
/// op, so distinct instances never collide).
using Key = std::vector<int64_t>;

/// Built entries by key and OpenMP thread count, in a deterministic
/// std::map. Entries are immutable once built, so callers use them outside
/// the lock.
template <typename Entry> class PrimitiveCache {
public:
  template <typename BuildFn>
  std::shared_ptr<const Entry> lookup(Key K, BuildFn &&Build) {
    // oneDNN's jit primitives fix their thread count (and per-thread
    // scratchpad) when created: one made for 1 thread must not serve a
    // caller on 2, nor the reverse.
    K.push_back(omp_get_max_threads());
    std::lock_guard<std::mutex> Lock(M);
    auto It = Entries.find(K);
    if (It != Entries.end())
      return It->second;
    auto E = std::make_shared<const Entry>(Build());
    Entries.emplace(K, E);
    return E;
  }

  size_t size() {
    std::lock_guard<std::mutex> Lock(M);
    return Entries.size();
  }

private:
  std::mutex M;
  std::map<Key, std::shared_ptr<const Entry>> Entries;
};

} // namespace detail
} // namespace onednn
} // namespace qfx

#endif // QFX_LIB_BACKEND_ONEDNN_DNNLSUPPORT_H
