//===- Quantize.cpp - --qsim-quantize ------------------------------------===//

#include "qsim/Quant/Quantizer.h"
#include "qsim/Transforms/Passes.h"

namespace qsim {
#define GEN_PASS_DEF_QUANTIZEPASS
#include "qsim/Transforms/Passes.h.inc"
} // namespace qsim

using namespace mlir;
using namespace qsim;

namespace {
struct QuantizePass : public qsim::impl::QuantizePassBase<QuantizePass> {
  using QuantizePassBase::QuantizePassBase;
  void runOnOperation() override {
    ModuleOp module = getOperation();
    quantization::QuantizeOptions o;
    using namespace quantization;
    o.perChannelWeights = weights == WeightGranularity::PerChannel;
    o.symmetricActivations = activations == ActivationScheme::Symmetric;
    o.accumulatorBits = accumulator == AccumulatorWidth::Int16 ? 16 : 32;
    o.rounding = rounding;
    // log2 calibration asks for power-of-two scales.
    bool log2 = false;
    module.walk([&](Operation *op) {
      if (auto d = op->getAttrOfType<DictionaryAttr>("qsim.calib"))
        if (auto m = d.getAs<StringAttr>("method"); m && m.getValue() == "log2")
          log2 = true;
    });
    o.pow2Scales = scale == quantization::ScaleKind::Pow2 || log2;
    if (failed(quantization::quantizeModule(module, o)))
      return signalPassFailure();
  }
};
} // namespace
