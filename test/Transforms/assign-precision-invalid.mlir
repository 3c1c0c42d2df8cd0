// RUN: qsim-opt %s -split-input-file --qsim-assign-precision="int8=1" -verify-diagnostics
// RUN: not qsim-opt %s -split-input-file --qsim-assign-precision="int8=7" 2>&1 | FileCheck %s --check-prefix=RANGE
// RUN: not qsim-opt %s -split-input-file --qsim-assign-precision="preset=turbo" 2>&1 | FileCheck %s --check-prefix=PRESET
// RUN: not qsim-opt %s -split-input-file --qsim-assign-precision="int8=0 fp16=0" 2>&1 | FileCheck %s --check-prefix=TWICE
// RUN: not qsim-opt %s -split-input-file --qsim-assign-precision="auto" 2>&1 | FileCheck %s --check-prefix=AUTO
// RANGE: error: layer 7 does not exist (the model has 2 layers)
// PRESET: for the --preset option: 'turbo' is not a valid value: expected one of none, all-int8, hybrid, fp16, bf16
// TWICE: error: layer 0 is given two precisions
// AUTO: error: --qsim-assign-precision auto: give min-sqnr, max-map-drop or budget

// int8 asked explicitly of a layer kind without an int8 form.
func.func @main(%in: tensor<1x14x4x4xf32>) -> tensor<1x14x4x4xf32> {
  %0 = qsim.activation %in {activation = #qsim.act<linear>} : tensor<1x14x4x4xf32> -> tensor<1x14x4x4xf32>
  // expected-error @+1 {{(yolo): has no int8 form}}
  %1 = qsim.yolo %0 {classes = 2 : i64, num = 2 : i64, mask = array<i64: 0, 1>, anchors = array<f32: 1.0, 2.0, 3.0, 4.0>} : tensor<1x14x4x4xf32> -> tensor<1x14x4x4xf32>
  return %1 : tensor<1x14x4x4xf32>
}
