// Chunked transfer coding validator (RFC 9112 §7.1). Framing is walked one
// byte at a time through a small state machine so that input split at any
// byte boundary gives the same result; chunk data is skipped in one step.
//
//   chunked-body = *chunk last-chunk trailer-section CRLF
//   chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
//   chunk-ext    = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
#include <algorithm>

#include "hms/http/char_class.h"
#include "hms/http/parser.h"

namespace hms::http {

using internal::HexValue;
using internal::IsTchar;
using internal::IsWs;

namespace {
// A chunk size may be at most 2^63: larger values are either hostile or
// would overflow the running totals of whoever forwards the body.
constexpr uint64_t kMaxChunkSize = uint64_t{1} << 63;
}  // namespace

bool ChunkedDecoder::Fail(ParseError e) noexcept {
  state_ = State::kError;
  error_ = e;
  return false;
}

bool ChunkedDecoder::StepSize(char c) noexcept {
  const int h = HexValue(c);
  if (h >= 0) {
    if (remaining_ > (kMaxChunkSize - static_cast<uint64_t>(h)) / 16) {
      return Fail(ParseError::kBadChunkSize);
    }
    remaining_ = remaining_ * 16 + static_cast<uint64_t>(h);
    size_digits_ = true;
    return true;
  }
  if (!size_digits_) return Fail(ParseError::kBadChunkSize);
  switch (c) {
    case '\r':
      state_ = State::kSizeLf;
      return true;
    case ';':
      state_ = State::kExt;
      ext_ = Ext::kBeforeName;
      return true;
    case ' ':
    case '\t':
      state_ = State::kExt;
      ext_ = Ext::kBeforeSemi;  // BWS is only allowed in front of ';'
      return true;
    case '\n':
      return Fail(ParseError::kBadChunkFraming);
    default:
      return Fail(ParseError::kBadChunkSize);
  }
}

// After an extension's value (a token or a quoted-string): `;` starts the
// next extension, BWS may come before it, CR ends the line. False for any
// other byte, which the caller refuses.
bool ChunkedDecoder::EndExtValue(char c) noexcept {
  if (c == ';') {
    ext_ = Ext::kBeforeName;
    return true;
  }
  if (IsWs(c)) {
    ext_ = Ext::kBeforeSemi;
    return true;
  }
  if (c == '\r') {
    state_ = State::kSizeLf;
    return true;
  }
  return false;
}

bool ChunkedDecoder::StepExt(char c) noexcept {
  switch (ext_) {
    case Ext::kBeforeSemi:
      if (IsWs(c)) return true;
      if (c == ';') {
        ext_ = Ext::kBeforeName;
        return true;
      }
      break;
    case Ext::kBeforeName:
      if (IsWs(c)) return true;
      if (IsTchar(c)) {
        ext_ = Ext::kName;
        return true;
      }
      break;
    case Ext::kName:
      if (IsTchar(c)) return true;
      if (c == ';') {
        ext_ = Ext::kBeforeName;
        return true;
      }
      if (c == '=') {
        ext_ = Ext::kBeforeValue;
        return true;
      }
      if (IsWs(c)) {
        ext_ = Ext::kAfterName;
        return true;
      }
      if (c == '\r') {
        state_ = State::kSizeLf;
        return true;
      }
      break;
    case Ext::kAfterName:
      if (IsWs(c)) return true;
      if (c == ';') {
        ext_ = Ext::kBeforeName;
        return true;
      }
      if (c == '=') {
        ext_ = Ext::kBeforeValue;
        return true;
      }
      break;
    case Ext::kBeforeValue:
      if (IsWs(c)) return true;
      if (IsTchar(c)) {
        ext_ = Ext::kToken;
        return true;
      }
      if (c == '"') {
        ext_ = Ext::kQuoted;
        return true;
      }
      break;
    case Ext::kToken:
      if (IsTchar(c)) return true;
      if (EndExtValue(c)) return true;
      break;
    case Ext::kQuoted:
      if (c == '"') {
        ext_ = Ext::kAfterQuoted;
        return true;
      }
      if (c == '\\') {
        ext_ = Ext::kQuotedEscape;
        return true;
      }
      if (internal::Is(c, internal::kClassQdtext)) return true;
      break;
    case Ext::kQuotedEscape:
      // quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
      if (internal::Is(c, internal::kClassFieldVc)) {
        ext_ = Ext::kQuoted;
        return true;
      }
      break;
    case Ext::kAfterQuoted:
      if (EndExtValue(c)) return true;
      break;
  }
  return Fail(ParseError::kBadChunkFraming);
}

// Trailer fields are validated like header lines (RFC 9112 §7.1.2): a token
// name, a colon, field-vchars; no obs-fold, no bare CR or LF.
bool ChunkedDecoder::StepTrailer(char c) noexcept {
  if (trailer_ == Trailer::kName) {
    if (trailer_empty_line_ && c == '\r') {
      state_ = State::kTrailerLf;
      return true;
    }
    if (IsTchar(c)) {
      trailer_empty_line_ = false;
      return true;
    }
    if (c == ':' && !trailer_empty_line_) {
      trailer_ = Trailer::kValue;
      return true;
    }
    return Fail(ParseError::kBadChunkFraming);
  }
  if (c == '\r') {
    state_ = State::kTrailerLf;
    return true;
  }
  if (internal::Is(c, internal::kClassFieldVc)) return true;
  return Fail(ParseError::kBadChunkFraming);
}

bool ChunkedDecoder::Next(const char* p, size_t n, Step* step) noexcept {
  *step = Step{};
  if (state_ == State::kError) return false;
  if (state_ == State::kDone || n == 0) return true;

  if (state_ == State::kData) {
    const size_t take = static_cast<size_t>(std::min<uint64_t>(n, remaining_));
    remaining_ -= take;
    data_bytes_ += take;
    step->consumed = take;
    step->data_len = take;
    if (remaining_ == 0) state_ = State::kDataCr;
    return true;
  }

  size_t i = 0;
  while (i < n) {
    const char c = p[i++];
    bool ok = true;
    switch (state_) {
      case State::kSize:
      case State::kExt:
        if (++line_bytes_ > kMaxLineBytes) return Fail(ParseError::kBadChunkFraming);
        ok = state_ == State::kSize ? StepSize(c) : StepExt(c);
        break;
      case State::kSizeLf:
        if (c != '\n') return Fail(ParseError::kBadChunkFraming);
        line_bytes_ = 0;
        if (remaining_ == 0) {
          state_ = State::kTrailer;  // last-chunk
          trailer_ = Trailer::kName;
          trailer_empty_line_ = true;
        } else {
          state_ = State::kData;
        }
        break;
      case State::kDataCr:
        if (c != '\r') return Fail(ParseError::kBadChunkFraming);
        state_ = State::kDataLf;
        break;
      case State::kDataLf:
        if (c != '\n') return Fail(ParseError::kBadChunkFraming);
        state_ = State::kSize;
        remaining_ = 0;
        size_digits_ = false;
        line_bytes_ = 0;
        break;
      case State::kTrailer:
      case State::kTrailerLf:
        if (++line_bytes_ > kMaxLineBytes || ++trailer_bytes_ > kMaxTrailerBytes) {
          return Fail(ParseError::kBadChunkFraming);
        }
        if (state_ == State::kTrailer) {
          ok = StepTrailer(c);
        } else if (c != '\n') {
          return Fail(ParseError::kBadChunkFraming);
        } else if (trailer_empty_line_) {
          state_ = State::kDone;
        } else {
          state_ = State::kTrailer;
          trailer_ = Trailer::kName;
          trailer_empty_line_ = true;
          line_bytes_ = 0;
        }
        break;
      case State::kData:
      case State::kDone:
      case State::kError:
        break;  // unreachable: the loop stops on entering these
    }
    if (!ok) return false;
    if (state_ == State::kData || state_ == State::kDone) break;
  }
  step->consumed = i;
  return true;
}

}  // namespace hms::http
