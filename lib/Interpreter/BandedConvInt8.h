//===- BandedConvInt8.h - int8 convolution in bands (internal) --*- C++ -*-===//
//
// The fast int8 convolution runs in bands of output rows whose int32
// accumulators stay in cache (BandedConvInt8.cpp); its kernel is built by
// buildDnnlConvInt8 (Plan.h).
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_LIB_INTERPRETER_BANDEDCONVINT8_H
#define QSIM_LIB_INTERPRETER_BANDEDCONVINT8_H

#include <cstdint>

namespace qsim::interp {

/// Accumulator bytes per band for plans created from now on (0: the
/// default). Tests use tiny bands to exercise first, middle and last bands
/// on small networks.
void setInt8ConvBandBytes(int64_t bytes);

} // namespace qsim::interp

#endif
