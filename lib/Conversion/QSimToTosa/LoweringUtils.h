//===- LoweringUtils.h - what the qsim->TOSA patterns share -----*- C++ -*-===//
//
// Private to lib/Conversion/QSimToTosa: the builder of TOSA and linalg pieces
// (NHWC types, constants, elementwise generics, casts, padding), Darknet's
// float activations and the exact integer requantization of
// docs/quantization.md, the errors the patterns report, and the populate
// functions of the pattern files.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_LIB_CONVERSION_QSIMTOTOSA_LOWERINGUTILS_H
#define QSIM_LIB_CONVERSION_QSIMTOTOSA_LOWERINGUTILS_H

#include "qsim/Dialect/QSim/IR/Layers.h"
#include "qsim/Runtime/QuantMath.h"

#include "mlir/Dialect/Quant/QuantTypes.h"
#include "mlir/Dialect/Tosa/IR/TosaOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/Transforms/DialectConversion.h"

#include <functional>
#include <optional>

namespace qsim {
namespace lowering {

//===----------------------------------------------------------------------===//
// Facts about qsim values and ops
//===----------------------------------------------------------------------===//

/// The per-tensor int8 quantization of a qsim value, or null for f32/f16.
/// The lowered value is its i8 storage; patterns read the scale and zero
/// point here, from the qsim op's own operand and result types.
mlir::quant::UniformQuantizedType getInt8Quant(mlir::Value qsimValue);

/// The NHWC shape of a qsim (NCHW) value.
llvm::SmallVector<int64_t, 4> nhwcShape(mlir::Value qsimValue);

/// Reports that `op` cannot be lowered, as "layer N (kind): <message>" at the
/// op's location (its cfg line), and returns failure for the pattern to
/// return.
mlir::LogicalResult emitUnsupported(mlir::Operation *op,
                                    const llvm::Twine &message);

/// The module's integer rounding (the pass checked it), or an error on `op`.
mlir::FailureOr<rt::Rounding> getRounding(mlir::Operation *op);

/// Fails (with the error) unless the code generator has Darknet's float
/// activation `a`.
mlir::LogicalResult checkFloatActivation(mlir::Operation *op, Activation a);

/// Fails (with the error) unless no operand of `op` is int8: a float
/// computation needs a quant.dcast before it.
mlir::LogicalResult checkFloatOperands(mlir::Operation *op);

/// Fails (with the error) unless an int8 layer ending in `act` has a
/// requantization: an integer activation, and the negative-side multiplier
/// and shift when leaky.
mlir::LogicalResult checkRequantization(mlir::Operation *op, Activation act,
                                        bool hasNegativeScale);

//===----------------------------------------------------------------------===//
// Scalar arithmetic in linalg.generic bodies
//===----------------------------------------------------------------------===//

mlir::Value constI32(mlir::OpBuilder &nb, mlir::Location nl, int64_t v);
mlir::Value constI64(mlir::OpBuilder &nb, mlir::Location nl, int64_t v);
mlir::Value constF32(mlir::OpBuilder &nb, mlir::Location nl, float v);

/// round(x * M) with the module's rounding (QuantMath's
/// multiplyByFixedPoint, exactly): x, m and shift i32 values.
mlir::Value fixedPointMul(mlir::OpBuilder &nb, mlir::Location nl, mlir::Value x,
                          mlir::Value m, mlir::Value shift,
                          rt::Rounding rounding);

/// An i32 value saturated to int8.
mlir::Value saturateToInt8(mlir::OpBuilder &nb, mlir::Location nl,
                           mlir::Value y32);

/// Darknet's float activation `a` of f32 `x`, as the interpreter computes it
/// (`a` passed checkFloatActivation).
mlir::Value activate(mlir::OpBuilder &nb, mlir::Location nl, mlir::Value x,
                     Activation a);

//===----------------------------------------------------------------------===//
// Building a layer's TOSA and linalg ops
//===----------------------------------------------------------------------===//

/// How an int8 layer's i32 accumulator becomes its int8 output.
struct Requantization {
  /// Per output channel, int64 (the input zero point is folded in).
  llvm::ArrayRef<int64_t> bias;
  llvm::ArrayRef<int32_t> multiplier, shift;
  /// The leaky activation's negative side.
  std::optional<llvm::ArrayRef<int32_t>> negMultiplier, negShift;
  Activation activation;
  mlir::quant::UniformQuantizedType output;
  rt::Rounding rounding;
};

/// Creates the ops of one layer at the builder's insertion point (in a
/// pattern, the rewriter's: before the op being lowered).
class TosaBuilder {
public:
  TosaBuilder(mlir::OpBuilder &b, mlir::Location loc) : b(b), loc(loc) {}

  mlir::RankedTensorType tensorType(llvm::ArrayRef<int64_t> shape,
                                    mlir::Type el) {
    return mlir::RankedTensorType::get(shape, el);
  }
  mlir::Type f32() { return b.getF32Type(); }
  mlir::Type i8() { return b.getI8Type(); }
  mlir::Type i32() { return b.getI32Type(); }
  mlir::Type i64() { return b.getI64Type(); }

  template <typename T>
  mlir::Value constant(llvm::ArrayRef<int64_t> shape, mlir::Type el,
                       llvm::ArrayRef<T> data) {
    auto type = tensorType(shape, el);
    auto attr = mlir::DenseElementsAttr::get(type, data);
    return b.create<mlir::tosa::ConstOp>(loc, type, attr);
  }
  mlir::Value scalarTensor(mlir::Type el, mlir::Attribute value);
  /// A [1,1,1,1] f32 constant for broadcasting.
  mlir::Value splat4(float v);

  template <typename OpTy>
  mlir::Value make(mlir::Type result, mlir::ValueRange operands,
                   llvm::ArrayRef<mlir::NamedAttribute> attrs = {}) {
    return b.create<OpTy>(loc, mlir::TypeRange{result}, operands, attrs)
        ->getResult(0);
  }
  mlir::NamedAttribute attr(llvm::StringRef name, mlir::Attribute a) {
    return b.getNamedAttr(name, a);
  }

  /// An elementwise linalg.generic over NHWC tensors of the same shape (and
  /// 1-D per-channel constants), with the channel index available.
  using Body =
      std::function<mlir::Value(mlir::OpBuilder &, mlir::Location,
                                mlir::ValueRange, mlir::Value channel)>;
  mlir::Value elementwise(llvm::ArrayRef<mlir::Value> tensors,
                          llvm::ArrayRef<mlir::Value> perChannel,
                          mlir::Type outEl, const Body &body);

  /// `t` with element type `el` (tosa.cast when it differs).
  mlir::Value castTo(mlir::Value t, mlir::Type el);
  /// Pads NHWC `t` by (top, bottom, left, right) with `value`.
  mlir::Value pad(mlir::Value t, int64_t top, int64_t bottom, int64_t left,
                  int64_t right, mlir::Attribute value);
  /// `t` (f32 NHWC) through a float activation.
  mlir::Value activateTensor(mlir::Value t, Activation a);

  /// f32 to int8 with Darknet's rounding (half away from zero).
  mlir::Value quantize(mlir::Value x, mlir::quant::UniformQuantizedType q);
  /// int8 with quantization `q` to f32.
  mlir::Value dequantize(mlir::Value x, mlir::quant::UniformQuantizedType q);
  /// The int8 output of accumulator `acc` (NHWC i32); `r` passed
  /// checkRequantization.
  mlir::Value requantize(mlir::Value acc, const Requantization &r);

  /// The extra bottom/right padding Darknet's size formula leaves unused
  /// (TOSA wants (in + pad - k) to divide by the stride).
  static int64_t unusedPad(int64_t in, int64_t before, int64_t after, int64_t k,
                           int64_t s) {
    int64_t span = in + before + after - k;
    return span >= 0 ? span % s : 0;
  }

  mlir::OpBuilder &b;
  mlir::Location loc;

private:
  mlir::Value rescaleWithTosa(mlir::Value acc, const Requantization &r);
};

//===----------------------------------------------------------------------===//
// The pattern files
//===----------------------------------------------------------------------===//

/// conv2d, connected.
void populateWeightedLayerPatterns(mlir::TypeConverter &converter,
                                   mlir::RewritePatternSet &patterns);
/// maxpool, upsample, dropout, route, shortcut: int8 or float.
void populateDataMovementPatterns(mlir::TypeConverter &converter,
                                  mlir::RewritePatternSet &patterns);
/// batchnorm, activation, avgpool, scale_channels, softmax, yolo: float only.
void populateFloatLayerPatterns(mlir::TypeConverter &converter,
                                mlir::RewritePatternSet &patterns);
/// quant.qcast/dcast/scast, arith.truncf/extf on tensors.
void populatePrecisionCastPatterns(mlir::TypeConverter &converter,
                                   mlir::RewritePatternSet &patterns);

} // namespace lowering
} // namespace qsim

#endif // QSIM_LIB_CONVERSION_QSIMTOTOSA_LOWERINGUTILS_H
