// RUN: qsim-opt %s -split-input-file --pass-pipeline="builtin.module(func.func(qsim-dot-product-convs{isa=avx512-vnni}))" | FileCheck %s --check-prefix=VNNI
// RUN: qsim-opt %s -split-input-file --pass-pipeline="builtin.module(func.func(qsim-dot-product-convs{isa=neon-dotprod}))" | FileCheck %s --check-prefix=SDOT
// RUN: qsim-opt %s -split-input-file --pass-pipeline="builtin.module(func.func(qsim-dot-product-convs))" | FileCheck %s --check-prefix=NONE

// A 3x3 int8 convolution, 8 channels (2 groups of 4), 32 filters.
// With avx512-vnni, 16 lanes, tile 8 columns x 2 vectors: one block of 32 filters,
// packed [block][kh][kw][group][32 x 4 bytes]; the input is shifted to
// unsigned (xor 0x80) and each filter's accumulator starts 128 x its weight
// sum (72 weights of 1) lower.
// VNNI-LABEL: func.func @conv3x3
// VNNI-DAG: arith.constant dense<1> : tensor<1x3x3x2x128xi8>
// VNNI-DAG: arith.constant dense<-9216> : tensor<32xi32>
// VNNI: linalg.generic
// VNNI: arith.xori %{{.*}}, %c-128_i8 : i8
// VNNI: scf.for
// VNNI: vector.transfer_read %{{.*}} {in_bounds = [true]} : tensor<1x4x8x32xi32>, vector<16xi32>
// VNNI: arith.addi {{.*}} : vector<16xi32>
// VNNI: vector.transfer_read {{.*}} : tensor<1x3x3x2x128xi8>, vector<64xi8>
// VNNI: vector.bitcast {{.*}} : vector<64xi8> to vector<16xi32>
// VNNI: vector.transfer_read {{.*}} : tensor<1x6x10x8xi8>, vector<4xi8>
// VNNI: vector.broadcast {{.*}} : i32 to vector<16xi32>
// VNNI: llvm.call_intrinsic "llvm.x86.avx512.vpdpbusd.512"({{.*}}) : (vector<16xi32>, vector<16xi32>, vector<16xi32>) -> vector<16xi32>
// VNNI: vector.transfer_write {{.*}} {in_bounds = [true]} : vector<16xi32>, tensor<1x4x8x32xi32>
// VNNI-NOT: linalg.conv_2d
// With neon-dotprod, 4 lanes, tile 4 columns x 4 vectors: 2 blocks of 16 filters; signed
// x signed, so no shift and no correction.
// SDOT-LABEL: func.func @conv3x3
// SDOT: arith.constant dense<1> : tensor<2x3x3x2x64xi8>
// SDOT-NOT: arith.xori
// SDOT: vector.broadcast {{.*}} : i32 to vector<4xi32>
// SDOT: vector.bitcast {{.*}} : vector<4xi32> to vector<16xi8>
// SDOT: llvm.call_intrinsic "llvm.aarch64.neon.sdot"({{.*}}) : (vector<4xi32>, vector<16xi8>, vector<16xi8>) -> vector<4xi32>
// SDOT-NOT: linalg.conv_2d
// NONE-LABEL: func.func @conv3x3
// NONE: linalg.conv_2d_nhwc_fhwc_q
func.func @conv3x3(%x: tensor<1x6x10x8xi8>, %init: tensor<1x4x8x32xi32>) -> tensor<1x4x8x32xi32> {
  %w = arith.constant dense<1> : tensor<32x3x3x8xi8>
  %c0 = arith.constant 0 : i32
  %r = linalg.conv_2d_nhwc_fhwc_q {dilations = dense<1> : tensor<2xi64>, strides = dense<1> : tensor<2xi64>} ins(%x, %w, %c0, %c0 : tensor<1x6x10x8xi8>, tensor<32x3x3x8xi8>, i32, i32) outs(%init : tensor<1x4x8x32xi32>) -> tensor<1x4x8x32xi32>
  return %r : tensor<1x4x8x32xi32>
}

// -----

// 3 channels and 20 filters (stride 2): channels padded with a zero channel,
// filters with zero weights to 32; the output's partial vector is read and
// written with bounds checks.
// VNNI-LABEL: func.func @padded
// SDOT-LABEL: func.func @padded
// SDOT: llvm.call_intrinsic "llvm.aarch64.neon.sdot"
// VNNI: tensor.pad %{{.*}} low[0, 0, 0, 0] high[0, 0, 0, 1]
// VNNI: tensor<1x5x9x3xi8> to tensor<1x5x9x4xi8>
// VNNI: arith.xori
// VNNI: vector.transfer_read %arg{{[0-9]+}}[{{.*}}], %c0_i32 : tensor<1x2x4x20xi32>, vector<16xi32>
// VNNI: arith.muli %{{.*}}, %c2
// VNNI: llvm.call_intrinsic "llvm.x86.avx512.vpdpbusd.512"
// VNNI: vector.transfer_write %{{.*}}[{{.*}}] : vector<16xi32>, tensor<1x2x4x20xi32>
func.func @padded(%x: tensor<1x5x9x3xi8>, %init: tensor<1x2x4x20xi32>) -> tensor<1x2x4x20xi32> {
  %w = arith.constant dense<2> : tensor<20x3x3x3xi8>
  %c0 = arith.constant 0 : i32
  %r = linalg.conv_2d_nhwc_fhwc_q {dilations = dense<1> : tensor<2xi64>, strides = dense<2> : tensor<2xi64>} ins(%x, %w, %c0, %c0 : tensor<1x5x9x3xi8>, tensor<20x3x3x3xi8>, i32, i32) outs(%init : tensor<1x2x4x20xi32>) -> tensor<1x2x4x20xi32>
  return %r : tensor<1x2x4x20xi32>
}

// -----

// Not for the dot-product kernels (left to qsim-tile-and-vectorize): a zero
// point that is not 0, a filter that is not a constant, float, dilation.
// VNNI-LABEL: func.func @kept
// SDOT-LABEL: func.func @kept
// SDOT-NOT: llvm.call_intrinsic
// VNNI-NOT: llvm.call_intrinsic
// VNNI: linalg.conv_2d_nhwc_fhwc_q
// VNNI: linalg.conv_2d_nhwc_fhwc_q
// VNNI: linalg.conv_2d_nhwc_fhwc
// VNNI: linalg.conv_2d_nhwc_fhwc_q
// VNNI-NOT: llvm.call_intrinsic
func.func @kept(%x: tensor<1x4x4x4xi8>, %wa: tensor<4x1x1x4xi8>, %xf: tensor<1x4x4x4xf32>, %init: tensor<1x4x4x4xi32>, %initf: tensor<1x4x4x4xf32>) -> (tensor<1x4x4x4xi32>, tensor<1x4x4x4xi32>, tensor<1x4x4x4xf32>, tensor<1x2x2x4xi32>) {
  %w = arith.constant dense<1> : tensor<4x1x1x4xi8>
  %wf = arith.constant dense<1.0> : tensor<4x1x1x4xf32>
  %c0 = arith.constant 0 : i32
  %c3 = arith.constant 3 : i32
  %a = linalg.conv_2d_nhwc_fhwc_q {dilations = dense<1> : tensor<2xi64>, strides = dense<1> : tensor<2xi64>} ins(%x, %w, %c3, %c0 : tensor<1x4x4x4xi8>, tensor<4x1x1x4xi8>, i32, i32) outs(%init : tensor<1x4x4x4xi32>) -> tensor<1x4x4x4xi32>
  %b = linalg.conv_2d_nhwc_fhwc_q {dilations = dense<1> : tensor<2xi64>, strides = dense<1> : tensor<2xi64>} ins(%x, %wa, %c0, %c0 : tensor<1x4x4x4xi8>, tensor<4x1x1x4xi8>, i32, i32) outs(%init : tensor<1x4x4x4xi32>) -> tensor<1x4x4x4xi32>
  %c = linalg.conv_2d_nhwc_fhwc {dilations = dense<1> : tensor<2xi64>, strides = dense<1> : tensor<2xi64>} ins(%xf, %wf : tensor<1x4x4x4xf32>, tensor<4x1x1x4xf32>) outs(%initf : tensor<1x4x4x4xf32>) -> tensor<1x4x4x4xf32>
  %w3 = arith.constant dense<1> : tensor<4x2x2x4xi8>
  %init2 = tensor.empty() : tensor<1x2x2x4xi32>
  %d = linalg.conv_2d_nhwc_fhwc_q {dilations = dense<2> : tensor<2xi64>, strides = dense<1> : tensor<2xi64>} ins(%x, %w3, %c0, %c0 : tensor<1x4x4x4xi8>, tensor<4x2x2x4xi8>, i32, i32) outs(%init2 : tensor<1x2x2x4xi32>) -> tensor<1x2x2x4xi32>
  return %a, %b, %c, %d : tensor<1x4x4x4xi32>, tensor<1x4x4x4xi32>, tensor<1x4x4x4xf32>, tensor<1x2x2x4xi32>
}

// -----

// A requantizing consumer with a per-channel operand is applied to the
// accumulator registers (its i32 x per-channel multiply and narrowing as
// vector ops), stored once as int8.
// VNNI-LABEL: func.func @requantized
// SDOT-LABEL: func.func @requantized
// SDOT: llvm.call_intrinsic "llvm.aarch64.neon.sdot"
// SDOT: arith.trunci %{{.*}} : vector<4xi32> to vector<4xi8>
// VNNI: llvm.call_intrinsic "llvm.x86.avx512.vpdpbusd.512"
// VNNI: vector.transfer_read %{{.*}} : tensor<16xi32>, vector<16xi32>
// VNNI: arith.muli %{{.*}}, %{{.*}} : vector<16xi32>
// VNNI: arith.trunci %{{.*}} : vector<16xi32> to vector<16xi8>
// VNNI: vector.transfer_write {{.*}} : vector<16xi8>, tensor<1x1x4x16xi8>
// VNNI-NOT: linalg.generic
// VNNI: return
func.func @requantized(%x: tensor<1x1x4x8xi8>, %init: tensor<1x1x4x16xi32>) -> tensor<1x1x4x16xi8> {
  %w = arith.constant dense<3> : tensor<16x1x1x8xi8>
  %m = arith.constant dense<[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]> : tensor<16xi32>
  %c0 = arith.constant 0 : i32
  %conv = linalg.conv_2d_nhwc_fhwc_q {dilations = dense<1> : tensor<2xi64>, strides = dense<1> : tensor<2xi64>} ins(%x, %w, %c0, %c0 : tensor<1x1x4x8xi8>, tensor<16x1x1x8xi8>, i32, i32) outs(%init : tensor<1x1x4x16xi32>) -> tensor<1x1x4x16xi32>
  %e = tensor.empty() : tensor<1x1x4x16xi8>
  %r = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>, affine_map<(d0, d1, d2, d3) -> (d3)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%conv, %m : tensor<1x1x4x16xi32>, tensor<16xi32>) outs(%e : tensor<1x1x4x16xi8>) {
  ^bb0(%in: i32, %mu: i32, %out: i8):
    %p = arith.muli %in, %mu : i32
    %t = arith.trunci %p : i32 to i8
    linalg.yield %t : i8
  } -> tensor<1x1x4x16xi8>
  return %r : tensor<1x1x4x16xi8>
}
