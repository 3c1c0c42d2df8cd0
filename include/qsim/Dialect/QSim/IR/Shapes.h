//===- Shapes.h - Darknet's output-shape formulas ---------------*- C++ -*-===//
//
// docs/darknet.md §R3, shared by the op verifiers and the cfg importer so
// that the two can never disagree. Each returns false and sets `error` when
// the parameters are invalid.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_DIALECT_QSIM_IR_SHAPES_H
#define QSIM_DIALECT_QSIM_IR_SHAPES_H

#include <cstdint>
#include <string>
#include <vector>

namespace qsim::shapes {

struct CHW {
  int64_t c = 0, h = 0, w = 0;
  bool operator==(const CHW &o) const {
    return c == o.c && h == o.h && w == o.w;
  }
  bool operator!=(const CHW &o) const { return !(*this == o); }
  int64_t size() const { return c * h * w; }
  std::string str() const;
};

bool conv2d(const CHW &in, int64_t filters, int64_t kh, int64_t kw,
            int64_t sy, int64_t sx, int64_t py, int64_t px, int64_t groups,
            int64_t dilation, CHW &out, std::string &error);
bool maxpool(const CHW &in, int64_t size, int64_t sy, int64_t sx,
             int64_t padding, CHW &out, std::string &error);
bool route(const std::vector<CHW> &ins, int64_t groups, int64_t groupId,
           CHW &out, std::string &error);
bool shortcut(const std::vector<CHW> &ins, CHW &out, std::string &error);
bool upsample(const CHW &in, int64_t stride, CHW &out, std::string &error);
/// Darknet's [crop]: a crop_height x crop_width window inside the input.
bool crop(const CHW &in, int64_t cropHeight, int64_t cropWidth, CHW &out,
          std::string &error);
bool reorg(const CHW &in, int64_t stride, bool reverse, CHW &out,
           std::string &error);
/// Darknet's [local]: `pad` is a flag (one pixel); im2col must agree with
/// local_out_height, so a padded layer needs size 3.
bool local(const CHW &in, int64_t filters, int64_t size, int64_t stride,
           int64_t pad, CHW &out, std::string &error);
/// AlexeyAB's [reorg3d] (reverse=1 needs channels divisible by stride^4).
bool reorg3d(const CHW &in, int64_t stride, bool reverse, CHW &out,
             std::string &error);
bool scaleChannels(const CHW &scales, const CHW &features, bool scaleWH,
                   CHW &out, std::string &error);
bool yolo(const CHW &in, int64_t classes, int64_t maskCount, CHW &out,
          std::string &error);
bool region(const CHW &in, int64_t classes, int64_t coords, int64_t num,
            CHW &out, std::string &error);

} // namespace qsim::shapes

#endif // QSIM_DIALECT_QSIM_IR_SHAPES_H
