#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <ringmaster/cli/config.hpp>
#include <ringmaster/cli/job_source.hpp>
#include <ringmaster/cli/jsonl.hpp>
#include <ringmaster/cli/protocol.hpp>
#include <ringmaster/cli/run.hpp>
#include <ringmaster/cli/serve.hpp>
#include <ringmaster/ipc/detail/eintr.hpp>
#include <ringmaster/supervisor/supervisor.hpp>
#include <ringmaster/worker/demo_handlers.hpp>
#include <ringmaster/worker/logging.hpp>
#include <set>
#include <thread>
#include <vector>

#include "client_sink.hpp"
#include <ringmaster/cli/job_flow.hpp>
#include "pool_reload.hpp"
#include "process_setup.hpp"
#include "socket_place.hpp"

namespace ringmaster::cli {
namespace {

using detail::block_signals;
using detail::check_socket_place;
using detail::cli_logger;
using detail::say;
using detail::socket_lock;
using detail::unique_fd;
using clock_type = std::chrono::steady_clock;

struct client {
  client(int fd_, const run_config& config, std::size_t max_line, int wake_fd)
      : fd(fd_), sink(std::make_shared<detail::client_sink>(wake_fd)), input(fd_, "socket", -1, max_line, 0),
        admission(config, nullptr) {
    input.take_requests();
  }
  unique_fd fd;
  pid_t pid = 0;
  std::uint64_t serial = 0;  // names it in logs
  std::shared_ptr<detail::client_sink> sink;  // its result lines: a callback may outlive the client
  jsonl_job_source input;  // its lines, job lines and requests, read as they are handled
  std::string out;  // bytes to write
  std::size_t out_sent = 0;
  std::shared_ptr<const std::string> source = std::make_shared<const std::string>("socket");  // input's name, for callbacks
  job_admission admission;  // its ids, sequence numbers and duplicates: per client
  std::uint64_t submitted = 0, taken = 0, ok = 0, failed = 0;
  std::set<std::string> pools;
  std::optional<job_entry> parked;  // waiting for room in its pool
  bool end_requested = false;
  std::uint64_t ended_at = ~std::uint64_t{0};  // `submitted` when the last end line was sent
  bool eof = false;          // its input ended (it shut down its sending side): an implicit end
  bool closing = false;      // close once `out` is written
  bool gone = false;         // to be removed
  std::uint32_t events = 0;  // as registered with epoll
};

class server {
 public:
  server(const serve_options& o, run_config config, socket_lock& lock)
      : options_(o), config_(std::move(config)), log_(cli_logger()), lock_(lock) {}

  int run();

 private:
  bool setup();
  void accept_clients();
  void process_input(client& c);
  void admit(client& c, job_entry& e);
  void handle_request(client& c, const request& r);
  void submit_job(client& c, job_entry& e);
  bool try_submit(client& c, job_entry& e);
  void take_results(client& c);
  void maybe_end(client& c);
  void flush(client& c);
  void update_events(client& c);
  void drop(client& c, const char* why);
  void begin_shutdown(bool drain, const std::string& why);
  std::string reload();
  void remove_socket() noexcept {
    if (bound_) ::unlink(options_.socket.c_str());  // ours only: see socket_lock
    lock_.release();
  }
  [[nodiscard]] bool blocked(const client& c) const noexcept {
    return c.parked || c.submitted - c.taken >= k_window || c.out.size() - c.out_sent > k_out_limit;
  }

  const serve_options& options_;
  run_config config_;  // the one loaded last; clients' admissions read it, so it is assigned in place
  std::shared_ptr<spdlog::logger> log_;
  socket_lock& lock_;
  bool bound_ = false;  // the socket at options_.socket is this process's
  std::optional<supervisor> sup_;
  unique_fd listen_fd_, signal_fd_, wake_fd_, epoll_fd_;
  std::map<int, std::unique_ptr<client>> clients_;
  std::uint64_t next_serial_ = 1;
  const clock_type::time_point started_ = clock_type::now();
  std::optional<stop_ladder> ladder_;  // after sup_: its threads end before it goes
  int signals_ = 0;
};

bool server::setup() {
  block_signals();
  sigset_t wanted;
  sigemptyset(&wanted);
  sigaddset(&wanted, SIGINT);
  sigaddset(&wanted, SIGTERM);
  // SIGHUP (the terminal closed, or `kill -HUP`) is `reload`, as daemons do, instead of
  // the default death that sent no line to any client and left the socket file. Blocked
  // here, before the supervisor's threads exist, so that they inherit the mask.
  sigaddset(&wanted, SIGHUP);
  ::pthread_sigmask(SIG_BLOCK, &wanted, nullptr);
  signal_fd_ = unique_fd(::signalfd(-1, &wanted, SFD_CLOEXEC | SFD_NONBLOCK));
  wake_fd_ = unique_fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  epoll_fd_ = unique_fd(::epoll_create1(EPOLL_CLOEXEC));
  if (signal_fd_.get() < 0 || wake_fd_.get() < 0 || epoll_fd_.get() < 0) {
    log_->error("cannot create descriptors: {}", std::strerror(errno));
    return false;
  }
  (void)demo_handlers();  // before the supervisor: forked workers see only what exists then
  try {
    sup_.emplace(config_.supervisor);
    for (const auto& p : config_.pools) detail::add_config_pool(*sup_, p);
    sup_->start();
    ladder_.emplace(*sup_, [this] {
      const std::uint64_t one = 1;
      (void)!::write(wake_fd_.get(), &one, sizeof one);
    });
  } catch (const std::exception& e) {
    log_->error("cannot start: {}", e.what());
    return false;
  }
  listen_fd_ = unique_fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, options_.socket.c_str(), options_.socket.size());
  // Created 0600 (no moment at which others could connect), and chmod'ed to be sure.
  const mode_t old_mask = ::umask(0177);
  const int bound = ::bind(listen_fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  ::umask(old_mask);
  bound_ = listen_fd_.get() >= 0 && bound == 0;
  if (listen_fd_.get() < 0 || bound != 0 || ::chmod(options_.socket.c_str(), 0600) != 0 ||
      ::listen(listen_fd_.get(), 128) != 0) {
    log_->error("cannot listen on {}: {}", options_.socket, std::strerror(errno));
    return false;
  }
  for (int fd : {listen_fd_.get(), signal_fd_.get(), wake_fd_.get()}) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, fd, &ev);
  }
  std::string pools;
  for (const auto& p : config_.pools) pools += (pools.empty() ? "" : ", ") + p.name;
  log_->info("serving pools {} on {} (protocol {})", pools, options_.socket, k_protocol_version);
  if (!config_.jobs.empty())
    log_->warn("{}: serve does not run the config's [[jobs]] ({} of them); submit jobs with ringmaster submit",
               config_.path, config_.jobs.size());
  return true;
}

int server::run() {
  if (!setup()) {
    remove_socket();
    return k_exit_failed;
  }
  for (;;) {
    const bool any_parked = std::any_of(clients_.begin(), clients_.end(), [](auto& kv) { return kv.second->parked.has_value(); });
    epoll_event events[64];
    // A parked job is retried every 2 ms (the pool has no room-freed event to wait on).
    const int n = ::epoll_wait(epoll_fd_.get(), events, 64, any_parked ? 2 : 1000);
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd == listen_fd_.get()) {
        accept_clients();
      } else if (fd == signal_fd_.get()) {
        signalfd_siginfo si{};
        while (::read(signal_fd_.get(), &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
          const char* abbrev = ::sigabbrev_np(static_cast<int>(si.ssi_signo));
          const std::string name = std::string("SIG") + (abbrev ? abbrev : "?");
          if (si.ssi_signo == SIGHUP) {
            log_->info("SIGHUP: reloading {}", options_.config);
            (void)reload();  // it logs what it did, or why it did nothing
            continue;
          }
          ++signals_;
          if (ladder_->now() != stop_ladder::step::stopping_now) {
            begin_shutdown(false, signals_ == 1 ? name : name + " again");
          } else {
            // The workers die with this process (PR_SET_PDEATHSIG; the fork servers see
            // their sockets close): nothing is left behind.
            log_->warn("{} a third time: exiting at once", name);
            remove_socket();
            ::_exit(k_exit_failed);
          }
        }
      } else if (fd == wake_fd_.get()) {
        std::uint64_t v;
        (void)!::read(wake_fd_.get(), &v, sizeof v);
      } else if (auto it = clients_.find(fd); it != clients_.end()) {
        client& c = *it->second;
        if (events[i].events & (EPOLLHUP | EPOLLERR)) {
          // Gone for good (it can read nothing more): what it sent before it went is
          // still handled, as far as its window allows (a fire-and-forget `drain` works),
          // then it is dropped. Lines not handled were never accepted.
          take_results(c);
          process_input(c);
          drop(c, "disconnected");
          continue;
        }
        // Readable: its lines are read as they are handled, below.
        if (events[i].events & EPOLLOUT) flush(c);
      }
    }
    for (auto& [fd, c] : clients_) {
      if (c->gone) continue;
      take_results(*c);
      process_input(*c);
      maybe_end(*c);
      flush(*c);
      // Closed once every line it sent before has its answer, written.
      if (c->closing && c->out_sent == c->out.size() && c->taken == c->submitted && !c->parked) c->gone = true;
      if (!c->gone) update_events(*c);
    }
    std::erase_if(clients_, [this](auto& kv) {
      if (!kv.second->gone) return false;
      kv.second->sink->close();
      ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, kv.first, nullptr);
      return true;
    });
    if (ladder_->finished()) break;
  }
  // Drained or stopped: every result is in the clients' sinks. Each client gets its lines (and
  // its end), bounded in time, then the connections close.
  ladder_->wait();
  const auto deadline = clock_type::now() + std::chrono::seconds(2);
  for (;;) {
    bool pending = false;
    for (auto& [fd, c] : clients_) {
      if (c->gone) continue;
      take_results(*c);
      if (c->parked && try_submit(*c, *c->parked)) c->parked.reset();  // refused now: `stopped`
      take_results(*c);
      c->end_requested = true;
      maybe_end(*c);
      flush(*c);
      pending |= !c->gone && c->out_sent < c->out.size();
    }
    if (!pending || clock_type::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  clients_.clear();
  remove_socket();
  log_->info("stopped");
  return ladder_->now() == stop_ladder::step::stopping_now ? k_exit_failed : k_exit_ok;
}

void server::accept_clients() {
  for (;;) {
    const int fd = ringmaster::detail::retry_eintr(
        [&] { return ::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK); });
    if (fd < 0) return;  // EAGAIN, or a client gone before it was accepted
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || cred.uid != ::geteuid()) {
      log_->warn("refused a connection from uid {} (pid {}): only uid {} may use {}", cred.uid, cred.pid, ::geteuid(),
                 options_.socket);
      const std::string line = error_line("refused: uid " + std::to_string(cred.uid) + " may not use this server");
      (void)!::write(fd, line.data(), line.size());
      ::close(fd);
      continue;
    }
    auto c = std::make_unique<client>(fd, config_, max_job_line(config_), wake_fd_.get());
    c->pid = cred.pid;
    c->serial = next_serial_++;
    c->out = reply_line("hello", "\"protocol\": " + std::to_string(k_protocol_version) + ", " +
                                     json_field("version", RINGMASTER_VERSION) + ", \"pid\": " + std::to_string(::getpid()));
    log_->debug("client {} connected (pid {})", c->serial, c->pid);
    epoll_event ev{};
    ev.events = c->events = EPOLLIN | EPOLLOUT;
    ev.data.fd = fd;
    ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, fd, &ev);
    clients_.emplace(fd, std::move(c));
  }
}

// Pulls the client's lines while it has room: each job line admitted, each request
// answered. Reading stops when it has nothing now (epoll says when it has more).
void server::process_input(client& c) {
  c.input.set_max_line(max_job_line(config_));  // a reload may have changed it
  job_entry e;
  while (!c.gone && !c.closing && !c.eof) {
    if (c.parked) {
      if (!try_submit(c, *c.parked)) break;
      c.parked.reset();
    }
    if (blocked(c)) break;
    switch (c.input.try_next(e)) {
      case job_source::pull::job: admit(c, e); break;
      case job_source::pull::request: handle_request(c, c.input.last_request()); break;
      case job_source::pull::later: return;
      case job_source::pull::end: c.eof = true; return;  // it sent all it will: an implicit end, then it is closed
      case job_source::pull::error: drop(c, std::strerror(c.input.error_code())); return;
    }
  }
}

// Every job line, good or bad, counts once in `submitted` and gets one result line: its
// rejection carries the line's sequence number as id when it has none, as in `run`.
void server::admit(client& c, job_entry& e) {
  ++c.submitted;
  if (admit_entry(c.admission, e, *c.sink, false) == admitted::submit) submit_job(c, e);
}

void server::submit_job(client& c, job_entry& e) {
  c.pools.insert(e.pool);
  if (!try_submit(c, e)) c.parked = std::move(e);
}

// False when the pool is full (nothing submitted): the job waits, parked, and this
// client's input with it.
bool server::try_submit(client& c, job_entry& e) {
  pool* p = sup_->find_pool(e.pool);
  if (!p) {  // removed by a reload after the job was admitted
    c.sink->push(rejected_result(e.id, rejection_message(e.source, e.line, "pool \"" + e.pool + "\" was removed")),
                 false, e.integer_id);
    return true;
  }
  // The job's line and its id's kind ride in its tag, and come back in its result.
  auto done = [sink = c.sink, source = c.source](result r) {
    const bool integer_id = (r.tag & 1) != 0;
    name_refusal(r, *source, r.tag >> 1);
    sink->push(std::move(r), false, integer_id);
  };
  job_spec job{.type = std::move(e.type), .payload = std::move(e.payload), .id = std::move(e.id),
               .tag = e.line << 1 | (e.integer_id ? 1 : 0)};
  if (p->try_submit(std::move(job), std::move(done))) return true;
  // No room: the job was given back untouched, to wait parked.
  e.type = std::move(job.type);
  e.payload = std::move(job.payload);
  e.id = std::move(job.id);
  return false;
}

void server::take_results(client& c) {
  detail::client_sink::counts seen;
  if (!c.sink->take(c.out, seen)) return;
  c.taken = seen.results;
  c.ok = seen.ok;
  c.failed = seen.failed;
}

// After `end` (or the client's end of input), once every job of it has its line: a
// summary, and for an ended input the connection closes.
void server::maybe_end(client& c) {
  if (!(c.end_requested || c.eof) || c.closing || c.parked || c.taken != c.submitted) return;
  if (c.eof && !c.end_requested && c.ended_at == c.submitted) {  // its `end` was answered: nothing new
    c.closing = true;
    return;
  }
  std::string gave_up;
  if (!c.pools.empty()) {
    for (const auto& p : sup_->status().pools)
      if (p.gave_up && !p.removed && c.pools.count(p.name)) gave_up += (gave_up.empty() ? "" : ", ") + p.name;
  }
  c.out += reply_line("end", "\"jobs\": " + std::to_string(c.submitted) + ", \"ok\": " + std::to_string(c.ok) +
                                 ", \"failed\": " + std::to_string(c.failed) + ", " + json_field("gave_up", gave_up));
  c.end_requested = false;
  c.ended_at = c.submitted;
  if (c.eof) c.closing = true;
}

void server::flush(client& c) {
  while (!c.gone && c.out_sent < c.out.size()) {
    const ssize_t n = ringmaster::detail::retry_eintr(
        [&] { return ::send(c.fd.get(), c.out.data() + c.out_sent, c.out.size() - c.out_sent, MSG_NOSIGNAL); });
    if (n > 0) {
      c.out_sent += static_cast<std::size_t>(n);
    } else {
      if (n < 0 && errno != EAGAIN) drop(c, std::strerror(errno));
      break;
    }
  }
  if (c.out_sent == c.out.size()) {
    c.out.clear();
    c.out_sent = 0;
  } else if (c.out_sent > (std::size_t{1} << 20)) {
    c.out.erase(0, c.out_sent);
    c.out_sent = 0;
  }
}

void server::update_events(client& c) {
  std::uint32_t want = 0;
  if (!c.eof && !c.closing && !blocked(c)) want |= EPOLLIN;
  if (c.out_sent < c.out.size()) want |= EPOLLOUT;
  if (want == c.events) return;
  epoll_event ev{};
  ev.events = want;
  ev.data.fd = c.fd.get();
  ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_MOD, c.fd.get(), &ev);
  c.events = want;
}

void server::drop(client& c, const char* why) {
  if (c.gone) return;
  c.gone = true;
  const std::uint64_t unanswered = c.submitted - c.taken;
  if (unanswered > 0)
    log_->warn("client {} (pid {}) went away ({}) with {} of its {} job(s) unanswered: they still run, their results "
               "are dropped",
               c.serial, c.pid, why, unanswered, c.submitted);
  else
    log_->debug("client {} (pid {}) disconnected", c.serial, c.pid);
}

// A drain, a stop, or a stop over a stop (at once): stop_ladder says which.
void server::begin_shutdown(bool drain, const std::string& why) {
  using step = stop_ladder::step;
  if (drain) {
    // A drain over a stop, or over a drain, changes nothing.
    if (ladder_->drain() == step::running)
      log_->info("{}: draining: accepted jobs finish, new ones are refused; then the server exits", why);
    return;
  }
  switch (ladder_->stop()) {
    case step::running:
      log_->warn("{}: stopping: queued jobs are reported stopped, running ones have {} ms to finish", why,
                 config_.supervisor.shutdown_timeout.count());
      break;
    case step::draining:
      log_->warn("{}: stopping: running jobs have {} ms to finish", why, config_.supervisor.shutdown_timeout.count());
      break;
    case step::stopping: log_->warn("{}: stopping at once: running jobs are reported stopped", why); break;
    case step::stopping_now: break;
  }
}

void server::handle_request(client& c, const request& r) {
  if (r.op == "hello") {
    if (r.protocol != -1 && r.protocol != k_protocol_version) {
      // The answers to the lines before it first; the connection closes once the jobs
      // among them have theirs too (lines after it are not read).
      take_results(c);
      c.out += error_line("protocol " + std::to_string(r.protocol) + " is not spoken here (this server speaks " +
                          std::to_string(k_protocol_version) + ")");
      c.closing = true;
      return;
    }
    if (!r.source.empty()) c.source = std::make_shared<const std::string>(r.source);
    c.input.rename(*c.source);  // the input's lines are numbered from the one after hello
  } else if (r.op == "end") {
    c.end_requested = true;
  } else if (r.op == "status") {
    const double up = std::chrono::duration<double>(clock_type::now() - started_).count();
    c.out += status_line(sup_->status(), static_cast<int>(::getpid()), up, to_string(ladder_->now()));
  } else if (r.op == "drain" || r.op == "stop") {
    const auto before = ladder_->now();
    begin_shutdown(r.op == "drain", "requested by client " + std::to_string(c.serial) + " (pid " + std::to_string(c.pid) + ")");
    const std::string state = to_string(ladder_->now());
    c.out += reply_line("ok", json_field("message", ladder_->now() == before ? "already " + state : state));
  } else if (r.op == "scale") {
    if (r.pool.empty() || r.workers < 1 || r.workers > k_max_workers) {
      c.out += error_line("scale: expected {\"op\": \"scale\", \"pool\": NAME, \"workers\": 1-" +
                          std::to_string(k_max_workers) + "}");
      return;
    }
    pool* p = sup_->find_pool(r.pool);
    if (!p) {
      c.out += error_line("scale: no pool named \"" + r.pool + "\"");
      return;
    }
    try {
      // Asked here; what it did ("scaled from 2 to 4", "already has 2") the supervisor logs.
      log_->info("client {} (pid {}) asks for {} worker(s) in pool '{}'", c.serial, c.pid, r.workers, r.pool);
      p->scale(static_cast<unsigned>(r.workers));
      c.out += reply_line("ok", json_field("message", "pool '" + r.pool + "': " + std::to_string(r.workers) + " worker(s)"));
    } catch (const std::exception& e) {
      c.out += error_line(std::string("scale: ") + e.what());
    }
  } else if (r.op == "reload") {
    c.out += reload();
  } else {
    c.out += error_line("unknown op \"" + r.op + "\" (known: hello, end, status, drain, stop, scale, reload)");
  }
}

// Applies the config file as it is now (detail::apply_pool_changes says what happens to
// each pool). An invalid file changes nothing.
std::string server::reload() {
  run_config next;
  try {
    next = load_config(options_.config);
  } catch (const config_error& e) {
    log_->error("reload refused, the running config stays: {}", options_.config);
    for (const auto& p : e.problems()) log_->error("{}", p);
    return error_line("invalid config " + options_.config + ": the running config stays", e.problems());
  }
  if (const auto now = ladder_->now(); now != stop_ladder::step::running) {
    log_->warn("reload refused: the server is {}", to_string(now));
    return error_line(std::string("reload: the server is ") + to_string(now));
  }
  detail::pool_changes changes;
  try {
    changes = detail::apply_pool_changes(*sup_, config_, next);
  } catch (const std::exception& e) {
    log_->error("reload failed part way: {}", e.what());
    return error_line(std::string("reload failed part way: ") + e.what());
  }
  if (options_.log_level.empty()) set_log_level(next.log_level.empty() ? "info" : next.log_level);
  const auto& s0 = config_.supervisor;
  const auto& s1 = next.supervisor;
  std::string summary = detail::summarize(changes);
  if (s0.name != s1.name || s0.strategy != s1.strategy || s0.shutdown_timeout != s1.shutdown_timeout)
    summary += "; [supervisor] settings other than log_level apply at the next start";
  config_ = std::move(next);
  log_->info("reloaded {}: {}", options_.config, summary);
  return reply_line("ok", json_field("message", summary) + ", " + detail::reply_fields(changes));
}

}  // namespace

int serve(const serve_options& o) {
  run_config config;
  std::string level;
  if (!detail::load_for_start(o.config, o.log_level, config, level)) return k_exit_usage;
  socket_lock lock;
  if (const std::string problem = check_socket_place(o.socket, lock); !problem.empty()) {
    say("ringmaster: " + problem);
    return k_exit_usage;
  }
  set_log_level(level);
  server s(o, std::move(config), lock);
  return s.run();
}

}  // namespace ringmaster::cli
