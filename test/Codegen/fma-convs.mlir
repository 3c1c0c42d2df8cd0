// RUN: qsim-opt %s -split-input-file --pass-pipeline="builtin.module(func.func(qsim-fma-convs{lanes=16 registers=32}))" | FileCheck %s --check-prefix=AVX512
// RUN: qsim-opt %s -split-input-file --pass-pipeline="builtin.module(func.func(qsim-fma-convs{lanes=8 registers=16}))" | FileCheck %s --check-prefix=AVX2
// RUN: qsim-opt %s -split-input-file --pass-pipeline="builtin.module(func.func(qsim-fma-convs))" | FileCheck %s --check-prefix=OFF

// A 3x3 f32 convolution, 8 channels, 32 filters, rows of 8 columns.
// 16 lanes x 32 registers: tiles of 8 columns x 2 vectors (16 accumulators,
// 2 weight vectors, 1 broadcast), one block of 32 filters packed
// [block][kh][kw][channel][32]; the accumulators start from the output
// (bias) and stay in registers over the 3 x 3 x 8 reduction.
// AVX512-LABEL: func.func @conv3x3
// AVX512: arith.constant dense<5.000000e-01> : tensor<1x3x3x8x32xf32>
// AVX512: scf.for %{{.*}} = %c0 to %c8 step %c8
// AVX512-COUNT-16: vector.transfer_read %{{.*}} {in_bounds = [true]} : tensor<1x4x8x32xf32>, vector<16xf32>
// AVX512: scf.for {{.*}} -> (vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>)
// AVX512: vector.transfer_read {{.*}} : tensor<1x3x3x8x32xf32>, vector<16xf32>
// AVX512: vector.transfer_read {{.*}} : tensor<1x6x10x8xf32>, vector<1xf32>
// AVX512: vector.broadcast {{.*}} : f32 to vector<16xf32>
// AVX512-COUNT-2: vector.fma {{.*}} : vector<16xf32>
// AVX512-COUNT-16: vector.transfer_write {{.*}} {in_bounds = [true]} : vector<16xf32>, tensor<1x4x8x32xf32>
// AVX512-NOT: linalg.conv_2d
// With 8 lanes and 16 registers: 4 columns x 2 vectors (8 accumulators),
// two blocks of 16 filters.
// AVX2-LABEL: func.func @conv3x3
// AVX2: arith.constant dense<5.000000e-01> : tensor<2x3x3x8x16xf32>
// AVX2: scf.for %{{.*}} = %c0 to %c8 step %c4
// AVX2-COUNT-8: vector.fma {{.*}} : vector<8xf32>
// OFF-LABEL: func.func @conv3x3
// OFF: linalg.conv_2d_nhwc_fhwc
func.func @conv3x3(%x: tensor<1x6x10x8xf32>, %init: tensor<1x4x8x32xf32>) -> tensor<1x4x8x32xf32> {
  %w = arith.constant dense<0.5> : tensor<32x3x3x8xf32>
  %r = linalg.conv_2d_nhwc_fhwc {dilations = dense<1> : tensor<2xi64>, strides = dense<1> : tensor<2xi64>} ins(%x, %w : tensor<1x6x10x8xf32>, tensor<32x3x3x8xf32>) outs(%init : tensor<1x4x8x32xf32>) -> tensor<1x4x8x32xf32>
  return %r : tensor<1x4x8x32xf32>
}

// -----

// 21 filters (a detection head), stride 2: padded to 32 with zero weights;
// the last vector of the output is read and written with bounds checks.
// AVX512-LABEL: func.func @head
// AVX512: arith.constant dense<{{.*}}> : tensor<1x1x1x3x32xf32>
// AVX512: vector.transfer_read %arg{{[0-9]+}}[{{.*}}], %cst{{.*}} : tensor<1x2x3x21xf32>, vector<16xf32>
// AVX512: arith.muli %{{.*}}, %c2
// AVX512: vector.fma
// AVX512: vector.transfer_write %{{.*}}[{{.*}}] : vector<16xf32>, tensor<1x2x3x21xf32>
func.func @head(%x: tensor<1x4x6x3xf32>, %init: tensor<1x2x3x21xf32>) -> tensor<1x2x3x21xf32> {
  %w = arith.constant dense<1.0> : tensor<21x1x1x3xf32>
  %r = linalg.conv_2d_nhwc_fhwc {dilations = dense<1> : tensor<2xi64>, strides = dense<2> : tensor<2xi64>} ins(%x, %w : tensor<1x4x6x3xf32>, tensor<21x1x1x3xf32>) outs(%init : tensor<1x2x3x21xf32>) -> tensor<1x2x3x21xf32>
  return %r : tensor<1x2x3x21xf32>
}

// -----

// Left to qsim-tile-and-vectorize: a filter that is not a constant,
// dilation, int8 (qsim-dot-product-convs' business).
// AVX512-LABEL: func.func @kept
// AVX512-NOT: vector.fma
// AVX512-COUNT-2: linalg.conv_2d_nhwc_fhwc
// AVX512: linalg.conv_2d_nhwc_fhwc_q
// AVX512-NOT: vector.fma
func.func @kept(%x: tensor<1x4x4x4xf32>, %wa: tensor<4x1x1x4xf32>, %xi: tensor<1x4x4x4xi8>, %init: tensor<1x4x4x4xf32>, %initi: tensor<1x4x4x4xi32>) -> (tensor<1x4x4x4xf32>, tensor<1x2x2x4xf32>, tensor<1x4x4x4xi32>) {
  %a = linalg.conv_2d_nhwc_fhwc {dilations = dense<1> : tensor<2xi64>, strides = dense<1> : tensor<2xi64>} ins(%x, %wa : tensor<1x4x4x4xf32>, tensor<4x1x1x4xf32>) outs(%init : tensor<1x4x4x4xf32>) -> tensor<1x4x4x4xf32>
  %w2 = arith.constant dense<1.0> : tensor<4x2x2x4xf32>
  %init2 = tensor.empty() : tensor<1x2x2x4xf32>
  %b = linalg.conv_2d_nhwc_fhwc {dilations = dense<2> : tensor<2xi64>, strides = dense<1> : tensor<2xi64>} ins(%x, %w2 : tensor<1x4x4x4xf32>, tensor<4x2x2x4xf32>) outs(%init2 : tensor<1x2x2x4xf32>) -> tensor<1x2x2x4xf32>
  %wi = arith.constant dense<1> : tensor<4x1x1x4xi8>
  %c0 = arith.constant 0 : i32
  %c = linalg.conv_2d_nhwc_fhwc_q {dilations = dense<1> : tensor<2xi64>, strides = dense<1> : tensor<2xi64>} ins(%xi, %wi, %c0, %c0 : tensor<1x4x4x4xi8>, tensor<4x1x1x4xi8>, i32, i32) outs(%initi : tensor<1x4x4x4xi32>) -> tensor<1x4x4x4xi32>
  return %a, %b, %c : tensor<1x4x4x4xf32>, tensor<1x2x2x4xf32>, tensor<1x4x4x4xi32>
}

// -----

// Fused: the accumulators start from the per-channel bias the output was
// broadcast from, and the activation is applied to the registers before
// the one store into the activation's output; no f32 convolution tensor
// is left.
// AVX512-LABEL: func.func @fused
// AVX512-DAG: %[[BIAS:.*]] = arith.constant dense<[0.000000e+00, 1.000000e+00, {{.*}}]> : tensor<16xf32>
// AVX512-DAG: %[[OUT:.*]] = tensor.empty() : tensor<1x1x16x16xf32>
// AVX512: scf.for {{.*}} iter_args(%{{.*}} = %[[OUT]])
// AVX512: vector.transfer_read %[[BIAS]][%{{.*}}], %{{.*}} : tensor<16xf32>, vector<16xf32>
// AVX512: vector.fma
// AVX512: arith.maximumf %{{.*}}, %{{.*}} : vector<16xf32>
// AVX512-NEXT: vector.transfer_write {{.*}} : vector<16xf32>, tensor<1x1x16x16xf32>
// AVX512-NOT: linalg.generic
// AVX512: return
#c = affine_map<(d0, d1, d2, d3) -> (d3)>
#id = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
func.func @fused(%x: tensor<1x3x18x16xf32>) -> tensor<1x1x16x16xf32> {
  %w = arith.constant dense<0.25> : tensor<16x3x3x16xf32>
  %bias = arith.constant dense<[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0]> : tensor<16xf32>
  %zero = arith.constant 0.0 : f32
  %e0 = tensor.empty() : tensor<1x1x16x16xf32>
  %b = linalg.generic {indexing_maps = [#c, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%bias : tensor<16xf32>) outs(%e0 : tensor<1x1x16x16xf32>) {
  ^bb0(%in: f32, %out: f32):
    linalg.yield %in : f32
  } -> tensor<1x1x16x16xf32>
  %conv = linalg.conv_2d_nhwc_fhwc {dilations = dense<1> : tensor<2xi64>, strides = dense<1> : tensor<2xi64>} ins(%x, %w : tensor<1x3x18x16xf32>, tensor<16x3x3x16xf32>) outs(%b : tensor<1x1x16x16xf32>) -> tensor<1x1x16x16xf32>
  %e1 = tensor.empty() : tensor<1x1x16x16xf32>
  %r = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%conv : tensor<1x1x16x16xf32>) outs(%e1 : tensor<1x1x16x16xf32>) {
  ^bb0(%in: f32, %out: f32):
    %m = arith.maximumf %in, %zero : f32
    linalg.yield %m : f32
  } -> tensor<1x1x16x16xf32>
  return %r : tensor<1x1x16x16xf32>
}

// -----

// Not fused when the convolution's result has another user: the kernel
// writes the convolution's own output and the activation stays a generic.
// AVX512-LABEL: func.func @two_users
// AVX512: vector.fma
// AVX512: vector.transfer_write {{.*}} : vector<16xf32>, tensor<1x1x16x16xf32>
// AVX512: linalg.generic
// AVX512: arith.maximumf %{{.*}}, %{{.*}} : f32
func.func @two_users(%x: tensor<1x1x16x16xf32>, %init: tensor<1x1x16x16xf32>) -> (tensor<1x1x16x16xf32>, tensor<1x1x16x16xf32>) {
  %w = arith.constant dense<0.25> : tensor<16x1x1x16xf32>
  %zero = arith.constant 0.0 : f32
  %conv = linalg.conv_2d_nhwc_fhwc {dilations = dense<1> : tensor<2xi64>, strides = dense<1> : tensor<2xi64>} ins(%x, %w : tensor<1x1x16x16xf32>, tensor<16x1x1x16xf32>) outs(%init : tensor<1x1x16x16xf32>) -> tensor<1x1x16x16xf32>
  %e1 = tensor.empty() : tensor<1x1x16x16xf32>
  %r = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%conv : tensor<1x1x16x16xf32>) outs(%e1 : tensor<1x1x16x16xf32>) {
  ^bb0(%in: f32, %out: f32):
    %m = arith.maximumf %in, %zero : f32
    linalg.yield %m : f32
  } -> tensor<1x1x16x16xf32>
  return %conv, %r : tensor<1x1x16x16xf32>, tensor<1x1x16x16xf32>
}
