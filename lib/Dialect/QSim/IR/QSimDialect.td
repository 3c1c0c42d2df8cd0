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
  let extraClassDeclaration = [{
    /// Name of the module attribute holding the Darknet flavour.
    static llvm::StringRef getFlavorAttrName() { return "qsim.flavor"; }
  }];
}

class QSim_Attr<string name, string attrMnemonic, list<Trait> traits = []>
    : AttrDef<QSim_Dialect, name, traits> {
  let mnemonic = attrMnemonic;
}

#endif // QSIM_DIALECT_TD
