#include "tests/integration/server_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace attnd::testing {
namespace {

std::string TempFile(const std::string& stem, const std::string& contents) {
  const char* dir = std::getenv("TMPDIR");
  std::string path = absl::StrCat(dir != nullptr ? dir : "/tmp", "/", stem, "-XXXXXX");
  int fd = mkstemp(path.data());
  if (fd < 0) return "";
  if (write(fd, contents.data(), contents.size()) != static_cast<ssize_t>(contents.size())) {
    path.clear();
  }
  close(fd);
  return path;
}

std::vector<char*> ArgvPointers(const std::vector<std::string>& argv) {
  std::vector<char*> out;
  for (const std::string& a : argv) out.push_back(const_cast<char*>(a.c_str()));
  out.push_back(nullptr);
  return out;
}

// Decodes a waitpid status into an exit code (128 + signal when killed by one).
int ExitCode(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ServerProcess>> ServerProcess::Start(
    const std::string& extra_yaml, const std::vector<std::string>& extra_args,
    const std::vector<std::string>& extra_env) {
  // Sections named in extra_yaml replace these; YAML refuses duplicate top-level keys, so the
  // base names only what extra_yaml never repeats in these tests.
  std::string base = "logging:\n  level: info\n  format: json\n";
  if (extra_yaml.find("server:") == std::string::npos) {
    base += "server:\n  listen: 127.0.0.1:0\n  drain_timeout_seconds: 20\n";
  }
  if (extra_yaml.find("metrics:") == std::string::npos) {
    base += "metrics:\n  listen: 127.0.0.1:0\n";
  }
  if (extra_yaml.find("backend:") == std::string::npos) {
    base += "backend:\n  kind: cpu\n";
  }
  auto process = std::unique_ptr<ServerProcess>(new ServerProcess());
  process->config_path_ = TempFile("attnd-config", base + extra_yaml);
  if (process->config_path_.empty()) return absl::InternalError("cannot write the config file");

  std::vector<std::string> argv = {ATTND_BINARY, "--config", process->config_path_};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) return absl::InternalError("pipe failed");
  pid_t pid = fork();
  if (pid < 0) return absl::InternalError("fork failed");
  if (pid == 0) {
    dup2(pipe_fds[1], STDERR_FILENO);
    dup2(pipe_fds[1], STDOUT_FILENO);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    for (const std::string& entry : extra_env) putenv(const_cast<char*>(entry.c_str()));
    std::vector<char*> args = ArgvPointers(argv);
    execv(args[0], args.data());
    _exit(127);
  }
  close(pipe_fds[1]);
  process->pid_ = pid;
  process->log_reader_ = std::thread([p = process.get(), fd = pipe_fds[0]] { p->ReadLog(fd); });

  // The "serving" line names the bound addresses: ..."listen":"127.0.0.1:PORT"...
  const std::regex listen_re("\"listen\":\"([^\"]+)\"");
  const std::regex metrics_re("\"metrics_listen\":\"([^\"]+)\"");
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (absl::Now() < deadline) {
    std::string log = process->Log();
    for (const absl::string_view line : absl::StrSplit(log, '\n')) {
      if (line.find("\"serving\"") == absl::string_view::npos) continue;
      std::smatch m;
      std::string l(line);
      if (std::regex_search(l, m, listen_re)) process->target_ = m[1];
      if (std::regex_search(l, m, metrics_re)) process->metrics_ = m[1];
      if (!process->target_.empty()) return process;
    }
    int status;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      process->exit_code_ = ExitCode(status);
      // The reader ends at the pipe's EOF: only then is everything attnd wrote in the log.
      process->log_reader_.join();
      return absl::InternalError(absl::StrCat("attnd exited with ", *process->exit_code_,
                                              " before serving:\n", process->Log()));
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  return absl::DeadlineExceededError(
      absl::StrCat("attnd did not report serving within 30 s:\n", process->Log()));
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0 && !exit_code_.has_value()) {
    kill(pid_, SIGKILL);
    int status;
    waitpid(pid_, &status, 0);
  }
  if (log_reader_.joinable()) log_reader_.join();
  if (!config_path_.empty()) unlink(config_path_.c_str());
}

void ServerProcess::ReadLog(int fd) {
  char buf[4096];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0) break;
    absl::MutexLock lock(&mu_);
    log_.append(buf, n);
  }
  close(fd);
}

void ServerProcess::Signal(int signal) { kill(pid_, signal); }

absl::StatusOr<int> ServerProcess::WaitForExit(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!exit_code_.has_value()) {
    int status;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      exit_code_ = ExitCode(status);
      break;
    }
    if (absl::Now() > deadline) return absl::DeadlineExceededError("attnd did not exit");
    absl::SleepFor(absl::Milliseconds(10));
  }
  return *exit_code_;
}

std::string ServerProcess::Log() const {
  absl::MutexLock lock(&mu_);
  return log_;
}

namespace {

// A "Name:   1234 kB" line of /proc/PID/status, in bytes.
absl::StatusOr<int64_t> StatusBytes(pid_t pid, const std::string& name) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  const std::string prefix = name + ":";
  while (std::getline(status, line)) {
    if (absl::StartsWith(line, prefix)) {
      int64_t kib = 0;
      const std::string rest = line.substr(prefix.size());  // outlives the views into it
      absl::string_view value = absl::StripAsciiWhitespace(rest);
      value = absl::StripSuffix(value, "kB");
      if (absl::SimpleAtoi(absl::StripAsciiWhitespace(value), &kib)) return kib * 1024;
    }
  }
  return absl::NotFoundError(absl::StrCat("no ", name, " in /proc/PID/status"));
}

}  // namespace

absl::StatusOr<int64_t> ServerProcess::PeakRssBytes() const { return StatusBytes(pid_, "VmHWM"); }

absl::StatusOr<int64_t> ServerProcess::RssBytes() const { return StatusBytes(pid_, "VmRSS"); }

CommandResult RunCommand(const std::vector<std::string>& argv, const std::string& input,
                         absl::Duration timeout) {
  CommandResult result;
  int in_fds[2], out_fds[2];
  if (pipe(in_fds) != 0 || pipe(out_fds) != 0) return result;
  pid_t pid = fork();
  if (pid == 0) {
    dup2(in_fds[0], STDIN_FILENO);
    dup2(out_fds[1], STDOUT_FILENO);
    dup2(out_fds[1], STDERR_FILENO);
    close(in_fds[0]);
    close(in_fds[1]);
    close(out_fds[0]);
    close(out_fds[1]);
    std::vector<char*> args = ArgvPointers(argv);
    execvp(args[0], args.data());
    _exit(127);
  }
  close(in_fds[0]);
  close(out_fds[1]);
  // Write stdin from a thread so a child that prints a lot before reading cannot deadlock us.
  std::thread writer([fd = in_fds[1], &input] {
    signal(SIGPIPE, SIG_IGN);
    size_t done = 0;
    while (done < input.size()) {
      ssize_t n = write(fd, input.data() + done, input.size() - done);
      if (n <= 0) break;
      done += n;
    }
    close(fd);
  });
  const absl::Time deadline = absl::Now() + timeout;
  char buf[4096];
  for (;;) {
    pollfd pfd{out_fds[0], POLLIN, 0};
    int ready = poll(&pfd, 1, 100);
    if (ready > 0) {
      ssize_t n = read(out_fds[0], buf, sizeof(buf));
      if (n <= 0) break;
      result.output.append(buf, n);
    }
    if (absl::Now() > deadline) {
      kill(pid, SIGKILL);
      result.output += "\n[killed: timeout]";
      break;
    }
  }
  close(out_fds[0]);
  writer.join();
  int status;
  waitpid(pid, &status, 0);
  result.exit_code = ExitCode(status);
  return result;
}

absl::StatusOr<std::string> HttpGet(const std::string& host_port, const std::string& path) {
  std::pair<std::string, std::string> hp = absl::StrSplit(host_port, ':');
  int port = 0;
  if (!absl::SimpleAtoi(hp.second, &port)) return absl::InvalidArgumentError(host_port);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  inet_pton(AF_INET, hp.first == "0.0.0.0" ? "127.0.0.1" : hp.first.c_str(), &addr.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return absl::UnavailableError(absl::StrCat("cannot connect to ", host_port));
  }
  const std::string request =
      absl::StrCat("GET ", path, " HTTP/1.0\r\nHost: ", host_port, "\r\n\r\n");
  if (write(fd, request.data(), request.size()) != static_cast<ssize_t>(request.size())) {
    close(fd);
    return absl::UnavailableError("short write");
  }
  std::string response;
  char buf[8192];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) response.append(buf, n);
  close(fd);
  const size_t header_end = response.find("\r\n\r\n");
  if (header_end == std::string::npos) return absl::DataLossError("no HTTP header end");
  const std::string status_line = response.substr(0, response.find("\r\n"));
  if (status_line.find(" 200 ") == std::string::npos) {
    return absl::NotFoundError(absl::StrCat(path, ": ", status_line));
  }
  return response.substr(header_end + 4);
}

int FreeLoopbackPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = 0;
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

bool WaitForMetric(const ServerProcess& server, const std::string& name, double at_least,
                   absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    absl::StatusOr<std::string> text = HttpGet(server.metrics_address(), "/metrics");
    if (text.ok() && MetricValue(*text, name) >= at_least) return true;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return false;
}

double MetricValue(const std::string& metrics_text, const std::string& name,
                   const std::vector<std::string>& label_filter) {
  double total = 0;
  for (absl::string_view line : absl::StrSplit(metrics_text, '\n')) {
    if (line.empty() || line[0] == '#') continue;
    if (!absl::StartsWith(line, name)) continue;
    const char next = line.size() > name.size() ? line[name.size()] : '\0';
    if (next != '{' && next != ' ') continue;  // a longer name sharing the prefix
    bool match = true;
    for (const std::string& label : label_filter) {
      if (line.find(label) == absl::string_view::npos) match = false;
    }
    if (!match) continue;
    double value = 0;
    if (absl::SimpleAtod(line.substr(line.rfind(' ') + 1), &value)) total += value;
  }
  return total;
}

pid_t SpawnCommand(const std::vector<std::string>& argv) {
  const pid_t pid = fork();
  if (pid == 0) {
    const int null_fd = open("/dev/null", O_RDWR);
    dup2(null_fd, STDIN_FILENO);
    dup2(null_fd, STDOUT_FILENO);
    dup2(null_fd, STDERR_FILENO);
    std::vector<char*> args = ArgvPointers(argv);
    execv(args[0], args.data());
    _exit(127);
  }
  return pid;
}

void KillAndReap(pid_t pid) {
  if (pid <= 0) return;
  kill(pid, SIGKILL);
  int status;
  waitpid(pid, &status, 0);
}

std::string MetricsText(const ServerProcess& server) {
  absl::StatusOr<std::string> text = HttpGet(server.metrics_address(), "/metrics");
  return text.ok() ? *text : "";
}

bool WaitForBaseline(const ServerProcess& server, absl::Duration timeout, std::string* why) {
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    const std::string text = MetricsText(server);
    const double queued = MetricValue(text, "attnd_queue_depth");
    const double inflight = MetricValue(text, "attnd_inflight_requests");
    const double pool = MetricValue(text, "attnd_pool_used_bytes");
    if (!text.empty() && queued == 0 && inflight == 0 && pool == 0) return true;
    if (absl::Now() > deadline) {
      *why = absl::StrCat("attnd_queue_depth ", queued, ", attnd_inflight_requests ", inflight,
                          ", attnd_pool_used_bytes ", pool, text.empty() ? " (no /metrics)" : "");
      return false;
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
}

}  // namespace attnd::testing
