// ringmaster/worker/serve.hpp — running a worker: the entry point of a worker executable.
//
//     int main(int argc, char** argv) { return ringmaster::serve(argc, argv, my_handlers()); }
//
// A supervisor launches such an executable (a pool with `command`) with the environment
// variable RINGMASTER_WORKER describing the inherited descriptors; serve() attaches to
// them, reports ready, and runs jobs until the supervisor tells it to stop or dies (the
// worker dies with it: PR_SET_PDEATHSIG). Run by hand, without that variable, serve()
// prints what it is and which job types it serves, and returns 64.
#pragma once

#include <ringmaster/worker/handlers.hpp>

namespace ringmaster {

/// Serves jobs with `h` as the worker the environment describes. Blocking until told to
/// stop. Returns the process exit code: 0 after a stop, 64 when not launched by a
/// supervisor, 70 when it cannot attach (the reason is sent to the supervisor when
/// possible, and printed on stderr). Never throws.
int serve(int argc, char** argv, const handlers& h) noexcept;

}  // namespace ringmaster
