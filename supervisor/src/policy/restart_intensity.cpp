#include "policy/restart_intensity.hpp"

namespace ringmaster::detail {

bool restart_intensity::add_restart(death_charge charge, time_point now, std::chrono::milliseconds window) {
  const bool counts = charge != death_charge::job_again;
  if (counts) (charge == death_charge::no_job ? uncharged_ : charged_).push_back(now);
  for (auto* times : {&uncharged_, &charged_})
    while (!times->empty() && now - times->front() > window) times->pop_front();
  return counts;
}

}  // namespace ringmaster::detail
