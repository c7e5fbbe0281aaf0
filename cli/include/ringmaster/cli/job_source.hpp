// ringmaster/cli/job_source.hpp — where jobs come from, one at a time, for `run` and
// `serve` alike.
//
// A job_source yields entries in order, and never blocks doing so: try_next() says here
// is a job, nothing now (pull again once wake_fd() is readable), the end, or an error. So
// run's sources (the config's [[jobs]], a JSON Lines file or stdin) and serve's clients
// (a socket connection sending job lines and requests) are the same kind of thing: `run`
// pulls with next(), which waits in poll() when a source has nothing now; `serve` pulls
// from each client its epoll loop says is readable. Sources are streams, never loaded
// whole: memory stays bounded however long the input is.
//
// job_admission then decides, for each entry, what is done with it: submit it, reject it
// (a result line of kind `rejected`), or skip it (--resume: already done). job_flow.hpp
// holds what follows, shared by both commands.
//
// A source is read by one thread; fraction_read() may be called from any other (the
// progress display). The blocking next() ends early when the source's stop descriptor
// becomes readable (a signal arrived), so a run never waits on stdin to shut down.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <ringmaster/cli/config.hpp>
#include <ringmaster/cli/id_set.hpp>
#include <ringmaster/cli/jsonl.hpp>
#include <ringmaster/cli/line_splitter.hpp>
#include <ringmaster/cli/protocol.hpp>

namespace ringmaster::cli {

/// One job as read, before admission.
struct job_entry {
  std::string id;         ///< "" when the input gave none
  bool integer_id = false;  ///< the input gave the id as a JSON integer (`id` is its text)
  std::string pool;       ///< "" when the input gave none
  std::string type;
  std::string payload;
  std::string_view source;  ///< the input it was read from ("jobs.jsonl", "stdin", the config)
  std::uint64_t line = 0;   ///< its line there
  std::string rejection;    ///< non-empty: the entry is malformed, and why

  /// "jobs.jsonl:17", for messages.
  [[nodiscard]] std::string origin() const { return std::string(source) + ":" + std::to_string(line); }
};

/// How every rejected line is worded, in `run` and `serve` alike, whoever refuses it
/// (admission, or the library at submission): "jobs.jsonl:17: WHY", WHY cut to
/// k_max_rejection bytes: a rejection is a line to read, not a copy of the megabyte it
/// refuses.
[[nodiscard]] std::string rejection_message(std::string_view source, std::uint64_t line, std::string_view why);
/// The longest reason a rejection gives (values it quotes are cut shorter still).
inline constexpr std::size_t k_max_rejection = 1000;

/// The longest job line a run or a server reads for `config`'s pools: room for the
/// largest max_message in any encoding a job line may use (escaped or base64), and at
/// least 1 MiB. Longer lines are rejected unread.
[[nodiscard]] std::size_t max_job_line(const run_config& config) noexcept;

class job_source {
 public:
  virtual ~job_source() = default;

  enum class pull : std::uint8_t {
    job,      ///< `out` holds the next entry
    request,  ///< a protocol request line (only from a source that takes them): request()
    later,    ///< nothing now: pull again once wake_fd() is readable
    end,      ///< the end of the input
    error,    ///< reading failed: error()
  };
  /// The next entry in `out` (reusing its strings' storage). Never blocks.
  [[nodiscard]] virtual pull try_next(job_entry& out) = 0;
  /// After `later`: the descriptor whose readability means there may be more.
  [[nodiscard]] virtual int wake_fd() const noexcept { return -1; }
  /// A descriptor (eventfd or pipe) whose readability ends next()'s waits, or -1.
  [[nodiscard]] virtual int stop_fd() const noexcept { return -1; }
  /// After `error`: what failed, naming the input ("jobs.jsonl: read failed: ...").
  [[nodiscard]] virtual std::string error() const { return {}; }
  /// Fraction of the input consumed, 0..1, or a negative value when unknown (a pipe).
  /// Thread-safe.
  [[nodiscard]] virtual double fraction_read() const noexcept { return -1; }

  /// try_next() that waits (in poll(), on wake_fd() and stop_fd()) while there is
  /// nothing now. True with a job in `out`; false at the end, on an error, or once
  /// stopped. Requests are not expected here and are passed over.
  bool next(job_entry& out);
};

/// How a blocking read waits for its descriptor: until `fd` is readable (`ready`), or
/// `stop_fd` (-1: none) is (`stopped`). EINTR is retried.
enum class input_wait : std::uint8_t { ready, stopped, error };
[[nodiscard]] input_wait wait_for_input(int fd, int stop_fd) noexcept;

/// The config's [[jobs]], each repeated `repeat` times, expanded lazily: a repeat of a
/// billion costs no memory. With an id and repeat > 1, copies get ids "ID-1" ... "ID-N".
class config_job_source final : public job_source {
 public:
  explicit config_job_source(const run_config& config) : config_(config) {}
  [[nodiscard]] pull try_next(job_entry& out) override;
  [[nodiscard]] double fraction_read() const noexcept override;

 private:
  const run_config& config_;
  std::size_t job_ = 0;
  std::uint64_t copy_ = 0;
  std::atomic<std::uint64_t> done_{0};  // read by the progress thread
};

/// A descriptor's lines (line_splitter over its reads), holding at most one line (up to
/// max_line bytes) and one read in memory. try_next() never blocks: a descriptor that
/// may block (not a regular file) is polled before it is read, and a non-blocking one
/// that has nothing (EAGAIN) is `later` too, never read again in a loop.
class line_reader {
 public:
  /// `fd` is read, not owned. `stop_fd` (an eventfd or pipe, or -1) ends next()'s waits
  /// when readable.
  line_reader(int fd, int stop_fd, std::size_t max_line);

  enum class status : std::uint8_t {
    line,      ///< a line (without its '\n')
    too_long,  ///< a line over max_line bytes, skipped up to its newline
    later,     ///< (try_next only) nothing to read now: wait for fd() to be readable
    end,       ///< end of input
    stopped,   ///< (next only) stop_fd became readable
    error,     ///< a read failed (errno is in error_code())
  };
  /// The next line, without waiting. `unterminated` is set for a last line that has no
  /// newline.
  status try_next(std::string_view& line, bool& unterminated);
  /// The next line, waiting for input (or stop_fd) as long as it takes.
  status next(std::string_view& line, bool& unterminated);
  /// Number of the line last returned, from 1.
  [[nodiscard]] std::uint64_t line_number() const noexcept { return lines_.line_number(); }
  [[nodiscard]] std::uint64_t bytes_consumed() const noexcept { return lines_.bytes_consumed(); }
  [[nodiscard]] int error_code() const noexcept { return error_; }
  [[nodiscard]] int fd() const noexcept { return fd_; }
  [[nodiscard]] int stop_fd() const noexcept { return stop_fd_; }
  void set_max_line(std::size_t max_line) noexcept { lines_.set_max_line(max_line); }
  [[nodiscard]] std::size_t max_line() const noexcept { return lines_.max_line(); }
  /// Bytes asked of each read from now on (by default up to 1 MiB).
  void set_read_size(std::size_t n) noexcept { read_size_ = n; }

 private:
  status fill();  // reads what there is now: line (bytes came), later, end or error

  int fd_, stop_fd_;
  bool pollable_;  // not a regular file: a read may block, so poll() first
  std::size_t read_size_;
  line_splitter lines_;
  bool eof_ = false;
  int error_ = 0;
};

/// Job lines from a descriptor (a file, stdin, a client's socket). Blank lines are
/// skipped. A line that is not a well-formed job becomes an entry with `rejection` set,
/// naming the line ("jobs.jsonl:17: not valid JSON: ..."); reading continues with the
/// next line.
class jsonl_job_source final : public job_source {
 public:
  /// `name` names the input in messages ("jobs.jsonl", or "stdin"). `size`: the file's
  /// size for progress estimates, 0 if unknown.
  jsonl_job_source(int fd, std::string name, int stop_fd, std::size_t max_line, std::uint64_t size);
  [[nodiscard]] pull try_next(job_entry& out) override;
  [[nodiscard]] int wake_fd() const noexcept override { return reader_.fd(); }
  [[nodiscard]] int stop_fd() const noexcept override { return reader_.stop_fd(); }
  [[nodiscard]] std::string error() const override { return read_error_; }
  [[nodiscard]] double fraction_read() const noexcept override;
  /// Why reading stopped early ("" if it did not): a read error.
  [[nodiscard]] const std::string& read_error() const noexcept { return read_error_; }
  /// After `error`: the read's errno.
  [[nodiscard]] int error_code() const noexcept { return reader_.error_code(); }

  /// Serve's connections: a line that is a protocol request (protocol.hpp) is pulled as
  /// `request`; a line's trailing '\r' is dropped; a malformed unterminated last line
  /// is worded as any other; reads are of 64 KiB (one buffer per connection stays small).
  void take_requests() noexcept {
    requests_ = true;
    reader_.set_read_size(65536);
  }
  /// The request last pulled.
  [[nodiscard]] const request& last_request() const noexcept { return request_; }
  /// From now on the input is called `name`, and its lines are numbered from the next
  /// one (a client's hello names its input).
  void rename(std::string name);
  /// Lines longer than this are refused from now on (a reload changed max_message).
  void set_max_line(std::size_t max_line) noexcept { reader_.set_max_line(max_line); }

 private:
  line_reader reader_;
  std::string name_;
  std::uint64_t size_;
  std::uint64_t first_line_ = 0;  // lines before the last rename()
  parsed_job parsed_;
  std::string read_error_;
  bool requests_ = false;
  request request_;
};

/// What the run does with each entry, in input order. Owns the run's sequence numbers
/// (jobs without an id get theirs: config jobs first, then job lines; a rejected line
/// uses up its number too, so ids do not shift when it is fixed) and the set of ids seen.
class job_admission {
 public:
  /// `done`: ids already finished ok (--resume), or nullptr. `rerun_only`: with
  /// --resume-failed, the ids that failed; every other id is skipped too.
  job_admission(const run_config& config, const id_set* done, const id_set* rerun_only = nullptr)
      : config_(config), done_(done), rerun_only_(rerun_only) {}

  enum class verdict : std::uint8_t { submit, reject, skip };  ///< skip: --resume, already ok (or not failed)
  /// Completes `e` (its id, its pool when it can be defaulted) and decides. On reject,
  /// `e.rejection` holds the whole message, origin first ("jobs.jsonl:17: ..."), its
  /// reason cut to k_max_rejection bytes.
  verdict admit(job_entry& e);
  static constexpr std::size_t k_max_rejection = cli::k_max_rejection;

 private:
  const run_config& config_;
  const id_set* done_;
  const id_set* rerun_only_;
  id_set seen_;
  std::uint64_t sequence_ = 0;
};

}  // namespace ringmaster::cli
