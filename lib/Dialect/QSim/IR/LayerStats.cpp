//===- LayerStats.cpp - per-layer costs of a qsim model ------------------===//

#include "qsim/Dialect/QSim/IR/LayerStats.h"

#include "llvm/ADT/DenseMap.h"
#include <cstdarg>
#include <cstdio>

using namespace mlir;
using namespace qsim;

int64_t LayerStats::totalWeightBytes() const {
  int64_t t = 0;
  for (auto &[k, v] : weightBytes)
    t += v;
  return t;
}

int64_t LayerStats::sparseWeightBytes() const {
  return totalWeightBytes() - zeroWeights * weightElementBytes +
         (weightCount + 7) / 8;
}

static std::string storageName(Type el) {
  if (el.isF32())
    return "f32";
  if (el.isF16())
    return "f16";
  if (auto q = dyn_cast<quant::QuantizedType>(el))
    el = q.getStorageType();
  if (auto i = dyn_cast<IntegerType>(el))
    return "i" + std::to_string(i.getWidth());
  return "other";
}

static int64_t storageBytes(Type el) {
  if (auto q = dyn_cast<quant::QuantizedType>(el))
    el = q.getStorageType();
  return (el.getIntOrFloatBitWidth() + 7) / 8;
}

std::string qsim::getLayerPrecision(const Layer &layer) {
  Type el = getElementTypeOrSelf(layer.head->getResult(0).getType());
  if (auto q = dyn_cast<quant::QuantizedType>(el))
    return q.getStorageTypeIntegralWidth() == 16 ? "w8a16" : "int8";
  if (el.isF16())
    return "fp16";
  if (el.isBF16())
    return "bf16";
  return "fp32";
}

static void countWeights(Operation *op, LayerStats &s, bool &any) {
  for (NamedAttribute a : op->getAttrs()) {
    auto e = dyn_cast<ElementsAttr>(a.getValue());
    if (!e)
      continue;
    any = true;
    Type el = e.getShapedType().getElementType();
    s.weightBytes[storageName(el)] += e.getNumElements() * storageBytes(el);
    if (a.getName() == "weight") {
      s.weightCount += e.getNumElements();
      ArrayRef<char> raw = getRawBytes(e);
      int64_t width = storageBytes(el);
      s.weightElementBytes = width;
      if (!raw.empty() && (int64_t)raw.size() == e.getNumElements() * width) {
        for (int64_t i = 0; i < e.getNumElements(); ++i) {
          bool zero = true;
          for (int64_t b = 0; b < width; ++b)
            if (raw[i * width + b] != 0 &&
                !(width == 4 && b == 3 && raw[i * 4 + b] == (char)0x80))
              zero = false;
          s.zeroWeights += zero;
        }
      }
    }
  }
}

FailureOr<ModelStats> qsim::computeModelStats(ModuleOp module) {
  func::FuncOp func;
  auto layers = getMainLayers(module, &func);
  if (failed(layers))
    return failure();
  ModelStats ms;
  if (auto src = module->getAttrOfType<StringAttr>("qsim.source"))
    ms.source = src.getValue().str();
  ms.flavor = getFlavor(module);
  if (func.getNumArguments() == 1)
    if (auto t = dyn_cast<ShapedType>(func.getArgumentTypes()[0]);
        t && t.getRank() == 4)
      ms.input = {t.getDimSize(1), t.getDimSize(2), t.getDimSize(3)};
  llvm::DenseMap<Value, int64_t> producer;
  for (Value arg : func.getArguments())
    producer[arg] = -1;
  for (const Layer &layer : *layers) {
    LayerStats s;
    s.index = layer.index;
    s.kind = layer.kind().str();
    auto outType = cast<ShapedType>(layer.output().getType());
    s.output = {outType.getDimSize(1), outType.getDimSize(2),
                outType.getDimSize(3)};
    // Inputs: operands of the layer's ops that come from outside the layer,
    // looking through casts.
    for (Value v : layer.head->getOperands()) {
      while (Operation *def = v.getDefiningOp()) {
        if (!isPrecisionCast(def))
          break;
        v = def->getOperand(0);
      }
      auto it = producer.find(v);
      s.inputs.push_back(it == producer.end() ? -1 : it->second);
    }
    bool anyWeights = false;
    for (Operation *op : layer.ops) {
      if (auto l = dyn_cast<LayerOpInterface>(op)) {
        s.params += l.getParameterCount();
        s.macs += l.getMACs();
        s.bflops += l.getBFLOPs();
      }
      countWeights(op, s, anyWeights);
    }
    if (!anyWeights && s.params > 0)
      s.weightBytes["f32"] = s.params * 4;
    s.precision = getLayerPrecision(layer);
    producer[layer.output()] = layer.index;
    ms.params += s.params;
    ms.macs += s.macs;
    ms.bflops += s.bflops;
    ms.weightBytes += s.totalWeightBytes();
    ms.layers.push_back(std::move(s));
  }
  return ms;
}

static std::string fmt(const char *format, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, format);
  vsnprintf(buf, sizeof buf, format, ap);
  va_end(ap);
  return buf;
}

static std::string humanBytes(int64_t b) {
  char buf[32];
  if (b < 1024)
    snprintf(buf, sizeof buf, "%lld B", (long long)b);
  else if (b < 1024 * 1024)
    snprintf(buf, sizeof buf, "%.1f KiB", b / 1024.0);
  else
    snprintf(buf, sizeof buf, "%.2f MiB", b / (1024.0 * 1024.0));
  return buf;
}

void qsim::printModelStats(const ModelStats &ms, raw_ostream &os) {
  os << "model: " << (ms.source.empty() ? "<module>" : ms.source) << " ("
     << stringifyFlavor(ms.flavor) << "), input " << ms.input.str() << ", "
     << ms.layers.size() << " layers\n";
  os << fmt("%5s  %-15s %-14s %10s %13s %9s  %-5s %12s\n", "layer", "type",
            "output", "params", "MACs", "BFLOPs", "prec", "weights");
  std::map<std::string, int64_t> byStorage;
  for (const LayerStats &s : ms.layers) {
    os << fmt(
        "%5lld  %-15s %-14s %10lld %13lld %9.3f  %-5s %12s\n",
        (long long)s.index, s.kind.c_str(), s.output.str().c_str(),
        (long long)s.params, (long long)s.macs, s.bflops, s.precision.c_str(),
        s.totalWeightBytes() ? humanBytes(s.totalWeightBytes()).c_str() : "-");
    for (auto &[k, v] : s.weightBytes)
      byStorage[k] += v;
  }
  os << fmt("total  %-30s %10lld %13lld %9.3f  %-5s %12s\n", "",
            (long long)ms.params, (long long)ms.macs, ms.bflops, "",
            humanBytes(ms.weightBytes).c_str());
  os << "weight bytes by storage:";
  for (auto &[k, v] : byStorage)
    os << " " << k << "=" << v;
  os << "\n";
  os << fmt("Total BFLOPS %5.3f\n", ms.bflops);

  // Sparsity (e.g. after --qsim-prune mode=magnitude), when there is any.
  int64_t zeros = 0, count = 0, dense = 0, sparse = 0;
  for (const LayerStats &s : ms.layers)
    zeros += s.zeroWeights, count += s.weightCount;
  if (count == 0 || zeros * 100 < count)
    return;
  os << "sparsity (exact zero weights; sparse size = non-zero weights + a "
        "1-bit mask per weight):\n";
  os << fmt("%5s  %-15s %7s %12s %12s\n", "layer", "type", "zeros", "dense",
            "sparse");
  for (const LayerStats &s : ms.layers) {
    dense += s.totalWeightBytes();
    sparse += s.weightCount
                  ? std::min(s.totalWeightBytes(), s.sparseWeightBytes())
                  : s.totalWeightBytes();
    if (s.weightCount == 0 || s.zeroWeights * 100 < s.weightCount)
      continue;
    os << fmt("%5lld  %-15s %6.1f%% %12s %12s\n", (long long)s.index,
              s.kind.c_str(), 100.0 * s.zeroWeights / s.weightCount,
              humanBytes(s.totalWeightBytes()).c_str(),
              humanBytes(s.sparseWeightBytes()).c_str());
  }
  os << fmt("total  %-15s %6.1f%% %12s %12s\n", "", 100.0 * zeros / count,
            humanBytes(dense).c_str(), humanBytes(sparse).c_str());
}
