// RUN: qsim-opt %s -split-input-file -verify-diagnostics
// The dialect verifies the qsim.* attributes it declares wherever they
// appear: type, value, and place.

// expected-error @+1 {{'qsim.flavor' must be "alexeyab" or "pjreddie"}}
module attributes {qsim.flavor = "darknet"} {}

// -----

// expected-error @+1 {{unknown qsim attribute 'qsim.flavour'}}
module attributes {qsim.flavour = "alexeyab"} {}

// -----

// expected-error @+1 {{'qsim.letter_box' belongs on the module}}
func.func @f() attributes {qsim.letter_box = true} {
  return
}

// -----

func.func @precision(%in: tensor<1x1x2x2xf32>) -> tensor<1x1x2x2xf32> {
  // expected-error @+1 {{(maxpool): 'qsim.precision' must be "fp32", "fp16", "bf16", "int8" or "w8a16"}}
  %0 = qsim.maxpool %in {size = 1 : i64, stride = array<i64: 1, 1>, padding = 0 : i64, qsim.precision = "int4"} : tensor<1x1x2x2xf32> -> tensor<1x1x2x2xf32>
  return %0 : tensor<1x1x2x2xf32>
}

// -----

func.func @empty_range(%in: tensor<1x1x2x2xf32>) -> tensor<1x1x2x2xf32> {
  // expected-error @+1 {{'qsim.calib' range [2.000000e+00, 1.000000e+00] is empty}}
  %0 = qsim.maxpool %in {size = 1 : i64, stride = array<i64: 1, 1>, padding = 0 : i64, qsim.calib = {lo = 2.0 : f32, hi = 1.0 : f32}} : tensor<1x1x2x2xf32> -> tensor<1x1x2x2xf32>
  return %0 : tensor<1x1x2x2xf32>
}

// -----

func.func @calib_type(%in: tensor<1x1x2x2xf32>) -> tensor<1x1x2x2xf32> {
  // expected-error @+1 {{'qsim.calib' has a 'images' of the wrong type}}
  %0 = qsim.maxpool %in {size = 1 : i64, stride = array<i64: 1, 1>, padding = 0 : i64, qsim.calib = {lo = 0.0 : f32, hi = 1.0 : f32, images = "two"}} : tensor<1x1x2x2xf32> -> tensor<1x1x2x2xf32>
  return %0 : tensor<1x1x2x2xf32>
}

// -----

// expected-error @+1 {{'qsim.calib' needs float 'lo' and 'hi'}}
func.func @arg(%in: tensor<1x1x2x2xf32> {qsim.calib = {lo = 0.0 : f32}}) -> tensor<1x1x2x2xf32> {
  return %in : tensor<1x1x2x2xf32>
}

// -----

// expected-error @+1 {{unknown qsim argument attribute 'qsim.range'}}
func.func @arg_name(%in: tensor<1x1x2x2xf32> {qsim.range = 1.0 : f32}) -> tensor<1x1x2x2xf32> {
  return %in : tensor<1x1x2x2xf32>
}

// -----

// expected-error @+1 {{'qsim.training' must be a dictionary}}
module attributes {qsim.training = 100 : i64} {}

// -----

// expected-error @+1 {{'qsim.training' belongs on the module}}
func.func @g() attributes {qsim.training = {step = 1 : i64}} {
  return
}

// -----

// expected-error @+1 {{'qsim.cost' must be an array of dictionaries ([cost] keys)}}
module attributes {qsim.cost = ["sse"]} {}

// -----

// expected-error @+1 {{'qsim.cost' belongs on the module}}
func.func @h() attributes {qsim.cost = [{type = "sse"}]} {
  return
}

// -----

// Batch-norm statistics: one mean and one std >= 0 per output channel, on
// a conv2d or connected op only.
func.func @bn_stats_channels(%in: tensor<1x1x2x2xf32>) -> tensor<1x2x2x2xf32> {
  // expected-error @+1 {{'qsim.bn_stats' has 1 mean(s) and 1 std(s) for 2 output channels}}
  %0 = qsim.conv2d %in {filters = 2 : i64, size = array<i64: 1, 1>, stride = array<i64: 1, 1>, padding = array<i64: 0, 0>, activation = #qsim.act<linear>, weight = dense<1.0> : tensor<2x1x1x1xf32>, bias = dense<0.0> : tensor<2xf32>, qsim.bn_stats = {mean = array<f32: 0.0>, std = array<f32: 1.0>}} : tensor<1x1x2x2xf32> -> tensor<1x2x2x2xf32>
  return %0 : tensor<1x2x2x2xf32>
}

// -----

func.func @bn_stats_negative(%in: tensor<1x1x2x2xf32>) -> tensor<1x1x2x2xf32> {
  // expected-error @+1 {{'qsim.bn_stats' channel 0 has mean 0.000000e+00 and std -1.000000e+00 (finite, std >= 0)}}
  %0 = qsim.conv2d %in {filters = 1 : i64, size = array<i64: 1, 1>, stride = array<i64: 1, 1>, padding = array<i64: 0, 0>, activation = #qsim.act<linear>, weight = dense<1.0> : tensor<1x1x1x1xf32>, qsim.bn_stats = {mean = array<f32: 0.0>, std = array<f32: -1.0>}} : tensor<1x1x2x2xf32> -> tensor<1x1x2x2xf32>
  return %0 : tensor<1x1x2x2xf32>
}

// -----

func.func @bn_stats_place(%in: tensor<1x1x2x2xf32>) -> tensor<1x1x2x2xf32> {
  // expected-error @+1 {{'qsim.bn_stats' belongs on a conv2d or connected op}}
  %0 = qsim.maxpool %in {size = 1 : i64, stride = array<i64: 1, 1>, padding = 0 : i64, qsim.bn_stats = {mean = array<f32: 0.0>, std = array<f32: 1.0>}} : tensor<1x1x2x2xf32> -> tensor<1x1x2x2xf32>
  return %0 : tensor<1x1x2x2xf32>
}

// -----

func.func @bn_stats_type(%in: tensor<1x1x2x2xf32>) -> tensor<1x1x2x2xf32> {
  // expected-error @+1 {{'qsim.bn_stats' must be {mean = array<f32>, std = array<f32>}}}
  %0 = qsim.conv2d %in {filters = 1 : i64, size = array<i64: 1, 1>, stride = array<i64: 1, 1>, padding = array<i64: 0, 0>, activation = #qsim.act<linear>, weight = dense<1.0> : tensor<1x1x1x1xf32>, qsim.bn_stats = {mean = dense<0.0> : tensor<1xf32>, std = array<f32: 1.0>}} : tensor<1x1x2x2xf32> -> tensor<1x1x2x2xf32>
  return %0 : tensor<1x1x2x2xf32>
}

// -----

// The subsampling of a strided [shortcut] is a 1x1 maxpool without padding.
func.func @subsample_window(%in: tensor<1x1x4x4xf32>) -> tensor<1x1x2x2xf32> {
  // expected-error @+1 {{'qsim.shortcut_subsample' must be a unit attribute on a qsim.maxpool of size 1 and padding 0}}
  %0 = qsim.maxpool %in {size = 2 : i64, stride = array<i64: 2, 2>, padding = 0 : i64, qsim.shortcut_subsample} : tensor<1x1x4x4xf32> -> tensor<1x1x2x2xf32>
  return %0 : tensor<1x1x2x2xf32>
}

// -----

func.func @subsample_op(%in: tensor<1x1x2x2xf32>) -> tensor<1x1x2x2xf32> {
  // expected-error @+1 {{'qsim.shortcut_subsample' must be a unit attribute on a qsim.maxpool of size 1 and padding 0}}
  %0 = qsim.activation %in {activation = #qsim.act<relu>, qsim.shortcut_subsample} : tensor<1x1x2x2xf32> -> tensor<1x1x2x2xf32>
  return %0 : tensor<1x1x2x2xf32>
}
