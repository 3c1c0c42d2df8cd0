//===- EnumOption.h - enum pass options that name their values --*- C++ -*-===//
//
// Pass options of enum type (ODS `Option<..., "SomeEnum", ..., [{
// ::llvm::cl::values(...)}]>`) parse through llvm::cl::parser<SomeEnum>,
// whose error for a bad value is "Cannot find option named 'x'!". Declaring
// QSIM_ENUM_OPTION_PARSER(SomeEnum) replaces that parser by one that says
// what the option accepts:
//
//   for the --method option: 'foo' is not a valid value: expected one of
//   minmax, percentile, entropy, mse, log2
//
// It behaves as llvm::cl::parser otherwise (and MLIR's pass options, which
// derive from the parser, print values with it).
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_SUPPORT_ENUMOPTION_H
#define QSIM_SUPPORT_ENUMOPTION_H

#include "llvm/ADT/SmallVector.h"
#include "llvm/Support/CommandLine.h"

namespace qsim {

template <typename E>
class EnumOptionParser : public llvm::cl::generic_parser_base {
protected:
  class OptionInfo : public GenericOptionInfo {
  public:
    OptionInfo(llvm::StringRef name, E v, llvm::StringRef helpStr)
        : GenericOptionInfo(name, helpStr), V(v) {}
    llvm::cl::OptionValue<E> V;
  };
  llvm::SmallVector<OptionInfo, 8> Values;

public:
  explicit EnumOptionParser(llvm::cl::Option &o) : generic_parser_base(o) {}
  using parser_data_type = E;

  unsigned getNumOptions() const override { return unsigned(Values.size()); }
  llvm::StringRef getOption(unsigned n) const override {
    return Values[n].Name;
  }
  llvm::StringRef getDescription(unsigned n) const override {
    return Values[n].HelpStr;
  }
  const llvm::cl::GenericOptionValue &getOptionValue(unsigned n) const override {
    return Values[n].V;
  }

  /// True on error (llvm::cl's convention).
  bool parse(llvm::cl::Option &o, llvm::StringRef argName, llvm::StringRef arg,
             E &value) {
    llvm::StringRef given = Owner.hasArgStr() ? arg : argName;
    for (const OptionInfo &v : Values)
      if (v.Name == given) {
        value = v.V.getValue();
        return false;
      }
    std::string names;
    for (const OptionInfo &v : Values)
      names += (names.empty() ? "" : ", ") + v.Name.str();
    return o.error("'" + given + "' is not a valid value: expected one of " +
                   names);
  }

  template <class DT>
  void addLiteralOption(llvm::StringRef name, const DT &v,
                        llvm::StringRef helpStr) {
    Values.push_back(OptionInfo(name, static_cast<E>(v), helpStr));
    llvm::cl::AddLiteralOption(Owner, name);
  }
  void removeLiteralOption(llvm::StringRef name) {
    Values.erase(Values.begin() + findOption(name));
  }
};

} // namespace qsim

/// Makes llvm::cl (and so MLIR pass options) parse `ENUM` with
/// qsim::EnumOptionParser. Use at global scope, after ENUM is declared.
#define QSIM_ENUM_OPTION_PARSER(ENUM)                                          \
  namespace llvm::cl {                                                         \
  template <>                                                                  \
  class parser<ENUM> : public ::qsim::EnumOptionParser<ENUM> {                \
  public:                                                                      \
    using ::qsim::EnumOptionParser<ENUM>::EnumOptionParser;                    \
  };                                                                           \
  }

#endif
