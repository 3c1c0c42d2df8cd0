//===- Shapes.cpp - Darknet's output-shape formulas -----------------------===//

#include "qsim/Dialect/QSim/IR/Shapes.h"

#include <sstream>

using namespace qsim::shapes;

std::string CHW::str() const {
  std::ostringstream os;
  os << c << "x" << h << "x" << w;
  return os.str();
}

static bool fail(std::string &error, const std::string &msg) {
  error = msg;
  return false;
}

bool qsim::shapes::conv2d(const CHW &in, int64_t filters, int64_t kh,
                          int64_t kw, int64_t sy, int64_t sx, int64_t py,
                          int64_t px, int64_t groups, int64_t dilation,
                          CHW &out, std::string &error) {
  if (filters < 1)
    return fail(error, "filters must be >= 1, got " + std::to_string(filters));
  if (kh < 1 || kw < 1)
    return fail(error, "kernel size must be >= 1");
  if (sy < 1 || sx < 1)
    return fail(error, "stride must be >= 1");
  if (py < 0 || px < 0)
    return fail(error, "padding must be >= 0");
  if (dilation < 1)
    return fail(error, "dilation must be >= 1");
  if (groups < 1)
    return fail(error, "groups must be >= 1");
  if (in.c % groups != 0)
    return fail(error, "input channels (" + std::to_string(in.c) +
                           ") not divisible by groups (" +
                           std::to_string(groups) + ")");
  if (filters % groups != 0)
    return fail(error, "filters (" + std::to_string(filters) +
                           ") not divisible by groups (" +
                           std::to_string(groups) + ")");
  // AlexeyAB: dilation does not enter the shape formula (docs/darknet.md §R3).
  int64_t oh = (in.h + 2 * py - kh) / sy + 1;
  int64_t ow = (in.w + 2 * px - kw) / sx + 1;
  if (in.h + 2 * py < kh || in.w + 2 * px < kw || oh < 1 || ow < 1)
    return fail(error, "kernel " + std::to_string(kh) + "x" +
                           std::to_string(kw) + " larger than padded input " +
                           in.str());
  out = {filters, oh, ow};
  return true;
}

bool qsim::shapes::maxpool(const CHW &in, int64_t size, int64_t sy, int64_t sx,
                           int64_t padding, CHW &out, std::string &error) {
  if (size < 1)
    return fail(error, "size must be >= 1");
  if (sy < 1 || sx < 1)
    return fail(error, "stride must be >= 1");
  if (padding < 0)
    return fail(error, "padding must be >= 0");
  if (in.h + padding < size || in.w + padding < size)
    return fail(error, "window larger than padded input " + in.str());
  out = {in.c, (in.h + padding - size) / sy + 1,
         (in.w + padding - size) / sx + 1};
  return true;
}

bool qsim::shapes::route(const std::vector<CHW> &ins, int64_t groups,
                         int64_t groupId, CHW &out, std::string &error) {
  if (ins.empty())
    return fail(error, "route needs at least one input layer");
  if (groups < 1)
    return fail(error, "groups must be >= 1");
  if (groupId < 0 || groupId >= groups)
    return fail(error,
                "group_id " + std::to_string(groupId) +
                    " out of range for groups=" + std::to_string(groups));
  int64_t c = 0;
  for (size_t i = 0; i < ins.size(); ++i) {
    if (ins[i].h != ins[0].h || ins[i].w != ins[0].w)
      return fail(error, "input " + std::to_string(i) + " is " + ins[i].str() +
                             " but input 0 is " + ins[0].str() +
                             " (route inputs must share width and height)");
    if (ins[i].c % groups != 0)
      return fail(
          error,
          "input " + std::to_string(i) + " has " + std::to_string(ins[i].c) +
              " channels, not divisible by groups=" + std::to_string(groups));
    c += ins[i].c / groups;
  }
  out = {c, ins[0].h, ins[0].w};
  return true;
}

bool qsim::shapes::shortcut(const std::vector<CHW> &ins, CHW &out,
                            std::string &error) {
  if (ins.size() < 2)
    return fail(error, "shortcut needs the previous layer and a from= layer");
  for (size_t i = 1; i < ins.size(); ++i)
    if (ins[i].h != ins[0].h || ins[i].w != ins[0].w)
      return fail(error, "from layer is " + ins[i].str() +
                             " but the previous layer is " + ins[0].str() +
                             " (shortcut needs equal width and height)");
  out = ins[0];
  return true;
}

bool qsim::shapes::upsample(const CHW &in, int64_t stride, CHW &out,
                            std::string &error) {
  if (stride == 0)
    return fail(error, "stride must not be 0");
  if (stride > 0) {
    out = {in.c, in.h * stride, in.w * stride};
    return true;
  }
  int64_t d = -stride;
  if (in.h % d != 0 || in.w % d != 0)
    return fail(error, "input " + in.str() + " not divisible by downsample " +
                           std::to_string(d));
  out = {in.c, in.h / d, in.w / d};
  return true;
}

bool qsim::shapes::crop(const CHW &in, int64_t cropHeight, int64_t cropWidth,
                        CHW &out, std::string &error) {
  if (cropHeight < 1 || cropWidth < 1)
    return fail(error, "crop_height and crop_width must be >= 1, got " +
                           std::to_string(cropHeight) + "x" +
                           std::to_string(cropWidth));
  // Darknet would read outside the input (its offset (H - h)/2 < 0).
  if (cropHeight > in.h || cropWidth > in.w)
    return fail(error, "crop " + std::to_string(cropHeight) + "x" +
                           std::to_string(cropWidth) +
                           " (height x width) "
                           "does not fit in the input " +
                           in.str());
  out = {in.c, cropHeight, cropWidth};
  return true;
}

bool qsim::shapes::local(const CHW &in, int64_t filters, int64_t size,
                         int64_t stride, int64_t pad, CHW &out,
                         std::string &error) {
  if (filters < 1 || size < 1 || stride < 1)
    return fail(error, "filters, size and stride must be >= 1, got " +
                           std::to_string(filters) + ", " +
                           std::to_string(size) + ", " + std::to_string(stride));
  if (pad != 0 && pad != 1)
    return fail(error, "pad must be 0 or 1 (Darknet pads one pixel), got " +
                           std::to_string(pad));
  // Darknet sizes the output as (in - 1)/s + 1 with pad, but im2col reads
  // windows of (in + 2 - size)/s + 1: they agree only for size 3.
  if (pad && size != 3)
    return fail(error, "pad=1 needs size=3 (Darknet's output size and its "
                       "im2col disagree otherwise), got size=" +
                           std::to_string(size));
  int64_t h = pad ? in.h - 1 : in.h - size, w = pad ? in.w - 1 : in.w - size;
  if (h < 0 || w < 0)
    return fail(error, "a " + std::to_string(size) + "x" +
                           std::to_string(size) + " window does not fit in " +
                           in.str());
  out = {filters, h / stride + 1, w / stride + 1};
  return true;
}

bool qsim::shapes::reorg3d(const CHW &in, int64_t stride, bool reverse,
                           CHW &out, std::string &error) {
  if (stride < 1)
    return fail(error, "stride must be >= 1, got " + std::to_string(stride));
  int64_t s2 = stride * stride;
  if (!reverse) {
    if (in.h % stride || in.w % stride)
      return fail(error, "width and height of " + in.str() +
                             " must be multiples of stride " +
                             std::to_string(stride));
    out = {in.c * s2, in.h / stride, in.w / stride};
    return true;
  }
  // Darknet's reverse mapping divides the channels by s^2 twice.
  if (in.c % (s2 * s2))
    return fail(error, "reverse needs channels divisible by stride^4 = " +
                           std::to_string(s2 * s2) + ", got " + in.str());
  out = {in.c / s2, in.h * stride, in.w * stride};
  return true;
}

bool qsim::shapes::reorg(const CHW &in, int64_t stride, bool reverse, CHW &out,
                         std::string &error) {
  if (stride < 1)
    return fail(error, "stride must be >= 1");
  int64_t s2 = stride * stride;
  if (!reverse) {
    if (in.h % stride != 0 || in.w % stride != 0)
      return fail(error, "input " + in.str() + " not divisible by stride " +
                             std::to_string(stride));
    // Darknet's reorg_cpu reads the buffer as c/stride^2 channels
    // (docs/darknet.md §R4.9): other channel counts read past the input.
    if (in.c % s2 != 0)
      return fail(error, "input channels " + std::to_string(in.c) +
                             " not divisible by stride^2");
    out = {in.c * s2, in.h / stride, in.w / stride};
  } else {
    if (in.c % s2 != 0)
      return fail(error, "input channels " + std::to_string(in.c) +
                             " not divisible by stride^2");
    out = {in.c / s2, in.h * stride, in.w * stride};
  }
  return true;
}

bool qsim::shapes::scaleChannels(const CHW &scales, const CHW &features,
                                 bool scaleWH, CHW &out, std::string &error) {
  if (!scaleWH) {
    if (scales.h != 1 || scales.w != 1 || scales.c != features.c)
      return fail(error, "scales must be 1x1x" + std::to_string(features.c) +
                             ", got " + scales.str());
  } else if (scales.c != 1 || scales.h != features.h ||
             scales.w != features.w) {
    return fail(error, "scale_wh scales must be " + std::to_string(features.h) +
                           "x" + std::to_string(features.w) + "x1, got " +
                           scales.str());
  }
  out = features;
  return true;
}

bool qsim::shapes::yolo(const CHW &in, int64_t classes, int64_t maskCount,
                        CHW &out, std::string &error) {
  if (classes < 1)
    return fail(error, "classes must be >= 1");
  if (maskCount < 1)
    return fail(error, "mask must name at least one anchor");
  if (in.c != maskCount * (classes + 5))
    return fail(error, "input has " + std::to_string(in.c) + " channels but " +
                           std::to_string(maskCount) + " anchors x (classes " +
                           std::to_string(classes) + " + 5) = " +
                           std::to_string(maskCount * (classes + 5)) +
                           " are needed");
  out = in;
  return true;
}

bool qsim::shapes::region(const CHW &in, int64_t classes, int64_t coords,
                          int64_t num, CHW &out, std::string &error) {
  if (classes < 1 || num < 1 || coords < 4)
    return fail(error, "classes and num must be >= 1, coords >= 4");
  if (in.c != num * (classes + coords + 1))
    return fail(error, "input has " + std::to_string(in.c) +
                           " channels but num " + std::to_string(num) +
                           " x (classes + coords + 1) = " +
                           std::to_string(num * (classes + coords + 1)) +
                           " are needed");
  out = in;
  return true;
}
