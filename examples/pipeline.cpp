// pipeline — a handler in one pool submits jobs to another pool and waits for them.
//
// Two pools of two workers each:
//   "parse"  job "line":  splits a line into words, asks the "score" pool for each word's
//                         score with job::call (submit and wait), returns the total;
//            job "line_fanout": the same, but submits every word first with job::submit
//                         and then collects the replies with job::wait, so that both
//                         score workers can work on one line at once;
//            job "misrouted": asks a pool that does not exist, to show the error reply;
//   "score"  job "score": the Scrabble score of one word.
//
// The requests go worker -> supervisor -> worker through the supervisor's queues, and
// each reply comes back to the very worker that asked. A reply is a ringmaster::result
// like any other: a failed one (unknown pool, stopped pool, a handler that threw) comes
// back as an error, never as a hang; here it is turned into an exception, which fails
// the line's job with that message.
//
// The program sends every line as both job types, checks each total against the same
// scoring done here, and exits 1 on any difference.
//
//   ringmaster_example_pipeline
#include <array>
#include <cstdio>
#include <future>
#include <ringmaster/supervisor/supervisor.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

int scrabble_score(std::string_view word) {
  //                                   a  b  c  d  e  f  g  h  i  j  k  l  m  n  o  p  q   r  s  t  u  v  w  x  y  z
  static constexpr std::array<int, 26> k_points{1, 3, 3, 2, 1, 4, 2, 4, 1, 8, 5, 1, 3, 1, 1, 3, 10, 1, 1, 1, 1, 4, 4, 8, 4, 10};
  int score = 0;
  for (char c : word)
    if (c >= 'a' && c <= 'z') score += k_points[static_cast<std::size_t>(c - 'a')];
  return score;
}

std::vector<std::string> words_of(std::string_view line) {
  std::istringstream in{std::string(line)};
  std::vector<std::string> words;
  for (std::string w; in >> w;) words.push_back(w);
  return words;
}

// A reply's value, or an exception carrying its error: the caller's job then fails
// with a message that says which word and why.
int score_from(const ringmaster::result& r, const std::string& word) {
  if (!r.ok()) throw std::runtime_error("scoring '" + word + "' failed (" + std::string(to_string(r.error)) + "): " + r.value);
  return std::stoi(r.value);
}

}  // namespace

int main() {
  ringmaster::handlers h;
  h.on("score", [](ringmaster::job& j) { return std::to_string(scrabble_score(j.payload())); });
  // One word at a time: call() blocks this handler until the score pool replies.
  h.on("line", [](ringmaster::job& j) {
    int total = 0;
    for (const std::string& word : words_of(j.payload())) total += score_from(j.call("score", "score", word), word);
    return std::to_string(total);
  });
  // Every word at once: submit() returns at once, wait() collects each reply.
  h.on("line_fanout", [](ringmaster::job& j) {
    const std::vector<std::string> words = words_of(j.payload());
    std::vector<ringmaster::pending_request> requests;
    for (const std::string& word : words) requests.push_back(j.submit("score", "score", word));
    int total = 0;
    for (std::size_t i = 0; i < words.size(); ++i) total += score_from(j.wait(requests[i]), words[i]);
    return std::to_string(total);
  });

  // A request to a pool that does not exist: its reply is an error.
  h.on("misrouted", [](ringmaster::job& j) {
    return std::to_string(score_from(j.call("no_such_pool", "score", j.payload()), std::string(j.payload())));
  });

  ringmaster::supervisor sup({.name = "pipeline"});
  // Both pools run the same handlers object; each is sent only the job types meant for it.
  ringmaster::pool& parse = sup.add_pool("parse", h, {.workers = 2});
  sup.add_pool("score", h, {.workers = 2});
  sup.start();

  const std::vector<std::string> lines = {
      "the quick brown fox jumps over the lazy dog",
      "pack my box with five dozen liquor jugs",
      "sphinx of black quartz judge my vow",
      "a worker that dies takes one job with it and never the program",
      "every accepted job gets exactly one result",
  };
  std::vector<std::future<ringmaster::result>> by_call = parse.map("line", lines);
  std::vector<std::future<ringmaster::result>> by_fanout = parse.map("line_fanout", lines);

  int wrong = 0;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    int expected = 0;
    for (const std::string& word : words_of(lines[i])) expected += scrabble_score(word);
    for (auto* futures : {&by_call, &by_fanout}) {
      const ringmaster::result r = (*futures)[i].get();
      const bool right = r.ok() && std::stoi(r.value) == expected;
      wrong += right ? 0 : 1;
      std::printf("%-12s %4s  (expected %3d, parse worker %d, %5.2f ms)  %s%s\n",
                  futures == &by_call ? "line" : "line_fanout", r.value.c_str(), expected, r.worker, r.ms,
                  lines[i].c_str(), right ? "" : "  <-- WRONG");
    }
  }

  // A call to a pool that does not exist comes back as an error, not a hang.
  const ringmaster::result lost = parse.submit("misrouted", "hello").get();
  std::printf("misrouted   failed (%s): %s\n", std::string(to_string(lost.error)).c_str(), lost.value.c_str());
  if (lost.ok() || lost.value.find("no pool named") == std::string::npos) ++wrong;

  sup.drain();
  std::printf("%zu lines scored two ways, %d wrong\n", lines.size(), wrong);
  return wrong == 0 ? 0 : 1;
}
