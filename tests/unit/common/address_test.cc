#include "hms/common/address.h"

#include <gtest/gtest.h>

#include <string>

namespace hms {
namespace {

TEST(SplitHostPort, SplitsHostAndPort) {
  const struct {
    std::string in;
    bool ok;
    std::string host;
    uint16_t port;
    bool bracketed;
  } cases[] = {
      {"127.0.0.1:8080", true, "127.0.0.1", 8080, false},
      {"[::1]:9901", true, "::1", 9901, true},
      {"svc.local:80", true, "svc.local", 80, false},
      {"0.0.0.0:0", true, "0.0.0.0", 0, false},
      {"h:65535", true, "h", 65535, false},
      {"h:65536", false, "", 0, false},
      {"h:080800", false, "", 0, false},   // more than five digits
      {"h:", false, "", 0, false},
      {":80", false, "", 0, false},
      {"h", false, "", 0, false},
      {"h:8a", false, "", 0, false},
      {"h:+80", false, "", 0, false},
      {"::1:80", false, "", 0, false},     // IPv6 needs brackets
      {"[::1]", false, "", 0, false},
      {"[::1]80", false, "", 0, false},
      {"[]:80", false, "", 0, false},
  };
  for (const auto& c : cases) {
    const std::optional<HostPortText> hp = SplitHostPort(c.in);
    ASSERT_EQ(hp.has_value(), c.ok) << c.in;
    if (!hp) continue;
    EXPECT_EQ(hp->host, c.host) << c.in;
    EXPECT_EQ(hp->port, c.port) << c.in;
    EXPECT_EQ(hp->bracketed, c.bracketed) << c.in;
  }
}

TEST(ParseNumericAddress, BindsOnlyNumericAddresses) {
  sockaddr_storage ss;
  socklen_t len = 0;
  ASSERT_TRUE(ParseNumericAddress("127.0.0.1:8080", &ss, &len));
  EXPECT_EQ(ss.ss_family, AF_INET);
  EXPECT_EQ(len, sizeof(sockaddr_in));
  EXPECT_EQ(ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port), 8080);
  ASSERT_TRUE(ParseNumericAddress("[::1]:0", &ss, &len));
  EXPECT_EQ(ss.ss_family, AF_INET6);
  EXPECT_EQ(len, sizeof(sockaddr_in6));
  ASSERT_TRUE(ParseNumericAddress("localhost:9901", &ss, &len));  // the one name: loopback
  EXPECT_EQ(ntohl(reinterpret_cast<sockaddr_in*>(&ss)->sin_addr.s_addr), INADDR_LOOPBACK);
  for (const char* bad : {"example.com:80", "[localhost]:80", "[127.0.0.1]:80", "::1:80", "1.2.3.400:80",
                          "127.0.0.1:abc", "127.0.0.1:70000", "[::1:80"}) {
    EXPECT_FALSE(ParseNumericAddress(bad, &ss, &len)) << bad;
  }
}

}  // namespace
}  // namespace hms
