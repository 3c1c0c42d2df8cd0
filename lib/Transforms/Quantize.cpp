//===- Quantize.cpp - --qsim-quantize ------------------------------------===//

#include "qsim/Quant/Precision.h"
#include "qsim/Quant/Quantizer.h"
#include "qsim/Support/Diagnostics.h"
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
    if (weightBits < 2 || weightBits > 8) {
      module.emitError() << "--qsim-quantize: weight-bits="
                         << static_cast<int>(weightBits) << " is outside 2..8";
      return signalPassFailure();
    }
    if (activationBits != 8 && activationBits != 16) {
      module.emitError() << "--qsim-quantize: activation-bits="
                         << static_cast<int>(activationBits)
                         << " is neither 8 nor 16";
      return signalPassFailure();
    }
    quantization::QuantizeOptions o;
    o.weightBits = weightBits;
    o.activationBits = activationBits;
    {
      DiagnosticPrefix prefix(&getContext(), "--qsim-quantize: int16-layers: ");
      if (failed(
              quantization::parseLayerList(int16Layers, module, o.int16Layers)))
        return signalPassFailure();
    }
    {
      DiagnosticPrefix prefix(&getContext(), "--qsim-quantize: w8-layers: ");
      if (failed(quantization::parseWeight8Layers(weight8Layers, module,
                                                  o.weight8Layers)))
        return signalPassFailure();
    }
    using namespace quantization;
    o.perChannelWeights = weights == WeightGranularity::PerChannel;
    o.symmetricActivations = activations == ActivationScheme::Symmetric;
    o.accumulatorBits = accumulator == AccumulatorWidth::Int16 ? 16 : 32;
    o.rounding = rounding;
    o.weightRange = weightRange;
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
