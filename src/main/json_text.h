// JSON string output for the CLI's --json answers and minted claims.
#pragma once

#include <cstdio>
#include <string>

namespace hms {

// Appends `s` to `out` as a JSON string, quotes included (RFC 8259 escapes).
inline void AppendJson(std::string* out, const std::string& s) {
  out->push_back('"');
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out->push_back('\\');
      out->push_back(static_cast<char>(c));
    } else if (c == '\n') {
      *out += "\\n";
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      *out += buf;
    } else {
      out->push_back(static_cast<char>(c));
    }
  }
  out->push_back('"');
}

}  // namespace hms
