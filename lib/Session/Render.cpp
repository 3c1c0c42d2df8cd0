//===- Render.cpp - pictures of tensors for the step session -------------===//

#include "qsim/Session/Render.h"
#include "qsim/Runtime/Image.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

using namespace qsim;
using namespace qsim::session;

namespace {

struct Rgb {
  float r, g, b;
};

Rgb lerp(Rgb a, Rgb b, float t) {
  return {a.r + (b.r - a.r) * t, a.g + (b.g - a.g) * t, a.b + (b.b - a.b) * t};
}

/// Piecewise-linear colour map over [0, 1].
Rgb colormap(const Rgb *stops, int n, float t) {
  t = std::min(1.0f, std::max(0.0f, t));
  float x = t * (n - 1);
  int i = std::min(n - 2, (int)x);
  return lerp(stops[i], stops[i + 1], x - i);
}

const Rgb kSequential[] = {{0.00f, 0.00f, 0.02f},
                           {0.34f, 0.06f, 0.43f},
                           {0.73f, 0.21f, 0.33f},
                           {0.98f, 0.55f, 0.04f},
                           {0.99f, 1.00f, 0.64f}};
const Rgb kDiverging[] = {
    {0.23f, 0.30f, 0.75f}, {0.87f, 0.87f, 0.87f}, {0.71f, 0.02f, 0.15f}};

/// Maps a value to a colour with one scale for the whole picture.
class Scale {
public:
  explicit Scale(const std::vector<float> &v) {
    lo = hi = 0;
    bool first = true;
    for (float x : v) {
      if (!std::isfinite(x))
        continue;
      lo = first ? x : std::min(lo, x);
      hi = first ? x : std::max(hi, x);
      first = false;
    }
    // Diverging only when both signs matter (a leaky ReLU's small
    // negatives would wash out a diverging map).
    diverging = lo < 0 && hi > 0 && -lo > 0.1f * hi && hi > 0.1f * -lo;
    if (diverging)
      mag = std::max(-lo, hi);
  }
  Rgb operator()(float x) const {
    if (!std::isfinite(x))
      return {0.0f, 1.0f, 0.0f}; // NaN/inf stand out in green
    // A square-root gamma: activations are mostly small with a few large
    // values, which a linear map would leave in one pale colour.
    if (diverging) {
      float t = std::sqrt(std::fabs(x) / mag);
      return colormap(kDiverging, 3, 0.5f + (x < 0 ? -0.5f : 0.5f) * t);
    }
    return colormap(kSequential, 5,
                    hi > lo ? std::sqrt((x - lo) / (hi - lo)) : 0.5f);
  }
  std::string legend() const {
    char buf[96];
    snprintf(buf, sizeof buf, "%.4g .. %.4g (sqrt scale)", lo, hi);
    return buf;
  }

private:
  float lo, hi, mag = 1;
  bool diverging = false;
};

rt::Image canvas(int w, int h, float grey) {
  rt::Image im;
  im.w = w;
  im.h = h;
  im.c = 3;
  im.data.assign((size_t)w * h * 3, grey);
  return im;
}

void put(rt::Image &im, int x, int y, Rgb c) {
  if (x < 0 || y < 0 || x >= im.w || y >= im.h)
    return;
  im.at(x, y, 0) = c.r;
  im.at(x, y, 1) = c.g;
  im.at(x, y, 2) = c.b;
}

constexpr int kBar = 12; // top bar with the legend

/// The legend in the top bar, at the font's smallest size whatever the
/// picture's height (drawLabel scales text with the image).
void drawLegend(rt::Image &im, const std::string &text, float grey) {
  rt::Image bar = canvas(im.w, kBar, grey);
  rt::drawLabel(bar, 0, kBar, text, 0.1f, 0.1f, 0.1f);
  for (int ch = 0; ch < 3; ++ch)
    for (int y = 0; y < kBar; ++y)
      for (int x = 0; x < im.w; ++x)
        im.at(x, y, ch) = bar.at(x, y, ch);
}

/// Integer upscaling so that a cell is at least `target` pixels wide.
int cellScale(int64_t w, int64_t h, int target) {
  int64_t m = std::max<int64_t>(1, std::max(w, h));
  return (int)std::max<int64_t>(1, std::min<int64_t>(16, target / m));
}

} // namespace

bool session::writeFeatureMapGrid(const std::string &path,
                                  const std::vector<float> &v, int64_t c,
                                  int64_t h, int64_t w, std::string &error,
                                  int64_t maxChannels) {
  if ((int64_t)v.size() != c * h * w || c <= 0 || h <= 0 || w <= 0) {
    error = "nothing to draw";
    return false;
  }
  int64_t shown = std::min(c, maxChannels);
  int cols = (int)std::ceil(std::sqrt((double)shown));
  int rows = (int)((shown + cols - 1) / cols);
  int s = cellScale(w, h, 48);
  int cw = (int)w * s, ch = (int)h * s;
  // Keep pictures of large maps reasonable: shrink by sampling.
  int stride = 1;
  while ((int64_t)cols * cw / stride > 4096 ||
         (int64_t)rows * ch / stride > 4096)
    ++stride;
  int pw = cw / stride, ph = ch / stride;
  Scale scale(v);
  std::string legend =
      std::to_string(c) + " ch " + std::to_string(h) + "x" + std::to_string(w) +
      (shown < c ? " (first " + std::to_string(shown) + ")" : "") + "  " +
      scale.legend();
  rt::Image im =
      canvas(std::max<int>(cols * (pw + 1) + 1, legend.size() * 6 + 2),
             rows * (ph + 1) + 1 + kBar, 0.25f);
  for (int64_t k = 0; k < shown; ++k) {
    int ox = (int)(k % cols) * (pw + 1) + 1,
        oy = (int)(k / cols) * (ph + 1) + 1 + kBar;
    for (int y = 0; y < ph; ++y)
      for (int x = 0; x < pw; ++x) {
        int64_t sy = (int64_t)y * stride / s, sx = (int64_t)x * stride / s;
        put(im, ox + x, oy + y, scale(v[(k * h + sy) * w + sx]));
      }
  }
  drawLegend(im, legend, 0.25f);
  return rt::writePng(path, im, error);
}

bool session::writeKernelGrid(const std::string &path,
                              const std::vector<float> &v, int64_t f, int64_t c,
                              int64_t kh, int64_t kw, std::string &error,
                              int64_t maxFilters, int64_t maxInputs) {
  if ((int64_t)v.size() != f * c * kh * kw || v.empty()) {
    error = "nothing to draw";
    return false;
  }
  int64_t rows = std::min(f, maxFilters), cols = std::min(c, maxInputs);
  int s = cellScale(kw, kh, 12);
  int cw = (int)kw * s, ch = (int)kh * s;
  int gap = kh * kw > 1 ? 1 : 0; // 1x1 kernels form one matrix picture
  Scale scale(v);
  std::string legend = std::to_string(f) + "x" + std::to_string(c) + "x" +
                       std::to_string(kh) + "x" + std::to_string(kw) +
                       (rows < f || cols < c ? " (part)" : "") + "  " +
                       scale.legend();
  rt::Image im =
      canvas(std::max<int>((int)cols * (cw + gap) + gap, legend.size() * 6 + 2),
             (int)rows * (ch + gap) + gap + kBar, 0.25f);
  for (int64_t fi = 0; fi < rows; ++fi)
    for (int64_t ci = 0; ci < cols; ++ci) {
      int ox = (int)ci * (cw + gap) + gap,
          oy = (int)fi * (ch + gap) + gap + kBar;
      for (int y = 0; y < ch; ++y)
        for (int x = 0; x < cw; ++x)
          put(im, ox + x, oy + y,
              scale(v[((fi * c + ci) * kh + y / s) * kw + x / s]));
    }
  drawLegend(im, legend, 0.25f);
  return rt::writePng(path, im, error);
}

Histogram session::computeHistogram(const std::vector<float> &v, int bins) {
  Histogram h;
  bins = std::max(1, bins);
  h.counts.assign(bins, 0);
  bool first = true;
  for (float x : v) {
    if (!std::isfinite(x))
      continue;
    h.lo = first ? x : std::min<double>(h.lo, x);
    h.hi = first ? x : std::max<double>(h.hi, x);
    first = false;
  }
  if (first)
    return h;
  double width = h.hi > h.lo ? (h.hi - h.lo) / bins : 1.0;
  for (float x : v) {
    if (!std::isfinite(x))
      continue;
    int b = (int)((x - h.lo) / width);
    h.counts[std::min(bins - 1, std::max(0, b))]++;
  }
  return h;
}

bool session::writeHistogramPng(const std::string &path, const Histogram &h,
                                const std::string &title, std::string &error) {
  const int w = 640, ht = 320, margin = 24;
  rt::Image im = canvas(w, ht, 1.0f);
  int64_t peak = 1;
  for (int64_t c : h.counts)
    peak = std::max(peak, c);
  int n = (int)h.counts.size();
  int plotW = w - 2 * margin, plotH = ht - 2 * margin - kBar;
  for (int i = 0; i < n; ++i) {
    int x0 = margin + i * plotW / n, x1 = margin + (i + 1) * plotW / n - 1;
    // Logarithmic height: activation histograms span decades.
    double frac =
        h.counts[i] ? std::log1p((double)h.counts[i]) / std::log1p((double)peak)
                    : 0;
    int bh = (int)std::lround(frac * plotH);
    for (int x = x0; x <= std::max(x0, x1); ++x)
      for (int y = 0; y < bh; ++y)
        put(im, x, ht - margin - 1 - y, {0.2f, 0.4f, 0.7f});
  }
  for (int x = margin; x < w - margin; ++x)
    put(im, x, ht - margin, {0, 0, 0});
  // Zero, when inside the range.
  if (h.lo < 0 && h.hi > 0) {
    int zx = margin + (int)((0 - h.lo) / (h.hi - h.lo) * plotW);
    for (int y = margin + kBar; y < ht - margin; ++y)
      put(im, zx, y, {0.8f, 0.1f, 0.1f});
  }
  char buf[160];
  snprintf(buf, sizeof buf, "%s  %.4g .. %.4g  %d bins, log counts (max %lld)",
           title.c_str(), h.lo, h.hi, n, (long long)peak);
  drawLegend(im, buf, 1.0f);
  return rt::writePng(path, im, error);
}
