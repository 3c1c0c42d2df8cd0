//===- Analysis.h - what quantization cost, layer by layer ------*- C++ -*-===//

#ifndef QSIM_EVALUATION_LAYERANALYSIS_H
#define QSIM_EVALUATION_LAYERANALYSIS_H

#include "qsim/Dialect/QSim/IR/Layers.h"
#include "qsim/Runtime/Tensor.h"

#include <string>
#include <vector>

namespace qsim::eval {

/// Accumulated error statistics of one layer's output against a float
/// reference, over any number of images.
struct LayerComparison {
  double sumRef2 = 0, sumErr2 = 0, sumDot = 0, sumTest2 = 0, sumAbsErr = 0;
  double maxAbsErr = 0;
  int64_t count = 0, clipped = 0;
  /// Adds one image. `clipLo`/`clipHi` is the representable range of an int8
  /// output (values of the reference outside it are counted as clipped);
  /// pass lo > hi for float layers.
  void add(const std::vector<float> &ref, const std::vector<float> &test,
           float clipLo, float clipHi);
  double sqnrDb() const;
  double cosine() const;
  double meanAbsErr() const { return count ? sumAbsErr / count : 0; }
  double clippedPercent() const { return count ? 100.0 * clipped / count : 0; }
};

/// Representable real range of an int8 tensor (lo > hi when not int8).
std::pair<float, float> representableRange(const rt::Tensor &t);

/// Overflow of an int8 convolution on one input (qsim-run --overflow-report):
/// the share of int8 x int8 products that do not fit in int8, and of output
/// accumulators whose running sum leaves int16 at some point.
struct OverflowStats {
  double productPercent = 0, accumulatorPercent = 0;
};
OverflowStats analyzeOverflow(Conv2DOp conv, const rt::Tensor &input);

/// The accumulator width an int8 convolution needs in the worst case:
/// max over filters of sum|w| * max|x - zp| + |bias|, in bits (with sign).
int staticAccumulatorBits(Conv2DOp conv);

} // namespace qsim::eval

#endif
