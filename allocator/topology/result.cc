// Names of error codes (see include/numaheap/result.h).
#include "numaheap/result.h"

namespace numaheap {

const char* errc_name(Errc e) noexcept {
  switch (e) {
    case Errc::ok: return "ok";
    case Errc::no_memory: return "no_memory";
    case Errc::invalid_node: return "invalid_node";
    case Errc::invalid_order: return "invalid_order";
    case Errc::invalid_frame: return "invalid_frame";
    case Errc::double_free: return "double_free";
    case Errc::not_owner: return "not_owner";
    case Errc::claim_exceeded: return "claim_exceeded";
    case Errc::busy: return "busy";
    case Errc::pinned: return "pinned";
    case Errc::shared: return "shared";
    case Errc::invalid_argument: return "invalid_argument";
    case Errc::parse_error: return "parse_error";
    case Errc::io_error: return "io_error";
    case Errc::not_present: return "not_present";
    case Errc::unsupported: return "unsupported";
  }
  return "unknown";
}

}  // namespace numaheap
