//===- QSimInterfaces.td - the layer interface -------------*- tablegen -*-===//

#ifndef QSIM_INTERFACES_TD
#define QSIM_INTERFACES_TD

include "mlir/IR/OpBase.td"

def QSim_LayerOpInterface : OpInterface<"LayerOpInterface"> {
  let cppNamespace = "::qsim";
  let description = [{
    Implemented by every qsim op: what Darknet calls the layer, its output
    shape as Darknet computes it, and the costs Darknet prints for it.
  }];
  let methods = [
    InterfaceMethod<"Darknet cfg section name of this layer kind.",
      "::llvm::StringRef", "getDarknetSection", (ins)>,
    InterfaceMethod<[{
        Output shape [1, C, H, W] from the operand shapes and attributes, by
        Darknet's formulas; emits an error and fails when they are invalid.
      }],
      "::mlir::FailureOr<::llvm::SmallVector<int64_t, 4>>",
      "inferOutputShape", (ins)>,
    InterfaceMethod<"Multiply-accumulates of one forward pass.",
      "int64_t", "getMACs", (ins), [{}], [{ return 0; }]>,
    InterfaceMethod<[{
        The figure Darknet prints as this layer's BFLOPs (AlexeyAB's
        `l.bflops`); 0 where Darknet prints none.
      }],
      "double", "getBFLOPs", (ins), [{}], [{ return 0.0; }]>,
    InterfaceMethod<"Number of trained parameters (weights, biases, BN).",
      "int64_t", "getParameterCount", (ins), [{}], [{ return 0; }]>,
    InterfaceMethod<[{
        Whether the layer has an integer-only int8 form (interpreter kernels
        and lowering): weighted layers and shortcuts by their activation
        (`qsim::hasInt8Activation`; a convolution followed by its unfolded
        batch norm is judged by the batch norm's activation, which folding
        moves onto it), data movement always, upsampling only by an integer
        stride with scale 1; heads, normalisation and the smooth
        activations never.
      }],
      "bool", "hasInt8Form", (ins), [{}], [{ return false; }]>,
  ];
  let verify = [{ return ::qsim::detail::verifyLayerOp($_op); }];
}

#endif // QSIM_INTERFACES_TD
