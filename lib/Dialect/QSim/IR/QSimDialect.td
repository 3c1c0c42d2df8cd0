//===- QSimDialect.td - the qsim dialect -------------------*- tablegen -*-===//
//
// One op per Darknet layer kind. Tensors are rank 4, NCHW with N = 1, as in
// Darknet's own buffers (index = c*H*W + y*W + x).
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_DIALECT_TD
#define QSIM_DIALECT_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/EnumAttr.td"

def QSim_Dialect : Dialect {
  let name = "qsim";
  let cppNamespace = "::qsim";
  let summary = "Darknet layers as MLIR operations";
  let description = [{
    The qsim dialect models a Darknet network: every Darknet layer kind is an
    operation whose attributes are the cfg keys that matter at inference and
    whose weights are `ElementsAttr`s (dense resource blobs for real weights).
    Tensors are `tensor<1xCxHxW>` in Darknet's CHW layout. Quantized layers
    carry `!quant.uniform` element types; the precision plan is recorded in the
    discardable attributes `qsim.precision` and `qsim.precision_reason`.

    A *layer* is one operation, except that a convolution or connected op
    without a bias followed by its `qsim.batchnorm` is one Darknet layer with
    `batch_normalize=1`; `quant.qcast`/`quant.dcast` belong to the layer that
    consumes them. Layer indices (as `qsim-opt --qsim-print-stats`,
    `qsim-run` and the exporter count them) follow from that rule.
  }];
  let useDefaultAttributePrinterParser = 1;
  // Inherent attributes are stored by name, not as positional properties, so
  // that models saved as bytecode keep loading when ops gain attributes.
  let usePropertiesForAttributes = 0;
  let dependentDialects = ["::mlir::quant::QuantizationDialect"];
  // The attributes qsim attaches to ops it does not own (the module, func
  // arguments and functions, its own ops' discardable annotations). Each
  // is checked by verifyOperationAttribute / verifyRegionArgAttribute
  // (DiscardableAttrs.cpp); an unknown `qsim.` attribute is an error.
  let discardableAttrs = (ins
    // module: the Darknet flavour, "alexeyab" or "pjreddie".
    "::mlir::StringAttr":$flavor,
    // module: the cfg's [net] letter_box=1.
    "::mlir::BoolAttr":$letter_box,
    // module: [net] keys kept for export; the cfg file imported.
    "::mlir::DictionaryAttr":$net,
    "::mlir::StringAttr":$source,
    // module: the .weights header (major, minor, revision, seen).
    "::mlir::DenseI64ArrayAttr":$weights_header,
    // module: the trailing [cost] sections (training loss, no inference
    // effect), one dictionary of keys each, kept for export.
    "::mlir::ArrayAttr":$cost,
    // module: the trailing [contrastive] sections (training only: Darknet
    // returns before writing their output at inference), kept for export.
    "::mlir::ArrayAttr":$contrastive,
    // module: how --qsim-quantize quantized (weights, activations, scale,
    // accumulator, rounding); present once quantized.
    "::mlir::DictionaryAttr":$quantization,
    // module: where qsim-train left it (step, steps, seed): a checkpoint
    // resumes from there.
    "::mlir::DictionaryAttr":$training,
    // layer: cfg keys without an inference meaning, kept for export.
    "::mlir::DictionaryAttr":$cfg,
    // layer: the layer this one was derived from (factorization, backbone).
    "::mlir::StringAttr":$origin,
    // qsim.maxpool (size 1, padding 0): the subsampling of a [shortcut]'s
    // larger from= layer (pjreddie's strided shortcut, docs/darknet.md
    // §R4.7), part of that [shortcut]; the exporter writes no section for
    // it and the shortcut's from= names the maxpool's input.
    "::mlir::UnitAttr":$shortcut_subsample,
    // the ops of one [crnn] layer (docs/darknet.md §R4.22), by role:
    // "input", "self" and "output" on its three qsim.conv2d, "zero" on the
    // qsim.upsample (scale 0) that gives self the zero state, "state" on the
    // qsim.shortcut that adds input and self; the exporter writes them as
    // one [crnn] section.
    "::mlir::StringAttr":$crnn,
    // value producer or network input: the calibrated range
    // {method, min, max, lo, hi, images[, percentile]}.
    "::mlir::DictionaryAttr":$calib,
    // layer: the planned precision ("fp32", "fp16", "int8") and why.
    "::mlir::StringAttr":$precision,
    "::mlir::StringAttr":$precision_reason,
    // conv2d/connected with a folded batch norm: the batch norm's
    // per-channel output distribution {mean = beta, std = |gamma|} (the
    // pre-activation output is N(beta, gamma^2) on the data it was trained
    // on), kept by --qsim-fold-batchnorm for analytic bias correction.
    // Passes that change the layer's output channels or function drop or
    // rescale it (verified: one value per output channel, std >= 0).
    "::mlir::DictionaryAttr":$bn_stats,
    // layer: the fraction of zero weights after magnitude pruning.
    "::mlir::FloatAttr":$sparsity,
    // code generation: the target, the per-layer function table, a layer
    // function's index and scratch bytes; whether qsim-split-layers split
    // its work between threads, and how (trips, dimension, block).
    "::mlir::DictionaryAttr":$target,
    "::mlir::ArrayAttr":$codegen,
    "::mlir::IntegerAttr":$layer,
    "::mlir::IntegerAttr":$scratch_bytes,
    "::mlir::BoolAttr":$parallel,
    "::mlir::DenseI64ArrayAttr":$split
  );
  let hasOperationAttrVerify = 1;
  let hasRegionArgAttrVerify = 1;
  let extraClassDeclaration = [{
    /// Name of the module attribute holding the Darknet flavour.
    static llvm::StringRef getFlavorAttrName() {
      return FlavorAttrHelper::getNameStr();
    }
  }];
}

class QSim_Attr<string name, string attrMnemonic, list<Trait> traits = []>
    : AttrDef<QSim_Dialect, name, traits> {
  let mnemonic = attrMnemonic;
}

#endif // QSIM_DIALECT_TD
