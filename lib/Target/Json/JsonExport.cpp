//===- JsonExport.cpp - model graph and statistics as JSON ---------------===//

#include "qsim/Target/Json/JsonExport.h"
#include "qsim/Dialect/QSim/IR/LayerStats.h"

#include <nlohmann/json.hpp>

using namespace mlir;
using namespace qsim;
using json = nlohmann::json;

static json attrToJson(Attribute a) {
  if (auto b = dyn_cast<BoolAttr>(a))
    return b.getValue();
  if (auto i = dyn_cast<IntegerAttr>(a))
    return i.getValue().getSExtValue();
  if (auto f = dyn_cast<FloatAttr>(a))
    return f.getValueAsDouble();
  if (auto s = dyn_cast<StringAttr>(a))
    return s.getValue().str();
  if (auto arr = dyn_cast<DenseI64ArrayAttr>(a))
    return std::vector<int64_t>(arr.asArrayRef().begin(), arr.asArrayRef().end());
  if (auto arr = dyn_cast<DenseI32ArrayAttr>(a))
    return std::vector<int32_t>(arr.asArrayRef().begin(), arr.asArrayRef().end());
  if (auto arr = dyn_cast<DenseF32ArrayAttr>(a))
    return std::vector<float>(arr.asArrayRef().begin(), arr.asArrayRef().end());
  if (auto act = dyn_cast<ActivationAttr>(a))
    return stringifyActivation(act.getValue()).str();
  if (auto nms = dyn_cast<NmsKindAttr>(a))
    return stringifyNmsKind(nms.getValue()).str();
  if (auto d = dyn_cast<DictionaryAttr>(a)) {
    json o = json::object();
    for (NamedAttribute n : d)
      o[n.getName().str()] = attrToJson(n.getValue());
    return o;
  }
  if (auto arr = dyn_cast<ArrayAttr>(a)) {
    json o = json::array();
    for (Attribute e : arr)
      o.push_back(attrToJson(e));
    return o;
  }
  std::string s;
  llvm::raw_string_ostream os(s);
  a.print(os);
  return os.str();
}

FailureOr<std::string> qsim::exportModelJson(ModuleOp module, int indent) {
  auto stats = computeModelStats(module);
  if (failed(stats))
    return failure();
  auto layers = getLayers(getMainFunc(module));
  json j;
  j["model"] = {{"source", stats->source},
                {"flavor", stringifyFlavor(stats->flavor).str()},
                {"input_shape", {stats->input.c, stats->input.h, stats->input.w}},
                {"letter_box", (bool)module->getAttrOfType<BoolAttr>("qsim.letter_box")}};
  json arr = json::array();
  for (size_t i = 0; i < stats->layers.size(); ++i) {
    const LayerStats &s = stats->layers[i];
    const Layer &layer = (*layers)[i];
    json l;
    l["index"] = s.index;
    l["type"] = s.kind;
    json ops = json::array();
    for (Operation *op : layer.ops)
      ops.push_back(op->getName().getStringRef().str());
    l["ops"] = ops;
    l["inputs"] = s.inputs;
    l["output_shape"] = {s.output.c, s.output.h, s.output.w};
    json attrs = json::object();
    for (Operation *op : {layer.head, layer.batchNorm ? const_cast<BatchNormOp &>(layer.batchNorm).getOperation() : nullptr}) {
      if (!op)
        continue;
      for (NamedAttribute a : op->getAttrs()) {
        if (isa<ElementsAttr>(a.getValue()))
          continue;
        std::string name = a.getName().str();
        if (op != layer.head)
          name = "bn." + name;
        attrs[name] = attrToJson(a.getValue());
      }
    }
    l["attributes"] = attrs;
    l["batch_normalize"] = (bool)layer.batchNorm;
    l["params"] = s.params;
    l["macs"] = s.macs;
    l["bflops"] = s.bflops;
    l["precision"] = s.precision;
    l["weight_bytes"] = s.weightBytes;
    l["weight_count"] = s.weightCount;
    l["zero_weights"] = s.zeroWeights;
    l["sparse_weight_bytes"] = s.sparseWeightBytes();
    if (auto flc = dyn_cast<FusedLoc>(layer.head->getLoc())) {
      for (Location sub : flc.getLocations())
        if (auto fl = dyn_cast<FileLineColLoc>(sub))
          l["location"] = {{"file", fl.getFilename().str()},
                           {"line", fl.getLine()}};
    }
    arr.push_back(l);
  }
  j["layers"] = arr;
  j["totals"] = {{"params", stats->params},
                 {"macs", stats->macs},
                 {"bflops", stats->bflops},
                 {"weight_bytes", stats->weightBytes},
                 {"layers", stats->layers.size()}};
  return j.dump(indent);
}
