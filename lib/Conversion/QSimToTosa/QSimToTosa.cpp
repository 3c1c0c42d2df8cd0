//===- QSimToTosa.cpp - qsim layers to TOSA, one function per layer ------===//
//
// Every Darknet layer of the model becomes a function `<prefix>_layer_<N>`
// from its inputs to its output, in NHWC (the layout TOSA and the generated
// kernels use; the network input is converted once, at the boundary, by
// the device runtime). The pass first clones each layer's ops into its
// function, whose arguments are already NHWC (read back as qsim values
// through unrealized_conversion_casts), then lowers every op with the
// dialect conversion: one pattern per qsim op and precision cast
// (populateQSimToTosaConversionPatterns), the values' types from
// QSimToTosaTypeConverter.
//
// Structural work is TOSA (conv2d, depthwise_conv2d, fully_connected,
// pooling, pad, concat, slice, reshape, tile, add, mul, clamp, rescale); the
// exact integer requantization of docs/quantization.md is `tosa.rescale`
// when the model rounds like TOSA (`tosa-double`), and the same arithmetic
// as a `linalg.generic` for gemmlowp/TFLite rounding, which TOSA's rescale
// does not reproduce on negative ties. Elementwise functions TOSA lacks
// (mish, swish, yolo's per-channel logistic, quantize/dequantize with
// Darknet's rounding) are `linalg.generic`s too.
//
// The module keeps `qsim.codegen`: per layer its function, inputs (layer
// indices, -1 = network input), NHWC shape, element type and quantization;
// the device header and runtime are generated from it.
//
//===----------------------------------------------------------------------===//

#include "LoweringUtils.h"

#include "qsim/Conversion/Passes.h"
#include "qsim/Dialect/QSim/IR/Layers.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Quant/QuantTypes.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Tosa/IR/TosaOps.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/Transforms/DialectConversion.h"

namespace qsim {
#define GEN_PASS_DEF_LOWERTOTOSAPASS
#include "qsim/Conversion/Passes.h.inc"
} // namespace qsim

using namespace mlir;
using namespace qsim;

QSimToTosaTypeConverter::QSimToTosaTypeConverter() {
  addConversion([](Type t) { return t; });
  addConversion([](RankedTensorType t) -> Type {
    if (t.getRank() != 4)
      return t;
    Type el = t.getElementType();
    if (auto q = dyn_cast<quant::QuantizedType>(el))
      el = q.getStorageType();
    return RankedTensorType::get(
        {t.getDimSize(0), t.getDimSize(2), t.getDimSize(3), t.getDimSize(1)},
        el);
  });
}

void qsim::populateQSimToTosaConversionPatterns(TypeConverter &converter,
                                                RewritePatternSet &patterns) {
  lowering::populateWeightedLayerPatterns(converter, patterns);
  lowering::populateDataMovementPatterns(converter, patterns);
  lowering::populateFloatLayerPatterns(converter, patterns);
  lowering::populatePrecisionCastPatterns(converter, patterns);
}

namespace {

/// A layer function returns its output in its lowered type.
struct LayerReturnLowering : OpConversionPattern<func::ReturnOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(func::ReturnOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    rewriter.replaceOpWithNewOp<func::ReturnOp>(op, adaptor.getOperands());
    return success();
  }
};

/// A layer function reads each NHWC argument through a cast to the qsim
/// value it stands for (a "bridge", see createLayerFunction); lowered, the
/// qsim value is the argument itself.
struct LayerArgumentLowering : OpConversionPattern<UnrealizedConversionCastOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(UnrealizedConversionCastOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    rewriter.replaceOp(op, adaptor.getInputs());
    return success();
  }
};

/// Reports every op of the model that no pattern lowers, before anything is
/// built.
LogicalResult checkEveryOpLowers(ArrayRef<Layer> layers,
                                 const FrozenRewritePatternSet &patterns) {
  const auto &lowered = patterns.getOpSpecificNativePatterns();
  bool ok = true;
  for (const Layer &l : layers)
    for (Operation *op : l.ops)
      if (!lowered.count(op->getName())) {
        op->emitError() << describeLayer(l.head) << ": '" << op->getName()
                        << "' is not supported by the code generator";
        ok = false;
      }
  return success(ok);
}

/// A layer's function before its ops are lowered: a clone of the layer's
/// qsim ops that reads each NHWC argument through a cast back to its qsim
/// type (a "bridge", which the conversion lowers to the argument).
struct LayerFunction {
  func::FuncOp func;
  /// The layers whose outputs are the arguments (-1: the network input).
  SmallVector<int64_t> inputLayers;
  SmallVector<UnrealizedConversionCastOp> bridges;
};

FailureOr<LayerFunction>
createLayerFunction(OpBuilder &b, const Layer &l, StringRef name,
                    const DenseMap<Value, int64_t> &producer,
                    const TypeConverter &converter) {
  LayerFunction lf;
  SmallVector<Value> ins = l.externalInputs();
  SmallVector<Type> argTypes;
  for (Value v : ins) {
    auto it = producer.find(v);
    if (it == producer.end())
      return l.head->emitError()
             << describeLayer(l.head) << ": input not produced by a layer";
    lf.inputLayers.push_back(it->second);
    argTypes.push_back(converter.convertType(v.getType()));
  }
  Location loc = l.head->getLoc();
  Type outType = converter.convertType(l.output().getType());
  lf.func =
      b.create<func::FuncOp>(loc, name, b.getFunctionType(argTypes, {outType}));
  lf.func->setAttr("qsim.layer", b.getI64IntegerAttr(l.index));
  // Inputs are other layers' outputs, read by later layers too: never
  // written in place.
  for (unsigned i = 0; i < argTypes.size(); ++i)
    lf.func.setArgAttr(i, "bufferization.writable", b.getBoolAttr(false));
  Block *body = lf.func.addEntryBlock();
  OpBuilder fb = OpBuilder::atBlockEnd(body);
  IRMapping mapping;
  for (auto [v, arg] : llvm::zip_equal(ins, body->getArguments())) {
    lf.bridges.push_back(
        fb.create<UnrealizedConversionCastOp>(loc, v.getType(), arg));
    mapping.map(v, lf.bridges.back().getResult(0));
  }
  for (Operation *op : l.ops)
    fb.clone(*op, mapping);
  fb.create<func::ReturnOp>(loc, mapping.lookup(l.output()));
  return lf;
}

/// What the layer functions are lowered to: TOSA, linalg (arith and math in
/// its bodies), tensor; the bridges and tensor casts lowered away.
ConversionTarget makeTarget(MLIRContext *ctx,
                            const DenseSet<Operation *> &bridges) {
  ConversionTarget target(*ctx);
  target.addLegalDialect<tosa::TosaDialect, linalg::LinalgDialect,
                         tensor::TensorDialect, arith::ArithDialect,
                         math::MathDialect>();
  target.addIllegalDialect<QSimDialect, quant::QuantizationDialect>();
  target.addLegalOp<func::FuncOp>();
  target.addDynamicallyLegalOp<UnrealizedConversionCastOp>(
      [&bridges](Operation *op) { return !bridges.contains(op); });
  // Float casts between layers are on tensors; the generic bodies' are
  // scalar.
  target.addDynamicallyLegalOp<arith::TruncFOp, arith::ExtFOp>(
      [](Operation *op) {
        return !isa<TensorType>(op->getResult(0).getType());
      });
  target.addDynamicallyLegalOp<func::ReturnOp>([](func::ReturnOp op) {
    auto fn = op->getParentOfType<func::FuncOp>();
    return TypeRange(op.getOperandTypes()) == TypeRange(fn.getResultTypes());
  });
  return target;
}

/// Lowers one layer function. A pattern that cannot lower an op says why
/// (the layer and the reason) and the conversion of the layer stops there;
/// the driver's own follow-up ("failed to legalize operation") adds nothing
/// and is dropped: one error per layer, its cause.
LogicalResult lowerLayerFunction(func::FuncOp fn,
                                 const ConversionTarget &target,
                                 const FrozenRewritePatternSet &patterns) {
  bool reported = false;
  ScopedDiagnosticHandler firstErrorOnly(
      fn.getContext(), [&](Diagnostic &d) -> LogicalResult {
        if (d.getSeverity() != DiagnosticSeverity::Error)
          return failure(); // on to the usual handlers
        if (reported)
          return success(); // consumed
        reported = true;
        return failure();
      });
  return applyFullConversion(fn, target, patterns);
}

/// The `qsim.codegen` entry of a layer: what the device runtime needs.
DictionaryAttr layerTableEntry(Builder &b, const Layer &l, StringRef name,
                               ArrayRef<int64_t> inputLayers,
                               ArrayRef<int64_t> shape, Flavor flavor) {
  Type outEl = getElementTypeOrSelf(l.output().getType());
  auto outQ = dyn_cast<quant::UniformQuantizedType>(outEl);
  SmallVector<NamedAttribute> d = {
      b.getNamedAttr("index", b.getI64IntegerAttr(l.index)),
      b.getNamedAttr("kind", b.getStringAttr(l.kind())),
      b.getNamedAttr("func", b.getStringAttr(name)),
      b.getNamedAttr("inputs", b.getDenseI64ArrayAttr(inputLayers)),
      b.getNamedAttr("shape", b.getDenseI64ArrayAttr(shape)),
      b.getNamedAttr("elem", b.getStringAttr(outQ            ? "i8"
                                             : outEl.isF16() ? "f16"
                                                             : "f32")),
      b.getNamedAttr("scale",
                     b.getF32FloatAttr(outQ ? (float)outQ.getScale() : 1.0f)),
      b.getNamedAttr("zero_point",
                     b.getI64IntegerAttr(outQ ? outQ.getZeroPoint() : 0))};
  if (auto y = dyn_cast<YoloOp>(l.head)) {
    // What the device needs to decode boxes as qsim-run does (nms_kind
    // as rt::NmsKind's value, qsim_yolo_head's encoding).
    int64_t nms = static_cast<int64_t>(decodingNmsKind(y, flavor));
    d.push_back(b.getNamedAttr("classes", b.getI64IntegerAttr(y.getClasses())));
    d.push_back(b.getNamedAttr("num", b.getI64IntegerAttr(y.getNum())));
    d.push_back(b.getNamedAttr("mask", y.getMaskAttr()));
    d.push_back(b.getNamedAttr("anchors", y.getAnchorsAttr()));
    d.push_back(b.getNamedAttr("new_coords", b.getBoolAttr(y.getNewCoords())));
    d.push_back(b.getNamedAttr("nms_kind", b.getI64IntegerAttr(nms)));
    d.push_back(b.getNamedAttr("beta_nms", y.getBetaNmsAttr()));
  }
  return b.getDictionaryAttr(d);
}

struct LowerToTosaPass
    : public qsim::impl::LowerToTosaPassBase<LowerToTosaPass> {
  using LowerToTosaPassBase::LowerToTosaPassBase;
  void runOnOperation() override;

private:
  /// The model's layers, checked for what the lowering assumes.
  FailureOr<std::vector<Layer>> getCheckedLayers(ModuleOp module,
                                                 func::FuncOp main);
};

FailureOr<std::vector<Layer>>
LowerToTosaPass::getCheckedLayers(ModuleOp module, func::FuncOp main) {
  if (!main)
    return module.emitError() << "no main function";
  auto layers = getLayers(main);
  if (failed(layers))
    return failure();
  if (main.getNumArguments() != 1)
    return module.emitError() << "a model with one input is expected";
  for (const Layer &l : *layers) {
    if (l.batchNorm && !isa<Conv2DOp, ConnectedOp>(l.head))
      return l.head->emitError()
             << describeLayer(l.head) << ": batch norm on an unexpected layer";
    // bf16 has no lowering yet: refused by name rather than lowered
    // through f32 with other rounding (docs/deploy.md, "bf16").
    bool bf16 = false;
    for (Operation *op : l.ops) {
      for (Type t : op->getResultTypes())
        bf16 |= getElementTypeOrSelf(t).isBF16();
      for (Type t : op->getOperandTypes())
        bf16 |= getElementTypeOrSelf(t).isBF16();
    }
    if (bf16)
      return l.head->emitError()
             << "code generation has no bf16: " << describeLayer(l.head)
             << " is bf16 (plan it fp32, fp16 or int8 for the device, or run "
                "the bf16 model with qsim-run)";
    // --qsim-quantize activation-bits=16 / int16-layers / weight-bits < 8
    // are simulations for study: the generated code keeps 8 bits.
    auto q = dyn_cast<quant::QuantizedType>(
        getElementTypeOrSelf(l.head->getResult(0).getType()));
    if (q && q.getStorageTypeIntegralWidth() == 16)
      return l.head->emitError()
             << "code generation keeps 8-bit: " << describeLayer(l.head)
             << " has 16-bit activations";
    if (auto wq = l.head->getAttrOfType<TypeAttr>("weight_quant"))
      if (auto w = dyn_cast<quant::QuantizedType>(wq.getValue());
          w && w.getStorageTypeMax() < 127) {
        int bits = 2;
        while ((1 << (bits - 1)) - 1 < w.getStorageTypeMax())
          ++bits;
        return l.head->emitError()
               << "code generation keeps 8-bit: " << describeLayer(l.head)
               << " has " << bits << "-bit weights";
      }
  }
  rt::Rounding rounding;
  std::string roundingError;
  if (failed(getModuleRounding(module, rounding, roundingError)))
    return module.emitError() << roundingError;
  return layers;
}

void LowerToTosaPass::runOnOperation() {
  ModuleOp module = getOperation();
  func::FuncOp main = getMainFunc(module);
  FailureOr<std::vector<Layer>> layers = getCheckedLayers(module, main);
  if (failed(layers))
    return signalPassFailure();
  Flavor flavor = getFlavor(module);

  MLIRContext *ctx = &getContext();
  QSimToTosaTypeConverter converter;
  RewritePatternSet patternList(ctx);
  populateQSimToTosaConversionPatterns(converter, patternList);
  patternList.add<LayerReturnLowering>(converter, ctx);
  // No type converter: the bridge's operand is the lowered argument already.
  patternList.add<LayerArgumentLowering>(ctx);
  FrozenRewritePatternSet patterns(std::move(patternList));
  if (failed(checkEveryOpLowers(*layers, patterns)))
    return signalPassFailure();

  OpBuilder b(ctx);
  b.setInsertionPoint(main);
  // Which layer produces each value.
  DenseMap<Value, int64_t> producer;
  producer[main.getArgument(0)] = -1;
  for (const Layer &l : *layers)
    producer[l.output()] = l.index;

  SmallVector<Attribute> table;
  SmallVector<func::FuncOp> funcs;
  DenseSet<Operation *> bridges;
  for (const Layer &l : *layers) {
    // The device runtime indexes its layer table by Darknet index.
    if (l.index != (int64_t)funcs.size()) {
      l.head->emitError() << describeLayer(l.head)
                          << ": layer indices are not contiguous (expected "
                          << funcs.size() << ")";
      return signalPassFailure();
    }
    std::string name = prefix + "_layer_" + std::to_string(l.index);
    FailureOr<LayerFunction> lf =
        createLayerFunction(b, l, name, producer, converter);
    if (failed(lf))
      return signalPassFailure();
    funcs.push_back(lf->func);
    for (UnrealizedConversionCastOp bridge : lf->bridges)
      bridges.insert(bridge);
    auto shape = cast<ShapedType>(lf->func.getResultTypes()[0]).getShape();
    table.push_back(
        layerTableEntry(b, l, name, lf->inputLayers, shape, flavor));
  }
  // Every layer, so that every layer the code generator cannot compile is
  // reported.
  ConversionTarget target = makeTarget(ctx, bridges);
  bool lowered = true;
  for (func::FuncOp fn : funcs)
    lowered &= succeeded(lowerLayerFunction(fn, target, patterns));
  if (!lowered)
    return signalPassFailure();

  auto letterBox = module->getAttrOfType<BoolAttr>("qsim.letter_box");
  module->setAttr("qsim.codegen", b.getArrayAttr(table));
  module->setAttr(
      "qsim.codegen.input",
      b.getDictionaryAttr(
          {b.getNamedAttr("shape", b.getDenseI64ArrayAttr(lowering::nhwcShape(
                                       main.getArgument(0)))),
           b.getNamedAttr("prefix", b.getStringAttr(prefix)),
           b.getNamedAttr("flavor", b.getStringAttr(stringifyFlavor(flavor))),
           b.getNamedAttr("letter_box",
                          b.getBoolAttr(letterBox && letterBox.getValue()))}));
  // The qsim function is gone; only the layer functions remain.
  main.erase();
}

} // namespace
