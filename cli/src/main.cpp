// ringmaster — the command line. Parses arguments (CLI11) and hands over to
// ringmaster::cli::run(), which holds everything testable.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <ringmaster/cli/run.hpp>
#include <string>

int main(int argc, char** argv) {
  namespace rc = ringmaster::cli;
  CLI::App app{"ringmaster: runs CPU-bound jobs on supervised pools of worker processes.", "ringmaster"};
  app.set_version_flag("--version", std::string("ringmaster ") + RINGMASTER_VERSION);
  app.require_subcommand(1);
  app.footer(
      "Exit status: 0 every job ok; 1 some job failed (or the run was interrupted);\n"
      "2 bad usage or config (nothing was started); 3 a pool gave up.\n"
      "Formats and examples: README.md, section \"The ringmaster command\".\n");

  rc::run_options o;
  long long workers = -1;
  bool no_progress = false;
  CLI::App* run = app.add_subcommand("run", "Start the config's pools, run its [[jobs]] and any --jobs, write results.");
  run->add_option("config", o.config, "CONFIG.toml: [supervisor], [pools.NAME] and [[jobs]] tables")->required();
  run->add_option("--jobs", o.jobs, "More jobs as JSON Lines, streamed: a FILE, or - for stdin");
  run->add_option("--results", o.results, "Where result lines go: a FILE, or - for stdout (the default)");
  run->add_option("--workers", workers, "Worker processes in every pool, overriding the config (0: one per core)");
  run->add_flag("--resume", o.resume, "Skip jobs that have an ok line in the --results FILE; append the rest");
  run->add_flag("--no-progress", no_progress, "No progress bar (terminal) or periodic progress log lines");
  run->add_option("--log-level", o.log_level, "trace, debug, info (default), warn, error, critical or off");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0; every usage error is status 2, as documented.
    return app.exit(e) == 0 ? 0 : rc::k_exit_usage;
  }
  o.progress = !no_progress;
  if (run->count("--workers") > 0) {
    if (workers < 0 || workers > 1024) {
      std::fprintf(stderr, "ringmaster: --workers: expected an integer from 0 to 1024 (0: one per core), got %lld\n",
                   workers);
      return rc::k_exit_usage;
    }
    o.workers = static_cast<unsigned>(workers);
  }
  return rc::run(o);
}
