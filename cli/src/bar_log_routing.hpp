// Internal to `ringmaster run`: its log lines and its progress bar share the terminal.
#pragma once

#include <spdlog/sinks/sink.h>
#include <spdlog/spdlog.h>

#include <memory>
#include <ringmaster/cli/progress.hpp>
#include <string>
#include <utility>
#include <vector>

namespace ringmaster::cli::detail {

// A log sink that erases the progress bar around each line of this process's loggers.
class around_bar_sink final : public spdlog::sinks::sink {
 public:
  around_bar_sink(std::vector<spdlog::sink_ptr> inner, progress_reporter& reporter)
      : inner_(std::move(inner)), reporter_(reporter) {}
  void log(const spdlog::details::log_msg& msg) override {
    reporter_.around_output([&] {
      for (auto& s : inner_)
        if (s->should_log(msg.level)) s->log(msg);
    });
  }
  void flush() override {
    for (auto& s : inner_) s->flush();
  }
  void set_pattern(const std::string& pattern) override {
    for (auto& s : inner_) s->set_pattern(pattern);
  }
  void set_formatter(std::unique_ptr<spdlog::formatter> formatter) override {
    for (auto& s : inner_) s->set_formatter(formatter->clone());
  }

 private:
  std::vector<spdlog::sink_ptr> inner_;
  progress_reporter& reporter_;
};

// Routes the named loggers through around_bar_sink while it lives. Installed before any
// thread but this one logs (the dispatcher is not started yet), removed after they stop.
class bar_log_routing {
 public:
  bar_log_routing(const std::vector<std::shared_ptr<spdlog::logger>>& loggers, progress_reporter& reporter) {
    for (const auto& l : loggers) {
      if (!l) continue;
      saved_.emplace_back(l, l->sinks());
      l->sinks() = {std::make_shared<around_bar_sink>(l->sinks(), reporter)};
    }
  }
  ~bar_log_routing() {
    for (auto& [l, sinks] : saved_) l->sinks() = sinks;
  }
  bar_log_routing(const bar_log_routing&) = delete;
  bar_log_routing& operator=(const bar_log_routing&) = delete;

 private:
  std::vector<std::pair<std::shared_ptr<spdlog::logger>, std::vector<spdlog::sink_ptr>>> saved_;
};

}  // namespace ringmaster::cli::detail
