//===- TrainTestUtil.h - synthetic models and images for lib/Train tests -===//

#ifndef QSIM_UNITTESTS_TRAIN_TRAINTESTUTIL_H
#define QSIM_UNITTESTS_TRAIN_TRAINTESTUTIL_H

#include "ModuleSpec.h"

#include "qsim/Interpreter/Executor.h"
#include "qsim/Target/Darknet/DarknetImporter.h"
#include "qsim/Target/ModelIO.h"
#include "qsim/Train/View.h"

#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"

#include <string>
#include <vector>

namespace qsim::train::test {

/// Small cfgs that together hold every op kind the interpreter runs in
/// float (see TrainViewTest.cpp for what each covers).
extern const char
    *kDetectorCfg; // conv kinds, maxpool, route, shortcut, upsample, yolo
extern const char
    *kMiscCfg; // reorg, downsample, batchnorm, activation, avgpool, connected,
               // scale_channels, dropout, region
extern const char *kSoftmaxCfg;   // relu6, softmax with groups and temperature
extern const char *kNewCoordsCfg; // hard_mish, new_coords yolo with scale_x_y
extern const char *kTinyYoloCfg;  // a small detector to train
/// conv(act) -> conv -> [activation](act) -> [connected](act).
std::string activationCfg(const std::string &act);

mlir::DialectRegistry registry();
mlir::OwningOpRef<mlir::ModuleOp>
importCfg(mlir::MLIRContext &ctx, const std::string &cfg, uint64_t seed,
          qsim::Flavor flavor = qsim::Flavor::AlexeyAB);

/// A deterministic batch of `n` inputs in [0, 1] for `spec`'s input.
Blob randomInput(const NetSpec &spec, int n, uint32_t seed);

/// Every layer's output (by layer index) of the interpreter's reference
/// kernels on image `k` of `input`.
std::vector<std::vector<float>> interpreterLayers(mlir::ModuleOp module,
                                                  const Blob &input, int k);

/// max |a - b| / max |ref| (or the absolute difference if ref is zero).
double relativeMaxError(const std::vector<float> &ref, const double *test,
                        size_t n);

/// Writes `count` synthetic images (PPM, w x h, a rectangle on a textured
/// background) to a fresh folder; with labels, a YOLO label file per
/// image naming the rectangle (class k % classes). Returns the folder.
std::string writeImages(int count, int w, int h, int classes = 0,
                        uint32_t seed = 1);

} // namespace qsim::train::test

#endif
