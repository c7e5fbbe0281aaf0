// ringmaster/cli/job_source.hpp — where a run's jobs come from, one at a time.
//
// A job_source yields entries in order: the config's [[jobs]] (config_job_source), then
// a JSON Lines file or stdin (jsonl_job_source). Sources are streams, never loaded whole:
// the runner pulls an entry, submits it (blocking when the pool has max_pending jobs
// unfinished) and pulls the next, so memory stays bounded however long the input is. The
// runner does not know what kind of source it reads; a control socket or a durable
// stream later is one more implementation of the same interface.
//
// job_admission then decides, for each entry, what the run does with it: submit it,
// reject it (a result line of kind `rejected`), or skip it (--resume: already done).
//
// A source is read by one thread; fraction_read() may be called from any other (the
// progress display). jsonl_job_source's blocking reads end early when its stop
// descriptor becomes readable (a signal arrived), so a run never waits on stdin to shut
// down.
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
  /// Fills `out` with the next entry (reusing its strings' storage); false at the end of
  /// the input, or when stopped. May block on input.
  virtual bool next(job_entry& out) = 0;
  /// Fraction of the input consumed, 0..1, or a negative value when unknown (a pipe).
  /// Thread-safe.
  [[nodiscard]] virtual double fraction_read() const noexcept { return -1; }
};

/// The config's [[jobs]], each repeated `repeat` times, expanded lazily: a repeat of a
/// billion costs no memory. With an id and repeat > 1, copies get ids "ID-1" ... "ID-N".
class config_job_source final : public job_source {
 public:
  explicit config_job_source(const run_config& config) : config_(config) {}
  bool next(job_entry& out) override;
  [[nodiscard]] double fraction_read() const noexcept override;

 private:
  const run_config& config_;
  std::size_t job_ = 0;
  std::uint64_t copy_ = 0;
  std::atomic<std::uint64_t> done_{0};  // read by the progress thread
};

/// A descriptor's lines (line_splitter over blocking reads), holding at most one line
/// (up to max_line bytes) and one read in memory.
class line_reader {
 public:
  /// `fd` is read, not owned. `stop_fd` (an eventfd or pipe, or -1) ends blocking reads
  /// when readable.
  line_reader(int fd, int stop_fd, std::size_t max_line);

  enum class status : std::uint8_t {
    line,      ///< a line (without its '\n')
    too_long,  ///< a line over max_line bytes, skipped up to its newline
    end,       ///< end of input
    stopped,   ///< stop_fd became readable
    error,     ///< a read failed (errno is in error_code())
  };
  /// The next line. `unterminated` is set for a last line that has no newline.
  status next(std::string_view& line, bool& unterminated);
  /// Number of the line last returned, from 1.
  [[nodiscard]] std::uint64_t line_number() const noexcept { return lines_.line_number(); }
  [[nodiscard]] std::uint64_t bytes_consumed() const noexcept { return lines_.bytes_consumed(); }
  [[nodiscard]] int error_code() const noexcept { return error_; }

 private:
  bool fill();  // reads more bytes; false at end, stop or error (status in last_)

  int fd_, stop_fd_;
  bool pollable_;  // not a regular file: reads may block, so wait in poll() with stop_fd
  std::size_t read_size_;
  line_splitter lines_;
  bool eof_ = false;
  status last_ = status::line;
  int error_ = 0;
};

/// Job lines from a descriptor (a file or stdin). Blank lines are skipped. A line that
/// is not a well-formed job becomes an entry with `rejection` set, naming the line
/// ("jobs.jsonl:17: not valid JSON: ..."); reading continues with the next line.
class jsonl_job_source final : public job_source {
 public:
  /// `name` names the input in messages ("jobs.jsonl", or "stdin"). `size`: the file's
  /// size for progress estimates, 0 if unknown.
  jsonl_job_source(int fd, std::string name, int stop_fd, std::size_t max_line, std::uint64_t size);
  bool next(job_entry& out) override;
  [[nodiscard]] double fraction_read() const noexcept override;
  /// Why reading stopped early ("" if it did not): a read error.
  [[nodiscard]] const std::string& read_error() const noexcept { return read_error_; }

 private:
  line_reader reader_;
  std::string name_;
  std::uint64_t size_;
  std::size_t max_line_;
  parsed_job parsed_;
  std::string read_error_;
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
