// Errors as values (STYLE §2). A Result<T> holds either a T or an Error that
// says which side failed and whether a retry may help. Used by control-plane
// code too; the data path uses the syscall-like and tri-state shapes instead.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace hms {

enum class Side : uint8_t { kDownstream, kUpstream, kInternal, kConfig };

struct Error {
  std::string message;  // for config errors: "file:line: reason"
  Side side = Side::kInternal;
  bool retryable = false;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}        // NOLINT: implicit by design
  Result(Error error) : v_(std::move(error)) {}    // NOLINT: implicit by design
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  const T& value() const& { return std::get<0>(v_); }
  T* operator->() { return &std::get<0>(v_); }
  const T* operator->() const { return &std::get<0>(v_); }
  T& operator*() { return std::get<0>(v_); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

inline Error ConfigError(std::string message) { return Error{std::move(message), Side::kConfig}; }

}  // namespace hms
