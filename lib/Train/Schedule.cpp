//===- Schedule.cpp - the learning rate of every step --------------------===//

#include "Schedule.h"
#include "qsim/Train/NetSpec.h"

#include <cmath>
#include <sstream>

using namespace qsim::train;

double Schedule::rate(int64_t s) const {
  if (s < burnIn)
    return lr * std::pow((double)s / burnIn, burnInPower);
  switch (policy) {
  case Policy::Constant:
    return lr;
  case Policy::Steps: {
    double r = lr;
    for (size_t i = 0; i < steps.size() && i < scales.size(); ++i) {
      if (steps[i] > s)
        return r;
      r *= scales[i];
    }
    return r;
  }
  case Policy::Cosine: {
    double span = std::max<int64_t>(total - burnIn, 1);
    double t = std::min(1.0, (double)(s - burnIn) / span);
    return lr * 0.5 * (1 + std::cos(M_PI * t));
  }
  case Policy::Poly:
    return lr *
           std::pow(1 - (double)s / std::max<int64_t>(total, 1), polyPower);
  }
  return lr;
}

std::string Schedule::describe() const {
  std::ostringstream os;
  os << "lr " << lr;
  if (burnIn)
    os << ", burn-in " << burnIn << " steps";
  switch (policy) {
  case Policy::Constant:
    os << ", constant";
    break;
  case Policy::Steps:
    os << ", steps";
    for (size_t i = 0; i < steps.size(); ++i)
      os << (i ? "," : " ") << steps[i] << "x" << scales[i];
    break;
  case Policy::Cosine:
    os << ", cosine to 0 at step " << total;
    break;
  case Policy::Poly:
    os << ", poly (power " << polyPower << ")";
    break;
  }
  return os.str();
}

static bool parseList(const std::string &text, std::vector<double> &out) {
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    char *end = nullptr;
    double v = std::strtod(item.c_str(), &end);
    while (end && (*end == ' ' || *end == '\t'))
      ++end;
    if (end == item.c_str() || (end && *end))
      return false;
    out.push_back(v);
  }
  return true;
}

bool qsim::train::scheduleFromNet(const std::map<std::string, std::string> &net,
                                  int64_t total, const ScheduleRequest &request,
                                  Schedule &out, std::string &error) {
  out = Schedule();
  out.total = std::max<int64_t>(total, 1);
  out.lr = request.lr.value_or(cfgNumber(net, "learning_rate", 0.001));
  out.burnInPower = cfgNumber(net, "power", 4);
  out.polyPower = out.burnInPower;
  double maxBatches = cfgNumber(net, "max_batches", 0);
  // The cfg's schedule is for max_batches; a shorter fine-tune keeps its
  // shape.
  double factor = maxBatches > total ? (double)total / maxBatches : 1.0;
  out.burnIn = request.burnIn.value_or(
      (int64_t)std::llround(cfgNumber(net, "burn_in", 0) * factor));
  std::string policy = net.count("policy") ? net.at("policy") : "constant";
  if (request.policy) {
    out.policy = *request.policy;
  } else if (policy == "steps" || policy == "step") {
    out.policy = Policy::Steps;
  } else if (policy == "sgdr" || policy == "cosine") {
    out.policy = Policy::Cosine;
  } else if (policy == "poly") {
    out.policy = Policy::Poly;
  } else if (policy == "constant") {
    out.policy = Policy::Constant;
  } else {
    error = "[net] policy=" + policy +
            " is not one qsim-train follows (constant, steps, sgdr, poly): "
            "choose --schedule";
    return false;
  }
  if (out.policy == Policy::Steps) {
    std::vector<double> steps, scales;
    if (policy == "step") {
      double step = cfgNumber(net, "step", 1),
             scale = cfgNumber(net, "scale", 1);
      for (double s = step; s < maxBatches; s += step)
        steps.push_back(s), scales.push_back(scale);
    } else if (net.count("steps") &&
               (!parseList(net.at("steps"), steps) || !net.count("scales") ||
                !parseList(net.at("scales"), scales) ||
                steps.size() != scales.size())) {
      error =
          "[net] steps=" + net.at("steps") + " needs as many scales= values";
      return false;
    }
    if (steps.empty() && request.policy) {
      // --schedule steps without cfg steps: x0.1 at 80 % and 90 %.
      steps = {0.8 * total / factor, 0.9 * total / factor};
      scales = {0.1, 0.1};
    }
    for (size_t i = 0; i < steps.size(); ++i) {
      out.steps.push_back((int64_t)std::llround(steps[i] * factor));
      out.scales.push_back(scales[i]);
    }
  }
  if (!(out.lr > 0) || !std::isfinite(out.lr)) {
    error = "the learning rate must be a positive number";
    return false;
  }
  return true;
}
