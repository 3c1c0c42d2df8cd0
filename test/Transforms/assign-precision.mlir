// RUN: qsim-opt %s --qsim-assign-precision="preset=hybrid" | FileCheck %s --check-prefix=HYBRID
// RUN: qsim-opt %s --qsim-assign-precision="preset=all-int8 fp32=top1" | FileCheck %s --check-prefix=ALL
// RUN: qsim-opt %s --qsim-assign-precision="default=fp16 int8=1-2" | FileCheck %s --check-prefix=EXPLICIT
// RUN: qsim-opt %s --qsim-assign-precision="preset=fp16" | FileCheck %s --check-prefix=FP16

// Layers: 0 conv, 1 maxpool, 2 conv (heaviest), 3 conv (feeds the head),
// 4 yolo; layer 1 carries a plan written in the cfg.
func.func @main(%in: tensor<1x3x16x16xf32>) -> tensor<1x14x8x8xf32> {
  // HYBRID: qsim.conv2d {{.*}}qsim.precision = "fp32", qsim.precision_reason = "preset:hybrid"
  // ALL: qsim.conv2d {{.*}}qsim.precision = "int8", qsim.precision_reason = "preset:all-int8"
  // EXPLICIT: qsim.conv2d {{.*}}qsim.precision = "fp16", qsim.precision_reason = "default"
  // FP16: qsim.conv2d {{.*}}qsim.precision = "fp16", qsim.precision_reason = "preset:fp16"
  %0 = qsim.conv2d %in {filters = 8 : i64, size = array<i64: 3, 3>, stride = array<i64: 1, 1>, padding = array<i64: 1, 1>, activation = #qsim.act<leaky>} : tensor<1x3x16x16xf32> -> tensor<1x8x16x16xf32> loc(fused["m.cfg":5:1, "layer 0"])
  // HYBRID: qsim.maxpool {{.*}}qsim.precision = "int8", qsim.precision_reason = "cfg"
  // EXPLICIT: qsim.maxpool {{.*}}qsim.precision = "int8", qsim.precision_reason = "explicit"
  %1 = qsim.maxpool %0 {size = 2 : i64, stride = array<i64: 2, 2>, padding = 1 : i64, qsim.precision = "int8", qsim.precision_reason = "cfg"} : tensor<1x8x16x16xf32> -> tensor<1x8x8x8xf32> loc(fused["m.cfg":12:1, "layer 1"])
  // HYBRID: qsim.conv2d {{.*}}qsim.precision = "int8", qsim.precision_reason = "preset:hybrid"
  // ALL: qsim.conv2d {{.*}}qsim.precision = "fp32", qsim.precision_reason = "explicit"
  // EXPLICIT: qsim.conv2d {{.*}}qsim.precision = "int8", qsim.precision_reason = "explicit"
  %2 = qsim.conv2d %1 {filters = 32 : i64, size = array<i64: 3, 3>, stride = array<i64: 1, 1>, padding = array<i64: 1, 1>, activation = #qsim.act<leaky>} : tensor<1x8x8x8xf32> -> tensor<1x32x8x8xf32> loc(fused["m.cfg":16:1, "layer 2"])
  // HYBRID: qsim.conv2d {{.*}}qsim.precision = "fp32", qsim.precision_reason = "preset:hybrid"
  %3 = qsim.conv2d %2 {filters = 14 : i64, size = array<i64: 1, 1>, stride = array<i64: 1, 1>, padding = array<i64: 0, 0>, activation = #qsim.act<linear>} : tensor<1x32x8x8xf32> -> tensor<1x14x8x8xf32> loc(fused["m.cfg":22:1, "layer 3"])
  // ALL: qsim.yolo {{.*}}qsim.precision = "fp32", qsim.precision_reason = "preset:all-int8 (no int8 form)"
  // FP16: qsim.yolo {{.*}}qsim.precision = "fp32", qsim.precision_reason = "preset:fp16"
  %4 = qsim.yolo %3 {classes = 2 : i64, num = 2 : i64, mask = array<i64: 0, 1>, anchors = array<f32: 1.0, 2.0, 3.0, 4.0>} : tensor<1x14x8x8xf32> -> tensor<1x14x8x8xf32> loc(fused["m.cfg":28:1, "layer 4"])
  return %4 : tensor<1x14x8x8xf32>
}
