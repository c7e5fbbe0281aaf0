#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <optional>
#include <ringmaster/cli/client.hpp>
#include <ringmaster/cli/jsonl.hpp>
#include <ringmaster/cli/protocol.hpp>
#include <ringmaster/cli/run.hpp>
#include <ringmaster/ipc/detail/eintr.hpp>
#include <stdexcept>
#include <string>
#include <thread>

#include "process_setup.hpp"

namespace ringmaster::cli {
namespace {

using detail::say;
using detail::unique_fd;
using ringmaster::detail::retry_eintr;

bool write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = retry_eintr([&] { return ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL); });
    if (n < 0 && errno == ENOTSOCK) {
      const ssize_t w = retry_eintr([&] { return ::write(fd, bytes.data(), bytes.size()); });
      if (w <= 0) return false;
      bytes.remove_prefix(static_cast<std::size_t>(w));
      continue;
    }
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

// A connection to the server, greeted: reads whole lines.
class connection {
 public:
  /// Connects and reads the server's hello; on failure says why (on stderr) and returns
  /// nullopt.
  static std::optional<connection> open(const std::string& path) {
    connection c;
    c.fd_ = unique_fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path) {
      say("ringmaster: --socket: path too long for a Unix socket: " + path);
      return std::nullopt;
    }
    std::memcpy(addr.sun_path, path.c_str(), path.size());
    if (c.fd_.get() < 0 || ::connect(c.fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      say("ringmaster: cannot connect to " + path + ": " + std::strerror(errno) + " (is `ringmaster serve` running?)");
      return std::nullopt;
    }
    std::string line;
    if (!c.read_line(line)) {
      say("ringmaster: " + path + ": the server closed the connection before greeting");
      return std::nullopt;
    }
    const auto r = parse_reply(line);
    if (r && r->op == "error") {
      say("ringmaster: " + path + ": " + r->message);
      return std::nullopt;
    }
    if (!r || r->op != "hello" || r->protocol != k_protocol_version) {
      say("ringmaster: " + path + ": not a ringmaster server speaking protocol " + std::to_string(k_protocol_version) +
          ": " + line.substr(0, 200));
      return std::nullopt;
    }
    return c;
  }

  [[nodiscard]] int fd() const noexcept { return fd_.get(); }
  bool send(std::string_view bytes) { return write_all(fd_.get(), bytes); }

  /// The next line without its newline; false at end of stream or on an error.
  bool read_line(std::string& line) {
    for (;;) {
      if (const auto nl = buf_.find('\n', start_); nl != std::string::npos) {
        line.assign(buf_, start_, nl - start_);
        start_ = nl + 1;
        return true;
      }
      buf_.erase(0, start_);
      start_ = 0;
      char chunk[65536];
      const ssize_t n = retry_eintr([&] { return ::read(fd_.get(), chunk, sizeof chunk); });
      if (n <= 0) return false;
      buf_.append(chunk, static_cast<std::size_t>(n));
    }
  }

 private:
  unique_fd fd_;
  std::string buf_;
  std::size_t start_ = 0;
};

// The answer to a request: the next line that is not a result line.
std::optional<reply> answer(connection& c) {
  std::string line;
  while (c.read_line(line))
    if (auto r = parse_reply(line); r && !r->op.empty()) return r;
  return std::nullopt;
}

}  // namespace

int submit(const submit_options& o) {
  // No workers are forked here: ignoring SIGPIPE makes a closed stdout an EPIPE error.
  ::signal(SIGPIPE, SIG_IGN);
  unique_fd jobs_file, results_file;
  int jobs_fd = STDIN_FILENO, results_fd = STDOUT_FILENO;
  const std::string source = o.jobs == "-" ? "stdin" : o.jobs;
  if (o.jobs != "-") {
    jobs_file = unique_fd(::open(o.jobs.c_str(), O_RDONLY | O_CLOEXEC));
    if (jobs_file.get() < 0) {
      say("ringmaster: cannot open " + o.jobs + ": " + std::strerror(errno));
      return k_exit_usage;
    }
    jobs_fd = jobs_file.get();
  }
  if (o.results != "-") {
    results_file = unique_fd(::open(o.results.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (results_file.get() < 0) {
      say("ringmaster: --results: cannot open " + o.results + ": " + std::strerror(errno));
      return k_exit_usage;
    }
    results_fd = results_file.get();
  }
  auto c = connection::open(o.socket);
  if (!c) return k_exit_connection;

  // Jobs go out as they are read, bytes as they are (the server splits lines and names
  // them SOURCE:LINE), while results come in on this thread.
  unique_fd stop(::eventfd(0, EFD_CLOEXEC));
  std::atomic<bool> sent_all{false};
  std::string hello = "{\"op\": \"hello\", \"protocol\": " + std::to_string(k_protocol_version) + ", ";
  hello += json_field("source", source) + "}\n";
  std::string read_error;
  std::thread writer([&] {
    if (!c->send(hello)) return;
    char buf[65536];
    char last = '\n';
    for (;;) {
      pollfd p[2] = {{jobs_fd, POLLIN, 0}, {stop.get(), POLLIN, 0}};
      (void)retry_eintr([&] { return ::poll(p, 2, -1); });  // on a lasting poll error, the read reports
      if (p[1].revents) return;  // the server went away
      const ssize_t n = retry_eintr([&] { return ::read(jobs_fd, buf, sizeof buf); });
      if (n < 0 && errno == EAGAIN) continue;  // a non-blocking stdin: the poll above waits
      if (n < 0) {
        read_error = std::string("cannot read ") + source + ": " + std::strerror(errno);
        break;
      }
      if (n == 0) break;
      last = buf[n - 1];
      if (!c->send(std::string_view(buf, static_cast<std::size_t>(n)))) return;
    }
    if (c->send(std::string(last == '\n' ? "" : "\n") + "{\"op\": \"end\"}\n")) sent_all = true;
  });

  std::uint64_t ok = 0, failed = 0;
  std::optional<reply> end;
  bool output_failed = false;
  std::string line;
  while (c->read_line(line)) {
    if (line.starts_with("{\"op\"")) {
      auto r = parse_reply(line);
      if (r && r->op == "end") {
        end = std::move(r);
        break;
      }
      if (r && r->op == "error") say("ringmaster: server: " + r->message);
      continue;
    }
    if (const auto v = read_result_line(line)) ++(v->ok ? ok : failed);
    line += '\n';
    if (!output_failed && !write_all(results_fd, line)) {
      say("ringmaster: cannot write results to " + (o.results == "-" ? std::string("stdout") : o.results) + ": " +
          std::strerror(errno));
      output_failed = true;
    }
  }
  const std::uint64_t one = 1;
  (void)!::write(stop.get(), &one, sizeof one);
  ::shutdown(c->fd(), SHUT_RDWR);  // a writer blocked on a full socket returns
  writer.join();
  if (!read_error.empty()) say("ringmaster: " + read_error);
  if (!end) {
    say("ringmaster: " + o.socket + ": the server closed the connection before every result came (" +
        std::to_string(ok + failed) + " received)");
    return k_exit_connection;
  }
  const std::string& gave_up = end->gave_up;
  say("ringmaster: " + std::to_string(ok + failed) + " job(s): " + std::to_string(ok) + " ok, " + std::to_string(failed) +
      " failed" + (gave_up.empty() ? "" : "; pool(s) gave up: " + gave_up));
  if (!gave_up.empty()) return k_exit_gave_up;
  if (failed > 0 || output_failed || !read_error.empty()) return k_exit_failed;
  return k_exit_ok;
}

int status(const std::string& socket, status_format format) {
  auto c = connection::open(socket);
  if (!c) return k_exit_connection;
  if (!c->send("{\"op\": \"status\"}\n")) {
    say("ringmaster: " + socket + ": connection lost");
    return k_exit_connection;
  }
  const auto r = answer(*c);
  if (!r) {
    say("ringmaster: " + socket + ": the server closed the connection before answering");
    return k_exit_connection;
  }
  if (r->op == "error") {
    say("ringmaster: server: " + r->message);
    return k_exit_connection;
  }
  try {
    std::string out = format == status_format::json       ? r->text + "\n"
                      : format == status_format::prometheus ? format_prometheus(r->text)
                                                            : format_status_table(r->text);
    return write_all(STDOUT_FILENO, out) ? k_exit_ok : k_exit_failed;
  } catch (const std::exception& e) {
    say(std::string("ringmaster: ") + e.what());
    return k_exit_connection;
  }
}

int control(const control_options& o) {
  auto c = connection::open(o.socket);
  if (!c) return k_exit_connection;
  std::string request = "{\"op\": \"" + o.op + "\"";
  if (o.op == "scale") request += ", " + json_field("pool", o.pool) + ", \"workers\": " + std::to_string(o.workers);
  request += "}\n";
  if (!c->send(request)) {
    say("ringmaster: " + o.socket + ": connection lost");
    return k_exit_connection;
  }
  const auto r = answer(*c);
  if (!r) {
    say("ringmaster: " + o.socket + ": the server closed the connection before answering");
    return k_exit_connection;
  }
  if (r->op == "error") {
    say("ringmaster: " + r->message);
    for (const auto& p : r->problems) say(p);
    return k_exit_usage;
  }
  say("ringmaster: " + o.op + ": " + r->message);
  if (o.op == "drain" || o.op == "stop") {
    // The server closes every connection once it has finished.
    std::string line;
    while (c->read_line(line)) {
    }
    say("ringmaster: the server has " + std::string(o.op == "drain" ? "drained" : "stopped") + " and exited");
  }
  return k_exit_ok;
}

}  // namespace ringmaster::cli
