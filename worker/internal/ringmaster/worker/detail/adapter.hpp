// ringmaster/worker/detail/adapter.hpp — a worker that runs a user's program: the worker
// process stays a ringmaster worker (forked by the fork server, on the slot's rings) and
// forwards each job to a program of any language over pipes, in one of three protocols.
// Internal: called by the fork server in a new worker; not installed.
//
// jsonl and lines: the program is started once, as this worker's child in its process
// group (so it ends with the worker), and kept for many jobs: one line in, one line out.
// exec: one process per job, `{}` in its arguments replaced by the payload's text.
// Whatever the program does, the worker's end says it: a program that dies of a signal
// takes the worker with the same signal, one that exits takes it with its exit code, one
// that breaks the protocol is killed and the worker exits k_exit_protocol; the
// supervisor charges the running job as for any worker.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ringmaster/worker/detail/launch.hpp>

namespace ringmaster::detail {

/// How a program talks; the values are pool_options::protocol's (worker_protocol),
/// ringmaster = 0 being a worker built on serve(), which is exec'd, not adapted.
enum class program_protocol : std::uint8_t { jsonl = 1, lines = 2, exec = 3 };

/// The protocol's name, as a config writes it.
const char* to_string(program_protocol p) noexcept;

/// The worker's main loop for a program: serves the slot's jobs by forwarding them to
/// `command` (argv; a bare name is looked up in PATH). Returns the exit code, or dies of
/// the signal the program died of.
int run_adapter(const worker_launch& launch, program_protocol protocol, const std::vector<std::string>& command) noexcept;

}  // namespace ringmaster::detail
