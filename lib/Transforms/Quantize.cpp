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
    auto bad = [&](StringRef what, StringRef value, StringRef allowed) {
      module.emitError() << "--qsim-quantize: " << what << "=" << value
                         << " (expected " << allowed << ")";
      signalPassFailure();
    };
    if (weights != "per-channel" && weights != "per-tensor")
      return bad("weights", weights, "per-channel or per-tensor");
    if (activations != "asymmetric" && activations != "symmetric")
      return bad("activations", activations, "asymmetric or symmetric");
    if (scale != "float" && scale != "pow2")
      return bad("scale", scale, "float or pow2");
    if (accumulator != "int32" && accumulator != "int16")
      return bad("accumulator", accumulator, "int32 or int16");
    if (!rt::parseRounding(rounding, o.rounding))
      return bad("rounding", rounding, "tflite or tosa-double");
    o.perChannelWeights = weights == "per-channel";
    o.symmetricActivations = activations == "symmetric";
    o.accumulatorBits = accumulator == "int16" ? 16 : 32;
    // log2 calibration asks for power-of-two scales.
    bool log2 = false;
    module.walk([&](Operation *op) {
      if (auto d = op->getAttrOfType<DictionaryAttr>("qsim.calib"))
        if (auto m = d.getAs<StringAttr>("method"); m && m.getValue() == "log2")
          log2 = true;
    });
    o.pow2Scales = scale == "pow2" || log2;
    if (failed(quantization::quantizeModule(module, o)))
      return signalPassFailure();
  }
};
} // namespace
