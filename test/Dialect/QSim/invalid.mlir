// RUN: qsim-opt %s -split-input-file -verify-diagnostics
// Every op's verifier, with messages that name the Darknet layer.

func.func @conv_weight_shape(%in: tensor<1x4x8x8xf32>) -> tensor<1x4x8x8xf32> {
  // expected-error @+1 {{(convolutional): 'weight' has shape [4, 2, 3, 3], expected [4, 4, 3, 3]}}
  %0 = qsim.conv2d %in {filters = 4 : i64, size = array<i64: 3, 3>, stride = array<i64: 1, 1>, padding = array<i64: 1, 1>, activation = #qsim.act<linear>, weight = dense<0.5> : tensor<4x2x3x3xf32>} : tensor<1x4x8x8xf32> -> tensor<1x4x8x8xf32>
  return %0 : tensor<1x4x8x8xf32>
}

// -----

func.func @conv_groups(%in: tensor<1x6x8x8xf32>) -> tensor<1x4x8x8xf32> {
  // expected-error @+1 {{(convolutional): input channels (6) not divisible by groups (4)}}
  %0 = qsim.conv2d %in {filters = 4 : i64, size = array<i64: 3, 3>, stride = array<i64: 1, 1>, padding = array<i64: 1, 1>, groups = 4 : i64, activation = #qsim.act<linear>} : tensor<1x6x8x8xf32> -> tensor<1x4x8x8xf32>
  return %0 : tensor<1x4x8x8xf32>
}

// -----

func.func @conv_shape(%in: tensor<1x4x8x8xf32>) -> tensor<1x4x8x8xf32> {
  // expected-error @+1 {{result shape [1, 4, 8, 8] does not match Darknet's [1, 4, 4, 4]}}
  %0 = qsim.conv2d %in {filters = 4 : i64, size = array<i64: 3, 3>, stride = array<i64: 2, 2>, padding = array<i64: 1, 1>, activation = #qsim.act<linear>} : tensor<1x4x8x8xf32> -> tensor<1x4x8x8xf32>
  return %0 : tensor<1x4x8x8xf32>
}

// -----

func.func @conv_size_arity(%in: tensor<1x4x8x8xf32>) -> tensor<1x4x8x8xf32> {
  // expected-error @+1 {{size, stride and padding need 2 values each}}
  %0 = qsim.conv2d %in {filters = 4 : i64, size = array<i64: 3>, stride = array<i64: 1, 1>, padding = array<i64: 1, 1>, activation = #qsim.act<linear>} : tensor<1x4x8x8xf32> -> tensor<1x4x8x8xf32>
  return %0 : tensor<1x4x8x8xf32>
}

// -----

func.func @conv_float_with_quant_attrs(%in: tensor<1x4x8x8xf32>) -> tensor<1x4x8x8xf32> {
  // expected-error @+1 {{float layer has quantization attributes}}
  %0 = qsim.conv2d %in {filters = 4 : i64, size = array<i64: 1, 1>, stride = array<i64: 1, 1>, padding = array<i64: 0, 0>, activation = #qsim.act<linear>, multiplier = array<i32: 1, 1, 1, 1>} : tensor<1x4x8x8xf32> -> tensor<1x4x8x8xf32>
  return %0 : tensor<1x4x8x8xf32>
}

// -----

func.func @conv_kernel_too_big(%in: tensor<1x4x2x2xf32>) -> tensor<1x4x1x1xf32> {
  // expected-error @+1 {{kernel 5x5 larger than padded input 4x2x2}}
  %0 = qsim.conv2d %in {filters = 4 : i64, size = array<i64: 5, 5>, stride = array<i64: 1, 1>, padding = array<i64: 0, 0>, activation = #qsim.act<linear>} : tensor<1x4x2x2xf32> -> tensor<1x4x1x1xf32>
  return %0 : tensor<1x4x1x1xf32>
}

// -----

func.func @batch_not_one(%in: tensor<2x4x8x8xf32>) -> tensor<2x4x8x8xf32> {
  // expected-error @+1 {{tensors must be static 1xCxHxW, got 'tensor<2x4x8x8xf32>'}}
  %0 = qsim.activation %in {activation = #qsim.act<relu>} : tensor<2x4x8x8xf32> -> tensor<2x4x8x8xf32>
  return %0 : tensor<2x4x8x8xf32>
}

// -----

func.func @bn_after_biased_conv(%in: tensor<1x4x8x8xf32>) -> tensor<1x4x8x8xf32> {
  %0 = qsim.conv2d %in {filters = 4 : i64, size = array<i64: 1, 1>, stride = array<i64: 1, 1>, padding = array<i64: 0, 0>, activation = #qsim.act<linear>, bias = dense<0.0> : tensor<4xf32>} : tensor<1x4x8x8xf32> -> tensor<1x4x8x8xf32>
  // expected-error @+1 {{must have no bias, a linear activation and no other user}}
  %1 = qsim.batchnorm %0 {activation = #qsim.act<leaky>} : tensor<1x4x8x8xf32> -> tensor<1x4x8x8xf32>
  return %1 : tensor<1x4x8x8xf32>
}

// -----

func.func @bn_not_after_conv(%in: tensor<1x4x8x8xf32>) -> tensor<1x4x8x8xf32> {
  // expected-error @+1 {{must follow a conv2d or connected op (mark a [batchnorm] layer standalone)}}
  %1 = qsim.batchnorm %in {activation = #qsim.act<leaky>} : tensor<1x4x8x8xf32> -> tensor<1x4x8x8xf32>
  return %1 : tensor<1x4x8x8xf32>
}

// -----

func.func @bn_param_shape(%in: tensor<1x4x8x8xf32>) -> tensor<1x4x8x8xf32> {
  // expected-error @+1 {{'mean' has shape [3], expected [4]}}
  %1 = qsim.batchnorm %in {activation = #qsim.act<linear>, standalone = true, mean = dense<0.0> : tensor<3xf32>} : tensor<1x4x8x8xf32> -> tensor<1x4x8x8xf32>
  return %1 : tensor<1x4x8x8xf32>
}

// -----

func.func @maxpool_window(%in: tensor<1x4x2x2xf32>) -> tensor<1x4x1x1xf32> {
  // expected-error @+1 {{window larger than padded input 4x2x2}}
  %0 = qsim.maxpool %in {size = 5 : i64, stride = array<i64: 1, 1>, padding = 0 : i64} : tensor<1x4x2x2xf32> -> tensor<1x4x1x1xf32>
  return %0 : tensor<1x4x1x1xf32>
}

// -----

func.func @maxpool_shape(%in: tensor<1x4x8x8xf32>) -> tensor<1x4x8x8xf32> {
  // expected-error @+1 {{result shape [1, 4, 8, 8] does not match Darknet's [1, 4, 4, 4]}}
  %0 = qsim.maxpool %in {size = 2 : i64, stride = array<i64: 2, 2>, padding = 1 : i64} : tensor<1x4x8x8xf32> -> tensor<1x4x8x8xf32>
  return %0 : tensor<1x4x8x8xf32>
}

// -----

func.func @avgpool_shape(%in: tensor<1x4x8x8xf32>) -> tensor<1x4x8x8xf32> {
  // expected-error @+1 {{does not match Darknet's [1, 4, 1, 1]}}
  %0 = qsim.avgpool %in : tensor<1x4x8x8xf32> -> tensor<1x4x8x8xf32>
  return %0 : tensor<1x4x8x8xf32>
}

// -----

func.func @route_sizes(%a: tensor<1x4x8x8xf32>, %b: tensor<1x4x4x4xf32>) -> tensor<1x8x8x8xf32> {
  // expected-error @+1 {{(route): input 1 is 4x4x4 but input 0 is 4x8x8 (route inputs must share width and height)}}
  %0 = qsim.route %a, %b : (tensor<1x4x8x8xf32>, tensor<1x4x4x4xf32>) -> tensor<1x8x8x8xf32>
  return %0 : tensor<1x8x8x8xf32>
}

// -----

func.func @route_group_id(%a: tensor<1x4x8x8xf32>) -> tensor<1x2x8x8xf32> {
  // expected-error @+1 {{group_id 2 out of range for groups=2}}
  %0 = qsim.route %a {groups = 2 : i64, group_id = 2 : i64} : (tensor<1x4x8x8xf32>) -> tensor<1x2x8x8xf32>
  return %0 : tensor<1x2x8x8xf32>
}

// -----

func.func @shortcut_one_input(%a: tensor<1x4x8x8xf32>) -> tensor<1x4x8x8xf32> {
  // expected-error @+1 {{shortcut needs the previous layer and a from= layer}}
  %0 = qsim.shortcut %a {activation = #qsim.act<linear>} : (tensor<1x4x8x8xf32>) -> tensor<1x4x8x8xf32>
  return %0 : tensor<1x4x8x8xf32>
}

// -----

func.func @shortcut_sizes(%a: tensor<1x4x8x8xf32>, %b: tensor<1x4x4x4xf32>) -> tensor<1x4x8x8xf32> {
  // expected-error @+1 {{from layer is 4x4x4 but the previous layer is 4x8x8 (shortcut needs equal width and height)}}
  %0 = qsim.shortcut %a, %b {activation = #qsim.act<linear>} : (tensor<1x4x8x8xf32>, tensor<1x4x4x4xf32>) -> tensor<1x4x8x8xf32>
  return %0 : tensor<1x4x8x8xf32>
}

// -----

func.func @upsample_zero(%a: tensor<1x4x8x8xf32>) -> tensor<1x4x8x8xf32> {
  // expected-error @+1 {{stride must not be 0}}
  %0 = qsim.upsample %a {stride = 0 : i64} : tensor<1x4x8x8xf32> -> tensor<1x4x8x8xf32>
  return %0 : tensor<1x4x8x8xf32>
}

// -----

func.func @reorg_divisible(%a: tensor<1x4x6x6xf32>) -> tensor<1x64x1x1xf32> {
  // expected-error @+1 {{input 4x6x6 not divisible by stride 4}}
  %0 = qsim.reorg %a {stride = 4 : i64} : tensor<1x4x6x6xf32> -> tensor<1x64x1x1xf32>
  return %0 : tensor<1x64x1x1xf32>
}

// -----

// Channels that Darknet's reorg_cpu would read past (2 channels, stride 2).
func.func @reorg_channels(%a: tensor<1x2x4x4xf32>) -> tensor<1x8x2x2xf32> {
  // expected-error @+1 {{input channels 2 not divisible by stride^2}}
  %0 = qsim.reorg %a {stride = 2 : i64} : tensor<1x2x4x4xf32> -> tensor<1x8x2x2xf32>
  return %0 : tensor<1x8x2x2xf32>
}

// -----

func.func @scale_channels_shape(%s: tensor<1x3x1x1xf32>, %f: tensor<1x4x8x8xf32>) -> tensor<1x4x8x8xf32> {
  // expected-error @+1 {{scales must be 1x1x4, got 3x1x1}}
  %0 = qsim.scale_channels %s, %f {activation = #qsim.act<linear>} : (tensor<1x3x1x1xf32>, tensor<1x4x8x8xf32>) -> tensor<1x4x8x8xf32>
  return %0 : tensor<1x4x8x8xf32>
}

// -----

func.func @softmax_groups(%a: tensor<1x5x1x1xf32>) -> tensor<1x5x1x1xf32> {
  // expected-error @+1 {{groups 2 must divide the 5 inputs}}
  %0 = qsim.softmax %a {groups = 2 : i64} : tensor<1x5x1x1xf32> -> tensor<1x5x1x1xf32>
  return %0 : tensor<1x5x1x1xf32>
}

// -----

func.func @dropout_shape(%a: tensor<1x5x1x1xf32>) -> tensor<1x4x1x1xf32> {
  // expected-error @+1 {{does not match Darknet's [1, 5, 1, 1]}}
  %0 = qsim.dropout %a : tensor<1x5x1x1xf32> -> tensor<1x4x1x1xf32>
  return %0 : tensor<1x4x1x1xf32>
}

// -----

func.func @connected_weight(%a: tensor<1x4x2x2xf32>) -> tensor<1x3x1x1xf32> {
  // expected-error @+1 {{'weight' has shape [3, 4], expected [3, 16]}}
  %0 = qsim.connected %a {output_size = 3 : i64, activation = #qsim.act<linear>, weight = dense<0.0> : tensor<3x4xf32>} : tensor<1x4x2x2xf32> -> tensor<1x3x1x1xf32>
  return %0 : tensor<1x3x1x1xf32>
}

// -----

func.func @yolo_channels(%a: tensor<1x20x4x4xf32>) -> tensor<1x20x4x4xf32> {
  // expected-error @+1 {{(yolo): input has 20 channels but 2 anchors x (classes 4 + 5) = 18 are needed}}
  %0 = qsim.yolo %a {classes = 4 : i64, num = 2 : i64, mask = array<i64: 0, 1>, anchors = array<f32: 1.0, 2.0, 3.0, 4.0>} : tensor<1x20x4x4xf32> -> tensor<1x20x4x4xf32>
  return %0 : tensor<1x20x4x4xf32>
}

// -----

func.func @yolo_anchors(%a: tensor<1x18x4x4xf32>) -> tensor<1x18x4x4xf32> {
  // expected-error @+1 {{anchors needs 2 * num = 4 values, got 3}}
  %0 = qsim.yolo %a {classes = 4 : i64, num = 2 : i64, mask = array<i64: 0, 1>, anchors = array<f32: 1.0, 2.0, 3.0>} : tensor<1x18x4x4xf32> -> tensor<1x18x4x4xf32>
  return %0 : tensor<1x18x4x4xf32>
}

// -----

func.func @yolo_mask(%a: tensor<1x18x4x4xf32>) -> tensor<1x18x4x4xf32> {
  // expected-error @+1 {{mask index 5 is past num=2: anchors needs 12 values, got 4}}
  %0 = qsim.yolo %a {classes = 4 : i64, num = 2 : i64, mask = array<i64: 0, 5>, anchors = array<f32: 1.0, 2.0, 3.0, 4.0>} : tensor<1x18x4x4xf32> -> tensor<1x18x4x4xf32>
  return %0 : tensor<1x18x4x4xf32>
}

// -----

func.func @region_channels(%a: tensor<1x18x4x4xf32>) -> tensor<1x18x4x4xf32> {
  // expected-error @+1 {{input has 18 channels but num 2 x (classes + coords + 1) = 20 are needed}}
  %0 = qsim.region %a {classes = 5 : i64, num = 2 : i64, anchors = array<f32: 1.0, 2.0, 3.0, 4.0>} : tensor<1x18x4x4xf32> -> tensor<1x18x4x4xf32>
  return %0 : tensor<1x18x4x4xf32>
}

// -----

func.func @activation_shape(%a: tensor<1x4x4x4xf32>) -> tensor<1x4x4x2xf32> {
  // expected-error @+1 {{does not match Darknet's [1, 4, 4, 4]}}
  %0 = qsim.activation %a {activation = #qsim.act<leaky>} : tensor<1x4x4x4xf32> -> tensor<1x4x4x2xf32>
  return %0 : tensor<1x4x4x2xf32>
}

// -----

func.func @unknown_activation(%a: tensor<1x4x4x4xf32>) -> tensor<1x4x4x4xf32> {
  // expected-error @+2 {{expected ::qsim::Activation to be one of: linear, logistic}}
  // expected-error @+1 {{failed to parse QSim_ActivationAttr}}
  %0 = qsim.activation %a {activation = #qsim.act<leaky2>} : tensor<1x4x4x4xf32> -> tensor<1x4x4x4xf32>
  return %0 : tensor<1x4x4x4xf32>
}
