//===- QSimDialect.h - the qsim dialect -------------------------*- C++ -*-===//
#ifndef QSIM_DIALECT_QSIM_IR_QSIMDIALECT_H
#define QSIM_DIALECT_QSIM_IR_QSIMDIALECT_H
#include "qsim/Dialect/QSim/IR/QSimOps.h"
#endif
