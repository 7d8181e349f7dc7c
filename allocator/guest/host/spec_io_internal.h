// Shared by the guest-spec parsers (allocator/guest/host/spec_*.cc; host
// code): positions as line:column, printable byte text, the parsers'
// entry points behind parse_guests.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "numaheap/guest_spec_io.h"

namespace numaheap::spec_io {

// Byte offsets to 1-based line and column (columns count bytes).
class LineIndex {
 public:
  explicit LineIndex(std::string_view text);
  std::size_t line_of(std::size_t offset) const;
  std::size_t column_of(std::size_t offset) const;

 private:
  std::vector<std::size_t> starts_;  // offset of each line's first byte
};

// `s` with bytes outside printable ASCII as \xNN (and cut after `max`
// bytes, marked "...").
std::string printable(std::string_view s, std::size_t max = 80);

// "SOURCE:LINE: what" / "SOURCE:LINE:COL: what" (line 0: "SOURCE: what").
std::string where(std::string_view source, std::size_t line, std::size_t column = 0);
Error fail(std::string_view source, std::size_t line, std::size_t column, const std::string& what);
// no_memory, "SOURCE: out of memory".
Error out_of_memory(std::string_view source);

// A whole unsigned decimal number, blanks around it allowed.
bool parse_u64(std::string_view s, std::uint64_t& out);
std::string_view trim(std::string_view s);

// Refuses a spec whose names were cut (longer than kGuestNameMax bytes) or
// whose lists ran out of memory.
Result<void, Error> check_parsed_spec(const GuestSpec& g, const std::string& at);

Result<ParsedGuests, Error> parse_json(std::string_view text, std::string_view source);
Result<ParsedGuests, Error> parse_libvirt(std::string_view text, std::string_view source,
                                          const GuestParseOptions& options);
Result<ParsedGuests, Error> parse_xl(std::string_view text, std::string_view source,
                                     const GuestParseOptions& options);

// A PCI device's NUMA node from `root`/sys/bus/pci/devices/BDF/numa_node
// ("DDDD:BB:DD.F"): >= 0, or -1 (missing, unreadable or -1).
long pci_numa_node(const std::string& root, const char* bdf);

}  // namespace numaheap::spec_io
