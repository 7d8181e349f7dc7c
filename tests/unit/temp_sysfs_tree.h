// A throw-away sysfs tree for topology loader tests: ROOT/sys/devices/system/node
// under a fresh temporary directory, removed with the object.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "numaheap/topology.h"

namespace numaheap::test {

class TempSysfsTree {
 public:
  explicit TempSysfsTree(std::string_view prefix = "numaheap-topo") {
    std::string tmpl =
        (std::filesystem::temp_directory_path() / (std::string(prefix) + "-XXXXXX")).string();
    EXPECT_NE(::mkdtemp(tmpl.data()), nullptr);
    root_ = tmpl;
    std::filesystem::create_directories(node_dir());
  }
  ~TempSysfsTree() {
    std::error_code ec;
    std::filesystem::remove_all(root_, ec);
  }
  TempSysfsTree(const TempSysfsTree&) = delete;
  TempSysfsTree& operator=(const TempSysfsTree&) = delete;

  const std::string& root() const { return root_; }
  std::string node_dir() const { return root_ + "/sys/devices/system/node"; }

  // Writes node_dir/<rel> (parents created), bytes as given.
  void write(const std::string& rel, std::string_view bytes) const {
    std::filesystem::path p = std::filesystem::path(node_dir()) / rel;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  void mkdir(const std::string& rel) const {
    std::filesystem::create_directories(std::filesystem::path(node_dir()) / rel);
  }

  // A node with the usual files; pass "" to skip one.
  void node(NodeId id, std::string_view cpumap, std::string_view meminfo,
            std::string_view distance) const {
    const std::string n = "node" + std::to_string(id) + "/";
    mkdir(n);
    if (!cpumap.empty()) write(n + "cpumap", cpumap);
    if (!meminfo.empty()) write(n + "meminfo", meminfo);
    if (!distance.empty()) write(n + "distance", distance);
  }

 private:
  std::string root_;
};

}  // namespace numaheap::test
