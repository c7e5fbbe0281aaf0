#include <cstdio>
#include <nlohmann/json.hpp>
#include <ringmaster/cli/jsonl.hpp>
#include <ringmaster/cli/protocol.hpp>
#include <ringmaster/worker/detail/json_depth.hpp>
#include <stdexcept>

namespace ringmaster::cli {
namespace {

using nlohmann::json;

// Non-UTF-8 bytes (a job id, a crash message) become U+FFFD, as in result lines.
std::string text_of(std::string_view s) {
  std::string quoted;
  append_json_string(quoted, s);
  return json::parse(quoted).get<std::string>();
}

std::string seconds(double s) {
  char buf[32];
  if (s < 60) std::snprintf(buf, sizeof buf, "%.1fs", s);
  else if (s < 3600) std::snprintf(buf, sizeof buf, "%dm%02ds", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
  else std::snprintf(buf, sizeof buf, "%dh%02dm", static_cast<int>(s) / 3600, static_cast<int>(s) / 60 % 60);
  return buf;
}

std::string bytes(double b) {
  char buf[32];
  if (b <= 0) return "-";
  if (b < 1024 * 1024) std::snprintf(buf, sizeof buf, "%.0f KiB", b / 1024);
  else if (b < 1024.0 * 1024 * 1024) std::snprintf(buf, sizeof buf, "%.1f MiB", b / (1024 * 1024));
  else std::snprintf(buf, sizeof buf, "%.2f GiB", b / (1024.0 * 1024 * 1024));
  return buf;
}

// A line from the other end of the socket, parsed; discarded when it is not JSON or
// nests too deep to parse safely (ringmaster/worker/detail/json_depth.hpp).
json parse_line(std::string_view line) {
  if (ringmaster::detail::json_too_deep(line)) return json(json::value_t::discarded);
  return json::parse(line, nullptr, false);
}

json status_doc(std::string_view line) {
  auto doc = parse_line(line);
  if (doc.is_discarded() || !doc.is_object() || doc.value("op", "") != "status" || !doc.contains("pools") ||
      !doc["pools"].is_array())
    throw std::runtime_error("the server's answer is not a status reply: " + std::string(line.substr(0, 200)));
  return doc;
}

// Columns padded to their widest cell.
std::string table(const std::vector<std::vector<std::string>>& rows, std::string_view indent) {
  std::vector<std::size_t> width;
  for (auto& r : rows)
    for (std::size_t i = 0; i < r.size(); ++i) {
      if (width.size() <= i) width.push_back(0);
      width[i] = std::max(width[i], r[i].size());
    }
  std::string out;
  for (auto& r : rows) {
    std::string line(indent);
    for (std::size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line += std::string(width[i] - r[i].size() + 2, ' ');
    }
    out += line + "\n";
  }
  return out;
}

// A Prometheus label value: backslash, quote and newline escaped.
std::string label(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\', out += c;
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

}  // namespace

std::optional<request> parse_request(std::string_view line) {
  // Job lines are the bulk of the traffic: only a line that mentions "op" is parsed here.
  // One nesting too deep is no request: parse_job_line then rejects it, naming the limit.
  if (line.find("\"op\"") == std::string_view::npos) return std::nullopt;
  const auto doc = parse_line(line);
  if (doc.is_discarded() || !doc.is_object()) return std::nullopt;
  const auto op = doc.find("op");
  if (op == doc.end()) return std::nullopt;
  request r;
  r.op = op->is_string() ? op->get<std::string>() : op->dump();
  if (auto it = doc.find("pool"); it != doc.end() && it->is_string()) r.pool = it->get<std::string>();
  if (auto it = doc.find("workers"); it != doc.end() && it->is_number_integer()) r.workers = it->get<long long>();
  if (auto it = doc.find("protocol"); it != doc.end() && it->is_number_integer()) r.protocol = it->get<long long>();
  if (auto it = doc.find("source"); it != doc.end() && it->is_string()) r.source = it->get<std::string>();
  return r;
}

std::string reply_line(std::string_view op, std::string_view fields) {
  std::string out = "{\"op\": ";
  append_json_string(out, op);
  if (!fields.empty()) out.append(", ").append(fields);
  out += "}\n";
  return out;
}

std::string json_field(std::string_view key, std::string_view value) {
  std::string out;
  append_json_string(out, key);
  out += ": ";
  append_json_string(out, value);
  return out;
}

std::string error_line(std::string_view message, const std::vector<std::string>& problems) {
  std::string fields = json_field("message", message);
  if (!problems.empty()) {
    fields += ", \"problems\": [";
    for (std::size_t i = 0; i < problems.size(); ++i) {
      if (i) fields += ", ";
      append_json_string(fields, problems[i]);
    }
    fields += ']';
  }
  return reply_line("error", fields);
}

std::string status_line(const supervisor_status& status, int pid, double uptime_s, std::string_view state) {
  json doc = {{"op", "status"}, {"protocol", k_protocol_version}, {"pid", pid}, {"uptime_s", uptime_s},
              {"state", std::string(state)}, {"pools", json::array()}};
  for (const auto& p : status.pools) {
    json pj = {{"name", text_of(p.name)},      {"queued", p.queued},   {"in_flight", p.in_flight},
               {"completed", p.completed},     {"failed", p.failed},   {"retried", p.retried},
               {"restarts", p.restarts},       {"gave_up", p.gave_up}, {"gave_up_reason", text_of(p.gave_up_reason)},
               {"removed", p.removed},         {"workers", json::array()}};
    for (const auto& w : p.workers) {
      json causes = json::object();
      for (const auto& [cause, n] : w.restarts_by_cause) causes[text_of(cause)] = n;
      pj["workers"].push_back({{"slot", w.slot},
                               {"pid", w.pid},
                               {"state", std::string(to_string(w.state))},
                               {"uptime_s", w.uptime_ms / 1000},
                               {"jobs_done", w.jobs_done},
                               {"jobs_failed", w.jobs_failed},
                               {"restarts", w.restarts},
                               {"restarts_by_cause", causes},
                               {"current_job", text_of(w.current_job)},
                               {"current_job_s", w.current_job_ms / 1000},
                               {"rss_bytes", w.rss_bytes}});
    }
    doc["pools"].push_back(std::move(pj));
  }
  const auto& fs = status.fork_servers;
  doc["fork_servers"] = {{"active_pid", fs.active_pid},
                         {"standby_pid", fs.standby_pid},
                         {"promotions", fs.promotions},
                         {"standby_failures", fs.standby_failures},
                         {"standby_error", text_of(fs.standby_error)}};
  return doc.dump() + "\n";
}

std::optional<reply> parse_reply(std::string_view line) {
  const auto doc = parse_line(line);
  if (doc.is_discarded() || !doc.is_object()) return std::nullopt;
  // value() throws type_error for a member of another type ({"op": 7}): found by
  // fuzz/request_fuzz.cpp. Such a member reads as absent.
  const auto text = [&doc](const char* key) {
    const auto it = doc.find(key);
    return it != doc.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  reply r;
  r.op = text("op");
  r.message = text("message");
  r.gave_up = text("gave_up");
  if (auto it = doc.find("protocol"); it != doc.end() && it->is_number_integer()) r.protocol = it->get<long long>();
  if (auto it = doc.find("problems"); it != doc.end() && it->is_array())
    for (auto& p : *it)
      if (p.is_string()) r.problems.push_back(p.get<std::string>());
  r.text.assign(line);
  return r;
}

std::string format_status_table(std::string_view status_reply) {
  const json doc = status_doc(status_reply);
  std::string out = "ringmaster serve: pid " + std::to_string(doc.value("pid", 0)) + ", " + doc.value("state", "?") +
                    ", up " + seconds(doc.value("uptime_s", 0.0)) + "\n";
  if (const auto fs = doc.find("fork_servers"); fs != doc.end() && fs->is_object()) {
    const int active = fs->value("active_pid", 0), standby = fs->value("standby_pid", 0);
    out += "fork servers: active " + (active > 0 ? "pid " + std::to_string(active) : std::string("none")) +
           ", standby " +
           (standby > 0 ? "pid " + std::to_string(standby)
                        : "none (" + std::to_string(fs->value("standby_failures", 0)) + " failed attempts: " +
                              fs->value("standby_error", "") + ")") +
           ", promotions " + std::to_string(fs->value("promotions", 0)) + "\n";
  }
  out += "\n";
  for (const auto& p : doc["pools"]) {
    std::string state = p.value("gave_up", false) ? "gave up: " + p.value("gave_up_reason", "") : "running";
    if (p.value("removed", false)) state = "removed, finishing its jobs";
    out += "pool " + p.value("name", "?") + " (" + state + "): " + std::to_string(p["workers"].size()) +
           " worker(s), queued " + std::to_string(p.value("queued", 0)) + ", in flight " +
           std::to_string(p.value("in_flight", 0)) + ", done " + std::to_string(p.value("completed", 0)) + ", failed " +
           std::to_string(p.value("failed", 0)) + ", retried " + std::to_string(p.value("retried", 0)) + ", restarts " +
           std::to_string(p.value("restarts", 0)) + "\n";
    std::vector<std::vector<std::string>> rows{
        {"SLOT", "PID", "STATE", "UPTIME", "DONE", "FAILED", "RESTARTS", "JOB", "JOB AGE", "RSS"}};
    for (const auto& w : p["workers"]) {
      std::string restarts = std::to_string(w.value("restarts", 0));
      std::string causes;
      for (auto it = w["restarts_by_cause"].begin(); it != w["restarts_by_cause"].end(); ++it)
        causes += (causes.empty() ? "" : ", ") + it.key() + " " + std::to_string(it.value().get<unsigned>());
      if (!causes.empty()) restarts += " (" + causes + ")";
      const std::string job = w.value("current_job", "");
      const int pid = w.value("pid", 0);
      rows.push_back({std::to_string(w.value("slot", -1)), pid > 0 ? std::to_string(pid) : "-", w.value("state", "?"),
                      pid > 0 ? seconds(w.value("uptime_s", 0.0)) : "-", std::to_string(w.value("jobs_done", 0)),
                      std::to_string(w.value("jobs_failed", 0)), restarts, job.empty() ? "-" : job,
                      job.empty() ? "-" : seconds(w.value("current_job_s", 0.0)), bytes(w.value("rss_bytes", 0.0))});
    }
    out += table(rows, "  ") + "\n";
  }
  return out;
}

std::string format_prometheus(std::string_view status_reply) {
  const json doc = status_doc(status_reply);
  struct family {
    const char* name;
    const char* type;
    const char* help;
    std::string samples;
  };
  std::vector<family> f = {
      {"ringmaster_uptime_seconds", "gauge", "Seconds since the server started.", {}},
      {"ringmaster_pool_workers", "gauge", "Worker slots of the pool.", {}},
      {"ringmaster_pool_queued_jobs", "gauge", "Jobs accepted and not yet sent to a worker.", {}},
      {"ringmaster_pool_in_flight_jobs", "gauge", "Jobs sent to a worker, without a result yet.", {}},
      {"ringmaster_pool_jobs_completed_total", "counter", "Jobs whose final result was ok.", {}},
      {"ringmaster_pool_jobs_failed_total", "counter", "Jobs whose final result was a failure.", {}},
      {"ringmaster_pool_jobs_retried_total", "counter", "Attempts that were retried.", {}},
      {"ringmaster_pool_restarts_total", "counter", "Worker restarts after an abnormal end.", {}},
      {"ringmaster_pool_gave_up", "gauge", "1 when the pool gave up (restart intensity exceeded).", {}},
      {"ringmaster_worker_up", "gauge", "1 while a process runs in the slot.", {}},
      {"ringmaster_worker_busy", "gauge", "1 while the worker runs a job.", {}},
      {"ringmaster_worker_uptime_seconds", "gauge", "Seconds since the worker's process became ready.", {}},
      {"ringmaster_worker_jobs_done_total", "counter", "Results from the slot, over all its processes.", {}},
      {"ringmaster_worker_jobs_failed_total", "counter", "Failed results from the slot.", {}},
      {"ringmaster_worker_restarts_total", "counter", "Restarts of the slot, by cause.", {}},
      {"ringmaster_worker_current_job_age_seconds", "gauge", "How long the running job has run (0 when idle).", {}},
      {"ringmaster_worker_resident_memory_bytes", "gauge", "Resident memory of the worker's process.", {}},
      {"ringmaster_fork_server_standby_up", "gauge", "1 while a standby fork server is ready to take over.", {}},
      {"ringmaster_fork_server_promotions_total", "counter", "Fork servers that died and were replaced.", {}},
      {"ringmaster_fork_server_standby_failures", "gauge", "Failed attempts to fork a standby since the last success.", {}},
  };
  auto add = [&](std::size_t i, const std::string& labels, const std::string& value) {
    f[i].samples += std::string(f[i].name) + (labels.empty() ? "" : "{" + labels + "}") + " " + value + "\n";
  };
  auto num = [](const json& v) { return v.dump(); };
  add(0, "", num(doc.value("uptime_s", json(0))));
  for (const auto& p : doc["pools"]) {
    if (p.value("removed", false)) continue;  // its replacement (same name) is the live series
    const std::string pl = "pool=\"" + label(p.value("name", "")) + "\"";
    add(1, pl, std::to_string(p["workers"].size()));
    add(2, pl, num(p.value("queued", json(0))));
    add(3, pl, num(p.value("in_flight", json(0))));
    add(4, pl, num(p.value("completed", json(0))));
    add(5, pl, num(p.value("failed", json(0))));
    add(6, pl, num(p.value("retried", json(0))));
    add(7, pl, num(p.value("restarts", json(0))));
    add(8, pl, p.value("gave_up", false) ? "1" : "0");
    for (const auto& w : p["workers"]) {
      const std::string wl = pl + ",slot=\"" + std::to_string(w.value("slot", -1)) + "\"";
      add(9, wl, w.value("pid", 0) > 0 ? "1" : "0");
      add(10, wl, w.value("state", "") == "busy" ? "1" : "0");
      add(11, wl, num(w.value("uptime_s", json(0))));
      add(12, wl, num(w.value("jobs_done", json(0))));
      add(13, wl, num(w.value("jobs_failed", json(0))));
      for (auto it = w["restarts_by_cause"].begin(); it != w["restarts_by_cause"].end(); ++it)
        add(14, wl + ",cause=\"" + label(it.key()) + "\"", num(it.value()));
      add(15, wl, num(w.value("current_job_s", json(0))));
      add(16, wl, num(w.value("rss_bytes", json(0))));
    }
  }
  if (const auto fs = doc.find("fork_servers"); fs != doc.end() && fs->is_object()) {
    add(17, "", fs->value("standby_pid", 0) > 0 ? "1" : "0");
    add(18, "", num(fs->value("promotions", json(0))));
    add(19, "", num(fs->value("standby_failures", json(0))));
  }
  std::string out;
  for (auto& x : f) {
    if (x.samples.empty()) continue;
    out += std::string("# HELP ") + x.name + " " + x.help + "\n# TYPE " + x.name + " " + x.type + "\n" + x.samples;
  }
  return out;
}

}  // namespace ringmaster::cli
