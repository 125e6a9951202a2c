// The reason phrase of every status line the gateway writes itself: local
// answers on the data path (proxy) and the admin API (control). Upstreams'
// own reason phrases are forwarded as they come. Pure; any thread.
#pragma once

#include <string_view>

namespace hms::http {

// RFC 9110 §15's phrase for `status`; for a code not listed, the phrase of its
// class ("Client Error" for 4xx, ...): the phrase is informative only
// (RFC 9112 §4), a client must not depend on it.
constexpr std::string_view StatusText(int status) noexcept {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: break;
  }
  if (status < 200) return "Informational";
  if (status < 300) return "Success";
  if (status < 400) return "Redirection";
  if (status < 500) return "Client Error";
  return "Server Error";
}

}  // namespace hms::http
