// HttpExporter: a deliberately small HTTP/1.x server for GET /metrics, on one thread.
//
// Why not civetweb: Debian's libcivetweb is built with USE_STACK_SIZE=102400, so its worker
// threads get 100 KiB stacks, and glibc places the static TLS of every library loaded at start-up
// on each thread's stack. OpenBLAS alone brings 60 KiB of TLS and cuBLAS + cuBLASLt 106 KiB: in
// the CUDA build civetweb could not create its workers at all ("Cannot create first worker
// thread"), and in the CPU build its handlers ran 40 KiB from overflowing. A scrape endpoint needs
// one request at a time, so this serves connections one by one on an ordinary std::thread.
//
// Each connection: read the request head (up to 16 KiB, 5 s), answer, close. A stop pipe wakes
// the accept loop, so destruction is prompt.
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fcntl.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/metrics/metrics.h"

namespace attnd::server::metrics {
namespace {

constexpr char kContentType[] = "text/plain; version=0.0.4; charset=utf-8";
constexpr size_t kMaxRequestHead = 16 << 10;
constexpr int kReadTimeoutMs = 5000;

struct HostPort {
  std::string host;  // numeric address, or empty for every address
  int port = 0;
};

// "host:port", "[v6]:port", ":port", "*:port", "localhost:port".
absl::StatusOr<HostPort> ParseListen(const std::string& listen) {
  const size_t colon = listen.rfind(':');
  HostPort out;
  if (colon == std::string::npos || !absl::SimpleAtoi(listen.substr(colon + 1), &out.port) ||
      out.port < 0 || out.port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics listen address \"", listen, "\" is not host:port"));
  }
  out.host = listen.substr(0, colon);
  if (out.host.size() >= 2 && out.host.front() == '[' && out.host.back() == ']') {
    out.host = out.host.substr(1, out.host.size() - 2);
  }
  if (out.host == "*") out.host.clear();
  if (out.host == "localhost") out.host = "127.0.0.1";
  return out;
}

// A listening TCP socket on `listen`; the bound port in *port.
absl::StatusOr<int> Listen(const std::string& listen, int* port) {
  absl::StatusOr<HostPort> hp = ParseListen(listen);
  if (!hp.ok()) return hp.status();
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
  addrinfo* addrs = nullptr;
  const std::string service = std::to_string(hp->port);
  if (int rc = getaddrinfo(hp->host.empty() ? nullptr : hp->host.c_str(), service.c_str(), &hints,
                           &addrs);
      rc != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics listen address \"", listen, "\": ", gai_strerror(rc)));
  }
  std::string last_error = "no address";
  int fd = -1;
  for (addrinfo* a = addrs; a != nullptr && fd < 0; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, a->ai_addr, a->ai_addrlen) != 0 || ::listen(fd, 16) != 0) {
      last_error = std::strerror(errno);
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(addrs);
  if (fd < 0) {
    return absl::UnavailableError(
        absl::StrCat("metrics: cannot listen on \"", listen, "\": ", last_error));
  }
  sockaddr_storage bound{};
  socklen_t len = sizeof(bound);
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
  *port = bound.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                                      : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  return fd;
}

void WriteAll(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n <= 0) return;  // the scraper went away
    done += static_cast<size_t>(n);
  }
}

void Respond(int fd, int status, const char* reason, const char* content_type,
             const std::string& body, bool head) {
  WriteAll(fd, absl::StrCat("HTTP/1.1 ", status, " ", reason, "\r\nContent-Type: ", content_type,
                            "\r\nContent-Length: ", body.size(),
                            "\r\nConnection: close\r\n\r\n", head ? "" : body));
}

// Reads until the end of the request head; false on timeout, EOF or an oversized head.
bool ReadRequestHead(int fd, std::string* head) {
  char buf[2048];
  while (head->find("\r\n\r\n") == std::string::npos &&
         head->find("\n\n") == std::string::npos) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, kReadTimeoutMs) <= 0) return false;
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) return false;
    head->append(buf, static_cast<size_t>(n));
    if (head->size() > kMaxRequestHead) return false;
  }
  return true;
}

}  // namespace

struct HttpExporter::Impl {
  const Registry* registry = nullptr;
  int listen_fd = -1;
  int stop_pipe[2] = {-1, -1};  // written once by the destructor to wake the accept loop
  int port = 0;
  std::thread thread;

  void Serve() {
    for (;;) {
      pollfd fds[2] = {{listen_fd, POLLIN, 0}, {stop_pipe[0], POLLIN, 0}};
      if (poll(fds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        return;
      }
      if (fds[1].revents != 0) return;
      const int conn = accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (conn < 0) continue;
      Handle(conn);
      close(conn);
    }
  }

  void Handle(int conn) const {
    std::string head;
    if (!ReadRequestHead(conn, &head)) return;
    // Request line: METHOD SP TARGET SP VERSION.
    const std::string line = head.substr(0, head.find_first_of("\r\n"));
    const size_t sp1 = line.find(' ');
    const size_t sp2 = sp1 == std::string::npos ? sp1 : line.find(' ', sp1 + 1);
    if (sp1 == std::string::npos || sp2 == std::string::npos) {
      Respond(conn, 400, "Bad Request", "text/plain", "bad request line\n", false);
      return;
    }
    const std::string method = line.substr(0, sp1);
    std::string path = line.substr(sp1 + 1, sp2 - sp1 - 1);
    path = path.substr(0, path.find('?'));
    const bool is_head = method == "HEAD";
    if (path != "/metrics") {
      Respond(conn, 404, "Not Found", "text/plain", "not found; metrics are at /metrics\n",
              is_head);
      return;
    }
    if (method != "GET" && !is_head) {
      Respond(conn, 405, "Method Not Allowed", "text/plain", "use GET\n", false);
      return;
    }
    Respond(conn, 200, "OK", kContentType, registry->Render(), is_head);
  }
};

absl::StatusOr<std::unique_ptr<HttpExporter>> HttpExporter::Start(const std::string& listen,
                                                                  const Registry* registry) {
  std::unique_ptr<HttpExporter> exporter(new HttpExporter());
  exporter->impl_ = std::make_unique<Impl>();
  Impl& impl = *exporter->impl_;
  impl.registry = registry;
  absl::StatusOr<int> fd = Listen(listen, &impl.port);
  if (!fd.ok()) return fd.status();
  impl.listen_fd = *fd;
  if (pipe2(impl.stop_pipe, O_CLOEXEC) != 0) {
    close(impl.listen_fd);
    impl.listen_fd = -1;
    return absl::InternalError(absl::StrCat("metrics: pipe: ", std::strerror(errno)));
  }
  impl.thread = std::thread([&impl] { impl.Serve(); });
  return exporter;
}

HttpExporter::~HttpExporter() {
  if (impl_ == nullptr) return;
  if (impl_->thread.joinable()) {
    const char stop = 1;
    if (write(impl_->stop_pipe[1], &stop, 1) != 1) {
      shutdown(impl_->listen_fd, SHUT_RDWR);  // poll then reports the socket; accept fails
    }
    impl_->thread.join();
  }
  for (int fd : {impl_->listen_fd, impl_->stop_pipe[0], impl_->stop_pipe[1]}) {
    if (fd >= 0) close(fd);
  }
}

int HttpExporter::port() const { return impl_->port; }

}  // namespace attnd::server::metrics
