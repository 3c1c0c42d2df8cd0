//===- QSimToTosa.cpp - qsim layers to TOSA, one function per layer ------===//
//
// Every Darknet layer of the model becomes a function `<prefix>_layer_<N>`
// from its inputs to its output, in NHWC (the layout TOSA and the generated
// kernels use; the network input is converted once, at the boundary, by
// the device runtime). Weights are transposed to TOSA's layouts at compile
// time. Structural work is TOSA (conv2d, depthwise_conv2d, fully_connected,
// pooling, pad, concat, slice, reshape, tile, add, mul, clamp, sigmoid,
// rescale); the exact integer requantization of docs/quantization.md is
// `tosa.rescale` when the model rounds like TOSA (`tosa-double`), and the
// same arithmetic as a `linalg.generic` for gemmlowp/TFLite rounding, which
// TOSA's rescale does not reproduce on negative ties. Elementwise functions
// TOSA lacks (mish, swish, yolo's per-channel logistic, quantize/dequantize
// with Darknet's rounding) are `linalg.generic`s too.
//
// The module keeps `qsim.codegen`: per layer its function, inputs (layer
// indices, -1 = network input), NHWC shape, element type and quantization;
// the device header and runtime are generated from it.
//
//===----------------------------------------------------------------------===//

#include "qsim/Conversion/Passes.h"
#include "qsim/Dialect/QSim/IR/Layers.h"
#include "qsim/Runtime/QuantMath.h"
#include "qsim/Support/StringUtils.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Quant/QuantOps.h"
#include "mlir/Dialect/Quant/QuantTypes.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Tosa/IR/TosaOps.h"
#include "mlir/IR/Builders.h"

#include <cmath>
#include <limits>

namespace qsim {
#define GEN_PASS_DEF_LOWERTOTOSAPASS
#include "qsim/Conversion/Passes.h.inc"
} // namespace qsim

using namespace mlir;
using namespace qsim;

namespace {

/// What a converted value is: an NHWC tensor and, for int8, its
/// quantization.
struct Converted {
  Value v;
  float scale = 1.0f;
  int32_t zp = 0;
  bool int8 = false;
};

struct LoweringError {
  Operation *op;
  std::string message;
};
[[noreturn]] void unsupported(Operation *op, const std::string &msg) {
  throw LoweringError{op, msg};
}

class LayerLowering {
public:
  LayerLowering(OpBuilder &b, Location loc, rt::Rounding rounding,
                Flavor flavor)
      : b(b), loc(loc), rounding(rounding), flavor(flavor),
        ctx(b.getContext()) {}

  /// Converts `op` given its converted operands; returns its result.
  Converted lower(Operation *op, ArrayRef<Converted> ins);

  // Types and constants --------------------------------------------------

  static SmallVector<int64_t, 4> nhwcShape(Value qsimValue) {
    auto t = cast<ShapedType>(qsimValue.getType());
    return {1, t.getDimSize(2), t.getDimSize(3), t.getDimSize(1)};
  }
  RankedTensorType tensorType(ArrayRef<int64_t> shape, Type el) {
    return RankedTensorType::get(shape, el);
  }
  Type f32() { return b.getF32Type(); }
  Type i8() { return b.getI8Type(); }
  Type i32() { return b.getI32Type(); }
  Type i64() { return b.getI64Type(); }

  template <typename T>
  Value constant(ArrayRef<int64_t> shape, Type el, ArrayRef<T> data) {
    auto type = tensorType(shape, el);
    auto attr = DenseElementsAttr::get(type, data);
    return b.create<tosa::ConstOp>(loc, type, attr);
  }
  Value scalarTensor(Type el, Attribute value) {
    auto type = tensorType({}, el);
    return b.create<tosa::ConstOp>(loc, type,
                                   DenseElementsAttr::get(type, value));
  }
  /// A [1,1,1,1] constant for broadcasting.
  Value splat4(float v) {
    auto type = tensorType({1, 1, 1, 1}, f32());
    return b.create<tosa::ConstOp>(loc, type, DenseElementsAttr::get(type, v));
  }

  template <typename OpTy>
  Value make(Type result, ValueRange operands,
             ArrayRef<NamedAttribute> attrs = {}) {
    return b.create<OpTy>(loc, TypeRange{result}, operands, attrs)
        ->getResult(0);
  }
  NamedAttribute attr(StringRef name, Attribute a) {
    return b.getNamedAttr(name, a);
  }

  /// An elementwise linalg.generic over NHWC tensors of the same shape (and
  /// 1-D per-channel constants), with the channel index available.
  using Body =
      std::function<Value(OpBuilder &, Location, ValueRange, Value channel)>;
  Value elementwise(ArrayRef<Value> tensors, ArrayRef<Value> perChannel,
                    Type outEl, const Body &body) {
    auto shape = cast<ShapedType>(tensors[0].getType()).getShape();
    Value init = b.create<tensor::EmptyOp>(loc, shape, outEl);
    SmallVector<Value> ins(tensors.begin(), tensors.end());
    ins.append(perChannel.begin(), perChannel.end());
    AffineMap id = b.getMultiDimIdentityMap(4);
    AffineMap ch = AffineMap::get(4, 0, b.getAffineDimExpr(3), ctx);
    SmallVector<AffineMap> maps(tensors.size(), id);
    maps.append(perChannel.size(), ch);
    maps.push_back(id);
    SmallVector<utils::IteratorType> iters(4, utils::IteratorType::parallel);
    auto g = b.create<linalg::GenericOp>(
        loc, TypeRange{init.getType()}, ins, ValueRange{init}, maps, iters,
        [&](OpBuilder &nb, Location nl, ValueRange args) {
          Value c = nb.create<linalg::IndexOp>(nl, 3);
          Value r = body(nb, nl, args.drop_back(), c);
          nb.create<linalg::YieldOp>(nl, r);
        });
    return g.getResult(0);
  }

  // Arithmetic in generic bodies ------------------------------------------

  static Value ci32(OpBuilder &nb, Location nl, int64_t v) {
    return nb.create<arith::ConstantIntOp>(nl, v, 32);
  }
  static Value ci64(OpBuilder &nb, Location nl, int64_t v) {
    return nb.create<arith::ConstantIntOp>(nl, v, 64);
  }
  static Value cf32(OpBuilder &nb, Location nl, float v) {
    return nb.create<arith::ConstantFloatOp>(nl, APFloat(v), nb.getF32Type());
  }

  /// round(x * M) with the module's rounding (QuantMath's
  /// multiplyByFixedPoint, exactly): x i32, m and shift i32 values.
  Value fixedPointMul(OpBuilder &nb, Location nl, Value x, Value m,
                      Value shift) const {
    using namespace arith;
    Type t64 = nb.getI64Type();
    auto c64 = [&](int64_t v) { return ci64(nb, nl, v); };
    auto c32 = [&](int64_t v) { return ci32(nb, nl, v); };
    Value zero32 = c32(0);
    Value x64 = nb.create<ExtSIOp>(nl, t64, x);
    Value m64 = nb.create<ExtSIOp>(nl, t64, m);
    Value s64 = nb.create<ExtSIOp>(nl, t64, shift);
    Value result;
    if (rounding == rt::Rounding::TFLite) {
      // left = max(31 - shift, 0), right = max(shift - 31, 0)
      Value left =
          nb.create<MaxSIOp>(nl, nb.create<SubIOp>(nl, c64(31), s64), c64(0));
      Value right =
          nb.create<MaxSIOp>(nl, nb.create<SubIOp>(nl, s64, c64(31)), c64(0));
      Value shifted = nb.create<ShLIOp>(nl, x64, left);
      shifted = nb.create<MinSIOp>(
          nl, nb.create<MaxSIOp>(nl, shifted, c64(INT32_MIN)), c64(INT32_MAX));
      // SaturatingRoundingDoublingHighMul (m > 0: no saturating case).
      Value ab = nb.create<MulIOp>(nl, shifted, m64);
      Value nonneg = nb.create<CmpIOp>(nl, CmpIPredicate::sge, ab, c64(0));
      Value nudge =
          nb.create<SelectOp>(nl, nonneg, c64(1ll << 30), c64(1 - (1ll << 30)));
      Value v64 = nb.create<DivSIOp>(nl, nb.create<AddIOp>(nl, ab, nudge),
                                     c64(1ll << 31));
      // RoundingDivideByPOT(v, right), in i64 (v fits in i32).
      Value mask =
          nb.create<SubIOp>(nl, nb.create<ShLIOp>(nl, c64(1), right), c64(1));
      Value rem = nb.create<AndIOp>(nl, v64, mask);
      Value neg = nb.create<CmpIOp>(nl, CmpIPredicate::slt, v64, c64(0));
      Value thr = nb.create<AddIOp>(nl, nb.create<ShRSIOp>(nl, mask, c64(1)),
                                    nb.create<ExtUIOp>(nl, t64, neg));
      Value up = nb.create<CmpIOp>(nl, CmpIPredicate::sgt, rem, thr);
      Value q = nb.create<AddIOp>(nl, nb.create<ShRSIOp>(nl, v64, right),
                                  nb.create<ExtUIOp>(nl, t64, up));
      result = nb.create<TruncIOp>(nl, nb.getI32Type(), q);
    } else {
      // TOSA apply_scale_32 with double rounding, saturated to int32.
      Value round =
          nb.create<ShLIOp>(nl, c64(1), nb.create<SubIOp>(nl, s64, c64(1)));
      Value big = nb.create<CmpIOp>(nl, CmpIPredicate::sgt, s64, c64(31));
      Value nonneg = nb.create<CmpIOp>(nl, CmpIPredicate::sge, x64, c64(0));
      Value extra = nb.create<SelectOp>(
          nl, big,
          nb.create<SelectOp>(nl, nonneg, c64(1ll << 30), c64(-(1ll << 30))),
          c64(0));
      Value acc = nb.create<AddIOp>(nl, nb.create<MulIOp>(nl, x64, m64),
                                    nb.create<AddIOp>(nl, round, extra));
      Value r = nb.create<ShRSIOp>(nl, acc, s64);
      r = nb.create<MinSIOp>(nl, nb.create<MaxSIOp>(nl, r, c64(INT32_MIN)),
                             c64(INT32_MAX));
      result = nb.create<TruncIOp>(nl, nb.getI32Type(), r);
    }
    // A zero multiplier (M too small to represent) gives 0.
    Value isZero = nb.create<CmpIOp>(nl, CmpIPredicate::eq, m, zero32);
    return nb.create<SelectOp>(nl, isZero, zero32, result);
  }

  static Value saturateToInt8(OpBuilder &nb, Location nl, Value y32) {
    Value y = nb.create<arith::MaxSIOp>(nl, y32, ci32(nb, nl, -128));
    y = nb.create<arith::MinSIOp>(nl, y, ci32(nb, nl, 127));
    return nb.create<arith::TruncIOp>(nl, nb.getI8Type(), y);
  }

  /// Darknet's float activations, as the interpreter computes them.
  Value activate(OpBuilder &nb, Location nl, Value x, Activation a,
                 Operation *op) const {
    using namespace arith;
    auto c = [&](float v) { return cf32(nb, nl, v); };
    auto logistic = [&](Value v) {
      Value e = nb.create<math::ExpOp>(nl, nb.create<NegFOp>(nl, v));
      return nb.create<DivFOp>(nl, c(1.0f), nb.create<AddFOp>(nl, c(1.0f), e))
          .getResult();
    };
    auto gt0 = [&](Value v) {
      return nb.create<CmpFOp>(nl, CmpFPredicate::OGT, v, c(0.0f)).getResult();
    };
    switch (a) {
    case Activation::linear:
      return x;
    case Activation::relu:
      return nb.create<SelectOp>(nl, gt0(x), x, c(0.0f));
    case Activation::relu6:
      return nb.create<MinimumFOp>(nl, nb.create<MaximumFOp>(nl, x, c(0.0f)),
                                   c(6.0f));
    case Activation::leaky: {
      // (float)(0.1 * (double)x), as Darknet.
      Value d = nb.create<ExtFOp>(nl, nb.getF64Type(), x);
      Value p = nb.create<MulFOp>(
          nl, d, nb.create<ConstantFloatOp>(nl, APFloat(0.1), nb.getF64Type()));
      return nb.create<SelectOp>(nl, gt0(x), x,
                                 nb.create<TruncFOp>(nl, nb.getF32Type(), p));
    }
    case Activation::logistic:
      return logistic(x);
    case Activation::tanh: {
      Value e = nb.create<math::ExpOp>(nl, nb.create<MulFOp>(nl, x, c(2.0f)));
      return nb.create<DivFOp>(nl, nb.create<SubFOp>(nl, e, c(1.0f)),
                               nb.create<AddFOp>(nl, e, c(1.0f)));
    }
    case Activation::swish:
      return nb.create<MulFOp>(nl, x, logistic(x));
    case Activation::mish: {
      // softplus with Darknet's threshold 20, then x * tanh(softplus).
      Value big = nb.create<CmpFOp>(nl, CmpFPredicate::OGT, x, c(20.0f));
      Value small = nb.create<CmpFOp>(nl, CmpFPredicate::OLT, x, c(-20.0f));
      Value ex = nb.create<math::ExpOp>(nl, x);
      Value lg = nb.create<math::LogOp>(nl, nb.create<AddFOp>(nl, ex, c(1.0f)));
      Value sp = nb.create<SelectOp>(nl, big, x,
                                     nb.create<SelectOp>(nl, small, ex, lg));
      Value e2 = nb.create<math::ExpOp>(nl, nb.create<MulFOp>(nl, sp, c(2.0f)));
      Value th = nb.create<DivFOp>(nl, nb.create<SubFOp>(nl, e2, c(1.0f)),
                                   nb.create<AddFOp>(nl, e2, c(1.0f)));
      return nb.create<MulFOp>(nl, x, th);
    }
    case Activation::elu: {
      Value em1 = nb.create<SubFOp>(nl, nb.create<math::ExpOp>(nl, x), c(1.0f));
      Value ge = nb.create<CmpFOp>(nl, CmpFPredicate::OGE, x, c(0.0f));
      return nb.create<SelectOp>(nl, ge, x, em1);
    }
    case Activation::hardtan:
      return nb.create<MinimumFOp>(nl, nb.create<MaximumFOp>(nl, x, c(-1.0f)),
                                   c(1.0f));
    case Activation::relie:
      return nb.create<SelectOp>(nl, gt0(x), x,
                                 nb.create<MulFOp>(nl, x, c(0.01f)));
    default:
      unsupported(op, "activation '" + stringifyActivation(a).str() +
                          "' is not supported by the code generator");
    }
  }

  /// `t` (f32 NHWC) through a float activation.
  Value activateTensor(Value t, Activation a, Operation *op) {
    if (a == Activation::linear)
      return t;
    return elementwise({t}, {}, f32(),
                       [&](OpBuilder &nb, Location nl, ValueRange args, Value) {
                         return activate(nb, nl, args[0], a, op);
                       });
  }

  // Layer pieces ----------------------------------------------------------

  Converted quantizeCast(Value x, quant::UniformQuantizedType q) {
    float inv = 1.0f / (float)q.getScale();
    int32_t zp = q.getZeroPoint();
    Value out = elementwise(
        {x}, {}, i8(), [&](OpBuilder &nb, Location nl, ValueRange a, Value) {
          using namespace arith;
          // q = clamp(zp + roundHalfAway(x * inv)) (the product in float).
          Value v = nb.create<MulFOp>(nl, a[0], cf32(nb, nl, inv));
          v = nb.create<MinimumFOp>(
              nl, nb.create<MaximumFOp>(nl, v, cf32(nb, nl, -1e9f)),
              cf32(nb, nl, 1e9f));
          Value ge =
              nb.create<CmpFOp>(nl, CmpFPredicate::OGE, v, cf32(nb, nl, 0.0f));
          Value half = nb.create<SelectOp>(nl, ge, cf32(nb, nl, 0.5f),
                                           cf32(nb, nl, -0.5f));
          Value r = nb.create<FPToSIOp>(nl, nb.getI32Type(),
                                        nb.create<AddFOp>(nl, v, half));
          return saturateToInt8(nb, nl,
                                nb.create<AddIOp>(nl, r, ci32(nb, nl, zp)));
        });
    return {out, (float)q.getScale(), zp, true};
  }

  Value dequantizeCast(const Converted &c) {
    float s = c.scale;
    int32_t zp = c.zp;
    return elementwise(
        {c.v}, {}, f32(), [&](OpBuilder &nb, Location nl, ValueRange a, Value) {
          using namespace arith;
          Value q = nb.create<ExtSIOp>(nl, nb.getI32Type(), a[0]);
          Value d = nb.create<SIToFPOp>(
              nl, nb.getF32Type(), nb.create<SubIOp>(nl, q, ci32(nb, nl, zp)));
          return nb.create<MulFOp>(nl, cf32(nb, nl, s), d);
        });
  }

  Value castTo(Value t, Type el) {
    auto tt = cast<RankedTensorType>(t.getType());
    if (tt.getElementType() == el)
      return t;
    return make<tosa::CastOp>(tensorType(tt.getShape(), el), t);
  }

  /// Pads NHWC `t` by (top, bottom, left, right) with `value`.
  Value pad(Value t, int64_t top, int64_t bottom, int64_t left, int64_t right,
            Attribute value) {
    if (!top && !bottom && !left && !right)
      return t;
    auto tt = cast<RankedTensorType>(t.getType());
    auto s = tt.getShape();
    SmallVector<int32_t> p = {
        0, 0, (int32_t)top, (int32_t)bottom, (int32_t)left, (int32_t)right,
        0, 0};
    Value pads = constant<int32_t>({4, 2}, i32(), p);
    Value pc = scalarTensor(tt.getElementType(), value);
    return make<tosa::PadOp>(
        tensorType({s[0], s[1] + top + bottom, s[2] + left + right, s[3]},
                   tt.getElementType()),
        {t, pads, pc});
  }

  /// The extra bottom/right padding Darknet's size formula leaves unused
  /// (TOSA wants (in + pad - k) to divide by the stride).
  static int64_t unusedPad(int64_t in, int64_t before, int64_t after, int64_t k,
                           int64_t s) {
    int64_t span = in + before + after - k;
    return span >= 0 ? span % s : 0;
  }

  Converted conv(Conv2DOp op, const Converted &in);
  Converted connected(ConnectedOp op, const Converted &in);
  Converted requantize(Value acc, ArrayRef<int64_t> bias, Operation *op,
                       ArrayRef<int32_t> mult, ArrayRef<int32_t> shift,
                       std::optional<ArrayRef<int32_t>> negMult,
                       std::optional<ArrayRef<int32_t>> negShift,
                       Activation act, quant::UniformQuantizedType outQ);

  OpBuilder &b;
  Location loc;
  rt::Rounding rounding;
  Flavor flavor;
  MLIRContext *ctx;
};

/// `op`'s integer weights or biases, or an error naming the layer.
template <typename T>
std::vector<T> integerValues(Operation *op, ElementsAttr a) {
  if (auto v = getInts<T>(a))
    return std::move(*v);
  unsupported(op, "integer weights in a storage that cannot be read");
}

Converted LayerLowering::requantize(Value acc, ArrayRef<int64_t> bias,
                                    Operation *op, ArrayRef<int32_t> mult,
                                    ArrayRef<int32_t> shift,
                                    std::optional<ArrayRef<int32_t>> negMult,
                                    std::optional<ArrayRef<int32_t>> negShift,
                                    Activation act,
                                    quant::UniformQuantizedType outQ) {
  int64_t f = bias.size();
  int32_t zo = outQ.getZeroPoint();
  float so = (float)outQ.getScale();
  int32_t q6 = rt::quantizeValue(6.0f, 1.0f / so, zo);
  bool leaky = act == Activation::leaky;
  if (!hasInt8Activation(act))
    unsupported(op, "int8 activation '" + stringifyActivation(act).str() +
                        "' has no integer form");
  if (leaky && (!negMult || !negShift))
    unsupported(op, "leaky int8 layer without neg_multiplier/neg_shift");
  // TOSA's own rescale when the module rounds like TOSA and the activation
  // is not leaky (whose two branches need the select below).
  if (rounding == rt::Rounding::TosaDouble && !leaky) {
    bool fits = true;
    for (int64_t b : bias)
      fits &= b >= INT32_MIN && b <= INT32_MAX;
    for (int32_t s : shift)
      fits &= s >= 2 && s <= 62;
    for (int32_t m : mult)
      fits &= m != 0;
    if (fits) {
      auto at = cast<RankedTensorType>(acc.getType());
      SmallVector<int32_t> b32(bias.begin(), bias.end());
      Value biased = make<tosa::AddOp>(
          at, {acc, constant<int32_t>({1, 1, 1, f}, i32(), b32)});
      SmallVector<int8_t> sh(shift.begin(), shift.end());
      Value r = make<tosa::RescaleOp>(
          tensorType(at.getShape(), i8()), {biased},
          {attr("input_zp", b.getI32IntegerAttr(0)),
           attr("output_zp", b.getI32IntegerAttr(zo)),
           attr("multiplier", b.getDenseI32ArrayAttr(mult)),
           attr("shift", b.getDenseI8ArrayAttr(sh)),
           attr("scale32", b.getBoolAttr(true)),
           attr("double_round", b.getBoolAttr(true)),
           attr("per_channel", b.getBoolAttr(true))});
      if (act != Activation::linear)
        r = make<tosa::ClampOp>(
            r.getType(), {r},
            {attr("min_int", b.getI64IntegerAttr(zo)),
             attr("max_int",
                  b.getI64IntegerAttr(act == Activation::relu6 ? q6 : 127)),
             attr("min_fp", b.getF32FloatAttr(0)),
             attr("max_fp", b.getF32FloatAttr(0))});
      return {r, so, zo, true};
    }
  }
  SmallVector<Value> pc = {constant<int64_t>({f}, i64(), bias),
                           constant<int32_t>({f}, i32(), mult),
                           constant<int32_t>({f}, i32(), shift)};
  if (leaky) {
    pc.push_back(constant<int32_t>({f}, i32(), *negMult));
    pc.push_back(constant<int32_t>({f}, i32(), *negShift));
  }
  Value out = elementwise(
      {acc}, pc, i8(), [&](OpBuilder &nb, Location nl, ValueRange a, Value) {
        using namespace arith;
        // a = clamp(acc + bias) in int64, then M (the leaky branch for a < 0).
        Value s = nb.create<AddIOp>(
            nl, nb.create<ExtSIOp>(nl, nb.getI64Type(), a[0]), a[1]);
        s = nb.create<MinSIOp>(
            nl, nb.create<MaxSIOp>(nl, s, ci64(nb, nl, INT32_MIN)),
            ci64(nb, nl, INT32_MAX));
        Value a32 = nb.create<TruncIOp>(nl, nb.getI32Type(), s);
        Value m = a[2], sh = a[3];
        if (leaky) {
          Value neg =
              nb.create<CmpIOp>(nl, CmpIPredicate::slt, a32, ci32(nb, nl, 0));
          m = nb.create<SelectOp>(nl, neg, a[4], m);
          sh = nb.create<SelectOp>(nl, neg, a[5], sh);
        }
        Value y = fixedPointMul(nb, nl, a32, m, sh);
        y = nb.create<AddIOp>(nl, y, ci32(nb, nl, zo));
        if (act == Activation::relu || act == Activation::relu6)
          y = nb.create<MaxSIOp>(nl, y, ci32(nb, nl, zo));
        if (act == Activation::relu6)
          y = nb.create<MinSIOp>(nl, y, ci32(nb, nl, q6));
        return saturateToInt8(nb, nl, y);
      });
  return {out, so, zo, true};
}

Converted LayerLowering::conv(Conv2DOp op, const Converted &inC) {
  if (!op.getWeight())
    unsupported(op, "no weights (a shape-only model cannot be compiled)");
  if (op.getAccumulatorBits() == 16)
    unsupported(op, "the 16-bit accumulator simulation has no generated form");
  int64_t F = op.getFilters(), C = op.getInputChannels(), G = op.getGroups();
  int64_t kh = op.getKernelH(), kw = op.getKernelW();
  int64_t sy = op.getStride()[0], sx = op.getStride()[1];
  int64_t py = op.getPadding()[0], px = op.getPadding()[1];
  int64_t dil = op.getDilation();
  auto inShape = cast<RankedTensorType>(inC.v.getType()).getShape();
  auto outShape = nhwcShape(op.getResult());
  int64_t H = inShape[1], W = inShape[2];
  // TOSA's output size includes the dilation; Darknet's (AlexeyAB) does not.
  int64_t ekh = (kh - 1) * dil + 1, ekw = (kw - 1) * dil + 1;
  if ((H + 2 * py - ekh) / sy + 1 != outShape[1] ||
      (W + 2 * px - ekw) / sx + 1 != outShape[2])
    unsupported(op, "dilation with Darknet's output size (which ignores it)");
  int64_t padB = py - unusedPad(H, py, py, ekh, sy);
  int64_t padR = px - unusedPad(W, px, px, ekw, sx);
  bool q = inC.int8;
  auto outQ = dyn_cast<quant::UniformQuantizedType>(
      getElementTypeOrSelf(op.getResult().getType()));
  if (q != (bool)outQ)
    unsupported(op, "mixed int8/float convolution");
  bool fp16 = getElementTypeOrSelf(op.getResult().getType()).isF16();
  Type wEl = q ? i8() : f32();
  Type accEl = q ? i32() : f32();
  Value in = q ? inC.v : castTo(inC.v, f32());
  // int8: pad with the input zero point (padded taps are real zeros) and
  // fold -zp * sum(w) into the bias; the conv itself has no zero points.
  if (q)
    in = pad(in, py, padB, px, padR, b.getI8IntegerAttr(inC.zp));
  int64_t tp = q ? 0 : py, bp = q ? 0 : padB, lp = q ? 0 : px,
          rp = q ? 0 : padR;
  int64_t cg = C / G, fg = F / G, taps = cg * kh * kw;
  std::vector<float> wf;
  std::vector<int8_t> wq;
  if (q)
    wq = integerValues<int8_t>(op, *op.getWeight());
  else
    wf = getFloats(*op.getWeight());
  auto wAt = [&](int64_t f, int64_t c, int64_t y, int64_t x) {
    return ((f * cg + c) * kh + y) * kw + x;
  };
  std::vector<int64_t> bias(F, 0);
  std::vector<float> biasF(F, 0.0f);
  if (op.getBias()) {
    if (q) {
      auto bv = integerValues<int32_t>(op, *op.getBias());
      for (int64_t f = 0; f < F; ++f)
        bias[f] = bv[f];
    } else {
      biasF = getFloats(*op.getBias());
    }
  }
  if (q)
    for (int64_t f = 0; f < F; ++f) {
      int64_t sum = 0;
      for (int64_t t = 0; t < taps; ++t)
        sum += wq[f * taps + t];
      bias[f] -= (int64_t)inC.zp * sum;
    }
  auto quantInfo = [&]() -> SmallVector<NamedAttribute, 1> {
    if (!q)
      return {};
    return {attr("quantization_info",
                 tosa::ConvOpQuantizationAttr::get(ctx, 0, 0))};
  };
  auto convAttrs = [&](SmallVector<NamedAttribute, 4> extra) {
    SmallVector<NamedAttribute> a = {
        attr("pad", b.getDenseI64ArrayAttr({tp, bp, lp, rp})),
        attr("stride", b.getDenseI64ArrayAttr({sy, sx})),
        attr("dilation", b.getDenseI64ArrayAttr({dil, dil}))};
    a.append(extra.begin(), extra.end());
    return a;
  };
  auto accType = tensorType({1, outShape[1], outShape[2], F}, accEl);
  Value acc;
  if (G > 1 && G == C && F % C == 0) {
    // Depthwise: weight [kh][kw][C][M], output channel c*M + m. The int8
    // bias is added with the requantization (int32, after the folding).
    int64_t M = F / C;
    Value dwBias = q ? constant<int32_t>({F}, i32(), std::vector<int32_t>(F, 0))
                     : constant<float>({F}, f32(), biasF);
    SmallVector<int64_t> shape = {kh, kw, C, M};
    if (q) {
      std::vector<int8_t> w(kh * kw * C * M);
      for (int64_t c = 0; c < C; ++c)
        for (int64_t m = 0; m < M; ++m)
          for (int64_t y = 0; y < kh; ++y)
            for (int64_t x = 0; x < kw; ++x)
              w[((y * kw + x) * C + c) * M + m] = wq[wAt(c * M + m, 0, y, x)];
      acc = make<tosa::DepthwiseConv2DOp>(
          accType, {in, constant<int8_t>(shape, wEl, w), dwBias},
          convAttrs(quantInfo()));
    } else {
      std::vector<float> w(kh * kw * C * M);
      for (int64_t c = 0; c < C; ++c)
        for (int64_t m = 0; m < M; ++m)
          for (int64_t y = 0; y < kh; ++y)
            for (int64_t x = 0; x < kw; ++x)
              w[((y * kw + x) * C + c) * M + m] = wf[wAt(c * M + m, 0, y, x)];
      acc = make<tosa::DepthwiseConv2DOp>(
          accType, {in, constant<float>(shape, wEl, w), dwBias}, convAttrs({}));
    }
  } else {
    // Grouped: one conv per group on a channel slice, concatenated.
    SmallVector<Value> parts;
    auto inT = cast<RankedTensorType>(in.getType());
    for (int64_t g = 0; g < G; ++g) {
      Value part = in;
      if (G > 1)
        part = make<tosa::SliceOp>(
            tensorType({1, inT.getDimSize(1), inT.getDimSize(2), cg},
                       inT.getElementType()),
            {in},
            {attr("start", b.getDenseI64ArrayAttr({0, 0, 0, g * cg})),
             attr("size", b.getDenseI64ArrayAttr(
                              {1, inT.getDimSize(1), inT.getDimSize(2), cg}))});
      SmallVector<int64_t> shape = {fg, kh, kw, cg};
      Value w;
      if (q) {
        std::vector<int8_t> v(fg * kh * kw * cg);
        for (int64_t f = 0; f < fg; ++f)
          for (int64_t y = 0; y < kh; ++y)
            for (int64_t x = 0; x < kw; ++x)
              for (int64_t c = 0; c < cg; ++c)
                v[((f * kh + y) * kw + x) * cg + c] =
                    wq[wAt(g * fg + f, c, y, x)];
        w = constant<int8_t>(shape, wEl, v);
      } else {
        std::vector<float> v(fg * kh * kw * cg);
        for (int64_t f = 0; f < fg; ++f)
          for (int64_t y = 0; y < kh; ++y)
            for (int64_t x = 0; x < kw; ++x)
              for (int64_t c = 0; c < cg; ++c)
                v[((f * kh + y) * kw + x) * cg + c] =
                    wf[wAt(g * fg + f, c, y, x)];
        w = constant<float>(shape, wEl, v);
      }
      Value gb;
      if (q)
        gb = constant<int32_t>({fg}, i32(), std::vector<int32_t>(fg, 0));
      else
        gb = constant<float>({fg}, f32(),
                             ArrayRef<float>(biasF).slice(g * fg, fg));
      parts.push_back(make<tosa::Conv2DOp>(
          tensorType({1, outShape[1], outShape[2], fg}, accEl), {part, w, gb},
          convAttrs(quantInfo())));
    }
    acc = parts.size() == 1
              ? parts[0]
              : make<tosa::ConcatOp>(accType, parts,
                                     {attr("axis", b.getI32IntegerAttr(3))});
  }
  if (!q) {
    Value out = activateTensor(acc, op.getActivation(), op);
    return {fp16 ? castTo(out, b.getF16Type()) : out};
  }
  std::optional<ArrayRef<int32_t>> nm, ns;
  if (op.getNegMultiplier())
    nm = *op.getNegMultiplier(), ns = *op.getNegShift();
  return requantize(acc, bias, op, *op.getMultiplier(), *op.getShift(), nm, ns,
                    op.getActivation(), outQ);
}

Converted LayerLowering::connected(ConnectedOp op, const Converted &inC) {
  if (!op.getWeight())
    unsupported(op, "no weights (a shape-only model cannot be compiled)");
  if (op.getAccumulatorBits() == 16)
    unsupported(op, "the 16-bit accumulator simulation has no generated form");
  auto inShape = cast<RankedTensorType>(inC.v.getType()).getShape();
  int64_t H = inShape[1], W = inShape[2], C = inShape[3];
  int64_t N = H * W * C, O = op.getOutputSize();
  bool q = inC.int8;
  auto outQ = dyn_cast<quant::UniformQuantizedType>(
      getElementTypeOrSelf(op.getResult().getType()));
  bool fp16 = getElementTypeOrSelf(op.getResult().getType()).isF16();
  Value in = q ? inC.v : castTo(inC.v, f32());
  Type el = q ? i8() : f32();
  Value flat = make<tosa::ReshapeOp>(
      tensorType({1, N}, el), {in},
      {attr("new_shape", b.getDenseI64ArrayAttr({1, N}))});
  // Darknet's input index is c*H*W + y*W + x; NHWC's is (y*W + x)*C + c.
  auto nhwcIndex = [&](int64_t i) {
    int64_t c = i / (H * W), r = i % (H * W);
    return r * C + c;
  };
  std::vector<int64_t> bias(O, 0);
  Value acc;
  auto outT2 = tensorType({1, O}, q ? i32() : f32());
  if (q) {
    auto w = integerValues<int8_t>(op, *op.getWeight());
    std::vector<int8_t> wt(O * N);
    for (int64_t o = 0; o < O; ++o)
      for (int64_t i = 0; i < N; ++i)
        wt[o * N + nhwcIndex(i)] = w[o * N + i];
    if (op.getBias()) {
      auto bv = integerValues<int32_t>(op, *op.getBias());
      for (int64_t o = 0; o < O; ++o)
        bias[o] = bv[o];
    }
    for (int64_t o = 0; o < O; ++o) {
      int64_t sum = 0;
      for (int64_t i = 0; i < N; ++i)
        sum += w[o * N + i];
      bias[o] -= (int64_t)inC.zp * sum;
    }
    acc = make<tosa::FullyConnectedOp>(
        outT2,
        {flat, constant<int8_t>({O, N}, i8(), wt),
         constant<int32_t>({O}, i32(), std::vector<int32_t>(O, 0))},
        {attr("quantization_info",
              tosa::ConvOpQuantizationAttr::get(ctx, 0, 0))});
  } else {
    auto w = getFloats(*op.getWeight());
    std::vector<float> wt(O * N);
    for (int64_t o = 0; o < O; ++o)
      for (int64_t i = 0; i < N; ++i)
        wt[o * N + nhwcIndex(i)] = w[o * N + i];
    std::vector<float> bf(O, 0.0f);
    if (op.getBias())
      bf = getFloats(*op.getBias());
    acc = make<tosa::FullyConnectedOp>(
        outT2, {flat, constant<float>({O, N}, f32(), wt),
                constant<float>({O}, f32(), bf)});
  }
  Value acc4 = make<tosa::ReshapeOp>(
      tensorType({1, 1, 1, O}, q ? i32() : f32()), {acc},
      {attr("new_shape", b.getDenseI64ArrayAttr({1, 1, 1, O}))});
  if (!q) {
    Value out = activateTensor(acc4, op.getActivation(), op);
    return {fp16 ? castTo(out, b.getF16Type()) : out};
  }
  std::optional<ArrayRef<int32_t>> nm, ns;
  if (op.getNegMultiplier())
    nm = *op.getNegMultiplier(), ns = *op.getNegShift();
  return requantize(acc4, bias, op, *op.getMultiplier(), *op.getShift(), nm, ns,
                    op.getActivation(), outQ);
}

Converted LayerLowering::lower(Operation *op, ArrayRef<Converted> ins) {
  auto resultEl = [&]() {
    return getElementTypeOrSelf(op->getResult(0).getType());
  };
  auto outQ = [&]() {
    return dyn_cast<quant::UniformQuantizedType>(resultEl());
  };
  auto outShape = [&]() { return nhwcShape(op->getResult(0)); };
  // A float layer computes in f32 and stores its result in its own type.
  auto finish = [&](Value f32Result) -> Converted {
    if (resultEl().isF16())
      return {castTo(f32Result, b.getF16Type())};
    return {f32Result};
  };
  auto asF32 = [&](const Converted &c) {
    if (c.int8)
      unsupported(op, "an int8 input to a float computation (missing cast)");
    return castTo(c.v, f32());
  };

  // Casts.
  if (auto qc = dyn_cast<quant::QuantizeCastOp>(op)) {
    auto q = dyn_cast<quant::UniformQuantizedType>(
        getElementTypeOrSelf(qc.getResult().getType()));
    if (!q)
      unsupported(op, "per-axis activation quantization");
    return quantizeCast(asF32(ins[0]), q);
  }
  if (isa<quant::DequantizeCastOp>(op))
    return {dequantizeCast(ins[0])};
  if (isa<quant::StorageCastOp>(op))
    return ins[0];
  if (isa<arith::TruncFOp, arith::ExtFOp>(op))
    return {castTo(ins[0].v, resultEl())};

  if (auto c = dyn_cast<Conv2DOp>(op))
    return conv(c, ins[0]);
  if (auto c = dyn_cast<ConnectedOp>(op))
    return connected(c, ins[0]);

  if (auto bn = dyn_cast<BatchNormOp>(op)) {
    if (!bn.getScale())
      unsupported(op, "no parameters (shape-only model)");
    auto scale = getFloats(*bn.getScale()), mean = getFloats(*bn.getMean()),
         var = getFloats(*bn.getVariance()), bias = getFloats(*bn.getBias());
    int64_t C = scale.size();
    bool ab = flavor == Flavor::AlexeyAB;
    std::vector<float> sd(C);
    for (int64_t c = 0; c < C; ++c)
      sd[c] = ab ? std::sqrt(var[c] + .00001f) : std::sqrt(var[c]) + .000001f;
    SmallVector<Value> pc = {
        constant<float>({C}, f32(), mean), constant<float>({C}, f32(), sd),
        constant<float>({C}, f32(), scale), constant<float>({C}, f32(), bias)};
    Activation act = bn.getActivation();
    Value out = elementwise(
        {asF32(ins[0])}, pc, f32(),
        [&](OpBuilder &nb, Location nl, ValueRange a, Value) {
          using namespace arith;
          Value x =
              nb.create<DivFOp>(nl, nb.create<SubFOp>(nl, a[0], a[1]), a[2]);
          x = nb.create<AddFOp>(nl, nb.create<MulFOp>(nl, x, a[3]), a[4]);
          return activate(nb, nl, x, act, op);
        });
    return finish(out);
  }
  if (auto a = dyn_cast<ActivationOp>(op))
    return finish(activateTensor(asF32(ins[0]), a.getActivation(), op));

  if (auto mp = dyn_cast<MaxPoolOp>(op)) {
    auto s = cast<RankedTensorType>(ins[0].v.getType()).getShape();
    int64_t k = mp.getSize(), sy = mp.getStride()[0], sx = mp.getStride()[1];
    int64_t p = mp.getPadding(), before = p / 2, after = p - before;
    auto os = outShape();
    int64_t afterY = after - unusedPad(s[1], before, after, k, sy);
    int64_t afterX = after - unusedPad(s[2], before, after, k, sx);
    if (before >= k || afterY >= k || afterX >= k || afterY < 0 || afterX < 0)
      unsupported(op, "padding as large as the window");
    Value in = ins[0].int8 ? ins[0].v : asF32(ins[0]);
    Type el = cast<RankedTensorType>(in.getType()).getElementType();
    Value out = make<tosa::MaxPool2dOp>(
        tensorType(os, el), {in},
        {attr("kernel", b.getDenseI64ArrayAttr({k, k})),
         attr("stride", b.getDenseI64ArrayAttr({sy, sx})),
         attr("pad",
              b.getDenseI64ArrayAttr({before, afterY, before, afterX}))});
    if (ins[0].int8)
      return {out, ins[0].scale, ins[0].zp, true};
    return finish(out);
  }
  if (isa<AvgPoolOp>(op)) {
    Value in = asF32(ins[0]);
    auto s = cast<RankedTensorType>(in.getType()).getShape();
    Value sum =
        make<tosa::ReduceSumOp>(tensorType({1, 1, s[2], s[3]}, f32()), {in},
                                {attr("axis", b.getI32IntegerAttr(1))});
    sum = make<tosa::ReduceSumOp>(tensorType({1, 1, 1, s[3]}, f32()), {sum},
                                  {attr("axis", b.getI32IntegerAttr(2))});
    Value out = make<tosa::MulOp>(sum.getType(),
                                  {sum, splat4(1.0f / (float)(s[1] * s[2]))},
                                  {attr("shift", b.getI8IntegerAttr(0))});
    return finish(out);
  }
  if (auto up = dyn_cast<UpsampleOp>(op)) {
    int64_t st = up.getStride();
    if (st < 1)
      unsupported(op, "downsampling upsample (negative stride)");
    auto s = cast<RankedTensorType>(ins[0].v.getType()).getShape();
    Type el = cast<RankedTensorType>(ins[0].v.getType()).getElementType();
    Value in = ins[0].int8 ? ins[0].v : asF32(ins[0]);
    if (!ins[0].int8)
      el = f32();
    // Nearest neighbour: [1,H,1,W,1,C] tiled by [1,1,s,1,s,1].
    Value r = make<tosa::ReshapeOp>(
        tensorType({1, s[1], 1, s[2], 1, s[3]}, el), {in},
        {attr("new_shape",
              b.getDenseI64ArrayAttr({1, s[1], 1, s[2], 1, s[3]}))});
    r = make<tosa::TileOp>(
        tensorType({1, s[1], st, s[2], st, s[3]}, el), {r},
        {attr("multiples", b.getDenseI64ArrayAttr({1, 1, st, 1, st, 1}))});
    r = make<tosa::ReshapeOp>(
        tensorType({1, s[1] * st, s[2] * st, s[3]}, el), {r},
        {attr("new_shape",
              b.getDenseI64ArrayAttr({1, s[1] * st, s[2] * st, s[3]}))});
    if (ins[0].int8) {
      if (up.getScale().convertToFloat() != 1.0f)
        unsupported(op, "int8 upsample with scale");
      return {r, ins[0].scale, ins[0].zp, true};
    }
    if (up.getScale().convertToFloat() != 1.0f)
      r = make<tosa::MulOp>(r.getType(),
                            {r, splat4(up.getScale().convertToFloat())},
                            {attr("shift", b.getI8IntegerAttr(0))});
    return finish(r);
  }
  if (isa<DropoutOp>(op))
    return ins[0];
  if (auto route = dyn_cast<RouteOp>(op)) {
    int64_t G = route.getGroups(), gid = route.getGroupId();
    auto q = outQ();
    SmallVector<Value> parts;
    for (size_t i = 0; i < ins.size(); ++i) {
      Value v = ins[i].int8 ? ins[i].v : asF32(ins[i]);
      auto t = cast<RankedTensorType>(v.getType());
      int64_t c = t.getDimSize(3) / G;
      if (G > 1)
        v = make<tosa::SliceOp>(
            tensorType({1, t.getDimSize(1), t.getDimSize(2), c},
                       t.getElementType()),
            {v},
            {attr("start", b.getDenseI64ArrayAttr({0, 0, 0, gid * c})),
             attr("size", b.getDenseI64ArrayAttr(
                              {1, t.getDimSize(1), t.getDimSize(2), c}))});
      if (q && !(ins[i].scale == (float)q.getScale() &&
                 ins[i].zp == q.getZeroPoint())) {
        // Requantize to the route's parameters.
        if (!route.getInputMultiplier())
          unsupported(op, "int8 route without input multipliers");
        int32_t m = (*route.getInputMultiplier())[i];
        int32_t sh = (*route.getInputShift())[i];
        int32_t zi = ins[i].zp, zo = q.getZeroPoint();
        v = elementwise(
            {v}, {}, i8(),
            [&](OpBuilder &nb, Location nl, ValueRange a, Value) {
              using namespace arith;
              Value x = nb.create<SubIOp>(
                  nl, nb.create<ExtSIOp>(nl, nb.getI32Type(), a[0]),
                  ci32(nb, nl, zi));
              Value y =
                  fixedPointMul(nb, nl, x, ci32(nb, nl, m), ci32(nb, nl, sh));
              return saturateToInt8(nb, nl,
                                    nb.create<AddIOp>(nl, y, ci32(nb, nl, zo)));
            });
      }
      parts.push_back(v);
    }
    auto os = outShape();
    Type el = q ? i8() : f32();
    Value out =
        parts.size() == 1
            ? parts[0]
            : make<tosa::ConcatOp>(tensorType(os, el), parts,
                                   {attr("axis", b.getI32IntegerAttr(3))});
    if (q)
      return {out, (float)q.getScale(), (int32_t)q.getZeroPoint(), true};
    return finish(out);
  }
  if (auto sc = dyn_cast<ShortcutOp>(op)) {
    auto os = outShape();
    int64_t C = os[3];
    auto q = outQ();
    // Every input to the output's channel count: wider ones sliced,
    // narrower ones padded with their zero (contributes nothing).
    SmallVector<Value> vs;
    for (const Converted &in : ins) {
      Value v = in.int8 ? in.v : asF32(in);
      auto t = cast<RankedTensorType>(v.getType());
      if (t.getDimSize(1) != os[1] || t.getDimSize(2) != os[2])
        unsupported(op, "shortcut between different spatial sizes");
      int64_t c = t.getDimSize(3);
      if (c > C)
        v = make<tosa::SliceOp>(
            tensorType(os, t.getElementType()), {v},
            {attr("start", b.getDenseI64ArrayAttr({0, 0, 0, 0})),
             attr("size", b.getDenseI64ArrayAttr(os))});
      else if (c < C) {
        SmallVector<int32_t> p = {0, 0, 0, 0, 0, 0, 0, (int32_t)(C - c)};
        Value padc = in.int8 ? scalarTensor(i8(), b.getI8IntegerAttr(in.zp))
                             : scalarTensor(f32(), b.getF32FloatAttr(0.0f));
        v = make<tosa::PadOp>(tensorType(os, t.getElementType()),
                              {v, constant<int32_t>({4, 2}, i32(), p), padc});
      }
      vs.push_back(v);
    }
    Activation act = sc.getActivation();
    if (!q) {
      Value sum = vs[0];
      for (size_t i = 1; i < vs.size(); ++i)
        sum = make<tosa::AddOp>(sum.getType(), {sum, vs[i]});
      return finish(activateTensor(sum, act, op));
    }
    if (act != Activation::linear && act != Activation::relu &&
        act != Activation::leaky)
      unsupported(op, "int8 shortcut activation '" +
                          stringifyActivation(act).str() + "'");
    auto mult = *sc.getInputMultiplier(), shift = *sc.getInputShift();
    SmallVector<int32_t> zps;
    for (const Converted &in : ins)
      zps.push_back(in.zp);
    int32_t negM = sc.getNegMultiplier() ? (*sc.getNegMultiplier())[0] : 0;
    int32_t negS = sc.getNegShift() ? (*sc.getNegShift())[0] : 0;
    int32_t zo = q.getZeroPoint();
    Value out = elementwise(
        vs, {}, i8(), [&](OpBuilder &nb, Location nl, ValueRange a, Value) {
          using namespace arith;
          Value sum = ci32(nb, nl, 0);
          for (size_t k = 0; k < a.size(); ++k) {
            Value x = nb.create<SubIOp>(
                nl, nb.create<ExtSIOp>(nl, nb.getI32Type(), a[k]),
                ci32(nb, nl, zps[k]));
            sum = nb.create<AddIOp>(nl, sum,
                                    fixedPointMul(nb, nl, x,
                                                  ci32(nb, nl, mult[k]),
                                                  ci32(nb, nl, shift[k])));
          }
          if (act == Activation::relu)
            sum = nb.create<MaxSIOp>(nl, sum, ci32(nb, nl, 0));
          if (act == Activation::leaky) {
            Value neg =
                nb.create<CmpIOp>(nl, CmpIPredicate::slt, sum, ci32(nb, nl, 0));
            Value scaled = fixedPointMul(nb, nl, sum, ci32(nb, nl, negM),
                                         ci32(nb, nl, negS));
            sum = nb.create<SelectOp>(nl, neg, scaled, sum);
          }
          // RoundingDivideByPOT(sum, 16): with rounding tflite; for
          // tosa-double the interpreter uses the same gemmlowp step.
          Value mask = ci32(nb, nl, (1 << 16) - 1);
          Value rem = nb.create<AndIOp>(nl, sum, mask);
          Value neg =
              nb.create<CmpIOp>(nl, CmpIPredicate::slt, sum, ci32(nb, nl, 0));
          Value thr =
              nb.create<AddIOp>(nl, ci32(nb, nl, (1 << 15) - 1),
                                nb.create<ExtUIOp>(nl, nb.getI32Type(), neg));
          Value upv = nb.create<CmpIOp>(nl, CmpIPredicate::sgt, rem, thr);
          Value r = nb.create<AddIOp>(
              nl, nb.create<ShRSIOp>(nl, sum, ci32(nb, nl, 16)),
              nb.create<ExtUIOp>(nl, nb.getI32Type(), upv));
          return saturateToInt8(nb, nl,
                                nb.create<AddIOp>(nl, r, ci32(nb, nl, zo)));
        });
    return {out, (float)q.getScale(), zo, true};
  }
  if (auto sc = dyn_cast<ScaleChannelsOp>(op)) {
    if (sc.getScaleWh())
      unsupported(op, "scale_channels with scale_wh");
    Value scales = asF32(ins[0]), feats = asF32(ins[1]);
    Value out = make<tosa::MulOp>(feats.getType(), {feats, scales},
                                  {attr("shift", b.getI8IntegerAttr(0))});
    return finish(activateTensor(out, sc.getActivation(), op));
  }
  if (auto sm = dyn_cast<SoftmaxOp>(op)) {
    if (sm.getGroups() != 1)
      unsupported(op, "softmax with groups");
    Value in = asF32(ins[0]);
    auto t = cast<RankedTensorType>(in.getType());
    float temp = sm.getTemperature().convertToFloat();
    if (temp != 1.0f)
      in = make<tosa::MulOp>(t, {in, splat4(1.0f / temp)},
                             {attr("shift", b.getI8IntegerAttr(0))});
    auto red = tensorType({1, t.getDimSize(1), t.getDimSize(2), 1}, f32());
    Value mx = make<tosa::ReduceMaxOp>(red, {in},
                                       {attr("axis", b.getI32IntegerAttr(3))});
    Value e = make<tosa::ExpOp>(t, {make<tosa::SubOp>(t, {in, mx})});
    Value sum = make<tosa::ReduceSumOp>(red, {e},
                                        {attr("axis", b.getI32IntegerAttr(3))});
    Value out = make<tosa::MulOp>(t, {e, make<tosa::ReciprocalOp>(red, {sum})},
                                  {attr("shift", b.getI8IntegerAttr(0))});
    return finish(out);
  }
  if (auto y = dyn_cast<YoloOp>(op)) {
    int64_t entries = y.getClasses() + 5;
    float alpha = y.getScaleXY().convertToFloat();
    float beta = (float)(-0.5 * (double)(alpha - 1.0f));
    bool pj = flavor == Flavor::PJReddie, nc = y.getNewCoords();
    Value out = elementwise(
        {asF32(ins[0])}, {}, f32(),
        [&](OpBuilder &nb, Location nl, ValueRange a, Value ch) {
          using namespace arith;
          Value x = a[0];
          Value c64 = nb.create<IndexCastOp>(nl, nb.getI64Type(), ch);
          Value e = nb.create<RemSIOp>(nl, c64, ci64(nb, nl, entries));
          Value isWH = nb.create<OrIOp>(
              nl, nb.create<CmpIOp>(nl, CmpIPredicate::eq, e, ci64(nb, nl, 2)),
              nb.create<CmpIOp>(nl, CmpIPredicate::eq, e, ci64(nb, nl, 3)));
          Value lg = activate(nb, nl, x, Activation::logistic, op);
          Value v =
              nc && !pj ? x : nb.create<SelectOp>(nl, isWH, x, lg).getResult();
          if (!pj) {
            Value xy =
                nb.create<CmpIOp>(nl, CmpIPredicate::slt, e, ci64(nb, nl, 2));
            Value sc = nb.create<AddFOp>(
                nl, nb.create<MulFOp>(nl, v, cf32(nb, nl, alpha)),
                cf32(nb, nl, beta));
            v = nb.create<SelectOp>(nl, xy, sc, v);
          }
          return v;
        });
    return finish(out);
  }
  unsupported(op, "'" + op->getName().getStringRef().str() +
                      "' is not supported by the code generator");
}

struct LowerToTosaPass
    : public qsim::impl::LowerToTosaPassBase<LowerToTosaPass> {
  using LowerToTosaPassBase::LowerToTosaPassBase;
  void runOnOperation() override;
};

void LowerToTosaPass::runOnOperation() {
  ModuleOp module = getOperation();
  func::FuncOp main = getMainFunc(module);
  if (!main) {
    module.emitError() << "no main function";
    return signalPassFailure();
  }
  auto layers = getLayers(main);
  if (failed(layers))
    return signalPassFailure();
  if (main.getNumArguments() != 1) {
    module.emitError() << "a model with one input is expected";
    return signalPassFailure();
  }
  for (const Layer &l : *layers)
    if (l.batchNorm && !isa<Conv2DOp, ConnectedOp>(l.head)) {
      l.head->emitError() << describeLayer(l.head)
                          << ": batch norm on an unexpected layer";
      return signalPassFailure();
    }
  rt::Rounding rounding;
  std::string roundingError;
  if (failed(getModuleRounding(module, rounding, roundingError))) {
    module.emitError() << roundingError;
    return signalPassFailure();
  }
  Flavor flavor = getFlavor(module);

  MLIRContext *ctx = &getContext();
  OpBuilder b(ctx);
  b.setInsertionPoint(main);
  // Which layer produces each value.
  llvm::DenseMap<Value, int64_t> producer;
  producer[main.getArgument(0)] = -1;
  for (const Layer &l : *layers)
    producer[l.output()] = l.index;

  SmallVector<Attribute> table;
  std::vector<func::FuncOp> funcs;
  for (const Layer &l : *layers) {
    // The device runtime indexes its layer table by Darknet index.
    if (l.index != (int64_t)funcs.size()) {
      l.head->emitError() << describeLayer(l.head)
                          << ": layer indices are not contiguous (expected "
                          << funcs.size() << ")";
      return signalPassFailure();
    }
    SmallVector<Value> ins = l.externalInputs();
    SmallVector<Type> argTypes;
    SmallVector<Converted> argInfo;
    SmallVector<int64_t> inputLayers;
    for (Value v : ins) {
      auto it = producer.find(v);
      if (it == producer.end()) {
        l.head->emitError()
            << describeLayer(l.head) << ": input not produced by a layer";
        return signalPassFailure();
      }
      inputLayers.push_back(it->second);
      Type el = getElementTypeOrSelf(v.getType());
      Converted c;
      if (auto q = dyn_cast<quant::UniformQuantizedType>(el)) {
        c.int8 = true, c.scale = (float)q.getScale(), c.zp = q.getZeroPoint();
        el = b.getI8Type();
      }
      argTypes.push_back(
          RankedTensorType::get(LayerLowering::nhwcShape(v), el));
      argInfo.push_back(c);
    }
    Value out = l.output();
    Type outEl = getElementTypeOrSelf(out.getType());
    auto outQ = dyn_cast<quant::UniformQuantizedType>(outEl);
    Type storeEl = outQ ? b.getI8Type() : outEl;
    auto outType =
        RankedTensorType::get(LayerLowering::nhwcShape(out), storeEl);
    std::string name = prefix + "_layer_" + std::to_string(l.index);
    auto fn = b.create<func::FuncOp>(l.head->getLoc(), name,
                                     b.getFunctionType(argTypes, {outType}));
    fn->setAttr("qsim.layer", b.getI64IntegerAttr(l.index));
    // Inputs are other layers' outputs, read by later layers too: never
    // written in place.
    for (unsigned i = 0; i < argTypes.size(); ++i)
      fn.setArgAttr(i, "bufferization.writable", b.getBoolAttr(false));
    Block *body = fn.addEntryBlock();
    OpBuilder fb = OpBuilder::atBlockEnd(body);
    LayerLowering lw(fb, l.head->getLoc(), rounding, flavor);
    llvm::DenseMap<Value, Converted> map;
    for (unsigned i = 0; i < ins.size(); ++i) {
      Converted c = argInfo[i];
      c.v = body->getArgument(i);
      map[ins[i]] = c;
    }
    try {
      for (Operation *op : l.ops) {
        SmallVector<Converted> cins;
        for (Value v : op->getOperands())
          cins.push_back(map.lookup(v));
        lw.b.setInsertionPointToEnd(body);
        lw.loc = op->getLoc();
        map[op->getResult(0)] = lw.lower(op, cins);
      }
    } catch (const LoweringError &e) {
      e.op->emitError() << describeLayer(l.head) << ": " << e.message;
      return signalPassFailure();
    }
    Value result = map.lookup(out).v;
    if (result.getType() != outType) {
      l.head->emitError() << describeLayer(l.head)
                          << ": internal error: lowered to " << result.getType()
                          << ", expected " << outType;
      return signalPassFailure();
    }
    fb.create<func::ReturnOp>(l.head->getLoc(), result);
    funcs.push_back(fn);

    auto shape = outType.getShape();
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
      d.push_back(
          b.getNamedAttr("classes", b.getI64IntegerAttr(y.getClasses())));
      d.push_back(b.getNamedAttr("num", b.getI64IntegerAttr(y.getNum())));
      d.push_back(b.getNamedAttr("mask", y.getMaskAttr()));
      d.push_back(b.getNamedAttr("anchors", y.getAnchorsAttr()));
      d.push_back(
          b.getNamedAttr("new_coords", b.getBoolAttr(y.getNewCoords())));
      d.push_back(b.getNamedAttr("nms_kind", b.getI64IntegerAttr(nms)));
      d.push_back(b.getNamedAttr("beta_nms", y.getBetaNmsAttr()));
    }
    table.push_back(b.getDictionaryAttr(d));
  }
  auto letterBox = module->getAttrOfType<BoolAttr>("qsim.letter_box");
  module->setAttr("qsim.codegen", b.getArrayAttr(table));
  module->setAttr(
      "qsim.codegen.input",
      b.getDictionaryAttr(
          {b.getNamedAttr("shape",
                          b.getDenseI64ArrayAttr(
                              LayerLowering::nhwcShape(main.getArgument(0)))),
           b.getNamedAttr("prefix", b.getStringAttr(prefix)),
           b.getNamedAttr("flavor", b.getStringAttr(stringifyFlavor(flavor))),
           b.getNamedAttr("letter_box",
                          b.getBoolAttr(letterBox && letterBox.getValue()))}));
  // The qsim function is gone; only the layer functions remain.
  main.erase();
}

} // namespace
