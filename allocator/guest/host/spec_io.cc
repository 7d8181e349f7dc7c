// Guest specs (numaheap/guest_spec_io.h): format detection, the file
// loader, libvirt's units, id lists, and the helpers the three parsers
// share. Host code.
#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>

#include "numaheap/topology_io.h"

#include "allocator/guest/host/spec_io_internal.h"

namespace numaheap {

namespace spec_io {

LineIndex::LineIndex(std::string_view text) {
  starts_.push_back(0);
  for (std::size_t i = 0; i < text.size(); ++i)
    if (text[i] == '\n') starts_.push_back(i + 1);
}

std::size_t LineIndex::line_of(std::size_t offset) const {
  return static_cast<std::size_t>(std::upper_bound(starts_.begin(), starts_.end(), offset) - starts_.begin());
}

std::size_t LineIndex::column_of(std::size_t offset) const {
  return offset - starts_[line_of(offset) - 1] + 1;
}

std::string printable(std::string_view s, std::size_t max) {
  std::string out;
  const std::size_t n = std::min(s.size(), max);
  for (std::size_t i = 0; i < n; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02X", c);
      out += buf;
    }
  }
  if (s.size() > n) out += "...";
  return out;
}

std::string where(std::string_view source, std::size_t line, std::size_t column) {
  std::string w(source);
  if (line) w += ":" + std::to_string(line);
  if (line && column) w += ":" + std::to_string(column);
  return w;
}

Error fail(std::string_view source, std::size_t line, std::size_t column, const std::string& what) {
  return Error{Errc::parse_error, where(source, line, column) + ": " + what};
}

Error out_of_memory(std::string_view source) {
  return Error{Errc::no_memory, std::string(source) + ": out of memory"};
}

std::string_view trim(std::string_view s) {
  auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!s.empty() && blank(s.front())) s.remove_prefix(1);
  while (!s.empty() && blank(s.back())) s.remove_suffix(1);
  return s;
}

bool parse_u64(std::string_view s, std::uint64_t& out) {
  s = trim(s);
  if (s.empty()) return false;
  auto r = std::from_chars(s.data(), s.data() + s.size(), out, 10);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

Result<void, Error> check_parsed_spec(const GuestSpec& g, const std::string& at) {
  auto cut = [](const GuestName& n) { return n.truncated(); };
  bool any_cut = cut(g.name) || cut(g.affinity_group) || cut(g.anti_affinity_group);
  for (const DeviceSpec& d : g.devices) any_cut |= cut(d.name);
  if (any_cut)
    return Error{Errc::parse_error, at + ": guest '" + printable(g.name.view()) + "': a name is longer than " +
                                        std::to_string(kGuestNameMax) + " bytes"};
  if (!g.ok()) return Error{Errc::no_memory, at + ": out of memory"};
  return {};
}

// The device's node from sysfs: >= 0, or -1 (none / unknown).
long pci_numa_node(const std::string& root, const char* bdf) {
  std::string path = root.empty() ? std::string() : root;
  while (!path.empty() && path.back() == '/') path.pop_back();
  path += std::string("/sys/bus/pci/devices/") + bdf + "/numa_node";
  std::ifstream in(path);
  long node = -1;
  if (!(in >> node)) return -1;
  return node;
}

}  // namespace spec_io

namespace {

constexpr std::string_view kBom = "\xEF\xBB\xBF";

bool ends_with_nocase(std::string_view s, std::string_view suffix) {
  if (s.size() < suffix.size()) return false;
  s = s.substr(s.size() - suffix.size());
  for (std::size_t i = 0; i < s.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(s[i])) != suffix[i]) return false;
  return true;
}

}  // namespace

GuestFormat detect_guest_format(std::string_view source, std::string_view text) {
  if (ends_with_nocase(source, ".xml")) return GuestFormat::libvirt_xml;
  if (ends_with_nocase(source, ".json")) return GuestFormat::json;
  for (std::string_view ext : {".cfg", ".xl", ".xlcfg"})
    if (ends_with_nocase(source, ext)) return GuestFormat::xl_cfg;
  if (text.starts_with(kBom)) text.remove_prefix(kBom.size());
  text = spec_io::trim(text);
  if (text.starts_with('<')) return GuestFormat::libvirt_xml;
  if (text.starts_with('{') || text.starts_with('[')) return GuestFormat::json;
  return GuestFormat::xl_cfg;
}

Result<ParsedGuests, Error> parse_guests(std::string_view text, std::string_view source,
                                         const GuestParseOptions& options) {
  GuestFormat f = options.format == GuestFormat::detect ? detect_guest_format(source, text) : options.format;
  // A byte-order mark is not content; line 1 stays line 1.
  if (text.starts_with(kBom)) text.remove_prefix(kBom.size());
  switch (f) {
    case GuestFormat::json: return spec_io::parse_json(text, source);
    case GuestFormat::libvirt_xml: return spec_io::parse_libvirt(text, source, options);
    case GuestFormat::xl_cfg: return spec_io::parse_xl(text, source, options);
    case GuestFormat::detect: break;
  }
  return Error{Errc::invalid_argument, std::string(source) + ": unknown guest format"};
}

Result<ParsedGuests, Error> load_guests_file(std::string_view path, const GuestParseOptions& options) {
  auto text = read_text_file(path);
  if (!text) return text.error();
  return parse_guests(*text, path, options);
}

bool scale_libvirt_size(std::uint64_t value, std::string_view unit, std::uint64_t& bytes) {
  auto lower = [](char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); };
  std::string u;
  for (char c : unit) u += lower(c);
  std::uint64_t scale = 1;
  if (u.empty()) {
    scale = 1024;  // libvirt's default for memory sizes: KiB
  } else if (u == "b" || u == "byte" || u == "bytes") {
    scale = 1;
  } else {
    // One letter or "<letter>iB": powers of 1024; "<letter>B": of 1000.
    std::uint64_t base;
    if (u.size() == 1 || u.substr(1) == "ib") base = 1024;
    else if (u.size() == 2 && u[1] == 'b') base = 1000;
    else return false;
    static constexpr std::string_view kPrefixes = "kmgtpe";
    const std::size_t power = kPrefixes.find(u[0]);
    if (power == std::string_view::npos) return false;
    for (std::size_t i = 0; i <= power; ++i) scale *= base;
  }
  if (value > ~std::uint64_t{0} / scale) return false;
  bytes = value * scale;
  return true;
}

bool parse_id_list(std::string_view s, std::uint64_t limit, std::vector<std::uint32_t>& out) {
  out.clear();
  std::vector<std::uint32_t> add, drop;
  std::size_t i = 0;
  auto num = [&](std::uint64_t& x) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
    const std::size_t start = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    const bool ok = i > start && i - start <= 19 && spec_io::parse_u64(s.substr(start, i - start), x) && x < limit;
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
    return ok;
  };
  if (spec_io::trim(s).empty()) return false;
  while (true) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
    const bool exclude = i < s.size() && s[i] == '^';
    if (exclude) ++i;
    std::uint64_t lo = 0, hi = 0;
    if (!num(lo)) return false;
    hi = lo;
    if (i < s.size() && s[i] == '-') {
      ++i;
      if (!num(hi) || hi < lo) return false;
    }
    for (std::uint64_t c = lo; c <= hi; ++c) (exclude ? drop : add).push_back(static_cast<std::uint32_t>(c));
    if (i == s.size()) break;
    if (s[i++] != ',') return false;
  }
  std::sort(add.begin(), add.end());
  add.erase(std::unique(add.begin(), add.end()), add.end());
  std::sort(drop.begin(), drop.end());
  std::set_difference(add.begin(), add.end(), drop.begin(), drop.end(), std::back_inserter(out));
  return !out.empty();
}

}  // namespace numaheap
