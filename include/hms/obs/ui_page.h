// The files of the admin page /ui (docs/observability.md "The live page"):
// one HTML page, its script and its style sheet, written in src/obs/ui/ and
// compiled into the binary (xxd -i at build time), so the page needs nothing
// but the admin listener that serves it: no external asset, no framework.
//
// Pure data: any thread.
#pragma once

#include <cstddef>
#include <string_view>

namespace hms::obs {

struct UiAsset {
  std::string_view path;          // "/ui", "/ui/app.js", "/ui/style.css"
  std::string_view content_type;
  std::string_view body;
};

// Every file of the page, the page itself first.
const UiAsset* UiAssets(size_t* count) noexcept;

// The Content-Security-Policy every file of the page is served with: its own
// script and style only, data from its own origin only.
inline constexpr std::string_view kUiContentSecurityPolicy =
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

}  // namespace hms::obs
