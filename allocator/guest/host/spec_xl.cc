// Guest specs from xl.cfg (Xen's domain configuration), read as xl reads
// them: the syntax of libxlutil (xl's config reader: numbers, 'strings',
// "strings" with escapes, nested [lists], '#' comments, ';' or newlines
// between settings, "key += value" appends) and the meaning xl gives name,
// memory, maxmem, vcpus, maxvcpus, vnuma, cpus and cpus_soft. Other keys
// are listed in one warning. Why not libxlutil itself: docs/guests.md.
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <map>

#include "allocator/guest/host/spec_io_internal.h"

namespace numaheap::spec_io {

namespace {

constexpr std::uint64_t kCpuLimit = 1u << 16;
constexpr std::uint64_t kMaxMb = 1ull << 40;

// An xl.cfg value: a string (numbers are kept as written, as libxlutil
// does) or a list of values.
struct Value {
  bool list = false;
  bool quoted = false;
  std::string text;
  std::vector<Value> items;
  std::size_t line = 0, column = 0;
};

struct Setting {
  std::string key;
  Value value;
  std::size_t line = 0;
};

class XlSyntax {
 public:
  XlSyntax(std::string_view text, std::string_view source) : s_(text), source_(source) {}

  Error fail(std::size_t line, std::size_t col, const std::string& what) const {
    return spec_io::fail(source_, line, col, what);
  }
  std::string_view source() const { return source_; }

  Result<std::vector<Setting>, Error> parse() {
    std::vector<Setting> out;
    while (true) {
      skip(true);
      if (i_ >= s_.size()) return out;
      if (s_[i_] == ';') {
        ++i_;
        continue;
      }
      const std::size_t line = line_, col = col_();
      std::string key;
      while (i_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[i_])) || s_[i_] == '_'))
        key += s_[i_++];
      if (key.empty()) return fail(line, col, "expected a setting name, got '" + printable(s_.substr(i_, 1)) + "'");
      skip(false);
      bool append = false;
      if (i_ + 1 < s_.size() && s_[i_] == '+' && s_[i_ + 1] == '=') {
        append = true;
        i_ += 2;
      } else if (i_ < s_.size() && s_[i_] == '=') {
        ++i_;
      } else {
        return fail(line_, col_(), "expected '=' after '" + printable(key) + "'");
      }
      auto v = value(0);
      if (!v) return v.error();
      skip(false);
      if (i_ < s_.size() && s_[i_] != '\n' && s_[i_] != ';' && s_[i_] != '#')
        return fail(line_, col_(), "unexpected '" + printable(s_.substr(i_, 1)) + "' after the value of '" + key + "'");
      Setting* prev = nullptr;
      for (auto& st : out)
        if (st.key == key) prev = &st;
      if (append && prev) {  // libxlutil: += appends to a list or a string
        if (prev->value.list && v->list) {
          for (auto& it : v->items) prev->value.items.push_back(std::move(it));
        } else if (!prev->value.list && !v->list) {
          prev->value.text += v->text;
        } else {
          return fail(line, col, "'" + key + " +=' mixes a list and a string");
        }
      } else if (prev) {
        prev->value = std::move(*v);  // a later setting wins, as in xl
        prev->line = line;
      } else {
        out.push_back(Setting{std::move(key), std::move(*v), line});
      }
    }
  }

 private:
  std::size_t col_() const { return i_ - line_start_ + 1; }

  void newline() {
    ++line_;
    line_start_ = ++i_;
  }

  void skip(bool newlines) {
    while (i_ < s_.size()) {
      const char c = s_[i_];
      if (c == '#') {
        while (i_ < s_.size() && s_[i_] != '\n') ++i_;
      } else if (c == '\n' && newlines) {
        newline();
      } else if (c == ' ' || c == '\t' || c == '\r') {
        ++i_;
      } else {
        return;
      }
    }
  }

  Result<Value, Error> value(int depth) {
    skip(depth > 0);
    Value v;
    v.line = line_;
    v.column = col_();
    if (depth > 8) return fail(line_, col_(), "lists nested too deeply");
    if (i_ >= s_.size() || s_[i_] == '\n') return fail(line_, col_(), "missing value");
    const char c = s_[i_];
    if (c == '"' || c == '\'') {
      ++i_;
      v.quoted = true;
      while (i_ < s_.size() && s_[i_] != c) {
        if (s_[i_] == '\n') return fail(v.line, v.column, "string not closed on its line");
        if (s_[i_] == '\\' && c == '"' && i_ + 1 < s_.size()) {  // escapes in "..." only
          const char e = s_[++i_];
          ++i_;
          switch (e) {
            case 'n': v.text += '\n'; break;
            case 't': v.text += '\t'; break;
            case 'r': v.text += '\r'; break;
            case 'x': {
              std::string hex;
              while (hex.size() < 2 && i_ < s_.size() && std::isxdigit(static_cast<unsigned char>(s_[i_])))
                hex += s_[i_++];
              if (hex.empty()) return fail(line_, col_(), "\\x without hex digits");
              v.text += static_cast<char>(std::strtoul(hex.c_str(), nullptr, 16));
              break;
            }
            default: v.text += e; break;
          }
          continue;
        }
        v.text += s_[i_++];
      }
      if (i_ >= s_.size()) return fail(v.line, v.column, "string not closed");
      ++i_;
      return v;
    }
    if (c == '[') {
      ++i_;
      v.list = true;
      skip(true);
      if (i_ < s_.size() && s_[i_] == ']') {
        ++i_;
        return v;
      }
      while (true) {
        auto item = value(depth + 1);
        if (!item) return item.error();
        v.items.push_back(std::move(*item));
        skip(true);
        if (i_ < s_.size() && s_[i_] == ',') {
          ++i_;
          skip(true);
          if (i_ < s_.size() && s_[i_] == ']') {  // a trailing comma
            ++i_;
            return v;
          }
          continue;
        }
        if (i_ < s_.size() && s_[i_] == ']') {
          ++i_;
          return v;
        }
        if (i_ >= s_.size()) return fail(v.line, v.column, "list not closed");
        return fail(line_, col_(), "expected ',' or ']' in a list, got '" + printable(s_.substr(i_, 1)) + "'");
      }
    }
    while (i_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[i_])) || s_[i_] == '.' || s_[i_] == '-' ||
                              s_[i_] == '+' || s_[i_] == '_'))
      v.text += s_[i_++];
    if (v.text.empty()) return fail(line_, col_(), "expected a value, got '" + printable(s_.substr(i_, 1)) + "'");
    return v;
  }

  std::string_view s_;
  std::string_view source_;
  std::size_t i_ = 0;
  std::size_t line_ = 1;
  std::size_t line_start_ = 0;
};

// A number as libxlutil reads one (strtol base 0: "0x10" is 16), from a
// number or a string.
bool number(const Value& v, std::uint64_t& out) {
  if (v.list) return false;
  const std::string t(trim(v.text));
  if (t.empty() || t[0] == '-' || t[0] == '+') return false;
  char* end = nullptr;
  errno = 0;
  out = std::strtoull(t.c_str(), &end, 0);
  return errno == 0 && end && *end == '\0';
}

// xl's CPU list: "all", "3", "0-3", "^1", "node:1", "nodes:0-1", "^node:0",
// comma-separated. False on bad syntax; `all` when it says "all".
bool xl_cpus(std::string_view text, VcpuPin& pin, bool& all) {
  std::vector<std::uint32_t> add, drop;
  NodeMask nodes_add, nodes_drop;
  all = false;
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t comma = text.find(',', start);
    std::string_view piece = trim(text.substr(start, comma == std::string_view::npos ? std::string_view::npos
                                                                                     : comma - start));
    const bool exclude = piece.starts_with('^');
    if (exclude) piece.remove_prefix(1);
    if (piece == "all") {
      if (exclude) return false;
      all = true;
    } else if (piece.starts_with("nodes:") || piece.starts_with("node:")) {
      piece.remove_prefix(piece.find(':') + 1);
      std::vector<std::uint32_t> ids;
      if (!parse_id_list(piece, kMaxNodes, ids)) return false;
      for (std::uint32_t n : ids) (exclude ? nodes_drop : nodes_add).set(n);
    } else {
      std::vector<std::uint32_t> ids;
      if (!parse_id_list(piece, kCpuLimit, ids)) return false;
      for (std::uint32_t c : ids) (exclude ? drop : add).push_back(c);
    }
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  if (all) return add.empty() && nodes_add.empty();
  std::sort(add.begin(), add.end());
  add.erase(std::unique(add.begin(), add.end()), add.end());
  std::sort(drop.begin(), drop.end());
  std::vector<std::uint32_t> cpus;
  for (std::uint32_t c : add)
    if (!std::binary_search(drop.begin(), drop.end(), c)) cpus.push_back(c);
  pin.nodes = nodes_add - nodes_drop;
  // Out of memory leaves pin.cpus !ok(): the finished spec reports it.
  (void)pin.cpus.assign(cpus.data(), cpus.size());
  return !cpus.empty() || !pin.nodes.empty();
}

struct XlReader {
  const XlSyntax& syntax;
  Error fail(const Value& v, const std::string& what) const { return syntax.fail(v.line, v.column, what); }
};

// One vnode: ["pnode=0", "size=512", "vcpus=0-1", "vdistances=10,20"] (xl's
// form) or "pnode=0, size=512, vcpus=0-1, vdistances=10,20".
Result<VNodeSpec, Error> vnode(const XlReader& r, const Value& node, std::size_t idx, std::uint64_t& vcpu_count) {
  std::vector<std::pair<std::string, const Value*>> pairs;
  if (node.list) {
    for (const auto& item : node.items) {
      if (item.list) return r.fail(item, "vnode " + std::to_string(idx) + ": entries must be \"key=value\" strings");
      pairs.emplace_back(item.text, &item);
    }
  } else {
    // Split on commas; a piece without '=' continues the previous value
    // ("vdistances=10,20").
    std::size_t start = 0;
    while (start <= node.text.size()) {
      const std::size_t comma = node.text.find(',', start);
      std::string piece(trim(std::string_view(node.text).substr(start, comma == std::string::npos ? std::string::npos
                                                                                                  : comma - start)));
      if (piece.find('=') == std::string::npos && !pairs.empty()) pairs.back().first += "," + piece;
      else pairs.emplace_back(piece, &node);
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  }
  VNodeSpec vn;
  bool size_given = false;
  const std::string label = "vnode " + std::to_string(idx) + ": ";
  for (const auto& [kv, at] : pairs) {
    const std::size_t eq = kv.find('=');
    if (eq == std::string::npos) return r.fail(*at, label + "expected key=value, got '" + printable(kv) + "'");
    const std::string k(trim(std::string_view(kv).substr(0, eq)));
    const std::string val(trim(std::string_view(kv).substr(eq + 1)));
    std::uint64_t n = 0;
    if (k == "pnode") {
      if (!parse_u64(val, n) || n >= kMaxNodes) return r.fail(*at, label + "pnode '" + printable(val) + "' is not a node id");
      vn.pnode = static_cast<NodeId>(n);
    } else if (k == "size") {
      if (!parse_u64(val, n) || n == 0 || n > kMaxMb) return r.fail(*at, label + "size '" + printable(val) + "' is not a size in MiB");
      vn.memory_bytes = n << 20;
      size_given = true;
    } else if (k == "vcpus") {
      std::vector<std::uint32_t> ids;
      if (!parse_id_list(val, kMaxGuestVcpus, ids))
        return r.fail(*at, label + "vcpus '" + printable(val) + "' is not a vCPU list");
      if (!vn.vcpus.assign(ids.data(), ids.size())) return out_of_memory(r.syntax.source());
      vcpu_count += ids.size();
    } else if (k == "vdistances") {
      std::vector<std::uint32_t> d;
      std::size_t st = 0;
      while (true) {
        const std::size_t c = val.find(',', st);
        if (!parse_u64(std::string_view(val).substr(st, c == std::string::npos ? std::string::npos : c - st), n) ||
            n == 0 || n > kMaxDistance)
          return r.fail(*at, label + "vdistances '" + printable(val) + "' must be numbers 1..255");
        d.push_back(static_cast<std::uint32_t>(n));
        if (c == std::string::npos) break;
        st = c + 1;
      }
      if (!vn.distances.assign(d.data(), d.size())) return out_of_memory(r.syntax.source());
    } else {
      return r.fail(*at, label + "unknown key '" + printable(k) + "' (xl knows pnode, size, vcpus, vdistances)");
    }
  }
  if (!size_given) return r.fail(node, label + "no size");
  return vn;
}

Result<void, Error> pins(const XlReader& r, const Value& v, bool soft, GuestSpec& g) {
  auto one = [&](const Value& item, std::uint32_t vcpu) -> Result<void, Error> {
    if (item.list) return r.fail(item, "expected a CPU list string");
    VcpuPin pin;
    bool all = false;
    if (!xl_cpus(item.text, pin, all))
      return r.fail(item, std::string(soft ? "cpus_soft" : "cpus") + " '" + printable(item.text) +
                              "' is not a CPU list (\"all\", \"0-3,^1\", \"node:1\", \"nodes:0-1\")");
    if (all) return {};
    pin.vcpu = vcpu;
    pin.soft = soft;
    if (!g.vcpu_pins.push_back(std::move(pin))) return out_of_memory(r.syntax.source());
    return {};
  };
  if (!v.list) return one(v, kAllVcpus);
  // A list: element i pins vCPU i.
  for (std::size_t i = 0; i < v.items.size(); ++i) {
    if (i >= g.vcpus)
      return r.fail(v.items[i], std::string(soft ? "cpus_soft" : "cpus") + " lists more entries than the " +
                                    std::to_string(g.vcpus) + " vCPUs");
    if (auto ok = one(v.items[i], static_cast<std::uint32_t>(i)); !ok) return ok.error();
  }
  return {};
}

// xl's pci = [ "[DDDD:]BB:DD.F[@VSLOT][,KEY=VALUE...]", ... ] (or a
// "bdf=..." key, xl-pci-configuration(5)): a DeviceSpec on each device's
// node from sysfs, as libvirt's <hostdev>. A function of "*" (all
// functions) reads function 0's node. Forms it cannot read, and devices
// sysfs gives no node for, are warned about and left out.
Result<void, Error> pci_devices(const XlReader& r, const Value& v, const GuestParseOptions& options, GuestSpec& g,
                                std::vector<std::string>& warnings) {
  std::vector<const Value*> items;
  if (v.list)
    for (const Value& item : v.items) items.push_back(&item);
  else
    items.push_back(&v);
  for (const Value* item : items) {
    if (item->list) return r.fail(*item, "pci entries are strings");
    std::string_view text = item->text, bdf;
    for (std::size_t at = 0; at <= text.size();) {
      std::size_t comma = text.find(',', at);
      if (comma == std::string_view::npos) comma = text.size();
      const std::string_view piece = trim(text.substr(at, comma - at));
      if (at == 0 && piece.find('=') == std::string_view::npos) bdf = piece;
      if (piece.starts_with("bdf=")) bdf = trim(piece.substr(4));
      at = comma + 1;
    }
    if (auto slot = bdf.find('@'); slot != std::string_view::npos) bdf = bdf.substr(0, slot);
    unsigned dom = 0, bus = 0, dev = 0, fn = 0;
    std::string b(bdf);
    if (b.size() > 2 && b.compare(b.size() - 2, 2, ".*") == 0) b.replace(b.size() - 1, 1, "0");
    int used = 0;
    const bool full = std::sscanf(b.c_str(), "%4x:%2x:%2x.%1x%n", &dom, &bus, &dev, &fn, &used) == 4 &&
                      static_cast<std::size_t>(used) == b.size();
    if (!full && !(std::sscanf(b.c_str(), "%2x:%2x.%1x%n", &bus, &dev, &fn, &used) == 3 &&
                   static_cast<std::size_t>(used) == b.size())) {
      warnings.push_back(where(r.syntax.source(), item->line) + ": pci '" + printable(text) +
                         "': no PCI address read ([DDDD:]BB:DD.F): not placed near it");
      continue;
    }
    if (!full) dom = 0;
    char name[32];
    std::snprintf(name, sizeof name, "%04x:%02x:%02x.%x", dom, bus, dev, fn);
    const long node = pci_numa_node(options.sysfs_root, name);
    if (node < 0 || node >= static_cast<long>(kMaxNodes)) {
      warnings.push_back(where(r.syntax.source(), item->line) + ": PCI device " + name +
                         ": sysfs gives no NUMA node (numa_node missing or -1): not placed near it");
      continue;
    }
    DeviceSpec d;
    d.name = std::string("pci-") + name;
    d.host_node = static_cast<NodeId>(node);
    if (!g.devices.push_back(std::move(d))) return out_of_memory(r.syntax.source());
  }
  return {};
}

}  // namespace

Result<ParsedGuests, Error> parse_xl(std::string_view text, std::string_view source,
                                     const GuestParseOptions& options) {
  XlSyntax syntax(text, source);
  auto settings = syntax.parse();
  if (!settings) return settings.error();
  XlReader r{syntax};
  std::map<std::string, const Setting*> by_key;
  std::string ignored;
  static const char* const used[] = {"name",  "memory", "maxmem",    "vcpus", "maxvcpus",
                                     "vnuma", "cpus",   "cpus_soft", "pci"};
  for (const Setting& s : *settings) {
    bool known = false;
    for (const char* u : used) known |= s.key == u;
    if (known) by_key[s.key] = &s;
    else ignored += (ignored.empty() ? "" : ", ") + printable(s.key);
  }
  auto get = [&](const char* key) -> const Value* {
    auto it = by_key.find(key);
    return it == by_key.end() ? nullptr : &it->second->value;
  };
  ParsedGuests out;
  GuestSpec g;
  if (const Value* v = get("name")) {
    if (v->list) return r.fail(*v, "name must be a string");
    g.name = v->text;
  }
  std::uint64_t memory = 0, maxmem = 0, vcpus = 0, maxvcpus = 0;
  auto count = [&](const char* key, std::uint64_t max, std::uint64_t& n, const char* what) -> Result<void, Error> {
    const Value* v = get(key);
    if (v && (!number(*v, n) || n == 0 || n > max))
      return r.fail(*v, std::string(key) + " must be " + what + ", not '" + printable(v->list ? "[...]" : v->text) + "'");
    return {};
  };
  if (auto ok = count("memory", kMaxMb, memory, "a size in MiB"); !ok) return ok.error();
  if (auto ok = count("maxmem", kMaxMb, maxmem, "a size in MiB"); !ok) return ok.error();
  if (auto ok = count("vcpus", kMaxGuestVcpus, vcpus, "a count 1..4096"); !ok) return ok.error();
  if (auto ok = count("maxvcpus", kMaxGuestVcpus, maxvcpus, "a count 1..4096"); !ok) return ok.error();
  if (maxvcpus && vcpus > maxvcpus)
    return r.fail(*get("vcpus"), "vcpus (" + std::to_string(vcpus) + ") exceeds maxvcpus (" + std::to_string(maxvcpus) + ")");
  if (maxmem && memory > maxmem)
    return r.fail(*get("memory"), "memory (" + std::to_string(memory) + ") exceeds maxmem (" + std::to_string(maxmem) + ")");

  std::uint64_t vnuma_vcpus = 0, vnuma_mb = 0;
  if (const Value* v = get("vnuma")) {
    if (!v->list) return r.fail(*v, "vnuma must be a list of vnodes");
    for (std::size_t idx = 0; idx < v->items.size(); ++idx) {
      auto vn = vnode(r, v->items[idx], idx, vnuma_vcpus);
      if (!vn) return vn.error();
      vnuma_mb += vn->memory_bytes >> 20;
      if (vnuma_mb > kMaxMb) return r.fail(v->items[idx], "vnuma sizes sum to more than 2^40 MiB");
      if (!g.vnodes.push_back(std::move(*vn))) return out_of_memory(r.syntax.source());
    }
    // xl expands nothing, but a two-value row (local, remote) for more
    // than two vnodes is read as local / remote to all.
    for (std::size_t i = 0; i < g.vnodes.size(); ++i) {
      auto& d = g.vnodes[i].distances;
      if (d.size() == 2 && g.vnodes.size() != 2) {
        const std::uint32_t local = d[0], remote = d[1];
        d.clear();
        (void)d.resize(g.vnodes.size(), remote);
        d[i] = local;
      }
    }
  }
  if (!g.vnodes.empty()) {
    // xl: the vnodes' vCPUs are the guest's maximum; maxvcpus must agree.
    if (maxvcpus && maxvcpus != vnuma_vcpus)
      return r.fail(*get("maxvcpus"), "vnuma lists " + std::to_string(vnuma_vcpus) + " vCPUs but maxvcpus is " +
                                          std::to_string(maxvcpus) + " (xl requires them equal)");
    if (!maxvcpus && vcpus > vnuma_vcpus)
      return r.fail(*get("vcpus"), "vcpus (" + std::to_string(vcpus) + ") exceeds the " + std::to_string(vnuma_vcpus) +
                                       " vCPUs vnuma lists");
    if (vnuma_vcpus == 0 || vnuma_vcpus > kMaxGuestVcpus)
      return r.fail(*get("vnuma"), "vnuma lists " + std::to_string(vnuma_vcpus) + " vCPUs (expected 1..4096)");
    g.vcpus = static_cast<std::uint32_t>(vnuma_vcpus);
    // xl: the vnodes' sizes are the guest's maximum memory; maxmem must agree.
    if (maxmem && maxmem != vnuma_mb)
      return r.fail(*get("maxmem"), "vnuma sizes sum to " + std::to_string(vnuma_mb) + " MiB but maxmem is " +
                                        std::to_string(maxmem) + " (xl requires them equal)");
    if (memory > vnuma_mb)
      return r.fail(*get("memory"), "memory (" + std::to_string(memory) + ") exceeds the " +
                                        std::to_string(vnuma_mb) + " MiB the vnodes sum to");
    g.memory_bytes = vnuma_mb << 20;
    if (memory && memory < vnuma_mb)
      out.warnings.push_back(where(source, get("memory")->line) + ": memory=" + std::to_string(memory) +
                             " is the boot target; numaheap places the vnodes' " + std::to_string(vnuma_mb) +
                             " MiB, the most the guest can balloon to");
  } else {
    g.vcpus = static_cast<std::uint32_t>(maxvcpus ? maxvcpus : vcpus ? vcpus : 1);  // xl's default: 1
    if (!memory && !maxmem) return syntax.fail(1, 0, "no 'memory', 'maxmem' or 'vnuma' setting");
    g.memory_bytes = (maxmem ? maxmem : memory) << 20;
    if (maxmem && memory && memory < maxmem)
      out.warnings.push_back(where(source, get("memory")->line) + ": memory=" + std::to_string(memory) +
                             " is the boot target; numaheap places maxmem=" + std::to_string(maxmem) + " MiB");
  }
  if (const Value* v = get("cpus"); v)
    if (auto ok = pins(r, *v, false, g); !ok) return ok.error();
  if (const Value* v = get("cpus_soft"); v)
    if (auto ok = pins(r, *v, true, g); !ok) return ok.error();
  if (const Value* v = get("pci"); v)
    if (auto ok = pci_devices(r, *v, options, g, out.warnings); !ok) return ok.error();
  if (!ignored.empty())
    out.warnings.push_back(std::string(source) + ": ignored, no bearing on memory placement: " + ignored);
  if (auto ok = check_parsed_spec(g, std::string(source)); !ok) return ok.error();
  if (g.name.empty()) g.name = "xl-guest";
  out.guests.push_back(std::move(g));
  out.lines.push_back(1);
  return out;
}

}  // namespace numaheap::spec_io
