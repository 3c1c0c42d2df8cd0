//===- NetSpec.cpp - a qsim module as plain data for training ------------===//

#include "qsim/Train/NetSpec.h"
#include "qsim/Runtime/QuantMath.h"

#include <cmath>
#include <cstdlib>

using namespace qsim::train;

const char *qsim::train::nodeKindName(NodeKind k) {
  switch (k) {
  case NodeKind::Conv:
    return "conv2d";
  case NodeKind::Connected:
    return "connected";
  case NodeKind::BatchNorm:
    return "batchnorm";
  case NodeKind::Activation:
    return "activation";
  case NodeKind::MaxPool:
    return "maxpool";
  case NodeKind::AvgPool:
    return "avgpool";
  case NodeKind::Route:
    return "route";
  case NodeKind::Shortcut:
    return "shortcut";
  case NodeKind::Upsample:
    return "upsample";
  case NodeKind::Reorg:
    return "reorg";
  case NodeKind::ScaleChannels:
    return "scale_channels";
  case NodeKind::Softmax:
    return "softmax";
  case NodeKind::Dropout:
    return "dropout";
  case NodeKind::Yolo:
    return "yolo";
  case NodeKind::Region:
    return "region";
  }
  return "?";
}

bool NetSpec::quantized() const {
  for (const Node &n : nodes)
    if (n.isInt8() || n.fp16)
      return true;
  return false;
}

QuantGrid qsim::train::gridFromRange(float lo, float hi, GridRule rule) {
  rt::QuantChoice c = rt::chooseQuantParams(lo, hi, rule.symmetric, rule.pow2);
  return {c.scale, c.zeroPoint};
}

static bool sameGrid(QuantGrid a, QuantGrid b) {
  return a.scale == b.scale && a.zeroPoint == b.zeroPoint;
}

std::pair<float, float> qsim::train::rangeForGrid(QuantGrid g, GridRule rule) {
  float lo, hi;
  if (rule.symmetric) {
    lo = -127.0f * g.scale;
    hi = 127.0f * g.scale;
  } else {
    lo = (float)(-128 - g.zeroPoint) * g.scale;
    hi = (float)(127 - g.zeroPoint) * g.scale;
  }
  // The plain inverse may round to a neighbouring scale or zero point:
  // nudge the ends ulp by ulp until the forward rule gives `g` back.
  for (int attempt = 0; attempt < 4096; ++attempt) {
    QuantGrid got = gridFromRange(lo, hi, rule);
    if (sameGrid(got, g))
      return {lo, hi};
    if (got.scale < g.scale) {
      hi = std::nextafter(hi, INFINITY);
      if (!rule.symmetric && lo < 0)
        lo = std::nextafter(lo, -INFINITY);
    } else if (got.scale > g.scale) {
      hi = std::nextafter(hi, -INFINITY);
      if (!rule.symmetric && lo < 0 && hi <= 0)
        lo = std::nextafter(lo, 0.0f);
    } else if (got.zeroPoint > g.zeroPoint) {
      // zp = -128 - lo/scale: a less negative lo lowers it; hi follows to
      // keep the scale.
      lo = std::nextafter(lo, 0.0f);
      hi = std::nextafter(hi, INFINITY);
    } else {
      lo = std::nextafter(lo, -INFINITY);
      hi = std::nextafter(hi, -INFINITY);
    }
  }
  return {lo, hi};
}

double qsim::train::cfgNumber(const std::map<std::string, std::string> &cfg,
                              const std::string &key, double fallback) {
  auto it = cfg.find(key);
  if (it == cfg.end())
    return fallback;
  const char *s = it->second.c_str();
  char *end = nullptr;
  double v = std::strtod(s, &end);
  if (end == s)
    return fallback;
  return v;
}
