// NodeMask: list-syntax round trip and set-algebra laws (rapidcheck), plus
// the parser's error cases.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <set>

#include "numaheap/node_mask.h"

using numaheap::kMaxNodes;
using numaheap::kNoNode;
using numaheap::NodeId;
using numaheap::NodeMask;

namespace {

// Masks biased towards what real machines have: small ids, runs, sparse
// high ids (0,8,250..255).
rc::Gen<NodeMask> gen_mask() {
  return rc::gen::map(
      rc::gen::container<std::vector<NodeId>>(
          rc::gen::oneOf(rc::gen::inRange<NodeId>(0, 16), rc::gen::inRange<NodeId>(240, 260),
                         rc::gen::inRange<NodeId>(0, kMaxNodes))),
      [](const std::vector<NodeId>& ids) {
        NodeMask m;
        for (auto id : ids) m.set(id);
        return m;
      });
}

std::set<NodeId> members(const NodeMask& m) {
  std::set<NodeId> s;
  for (NodeId id : m) s.insert(id);
  return s;
}

}  // namespace

RC_GTEST_PROP(NodeMaskProps, ListSyntaxRoundTrip, ()) {
  NodeMask m = *gen_mask();
  auto parsed = NodeMask::parse(m.to_string());
  RC_ASSERT(parsed.has_value());
  RC_ASSERT(*parsed == m);
}

RC_GTEST_PROP(NodeMaskProps, IterationMatchesTest, ()) {
  NodeMask m = *gen_mask();
  std::set<NodeId> seen = members(m);
  RC_ASSERT(seen.size() == m.count());
  for (NodeId id = 0; id < kMaxNodes; ++id) RC_ASSERT(m.test(id) == (seen.count(id) == 1));
  RC_ASSERT(m.first() == (seen.empty() ? kNoNode : *seen.begin()));
  RC_ASSERT(m.last() == (seen.empty() ? kNoNode : *seen.rbegin()));
}

RC_GTEST_PROP(NodeMaskProps, SetAlgebraLaws, ()) {
  NodeMask a = *gen_mask(), b = *gen_mask(), c = *gen_mask();
  RC_ASSERT((a | b) == (b | a));
  RC_ASSERT((a & b) == (b & a));
  RC_ASSERT(((a | b) | c) == (a | (b | c)));
  RC_ASSERT(((a & b) & c) == (a & (b & c)));
  RC_ASSERT((a & (b | c)) == ((a & b) | (a & c)));
  RC_ASSERT(~(a | b) == (~a & ~b));  // De Morgan
  RC_ASSERT(~(a & b) == (~a | ~b));
  RC_ASSERT((a - b) == (a & ~b));
  RC_ASSERT((a ^ b) == ((a - b) | (b - a)));
  RC_ASSERT(~~a == a);
  RC_ASSERT((a | ~a) == NodeMask::all());
  RC_ASSERT((a & ~a).empty());
  RC_ASSERT((a | b).contains(a));
  RC_ASSERT(a.contains(a & b));
  RC_ASSERT(a.intersects(b) == !(a & b).empty());
  RC_ASSERT((a | b).count() + (a & b).count() == a.count() + b.count());
}

TEST(NodeMask, PrintsRealMachineLists) {
  NodeMask m;
  for (NodeId id : {0u, 1u, 4u, 5u, 8u, 9u, 12u, 13u}) m.set(id);
  EXPECT_EQ(m.to_string(), "0-1,4-5,8-9,12-13");
  NodeMask n;
  n.set(0);
  n.set(8);
  for (NodeId id = 250; id <= 255; ++id) n.set(id);
  EXPECT_EQ(n.to_string(), "0,8,250-255");
  EXPECT_EQ(NodeMask().to_string(), "");
  EXPECT_EQ(NodeMask::all().to_string(), "0-1023");
}

TEST(NodeMask, ParsesSysfsFileContents) {
  auto m = NodeMask::parse("0-3,8,250-255\n");
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->count(), 4u + 1u + 6u);
  EXPECT_TRUE(m->test(252));
  EXPECT_FALSE(m->test(9));
  EXPECT_TRUE(NodeMask::parse("").has_value());
  EXPECT_TRUE(NodeMask::parse("\n")->empty());
}

TEST(NodeMask, RejectsMalformedLists) {
  struct Case {
    const char* text;
    const char* what;
  } cases[] = {
      {"1024", "out of range"},      {"0-1024", "out of range"}, {"5-3", "below its start"},
      {"1,,2", "expected a node id"}, {"a", "expected a node id"}, {"1-", "expected a node id"},
      {"1 2", "expected ','"},        {"-1", "expected a node id"},
      {"99999999999999999999999", "out of range"}, {"3,", "expected a node id"},
  };
  for (const auto& c : cases) {
    auto r = NodeMask::parse(c.text);
    ASSERT_FALSE(r.has_value()) << c.text;
    EXPECT_NE(r.error().message.find(c.what), std::string::npos)
        << c.text << " -> " << r.error().message;
  }
}

TEST(NodeMask, OutOfRangeIdsAreNeverMembers) {
  NodeMask m;
  EXPECT_FALSE(m.set(kMaxNodes));
  EXPECT_FALSE(m.test(kMaxNodes));
  EXPECT_FALSE(m.test(kNoNode));
  EXPECT_TRUE(m.empty());
  EXPECT_EQ(m.next(kMaxNodes), kNoNode);
}
