//===- FastRequant.h - vectorised requantization (internal) -----*- C++ -*-===//
//
// The fast kernels' requantization of int32 accumulators: the same integer
// arithmetic as ref::Requant::apply (so bit-identical), written branch-free
// over channels-last rows and compiled for several instruction sets
// (target_clones) so the compiler can vectorise it.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_LIB_INTERPRETER_FASTREQUANT_H
#define QSIM_LIB_INTERPRETER_FASTREQUANT_H

#include "QuantKernels.h"

namespace qsim::interp {

/// Per-channel constants of a Requant in the form the loop wants.
struct RequantTables {
  std::vector<int32_t> bias, mult, negMult;
  std::vector<int32_t> leftShift, rightShift, negLeftShift, negRightShift;
  std::vector<int32_t> totalShift, negTotalShift; // TOSA
  int32_t zpOut = 0, lo = -128, hi = 127;
  bool leaky = false, tosa = false;
  /// The tables hold `repeat` copies of the channel pattern so that a row
  /// (repeat pixels) has at least 64 elements for the vector loops.
  int64_t channels = 0, repeat = 1;
  /// Every multiplier is below 1 (no left shift): the vector loops apply.
  bool noLeftShift = true;
  /// acc + bias never leaves int32 (setAccumulatorBound): the saturating
  /// add is a plain add.
  bool biasAddCannotOverflow = false;
  /// The packed AVX-512 loop's tables: multipliers with each pair of
  /// channels swapped (the odd lanes' multipliers where vpmuldq reads them),
  /// and the rounding division's constant plus the zero point shifted up,
  /// for x >= 0 (2^(r-1) + zp * 2^r) and x < 0 (the same minus 1 where
  /// r > 0; a leaky layer's negative r).
  std::vector<int32_t> multSwapped, roundUp, roundDown;
  /// Multipliers below 1 and h + that constant within int32 for every
  /// accumulator within the bound: the packed loop applies.
  bool roundingAddCannotOverflow = false;
  RequantTables(const ref::Requant &r, int64_t channels);
  /// Records that |acc| <= maxAbs for every accumulator (e.g. K * 128 * 255
  /// for K int8 products of a weight and an input minus its zero point).
  void setAccumulatorBound(int64_t maxAbs);
};

/// out[p][f] = requant(acc[p][f]) for channels-last data.
void requantizeChannelsLast(const int32_t *acc, int64_t pixels,
                            int64_t channels, const RequantTables &t,
                            int8_t *out);

/// The same on the calling thread only (for callers that are already split
/// over threads, e.g. one band of output rows per thread).
void requantizeChannelsLastSerial(const int32_t *acc, int64_t pixels,
                                  int64_t channels, const RequantTables &t,
                                  int8_t *out);

} // namespace qsim::interp

#endif
