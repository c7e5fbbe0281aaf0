// bench/pools/peers.hpp — the worker pools that ringmaster_pool_bench sets side by side,
// all running the same two jobs:
//
//   echo   result = payload (any size: the tiny-job and message-size workloads)
//   spin   payload = a decimal iteration count K; result = spin(K), a chain of K
//          multiply-adds that the compiler cannot shorten (the job-duration workload;
//          K is calibrated so that spin(K) takes the chosen time on this machine)
//
// Peers, each built "the obvious way":
//   ringmaster   the library's embedding API (supervisor, add_pool, submit with callback)
//   pipe         fork + two pipes per worker, length-prefixed frames, blocking I/O, a
//                parent that keeps a few jobs in flight per worker and poll()s replies
//   mq           boost::interprocess::message_queue: one request queue that every worker
//                receives from, one reply queue, both created by the parent
//   loop         the job called in a plain loop in this process: the zero-overhead
//                reference
//
// A peer runs `jobs` and hands every result to `check`, which throws on a wrong one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace ringmaster::pool_bench {

/// A run that produced a wrong result or failed: no figure may be reported from it.
class wrong_result : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The spin job: K dependent multiply-adds. Deterministic, so every result is checked.
std::uint64_t spin(std::uint64_t iterations) noexcept;
/// What a worker returns for a job: echo -> payload; spin -> decimal spin(K).
std::string run_job(std::string_view type, std::string_view payload);

/// One unit of work as every peer sees it.
struct job_spec {
  std::string type;                    // "echo" or "spin"
  std::vector<std::string> payloads;   // job i carries payloads[i % size]
  std::vector<std::string> expected;   // and must return expected[i % size]
};

/// Throughput: runs `jobs` jobs on `workers` workers; returns seconds from the first
/// submission to the last result (workers started and warmed up before).
double run_pipe_pool(const job_spec& spec, std::size_t jobs, unsigned workers);
double run_mq_pool(const job_spec& spec, std::size_t jobs, unsigned workers);
double run_loop(const job_spec& spec, std::size_t jobs);

/// Latency: one job at a time on an idle pool of one worker; round trips in µs.
std::vector<double> latency_pipe(const job_spec& spec, std::size_t samples);
std::vector<double> latency_mq(const job_spec& spec, std::size_t samples);

/// Removes message queues left by a benchmark process that died (by name prefix).
void sweep_stale_queues() noexcept;

}  // namespace ringmaster::pool_bench
