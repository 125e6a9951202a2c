// OTLP/HTTP JSON encoding of spans (docs/observability.md "Spans"): the body
// of `POST /v1/traces` that the OpenTelemetry Collector and Jaeger accept
// (opentelemetry-proto's ExportTraceServiceRequest in the protobuf JSON
// mapping: lowerCamelCase field names, ids as hex strings, 64-bit integers
// as decimal strings, enums as numbers).
//
// Control-plane code (the exporter thread): allocates freely.
#pragma once

#include <cstddef>
#include <string>

#include "hms/obs/span.h"

namespace hms::obs {

// What every span of this process shares: the OTLP resource.
struct OtlpResource {
  std::string service_name;     // service.name
  std::string service_version;  // service.version
  std::string role;             // hms.role: gateway | sidecar
};

// Writes one ExportTraceServiceRequest holding spans[0, n) into *out
// (replacing its contents): one resourceSpans, one scopeSpans, kind
// SPAN_KIND_SERVER, attributes after OpenTelemetry's HTTP semantic
// conventions (see the .cc for the list).
void EncodeOtlpTraces(const OtlpResource& resource, const SpanRecord* spans, size_t n,
                      std::string* out);

}  // namespace hms::obs
