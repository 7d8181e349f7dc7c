// libFuzzer harness: the xl.cfg reader on arbitrary bytes (properties in
// guest_spec_fuzz.h).
#include "guest_spec_fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return guest_spec_fuzz::run(data, size, numaheap::GuestFormat::xl_cfg, NUMAHEAP_GUEST_FORMAT_XL);
}
