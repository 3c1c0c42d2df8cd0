//===- Layers.h - Darknet layers over qsim ops ------------------*- C++ -*-===//
//
// What a "layer" is in a qsim module (the unit of Darknet indices, stats,
// export, interpreter steps and generated per-layer functions), provenance
// locations, the flavour, and access to weight attributes.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_DIALECT_QSIM_IR_LAYERS_H
#define QSIM_DIALECT_QSIM_IR_LAYERS_H

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"
#include "qsim/Dialect/QSim/IR/QSimOps.h"
#include "qsim/Dialect/QSim/IR/Shapes.h"
#include "qsim/Runtime/Detection.h"
#include "qsim/Runtime/QuantMath.h"

#include <cstring>
#include <optional>
#include <string>
#include <vector>

namespace qsim {

enum class Flavor { AlexeyAB, PJReddie };

/// The precision a layer runs in (`qsim.precision`: "fp32", "fp16", "bf16",
/// "int8").
/// A layer's planned precision. W8A16: int8 weights, int16 activations
/// (--qsim-quantize gives such a layer int16 activations).
/// BF16 is bfloat16 storage with f32 arithmetic (docs/quantization.md).
/// New values go last: Sensitivity.cpp counts by the enum value.
enum class Precision { FP32, FP16, Int8, W8A16, BF16 };
llvm::StringRef stringifyPrecision(Precision p);
std::optional<Precision> parsePrecision(llvm::StringRef s);
llvm::StringRef stringifyFlavor(Flavor f);
std::optional<Flavor> parseFlavor(llvm::StringRef s);
/// The module's `qsim.flavor` (AlexeyAB when absent).
Flavor getFlavor(mlir::Operation *anyOpInModule);
void setFlavor(mlir::ModuleOp module, Flavor f);

/// One Darknet layer: its main op (conv2d, route, ...), a fused batch norm
/// when the layer has batch_normalize=1, and the quant.qcast/dcast ops that
/// feed it. `ops` holds all of them in program order.
struct Layer {
  int64_t index = 0;
  mlir::Operation *head = nullptr;
  BatchNormOp batchNorm;
  llvm::SmallVector<mlir::Operation *, 4> ops;
  /// The value that holds this layer's output (after BN when fused).
  mlir::Value output() const;
  /// Darknet's section name ("convolutional").
  llvm::StringRef kind() const;
  /// The values the layer reads from outside (other layers' outputs, the
  /// network input), in order of first use.
  llvm::SmallVector<mlir::Value> externalInputs() const;
};

/// A module of its own whose `main` runs `ops` (in program order: one
/// layer, or the layers that replace one) on the values they read from
/// outside, in order of first use, and returns `output`. The ops are cloned
/// (the source is untouched); the enclosing module's attributes (flavour,
/// quantization) carry over. Used to run or measure a layer alone.
mlir::OwningOpRef<mlir::ModuleOp>
extractOpsAsModule(llvm::ArrayRef<mlir::Operation *> ops, mlir::Value output);
/// One layer as a module: its function takes the layer's external inputs
/// (Layer::externalInputs) and returns its output.
mlir::OwningOpRef<mlir::ModuleOp> extractLayerModule(const Layer &layer);

/// The activations an int8 layer applies in integer arithmetic after its
/// requantization: linear, relu, leaky, and relu6 except on a shortcut. The
/// one statement of this rule (verifiers, quantizer, lowering use it).
bool hasInt8Activation(Activation a, bool onShortcut = false);

/// Whether the layer has an int8 form (LayerOpInterface::hasInt8Form of its
/// head, see QSimInterfaces.td).
bool hasInt8Form(const Layer &layer);

/// A detection head: [yolo], [region], [detection] or [Gaussian_yolo], the
/// layers that decode boxes from the convolution before them.
bool isDetectionHead(mlir::Operation *op);
/// Whether a detection head reads the layer's output. The one statement of
/// "the layers that feed a detection head" (the hybrid preset keeps them in
/// float, w8-layers=last keeps their weights at 8 bits).
bool feedsDetectionHead(const Layer &layer);

/// quant.qcast/dcast/scast and arith.truncf/extf: the casts inserted at
/// precision boundaries; they belong to the layer that consumes them.
bool isPrecisionCast(mlir::Operation *op);

/// C, H and W of an NCHW (batch 1) tensor value.
shapes::CHW chwOf(mlir::Value v);

/// The `main` function of a qsim module (or the only function), or null.
mlir::func::FuncOp getMainFunc(mlir::ModuleOp module);

/// Splits the body of `func` into Darknet layers in program order. Fails
/// (with a diagnostic) if the body holds ops that belong to no layer.
mlir::FailureOr<std::vector<Layer>> getLayers(mlir::func::FuncOp func);

/// The layers of the module's main function (getMainFunc), which is also
/// returned through `func` when given. Fails with a diagnostic at the
/// module when there is no main function, or as getLayers.
mlir::FailureOr<std::vector<Layer>>
getMainLayers(mlir::ModuleOp module, mlir::func::FuncOp *func = nullptr);

/// Provenance: `"file.cfg":line:1` fused with the name `layer N`.
mlir::Location makeLayerLoc(mlir::MLIRContext *ctx, llvm::StringRef file,
                            unsigned line, int64_t layerIndex);
/// The Darknet layer index recorded in a location, if any.
std::optional<int64_t> getLayerIndexFromLoc(mlir::Location loc);
/// After a pass changed the number of layers: makes the `layer N` name in
/// every op's location the op's current layer index (file:line provenance
/// is kept), so that diagnostics, stats and `layers=` lists agree.
void renumberLayerLocations(mlir::func::FuncOp func);
/// "layer 12 (route)" when the location knows the index, else "(route)".
std::string describeLayer(mlir::Operation *op);

/// Raw f32 view of a weight attribute without copying (resource blobs and
/// non-splat dense f32 attributes); empty if not possible.
llvm::ArrayRef<float> getFloatsNoCopy(mlir::ElementsAttr attr);
/// f32 values of a weight attribute (f32 or f16 storage), copied.
std::vector<float> getFloats(mlir::ElementsAttr attr);
/// Raw bytes of a weight attribute without copying, if stored densely.
llvm::ArrayRef<char> getRawBytes(mlir::ElementsAttr attr);

/// Integer values (int8 weights, int32 biases) as T: the raw storage when it
/// holds exactly T's, else element by element (splats, other widths);
/// nullopt for a storage neither way can read.
template <typename T>
std::optional<std::vector<T>> getInts(mlir::ElementsAttr attr) {
  std::vector<T> out(attr.getNumElements());
  llvm::ArrayRef<char> raw = getRawBytes(attr);
  if (raw.size() == out.size() * sizeof(T)) {
    std::memcpy(out.data(), raw.data(), raw.size());
    return out;
  }
  auto dense = llvm::dyn_cast<mlir::DenseElementsAttr>(attr);
  if (!dense)
    return std::nullopt;
  size_t i = 0;
  for (const llvm::APInt &v : dense.getValues<llvm::APInt>())
    out[i++] = static_cast<T>(v.getSExtValue());
  return out;
}

/// A new weight attribute of `type` holding `data` in a resource blob named
/// after `name` (uniqued by MLIR). Copies `data`.
mlir::ElementsAttr makeResourceAttr(mlir::ShapedType type, llvm::StringRef name,
                                    llvm::ArrayRef<char> data);
template <typename T>
mlir::ElementsAttr makeResourceAttr(mlir::ShapedType type, llvm::StringRef name,
                                    llvm::ArrayRef<T> data) {
  return makeResourceAttr(
      type, name,
      llvm::ArrayRef<char>(reinterpret_cast<const char *>(data.data()),
                           data.size() * sizeof(T)));
}
mlir::ElementsAttr makeFloatAttr(mlir::MLIRContext *ctx,
                                 llvm::ArrayRef<int64_t> shape,
                                 llvm::StringRef name,
                                 llvm::ArrayRef<float> data);

/// A folded batch norm's per-channel output distribution (`qsim.bn_stats`,
/// kept by --qsim-fold-batchnorm): the pre-activation output of channel c
/// is taken as N(mean[c], std[c]^2).
struct BatchNormStats {
  std::vector<float> mean, std;
};
inline constexpr llvm::StringLiteral kBatchNormStatsAttr = "qsim.bn_stats";
/// `op`'s statistics, if it has them.
std::optional<BatchNormStats> getBatchNormStats(mlir::Operation *op);
void setBatchNormStats(mlir::Operation *op, const BatchNormStats &stats);
/// Forgets them: for passes that change the layer's function or channels,
/// after which they would no longer describe its output.
inline void dropBatchNormStats(mlir::Operation *op) {
  op->removeAttr(kBatchNormStatsAttr);
}

/// True for f32/f16 element types; false for quantized ones.
bool isFloatElement(mlir::Type t);

/// The NMS Darknet's detector applies after this head: the cfg's nms_kind
/// in the AlexeyAB flavour; pjreddie Darknet has only sort-based IoU NMS.
rt::NmsKind decodingNmsKind(YoloOp yolo, Flavor flavor);

/// The module's integer rounding (`qsim.quantization`'s "rounding", TFLite
/// when absent); fails with `error` naming an unknown one.
mlir::LogicalResult getModuleRounding(mlir::ModuleOp module, rt::Rounding &out,
                                      std::string &error);

} // namespace qsim

#endif // QSIM_DIALECT_QSIM_IR_LAYERS_H
