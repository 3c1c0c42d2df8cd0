//===- Precision.cpp - per-layer precision plans -------------------------===//

#include "qsim/Quant/Precision.h"
#include "qsim/Quant/Quantizer.h"

#include "mlir/IR/Builders.h"
#include "llvm/ADT/StringExtras.h"

#include <map>

using namespace mlir;
using namespace qsim;
using namespace qsim::quantization;

LogicalResult qsim::quantization::parseLayerList(ArrayRef<std::string> items,
                                                 ModuleOp module,
                                                 std::set<int64_t> &out) {
  for (StringRef item : items) {
    item = item.trim();
    int64_t top;
    if (item.consume_front("top")) {
      if (item.getAsInteger(10, top) || top < 1)
        return module.emitError() << "bad 'topN' item 'top" << item << "'";
      // The N heaviest convolutional/connected layers by MACs.
      auto layers = getLayers(getMainFunc(module));
      if (failed(layers))
        return module.emitError() << "not a sequence of layers";
      std::vector<std::pair<int64_t, int64_t>> byMacs;
      for (const Layer &l : *layers)
        if (isa<Conv2DOp, ConnectedOp>(l.head))
          byMacs.push_back({cast<LayerOpInterface>(l.head).getMACs(), l.index});
      std::stable_sort(byMacs.begin(), byMacs.end(),
                       [](auto a, auto b) { return a.first > b.first; });
      for (int64_t i = 0; i < top && i < (int64_t)byMacs.size(); ++i)
        out.insert(byMacs[i].second);
      continue;
    }
    auto [a, b] = item.split('-');
    int64_t lo, hi;
    if (a.trim().getAsInteger(10, lo) || lo < 0)
      return module.emitError() << "bad layer index '" << item << "'";
    hi = lo;
    if (!b.empty() && (b.trim().getAsInteger(10, hi) || hi < lo))
      return module.emitError() << "bad layer range '" << item << "'";
    for (int64_t i = lo; i <= hi; ++i)
      out.insert(i);
  }
  if (!out.empty()) {
    auto layers = getLayers(getMainFunc(module));
    if (succeeded(layers) && *out.rbegin() >= (int64_t)layers->size())
      return module.emitError()
             << "layer " << *out.rbegin() << " does not exist (the model has "
             << layers->size() << " layers)";
  }
  return success();
}

std::string qsim::quantization::getAssignedPrecision(const Layer &layer) {
  if (auto p = layer.head->getAttrOfType<StringAttr>("qsim.precision"))
    return p.getValue().str();
  return "fp32";
}

void qsim::quantization::setAssignedPrecision(const Layer &layer,
                                              StringRef precision,
                                              StringRef reason) {
  Builder b(layer.head->getContext());
  layer.head->setAttr("qsim.precision", b.getStringAttr(precision));
  layer.head->setAttr("qsim.precision_reason", b.getStringAttr(reason));
}

LogicalResult qsim::quantization::assignPrecision(ModuleOp module,
                                                  const PrecisionPlan &plan) {
  auto layers = getLayers(getMainFunc(module));
  if (failed(layers))
    return failure();
  std::set<int64_t> int8, w8a16, fp16, bf16, fp32;
  if (failed(parseLayerList(plan.int8, module, int8)) ||
      failed(parseLayerList(plan.w8a16, module, w8a16)) ||
      failed(parseLayerList(plan.fp16, module, fp16)) ||
      failed(parseLayerList(plan.bf16, module, bf16)) ||
      failed(parseLayerList(plan.fp32, module, fp32)))
    return failure();
  int64_t n = layers->size();
  for (const auto *set : {&int8, &w8a16, &fp16, &bf16, &fp32})
    for (int64_t i : *set)
      if (i >= n)
        return module.emitError()
               << "layer " << i << " does not exist (the model has " << n
               << " layers)";
  {
    std::map<int64_t, int> times;
    for (const auto *set : {&int8, &w8a16, &fp16, &bf16, &fp32})
      for (int64_t i : *set)
        if (++times[i] > 1)
          return module.emitError()
                 << "layer " << i << " is given two precisions";
  }

  // hybrid (yolo2_light): convolutions int8 except the first, the last and
  // those feeding a detection head; everything else float.
  std::set<int64_t> hybridInt8;
  if (plan.preset == PrecisionPreset::Hybrid) {
    std::vector<int64_t> convs;
    for (const Layer &l : *layers)
      if (isa<Conv2DOp>(l.head))
        convs.push_back(l.index);
    for (size_t k = 0; k < convs.size(); ++k) {
      if (k == 0 || k + 1 == convs.size())
        continue;
      if (!feedsDetectionHead((*layers)[convs[k]]))
        hybridInt8.insert(convs[k]);
    }
  }

  for (const Layer &l : *layers) {
    std::string want, reason;
    if (int8.count(l.index)) {
      want = "int8";
      reason = "explicit";
    } else if (w8a16.count(l.index)) {
      if (!hasInt8Form(l) || !hasInt16Form(l))
        return l.head->emitError()
               << describeLayer(l.head)
               << ": has no W8A16 form (int16 activations are for "
                  "convolutional, connected, maxpool, upsample and dropout "
                  "layers)";
      want = "w8a16";
      reason = "explicit";
    } else if (fp16.count(l.index)) {
      want = "fp16";
      reason = "explicit";
    } else if (bf16.count(l.index)) {
      want = "bf16";
      reason = "explicit";
    } else if (fp32.count(l.index)) {
      want = "fp32";
      reason = "explicit";
    } else if (auto r =
                   l.head->getAttrOfType<StringAttr>("qsim.precision_reason");
               r && r.getValue() == "cfg") {
      continue; // the plan written in the cfg stands
    } else if (plan.preset == PrecisionPreset::AllInt8) {
      want = "int8";
      reason = "preset:all-int8";
    } else if (plan.preset == PrecisionPreset::Hybrid) {
      want = hybridInt8.count(l.index) ? "int8" : "fp32";
      reason = "preset:hybrid";
    } else if (plan.preset == PrecisionPreset::FP16) {
      want = isa<YoloOp, RegionOp>(l.head) ? "fp32" : "fp16";
      reason = "preset:fp16";
    } else if (plan.preset == PrecisionPreset::BF16) {
      want = isa<YoloOp, RegionOp>(l.head) ? "fp32" : "bf16";
      reason = "preset:bf16";
    } else {
      want = stringifyPrecision(plan.defaultPrecision).str();
      reason = "default";
    }
    if (want == "int8" && !hasInt8Form(l)) {
      if (reason == "explicit")
        return l.head->emitError()
               << describeLayer(l.head)
               << ": has no int8 form (int8 covers convolutional and "
                  "connected layers with linear/relu/relu6/leaky, maxpool, "
                  "upsample, reorg, dropout, route and shortcut)";
      // Detection heads always decode in float; say so for anything else.
      if (!isa<YoloOp, RegionOp>(l.head))
        l.head->emitRemark()
            << describeLayer(l.head) << ": no int8 form, kept in fp32";
      want = "fp32";
      reason += " (no int8 form)";
    }
    setAssignedPrecision(l, want, reason);
  }
  return success();
}
