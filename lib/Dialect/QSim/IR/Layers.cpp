//===- Layers.cpp - Darknet layers over qsim ops -------------------------===//

#include "qsim/Dialect/QSim/IR/Layers.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/IR/AttrTypeSubElements.h"
#include "mlir/IR/BuiltinDialect.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "mlir/IR/IRMapping.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/SetVector.h"
#include "llvm/ADT/StringExtras.h"

#include <cstring>

using namespace mlir;
using namespace qsim;

StringRef qsim::stringifyPrecision(Precision p) {
  switch (p) {
  case Precision::FP32:
    return "fp32";
  case Precision::FP16:
    return "fp16";
  case Precision::BF16:
    return "bf16";
  case Precision::Int8:
    return "int8";
  case Precision::W8A16:
    return "w8a16";
  }
  llvm_unreachable("precision");
}

std::optional<Precision> qsim::parsePrecision(StringRef s) {
  if (s == "fp32")
    return Precision::FP32;
  if (s == "fp16")
    return Precision::FP16;
  if (s == "bf16")
    return Precision::BF16;
  if (s == "int8")
    return Precision::Int8;
  if (s == "w8a16")
    return Precision::W8A16;
  return std::nullopt;
}

StringRef qsim::stringifyFlavor(Flavor f) {
  return f == Flavor::AlexeyAB ? "alexeyab" : "pjreddie";
}

std::optional<Flavor> qsim::parseFlavor(StringRef s) {
  if (s == "alexeyab")
    return Flavor::AlexeyAB;
  if (s == "pjreddie")
    return Flavor::PJReddie;
  return std::nullopt;
}

Flavor qsim::getFlavor(Operation *op) {
  ModuleOp m =
      isa<ModuleOp>(op) ? cast<ModuleOp>(op) : op->getParentOfType<ModuleOp>();
  if (m)
    if (auto s = m->getAttrOfType<StringAttr>(QSimDialect::getFlavorAttrName()))
      if (auto f = parseFlavor(s.getValue()))
        return *f;
  return Flavor::AlexeyAB;
}

rt::NmsKind qsim::decodingNmsKind(YoloOp yolo, Flavor flavor) {
  if (flavor != Flavor::AlexeyAB)
    return rt::NmsKind::Default;
  switch (yolo.getNmsKind()) {
  case NmsKind::greedynms:
    return rt::NmsKind::Greedy;
  case NmsKind::diounms:
    return rt::NmsKind::DIoU;
  case NmsKind::cornersnms:
    return rt::NmsKind::Corners;
  default:
    return rt::NmsKind::Default;
  }
}

LogicalResult qsim::getModuleRounding(ModuleOp module, rt::Rounding &out,
                                      std::string &error) {
  out = rt::Rounding::TFLite;
  if (auto q = module->getAttrOfType<DictionaryAttr>("qsim.quantization"))
    if (auto r = q.getAs<StringAttr>("rounding"))
      if (!rt::parseRounding(r.getValue().str(), out)) {
        error = "unknown rounding '" + r.getValue().str() +
                "' in qsim.quantization";
        return failure();
      }
  return success();
}

void qsim::setFlavor(ModuleOp module, Flavor f) {
  module->setAttr(QSimDialect::getFlavorAttrName(),
                  StringAttr::get(module.getContext(), stringifyFlavor(f)));
}

bool qsim::isPrecisionCast(Operation *op) {
  return isa<quant::QuantizeCastOp, quant::DequantizeCastOp,
             quant::StorageCastOp, arith::TruncFOp, arith::ExtFOp>(op);
}

Value Layer::output() const {
  if (batchNorm)
    return const_cast<BatchNormOp &>(batchNorm)->getResult(0);
  return head->getResult(0);
}

StringRef Layer::kind() const {
  return cast<LayerOpInterface>(head).getDarknetSection();
}

/// The values `ops` read that none of them defines, in order of first use.
static SmallVector<Value> externalOperands(ArrayRef<Operation *> ops) {
  llvm::SetVector<Value> ins;
  llvm::DenseSet<Operation *> own(ops.begin(), ops.end());
  for (Operation *op : ops)
    for (Value v : op->getOperands())
      if (!v.getDefiningOp() || !own.count(v.getDefiningOp()))
        ins.insert(v);
  return ins.takeVector();
}

SmallVector<Value> Layer::externalInputs() const {
  return externalOperands(ops);
}

OwningOpRef<ModuleOp> qsim::extractOpsAsModule(ArrayRef<Operation *> ops,
                                               Value output) {
  assert(!ops.empty() && "no ops to extract");
  auto parent = ops.front()->getParentOfType<ModuleOp>();
  Location loc = parent.getLoc();
  OpBuilder b(parent.getContext());
  OwningOpRef<ModuleOp> m = ModuleOp::create(loc);
  for (NamedAttribute a : parent->getAttrs())
    if (a.getName() != SymbolTable::getSymbolAttrName())
      (*m)->setAttr(a.getName(), a.getValue());
  SmallVector<Value> inputs = externalOperands(ops);
  SmallVector<Type> inputTypes;
  for (Value v : inputs)
    inputTypes.push_back(v.getType());
  b.setInsertionPointToEnd(m->getBody());
  auto func = b.create<func::FuncOp>(
      loc, "main", b.getFunctionType(inputTypes, {output.getType()}));
  Block *body = func.addEntryBlock();
  b.setInsertionPointToEnd(body);
  IRMapping map;
  map.map(inputs, body->getArguments());
  for (Operation *op : ops)
    b.clone(*op, map);
  b.create<func::ReturnOp>(loc, map.lookup(output));
  return m;
}

OwningOpRef<ModuleOp> qsim::extractLayerModule(const Layer &layer) {
  return extractOpsAsModule(layer.ops, layer.output());
}

shapes::CHW qsim::chwOf(Value v) {
  auto t = cast<ShapedType>(v.getType());
  return {t.getDimSize(1), t.getDimSize(2), t.getDimSize(3)};
}

func::FuncOp qsim::getMainFunc(ModuleOp module) {
  func::FuncOp only;
  unsigned count = 0;
  for (auto f : module.getOps<func::FuncOp>()) {
    if (f.getName() == "main")
      return f;
    only = f;
    ++count;
  }
  return count == 1 ? only : func::FuncOp();
}

FailureOr<std::vector<Layer>> qsim::getMainLayers(ModuleOp module,
                                                  func::FuncOp *func) {
  func::FuncOp main = getMainFunc(module);
  if (!main)
    return module.emitError() << "no main function";
  if (func)
    *func = main;
  return getLayers(main);
}

FailureOr<std::vector<Layer>> qsim::getLayers(func::FuncOp func) {
  std::vector<Layer> layers;
  SmallVector<Operation *, 4> pendingCasts;
  for (Operation &op : func.getBody().front()) {
    if (op.hasTrait<OpTrait::IsTerminator>())
      continue;
    if (isPrecisionCast(&op)) {
      pendingCasts.push_back(&op);
      continue;
    }
    if (auto bn = dyn_cast<BatchNormOp>(op); bn && !bn.getStandalone()) {
      Operation *def = bn.getInput().getDefiningOp();
      if (layers.empty() || layers.back().head != def ||
          layers.back().batchNorm)
        return op.emitError() << describeLayer(&op)
                              << ": batch norm does not directly follow the "
                                 "layer it belongs to";
      layers.back().batchNorm = bn;
      layers.back().ops.append(pendingCasts.begin(), pendingCasts.end());
      pendingCasts.clear();
      layers.back().ops.push_back(&op);
      continue;
    }
    if (!isa<LayerOpInterface>(op))
      return op.emitError()
             << "'" << op.getName() << "' does not belong to any Darknet layer";
    Layer layer;
    layer.index = layers.size();
    layer.head = &op;
    layer.ops.append(pendingCasts.begin(), pendingCasts.end());
    pendingCasts.clear();
    layer.ops.push_back(&op);
    layers.push_back(std::move(layer));
  }
  // Casts after the last layer (before the return) belong to the last layer.
  if (!pendingCasts.empty() && !layers.empty())
    layers.back().ops.append(pendingCasts.begin(), pendingCasts.end());
  return layers;
}

Location qsim::makeLayerLoc(MLIRContext *ctx, StringRef file, unsigned line,
                            int64_t layerIndex) {
  Location fileLoc = FileLineColLoc::get(ctx, file, line, 1);
  Location name =
      NameLoc::get(StringAttr::get(ctx, "layer " + std::to_string(layerIndex)));
  return FusedLoc::get(ctx, {fileLoc, name});
}

std::optional<int64_t> qsim::getLayerIndexFromLoc(Location loc) {
  std::optional<int64_t> result;
  loc->walk([&](Location l) {
    if (auto name = dyn_cast<NameLoc>(l)) {
      StringRef s = name.getName().getValue();
      int64_t idx;
      if (s.consume_front("layer ") && !s.getAsInteger(10, idx)) {
        result = idx;
        return WalkResult::interrupt();
      }
    }
    return WalkResult::advance();
  });
  return result;
}

void qsim::renumberLayerLocations(func::FuncOp func) {
  auto layers = getLayers(func);
  if (failed(layers))
    return;
  MLIRContext *ctx = func.getContext();
  for (const Layer &l : *layers) {
    StringAttr want = StringAttr::get(ctx, "layer " + std::to_string(l.index));
    for (Operation *op : l.ops) {
      auto idx = getLayerIndexFromLoc(op->getLoc());
      if (idx && *idx == l.index)
        continue;
      if (!idx) {
        op->setLoc(FusedLoc::get(ctx, {op->getLoc(), NameLoc::get(want)}));
        continue;
      }
      AttrTypeReplacer replacer;
      replacer.addReplacement([&](NameLoc n) -> std::optional<Attribute> {
        StringRef s = n.getName().getValue();
        int64_t k;
        if (s.consume_front("layer ") && !s.getAsInteger(10, k))
          return NameLoc::get(want, n.getChildLoc());
        return std::nullopt;
      });
      op->setLoc(cast<LocationAttr>(replacer.replace(op->getLoc())));
    }
  }
}

std::string qsim::describeLayer(Operation *op) {
  std::string kind = "?";
  if (auto l = dyn_cast<LayerOpInterface>(op))
    kind = l.getDarknetSection().str();
  if (auto idx = getLayerIndexFromLoc(op->getLoc()))
    return "layer " + std::to_string(*idx) + " (" + kind + ")";
  // No provenance (e.g. textual IR printed without locations): the layer's
  // position in its function, counted as getLayers() counts.
  if (auto func = dyn_cast_or_null<func::FuncOp>(op->getParentOp())) {
    int64_t idx = -1;
    for (Operation &o : func.getBody().front()) {
      if (o.hasTrait<OpTrait::IsTerminator>() || isPrecisionCast(&o))
        continue;
      auto bn = dyn_cast<BatchNormOp>(o);
      if (!(bn && !bn.getStandalone()) && isa<LayerOpInterface>(o))
        ++idx;
      if (&o == op && idx >= 0)
        return "layer " + std::to_string(idx) + " (" + kind + ")";
    }
  }
  return "'" + op->getName().getStringRef().str() + "' (" + kind + ")";
}

bool qsim::isDetectionHead(Operation *op) {
  return isa<YoloOp, RegionOp, DetectionOp, GaussianYoloOp>(op);
}

bool qsim::feedsDetectionHead(const Layer &layer) {
  return llvm::any_of(layer.output().getUsers(), isDetectionHead);
}

bool qsim::isFloatElement(Type t) {
  return t.isF32() || t.isF16() || t.isBF16();
}

ArrayRef<char> qsim::getRawBytes(ElementsAttr attr) {
  if (auto r = dyn_cast<DenseResourceElementsAttr>(attr)) {
    if (AsmResourceBlob *blob = r.getRawHandle().getBlob())
      return blob->getData();
    return {};
  }
  if (auto d = dyn_cast<DenseElementsAttr>(attr))
    if (!d.isSplat() || d.getNumElements() == 1)
      return d.getRawData();
  return {};
}

ArrayRef<float> qsim::getFloatsNoCopy(ElementsAttr attr) {
  if (!attr.getShapedType().getElementType().isF32())
    return {};
  ArrayRef<char> raw = getRawBytes(attr);
  if (raw.size() != (size_t)attr.getNumElements() * sizeof(float))
    return {};
  return ArrayRef<float>(reinterpret_cast<const float *>(raw.data()),
                         attr.getNumElements());
}

static float halfToFloat(uint16_t h) {
  return llvm::APFloat(llvm::APFloat::IEEEhalf(), llvm::APInt(16, h))
      .convertToFloat();
}

std::vector<float> qsim::getFloats(ElementsAttr attr) {
  ArrayRef<float> direct = getFloatsNoCopy(attr);
  if (!direct.empty() || attr.getNumElements() == 0)
    return std::vector<float>(direct.begin(), direct.end());
  Type el = attr.getShapedType().getElementType();
  std::vector<float> out;
  out.reserve(attr.getNumElements());
  if (el.isF16()) {
    ArrayRef<char> raw = getRawBytes(attr);
    if (raw.size() == (size_t)attr.getNumElements() * 2) {
      auto *h = reinterpret_cast<const uint16_t *>(raw.data());
      for (int64_t i = 0; i < attr.getNumElements(); ++i)
        out.push_back(halfToFloat(h[i]));
      return out;
    }
  }
  if (el.isBF16()) {
    ArrayRef<char> raw = getRawBytes(attr);
    if (raw.size() == (size_t)attr.getNumElements() * 2) {
      // bfloat16 is the high half of a binary32: widening is exact.
      auto *h = reinterpret_cast<const uint16_t *>(raw.data());
      for (int64_t i = 0; i < attr.getNumElements(); ++i) {
        uint32_t bits = (uint32_t)h[i] << 16;
        float f;
        std::memcpy(&f, &bits, sizeof(f));
        out.push_back(f);
      }
      return out;
    }
  }
  if (auto d = dyn_cast<DenseElementsAttr>(attr)) {
    if (isa<FloatType>(el)) {
      for (APFloat v : d.getValues<APFloat>())
        out.push_back(v.convertToFloat());
      return out;
    }
  }
  return out;
}

ElementsAttr qsim::makeResourceAttr(ShapedType type, StringRef name,
                                    ArrayRef<char> data) {
  // Small tensors stay inline (readable in IR dumps and tests); large ones
  // are blobs, stored binary in bytecode.
  if (type.getNumElements() <= 16) {
    bool detectedSplat = false;
    if (DenseElementsAttr::isValidRawBuffer(type, data, detectedSplat))
      return DenseElementsAttr::getFromRawBuffer(type, data);
  }
  return DenseResourceElementsAttr::get(
      type, name, HeapAsmResourceBlob::allocateAndCopyWithAlign(data, 16));
}

ElementsAttr qsim::makeFloatAttr(MLIRContext *ctx, ArrayRef<int64_t> shape,
                                 StringRef name, ArrayRef<float> data) {
  auto type = RankedTensorType::get(shape, Float32Type::get(ctx));
  return makeResourceAttr(type, name, data);
}

bool qsim::hasInt8Form(const Layer &layer) {
  return cast<LayerOpInterface>(layer.head).hasInt8Form();
}

std::optional<BatchNormStats> qsim::getBatchNormStats(Operation *op) {
  auto d = op->getAttrOfType<DictionaryAttr>(kBatchNormStatsAttr);
  if (!d)
    return std::nullopt;
  auto mean = d.getAs<DenseF32ArrayAttr>("mean");
  auto sd = d.getAs<DenseF32ArrayAttr>("std");
  if (!mean || !sd)
    return std::nullopt;
  return BatchNormStats{
      std::vector<float>(mean.asArrayRef().begin(), mean.asArrayRef().end()),
      std::vector<float>(sd.asArrayRef().begin(), sd.asArrayRef().end())};
}

void qsim::setBatchNormStats(Operation *op, const BatchNormStats &stats) {
  Builder b(op->getContext());
  op->setAttr(kBatchNormStatsAttr,
              b.getDictionaryAttr(
                  {b.getNamedAttr("mean", b.getDenseF32ArrayAttr(stats.mean)),
                   b.getNamedAttr("std", b.getDenseF32ArrayAttr(stats.std))}));
}
