//===- CfgParserTest.cpp - Darknet cfg lexing
//------------------------------===//

#include "qsim/Target/Darknet/CfgParser.h"

#include <gtest/gtest.h>

using namespace qsim::darknet;

namespace {
struct Diags {
  std::vector<std::string> errors, warnings;
  CfgDiagFn fn() {
    return [this](unsigned line, bool isError, const std::string &msg) {
      (isError ? errors : warnings)
          .push_back(std::to_string(line) + ": " + msg);
    };
  }
};
} // namespace

TEST(CfgLexer, StripsAllWhitespaceLikeDarknet) {
  Diags d;
  std::vector<CfgSection> s;
  ASSERT_TRUE(
      lexCfg("[ net ]\r\nwidth = 4 16\n\n# c\n;c\n[route]\nlayers = -1, 8\n", s,
             d.fn()));
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0].type, "net");
  EXPECT_EQ(s[0].options[0].value, "416");
  EXPECT_EQ(s[1].options[0].value, "-1,8");
  EXPECT_EQ(s[1].options[0].line, 7u);
  EXPECT_TRUE(d.errors.empty());
}

TEST(CfgLexer, InlineCommentIsStrippedWithAWarning) {
  Diags d;
  std::vector<CfgSection> s;
  ASSERT_TRUE(
      lexCfg("[net]\n[convolutional]\nactivation=leaky # x\n", s, d.fn()));
  EXPECT_EQ(s[1].options[0].value, "leaky");
  ASSERT_EQ(d.warnings.size(), 1u);
  EXPECT_NE(d.warnings[0].find("leaky#x"), std::string::npos);
}

TEST(CfgLexer, RejectsMalformedLines) {
  Diags d;
  std::vector<CfgSection> s;
  EXPECT_FALSE(lexCfg("width=3\n[net]\nfoo\nbar=\n[yolo\n", s, d.fn()));
  ASSERT_EQ(d.errors.size(), 4u);
  EXPECT_EQ(d.errors[0].rfind("1: option 'width' before", 0), 0u);
  EXPECT_EQ(d.errors[1].rfind("3: malformed line 'foo'", 0), 0u);
  EXPECT_EQ(d.errors[2].rfind("4: key 'bar' has an empty value", 0), 0u);
  EXPECT_EQ(d.errors[3].rfind("5: section header", 0), 0u);
}

TEST(CfgLexer, FirstDuplicateWins) {
  Diags d;
  std::vector<CfgSection> s;
  ASSERT_TRUE(lexCfg("[net]\nwidth=1\nwidth=2\n", s, d.fn()));
  ASSERT_EQ(s[0].options.size(), 1u);
  EXPECT_EQ(s[0].options[0].value, "1");
  EXPECT_EQ(d.warnings.size(), 1u);
}

TEST(SectionReader, TypedGettersReportBadValues) {
  Diags d;
  std::vector<CfgSection> s;
  ASSERT_TRUE(lexCfg("[conv]\nsize=3.7\nfilters=16\nanchors=1,2,x\nmask=0,1,\n",
                     s, d.fn()));
  CfgDiagFn fn = d.fn();
  SectionReader r(s[0], "layer 0 (convolutional)", fn);
  EXPECT_EQ(r.getInt("filters", 1), 16);
  EXPECT_EQ(r.getInt("size", 1), 1); // default after the error
  EXPECT_FALSE(r.ok());
  EXPECT_FALSE(r.getFloatList("anchors").has_value());
  // Darknet reads "0,1," as 0, 1, 0 (the empty item is atoi("") = 0):
  // refused rather than silently dropped (issue 20).
  EXPECT_FALSE(r.getIntList("mask").has_value());
  ASSERT_EQ(d.errors.size(), 3u);
  EXPECT_EQ(d.errors[0],
            "2: layer 0 (convolutional): 'size=3.7': expected an integer");
  EXPECT_EQ(d.errors[2],
            "5: layer 0 (convolutional): 'mask=0,1,' ends with ','; Darknet "
            "would read an extra item 0: remove the comma or write the item");
}

TEST(KnownKeys, SuggestsTheClosestKey) {
  EXPECT_EQ(suggestKey("convolutional", "fliters"), "filters");
  EXPECT_EQ(suggestKey("convolutional", "zzzzzzzz"), "");
  EXPECT_TRUE(getKnownKeys("nonsense").empty());
}
