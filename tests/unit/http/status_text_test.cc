#include "hms/http/status_text.h"

#include <gtest/gtest.h>

namespace hms::http {
namespace {

TEST(StatusText, NamesTheStatusesTheGatewayWrites) {
  const struct {
    int status;
    std::string_view text;
  } cases[] = {
      {100, "Continue"},        {200, "OK"},
      {400, "Bad Request"},     {404, "Not Found"},
      {405, "Method Not Allowed"}, {413, "Content Too Large"},
      {429, "Too Many Requests"}, {431, "Request Header Fields Too Large"},
      {502, "Bad Gateway"},     {503, "Service Unavailable"},
      {504, "Gateway Timeout"},
  };
  for (const auto& c : cases) EXPECT_EQ(StatusText(c.status), c.text) << c.status;
}

TEST(StatusText, FallsBackToTheClass) {
  EXPECT_EQ(StatusText(103), "Informational");
  EXPECT_EQ(StatusText(299), "Success");
  EXPECT_EQ(StatusText(307), "Redirection");
  EXPECT_EQ(StatusText(418), "Client Error");
  EXPECT_EQ(StatusText(599), "Server Error");
}

}  // namespace
}  // namespace hms::http
