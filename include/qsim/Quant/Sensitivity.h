//===- Sensitivity.h - mixed-precision search -------------------*- C++ -*-===//

#ifndef QSIM_QUANT_SENSITIVITY_H
#define QSIM_QUANT_SENSITIVITY_H

#include "qsim/Evaluation/ModelMeasures.h"
#include "qsim/Evaluation/ShardedEvaluation.h"
#include "qsim/Quant/Quantizer.h"

#include "llvm/Support/raw_ostream.h"

#include <map>
#include <string>
#include <vector>

namespace qsim::quantization {

struct SearchOptions {
  /// The precisions a layer may get besides fp32, fastest first (int8,
  /// w8a16, bf16, fp16): a layer tries them in this order and keeps the first
  /// with which the model meets the bounds.
  std::vector<Precision> precisions = {Precision::Int8, Precision::W8A16,
                                       Precision::FP16};
  /// Relative cost per MAC of each precision. When given, the candidate
  /// plans are compared by this model (deterministic) instead of timed.
  std::map<Precision, double> costs;
  /// Forward runs per candidate plan when timing (medians, interleaved).
  int timeRuns = 5;
  double minSqnr = 0;     // dB; 0 = no SQNR constraint
  double maxMapDrop = -1; // points; < 0 = no mAP constraint
  double budget = 0;      // stop once float MACs <= budget * total MACs
  std::string images, labels;
  int maxImages = 16;
  QuantizeOptions quantize;
  /// Where the mAP checks (the float model's, each candidate's) run: in
  /// process by default, or by sharded qsim-run processes.
  eval::ShardedEvalOptions evaluation;
};

/// The `auto` mode of --qsim-assign-precision (see Passes.td). The module
/// must have folded batch norms and calibrated ranges. Prints its table.
mlir::LogicalResult searchPrecision(mlir::ModuleOp module,
                                    const SearchOptions &options,
                                    llvm::raw_ostream &os);

/// Parses `precisions=` items (int8, w8a16, bf16, fp16; fp32 is implied) into
/// speed order, fastest first.
bool parseSearchPrecisions(llvm::ArrayRef<std::string> items,
                           std::vector<Precision> &out, std::string &error);

/// Parses `costs=` items `precision:cost` (cost > 0); every precision in
/// `needed` must get one.
bool parsePrecisionCosts(llvm::ArrayRef<std::string> items,
                         llvm::ArrayRef<Precision> needed,
                         std::map<Precision, double> &out, std::string &error);

/// The cost model's price of a plan: the sum over its layers (MACs,
/// precision) of MACs times the precision's cost.
double planCost(llvm::ArrayRef<std::pair<int64_t, Precision>> layers,
                const std::map<Precision, double> &costs);

/// Median of a sample (the mean of the middle two for an even count; 0 for
/// none).
double median(std::vector<double> values);

} // namespace qsim::quantization

#endif
