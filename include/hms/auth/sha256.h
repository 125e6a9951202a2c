// One-shot SHA-256 for the verified-token cache's digests. The CPU's SHA
// extensions (SHA-NI), when present, hash a 600-byte token in well under a
// microsecond; Debian's wolfCrypt is built without them and takes several
// (FIELD-NOTES "JWT with wolfCrypt"). The choice is made once, at first use.
// Pure functions; any thread. Signatures still hash with wolfCrypt.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace hms::auth {

using Sha256Digest = std::array<uint8_t, 32>;

// SHA-256 of `data`: SHA-NI when the CPU has it, else wolfCrypt.
void Sha256(std::string_view data, Sha256Digest* out) noexcept;

// The two implementations, for tests and benchmarks.
bool Sha256CpuSupported() noexcept;
void Sha256Cpu(std::string_view data, Sha256Digest* out) noexcept;  // needs Sha256CpuSupported()
void Sha256Portable(std::string_view data, Sha256Digest* out) noexcept;

}  // namespace hms::auth
