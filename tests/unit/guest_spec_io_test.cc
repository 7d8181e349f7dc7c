// Guest spec readers (numaheap/guest_spec_io.h, numaheap_guest_io.h):
// libvirt domain XML, xl.cfg and JSON as libvirt and xl mean them -- the
// sample files with their exact bytes, cells, vCPUs and distances, and bad
// inputs that must be refused with SOURCE:LINE[:COL] in the message.
#include <gtest/gtest.h>

#include <string>

#include "numaheap/guest_spec_io.h"
#include "numaheap/placement.h"
#include "numaheap/numaheap_guest_io.h"
#include "numaheap/numaheap_place.h"
#include "numaheap/platform_contract.h"
#include "numaheap/topology_io.h"

using namespace numaheap;

namespace {
constexpr std::uint64_t kMiB = 1ull << 20;
std::string data(const char* name) { return std::string(NUMAHEAP_TEST_DATA) + "/guests/" + name; }

GuestParseOptions with_sysfs() {
  GuestParseOptions o;
  o.sysfs_root = data("sysfs");
  return o;
}

bool has_warning(const ParsedGuests& p, const std::string& text) {
  for (const auto& w : p.warnings)
    if (w.find(text) != std::string::npos) return true;
  return false;
}

std::string all_warnings(const ParsedGuests& p) {
  std::string s;
  for (const auto& w : p.warnings) s += w + "\n";
  return s;
}

std::vector<std::uint32_t> ids(const Vector<std::uint32_t>& v) { return {v.begin(), v.end()}; }
}  // namespace

TEST(GuestSpecIo, LibvirtDomainXml) {
  auto r = load_guests_file(data("domain.xml"));
  ASSERT_TRUE(r.has_value()) << r.error().message;
  ASSERT_EQ(r->guests.size(), 1u);
  const GuestSpec& g = r->guests[0];
  EXPECT_EQ(g.name, "libvirt-vm");
  EXPECT_EQ(g.memory_bytes, 2048 * kMiB);
  EXPECT_EQ(g.vcpus, 4u);
  EXPECT_EQ(g.allowed_nodes.to_string(), "0-1");
  EXPECT_EQ(g.memory_mode, MemoryPolicy::bind);
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
  EXPECT_EQ(r->lines, (std::vector<std::size_t>{1}));
  EXPECT_TRUE(validate_guest_spec(g, builtin_default_topology()).has_value());
}

// numa4.xml and numa4.xl.cfg describe one guest: both readers must agree on
// every byte, cell, vCPU and distance.
TEST(GuestSpecIo, LibvirtAndXlTwinsAgree) {
  auto x = load_guests_file(data("numa4.xml"), with_sysfs());
  ASSERT_TRUE(x.has_value()) << x.error().message;
  auto l = load_guests_file(data("numa4.xl.cfg"));
  ASSERT_TRUE(l.has_value()) << l.error().message;
  ASSERT_EQ(x->guests.size(), 1u);
  ASSERT_EQ(l->guests.size(), 1u);
  const GuestSpec& a = x->guests[0];
  const GuestSpec& b = l->guests[0];
  EXPECT_EQ(a.name, "numa4");
  EXPECT_EQ(b.name, "numa4");
  EXPECT_EQ(a.memory_bytes, 4096 * kMiB);  // derived from the cells (no <memory>)
  EXPECT_EQ(b.memory_bytes, 4096 * kMiB);  // derived from vnuma (no memory =)
  EXPECT_EQ(a.vcpus, 8u);
  EXPECT_EQ(b.vcpus, 8u);  // maxvcpus, not vcpus
  const std::vector<std::vector<std::uint32_t>> dist = {
      {10, 21, 31, 41}, {21, 10, 20, 20}, {31, 20, 10, 21}, {41, 20, 21, 10}};
  const std::vector<std::vector<std::uint32_t>> cpus = {{0, 1}, {2, 3}, {4, 5}, {6, 7}};
  for (const GuestSpec* g : {&a, &b}) {
    ASSERT_EQ(g->vnodes.size(), 4u);
    for (std::size_t v = 0; v < 4; ++v) {
      SCOPED_TRACE(v);
      // The last cell is 1048573 KiB: rounded up to the 4 KiB frame.
      EXPECT_EQ(g->vnodes[v].memory_bytes, 1024 * kMiB);
      EXPECT_EQ(ids(g->vnodes[v].vcpus), cpus[v]);
      EXPECT_EQ(ids(g->vnodes[v].distances), dist[v]);
    }
    EXPECT_EQ(g->vnodes[0].pnode, 1u);
    EXPECT_TRUE(validate_guest_spec(*g, builtin_default_topology()).has_value())
        << validate_guest_spec(*g, builtin_default_topology()).error().message;
  }
  // libvirt-only: modes, nodesets with exclusions, pins, the PCI device.
  EXPECT_EQ(a.memory_mode, MemoryPolicy::interleave);
  EXPECT_EQ(a.allowed_nodes.to_string(), "0-1,3");
  EXPECT_EQ(a.vnodes[0].memory_mode, MemoryPolicy::prefer);
  EXPECT_EQ(a.vnodes[2].memory_mode, MemoryPolicy::interleave);
  EXPECT_EQ(a.vnodes[2].nodes.to_string(), "0-1");
  EXPECT_EQ(a.vnodes[2].pnode, kNoNode);
  EXPECT_EQ(a.vnodes[1].memory_mode, MemoryPolicy::unset);
  ASSERT_EQ(a.vcpu_pins.size(), 3u);
  EXPECT_EQ(a.vcpu_pins[0].vcpu, kAllVcpus);
  EXPECT_EQ(a.vcpu_pins[0].cpus.size(), 15u);  // 0-15 without 7
  EXPECT_EQ(a.vcpu_pins[1].vcpu, 0u);
  EXPECT_EQ(ids(a.vcpu_pins[1].cpus), (std::vector<std::uint32_t>{0, 1}));
  EXPECT_EQ(a.vcpu_pins[2].vcpu, 7u);
  EXPECT_EQ(ids(a.vcpu_pins[2].cpus), (std::vector<std::uint32_t>{12, 14, 15}));
  ASSERT_EQ(a.devices.size(), 1u);
  EXPECT_EQ(a.devices[0].name, "pci-0000:06:12.5");
  EXPECT_EQ(a.devices[0].host_node, 1u);
  // Nothing ignored silently.
  EXPECT_TRUE(has_warning(*x, "<interface type='network'> ignored")) << all_warnings(*x);
  EXPECT_TRUE(has_warning(*x, "0000:07:00.0: sysfs gives no NUMA node")) << all_warnings(*x);
  EXPECT_TRUE(has_warning(*x, "<cputune><emulatorpin>")) << all_warnings(*x);
  EXPECT_TRUE(has_warning(*x, "<devices><disk>")) << all_warnings(*x);
  EXPECT_TRUE(has_warning(*x, "<os>")) << all_warnings(*x);
  EXPECT_TRUE(has_warning(*x, "numa4.xml:49: ")) << all_warnings(*x);  // the <interface> line
  // xl-only: hard and soft affinity.
  ASSERT_EQ(b.vcpu_pins.size(), 3u);
  EXPECT_FALSE(b.vcpu_pins[0].soft);
  EXPECT_EQ(b.vcpu_pins[0].cpus.size(), 15u);
  EXPECT_TRUE(b.vcpu_pins[1].soft);
  EXPECT_EQ(b.vcpu_pins[2].vcpu, 1u);
  EXPECT_EQ(ids(b.vcpu_pins[2].cpus), (std::vector<std::uint32_t>{2, 3}));
  EXPECT_TRUE(has_warning(*l, "disk, vif")) << all_warnings(*l);
}

TEST(GuestSpecIo, HostdevWithoutSysfsIsAWarningNotADevice) {
  auto x = load_guests_file(data("numa4.xml"));  // sysfs root "/": no such devices here
  ASSERT_TRUE(x.has_value()) << x.error().message;
  for (const auto& d : x->guests[0].devices) EXPECT_NE(d.name, "pci-0000:06:12.5");
  EXPECT_TRUE(has_warning(*x, "0000:06:12.5")) << all_warnings(*x);
}

// xl's pci = [...] is read like libvirt's <hostdev>: each device on its
// sysfs node, a warning for one without a node; and placement puts the
// guest's memory near it.
TEST(GuestSpecIo, XlPciPassthroughDevicesOnTheirSysfsNodes) {
  auto x = load_guests_file(data("passthrough.xl.cfg"), with_sysfs());
  ASSERT_TRUE(x.has_value()) << x.error().message;
  const GuestSpec& g = x->guests[0];
  ASSERT_EQ(g.devices.size(), 1u) << all_warnings(*x);
  EXPECT_EQ(g.devices[0].name, "pci-0000:06:12.5");
  EXPECT_EQ(g.devices[0].host_node, 1u);
  EXPECT_TRUE(has_warning(*x, "passthrough.xl.cfg:7: PCI device 0000:07:00.0: sysfs gives no NUMA node"))
      << all_warnings(*x);
  EXPECT_FALSE(has_warning(*x, "ignored, no bearing on memory placement: pci")) << all_warnings(*x);
  Placer placer(builtin_default_topology());
  auto p = placer.place(g, placer.idle_usage());
  ASSERT_TRUE(p.has_value()) << p.error().message;
  EXPECT_EQ(p->nodes.to_string(), "1");
  // Forms without an address are a warning, not an error.
  auto odd = parse_guests("memory = 64\npci = [ \"permissive=1\" ]\n", "odd.cfg", with_sysfs());
  ASSERT_TRUE(odd.has_value()) << odd.error().message;
  EXPECT_TRUE(odd->guests[0].devices.empty());
  EXPECT_TRUE(has_warning(*odd, "odd.cfg:2: pci 'permissive=1': no PCI address read")) << all_warnings(*odd);
}

TEST(GuestSpecIo, XlCfgBothVnumaForms) {
  auto r = load_guests_file(data("guest.xl.cfg"));
  ASSERT_TRUE(r.has_value()) << r.error().message;
  const GuestSpec& g = r->guests[0];
  EXPECT_EQ(g.name, "xl-vm");
  EXPECT_EQ(g.memory_bytes, 2048 * kMiB);
  ASSERT_EQ(g.vnodes.size(), 2u);
  EXPECT_EQ(g.vnodes[0].pnode, 2u);
  EXPECT_EQ(g.vnodes[1].vcpus, (Vector<std::uint32_t>{2, 3}));
  EXPECT_EQ(g.vnodes[1].distances, (Vector<std::uint32_t>{21, 10}));
  EXPECT_TRUE(has_warning(*r, "type")) << all_warnings(*r);

  GuestParseOptions xl;
  xl.format = GuestFormat::xl_cfg;
  auto one = parse_guests(
      "name='s'\nmemory=1024\nvcpus=2\n"
      "vnuma=[ \"pnode=0, size=512, vcpus=0, vdistances=10,20\",\n"
      "        \"pnode=1, size=512, vcpus=1, vdistances=20,10\" ]\n",
      "s", xl);
  ASSERT_TRUE(one.has_value()) << one.error().message;
  EXPECT_EQ(one->guests[0].vnodes[0].distances, (Vector<std::uint32_t>{10, 20}));
  EXPECT_EQ(one->guests[0].vnodes[1].pnode, 1u);
  EXPECT_TRUE(validate_guest_spec(one->guests[0], builtin_default_topology()).has_value());
}

TEST(GuestSpecIo, XlMemoryAndVcpusAsXlMeansThem) {
  GuestParseOptions xl;
  xl.format = GuestFormat::xl_cfg;
  auto parse = [&](const char* text) { return parse_guests(text, "t.cfg", xl); };
  // No vnuma: maxmem is what the guest can grow to; maxvcpus the vCPUs.
  auto a = parse("memory = 1024\nmaxmem = 2048\nvcpus = 2\nmaxvcpus = 4\n");
  ASSERT_TRUE(a.has_value()) << a.error().message;
  EXPECT_EQ(a->guests[0].memory_bytes, 2048 * kMiB);
  EXPECT_EQ(a->guests[0].vcpus, 4u);
  EXPECT_TRUE(has_warning(*a, "t.cfg:1: memory=1024 is the boot target"));
  // Defaults: one vCPU; a number may be a string (libxlutil stores both).
  auto b = parse("memory = \"512\"\n");
  ASSERT_TRUE(b.has_value()) << b.error().message;
  EXPECT_EQ(b->guests[0].vcpus, 1u);
  EXPECT_EQ(b->guests[0].memory_bytes, 512 * kMiB);
  // vnuma gives memory and vCPUs; maxmem / maxvcpus must agree with it.
  auto c = parse("vnuma = [ [\"size=256\", \"vcpus=0-2\"], [\"size=256\", \"vcpus=3\"] ]\nmaxmem = 512\n");
  ASSERT_TRUE(c.has_value()) << c.error().message;
  EXPECT_EQ(c->guests[0].memory_bytes, 512 * kMiB);
  EXPECT_EQ(c->guests[0].vcpus, 4u);
  // "+=" appends to a list.
  auto d = parse("vnuma = [ [\"size=256\", \"vcpus=0\"] ]\nvnuma += [ [\"size=256\", \"vcpus=1\"] ]\n");
  ASSERT_TRUE(d.has_value()) << d.error().message;
  EXPECT_EQ(d->guests[0].vnodes.size(), 2u);
  // cpus by node.
  auto e = parse("memory = 64\ncpus = \"nodes:0-3,^node:2\"\n");
  ASSERT_TRUE(e.has_value()) << e.error().message;
  ASSERT_EQ(e->guests[0].vcpu_pins.size(), 1u);
  EXPECT_EQ(e->guests[0].vcpu_pins[0].nodes.to_string(), "0-1,3");
  auto f = parse("memory = 64\ncpus = \"all\"\n");
  ASSERT_TRUE(f.has_value()) << f.error().message;
  EXPECT_TRUE(f->guests[0].vcpu_pins.empty());
}

TEST(GuestSpecIo, JsonBatchAndBareList) {
  auto r = load_guests_file(data("batch.json"));
  ASSERT_TRUE(r.has_value()) << r.error().message;
  ASSERT_EQ(r->guests.size(), 6u);
  EXPECT_EQ(r->guests[0].affinity_group, "web");
  EXPECT_EQ(r->guests[2].anti_affinity_group, "db");
  EXPECT_EQ(r->guests[3].devices[0].host_node, 3u);
  EXPECT_EQ(r->guests[4].vnodes[0].vcpus, (Vector<std::uint32_t>{0, 1}));
  EXPECT_EQ(r->guests[4].vnodes[1].pnode, kNoNode);
  EXPECT_EQ(r->lines[1], 3u);

  auto l = load_guests_file(data("list.json"));
  ASSERT_TRUE(l.has_value()) << l.error().message;
  ASSERT_EQ(l->guests.size(), 2u);
  const GuestSpec& b = l->guests[1];
  EXPECT_EQ(b.memory_bytes, 1024 * kMiB);
  EXPECT_EQ(b.memory_mode, MemoryPolicy::interleave);
  EXPECT_EQ(b.allowed_nodes.to_string(), "0,2-3");
  ASSERT_EQ(b.vcpu_pins.size(), 2u);
  EXPECT_EQ(ids(b.vcpu_pins[0].cpus), (std::vector<std::uint32_t>{4, 6, 7}));
  EXPECT_EQ(b.vcpu_pins[1].vcpu, kAllVcpus);
  EXPECT_TRUE(b.vcpu_pins[1].soft);
  EXPECT_EQ(b.vnodes[0].nodes.to_string(), "0,2");
  EXPECT_EQ(b.vnodes[0].memory_mode, MemoryPolicy::prefer);
  EXPECT_EQ(b.vnodes[1].pnode, 3u);
  EXPECT_EQ(l->lines, (std::vector<std::size_t>{2, 3}));
}

TEST(GuestSpecIo, LibvirtUnitsAsLibvirtScalesThem) {
  struct Case {
    const char* unit;
    std::uint64_t scale;
  } cases[] = {{"", 1024},          {"b", 1},           {"byte", 1},          {"BYTES", 1},
               {"k", 1024},         {"KiB", 1024},      {"kib", 1024},        {"KB", 1000},
               {"kb", 1000},        {"m", 1ull << 20},  {"M", 1ull << 20},    {"MiB", 1ull << 20},
               {"mib", 1ull << 20}, {"MB", 1000000},    {"g", 1ull << 30},    {"GIB", 1ull << 30},
               {"gib", 1ull << 30}, {"GB", 1000000000}, {"t", 1ull << 40},    {"TiB", 1ull << 40},
               {"TB", 1000000000000ull}, {"p", 1ull << 50}, {"PiB", 1ull << 50}, {"PB", 1000000000000000ull},
               {"e", 1ull << 60},   {"EiB", 1ull << 60}, {"EB", 1000000000000000000ull}};
  for (const auto& c : cases) {
    std::uint64_t b = 0;
    ASSERT_TRUE(scale_libvirt_size(3, c.unit, b)) << c.unit;
    EXPECT_EQ(b, 3 * c.scale) << c.unit;
  }
  std::uint64_t b = 0;
  for (const char* bad : {"furlong", "kibi", "x", "KiBB", "iB", "Kb2"}) EXPECT_FALSE(scale_libvirt_size(1, bad, b)) << bad;
  EXPECT_FALSE(scale_libvirt_size(16, "EiB", b));  // 2^64: does not fit
  EXPECT_TRUE(scale_libvirt_size(15, "EiB", b));
}

TEST(GuestSpecIo, IdListsWithExclusions) {
  std::vector<std::uint32_t> out;
  ASSERT_TRUE(parse_id_list("0-2,^1", 64, out));
  EXPECT_EQ(out, (std::vector<std::uint32_t>{0, 2}));
  ASSERT_TRUE(parse_id_list("1-4,^3,8, 2", 64, out));
  EXPECT_EQ(out, (std::vector<std::uint32_t>{1, 2, 4, 8}));
  for (const char* bad : {"", "^1", "0-1,^0-1", "3-1", "1,,2", "64", "a", "1-"})
    EXPECT_FALSE(parse_id_list(bad, 64, out)) << bad;
}

TEST(GuestSpecIo, FormatByExtensionThenContentWithBom) {
  EXPECT_EQ(detect_guest_format("a.XML", "{"), GuestFormat::libvirt_xml);
  EXPECT_EQ(detect_guest_format("a.json", "<"), GuestFormat::json);
  EXPECT_EQ(detect_guest_format("a.cfg", "["), GuestFormat::xl_cfg);
  EXPECT_EQ(detect_guest_format("a.xl", ""), GuestFormat::xl_cfg);
  EXPECT_EQ(detect_guest_format("-", "\xEF\xBB\xBF  <domain/>"), GuestFormat::libvirt_xml);
  EXPECT_EQ(detect_guest_format("-", "\n[ ]"), GuestFormat::json);
  EXPECT_EQ(detect_guest_format("-", "{}"), GuestFormat::json);
  EXPECT_EQ(detect_guest_format("-", "memory = 1"), GuestFormat::xl_cfg);
  const std::string bom = "\xEF\xBB\xBF";
  for (const std::string& text : {bom + "<domain><memory>4</memory></domain>",
                                 bom + "[{\"memory_mb\": 4, \"vcpus\": 1}]", bom + "memory = 4\n"}) {
    auto r = parse_guests(text, "stdin");
    ASSERT_TRUE(r.has_value()) << r.error().message;
    EXPECT_EQ(r->guests[0].memory_bytes >> 12, text.find("mb") != std::string::npos ? 1024u : text[3] == '<' ? 1u : 1024u);
  }
}

TEST(GuestSpecIo, BadInputsNameFileLineAndProblem) {
  struct Case {
    GuestFormat format;
    const char* text;
    const char* where;  // message prefix
    const char* what;   // and somewhere in it
  } cases[] = {
      // JSON: syntax with line:column; semantics at the value's position.
      {GuestFormat::json, "{", "in:1:2: ", "JSON syntax error"},  // just past the end
      {GuestFormat::json, "[\n  {\"memory_mb\": 1,\n   \"vcpus\": 1,}\n]", "in:3:", "JSON syntax error"},
      {GuestFormat::json, "{\"guests\": 3}", "in:1:12: ", "$.guests: expected a list"},
      {GuestFormat::json, "[\n {\"memory_mb\": 1}\n]", "in:2:2: ", "$[0].vcpus"},
      {GuestFormat::json, "[{\"memory_mb\": 1, \"vcpus\": 0}]", "in:1:28: ", "$[0].vcpus: expected a vCPU count 1..4096"},
      {GuestFormat::json, "{\"guests\":[\n{\"vcpus\":1,\n \"memory_mb\": \"lots\"}]}", "in:3:15: ",
       "$.guests[0].memory_mb"},
      {GuestFormat::json, "[{\"memory_mb\":1,\"vcpus\":1,\"colour\":1}]", "in:1:", "unknown key \"colour\""},
      {GuestFormat::json, "[{\"memory_mb\":1,\"vcpus\":1,\"nodes\":\"0-\"}]", "in:1:", "$[0].nodes"},
      {GuestFormat::json, "[{\"memory_mb\":1,\"vcpus\":1,\"vnodes\":[{\"memory_mb\":1,\"pnode\":\"x\"}]}]", "in:1:",
       "pnode"},
      {GuestFormat::json, "[{\"memory_mb\":1,\"vcpus\":1,\"memory_mode\":\"strict\"}]", "in:1:", "\"bind\""},
      {GuestFormat::json, "{\"guests\":[], \"extra\": 1}", "in:1:", "unknown key \"extra\""},
      {GuestFormat::json, "[{\"m\xC3\xA9m\": 1}]", "in:1:", "$[0].m\\xC3\\xA9m: unknown key \"m\\xC3\\xA9m\""},
      // libvirt XML: syntax with line:column; elements by line.
      {GuestFormat::libvirt_xml, "<domain>\n<memory>1024", "in:2:", "XML syntax error"},
      {GuestFormat::libvirt_xml, "<domain><name>a</name></domain>", "in:1: ", "no <memory>"},
      {GuestFormat::libvirt_xml, "<domain>\n<memory unit='parsec'>1</memory><vcpu>1</vcpu></domain>", "in:2: ",
       "unknown unit 'parsec'"},
      {GuestFormat::libvirt_xml, "<domain><memory>1024</memory>\n\n<vcpu>0</vcpu></domain>", "in:3: ",
       "<vcpu> must hold"},
      {GuestFormat::libvirt_xml,
       "<domain><memory>1024</memory><vcpu>1</vcpu><cpu><numa>\n<cell id='1' memory='1'/></numa></cpu></domain>",
       "in:2: ", "ids must be 0..0"},
      {GuestFormat::libvirt_xml,
       "<domain><vcpu>2</vcpu><cpu><numa><cell memory='4'/>\n<cell id='0' memory='4'/></numa></cpu></domain>",
       "in:2: ", "appears twice"},
      {GuestFormat::libvirt_xml,
       "<domain><memory>1024</memory><vcpu>1</vcpu>\n<numatune><memnode cellid='0' nodeset='0'/></numatune></domain>",
       "in:2: ", "names no <cell>"},
      {GuestFormat::libvirt_xml,
       "<domain><memory>1024</memory><numatune>\n<memory mode='loose' nodeset='0'/></numatune></domain>", "in:2: ",
       "mode 'loose'"},
      {GuestFormat::libvirt_xml,
       "<domain><memory>1024</memory><numatune>\n<memory nodeset='0-1,^'/></numatune></domain>", "in:2: ",
       "bad nodeset"},
      {GuestFormat::libvirt_xml,
       "<domain><memory>1024</memory><vcpu>2</vcpu><cputune>\n<vcpupin vcpu='2' cpuset='1'/></cputune></domain>",
       "in:2: ", "<vcpupin> vcpu '2'"},
      {GuestFormat::libvirt_xml,
       "<domain><vcpu>1</vcpu><cpu><numa><cell memory='4'>\n<distances><sibling id='0' value='20'/></distances>"
       "</cell></numa></cpu></domain>",
       "in:2: ", "10 is the distance of a cell to itself only"},
      {GuestFormat::libvirt_xml, "<domain>\r\n<memory>1</memory>\r\n<!-- c -->\r\n<vcpu>0</vcpu></domain>", "in:4: ",
       "<vcpu> must hold"},  // CRLF line ends and a comment: still the right line
      {GuestFormat::libvirt_xml, "<x/>", "in:1: ", "no <domain>"},
      {GuestFormat::libvirt_xml, "<domain><name>\x01\xff</name></domain>", "in:1: ", "domain '\\x01\\xFF'"},
      // xl.cfg: by line (and column for syntax).
      {GuestFormat::xl_cfg, "vcpus = 1\n", "in:1: ", "no 'memory', 'maxmem' or 'vnuma'"},
      {GuestFormat::xl_cfg, "vcpus = 1\nmemory = \"lots\"\n", "in:2:10: ", "memory must be a size in MiB"},
      {GuestFormat::xl_cfg, "memory = 512\nvnuma = [ [\"pnode=0\"] ]\n", "in:2:", "vnode 0: no size"},
      {GuestFormat::xl_cfg, "memory = 512\nvnuma = [ [\"size=512\",\n \"colour=red\"] ]\n", "in:3:2: ",
       "unknown key 'colour'"},
      {GuestFormat::xl_cfg, "vcpus = 1\nmemory = 512\nname = \"unterminated\n", "in:3:8: ", "string not closed"},
      {GuestFormat::xl_cfg, "vcpus = 1 2\n", "in:1:11: ", "unexpected '2'"},
      {GuestFormat::xl_cfg, "= 3\n", "in:1:1: ", "expected a setting name"},
      {GuestFormat::xl_cfg, "memory = 1\n\x01 = 3\n", "in:2:1: ", "got '\\x01'"},
      {GuestFormat::xl_cfg, "maxvcpus = 3\nvnuma = [ [\"size=4\", \"vcpus=0-1\"] ]\n", "in:1:12: ",
       "vnuma lists 2 vCPUs but maxvcpus is 3"},
      {GuestFormat::xl_cfg, "vcpus = 3\nvnuma = [ [\"size=4\", \"vcpus=0-1\"] ]\n", "in:1:9: ",
       "vcpus (3) exceeds the 2 vCPUs"},
      {GuestFormat::xl_cfg, "maxmem = 16\nvnuma = [ [\"size=4\", \"vcpus=0\"] ]\n", "in:1:10: ",
       "vnuma sizes sum to 4 MiB but maxmem is 16"},
      {GuestFormat::xl_cfg, "memory = 8\nmaxmem = 4\n", "in:1:10: ", "memory (8) exceeds maxmem (4)"},
      {GuestFormat::xl_cfg, "memory = 8\nvcpus = 4\nmaxvcpus = 2\n", "in:2:9: ", "vcpus (4) exceeds maxvcpus (2)"},
      {GuestFormat::xl_cfg, "memory = 8\ncpus = \"0-3,x\"\n", "in:2:8: ", "cpus '0-3,x' is not a CPU list"},
      {GuestFormat::xl_cfg, "memory = 8\nvcpus = 1\ncpus = [\"0\", \"1\"]\n", "in:3:", "more entries than the 1"},
  };
  for (const auto& c : cases) {
    GuestParseOptions o;
    o.format = c.format;
    auto r = parse_guests(c.text, "in", o);
    ASSERT_FALSE(r.has_value()) << c.text;
    EXPECT_EQ(r.error().code, Errc::parse_error) << c.text;
    EXPECT_EQ(r.error().message.rfind(c.where, 0), 0u) << c.text << " -> " << r.error().message;
    EXPECT_NE(r.error().message.find(c.what), std::string::npos) << c.text << " -> " << r.error().message;
  }
}

// Names are FixedStrings of at most kGuestNameMax bytes: a longer one is
// refused, not silently cut (two guests could end up with one name).
TEST(GuestSpecIo, OverlongNamesAreRefused) {
  const std::string long_name(kGuestNameMax + 1, 'x');
  GuestParseOptions json;
  json.format = GuestFormat::json;
  auto r = parse_guests(R"({"guests":[{"name":")" + long_name + R"(","memory_mb":64,"vcpus":1}]})", "in", json);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::parse_error);
  EXPECT_NE(r.error().message.find("longer than 63 bytes"), std::string::npos) << r.error().message;
  EXPECT_EQ(r.error().message.rfind("in:1:12: ", 0), 0u) << r.error().message;
  const std::string ok_name(kGuestNameMax, 'y');
  auto ok = parse_guests(R"({"guests":[{"name":")" + ok_name + R"(","memory_mb":64,"vcpus":1}]})", "in", json);
  ASSERT_TRUE(ok.has_value()) << ok.error().message;
  EXPECT_EQ(ok->guests[0].name.view(), ok_name);
}

TEST(GuestSpecIo, LibvirtMemoryFromCellsAndAutoPlacement) {
  GuestParseOptions xml;
  xml.format = GuestFormat::libvirt_xml;
  // <memory> disagrees with the cells: the cells win, with a warning.
  auto a = parse_guests(
      "<domain><memory unit='G'>8</memory><vcpu placement='auto'>2</vcpu>\n"
      "<numatune><memory nodeset='1'/></numatune>\n"
      "<cpu><numa><cell cpus='0' memory='1' unit='G'/><cell cpus='1' memory='1' unit='G'/></numa></cpu>"
      "</domain>",
      "d", xml);
  ASSERT_TRUE(a.has_value()) << a.error().message;
  EXPECT_EQ(a->guests[0].memory_bytes, 2048 * kMiB);
  EXPECT_TRUE(has_warning(*a, "d:1: domain '?': <memory> is 8388608 KiB but the cells sum to 2097152 KiB"))
      << all_warnings(*a);
  EXPECT_EQ(a->guests[0].allowed_nodes.to_string(), "1");  // placement static: nodeset given
  // placement='auto': numaheap chooses; a nodeset is ignored with a reason.
  auto b = parse_guests(
      "<domain><memory>4096</memory><numatune>\n<memory mode='preferred' placement='auto' nodeset='1'/>"
      "</numatune></domain>",
      "d", xml);
  ASSERT_TRUE(b.has_value()) << b.error().message;
  EXPECT_TRUE(b->guests[0].allowed_nodes.empty());
  EXPECT_EQ(b->guests[0].memory_mode, MemoryPolicy::prefer);
  EXPECT_TRUE(has_warning(*b, "d:2: domain '?': nodeset ignored")) << all_warnings(*b);
  // Sizes round up to the 4 KiB frame (libvirt rounds up to KiB first).
  auto c = parse_guests("<domain><memory unit='b'>4097</memory></domain>", "d", xml);
  ASSERT_TRUE(c.has_value()) << c.error().message;
  EXPECT_EQ(c->guests[0].memory_bytes, 8192u);
}

TEST(GuestSpecIo, CApiParsesAndExplains) {
  const std::string text = "<domains><domain><name>c</name><memory unit='MiB'>64</memory>"
                           "<vcpu cpuset='0-3,^1'>2</vcpu><devices><interface type='bridge'/></devices>"
                           "</domain></domains>";
  numaheap_guest_list* l = nullptr;
  char err[256] = "";
  ASSERT_EQ(numaheap_guests_parse(text.data(), text.size(), "c.xml", NUMAHEAP_GUEST_FORMAT_DETECT, nullptr, &l, err,
                                  sizeof err),
            NUMAHEAP_OK)
      << err;
  ASSERT_EQ(numaheap_guest_list_count(l), 1u);
  numaheap_guest_spec s{};
  ASSERT_EQ(numaheap_guest_list_spec(l, 0, &s), NUMAHEAP_OK);
  EXPECT_STREQ(s.name, "c");
  EXPECT_EQ(s.memory_bytes, 64 * kMiB);
  EXPECT_EQ(s.vcpus, 2u);
  ASSERT_EQ(s.vcpu_pin_count, 1u);
  EXPECT_EQ(s.vcpu_pins[0].vcpu, NUMAHEAP_ALL_VCPUS);
  ASSERT_EQ(s.vcpu_pins[0].cpu_count, 3u);
  EXPECT_EQ(s.vcpu_pins[0].cpus[1], 2u);
  EXPECT_EQ(numaheap_guest_list_spec(l, 1, &s), NUMAHEAP_E_INVALID_ARGUMENT);
  ASSERT_EQ(numaheap_guest_list_warning_count(l), 1u);
  EXPECT_NE(std::string(numaheap_guest_list_warning(l, 0)).find("<interface type='bridge'> ignored"),
            std::string::npos);
  EXPECT_EQ(numaheap_guest_list_warning(l, 1), nullptr);
  numaheap_guest_list_free(l);

  l = nullptr;
  EXPECT_EQ(numaheap_guests_parse("[{]", 3, "x.json", NUMAHEAP_GUEST_FORMAT_DETECT, nullptr, &l, err, sizeof err),
            NUMAHEAP_E_PARSE_ERROR);
  EXPECT_EQ(l, nullptr);
  EXPECT_EQ(std::string(err).rfind("x.json:1:", 0), 0u) << err;
  EXPECT_EQ(numaheap_guests_load((data("numa4.xl.cfg")).c_str(), NUMAHEAP_GUEST_FORMAT_DETECT, nullptr, &l, err,
                                 sizeof err),
            NUMAHEAP_OK)
      << err;
  ASSERT_EQ(numaheap_guest_list_spec(l, 0, &s), NUMAHEAP_OK);
  EXPECT_EQ(s.vnode_count, 4u);
  EXPECT_EQ(s.vnodes[3].distance_count, 4u);
  // The parsed C spec feeds placement as is; a memory mode outside
  // NUMAHEAP_MEM_* is refused.
  numaheap_topology* t = nullptr;
  ASSERT_EQ(numaheap_topology_builtin(&t), NUMAHEAP_OK);
  numaheap_placement p{};
  EXPECT_EQ(numaheap_place(t, &s, nullptr, 0, nullptr, &p, err, sizeof err), NUMAHEAP_OK) << err;
  s.memory_mode = 7;
  EXPECT_EQ(numaheap_place(t, &s, nullptr, 0, nullptr, &p, err, sizeof err), NUMAHEAP_E_INVALID_ARGUMENT);
  numaheap_topology_free(t);
  numaheap_guest_list_free(l);
  EXPECT_EQ(numaheap_guest_format_detect("a.cfg", "<", 1), NUMAHEAP_GUEST_FORMAT_XL);
  std::uint64_t bytes = 0;
  EXPECT_EQ(numaheap_libvirt_size(2, "gib", &bytes), NUMAHEAP_OK);
  EXPECT_EQ(bytes, 2ull << 30);
  EXPECT_EQ(numaheap_libvirt_size(2, "gibi", &bytes), NUMAHEAP_E_PARSE_ERROR);
  std::uint32_t out[2];
  std::size_t n = 0;
  EXPECT_EQ(numaheap_id_list_parse("0-4,^2", 8, out, 2, &n), NUMAHEAP_OK);
  EXPECT_EQ(n, 4u);
  EXPECT_EQ(out[1], 1u);
  EXPECT_EQ(numaheap_guests_parse("x", 1, "in", 9, nullptr, &l, err, sizeof err), NUMAHEAP_E_INVALID_ARGUMENT);
}

namespace {
// Metadata hooks that fail after `left` allocations (guest-spec lists take
// their memory from the default hooks).
struct FailingHooks {
  const numaheap_metadata_hooks* base;
  int left;
};
void* failing_alloc(void* ctx, size_t bytes, size_t align, uint32_t node) {
  auto* f = static_cast<FailingHooks*>(ctx);
  if (f->left-- <= 0) return nullptr;
  return f->base->alloc(f->base->ctx, bytes, align, node);
}
void failing_release(void* ctx, void* p, size_t bytes) {
  auto* f = static_cast<FailingHooks*>(ctx);
  f->base->release(f->base->ctx, p, bytes);
}
}  // namespace

// Running out of memory half way is a no_memory error, never a guest with a
// list cut short; with enough memory the same text parses.
TEST(GuestSpecIo, OutOfMemoryIsAnErrorNotAHalfSpec) {
  const numaheap_metadata_hooks* base = numaheap_default_metadata();
  for (const char* file : {"numa4.xml", "numa4.xl.cfg", "list.json"}) {
    auto text = read_text_file(data(file));
    ASSERT_TRUE(text.has_value());
    bool saw_oom = false, saw_ok = false;
    for (int budget = 0; budget < 1000 && !saw_ok; ++budget) {
      FailingHooks f{base, budget};
      const numaheap_metadata_hooks hooks{&f, failing_alloc, failing_release};
      numaheap_set_default_metadata(&hooks);
      {
        auto r = parse_guests(*text, file, with_sysfs());
        if (r) {
          saw_ok = true;
          for (const auto& g : r->guests) EXPECT_TRUE(g.ok()) << file << " budget " << budget;
        } else {
          EXPECT_EQ(r.error().code, Errc::no_memory) << file << " budget " << budget << ": " << r.error().message;
          saw_oom = true;
        }
      }
      numaheap_set_default_metadata(base);
    }
    EXPECT_TRUE(saw_oom) << file;
    EXPECT_TRUE(saw_ok) << file;
  }
}
