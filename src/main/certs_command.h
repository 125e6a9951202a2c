// `hms-api certs` (certs_command.cc).
#pragma once

#include <string>
#include <vector>

namespace hms {

// Runs `hms-api certs ARGS`; returns the exit status.
int CertsCommand(const std::vector<std::string>& args);

}  // namespace hms
