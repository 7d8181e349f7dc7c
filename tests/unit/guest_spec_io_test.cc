// Guest spec parsers: libvirt XML, xl.cfg, JSON — the sample files, and
// malformed inputs that must give precise errors.
#include <gtest/gtest.h>

#include "guest_spec_io.h"
#include "numaheap/topology_io.h"

using namespace numaheap;
using namespace numaheap::tools;

namespace {
constexpr std::uint64_t kMiB = 1ull << 20;
std::string data(const char* name) { return std::string(NUMAHEAP_TEST_DATA) + "/guests/" + name; }
}  // namespace

TEST(GuestSpecIo, LibvirtDomainXml) {
  auto r = load_guests_file(data("domain.xml"));
  ASSERT_TRUE(r.has_value()) << r.error().message;
  ASSERT_EQ(r->size(), 1u);
  const GuestSpec& g = (*r)[0];
  EXPECT_EQ(g.name, "libvirt-vm");
  EXPECT_EQ(g.memory_bytes, 2048 * kMiB);
  EXPECT_EQ(g.vcpus, 4u);
  EXPECT_EQ(g.allowed_nodes.to_string(), "0-1");
  ASSERT_EQ(g.vnodes.size(), 2u);
  EXPECT_EQ(g.vnodes[0].memory_bytes, 1024 * kMiB);
  EXPECT_EQ(g.vnodes[1].memory_bytes, 1024 * kMiB);
  EXPECT_EQ(g.vnodes[1].vcpus, (Vector<std::uint32_t>{2, 3}));
  EXPECT_EQ(g.vnodes[0].pnode, 0u);
  EXPECT_EQ(g.vnodes[1].pnode, 1u);
  EXPECT_EQ(g.vnodes[0].distances, (Vector<std::uint32_t>{10, 21}));
  ASSERT_EQ(g.devices.size(), 1u);
  EXPECT_EQ(g.devices[0].name, "nic0");
  EXPECT_EQ(g.devices[0].host_node, 1u);
  EXPECT_TRUE(g.sharing);
  EXPECT_TRUE(validate_guest_spec(g, builtin_default_topology()).has_value());
}

TEST(GuestSpecIo, XlCfgBothVnumaForms) {
  auto r = load_guests_file(data("guest.xl.cfg"));
  ASSERT_TRUE(r.has_value()) << r.error().message;
  const GuestSpec& g = (*r)[0];
  EXPECT_EQ(g.name, "xl-vm");
  EXPECT_EQ(g.memory_bytes, 2048 * kMiB);
  ASSERT_EQ(g.vnodes.size(), 2u);
  EXPECT_EQ(g.vnodes[0].pnode, 2u);
  EXPECT_EQ(g.vnodes[1].vcpus, (Vector<std::uint32_t>{2, 3}));
  EXPECT_EQ(g.vnodes[1].distances, (Vector<std::uint32_t>{21, 10}));

  auto one = parse_xl_cfg(
      "name='s'\nmemory=1024\nvcpus=2\n"
      "vnuma=[ \"pnode=0, size=512, vcpus=0, vdistances=10,20\",\n"
      "        \"pnode=1, size=512, vcpus=1, vdistances=20,10\" ]\n",
      "s.cfg");
  ASSERT_TRUE(one.has_value()) << one.error().message;
  EXPECT_EQ(one->vnodes[0].distances, (Vector<std::uint32_t>{10, 20}));
  EXPECT_EQ(one->vnodes[1].pnode, 1u);
  EXPECT_TRUE(validate_guest_spec(*one, builtin_default_topology()).has_value());
}

TEST(GuestSpecIo, JsonBatch) {
  auto r = load_guests_file(data("batch.json"));
  ASSERT_TRUE(r.has_value()) << r.error().message;
  ASSERT_EQ(r->size(), 6u);
  EXPECT_EQ((*r)[0].affinity_group, "web");
  EXPECT_EQ((*r)[2].anti_affinity_group, "db");
  EXPECT_EQ((*r)[3].devices[0].host_node, 3u);
  EXPECT_EQ((*r)[4].vnodes[0].vcpus, (Vector<std::uint32_t>{0, 1}));
  EXPECT_EQ((*r)[4].vnodes[1].pnode, kNoNode);
}

TEST(GuestSpecIo, MalformedInputsNameTheProblem) {
  struct Case {
    const char* text;
    const char* what;
  } cases[] = {
      {"{", "not valid JSON"},
      {"{\"guests\": 3}", "expected {\"guests\""},
      {"{\"guests\":[{\"memory_mb\":1}]}", "$.guests[0].vcpus"},
      {"{\"guests\":[{\"vcpus\":1}]}", "$.guests[0].memory_mb"},
      {"{\"guests\":[{\"memory_mb\":1,\"vcpus\":1,\"colour\":1}]}", "unknown key \"colour\""},
      {"{\"guests\":[{\"memory_mb\":1,\"vcpus\":1,\"nodes\":\"0-\"}]}", "$.guests[0].nodes"},
      {"{\"guests\":[{\"memory_mb\":1,\"vcpus\":1,\"vnodes\":[{\"memory_mb\":1,\"pnode\":\"x\"}]}]}",
       "pnode"},
      {"<domain><name>a</name></domain>", "no <memory>"},
      {"<domain><memory unit='parsec'>1</memory><vcpu>1</vcpu></domain>", "unknown unit 'parsec'"},
      {"<domain><memory>1024</memory><vcpu>0</vcpu></domain>", "<vcpu> must hold"},
      {"<domain><memory>1024", "XML error"},
      {"<domain><memory>1024</memory><vcpu>1</vcpu><cpu><numa><cell id='1' memory='1'/></numa></cpu></domain>",
       "cell ids must be"},
      {"<domain><memory>1024</memory><vcpu>1</vcpu><numatune><memnode cellid='0' nodeset='0'/></numatune></domain>",
       "cellid names no <cell>"},
      {"<x/>", "no <domain>"},
      {"memory = 512\n", "no 'vcpus'"},
      {"vcpus = 1\nmemory = \"lots\"\n", ":2: memory must be a size in MB"},
      {"vcpus = 1\nmemory = 512\nvnuma = [ [\"pnode=0\"] ]\n", "vnode 0: no size"},
      {"vcpus = 1\nmemory = 512\nvnuma = [ [\"size=512\", \"colour=red\"] ]\n", "unknown key 'colour'"},
      {"vcpus = 1\nmemory = 512\nname = \"unterminated\n", ":3: string not closed"},
      {"vcpus = 1 2\n", "unexpected '2'"},
      {"= 3\n", "expected a key"},
  };
  for (const auto& c : cases) {
    std::string text = c.text;
    Result<std::vector<GuestSpec>, Error> r = Error{};
    if (text[0] == '{') r = parse_guests_json(text, "in");
    else if (text[0] == '<') r = parse_libvirt_xml(text, "in");
    else {
      auto g = parse_xl_cfg(text, "in");
      if (g) r = std::vector<GuestSpec>{*g};
      else r = g.error();
    }
    ASSERT_FALSE(r.has_value()) << c.text;
    EXPECT_NE(r.error().message.find(c.what), std::string::npos) << c.text << " -> " << r.error().message;
    EXPECT_EQ(r.error().message.rfind("in", 0), 0u) << r.error().message;
  }
}

TEST(GuestSpecIo, LibvirtUnits) {
  std::uint64_t b = 0;
  EXPECT_TRUE(scale_libvirt_size(2, "GiB", b));
  EXPECT_EQ(b, 2ull << 30);
  EXPECT_TRUE(scale_libvirt_size(5, "KB", b));
  EXPECT_EQ(b, 5000u);
  EXPECT_FALSE(scale_libvirt_size(1ull << 60, "TiB", b));
  EXPECT_FALSE(scale_libvirt_size(1, "furlong", b));
}

// Names are FixedStrings of at most kGuestNameMax bytes: a longer one is
// refused, not silently cut (two guests could end up with one name).
TEST(GuestSpecIo, OverlongNamesAreRefused) {
  const std::string long_name(kGuestNameMax + 1, 'x');
  auto r = parse_guests_json(R"({"guests":[{"name":")" + long_name + R"(","memory_mb":64,"vcpus":1}]})", "in");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::parse_error);
  EXPECT_NE(r.error().message.find("longer than 63 bytes"), std::string::npos) << r.error().message;
  const std::string ok_name(kGuestNameMax, 'y');
  auto ok = parse_guests_json(R"({"guests":[{"name":")" + ok_name + R"(","memory_mb":64,"vcpus":1}]})", "in");
  ASSERT_TRUE(ok.has_value()) << ok.error().message;
  EXPECT_EQ((*ok)[0].name.view(), ok_name);
}
