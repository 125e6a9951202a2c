#include "hms/auth/sha256.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

namespace hms::auth {
namespace {

std::string Hex(const Sha256Digest& d) {
  static const char* const kHex = "0123456789abcdef";
  std::string s;
  for (uint8_t b : d) {
    s += kHex[b >> 4];
    s += kHex[b & 15];
  }
  return s;
}

std::string Of(std::string_view data) {
  Sha256Digest d;
  Sha256(data, &d);
  return Hex(d);
}

TEST(Sha256, Fips180Vectors) {
  EXPECT_EQ(Of(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Of("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Of("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(Of(std::string(1'000'000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, CpuAndPortableAgreeAtEveryLength) {
  if (!Sha256CpuSupported()) GTEST_SKIP() << "CPU without SHA extensions";
  std::mt19937 rng(7);
  std::string data;
  for (size_t len = 0; len < 1100; ++len) {
    Sha256Digest a, b;
    Sha256Cpu(data, &a);
    Sha256Portable(data, &b);
    ASSERT_EQ(Hex(a), Hex(b)) << len;
    data.push_back(static_cast<char>(rng()));
  }
}

}  // namespace
}  // namespace hms::auth
