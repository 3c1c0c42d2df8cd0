//===- Passes.td - lowering and code generation passes ----*- tablegen -*-===//

#ifndef QSIM_CONVERSION_PASSES_TD
#define QSIM_CONVERSION_PASSES_TD

include "mlir/Pass/PassBase.td"

def LowerToTosaPass : Pass<"qsim-lower-to-tosa", "mlir::ModuleOp"> {
  let summary = "Lower a qsim model to TOSA, one function per Darknet layer";
  let description = [{
    Every layer becomes `<prefix>_layer_<N>`, a function from its inputs to
    its output in NHWC, float or int8 as the layer's precision. Weights are
    transposed to TOSA's layouts at compile time; int8 convolutions pad with
    the input zero point and fold the zero point into the bias; the integer
    requantization is `tosa.rescale` (rounding `tosa-double`) or the
    gemmlowp arithmetic as a `linalg.generic` (rounding `tflite`), bit for
    bit as the interpreter. The module keeps a `qsim.codegen` table (per
    layer: function, input layers, NHWC shape, element type, scale, zero
    point) for the runtime. Batch norms after convolutions must be folded
    (`--qsim-fold-batchnorm`, part of `--qsim-codegen-pipeline`).
  }];
  let options = [
    Option<"prefix", "prefix", "std::string", "\"model\"",
           "Prefix of the generated symbols">,
  ];
  let dependentDialects = ["::mlir::tosa::TosaDialect",
                           "::mlir::linalg::LinalgDialect",
                           "::mlir::tensor::TensorDialect",
                           "::mlir::arith::ArithDialect",
                           "::mlir::math::MathDialect"];
}

def PrepareConvsPass : Pass<"qsim-prepare-convs", "mlir::func::FuncOp"> {
  let summary = "Convolutions in the forms the vectorizer handles";
  let description = [{
    `linalg.conv_2d_nhwc_fhwc` (and `_q` with zero points 0) with a constant
    filter becomes `linalg.conv_2d_nhwc_hwcf` with the filter transposed at
    compile time; `linalg.depthwise_conv_2d_nhwc_hwcm` with multiplier 1
    becomes `linalg.depthwise_conv_2d_nhwc_hwc`. Those decompose into 1-D
    convolutions that `--qsim-tile-and-vectorize` turns into register-blocked
    vector code.
  }];
}

def FmaConvsPass : Pass<"qsim-fma-convs", "mlir::func::FuncOp"> {
  let summary = "f32 convolutions as register-tiled broadcast-FMA micro-kernels";
  let description = [{
    Rewrites f32 convolutions (`conv_2d_nhwc_fhwc` with a constant filter,
    static shapes, unit dilation) into a loop nest whose tiles of output
    columns x filter vectors keep their accumulators in registers over every
    tap and input channel: per channel, `vectors` weight vectors are loaded
    and each pixel's input value is broadcast into `vectors` FMAs. The
    filter is packed at compile time to [filter block][kh][kw][channel]
    [block] (filters padded to whole vectors with zeros; padded lanes are not
    stored). `lanes=0` leaves every convolution to
    `--qsim-tile-and-vectorize`.
  }];
  let options = [
    Option<"lanes", "lanes", "int", "0",
           "f32 lanes per vector register (16 AVX-512, 8 AVX2, 4 NEON; 0: off)">,
    Option<"registers", "registers", "int", "32",
           "Vector registers (32 AVX-512 and NEON, 16 AVX2)">,
  ];
  let dependentDialects = ["::mlir::scf::SCFDialect",
                           "::mlir::vector::VectorDialect"];
}

def DotProductConvsPass : Pass<"qsim-dot-product-convs", "mlir::func::FuncOp"> {
  let summary = "int8 convolutions as packed 8-bit dot-product micro-kernels";
  let description = [{
    Rewrites int8 convolutions (`conv_2d_nhwc_fhwc(_q)` with zero points 0,
    i8 x i8 -> i32, a constant filter, static shapes, input channels a
    multiple of 4, unit dilation) into a register-blocked loop nest whose
    multiply-accumulates are the target's packed 8-bit dot products: each
    32-bit lane adds the products of 4 consecutive input channels
    (`vpdpbusd` with AVX512-VNNI, `sdot` with the Armv8.2 dot-product
    extension). The filter is packed at compile time to
    [filter block][kh][kw][channel/4][block x 4], so a block's weights stream
    contiguously. `vpdpbusd` multiplies unsigned by signed bytes: the input is
    shifted by 128 (xor 0x80) and 128 x the sum of each filter's weights is
    subtracted from its accumulator, which is exact in wrapping 32-bit
    arithmetic. Convolutions that do not qualify, and every convolution with
    `isa=none`, are left to `--qsim-tile-and-vectorize`.
  }];
  let options = [
    Option<"isa", "isa", "::qsim::DotProductIsa", "::qsim::DotProductIsa::None",
           "Dot-product instructions",
           [{::llvm::cl::values(
             clEnumValN(::qsim::DotProductIsa::None, "none",
                        "leave convolutions alone"),
             clEnumValN(::qsim::DotProductIsa::Avx512Vnni, "avx512-vnni",
                        "x86 vpdpbusd"),
             clEnumValN(::qsim::DotProductIsa::NeonDotprod, "neon-dotprod",
                        "Armv8.2 sdot"))}]>,
  ];
  let dependentDialects = ["::mlir::scf::SCFDialect",
                           "::mlir::vector::VectorDialect",
                           "::mlir::linalg::LinalgDialect",
                           "::mlir::LLVM::LLVMDialect"];
}

def TileAndVectorizePass : Pass<"qsim-tile-and-vectorize", "mlir::func::FuncOp"> {
  let summary = "Tile and vectorize convolutions, matmuls and elementwise ops";
  let description = [{
    Convolutions are tiled to 1 output row x `ow` output columns x `f`
    filters x 1 filter tap (x `c` input channels), the tile sizes dividing
    the (static) dimensions, decomposed to 1-D convolutions and vectorized
    (broadcast-FMA/MLA micro-kernels); matmuls and elementwise generics are
    tiled along their innermost dimension and vectorized. Vector contractions
    are lowered to outer products.
  }];
  let options = [
    Option<"vectorWidth", "vector-width", "int", "16",
           "Elements per filter tile (a multiple of the SIMD width)">,
    Option<"pixelTile", "pixel-tile", "int", "8", "Output columns per tile">,
  ];
  let dependentDialects = ["::mlir::scf::SCFDialect",
                           "::mlir::vector::VectorDialect",
                           "::mlir::affine::AffineDialect"];
}

def ScratchToArenaPass : Pass<"qsim-scratch-to-arena", "mlir::ModuleOp"> {
  let summary = "Temporary buffers of the layer functions into a scratch argument";
  let description = [{
    After bufferization: every `memref.alloc` of a layer function becomes a
    view into a new trailing `scratch` argument (64-byte aligned offsets;
    its size is recorded as `qsim.scratch_bytes`), deallocations are
    removed. The generated code never calls malloc.
  }];
}

def SplitLayersPass : Pass<"qsim-split-layers", "mlir::ModuleOp"> {
  let summary = "Each layer's work in `parts` disjoint pieces (threads)";
  let description = [{
    After `qsim-scratch-to-arena`: every layer function gets two more
    arguments, `part` and `parts` (index), and computes only its share of the
    output, so that the device runtime can run part 0..parts-1 of a layer on
    as many threads at once (each part with its own scratch buffer).

    A layer is split when its output is the final copy of one scratch buffer
    and the loops just before that copy (the trailing top-level `scf.for`
    loops, lower bound 0 and step 1, same trip count T) only touch the
    buffers they write at an index block `iv * k + c` (0 <= c, c plus the
    vector extent <= k) of one common dimension: iterations then own
    disjoint blocks, so part p runs iterations [T*p/parts, T*(p+1)/parts)
    and copies only those blocks into the output. Everything before those
    loops (padded input copies, bias fills, input transforms) runs whole in
    every part, on its own scratch. Each output element is computed by the
    same code in the same order as with one part: the result is bit-exact.
    Every other layer runs in part 0 only (`qsim.parallel = false`).
  }];
  let dependentDialects = ["::mlir::scf::SCFDialect",
                           "::mlir::memref::MemRefDialect",
                           "::mlir::arith::ArithDialect",
                           "::mlir::linalg::LinalgDialect"];
}

def BuildStepFunctionPass : Pass<"qsim-build-step-function", "mlir::ModuleOp"> {
  let summary = "The device entry: run one layer on the arena";
  let description = [{
    Creates `<prefix>_run_layer(arena, scratch, layer, part, parts)`, which
    runs part `part` of `parts` (see `qsim-split-layers`) of layer `layer`
    with its inputs and output at their compile-time offsets in the arena
    (the network input first, then every layer's output, 64-byte aligned),
    and records the layout in `qsim.codegen` (`offset`, `bytes`,
    `overwritten_by`) and the arena and scratch sizes on the module.

    With `reuse-buffers` (run-only memory), a layer's output takes the place
    of outputs that no later layer reads (first fit, in layer order); the
    network's outputs (layers nothing reads, detection heads, the last layer)
    are never overwritten. Stepping still works, but an earlier layer's output
    is gone once `overwritten_by` has run (the device runtime then gives no
    data for it).
  }];
  let options = [
    Option<"reuseBuffers", "reuse-buffers", "bool", /*default=*/"false",
           "Outputs no later layer reads share memory (run-only)">
  ];
  let dependentDialects = ["::mlir::scf::SCFDialect",
                           "::mlir::memref::MemRefDialect",
                           "::mlir::arith::ArithDialect",
                           "::mlir::LLVM::LLVMDialect"];
}

#endif
