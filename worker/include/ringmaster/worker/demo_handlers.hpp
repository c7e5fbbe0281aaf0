// ringmaster/worker/demo_handlers.hpp — the built-in handlers that a pool without a
// `command` runs: examples to copy, and the fixtures of the test suite.
//
//   echo    result = payload
//   primes  payload N -> the count of primes <= N
//   sleep   payload milliseconds -> sleeps that long, result "slept N ms"
//   fail    throws std::runtime_error with the payload as its message
//   crash   payload {"signal": "SEGV"|"ABRT"|"KILL", "p": 0.0..1.0}: dies by that signal
//           with probability p (default 1), else returns "survived"
//   hang    never returns
//   alloc   payload MiB -> allocates and touches that much, result "allocated N MiB"
#pragma once

#include <ringmaster/worker/handlers.hpp>

namespace ringmaster {

/// The process's one set of demo handlers, created on first call. Call it before
/// constructing a supervisor that forks workers with it.
const handlers& demo_handlers();

}  // namespace ringmaster
