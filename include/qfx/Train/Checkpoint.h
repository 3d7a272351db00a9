//===- Checkpoint.h - Saving and restoring a model's state ------*- C++ -*-===//
//
// A checkpoint is the GraphModule's state dict (parameters and buffers,
// observer and fake-quant state included) in a .safetensors file under the
// qualified names PyTorch uses, so weights trained here load into an
// nn::Module (load_safetensors) and the other way round.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_TRAIN_CHECKPOINT_H
#define QFX_TRAIN_CHECKPOINT_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

namespace qfx {

class GraphModule;

/// Writes every tensor of \p GM that has data to \p Path, atomically
/// (a failed write leaves no file behind).
llvm::Error saveCheckpoint(const GraphModule &GM, llvm::StringRef Path);

/// Restores \p GM's tensors from \p Path. Strict, like load_state_dict:
/// a tensor of \p GM missing from the file, a file entry \p GM does not
/// have, or a dtype or shape mismatch is an error naming the tensor; on any
/// error \p GM is unchanged. With \p AllowMissing, tensors absent from the
/// file keep their values (loading float weights into a prepared graph
/// whose observers are new).
llvm::Error loadCheckpoint(GraphModule &GM, llvm::StringRef Path,
                           bool AllowMissing = false);

} // namespace qfx

#endif // QFX_TRAIN_CHECKPOINT_H
