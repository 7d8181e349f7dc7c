// FrameTable: descriptor reservation and mfn <-> descriptor lookups.
#include "allocator/heap/frame_table.h"

#include <algorithm>
#include <cstring>

namespace numaheap {

FrameTable::~FrameTable() {
  if (descs_) hooks_->release(hooks_->ctx, descs_, reserved_bytes_);
}

Result<void, Error> FrameTable::init(const Topology& topo, const MetadataHooks* hooks) {
  hooks_ = hooks;
  ranges_ = Vector<FrameRangeInfo>(hooks);
  only_ = nullptr;
  only_first_ = only_frames_ = 0;
  only_descs_ = nullptr;
  only_node_index_ = 0;
  for (std::size_t i = 0; i < topo.node_count(); ++i)
    for (const FrameRange& r : topo.node_at(i).frames) {
      if (r.first_mfn + r.count > kFrameLimit)
        return make_error(Errc::invalid_argument, "frame table: frames at or above 2^",
                          std::uint64_t{kFrameBits}, " (4 PiB) are not supported (node index ", std::uint64_t{i}, ")");
      if (!ranges_.push_back({r.first_mfn, r.first_mfn + r.count, static_cast<std::uint32_t>(i), 0}))
        return Error{Errc::no_memory, "frame table: out of metadata memory for the range table"};
    }
  std::sort(ranges_.begin(), ranges_.end(),
            [](const FrameRangeInfo& a, const FrameRangeInfo& b) { return a.first < b.first; });
  frames_ = 0;
  // Each range's first descriptor index is congruent to its first frame
  // modulo a line group (up to 7 unused descriptors before it): an aligned
  // block of up to 8 frames then fills whole cache lines of descriptors, as
  // per-CPU cache refills assume (kLineGroupOrder, frame_table.h).
  constexpr std::uint64_t kGroup = std::uint64_t{1} << kLineGroupOrder;
  std::uint64_t descs = 0;
  for (auto& r : ranges_) {
    descs += (r.first - descs) & (kGroup - 1);
    r.desc_base = descs;
    descs += r.end - r.first;
    frames_ += r.end - r.first;
  }
  only_ = ranges_.size() == 1 ? &ranges_[0] : nullptr;
  if (frames_ == 0) return {};
  reserved_bytes_ = descs * sizeof(FrameDesc);
  // The hooks hand out memory that reads as zero, and a zero descriptor is a
  // valid one: nothing is written here, so start-up does not grow with
  // memory (the host library maps large tables MAP_NORESERVE, so a 1 TiB
  // machine's 6 GiB of descriptors cost nothing until frames are split).
  // Line-aligned: the line groups above are whole lines.
  void* p = hooks->alloc(hooks->ctx, reserved_bytes_, alignof(FrameDesc) < kCacheLine ? kCacheLine : alignof(FrameDesc),
                         NUMAHEAP_ANY_NODE);
  if (!p) {
    const std::uint64_t mib = reserved_bytes_ >> 20;
    reserved_bytes_ = 0;
    return make_error(Errc::no_memory, "frame table: cannot get ", mib,
                      " MiB of descriptors from the metadata hooks");
  }
  descs_ = static_cast<FrameDesc*>(p);
  if (only_) {
    only_first_ = only_->first;
    only_frames_ = only_->end - only_->first;
    only_descs_ = descs_ + only_->desc_base;
    only_node_index_ = only_->node_index;
  }
  return {};
}

const FrameRangeInfo* FrameTable::find_range_slow(Mfn mfn) const noexcept {
  auto it = std::upper_bound(ranges_.begin(), ranges_.end(), mfn,
                             [](Mfn m, const FrameRangeInfo& r) { return m < r.first; });
  if (it == ranges_.begin()) return nullptr;
  --it;
  return it->contains(mfn) ? &*it : nullptr;
}

Mfn FrameTable::mfn_of(const FrameDesc* d) const noexcept {
  const std::uint64_t index = static_cast<std::uint64_t>(d - descs_);
  auto it = std::upper_bound(ranges_.begin(), ranges_.end(), index,
                             [](std::uint64_t i, const FrameRangeInfo& r) { return i < r.desc_base; });
  --it;
  return it->first + (index - it->desc_base);
}

double FrameTable::bytes_per_frame() const noexcept {
  if (frames_ == 0) return 0.0;
  const double bytes = static_cast<double>(reserved_bytes_ +
                                           ranges_.size() * sizeof(FrameRangeInfo));
  return bytes / static_cast<double>(frames_);
}

}  // namespace numaheap
