//===- Render.h - pictures of tensors for the step session -----*- C++ -*-===//
//
// Feature maps as a grid of heatmaps (one cell per channel), convolution
// weights as a grid of kernels (one row per filter), and histograms, written
// as PNG. One colour scale per picture: a diverging blue-white-red map
// centred on 0 when the values have both signs, a sequential dark-to-yellow
// map otherwise; the range is printed in the picture's top bar.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_SESSION_RENDER_H
#define QSIM_SESSION_RENDER_H

#include <cstdint>
#include <string>
#include <vector>

namespace qsim::session {

/// `values` is C x H x W (channel-major). At most `maxChannels` cells.
bool writeFeatureMapGrid(const std::string &path,
                         const std::vector<float> &values, int64_t c, int64_t h,
                         int64_t w, std::string &error,
                         int64_t maxChannels = 256);

/// `values` is F x C x kh x kw: row f, column c shows kernel (f, c); at most
/// `maxFilters` rows and `maxInputs` columns.
bool writeKernelGrid(const std::string &path, const std::vector<float> &values,
                     int64_t f, int64_t c, int64_t kh, int64_t kw,
                     std::string &error, int64_t maxFilters = 64,
                     int64_t maxInputs = 64);

struct Histogram {
  double lo = 0, hi = 0;
  std::vector<int64_t> counts;
};
Histogram computeHistogram(const std::vector<float> &values, int bins);

bool writeHistogramPng(const std::string &path, const Histogram &h,
                       const std::string &title, std::string &error);

} // namespace qsim::session

#endif
