//===- DiscardableAttrs.cpp - verify the qsim.* attributes ---------------===//
//
// The dialect declares every `qsim.` attribute it attaches to ops it does
// not own (QSimDialect.td, discardableAttrs); here it checks their types and
// values wherever they appear, so that a hand-edited or stale model fails
// verification with the attribute's name instead of misleading a pass.
//
//===----------------------------------------------------------------------===//

#include "qsim/Dialect/QSim/IR/Layers.h"
#include "qsim/Dialect/QSim/IR/QSimOps.h"
#include "qsim/Runtime/QuantMath.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "llvm/ADT/StringSwitch.h"

#include <cmath>

using namespace mlir;
using namespace qsim;

namespace {

/// The attributes attached under `qsim.codegen.` while lowering (arena and
/// scratch sizes, the input description); the rest are declared in ODS.
LogicalResult verifyCodegenDetail(Operation *op, StringRef name,
                                  Attribute value) {
  bool ok = llvm::StringSwitch<bool>(name)
                .Case("codegen.arena_bytes", isa<IntegerAttr>(value))
                .Case("codegen.scratch_bytes", isa<IntegerAttr>(value))
                .Case("codegen.input", isa<DictionaryAttr>(value))
                .Default(false);
  if (!ok)
    return op->emitError() << "'qsim." << name
                           << "' is not a qsim attribute or has the wrong type";
  return success();
}

/// A calibrated range: float lo <= hi (what quantization uses); min, max,
/// method and images, when present (--qsim-calibrate records them), of
/// their types.
LogicalResult verifyCalib(Operation *op, DictionaryAttr d) {
  auto lo = d.getAs<FloatAttr>("lo"), hi = d.getAs<FloatAttr>("hi");
  if (!lo || !hi)
    return op->emitError() << "'qsim.calib' needs float 'lo' and 'hi'";
  if (!(lo.getValueAsDouble() <= hi.getValueAsDouble()))
    return op->emitError() << "'qsim.calib' range [" << lo.getValueAsDouble()
                           << ", " << hi.getValueAsDouble() << "] is empty";
  for (NamedAttribute entry : d) {
    StringRef key = entry.getName().getValue();
    Attribute v = entry.getValue();
    bool ok = llvm::StringSwitch<bool>(key)
                  .Cases("min", "max", "percentile", isa<FloatAttr>(v))
                  .Case("method", isa<StringAttr>(v))
                  .Case("images", isa<IntegerAttr>(v))
                  .Default(true);
    if (!ok)
      return op->emitError()
             << "'qsim.calib' has a '" << key << "' of the wrong type";
  }
  return success();
}

/// Batch-norm statistics: f32 arrays `mean` and `std` of one value per
/// output channel of the conv2d/connected carrying them, std finite and
/// >= 0. A stale copy (channels pruned, layer rewritten) fails here
/// instead of steering analytic bias correction wrong.
LogicalResult verifyBatchNormStats(Operation *op, DictionaryAttr d) {
  int64_t channels;
  if (auto conv = dyn_cast<Conv2DOp>(op))
    channels = conv.getFilters();
  else if (auto fc = dyn_cast<ConnectedOp>(op))
    channels = fc.getOutputSize();
  else
    return op->emitError()
           << "'qsim.bn_stats' belongs on a conv2d or connected op";
  auto mean = d.getAs<DenseF32ArrayAttr>("mean");
  auto sd = d.getAs<DenseF32ArrayAttr>("std");
  if (!mean || !sd || d.size() != 2)
    return op->emitError() << "'qsim.bn_stats' must be {mean = array<f32>, "
                              "std = array<f32>}";
  if (mean.size() != channels || sd.size() != channels)
    return op->emitError() << describeLayer(op) << ": 'qsim.bn_stats' has "
                           << mean.size() << " mean(s) and " << sd.size()
                           << " std(s) for " << channels << " output channels";
  for (int64_t c = 0; c < channels; ++c)
    if (!std::isfinite(mean[c]) || !std::isfinite(sd[c]) || !(sd[c] >= 0))
      return op->emitError()
             << describeLayer(op) << ": 'qsim.bn_stats' channel " << c
             << " has mean " << mean[c] << " and std " << sd[c]
             << " (finite, std >= 0)";
  return success();
}

template <typename AttrT>
LogicalResult expectType(Operation *op, StringRef name, Attribute value,
                         StringRef what) {
  if (isa<AttrT>(value))
    return success();
  return op->emitError() << "'qsim." << name << "' must be " << what;
}

LogicalResult verifyModuleOnly(Operation *op, StringRef name) {
  if (isa<ModuleOp>(op))
    return success();
  return op->emitError() << "'qsim." << name << "' belongs on the module";
}

} // namespace

LogicalResult QSimDialect::verifyOperationAttribute(Operation *op,
                                                    NamedAttribute attribute) {
  StringRef name = attribute.getName().getValue();
  if (!name.consume_front("qsim."))
    return success();
  Attribute value = attribute.getValue();
  if (name.starts_with("codegen."))
    return verifyCodegenDetail(op, name, value);
  if (name == "flavor") {
    auto s = dyn_cast<StringAttr>(value);
    if (!s || !parseFlavor(s.getValue()))
      return op->emitError()
             << "'qsim.flavor' must be \"alexeyab\" or \"pjreddie\"";
    return verifyModuleOnly(op, name);
  }
  if (name == "letter_box")
    return failure(failed(expectType<BoolAttr>(op, name, value, "a bool")) ||
                   failed(verifyModuleOnly(op, name)));
  if (name == "net" || name == "quantization" || name == "training")
    return failure(
        failed(expectType<DictionaryAttr>(op, name, value, "a dictionary")) ||
        failed(verifyModuleOnly(op, name)));
  if (name == "cost" || name == "contrastive") {
    auto a = dyn_cast<ArrayAttr>(value);
    if (!a ||
        !llvm::all_of(a, [](Attribute e) { return isa<DictionaryAttr>(e); }))
      return op->emitError()
             << "'qsim." << name << "' must be an array of dictionaries (["
             << name << "] keys)";
    return verifyModuleOnly(op, name);
  }
  if (name == "source")
    return failure(
        failed(expectType<StringAttr>(op, name, value, "a string")) ||
        failed(verifyModuleOnly(op, name)));
  if (name == "weights_header")
    return failure(failed(expectType<DenseI64ArrayAttr>(op, name, value,
                                                        "an array of i64")) ||
                   failed(verifyModuleOnly(op, name)));
  if (name == "precision") {
    auto s = dyn_cast<StringAttr>(value);
    if (!s || !parsePrecision(s.getValue()))
      return op->emitError() << describeLayer(op)
                             << ": 'qsim.precision' must be \"fp32\", "
                                "\"fp16\", \"bf16\", \"int8\" or "
                                "\"w8a16\"";
    return success();
  }
  if (name == "calib") {
    auto d = dyn_cast<DictionaryAttr>(value);
    if (!d)
      return op->emitError() << "'qsim.calib' must be a dictionary";
    return verifyCalib(op, d);
  }
  if (name == "bn_stats") {
    auto d = dyn_cast<DictionaryAttr>(value);
    if (!d)
      return op->emitError() << "'qsim.bn_stats' must be a dictionary";
    return verifyBatchNormStats(op, d);
  }
  if (name == "shortcut_subsample") {
    auto mp = dyn_cast<MaxPoolOp>(op);
    if (!isa<UnitAttr>(value) || !mp || mp.getSize() != 1 ||
        mp.getPadding() != 0)
      return op->emitError()
             << "'qsim.shortcut_subsample' must be a unit attribute on a "
                "qsim.maxpool of size 1 and padding 0";
    return success();
  }
  if (name == "crnn") {
    auto role = dyn_cast<StringAttr>(value);
    StringRef want = !role
                         ? ""
                         : llvm::StringSwitch<StringRef>(role.getValue())
                               .Cases("input", "self", "output", "qsim.conv2d")
                               .Case("zero", "qsim.upsample")
                               .Case("state", "qsim.shortcut")
                               .Default("");
    if (want.empty())
      return op->emitError() << "'qsim.crnn' must be \"input\", \"zero\", "
                                "\"self\", \"state\" or \"output\"";
    if (op->getName().getStringRef() != want)
      return op->emitError() << "'qsim.crnn' = \"" << role.getValue()
                             << "\" belongs on a " << want;
    return success();
  }
  if (name == "precision_reason" || name == "origin")
    return expectType<StringAttr>(op, name, value, "a string");
  if (name == "cfg" || name == "target")
    return expectType<DictionaryAttr>(op, name, value, "a dictionary");
  if (name == "sparsity")
    return expectType<FloatAttr>(op, name, value, "a float");
  if (name == "codegen")
    return expectType<ArrayAttr>(op, name, value, "an array");
  if (name == "layer" || name == "scratch_bytes")
    return expectType<IntegerAttr>(op, name, value, "an integer");
  if (name == "parallel")
    return expectType<BoolAttr>(op, name, value, "a boolean");
  if (name == "split")
    return expectType<DenseI64ArrayAttr>(op, name, value, "an i64 array");
  return op->emitError() << "unknown qsim attribute 'qsim." << name << "'";
}

LogicalResult QSimDialect::verifyRegionArgAttribute(Operation *op,
                                                    unsigned regionIndex,
                                                    unsigned argIndex,
                                                    NamedAttribute attribute) {
  StringRef name = attribute.getName().getValue();
  if (name != CalibAttrHelper::getNameStr())
    return op->emitError() << "unknown qsim argument attribute '" << name
                           << "' (only qsim.calib, on the network input)";
  auto d = dyn_cast<DictionaryAttr>(attribute.getValue());
  if (!d)
    return op->emitError() << "'qsim.calib' must be a dictionary";
  return verifyCalib(op, d);
}
