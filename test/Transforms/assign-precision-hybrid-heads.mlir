// The hybrid preset keeps every convolution that feeds a detection head in
// fp32, whatever the head's kind: here [Gaussian_yolo] and [detection] (it
// was only [yolo] and [region] before, so these convolutions went int8).
// RUN: qsim-opt %s -split-input-file --qsim-assign-precision="preset=hybrid" | FileCheck %s
// RUN: not qsim-opt %s -split-input-file --qsim-assign-precision="preset=hybrid int8=3" -o /dev/null 2>&1 | FileCheck %s --check-prefix=ERR
// A head asked in int8 explicitly: an error at its cfg line.
// ERR: g.cfg:23:1: error: layer 3 (Gaussian_yolo): has no int8 form
// ERR: d.cfg:23:1: error: layer 3 (detection): has no int8 form

// Layers: 0 conv (first), 1 conv, 2 conv (feeds a head), 3 gaussian_yolo,
// 4 conv (last), 5 gaussian_yolo.
// CHECK-LABEL: func.func @main
func.func @main(%in: tensor<1x3x8x8xf32>) -> (tensor<1x11x8x8xf32>, tensor<1x11x8x8xf32>) {
  // CHECK: qsim.conv2d {{.*}}qsim.precision = "fp32", qsim.precision_reason = "preset:hybrid"
  %0 = qsim.conv2d %in {filters = 8 : i64, size = array<i64: 3, 3>, stride = array<i64: 1, 1>, padding = array<i64: 1, 1>, activation = #qsim.act<leaky>} : tensor<1x3x8x8xf32> -> tensor<1x8x8x8xf32> loc(fused["g.cfg":5:1, "layer 0"])
  // CHECK: qsim.conv2d {{.*}}qsim.precision = "int8", qsim.precision_reason = "preset:hybrid"
  %1 = qsim.conv2d %0 {filters = 8 : i64, size = array<i64: 3, 3>, stride = array<i64: 1, 1>, padding = array<i64: 1, 1>, activation = #qsim.act<leaky>} : tensor<1x8x8x8xf32> -> tensor<1x8x8x8xf32> loc(fused["g.cfg":11:1, "layer 1"])
  // CHECK: qsim.conv2d {{.*}}qsim.precision = "fp32", qsim.precision_reason = "preset:hybrid"
  %2 = qsim.conv2d %1 {filters = 11 : i64, size = array<i64: 1, 1>, stride = array<i64: 1, 1>, padding = array<i64: 0, 0>, activation = #qsim.act<linear>} : tensor<1x8x8x8xf32> -> tensor<1x11x8x8xf32> loc(fused["g.cfg":17:1, "layer 2"])
  // CHECK: qsim.gaussian_yolo {{.*}}qsim.precision = "fp32", qsim.precision_reason = "preset:hybrid"
  %3 = qsim.gaussian_yolo %2 {anchors = array<f32: 10.0, 14.0, 23.0, 27.0>, classes = 2 : i64, mask = array<i64: 0>, num = 2 : i64} : tensor<1x11x8x8xf32> -> tensor<1x11x8x8xf32> loc(fused["g.cfg":23:1, "layer 3"])
  // CHECK: qsim.conv2d {{.*}}qsim.precision = "fp32", qsim.precision_reason = "preset:hybrid"
  %4 = qsim.conv2d %1 {filters = 11 : i64, size = array<i64: 1, 1>, stride = array<i64: 1, 1>, padding = array<i64: 0, 0>, activation = #qsim.act<linear>} : tensor<1x8x8x8xf32> -> tensor<1x11x8x8xf32> loc(fused["g.cfg":28:1, "layer 4"])
  %5 = qsim.gaussian_yolo %4 {anchors = array<f32: 10.0, 14.0, 23.0, 27.0>, classes = 2 : i64, mask = array<i64: 1>, num = 2 : i64} : tensor<1x11x8x8xf32> -> tensor<1x11x8x8xf32> loc(fused["g.cfg":34:1, "layer 5"])
  return %3, %5 : tensor<1x11x8x8xf32>, tensor<1x11x8x8xf32>
}

// -----

// The same with [detection] heads (YOLOv1): layer 2 feeds one.
// CHECK-LABEL: func.func @main
func.func @main(%in: tensor<1x3x1x1xf32>) -> (tensor<1x28x1x1xf32>, tensor<1x28x1x1xf32>) {
  // CHECK: qsim.conv2d {{.*}}qsim.precision = "fp32", qsim.precision_reason = "preset:hybrid"
  %0 = qsim.conv2d %in {filters = 8 : i64, size = array<i64: 1, 1>, stride = array<i64: 1, 1>, padding = array<i64: 0, 0>, activation = #qsim.act<leaky>} : tensor<1x3x1x1xf32> -> tensor<1x8x1x1xf32> loc(fused["d.cfg":5:1, "layer 0"])
  // CHECK: qsim.conv2d {{.*}}qsim.precision = "int8", qsim.precision_reason = "preset:hybrid"
  %1 = qsim.conv2d %0 {filters = 8 : i64, size = array<i64: 1, 1>, stride = array<i64: 1, 1>, padding = array<i64: 0, 0>, activation = #qsim.act<leaky>} : tensor<1x8x1x1xf32> -> tensor<1x8x1x1xf32> loc(fused["d.cfg":11:1, "layer 1"])
  // CHECK: qsim.conv2d {{.*}}qsim.precision = "fp32", qsim.precision_reason = "preset:hybrid"
  %2 = qsim.conv2d %1 {filters = 28 : i64, size = array<i64: 1, 1>, stride = array<i64: 1, 1>, padding = array<i64: 0, 0>, activation = #qsim.act<linear>} : tensor<1x8x1x1xf32> -> tensor<1x28x1x1xf32> loc(fused["d.cfg":17:1, "layer 2"])
  %3 = qsim.detection %2 {classes = 2 : i64, coords = 4 : i64, side = 2 : i64, softmax = true, sqrt = true} : tensor<1x28x1x1xf32> -> tensor<1x28x1x1xf32> loc(fused["d.cfg":23:1, "layer 3"])
  // CHECK: qsim.conv2d {{.*}}qsim.precision = "fp32", qsim.precision_reason = "preset:hybrid"
  %4 = qsim.conv2d %1 {filters = 28 : i64, size = array<i64: 1, 1>, stride = array<i64: 1, 1>, padding = array<i64: 0, 0>, activation = #qsim.act<linear>} : tensor<1x8x1x1xf32> -> tensor<1x28x1x1xf32> loc(fused["d.cfg":29:1, "layer 4"])
  %5 = qsim.detection %4 {classes = 2 : i64, coords = 4 : i64, side = 2 : i64, softmax = true, sqrt = true} : tensor<1x28x1x1xf32> -> tensor<1x28x1x1xf32> loc(fused["d.cfg":35:1, "layer 5"])
  return %3, %5 : tensor<1x28x1x1xf32>, tensor<1x28x1x1xf32>
}
