//===- Data.cpp - training images, labels and augmentation ---------------===//

#include "Data.h"

#include <algorithm>
#include <cmath>

using namespace qsim;
using namespace qsim::train;

namespace {

/// SplitMix64: seeds of independent streams from (seed, index).
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

/// A small deterministic generator (the same numbers on every platform).
struct Random {
  uint64_t state;
  explicit Random(uint64_t seed) : state(mix(seed)) {}
  uint64_t next() { return state = mix(state); }
  /// Darknet's rand_uniform_strong: uniform in [min, max].
  float uniform(float min, float max) {
    if (max < min)
      std::swap(min, max);
    double u = (double)(next() >> 11) / (double)(1ull << 53);
    return (float)(u * (max - min) + min);
  }
  /// Darknet's rand_scale: s^u or its inverse, each half of the time.
  float scale(float s) {
    float v = uniform(1, s);
    return next() % 2 ? v : 1.0f / v;
  }
};

float u8ToFloat(uint8_t v) {
  // As rt::loadImage: (float)((double)u8 / 255.).
  return (float)((double)v / 255.);
}

void rgbToHsv(rt::Image &im) {
  const size_t plane = (size_t)im.w * im.h;
  for (size_t i = 0; i < plane; ++i) {
    float r = im.data[i], g = im.data[plane + i], b = im.data[2 * plane + i];
    float max = std::max(r, std::max(g, b)), min = std::min(r, std::min(g, b));
    float delta = max - min, h = 0, s = 0;
    if (max != 0 && delta != 0) {
      s = delta / max;
      if (r == max)
        h = (g - b) / delta;
      else if (g == max)
        h = 2 + (b - r) / delta;
      else
        h = 4 + (r - g) / delta;
      if (h < 0)
        h += 6;
      h = h / 6.0f;
    }
    im.data[i] = h;
    im.data[plane + i] = s;
    im.data[2 * plane + i] = max;
  }
}

void hsvToRgb(rt::Image &im) {
  const size_t plane = (size_t)im.w * im.h;
  for (size_t i = 0; i < plane; ++i) {
    float h = 6 * im.data[i], s = im.data[plane + i],
          v = im.data[2 * plane + i];
    float r, g, b;
    if (s == 0) {
      r = g = b = v;
    } else {
      int index = (int)std::floor(h);
      float f = h - index;
      float p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
      switch (index) {
      case 0:
        r = v, g = t, b = p;
        break;
      case 1:
        r = q, g = v, b = p;
        break;
      case 2:
        r = p, g = v, b = t;
        break;
      case 3:
        r = p, g = q, b = v;
        break;
      case 4:
        r = t, g = p, b = v;
        break;
      default:
        r = v, g = p, b = q;
      }
    }
    im.data[i] = r;
    im.data[plane + i] = g;
    im.data[2 * plane + i] = b;
  }
}

/// Darknet's correct_boxes after a crop (dx, dy, sx, sy as in
/// fill_truth_detection) and an optional flip; boxes that leave the image
/// or become thinner than one network pixel are dropped.
std::vector<rt::GroundTruth>
correctBoxes(const std::vector<rt::GroundTruth> &in, float dx, float dy,
             float sx, float sy, bool flip, int netW, int netH) {
  std::vector<rt::GroundTruth> out;
  for (rt::GroundTruth g : in) {
    float left = (g.box.x - g.box.w / 2) * sx - dx;
    float right = (g.box.x + g.box.w / 2) * sx - dx;
    float top = (g.box.y - g.box.h / 2) * sy - dy;
    float bottom = (g.box.y + g.box.h / 2) * sy - dy;
    if (flip) {
      float swap = left;
      left = 1.0f - right;
      right = 1.0f - swap;
    }
    left = std::clamp(left, 0.0f, 1.0f);
    right = std::clamp(right, 0.0f, 1.0f);
    top = std::clamp(top, 0.0f, 1.0f);
    bottom = std::clamp(bottom, 0.0f, 1.0f);
    g.box.x = (left + right) / 2;
    g.box.y = (top + bottom) / 2;
    g.box.w = right - left;
    g.box.h = bottom - top;
    if (g.box.w < 1.0f / netW || g.box.h < 1.0f / netH)
      continue;
    out.push_back(g);
  }
  return out;
}

bool readLabels(const std::string &path, int classes,
                std::vector<rt::GroundTruth> &out, bool &missing,
                std::string &error) {
  if (!rt::readYoloLabels(path, out, missing, error))
    return false;
  for (size_t i = 0; i < out.size(); ++i) {
    const rt::GroundTruth &g = out[i];
    std::string where = path + ": box " + std::to_string(i + 1);
    if (g.classId < 0 || (classes > 0 && g.classId >= classes)) {
      error = where + ": class " + std::to_string(g.classId) +
              " is not one of the model's " + std::to_string(classes) +
              " classes";
      return false;
    }
    if (!(g.box.x >= 0 && g.box.x <= 1 && g.box.y >= 0 && g.box.y <= 1 &&
          g.box.w > 0 && g.box.w <= 1 && g.box.h > 0 && g.box.h <= 1)) {
      error = where + ": x y w h must be fractions of the image in [0, 1]";
      return false;
    }
  }
  return true;
}

} // namespace

void qsim::train::distortImage(rt::Image &im, float dhue, float dsat,
                               float dexp) {
  if (im.c < 3) {
    for (float &v : im.data)
      v = std::clamp(v * dexp, 0.0f, 1.0f);
    return;
  }
  rgbToHsv(im);
  const size_t plane = (size_t)im.w * im.h;
  for (size_t i = 0; i < plane; ++i) {
    im.data[plane + i] *= dsat;
    im.data[2 * plane + i] *= dexp;
    float &h = im.data[i];
    h = h + dhue;
    if (h > 1)
      h -= 1;
    if (h < 0)
      h += 1;
  }
  hsvToRgb(im);
  for (float &v : im.data)
    v = std::clamp(v, 0.0f, 1.0f);
}

void qsim::train::flipImage(rt::Image &im) {
  for (int k = 0; k < im.c; ++k)
    for (int y = 0; y < im.h; ++y)
      for (int x = 0; x < im.w / 2; ++x)
        std::swap(im.at(x, y, k), im.at(im.w - 1 - x, y, k));
}

std::unique_ptr<DataLoader> DataLoader::create(const DataOptions &options,
                                               std::string &error) {
  std::unique_ptr<DataLoader> d(new DataLoader());
  d->opts = options;
  d->opts.batch = std::max(options.batch, 1);
  d->opts.threads = std::max(options.threads, 1);
  for (const std::string &dir : options.images) {
    size_t before = d->files.size();
    if (!rt::listImageFiles(dir, d->files, error))
      return nullptr;
    if (d->files.size() == before) {
      error = "'" + dir + "' holds no images (jpg, png, bmp, ppm, ...)";
      return nullptr;
    }
  }
  if (d->files.empty()) {
    error = "no training images (--images)";
    return nullptr;
  }
  for (const std::string &f : d->files) {
    std::vector<rt::GroundTruth> truth;
    bool missing = true;
    if (!options.labels.empty() &&
        !readLabels(rt::labelPathForImage(f, options.labels), options.classes,
                    truth, missing, error))
      return nullptr;
    d->labels.push_back(std::move(truth));
    d->hasLabels.push_back(!options.labels.empty() && !missing);
    d->cache.push_back(std::make_unique<Cached>());
  }
  for (int t = 0; t < d->opts.threads; ++t)
    d->workers.emplace_back([p = d.get()] { p->worker(); });
  return d;
}

DataLoader::~DataLoader() {
  {
    std::lock_guard<std::mutex> lock(mutex);
    stopping = true;
  }
  wake.notify_all();
  for (std::thread &t : workers)
    t.join();
}

size_t DataLoader::labeledCount() const {
  return std::count(hasLabels.begin(), hasLabels.end(), 1);
}

bool DataLoader::image(size_t index, rt::Image &out, const Cached *&bytes,
                       std::string &error) {
  bytes = nullptr;
  Cached &c = *cache[index];
  bool decodedNow = false;
  std::call_once(c.once, [&] {
    rt::Image im;
    if (!rt::loadImage(files[index], im, c.error))
      return;
    decodedNow = true;
    size_t bytes = im.data.size();
    if (cachedBytes + bytes > opts.cacheBytes) {
      out = std::move(im);
      return; // too many to keep: decoded again on the next use
    }
    c.w = im.w;
    c.h = im.h;
    c.pixels.resize(bytes);
    for (size_t i = 0; i < bytes; ++i)
      c.pixels[i] = (uint8_t)std::lround(im.data[i] * 255.0f);
    cachedBytes += bytes;
    out = std::move(im);
  });
  if (!c.error.empty()) {
    error = c.error;
    return false;
  }
  if (decodedNow)
    return true;
  if (c.pixels.empty())
    return rt::loadImage(files[index], out, error);
  bytes = &c;
  return true;
}

rt::Image DataLoader::Cached::toImage() const {
  rt::Image out;
  out.w = w;
  out.h = h;
  out.c = 3;
  out.data.resize(pixels.size());
  for (size_t i = 0; i < pixels.size(); ++i)
    out.data[i] = u8ToFloat(pixels[i]);
  return out;
}

void DataLoader::sampleOrder(int64_t epoch, std::vector<size_t> &order) const {
  order.resize(files.size());
  for (size_t i = 0; i < order.size(); ++i)
    order[i] = i;
  Random rng(opts.seed * 0x100000001b3ull + (uint64_t)epoch);
  for (size_t i = order.size(); i > 1; --i)
    std::swap(order[i - 1], order[rng.next() % i]);
}

/// The letterbox geometry of rt::letterboxImage, for the labels.
static void letterboxBoxes(std::vector<rt::GroundTruth> &truth, int imW,
                           int imH, int netW, int netH) {
  int newW, newH;
  if (((float)netW / imW) < ((float)netH / imH)) {
    newW = netW;
    newH = (int)(((int64_t)imH * netW) / imW);
  } else {
    newH = netH;
    newW = (int)(((int64_t)imW * netH) / imH);
  }
  float ox = (float)((netW - newW) / 2) / netW,
        oy = (float)((netH - newH) / 2) / netH;
  float sx = (float)newW / netW, sy = (float)newH / netH;
  for (rt::GroundTruth &g : truth) {
    g.box.x = g.box.x * sx + ox;
    g.box.y = g.box.y * sy + oy;
    g.box.w *= sx;
    g.box.h *= sy;
  }
}

bool DataLoader::build(int64_t step, Batch &out, std::string &error) {
  const int b = opts.batch, netW = opts.netW, netH = opts.netH;
  out = Batch();
  out.step = step;
  out.n = b;
  out.h = netH;
  out.w = netW;
  out.data.resize((size_t)b * 3 * netH * netW);
  std::vector<size_t> order;
  int64_t orderEpoch = -1;
  const Augmentation &aug = opts.augmentation;
  for (int k = 0; k < b; ++k) {
    int64_t flat = step * b + k, epoch = flat / (int64_t)files.size();
    if (epoch != orderEpoch)
      sampleOrder(orderEpoch = epoch, order);
    size_t index = order[flat % files.size()];
    rt::Image im;
    const Cached *bytes;
    if (!image(index, im, bytes, error))
      return false;
    // Cached bytes are cropped and resized in one pass (the same values as
    // cropImage then resizeImage, without two full-size float copies per
    // sample); letterboxing reads the float image.
    if (bytes && opts.letterbox)
      im = bytes->toImage();
    else if (bytes) {
      im.w = bytes->w;
      im.h = bytes->h;
    }
    std::vector<rt::GroundTruth> truth = labels[index];
    rt::Image sized;
    if (aug.enabled) {
      // AlexeyAB load_data_detection (no OpenCV): a jittered crop resized
      // to the network, a left-right flip, an HSV distortion.
      Random rng(opts.seed ^ mix((uint64_t)flat + 0x51ed2701ull));
      int dw = (int)(im.w * aug.jitter), dh = (int)(im.h * aug.jitter);
      int pleft = (int)rng.uniform(-dw, dw), pright = (int)rng.uniform(-dw, dw);
      int ptop = (int)rng.uniform(-dh, dh), pbot = (int)rng.uniform(-dh, dh);
      int sw = std::max(im.w - pleft - pright, 1);
      int sh = std::max(im.h - ptop - pbot, 1);
      float sx = (float)sw / im.w, sy = (float)sh / im.h;
      float dx = ((float)pleft / im.w) / sx, dy = ((float)ptop / im.h) / sy;
      bool flip = aug.flip && rng.next() % 2;
      if (bytes && !opts.letterbox) {
        sized = rt::cropResizeBytes(bytes->pixels.data(), im.w, im.h, 3, pleft,
                                    ptop, sw, sh, netW, netH);
      } else {
        rt::Image cropped = rt::cropImage(im, pleft, ptop, sw, sh);
        sized = opts.letterbox ? rt::letterboxImage(cropped, netW, netH)
                               : rt::resizeImage(cropped, netW, netH);
      }
      if (flip)
        flipImage(sized);
      float dhue = rng.uniform(-aug.hue, aug.hue);
      float dsat = rng.scale(aug.saturation), dexp = rng.scale(aug.exposure);
      distortImage(sized, dhue, dsat, dexp);
      truth =
          correctBoxes(truth, dx, dy, 1.0f / sx, 1.0f / sy, flip, netW, netH);
      if (opts.letterbox)
        letterboxBoxes(truth, sw, sh, netW, netH);
    } else {
      if (bytes && !opts.letterbox)
        sized = rt::cropResizeBytes(bytes->pixels.data(), im.w, im.h, 3, 0, 0,
                                    im.w, im.h, netW, netH);
      else
        sized = opts.letterbox ? rt::letterboxImage(im, netW, netH)
                               : rt::resizeImage(im, netW, netH);
      if (opts.letterbox)
        letterboxBoxes(truth, im.w, im.h, netW, netH);
    }
    std::copy(sized.data.begin(), sized.data.end(),
              out.data.begin() + (size_t)k * 3 * netH * netW);
    out.truth.push_back(std::move(truth));
    out.labeled.push_back(hasLabels[index]);
    out.files.push_back(files[index]);
  }
  return true;
}

void DataLoader::worker() {
  std::unique_lock<std::mutex> lock(mutex);
  const int64_t depth = std::max(2, opts.threads);
  while (true) {
    wake.wait(lock, [&] { return stopping || nextToBuild <= wanted + depth; });
    if (stopping)
      return;
    int64_t step = nextToBuild++;
    lock.unlock();
    Batch batch;
    std::string error;
    bool ok = build(step, batch, error);
    lock.lock();
    if (step < wanted)
      continue; // nobody waits for it any more
    if (ok)
      done[step] = std::move(batch);
    else
      failed[step] = error;
    ready.notify_all();
  }
}

bool DataLoader::get(int64_t step, Batch &out, std::string &error) {
  std::unique_lock<std::mutex> lock(mutex);
  wanted = step;
  if (!done.count(step) && !failed.count(step) && nextToBuild < step)
    nextToBuild = step; // a jump ahead (the first step of a resume)
  done.erase(done.begin(), done.lower_bound(step));
  wake.notify_all();
  ready.wait(lock, [&] { return done.count(step) || failed.count(step); });
  if (failed.count(step)) {
    error = failed[step];
    return false;
  }
  out = std::move(done[step]);
  done.erase(step);
  return true;
}
