// `hms-api token` (token_command.cc).
#pragma once

#include <string>
#include <vector>

namespace hms {

// Runs `hms-api token ARGS`; returns the exit status.
int TokenCommand(const std::vector<std::string>& args);

}  // namespace hms
