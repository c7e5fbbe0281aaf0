// The fork server process (see fork_server.hpp): its main loop, which reads requests,
// starts workers, relays their output and reaps them. Private to the supervisor library;
// only ever instantiated in a process forked for it, which it never returns from.
//
// fork_server_process.cpp: the loop, the output relay, reaping and shutdown;
// worker_spawn.cpp: starting a worker (forked, or exec'd with Boost.Process).
#pragma once

#include <sys/types.h>

#include <map>
#include <ringmaster/ipc/segment.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "fork_server.hpp"

namespace ringmaster::detail {

class fork_server_process {
 public:
  explicit fork_server_process(int sock);

  /// Serves until the socket reaches end-of-file, then kills and reaps every worker and
  /// exits.
  [[noreturn]] void run() noexcept;

 private:
  // One line of output at most this long; a longer one is cut into pieces of this size.
  static constexpr std::size_t k_max_line = 4096;
  // Worker output waiting for room in our stderr at most; more is dropped, and counted.
  static constexpr std::size_t k_max_log_backlog = 1 << 20;

  struct child {
    std::string pool;
    int slot = -1;
    int out_fd = -1, err_fd = -1;  // read ends of its stdout and stderr
    std::string out_line, err_line;  // a line not yet ended
    std::string out_line_job, err_line_job;  // the job that wrote its first bytes
    std::string tail;  // the last bytes of its stderr: a failure's own words
    ipc::segment segment;  // its slot, mapped to read the id of the job it runs
    bool segment_forked_away = false;  // mapped MADV_DONTFORK: later children lack it
  };

  // The output relay and the loop (fork_server_process.cpp).
  void relay_output(int fd) noexcept;
  void drain_output(pid_t pid, child& c, bool err) noexcept;
  void close_output(pid_t pid, child& c, bool err) noexcept;
  void write_line(pid_t pid, const child& c, bool err, std::string_view text, const std::string& id) noexcept;
  void flush_log() noexcept;
  void handle(std::string_view bytes, std::vector<int>& fds) noexcept;
    void spawned(const spawn_request& r, pid_t pid, int out_fd, int err_fd) noexcept;
  void report_failure(std::uint64_t request, int err, const std::string& why) noexcept;
  void reap() noexcept;
  [[noreturn]] void shutdown(int code) noexcept;

  // Starting a worker (worker_spawn.cpp).
  static bool output_pipe(int (&p)[2]) noexcept;
  static bool output_pipes(int (&out)[2], int (&err)[2]) noexcept;
  static void close_pipes(int (&out)[2], int (&err)[2]) noexcept;
  std::string pipe_failure(int e) const;
  void fork_worker(const spawn_request& r) noexcept;
  void drop_mappings() noexcept;
  [[noreturn]] void become_worker(const spawn_request& r) noexcept;
  void exec_worker(const spawn_request& r) noexcept;

  int sock_;
  pid_t self_;
  int sigfd_ = -1;
  std::map<pid_t, child> children_;
  std::unordered_map<int, pid_t> by_fd_;  // output pipe -> its worker
  std::string log_;                       // worker output waiting for room in our stderr
  std::size_t dropped_lines_ = 0;
  packet_queue out_;  // events the supervisor's socket did not take yet
};

}  // namespace ringmaster::detail
