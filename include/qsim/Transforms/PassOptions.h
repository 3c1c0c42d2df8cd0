//===- PassOptions.h - the types of qsim-opt pass options -------*- C++ -*-===//
//
// The enums the qsim-opt passes take as options (Passes.td), each parsed by
// qsim::EnumOptionParser so that a bad value is answered with the values
// the option accepts.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_TRANSFORMS_PASSOPTIONS_H
#define QSIM_TRANSFORMS_PASSOPTIONS_H

#include "qsim/Dialect/QSim/IR/Layers.h"
#include "qsim/Interpreter/Executor.h"
#include "qsim/Lighten/Factorization.h"
#include "qsim/Lighten/Pruning.h"
#include "qsim/Quant/AdaRound.h"
#include "qsim/Quant/BiasCorrection.h"
#include "qsim/Quant/Calibration.h"
#include "qsim/Quant/Precision.h"
#include "qsim/Quant/Quantizer.h"
#include "qsim/Runtime/QuantMath.h"
#include "qsim/Support/EnumOption.h"

QSIM_ENUM_OPTION_PARSER(qsim::Precision)
QSIM_ENUM_OPTION_PARSER(qsim::interp::KernelSet)
QSIM_ENUM_OPTION_PARSER(qsim::lighten::FactorizeMethod)
QSIM_ENUM_OPTION_PARSER(qsim::lighten::PruneCriterion)
QSIM_ENUM_OPTION_PARSER(qsim::lighten::PruneMode)
QSIM_ENUM_OPTION_PARSER(qsim::quantization::AccumulatorWidth)
QSIM_ENUM_OPTION_PARSER(qsim::quantization::ActivationScheme)
QSIM_ENUM_OPTION_PARSER(qsim::quantization::AdaRoundTarget)
QSIM_ENUM_OPTION_PARSER(qsim::quantization::BiasCorrectionMode)
QSIM_ENUM_OPTION_PARSER(qsim::quantization::CalibrationMethod)
QSIM_ENUM_OPTION_PARSER(qsim::quantization::PrecisionPreset)
QSIM_ENUM_OPTION_PARSER(qsim::quantization::ScaleKind)
QSIM_ENUM_OPTION_PARSER(qsim::quantization::WeightGranularity)
QSIM_ENUM_OPTION_PARSER(qsim::quantization::WeightRange)
QSIM_ENUM_OPTION_PARSER(qsim::rt::Rounding)

#endif
