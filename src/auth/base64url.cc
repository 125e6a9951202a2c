#include "hms/auth/base64url.h"

#include <array>
#include <cerrno>

namespace hms::auth {
namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr uint8_t kInvalid = 0xff;

constexpr std::array<uint8_t, 256> MakeDecodeTable() {
  std::array<uint8_t, 256> t{};
  for (auto& v : t) v = kInvalid;
  for (uint8_t i = 0; i < 64; ++i) t[static_cast<uint8_t>(kAlphabet[i])] = i;
  return t;
}
constexpr std::array<uint8_t, 256> kDecode = MakeDecodeTable();

}  // namespace

int64_t DecodeBase64Url(std::string_view in, uint8_t* out, size_t cap) noexcept {
  const size_t n = in.size();
  if (n % 4 == 1) return -EINVAL;  // 6 bits cannot end a byte
  if (Base64UrlDecodedSize(n) > cap) return -ENOSPC;
  const auto* p = reinterpret_cast<const uint8_t*>(in.data());
  size_t o = 0;
  size_t i = 0;
  // Four characters at a time; OR-ing the table values finds any invalid byte
  // (0xff) with one branch per group.
  for (; i + 4 <= n; i += 4) {
    const uint32_t a = kDecode[p[i]], b = kDecode[p[i + 1]], c = kDecode[p[i + 2]],
                   d = kDecode[p[i + 3]];
    if ((a | b | c | d) & 0x80) return -EINVAL;
    const uint32_t v = a << 18 | b << 12 | c << 6 | d;
    out[o++] = static_cast<uint8_t>(v >> 16);
    out[o++] = static_cast<uint8_t>(v >> 8);
    out[o++] = static_cast<uint8_t>(v);
  }
  const size_t rest = n - i;
  if (rest == 2) {
    const uint32_t a = kDecode[p[i]], b = kDecode[p[i + 1]];
    if ((a | b) & 0x80) return -EINVAL;
    if (b & 0x0f) return -EINVAL;  // unused low bits must be zero (RFC 4648 §3.5)
    out[o++] = static_cast<uint8_t>(a << 2 | b >> 4);
  } else if (rest == 3) {
    const uint32_t a = kDecode[p[i]], b = kDecode[p[i + 1]], c = kDecode[p[i + 2]];
    if ((a | b | c) & 0x80) return -EINVAL;
    if (c & 0x03) return -EINVAL;
    const uint32_t v = a << 10 | b << 4 | c >> 2;
    out[o++] = static_cast<uint8_t>(v >> 8);
    out[o++] = static_cast<uint8_t>(v);
  }
  return static_cast<int64_t>(o);
}

size_t EncodeBase64Url(const uint8_t* in, size_t n, char* out) noexcept {
  size_t o = 0;
  size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    const uint32_t v = uint32_t{in[i]} << 16 | uint32_t{in[i + 1]} << 8 | in[i + 2];
    out[o++] = kAlphabet[v >> 18];
    out[o++] = kAlphabet[(v >> 12) & 63];
    out[o++] = kAlphabet[(v >> 6) & 63];
    out[o++] = kAlphabet[v & 63];
  }
  if (n - i == 1) {
    const uint32_t v = uint32_t{in[i]} << 16;
    out[o++] = kAlphabet[v >> 18];
    out[o++] = kAlphabet[(v >> 12) & 63];
  } else if (n - i == 2) {
    const uint32_t v = uint32_t{in[i]} << 16 | uint32_t{in[i + 1]} << 8;
    out[o++] = kAlphabet[v >> 18];
    out[o++] = kAlphabet[(v >> 12) & 63];
    out[o++] = kAlphabet[(v >> 6) & 63];
  }
  return o;
}

std::string EncodeBase64Url(std::string_view bytes) {
  std::string out(Base64UrlEncodedSize(bytes.size()), '\0');
  EncodeBase64Url(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), out.data());
  return out;
}

}  // namespace hms::auth
