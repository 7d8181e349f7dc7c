// Guest specs from xl.cfg (Xen's domain configuration): name, memory (MB),
// vcpus and vnuma. Other keys are accepted and ignored, as xl itself
// ignores what it does not use for placement.
#include <cctype>
#include <charconv>
#include <memory>
#include <string>
#include <vector>

#include "guest_spec_io.h"

namespace numaheap::tools {

namespace {

// An xl.cfg value: a number, a string, or a list of values.
struct Value {
  enum Kind { number, string, list } kind = number;
  std::string text;  // number (as written) or string contents
  std::vector<Value> items;
  int line = 0;
};

class XlParser {
 public:
  XlParser(std::string_view text, std::string_view source) : s_(text), source_(source) {}

  Error fail(int line, const std::string& what) const {
    return Error{Errc::parse_error, std::string(source_) + ":" + std::to_string(line) + ": " + what};
  }

  // Parses every "key = value" statement.
  Result<std::vector<std::pair<std::string, Value>>, Error> parse() {
    std::vector<std::pair<std::string, Value>> out;
    while (true) {
      skip_space(true);
      if (i_ >= s_.size()) return out;
      if (s_[i_] == ';') { ++i_; continue; }
      int line = line_;
      std::string key;
      while (i_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[i_])) || s_[i_] == '_'))
        key += s_[i_++];
      if (key.empty()) return fail(line, "expected a key, got '" + printable(s_[i_]) + "'");
      skip_space(false);
      if (i_ >= s_.size() || s_[i_] != '=') return fail(line, "expected '=' after '" + key + "'");
      ++i_;
      auto v = value(0);
      if (!v) return v.error();
      out.emplace_back(std::move(key), std::move(*v));
      skip_space(false);
      if (i_ < s_.size() && s_[i_] != '\n' && s_[i_] != ';' && s_[i_] != '#')
        return fail(line_, "unexpected '" + printable(s_[i_]) + "' after the value of '" + out.back().first + "'");
    }
  }

 private:
  static std::string printable(char c) {
    return (c >= 0x20 && c < 0x7f) ? std::string(1, c) : "\\x" + std::to_string(static_cast<unsigned char>(c));
  }

  void skip_space(bool newlines) {
    while (i_ < s_.size()) {
      char c = s_[i_];
      if (c == '#') {
        while (i_ < s_.size() && s_[i_] != '\n') ++i_;
      } else if (c == '\n' && newlines) {
        ++line_;
        ++i_;
      } else if (c == ' ' || c == '\t' || c == '\r') {
        ++i_;
      } else {
        return;
      }
    }
  }

  Result<Value, Error> value(int depth) {
    skip_space(depth > 0);
    Value v;
    v.line = line_;
    if (depth > 8) return fail(line_, "lists nested too deeply");
    if (i_ >= s_.size()) return fail(line_, "missing value");
    char c = s_[i_];
    if (c == '"' || c == '\'') {
      ++i_;
      v.kind = Value::string;
      while (i_ < s_.size() && s_[i_] != c) {
        if (s_[i_] == '\n') return fail(line_, "string not closed on its line");
        v.text += s_[i_++];
      }
      if (i_ >= s_.size()) return fail(v.line, "string not closed");
      ++i_;
      return v;
    }
    if (c == '[') {
      ++i_;
      v.kind = Value::list;
      skip_space(true);
      if (i_ < s_.size() && s_[i_] == ']') { ++i_; return v; }
      while (true) {
        auto item = value(depth + 1);
        if (!item) return item.error();
        v.items.push_back(std::move(*item));
        skip_space(true);
        if (i_ < s_.size() && s_[i_] == ',') {
          ++i_;
          skip_space(true);
          if (i_ < s_.size() && s_[i_] == ']') { ++i_; return v; }  // trailing comma
          continue;
        }
        if (i_ < s_.size() && s_[i_] == ']') { ++i_; return v; }
        return fail(line_, "expected ',' or ']' in a list");
      }
    }
    while (i_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[i_])) || s_[i_] == '.' ||
                              s_[i_] == '-' || s_[i_] == '+'))
      v.text += s_[i_++];
    if (v.text.empty()) return fail(line_, "expected a value, got '" + printable(c) + "'");
    return v;
  }

  std::string_view s_;
  std::string_view source_;
  std::size_t i_ = 0;
  int line_ = 1;
};

bool to_u64(std::string_view s, std::uint64_t& out) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  auto r = std::from_chars(s.data(), s.data() + s.size(), out, 10);
  return !s.empty() && r.ec == std::errc() && r.ptr == s.data() + s.size();
}

}  // namespace

Result<GuestSpec, Error> parse_xl_cfg(std::string_view text, std::string_view source) {
  XlParser parser(text, source);
  auto stmts = parser.parse();
  if (!stmts) return stmts.error();
  GuestSpec g;
  bool have_memory = false, have_vcpus = false;
  for (const auto& [key, v] : *stmts) {
    std::uint64_t n = 0;
    if (key == "name") {
      if (v.kind != Value::string) return parser.fail(v.line, "name must be a string");
      g.name = v.text;
    } else if (key == "memory") {
      if (v.kind != Value::number || !to_u64(v.text, n) || n == 0 || n > (1ull << 32))
        return parser.fail(v.line, "memory must be a size in MB");
      g.memory_bytes = n << 20;
      have_memory = true;
    } else if (key == "vcpus") {
      if (v.kind != Value::number || !to_u64(v.text, n) || n == 0 || n > kMaxGuestVcpus)
        return parser.fail(v.line, "vcpus must be a count 1..4096");
      g.vcpus = static_cast<std::uint32_t>(n);
      have_vcpus = true;
    } else if (key == "vnuma") {
      if (v.kind != Value::list) return parser.fail(v.line, "vnuma must be a list of vnodes");
      for (std::size_t idx = 0; idx < v.items.size(); ++idx) {
        const Value& node = v.items[idx];
        // Either ["pnode=0", "size=512", ...] or "pnode=0, size=512, ...".
        std::vector<std::string> pairs;
        if (node.kind == Value::list) {
          for (const auto& item : node.items) {
            if (item.kind != Value::string) return parser.fail(item.line, "vnode entries must be strings");
            pairs.push_back(item.text);
          }
        } else if (node.kind == Value::string) {
          // Split on commas; a piece without '=' continues the previous
          // value ("vdistances=10,20").
          std::size_t start = 0;
          while (start <= node.text.size()) {
            std::size_t comma = node.text.find(',', start);
            std::string piece = node.text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
            while (!piece.empty() && piece.front() == ' ') piece.erase(0, 1);
            if (piece.find('=') == std::string::npos && !pairs.empty()) pairs.back() += "," + piece;
            else pairs.push_back(piece);
            if (comma == std::string::npos) break;
            start = comma + 1;
          }
        } else {
          return parser.fail(node.line, "a vnode must be a list of strings or one string");
        }
        VNodeSpec vn;
        bool size_given = false;
        for (const auto& kv : pairs) {
          std::size_t eq = kv.find('=');
          if (eq == std::string::npos)
            return parser.fail(node.line, "vnode " + std::to_string(idx) + ": expected key=value, got '" + kv + "'");
          std::string k = kv.substr(0, eq), val = kv.substr(eq + 1);
          while (!k.empty() && k.back() == ' ') k.pop_back();
          if (k == "pnode") {
            if (!to_u64(val, n) || n >= kMaxNodes)
              return parser.fail(node.line, "vnode " + std::to_string(idx) + ": pnode must be a node id");
            vn.pnode = static_cast<NodeId>(n);
          } else if (k == "size") {
            if (!to_u64(val, n) || n == 0 || n > (1ull << 32))
              return parser.fail(node.line, "vnode " + std::to_string(idx) + ": size must be MB");
            vn.memory_bytes = n << 20;
            size_given = true;
          } else if (k == "vcpus") {
            if (!parse_id_list(val, kMaxGuestVcpus, vn.vcpus))
              return parser.fail(node.line, "vnode " + std::to_string(idx) + ": bad vcpus '" + val + "'");
          } else if (k == "vdistances") {
            std::vector<std::uint32_t> d;
            std::size_t st = 0;
            while (true) {
              std::size_t c = val.find(',', st);
              if (!to_u64(val.substr(st, c == std::string::npos ? std::string::npos : c - st), n) ||
                  n == 0 || n > kMaxDistance)
                return parser.fail(node.line, "vnode " + std::to_string(idx) + ": vdistances must be numbers 1..255");
              d.push_back(static_cast<std::uint32_t>(n));
              if (c == std::string::npos) break;
              st = c + 1;
            }
            if (!vn.distances.assign(d.data(), d.size())) return parser.fail(node.line, "out of memory");
          } else {
            return parser.fail(node.line, "vnode " + std::to_string(idx) + ": unknown key '" + k + "'");
          }
        }
        if (!size_given) return parser.fail(node.line, "vnode " + std::to_string(idx) + ": no size");
        g.vnodes.push_back(std::move(vn));
      }
    }
  }
  if (!have_memory) return parser.fail(1, "no 'memory' setting");
  if (!have_vcpus) return parser.fail(1, "no 'vcpus' setting");
  // xl expands vdistances of two values (local, remote) to a full row.
  for (std::size_t i = 0; i < g.vnodes.size(); ++i) {
    auto& d = g.vnodes[i].distances;
    if (d.size() == 2 && g.vnodes.size() != 2) {
      std::uint32_t local = d[0], remote = d[1];
      d.clear();
      (void)d.resize(g.vnodes.size(), remote);
      d[i] = local;
    }
  }
  if (auto ok = check_parsed_spec(g, source); !ok) return ok.error();
  return g;
}

}  // namespace numaheap::tools
