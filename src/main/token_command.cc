// `hms-api token`: mints a development JWT with the gateway's HS256 dev key
// (DESIGN §2), so a walk-through or a test can call a JWT-protected route.
#include "src/main/token_command.h"

#include <cstdio>
#include <ctime>
#include <string>

#include "hms/auth/key_set.h"
#include "hms/auth/mint.h"
#include "hms/common/json_escape.h"
#include "hms/config/config.h"

namespace hms {
namespace {

constexpr char kTokenHelp[] =
    "usage: hms-api token --sub SUBJECT [--aud AUDIENCE] [--iss ISSUER] [--scope SCOPE]\n"
    "                     [--ttl DURATION] [--config GATEWAY_YAML | --secret-file FILE]\n"
    "\n"
    "Prints a development JWT (HS256) for SUBJECT, signed with the dev key: the\n"
    "hs256_secret_file of the gateway config's jwt section (issuer and audience\n"
    "default to that section's), or --secret-file. For development and tests;\n"
    "production tokens come from your identity provider.\n"
    "\n"
    "  --sub SUBJECT       the \"sub\" claim (required)\n"
    "  --aud AUDIENCE      the \"aud\" claim\n"
    "  --iss ISSUER        the \"iss\" claim\n"
    "  --scope SCOPE       the \"scope\" claim, e.g. \"calc:read calc:write\"\n"
    "  --ttl DURATION      lifetime: 30s, 15m, 1h (default), up to 30 days\n"
    "  --config FILE       gateway.yaml whose jwt section names the dev key\n"
    "                      (default: $HMS_CONFIG)\n"
    "  --secret-file FILE  the HS256 secret itself (at least 32 bytes)\n"
    "\n"
    "example:\n"
    "  JWT=$(hms-api token --config gateway.yaml --sub alice --scope calc:read)\n"
    "  curl -H \"Authorization: Bearer $JWT\" http://127.0.0.1:8080/sum/2/3\n";

int Fail(const std::string& message) {
  std::fprintf(stderr, "hms-api token: %s\n", message.c_str());
  return 1;
}

int Usage(const std::string& message) {
  std::fprintf(stderr, "hms-api token: %s\n\n%s", message.c_str(), kTokenHelp);
  return 2;
}

}  // namespace

int TokenCommand(const std::vector<std::string>& args) {
  std::string sub, aud, iss, scope, config_path, secret_file;
  bool have_aud = false, have_iss = false;
  uint64_t ttl_ms = 3'600'000;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h") {
      std::fputs(kTokenHelp, stdout);
      return 0;
    }
    if (i + 1 >= args.size()) return Usage(a.starts_with("--") ? a + " needs a value" : "unexpected '" + a + "'");
    const std::string& v = args[++i];
    if (a == "--sub") {
      sub = v;
    } else if (a == "--aud") {
      aud = v;
      have_aud = true;
    } else if (a == "--iss") {
      iss = v;
      have_iss = true;
    } else if (a == "--scope") {
      scope = v;
    } else if (a == "--ttl") {
      std::optional<uint64_t> ms = config::ParseDurationMs(v);
      if (!ms || *ms < 1000 || *ms > 30ull * 24 * 3'600'000) {
        return Usage("--ttl '" + v + "' must be a duration from 1s to 30 days (e.g. 15m, 1h)");
      }
      ttl_ms = *ms;
    } else if (a == "--config") {
      config_path = v;
    } else if (a == "--secret-file") {
      secret_file = v;
    } else {
      return Usage("unknown option '" + a + "'");
    }
  }
  if (sub.empty()) return Usage("--sub is required");
  if (config_path.empty() && secret_file.empty()) {
    if (const char* env = std::getenv("HMS_CONFIG"); env != nullptr && *env != '\0') config_path = env;
  }
  if (secret_file.empty()) {
    if (config_path.empty()) {
      return Usage("no dev key: give --config GATEWAY_YAML (its jwt section) or --secret-file FILE");
    }
    Result<config::GatewayConfig> c = config::LoadGatewayConfig(config_path);
    if (!c) return Fail(c.error().message);
    if (!c->jwt) return Fail(config_path + " has no jwt section: its gateway checks no tokens");
    if (c->jwt->hs256_secret_file.empty()) {
      return Fail(config_path + ": the jwt section uses a JWKS file (" + c->jwt->jwks +
                  "), whose private keys are not the gateway's to hold; mint with your identity "
                  "provider, or give --secret-file for an HS256 dev key");
    }
    secret_file = c->jwt->hs256_secret_file;
    if (!have_iss) iss = c->jwt->issuer;
    if (!have_aud) aud = c->jwt->audience;
  }
  Result<auth::KeySet> keys = auth::KeySet::FromHs256SecretFile(secret_file);
  if (!keys) return Fail(keys.error().message);

  const int64_t now = static_cast<int64_t>(std::time(nullptr));
  std::string claims = "{\"sub\":";
  AppendJsonString(&claims, sub);
  if (!iss.empty()) {
    claims += ",\"iss\":";
    AppendJsonString(&claims, iss);
  }
  if (!aud.empty()) {
    claims += ",\"aud\":";
    AppendJsonString(&claims, aud);
  }
  if (!scope.empty()) {
    claims += ",\"scope\":";
    AppendJsonString(&claims, scope);
  }
  claims += ",\"iat\":" + std::to_string(now) + ",\"exp\":" +
            std::to_string(now + static_cast<int64_t>(ttl_ms / 1000)) + "}";
  Result<std::string> token = auth::MintHs256(keys->key(0).secret, claims);
  if (!token) return Fail(token.error().message);
  std::printf("%s\n", token->c_str());
  return 0;
}

}  // namespace hms
