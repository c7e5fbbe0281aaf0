// ringmaster — the command line. Parses arguments (CLI11) and hands over to
// ringmaster::cli::run(), serve(), submit(), status() or control(), which hold
// everything testable.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <ringmaster/cli/client.hpp>
#include <ringmaster/cli/resume.hpp>
#include <ringmaster/cli/run.hpp>
#include <ringmaster/cli/serve.hpp>
#include <ringmaster/supervisor/options.hpp>
#include <string>

int main(int argc, char** argv) {
  namespace rc = ringmaster::cli;
  CLI::App app{"ringmaster: runs CPU-bound jobs on supervised pools of worker processes.", "ringmaster"};
  app.set_version_flag("--version", std::string("ringmaster ") + RINGMASTER_VERSION);
  app.require_subcommand(1);
  app.footer(
      "Exit status: 0 every job ok; 1 some job failed (or the run was interrupted);\n"
      "2 bad usage or config (nothing was started); 3 a pool gave up, or a thread or fork\n"
      "server could not be created (submit, status and the control commands: also the\n"
      "server could not be reached); 4 results could not all be written (a full disk, a\n"
      "closed pipe: the summary says how many are missing).\n"
      "Formats and examples: README.md, sections \"The ringmaster command\" and\n"
      "\"Running ringmaster as a service\".\n");

  rc::run_options o;
  long long workers = -1;
  bool no_progress = false;
  CLI::App* run = app.add_subcommand("run", "Start the config's pools, run its [[jobs]] and any --jobs, write results.");
  run->add_option("config", o.config, "CONFIG.toml: [supervisor], [pools.NAME] and [[jobs]] tables")->required();
  run->add_option("--jobs", o.jobs, "More jobs as JSON Lines, streamed: a FILE, or - for stdin");
  run->add_option("--results", o.results, "Where result lines go: a FILE, or - for stdout (the default)");
  run->add_option("--workers", workers, "Worker processes in every pool, overriding the config (0: one per core)");
  auto* resume_flag =
      run->add_flag("--resume", o.resume, "Skip jobs that have an ok line in the --results FILE; append the rest");
  run->add_flag("--resume-failed", o.resume_failed,
                "Rerun only the jobs whose last line in the --results FILE failed; append their lines")
      ->excludes(resume_flag);
  run->add_flag("--keep-order", o.keep_order,
                "Result lines in the order of the jobs, not of their completion (holds at most max_pending)");
  run->add_flag("--no-progress", no_progress, "No progress bar (terminal) or periodic progress log lines");
  run->add_option("--log-level", o.log_level, "trace, debug, info (default), warn, error, critical or off");

  rc::serve_options so;
  CLI::App* serve = app.add_subcommand("serve", "Keep the config's pools running and take jobs and commands on a socket.");
  serve->add_option("config", so.config, "CONFIG.toml: [supervisor] and [pools.NAME] tables")->required();
  serve->add_option("--socket", so.socket, "The Unix socket to create (its directory: yours, mode 700)")->required();
  serve->add_option("--log-level", so.log_level, "trace, debug, info (default), warn, error, critical or off");
  serve->footer(
      "SIGINT and SIGTERM stop (a second one stops at once), SIGHUP reloads the config.\n"
      "Exit status: 0 stopped or drained, every client sent its lines; 1 stopped at once (a\n"
      "second stop), or the pools or the socket could not be started; 2 bad usage or config,\n"
      "a socket directory open to others, or another server on the socket (nothing was started).\n"
      "Protocol and examples: README.md, section \"Running ringmaster as a service\".\n");

  rc::submit_options sub;
  CLI::App* submit = app.add_subcommand("submit", "Send job lines to a server; write their result lines as they come.");
  submit->add_option("--socket", sub.socket, "The server's socket")->required();
  submit->add_option("jobs", sub.jobs, "Job lines: a FILE, or - for stdin (the default)");
  submit->add_option("--results", sub.results, "Where result lines go: a FILE, or - for stdout (the default)");

  std::string results_file;
  bool final_lines = false;
  CLI::App* results = app.add_subcommand("results", "Read a results file (several runs with --resume append to one).");
  results->add_flag("--final", final_lines, "One line per id, its last (final) one, in the order of those lines")
      ->required();
  results->add_option("file", results_file, "The results FILE")->required();

  std::string status_socket;
  bool as_json = false, as_prometheus = false;
  CLI::App* status = app.add_subcommand("status", "Show a server's pools and workers.");
  status->add_option("--socket", status_socket, "The server's socket")->required();
  auto* json_flag = status->add_flag("--json", as_json, "The status reply, one JSON line");
  status->add_flag("--prometheus,--metrics", as_prometheus, "Counters and gauges in the Prometheus text format")
      ->excludes(json_flag);

  rc::control_options co;
  CLI::App* drain = app.add_subcommand("drain", "Finish accepted jobs, refuse new ones, then stop the server.");
  CLI::App* stop = app.add_subcommand("stop", "Stop the server: queued jobs fail `stopped`, running ones get shutdown_timeout.");
  CLI::App* scale = app.add_subcommand("scale", "Change a pool's worker count (running workers are left alone).");
  CLI::App* reload = app.add_subcommand("reload", "Re-read the server's config; restart only the pools whose settings changed.");
  for (CLI::App* c : {drain, stop, scale, reload}) c->add_option("--socket", co.socket, "The server's socket")->required();
  scale->add_option("pool", co.pool, "The pool's name")->required();
  scale->add_option("workers", co.workers, "Worker processes, 1-" + std::to_string(ringmaster::k_max_workers))
      ->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0; every usage error is status 2, as documented.
    return app.exit(e) == 0 ? 0 : rc::k_exit_usage;
  }
  if (*serve) return rc::serve(so);
  if (*results) return rc::write_final_results(results_file);
  if (*submit) return rc::submit(sub);
  if (*status)
    return rc::status(status_socket, as_json         ? rc::status_format::json
                                     : as_prometheus ? rc::status_format::prometheus
                                                     : rc::status_format::table);
  for (CLI::App* c : {drain, stop, scale, reload})
    if (*c) {
      co.op = c->get_name();
      if (co.op == "scale" && (co.workers < 1 || co.workers > static_cast<long long>(ringmaster::k_max_workers))) {
        std::fprintf(stderr, "ringmaster: scale: expected a worker count from 1 to %u, got %lld\n",
                     ringmaster::k_max_workers, co.workers);
        return rc::k_exit_usage;
      }
      return rc::control(co);
    }
  o.progress = !no_progress;
  if (run->count("--workers") > 0) {
    if (workers < 0 || workers > static_cast<long long>(ringmaster::k_max_workers)) {
      std::fprintf(stderr, "ringmaster: --workers: expected an integer from 0 to %u (0: one per core), got %lld\n",
                   ringmaster::k_max_workers, workers);
      return rc::k_exit_usage;
    }
    o.workers = static_cast<unsigned>(workers);
  }
  return rc::run(o);
}
