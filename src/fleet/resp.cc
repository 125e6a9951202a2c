#include "hms/fleet/resp.h"

#include <charconv>
#include <cstring>

namespace hms::fleet {
namespace {

// The line at `in[pos]` up to CRLF: its length through CRLF (> 0), kPartial,
// or kError. A bare LF, or CR not followed by LF, is never RESP.
int LineEnd(std::string_view in, size_t pos, std::string_view* line) noexcept {
  const size_t cr = in.find('\r', pos);
  const size_t end = cr == std::string_view::npos ? in.size() : cr;
  if (std::memchr(in.data() + pos, '\n', end - pos) != nullptr) return kError;
  if (cr == std::string_view::npos || cr + 1 >= in.size()) return kPartial;
  if (in[cr + 1] != '\n') return kError;
  *line = in.substr(pos, cr - pos);
  return static_cast<int>(cr + 2 - pos);
}

// A signed decimal with no sign-only, no leading '+', no overflow.
bool ParseInt(std::string_view s, int64_t* out) noexcept {
  if (s.empty() || s == "-") return false;
  const char* first = s.data();
  const char* last = s.data() + s.size();
  auto [p, ec] = std::from_chars(first, last, *out);
  return ec == std::errc() && p == last;
}

// A length line: -1 (nil) or 0..max.
bool ParseLength(std::string_view line, int64_t max, int64_t* out) noexcept {
  return ParseInt(line, out) && *out >= -1 && *out <= max;
}

// Parses one value at `in[pos]` into `e`; when `r` is given (top level of an
// array) stores the first elements there. Returns bytes consumed, kPartial or
// kError.
int ParseValue(std::string_view in, size_t pos, int depth, Element* e, Reply* r) noexcept {
  if (pos >= in.size()) return kPartial;
  const char kind = in[pos];
  std::string_view line;
  const int n = LineEnd(in, pos + 1, &line);
  if (n < 0) return n;
  const size_t head = 1 + static_cast<size_t>(n);
  switch (kind) {
    case '+':
    case '-':
      e->type = kind == '+' ? ReplyType::kSimple : ReplyType::kError;
      e->text = line;
      return static_cast<int>(head);
    case ':':
      e->type = ReplyType::kInteger;
      return ParseInt(line, &e->integer) ? static_cast<int>(head) : kError;
    case '$': {
      int64_t len = 0;
      if (!ParseLength(line, kMaxBulkBytes, &len)) return kError;
      e->type = ReplyType::kNil;
      if (len == -1) return static_cast<int>(head);
      const size_t body = pos + head;
      const size_t ulen = static_cast<size_t>(len);
      if (in.size() < body + ulen + 2) {
        // A wrong terminator already in view is an error however long the rest.
        if (in.size() > body + ulen && in[body + ulen] != '\r') return kError;
        return kPartial;
      }
      if (in[body + ulen] != '\r' || in[body + ulen + 1] != '\n') return kError;
      e->type = ReplyType::kBulk;
      e->text = in.substr(body, ulen);
      return static_cast<int>(head + ulen + 2);
    }
    case '*': {
      int64_t count = 0;
      if (!ParseLength(line, kMaxArrayCount, &count)) return kError;
      e->type = ReplyType::kNil;
      if (count == -1) return static_cast<int>(head);
      if (depth + 1 > kMaxDepth) return kError;
      e->type = ReplyType::kArray;
      e->integer = count;
      size_t at = pos + head;
      for (int64_t i = 0; i < count; ++i) {
        Element scratch;
        const bool keep = r != nullptr && i < kMaxElements;
        const int m = ParseValue(in, at, depth + 1, keep ? &r->elements[i] : &scratch, nullptr);
        if (m < 0) return m;
        if (keep) r->stored = static_cast<uint32_t>(i + 1);
        at += static_cast<size_t>(m);
      }
      return static_cast<int>(at - pos);
    }
    default:
      return kError;
  }
}

}  // namespace

int ParseReply(std::string_view in, Reply* out) noexcept {
  // Replies are bounded well below INT_MAX by kMaxBulkBytes and the client's
  // buffer; refuse a view that could overflow the return type.
  if (in.size() > (1u << 30)) in = in.substr(0, 1u << 30);
  out->stored = 0;
  out->top = Element();
  return ParseValue(in, 0, 0, &out->top, out);
}

size_t WriteCommand(std::span<const Arg> args, std::span<char> out) noexcept {
  char* p = out.data();
  char* const end = out.data() + out.size();
  // "*N\r\n" then "$len\r\nbytes\r\n" per argument; to_chars fails cleanly
  // when the space runs out, which is the only failure.
  auto put = [&](std::string_view s) {
    if (static_cast<size_t>(end - p) < s.size()) return false;
    if (!s.empty()) std::memcpy(p, s.data(), s.size());
    p += s.size();
    return true;
  };
  auto put_num = [&](char tag, int64_t v) {
    if (!put(std::string_view(&tag, 1))) return false;
    auto [q, ec] = std::to_chars(p, end, v);
    if (ec != std::errc()) return false;
    p = q;
    return put("\r\n");
  };
  if (!put_num('*', static_cast<int64_t>(args.size()))) return 0;
  for (const Arg& a : args) {
    char digits[24];
    std::string_view text = a.text;
    if (a.is_integer) {
      auto [q, ec] = std::to_chars(digits, digits + sizeof(digits), a.integer);
      (void)ec;  // 24 bytes hold any int64
      text = std::string_view(digits, static_cast<size_t>(q - digits));
    }
    if (!put_num('$', static_cast<int64_t>(text.size())) || !put(text) || !put("\r\n")) return 0;
  }
  return static_cast<size_t>(p - out.data());
}

}  // namespace hms::fleet
