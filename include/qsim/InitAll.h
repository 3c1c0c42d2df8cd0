//===- InitAll.h - register qsim dialects and passes -----------*- C++ -*-===//
//
// Everything qsim-opt offers: the dialects of a qsim model and every qsim
// pass (the dialect's own, the qsim-opt passes, lowering and code
// generation, and the code generation pipeline).
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_INITALL_H
#define QSIM_INITALL_H

#include "qsim/Codegen/Emit.h"
#include "qsim/Conversion/Passes.h"
#include "qsim/Target/ModelIO.h"
#include "qsim/Transforms/Passes.h"

namespace qsim {
inline void registerAllQSimPasses() {
  registerQSimDialectPasses();
  registerQSimPasses();
  registerQSimConversionPasses();
  registerCodegenPipeline();
}
} // namespace qsim

#endif
