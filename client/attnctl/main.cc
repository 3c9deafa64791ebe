// attnctl: call, inspect and load-test an attnd server. See `attnctl --help`.
#include <iostream>
#include <string>
#include <vector>

#include "client/attnctl/commands.h"
#include "client/attnctl/flags.h"

int main(int argc, char** argv) {
  using namespace attnd::attnctl;  // NOLINT: main only
  std::vector<std::string> args(argv + 1, argv + argc);
  absl::StatusOr<CommandLine> command_line = ParseCommandLine(args);
  if (!command_line.ok()) {
    std::cerr << "attnctl: " << command_line.status().message()
              << "\nRun 'attnctl --help' for usage.\n";
    return kExitUsage;
  }
  switch (command_line->command) {
    case Command::kHelp:
      std::cout << UsageText();
      return kExitOk;
    case Command::kInfo:
      return RunInfo(*command_line, std::cout, std::cerr);
    case Command::kHealth:
      return RunHealth(*command_line, std::cout, std::cerr);
    case Command::kAttend:
      return RunAttend(*command_line, std::cout, std::cerr);
    case Command::kLoad:
      return RunLoad(*command_line, std::cout, std::cerr);
  }
  return kExitUsage;
}
