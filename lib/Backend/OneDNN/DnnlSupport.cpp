//===- DnnlSupport.cpp - Engine, errors, reorders and execution ----------===//

#include "DnnlSupport.h"

#include "dnnl_debug.h"

#include "llvm/ADT/Twine.h"
#include "llvm/Support/ErrorHandling.h"

using namespace qfx::onednn::detail;
using dnnl::memory;

dnnl::engine &qfx::onednn::detail::engine() {
  static dnnl::engine E(dnnl::engine::kind::cpu, 0);
  return E;
}

dnnl::stream &qfx::onednn::detail::stream() {
  static dnnl::stream S(engine());
  return S;
}

void qfx::onednn::detail::reportDnnlError(const char *Op,
                                          const dnnl::error &E) {
  llvm::report_fatal_error(llvm::Twine("onednn ") + Op + ": " +
                               dnnl_status2str(E.status) + ": " + E.what(),
                           /*gen_crash_diag=*/false);
}

dnnl::primitive_attr qfx::onednn::detail::userScratchpad() {
  dnnl::primitive_attr A;
  A.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return A;
}

Step qfx::onednn::detail::makeReorder(const memory::desc &From,
                                      const memory::desc &To) {
  if (From == To)
    return {};
  dnnl::reorder::primitive_desc PD(engine(), From, engine(), To,
                                   userScratchpad());
  return {dnnl::reorder(PD), PD.scratchpad_desc()};
}

void qfx::onednn::detail::run(const Step &S,
                              std::unordered_map<int, memory> Args) {
  if (S.Scratch.get_size() != 0)
    Args.emplace(DNNL_ARG_SCRATCHPAD, memory(S.Scratch, engine()));
  S.Prim.execute(stream(), Args);
}
