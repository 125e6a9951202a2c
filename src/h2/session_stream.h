// The parts of a session both sides' sources share (internal to src/h2):
// the shared part of a stream, which each side's Stream extends, and
// nghttp2's callbacks that Session answers itself. Only src/h2's .cc files
// include it.
#pragma once

#include <nghttp2/nghttp2.h>

#include <cstdint>

#include "hms/h2/session.h"
#include "nghttp2_glue.h"

namespace hms::h2 {

// One stream's shared state, from the pool: from its HEADERS (the server)
// or Submit() (the client) to nghttp2's close callback, or Close(). Each
// side's Stream adds only trivially destructible fields: Session::FreeStream
// ends a stream as this part.
struct Session::Stream {
  int32_t id = 0;
  uint64_t tag = 0;
  Stream* next = nullptr;  // the session's live list
  Stream* prev = nullptr;
  Stream* next_sendable = nullptr;  // pending OnSendable, while queued
  glue::Outbox body;                // what this side sends on the stream
  uint64_t unconsumed = 0;          // body bytes delivered, not yet Consume()d
  bool engine_reset = false;        // this side reset it (Reset()): not provoked
};

// nghttp2's callbacks that are the same on both sides; SessionConfig::Init
// sets them, each side's Make the others. `self` is the Session.
struct SessionCallbacks {
  static int BeginFrame(nghttp2_session*, const nghttp2_frame_hd* hd, void* self);
  static int DataChunk(nghttp2_session*, uint8_t, int32_t id, const uint8_t* data, size_t len,
                       void* self);
  static int StreamClose(nghttp2_session*, int32_t id, uint32_t code, void* self);
  // The data provider of every stream's body.
  static ssize_t ReadBody(nghttp2_session*, int32_t id, uint8_t* buf, size_t len, uint32_t* flags,
                          nghttp2_data_source*, void* self);
};

}  // namespace hms::h2
