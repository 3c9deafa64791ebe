// HttpExporter: civetweb serving GET /metrics. civetweb binds port 0 to a free port itself and
// mg_get_server_ports reports the port it got, so no port probing is needed here.
//
// Debian's civetweb is built without IPv6: "[::]" and "::" (all addresses) are served on IPv4's
// 0.0.0.0, "[::1]" on 127.0.0.1; other IPv6 literals are refused.
#include <civetweb.h>

#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/metrics/metrics.h"

namespace attnd::server::metrics {
namespace {

constexpr char kContentType[] = "text/plain; version=0.0.4; charset=utf-8";

// "host:port" → civetweb's listening_ports value "a.b.c.d:port".
absl::StatusOr<std::string> ListeningPorts(const std::string& listen) {
  const size_t colon = listen.rfind(':');
  int port = -1;
  if (colon == std::string::npos || !absl::SimpleAtoi(listen.substr(colon + 1), &port) ||
      port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics listen address \"", listen, "\" is not host:port"));
  }
  std::string host = listen.substr(0, colon);
  if (host.empty() || host == "*" || host == "[::]" || host == "::") host = "0.0.0.0";
  if (host == "localhost" || host == "[::1]") host = "127.0.0.1";
  if (host.find(':') != std::string::npos || host.find('[') != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics listen address \"", listen,
                     "\": IPv6 addresses other than [::] and [::1] are "
                     "not supported (civetweb is built without IPv6)"));
  }
  return absl::StrCat(host, ":", port);
}

void Respond(mg_connection* conn, int status, const char* reason, const char* content_type,
             const std::string& body, bool head) {
  mg_printf(conn,
            "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
            "Connection: close\r\n\r\n",
            status, reason, content_type, body.size());
  if (!head) mg_write(conn, body.data(), body.size());
}

}  // namespace

struct HttpExporter::Impl {
  const Registry* registry = nullptr;
  mg_context* context = nullptr;
  int port = 0;

  static int Handle(mg_connection* conn, void* data) {
    const auto* impl = static_cast<const Impl*>(data);
    const mg_request_info* request = mg_get_request_info(conn);
    const char* uri = request->local_uri != nullptr ? request->local_uri : "";
    const bool get = std::strcmp(request->request_method, "GET") == 0;
    const bool head = std::strcmp(request->request_method, "HEAD") == 0;
    if (std::strcmp(uri, "/metrics") != 0) {
      Respond(conn, 404, "Not Found", "text/plain", "not found; metrics are at /metrics\n", head);
      return 404;
    }
    if (!get && !head) {
      Respond(conn, 405, "Method Not Allowed", "text/plain", "use GET\n", false);
      return 405;
    }
    Respond(conn, 200, "OK", kContentType, impl->registry->Render(), head);
    return 200;
  }
};

absl::StatusOr<std::unique_ptr<HttpExporter>> HttpExporter::Start(const std::string& listen,
                                                                  const Registry* registry) {
  absl::StatusOr<std::string> ports = ListeningPorts(listen);
  if (!ports.ok()) return ports.status();
  std::unique_ptr<HttpExporter> exporter(new HttpExporter());
  exporter->impl_ = std::make_unique<Impl>();
  exporter->impl_->registry = registry;

  mg_init_library(0);  // reference-counted; balanced in the destructor
  const char* options[] = {
      "listening_ports",    ports->c_str(), "num_threads", "2",  // scrapes are rare and cheap
      "request_timeout_ms", "10000",        nullptr,
  };
  mg_callbacks callbacks{};
  mg_init_data init{};
  init.callbacks = &callbacks;
  init.configuration_options = options;
  char error_text[256] = "";
  unsigned error_code = 0;
  mg_error_data error{};
  error.code = &error_code;
  error.text = error_text;
  error.text_buffer_size = sizeof(error_text);
  mg_context* context = mg_start2(&init, &error);
  if (context == nullptr) {
    mg_exit_library();
    return absl::UnavailableError(
        absl::StrCat("metrics: cannot serve on \"", listen, "\": ", error_text));
  }
  exporter->impl_->context = context;
  mg_set_request_handler(context, "/", &Impl::Handle, exporter->impl_.get());
  mg_server_port bound[1];
  if (mg_get_server_ports(context, 1, bound) != 1) {
    return absl::InternalError("metrics: civetweb reports no listening port");
  }
  exporter->impl_->port = bound[0].port;
  return exporter;
}

HttpExporter::~HttpExporter() {
  if (impl_ != nullptr && impl_->context != nullptr) {
    mg_stop(impl_->context);  // joins civetweb's threads: no handler runs after this
    mg_exit_library();
  }
}

int HttpExporter::port() const { return impl_->port; }

}  // namespace attnd::server::metrics
