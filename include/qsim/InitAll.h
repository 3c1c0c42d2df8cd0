//===- InitAll.h - register qsim dialects and passes -----------*- C++ -*-===//
#ifndef QSIM_INITALL_H
#define QSIM_INITALL_H
#include "qsim/Support/ModelIO.h"
#include "qsim/Transforms/Passes.h"
#endif
