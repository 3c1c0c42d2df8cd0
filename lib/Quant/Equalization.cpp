//===- Equalization.cpp - cross-layer equalization -----------------------===//

#include "qsim/Quant/Equalization.h"
#include "qsim/Dialect/QSim/IR/Layers.h"
#include "qsim/Support/Progress.h"
#include "qsim/Support/StringUtils.h"

#include <algorithm>
#include <cmath>

using namespace mlir;
using namespace qsim;
using namespace qsim::quantization;

namespace {

bool positivelyHomogeneous(Activation a) {
  return a == Activation::linear || a == Activation::relu ||
         a == Activation::leaky;
}

int64_t channelCount(Value v) {
  return cast<ShapedType>(v.getType()).getDimSize(1);
}

/// A convolution reading the producer's channel c as its input channel
/// `offset + c`.
struct Reader {
  Conv2DOp conv;
  int64_t offset = 0;
};

struct Pair {
  Conv2DOp producer;
  std::vector<Reader> readers;
};

/// The convolutions reading `p`'s channels through channel-wise
/// homogeneous data movement, or the op that couples them (null when
/// none does).
Operation *findReaders(Conv2DOp p, std::vector<Reader> &readers) {
  SmallVector<std::pair<Value, int64_t>> work = {{p.getResult(), 0}};
  while (!work.empty()) {
    auto [v, offset] = work.pop_back_val();
    for (OpOperand &use : v.getUses()) {
      Operation *user = use.getOwner();
      auto act = dyn_cast<ActivationOp>(user);
      if (isa<MaxPoolOp, UpsampleOp, DropoutOp>(user) ||
          (act && positivelyHomogeneous(act.getActivation()))) {
        work.push_back({user->getResult(0), offset});
        continue;
      }
      if (auto route = dyn_cast<RouteOp>(user);
          route && route.getGroups() == 1) {
        int64_t before = 0;
        for (unsigned i = 0; i < use.getOperandNumber(); ++i)
          before += channelCount(user->getOperand(i));
        work.push_back({route.getResult(), offset + before});
        continue;
      }
      auto conv = dyn_cast<Conv2DOp>(user);
      if (conv && use.getOperandNumber() == 0 &&
          conv->getAttrOfType<ElementsAttr>("weight")) {
        readers.push_back({conv, offset});
        continue;
      }
      return user;
    }
  }
  return nullptr;
}

std::string describeUser(Operation *op) {
  if (op->hasTrait<OpTrait::IsTerminator>())
    return "a model output";
  return describeLayer(op);
}

class Equalizer {
public:
  Equalizer(ModuleOp module, const EqualizationOptions &o)
      : module(module), o(o) {}
  FailureOr<EqualizationResult> run();

private:
  LogicalResult check();
  void findPairs();
  std::vector<float> &weights(Conv2DOp c) {
    auto it = w.find(c);
    if (it == w.end())
      it = w.try_emplace(c, getFloats(c.getWeightAttr())).first;
    return it->second;
  }
  /// Output channel ranges of `p` (max |W[c]|).
  std::vector<double> producerRanges(Conv2DOp p);
  /// Ranges of the weights reading each of `pair.producer`'s channels.
  std::vector<double> readerRanges(const Pair &pair);
  /// Scales one pair; returns the largest |s - 1|.
  double equalize(const Pair &pair);
  void writeBack();

  ModuleOp module;
  const EqualizationOptions &o;
  std::vector<Pair> pairs;
  llvm::DenseMap<Operation *, std::vector<float>> w;
  llvm::DenseMap<Operation *, std::vector<float>> bias;
  /// The producers' batch-norm statistics, scaled with their channels.
  llvm::DenseMap<Operation *, BatchNormStats> stats;
};

LogicalResult Equalizer::check() {
  func::FuncOp func = getMainFunc(module);
  if (!func)
    return module.emitError() << "--qsim-equalize: no main function";
  if (module->hasAttr("qsim.quantization"))
    return module.emitError() << "--qsim-equalize: the model is already "
                                 "quantized; equalize the float model";
  if (func.getArgAttr(0, "qsim.calib"))
    return module.emitError()
           << "--qsim-equalize: the model is calibrated; equalize before "
              "--qsim-calibrate (equalization changes the activation ranges)";
  WalkResult r = func.walk([&](Operation *op) {
    if (isa<BatchNormOp>(op)) {
      op->emitError() << describeLayer(op)
                      << ": fold its batch norm before --qsim-equalize "
                         "(--qsim-fold-batchnorm)";
      return WalkResult::interrupt();
    }
    if (auto c = dyn_cast<Conv2DOp>(op); c && !c.getWeightAttr()) {
      op->emitError() << describeLayer(op)
                      << ": has no weights (a shape-only model)";
      return WalkResult::interrupt();
    }
    return WalkResult::advance();
  });
  return failure(r.wasInterrupted());
}

void Equalizer::findPairs() {
  getMainFunc(module).walk([&](Conv2DOp p) {
    if (!positivelyHomogeneous(p.getActivation())) {
      p->emitRemark() << describeLayer(p) << ": not equalized: activation "
                      << stringifyActivation(p.getActivation())
                      << " is not positively homogeneous";
      return;
    }
    Pair pair{p, {}};
    if (Operation *coupler = findReaders(p, pair.readers)) {
      p->emitRemark() << describeLayer(p) << ": not equalized: its channels "
                      << "reach " << describeUser(coupler)
                      << ", which ties them to other layers' channels or "
                         "needs them unchanged";
      return;
    }
    if (!pair.readers.empty())
      pairs.push_back(std::move(pair));
  });
}

std::vector<double> Equalizer::producerRanges(Conv2DOp p) {
  const std::vector<float> &w1 = weights(p);
  int64_t channels = p.getFilters(), per = w1.size() / channels;
  std::vector<double> r(channels, 0.0);
  for (int64_t c = 0; c < channels; ++c)
    for (int64_t k = 0; k < per; ++k)
      r[c] = std::max(r[c], (double)std::fabs(w1[c * per + k]));
  return r;
}

/// Calls `f(index)` for every weight of `q` that reads input channel `ic`.
template <typename F>
static void forWeightsReading(Conv2DOp q, int64_t ic, F f) {
  int64_t groups = q.getGroups(), cg = q.getInputChannels() / groups;
  int64_t fpg = q.getFilters() / groups, k = q.getKernelH() * q.getKernelW();
  int64_t g = ic / cg, ci = ic % cg;
  for (int64_t fi = g * fpg; fi < (g + 1) * fpg; ++fi)
    for (int64_t j = 0; j < k; ++j)
      f((fi * cg + ci) * k + j);
}

std::vector<double> Equalizer::readerRanges(const Pair &pair) {
  Conv2DOp producer = pair.producer;
  std::vector<double> r(producer.getFilters(), 0.0);
  for (const Reader &rd : pair.readers) {
    const std::vector<float> &w2 = weights(rd.conv);
    for (size_t c = 0; c < r.size(); ++c)
      forWeightsReading(rd.conv, rd.offset + c, [&](int64_t i) {
        r[c] = std::max(r[c], (double)std::fabs(w2[i]));
      });
  }
  return r;
}

double Equalizer::equalize(const Pair &pair) {
  std::vector<double> r1 = producerRanges(pair.producer);
  std::vector<double> r2 = readerRanges(pair);
  std::vector<float> &w1 = weights(pair.producer);
  int64_t channels = r1.size(), per = w1.size() / channels;
  Operation *p = pair.producer;
  Conv2DOp producer = pair.producer;
  if (!bias.count(p))
    if (auto b = producer.getBiasAttr())
      bias[p] = getFloats(b);
  if (!stats.count(p))
    if (std::optional<BatchNormStats> st = getBatchNormStats(p))
      stats[p] = std::move(*st);
  double change = 0;
  for (int64_t c = 0; c < channels; ++c) {
    if (r1[c] <= 0 || r2[c] <= 0)
      continue;
    double s = std::sqrt(r1[c] / r2[c]); // sqrt(r1 r2) / r2
    change = std::max(change, std::fabs(s - 1));
    for (int64_t k = 0; k < per; ++k)
      w1[c * per + k] = (float)(w1[c * per + k] / s);
    if (bias.count(p))
      bias[p][c] = (float)(bias[p][c] / s);
    // Channel c's output is divided by s > 0 before a positively
    // homogeneous activation: so are its mean and deviation.
    if (stats.count(p)) {
      stats[p].mean[c] = (float)(stats[p].mean[c] / s);
      stats[p].std[c] = (float)(stats[p].std[c] / s);
    }
    for (const Reader &rd : pair.readers) {
      std::vector<float> &w2 = weights(rd.conv);
      forWeightsReading(rd.conv, rd.offset + c,
                        [&](int64_t i) { w2[i] = (float)(w2[i] * s); });
    }
  }
  return change;
}

void Equalizer::writeBack() {
  MLIRContext *ctx = module.getContext();
  for (auto &[op, values] : w) {
    auto conv = cast<Conv2DOp>(op);
    std::string base =
        "layer" +
        std::to_string(getLayerIndexFromLoc(op->getLoc()).value_or(0));
    conv.setWeightAttr(
        makeFloatAttr(ctx, conv.getWeightAttr().getShapedType().getShape(),
                      base + "_weight_equalized", values));
  }
  for (auto &[op, values] : bias) {
    std::string base =
        "layer" +
        std::to_string(getLayerIndexFromLoc(op->getLoc()).value_or(0));
    cast<Conv2DOp>(op).setBiasAttr(makeFloatAttr(
        ctx, {(int64_t)values.size()}, base + "_bias_equalized", values));
  }
  for (auto &[op, st] : stats)
    setBatchNormStats(op, st);
}

/// Nagel et al.'s objective: the mean over channels of the precision both
/// sides keep under per-tensor quantization, (r1_c / max r1)(r2_c / max r2).
static double precision(const std::vector<double> &r1,
                        const std::vector<double> &r2) {
  double m1 = *std::max_element(r1.begin(), r1.end());
  double m2 = *std::max_element(r2.begin(), r2.end());
  if (m1 <= 0 || m2 <= 0)
    return 0;
  double sum = 0;
  for (size_t c = 0; c < r1.size(); ++c)
    sum += r1[c] / m1 * (r2[c] / m2);
  return sum / r1.size();
}

FailureOr<EqualizationResult> Equalizer::run() {
  if (failed(check()))
    return failure();
  findPairs();
  EqualizationResult result;
  for (const Pair &pair : pairs) {
    EqualizationRow row;
    row.layer = getLayerIndexFromLoc(pair.producer->getLoc()).value_or(-1);
    for (const Reader &rd : pair.readers)
      row.consumers.push_back(
          getLayerIndexFromLoc(rd.conv->getLoc()).value_or(-1));
    llvm::sort(row.consumers);
    row.consumers.erase(std::unique(row.consumers.begin(), row.consumers.end()),
                        row.consumers.end());
    row.precisionBefore =
        precision(producerRanges(pair.producer), readerRanges(pair));
    result.rows.push_back(row);
  }
  // Sweeps usually settle long before maxSweeps; the bar ends there.
  ProgressBar bar("equalization", o.maxSweeps, o.progress && !pairs.empty());
  for (result.sweeps = 0; result.sweeps < o.maxSweeps;) {
    double change = 0;
    for (const Pair &pair : pairs)
      change = std::max(change, equalize(pair));
    ++result.sweeps;
    bar.update(result.sweeps, strprintf("largest change %.2g", change));
    if (change <= o.tolerance)
      break;
  }
  bar.finish();
  for (size_t i = 0; i < pairs.size(); ++i)
    result.rows[i].precisionAfter =
        precision(producerRanges(pairs[i].producer), readerRanges(pairs[i]));
  writeBack();
  return result;
}

} // namespace

FailureOr<EqualizationResult>
qsim::quantization::equalizeModule(ModuleOp module,
                                   const EqualizationOptions &options) {
  return Equalizer(module, options).run();
}

void qsim::quantization::printEqualizationReport(const EqualizationResult &r,
                                                 raw_ostream &os) {
  os << "cross-layer equalization: " << r.rows.size() << " convolution(s), "
     << r.sweeps << " sweep(s)\n";
  os << strprintf("%-8s %-20s %17s %17s\n", "layer", "read by",
                  "precision before", "precision after");
  for (const EqualizationRow &row : r.rows) {
    std::string readers;
    for (int64_t c : row.consumers)
      readers += (readers.empty() ? "" : ",") + std::to_string(c);
    os << strprintf("%-8lld %-20s %17.3f %17.3f\n", (long long)row.layer,
                    readers.c_str(), row.precisionBefore, row.precisionAfter);
  }
}
