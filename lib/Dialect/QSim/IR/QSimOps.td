//===- QSimOps.td - qsim operations ------------------------*- tablegen -*-===//
//
// One operation per Darknet layer kind (docs/darknet.md §R1.2). Attribute
// names are the cfg keys; defaults are Darknet's. Every op verifies its
// attributes and the result shape against Darknet's shape formula
// (docs/darknet.md §R3), and its diagnostics name the Darknet layer
// ("layer 12 (route): ...").
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_OPS_TD
#define QSIM_OPS_TD

include "QSimDialect.td"
include "QSimAttrs.td"
include "QSimInterfaces.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/IR/BuiltinAttributeInterfaces.td"

// NCHW tensors with N = 1; element type f32, f16 or a quantized type.
def QSim_Tensor : TensorRankOf<[AnyType], [4]>;

// `overrides` lists the methods of the layer interface with a default that
// this op overrides (costs, hasInt8Form).
class QSim_Op<string mnemonic, list<Trait> traits = [],
              list<string> overrides = []>
    : Op<QSim_Dialect, mnemonic,
         !listconcat(traits, [Pure,
           DeclareOpInterfaceMethods<QSim_LayerOpInterface, overrides>])>;

defvar AllCosts = ["getMACs", "getBFLOPs", "getParameterCount"];
defvar Int8Form = ["hasInt8Form"];

class QSim_UnaryOp<string mnemonic, list<Trait> traits = [],
                   list<string> overrides = []>
    : QSim_Op<mnemonic, traits, overrides> {
  let results = (outs QSim_Tensor:$output);
  let assemblyFormat = [{
    $input attr-dict `:` type($input) `->` type($output)
  }];
}

//===----------------------------------------------------------------------===//
// Weighted layers
//===----------------------------------------------------------------------===//

def QSim_Conv2DOp : QSim_UnaryOp<"conv2d", [], !listconcat(AllCosts, Int8Form)> {
  let hasVerifier = 1;
  let summary = "[convolutional]: grouped, strided, dilated 2-D convolution";
  let description = [{
    `out[f][oy][ox] = sum_{ci,ky,kx} weight[f][ci][ky][kx] *
    in[g*Cg + ci][oy*sy - py*d + ky*d][ox*sx - px*d + kx*d] (+ bias[f])`,
    then `activation`, taps outside the input reading zero. `size` is
    [kh, kw] (Darknet's square `size`, or k×1 / 1×k after factorization),
    `padding` the zero padding per side [py, px] (cfg `pad=1` means size/2).
    The output size is Darknet's `(in + 2p - k)/s + 1`, dilation not included
    (AlexeyAB's formula). A Darknet layer with `batch_normalize=1` is this op
    without `bias` followed by `qsim.batchnorm`.

    `weight` is [filters, C/groups, kh, kw] (Darknet's file order), `bias`
    [filters]. Both may be absent in a shape-only model.

    Quantized form (after `--qsim-quantize`): input and result have
    `!quant.uniform<i8:f32, s:zp>` element types, `weight` holds int8 values
    whose (per-axis) quantization is `weight_quant`, `bias` holds int32
    values in units of input_scale * weight_scale[f], and `multiplier`/`shift`
    are the fixed-point requantization constants per output channel
    (M[f] = s_in * s_w[f] / s_out = multiplier * 2^-shift). A leaky layer
    has a second pair `neg_multiplier`/`neg_shift` (0.1 * M) used for
    negative accumulators; relu/relu6 clamp in the integer domain.
    `accumulator_bits = 16` simulates a saturating 16-bit accumulator.
    docs/quantization.md gives the exact arithmetic.

    `xnor` (Darknet's `xnor=1`, float only): the input is binarized to
    +1/-1 (`x > 0`) and each filter's weights to +/-mean|w| of that filter
    before the convolution (docs/darknet.md §R4.16); `weight` keeps the
    real-valued weights of the file.
  }];
  let arguments = (ins QSim_Tensor:$input,
      QSim_I64Attr:$filters,
      DenseI64ArrayAttr:$size,
      DenseI64ArrayAttr:$stride,
      DenseI64ArrayAttr:$padding,
      DefaultValuedAttr<QSim_I64Attr, "1">:$groups,
      DefaultValuedAttr<QSim_I64Attr, "1">:$dilation,
      QSim_ActivationAttr:$activation,
      OptionalAttr<ElementsAttr>:$weight,
      OptionalAttr<ElementsAttr>:$bias,
      OptionalAttr<TypeAttr>:$weight_quant,
      OptionalAttr<DenseI32ArrayAttr>:$multiplier,
      OptionalAttr<DenseI32ArrayAttr>:$shift,
      OptionalAttr<DenseI32ArrayAttr>:$neg_multiplier,
      OptionalAttr<DenseI32ArrayAttr>:$neg_shift,
      OptionalAttr<QSim_I64Attr>:$accumulator_bits,
      DefaultValuedAttr<BoolAttr, "false">:$xnor);
  let extraClassDeclaration = [{
    int64_t getKernelH() { return getSize()[0]; }
    int64_t getKernelW() { return getSize()[1]; }
    int64_t getInputChannels();
    bool isDepthwise();
  }];
}

def QSim_ConnectedOp : QSim_UnaryOp<"connected", [], !listconcat(AllCosts, Int8Form)> {
  let hasVerifier = 1;
  let summary = "[connected]: fully connected layer over the flattened input";
  let description = [{
    `out[o] = sum_i weight[o][i] * flat(in)[i] (+ bias[o])`, then
    `activation`; result shape [1, output, 1, 1]. With `batch_normalize=1`
    Darknet's layer is this op without bias followed by `qsim.batchnorm`.
  }];
  let arguments = (ins QSim_Tensor:$input,
      QSim_I64Attr:$output_size,
      QSim_ActivationAttr:$activation,
      OptionalAttr<ElementsAttr>:$weight,
      OptionalAttr<ElementsAttr>:$bias,
      OptionalAttr<TypeAttr>:$weight_quant,
      OptionalAttr<DenseI32ArrayAttr>:$multiplier,
      OptionalAttr<DenseI32ArrayAttr>:$shift,
      OptionalAttr<DenseI32ArrayAttr>:$neg_multiplier,
      OptionalAttr<DenseI32ArrayAttr>:$neg_shift,
      OptionalAttr<QSim_I64Attr>:$accumulator_bits);
}

def QSim_BatchNormOp : QSim_UnaryOp<"batchnorm", [], ["getParameterCount"]> {
  let hasVerifier = 1;
  let summary = "batch normalization with rolling statistics, then activation";
  let description = [{
    `y = (x - mean[c]) / sd[c] * scale[c] + bias[c]`, then `activation`, with
    `sd = sqrt(variance + 1e-5)` (AlexeyAB) or `sqrt(variance) + 1e-6`
    (pjreddie) according to the module's `qsim.flavor`. Without `standalone`
    it is the second half of a `batch_normalize=1` conv/connected layer and
    must directly follow a conv2d/connected op with no bias, linear
    activation and no other user; with `standalone` it is Darknet's own
    `[batchnorm]` layer.
  }];
  let arguments = (ins QSim_Tensor:$input,
      QSim_ActivationAttr:$activation,
      DefaultValuedAttr<BoolAttr, "false">:$standalone,
      OptionalAttr<ElementsAttr>:$scale,
      OptionalAttr<ElementsAttr>:$mean,
      OptionalAttr<ElementsAttr>:$variance,
      OptionalAttr<ElementsAttr>:$bias);
}

//===----------------------------------------------------------------------===//
// Element-wise, pooling and data movement
//===----------------------------------------------------------------------===//

def QSim_ActivationOp : QSim_UnaryOp<"activation"> {
  let summary = "[activation]: an activation function on its own";
  let arguments = (ins QSim_Tensor:$input, QSim_ActivationAttr:$activation);
}

def QSim_MaxPoolOp : QSim_UnaryOp<"maxpool", [], ["getBFLOPs", "hasInt8Form"]> {
  let summary = "[maxpool] with Darknet's asymmetric padding";
  let description = [{
    Window for output (oy, ox) starts at (oy*sy - padding/2, ox*sx - padding/2)
    and spans size×size; out-of-range taps never win. `padding` is Darknet's
    *total* padding (default size-1). Output `(in + padding - size)/s + 1`.
  }];
  let arguments = (ins QSim_Tensor:$input,
      QSim_I64Attr:$size,
      DenseI64ArrayAttr:$stride,
      QSim_I64Attr:$padding);
}

def QSim_AvgPoolOp : QSim_UnaryOp<"avgpool"> {
  let summary = "[avgpool]: global average pooling to 1×1";
  let arguments = (ins QSim_Tensor:$input);
}

def QSim_RouteOp : QSim_Op<"route", [], Int8Form> {
  let summary = "[route]: channel concatenation, optionally of channel slices";
  let description = [{
    Concatenates its inputs along channels in order. With `groups = G` and
    `group_id = j`, each input contributes only channels
    [j*C_i/G, (j+1)*C_i/G) (AlexeyAB).

    Quantized form: each input is requantized to the result's scale and
    zero point with `input_multiplier[i]`/`input_shift[i]` (an exact copy
    when the parameters are equal).
  }];
  let arguments = (ins Variadic<QSim_Tensor>:$inputs,
      DefaultValuedAttr<QSim_I64Attr, "1">:$groups,
      DefaultValuedAttr<QSim_I64Attr, "0">:$group_id,
      OptionalAttr<DenseI32ArrayAttr>:$input_multiplier,
      OptionalAttr<DenseI32ArrayAttr>:$input_shift);
  let results = (outs QSim_Tensor:$output);
  let assemblyFormat = [{
    $inputs attr-dict `:` functional-type($inputs, $output)
  }];
}

def QSim_ShortcutOp : QSim_Op<"shortcut", [], ["getBFLOPs", "hasInt8Form"]> {
  let summary = "[shortcut]: residual addition, then activation";
  let description = [{
    `out = inputs[0] + sum_{l>0} inputs[l]` (inputs[0] is the previous layer,
    the rest are the `from=` layers, in order), then `activation`. Output has
    the shape of inputs[0]; when channel counts differ only the first
    min(C, C_l) channels are added (AlexeyAB).

    Quantized form: each input i, minus its zero point, is scaled to the
    result's scale with 16 extra fractional bits by
    `input_multiplier[i]`/`input_shift[i]` (M_i = 2^16 * s_i / s_out); the
    sum gets the activation (leaky: `neg_multiplier`/`neg_shift` = 0.1), is
    divided by 2^16 rounding half away from zero, offset by the result's
    zero point and saturated.
  }];
  let arguments = (ins Variadic<QSim_Tensor>:$inputs,
      QSim_ActivationAttr:$activation,
      OptionalAttr<DenseI32ArrayAttr>:$input_multiplier,
      OptionalAttr<DenseI32ArrayAttr>:$input_shift,
      OptionalAttr<DenseI32ArrayAttr>:$neg_multiplier,
      OptionalAttr<DenseI32ArrayAttr>:$neg_shift);
  let results = (outs QSim_Tensor:$output);
  let assemblyFormat = [{
    $inputs attr-dict `:` functional-type($inputs, $output)
  }];
}

def QSim_UpsampleOp : QSim_UnaryOp<"upsample", [], Int8Form> {
  let summary = "[upsample]: nearest-neighbour up (or summing down) sampling";
  let description = [{
    stride > 0: `out[c][y][x] = scale * in[c][y/s][x/s]`. stride < 0 (Darknet's
    downsample): `out = scale * sum` of each |s|×|s| block.
  }];
  let arguments = (ins QSim_Tensor:$input,
      QSim_I64Attr:$stride,
      DefaultValuedAttr<F32Attr, "1.0f">:$scale);
}

def QSim_ReorgOp : QSim_UnaryOp<"reorg", [], Int8Form> {
  let summary = "[reorg]: Darknet's own space-to-depth index scheme";
  let description = [{
    Darknet's YOLOv2 reorg, not a plain space-to-depth (docs/darknet.md
    §R4.9). With the input dims (w, h, c), s = `stride` and C' = c/s², for
    every k < c, j < h, i < w: c2 = k mod C', o = k div C',
    `A = i + w*(j + h*k)` and
    `B = (i*s + o mod s) + w*s*((j*s + o div s) + h*s*c2)`; reverse=0
    gathers `out[A] = in[B]`, reverse=1 scatters `out[B] = in[A]` (a true
    depth-to-space).
  }];
  let arguments = (ins QSim_Tensor:$input,
      QSim_I64Attr:$stride,
      DefaultValuedAttr<BoolAttr, "false">:$reverse);
}

def QSim_CropOp : QSim_UnaryOp<"crop"> {
  let summary = "[crop]: Darknet's centred crop at inference, then scale and shift";
  let description = [{
    Darknet's crop layer with training off (docs/darknet.md §R4.14): the
    `crop_height`×`crop_width` window centred at
    `dy = (H - crop_height)/2`, `dx = (W - crop_width)/2` (C division),
    `out[c][y][x] = in[c][y + dy][x + dx] * scale + shift`. Darknet uses
    scale 2 and shift -1 (inputs in [0, 1] to [-1, 1]), or 1 and 0 with
    `noadjust=1`. The crop must fit in the input.
  }];
  let arguments = (ins QSim_Tensor:$input,
      QSim_I64Attr:$crop_height,
      QSim_I64Attr:$crop_width,
      DefaultValuedAttr<F32Attr, "2.0f">:$scale,
      DefaultValuedAttr<F32Attr, "-1.0f">:$shift);
}

def QSim_ScaleChannelsOp : QSim_Op<"scale_channels"> {
  let summary = "[scale_channels]: multiply a feature map by per-channel scales";
  let description = [{
    `scales` is the previous layer (1×1×C, or W×H×1 with scale_wh),
    `features` the `from=` layer. `out[c][y][x] = scales[c] * features[c][y][x]`
    (or `scales[y][x]` with scale_wh), then `activation`.
  }];
  let arguments = (ins QSim_Tensor:$scales, QSim_Tensor:$features,
      DefaultValuedAttr<BoolAttr, "false">:$scale_wh,
      QSim_ActivationAttr:$activation);
  let results = (outs QSim_Tensor:$output);
  let assemblyFormat = [{
    $scales `,` $features attr-dict `:` functional-type(operands, $output)
  }];
}

def QSim_SoftmaxOp : QSim_UnaryOp<"softmax"> {
  let summary = "[softmax] over `groups` contiguous blocks of the flat input";
  let arguments = (ins QSim_Tensor:$input,
      DefaultValuedAttr<QSim_I64Attr, "1">:$groups,
      DefaultValuedAttr<F32Attr, "1.0f">:$temperature);
}

def QSim_DropoutOp : QSim_UnaryOp<"dropout", [], Int8Form> {
  let summary = "[dropout]: identity at inference";
  let arguments = (ins QSim_Tensor:$input,
      DefaultValuedAttr<F32Attr, "0.2f">:$probability);
}

//===----------------------------------------------------------------------===//
// Detection heads
//===----------------------------------------------------------------------===//

def QSim_YoloOp : QSim_UnaryOp<"yolo"> {
  let hasVerifier = 1;
  let summary = "[yolo]: YOLOv3/v4 detection head";
  let description = [{
    Input: n = len(mask) blocks of (5 + classes) channels
    [tx, ty, tw, th, obj, cls...]. Output (same shape): logistic on tx, ty,
    obj and classes (none with new_coords), then
    `t = t * scale_x_y - (scale_x_y - 1)/2` on tx, ty. Box decoding and NMS
    (`nms_kind`, `beta_nms`) happen after the forward pass. `anchors` are
    (w, h) pairs in network-input pixels; `num` is the total anchor count.
  }];
  let arguments = (ins QSim_Tensor:$input,
      QSim_I64Attr:$classes,
      QSim_I64Attr:$num,
      DenseI64ArrayAttr:$mask,
      DenseF32ArrayAttr:$anchors,
      DefaultValuedAttr<F32Attr, "1.0f">:$scale_x_y,
      DefaultValuedAttr<BoolAttr, "false">:$new_coords,
      DefaultValuedAttr<QSim_NmsKindAttr, "::qsim::NmsKind::default_nms">:$nms_kind,
      DefaultValuedAttr<F32Attr, "0.6f">:$beta_nms);
}

def QSim_RegionOp : QSim_UnaryOp<"region"> {
  let hasVerifier = 1;
  let summary = "[region]: YOLOv2 detection head";
  let description = [{
    `num` anchors (w, h pairs in grid cells), each with coords + 1 + classes
    channels. Output as Darknet's flavour leaves it (docs/darknet.md §R4.11):
    AlexeyAB transposes to HWC and applies logistic to objectness (and softmax
    to classes); pjreddie keeps CHW with logistic on x, y, objectness.
  }];
  let arguments = (ins QSim_Tensor:$input,
      QSim_I64Attr:$classes,
      DefaultValuedAttr<QSim_I64Attr, "4">:$coords,
      QSim_I64Attr:$num,
      DenseF32ArrayAttr:$anchors,
      DefaultValuedAttr<BoolAttr, "false">:$softmax,
      DefaultValuedAttr<QSim_I64Attr, "0">:$classfix);
}

//===----------------------------------------------------------------------===//
// Layers of the Darknet zoo (docs/darknet.md §R4.16-§R4.21); float only
//===----------------------------------------------------------------------===//

def QSim_LocalOp : QSim_UnaryOp<"local", [], AllCosts> {
  let hasVerifier = 1;
  let summary = "[local]: locally connected layer (unshared weights per position)";
  let description = [{
    Darknet's `[local]` (docs/darknet.md §R4.16): a convolution whose filters
    differ at every output position p = oy*out_w + ox:
    `out[f][p] = bias[f][p] + sum_{c,ky,kx} weight[p][f][c][ky][kx] *
    in[c][oy*stride - pad + ky][ox*stride - pad + kx]`, then `activation`.
    `pad` is Darknet's flag (0 or 1: one pixel); the output is
    `(in - size)/stride + 1` without, `(in - 1)/stride + 1` with it.
    `weight` is [out_h*out_w, filters, C, size, size], `bias`
    [filters, out_h, out_w] (Darknet's file order).
  }];
  let arguments = (ins QSim_Tensor:$input,
      QSim_I64Attr:$filters,
      QSim_I64Attr:$size,
      QSim_I64Attr:$stride,
      QSim_I64Attr:$pad,
      QSim_ActivationAttr:$activation,
      OptionalAttr<ElementsAttr>:$weight,
      OptionalAttr<ElementsAttr>:$bias);
}

def QSim_LocalAvgPoolOp : QSim_UnaryOp<"local_avgpool", [], ["getBFLOPs"]> {
  let summary = "[local_avgpool]: windowed average pooling (AlexeyAB)";
  let description = [{
    The windows of `qsim.maxpool` (start `oy*sy - padding/2`, size×size,
    `padding` the total padding, default size-1); the output is the sum of
    the taps inside the input divided by their number (padding excluded).
  }];
  let arguments = (ins QSim_Tensor:$input,
      QSim_I64Attr:$size,
      DenseI64ArrayAttr:$stride,
      QSim_I64Attr:$padding);
}

def QSim_Reorg3dOp : QSim_UnaryOp<"reorg3d"> {
  let summary = "[reorg3d]: AlexeyAB's space-to-depth (reverse: its inverse mapping)";
  let description = [{
    docs/darknet.md §R4.18. reverse=0: a true space-to-depth,
    `out[o*C + c][j][i] = in[c][j*s + o/s][i*s + o%s]` (output C*s²×H/s×W/s).
    reverse=1: Darknet's index mapping R(W*s, H*s, C/s², s) on the output
    dims with a scatter (output C/s²×H*s×W*s; C must be a multiple of s⁴).
  }];
  let arguments = (ins QSim_Tensor:$input,
      QSim_I64Attr:$stride,
      DefaultValuedAttr<BoolAttr, "false">:$reverse);
}

def QSim_SamOp : QSim_Op<"sam"> {
  let summary = "[sam]: elementwise multiplication with the `from` layer (AlexeyAB)";
  let description = [{
    `out[i] = input[i] * features[i]` over tensors of the same shape
    (`input` is the previous layer, `features` the `from=` layer), then
    `activation`.
  }];
  let arguments = (ins QSim_Tensor:$input, QSim_Tensor:$features,
      QSim_ActivationAttr:$activation);
  let results = (outs QSim_Tensor:$output);
  let assemblyFormat = [{
    $input `,` $features attr-dict `:` functional-type(operands, $output)
  }];
}

def QSim_DetectionOp : QSim_UnaryOp<"detection"> {
  let hasVerifier = 1;
  let summary = "[detection]: YOLOv1 head";
  let description = [{
    The input is the flat vector of side²·((1 + coords)·num + classes)
    values (docs/darknet.md §R4.17): side² class-probability blocks of
    `classes` values, then side²·num confidences, then side²·num boxes of
    `coords` values. The output is the input, with a softmax over each
    cell's classes when `softmax`; decoding (with `sqrt`) happens after the
    forward pass.
  }];
  let arguments = (ins QSim_Tensor:$input,
      QSim_I64Attr:$classes,
      DefaultValuedAttr<QSim_I64Attr, "1">:$coords,
      DefaultValuedAttr<QSim_I64Attr, "1">:$num,
      DefaultValuedAttr<QSim_I64Attr, "7">:$side,
      DefaultValuedAttr<BoolAttr, "false">:$softmax,
      DefaultValuedAttr<BoolAttr, "false">:$sqrt);
}

def QSim_GaussianYoloOp : QSim_UnaryOp<"gaussian_yolo"> {
  let hasVerifier = 1;
  let summary = "[Gaussian_yolo]: YOLOv3 head with an uncertainty per box coordinate";
  let description = [{
    n = len(mask) blocks of (9 + classes) channels [mu_x, sigma_x, mu_y,
    sigma_y, mu_w, sigma_w, mu_h, sigma_h, obj, cls...] (docs/darknet.md
    §R4.20). Output: logistic on all but mu_w and mu_h, then
    `t = t * scale_x_y - (scale_x_y - 1)/2` on mu_x and mu_y.
  }];
  let arguments = (ins QSim_Tensor:$input,
      QSim_I64Attr:$classes,
      QSim_I64Attr:$num,
      DenseI64ArrayAttr:$mask,
      DenseF32ArrayAttr:$anchors,
      DefaultValuedAttr<F32Attr, "1.0f">:$scale_x_y);
}

#endif // QSIM_OPS_TD
