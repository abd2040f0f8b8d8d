// SPDX-License-Identifier: Apache-2.0
// Commands on agents: agents, agent, cordon, drain, uncordon.
#include <iostream>

#include "absl/strings/str_format.h"
#include "api/cli/cli.h"
#include "api/cli/printers.h"

namespace portolan::cli {
namespace {

int Agents(Context& ctx, const Args&) {
  return ctx.Show(ctx.client().ListAgents(), PrintAgentsTable);
}

int Agent(Context& ctx, const Args& a) {
  return ctx.Show(ctx.client().GetAgent(a.args[0]), DrawAgent);
}

// cordon, drain and uncordon: POST /v1/agents/{id}/{action}.
Command Action(const std::string& action, const std::string& what) {
  return {action,
          action + " AGENT_ID",
          absl::StrFormat("%-28s %s", action + " ID", what),
          nullptr,
          1,
          1,
          false,
          [action](Context& ctx, const Args& a) {
            auto agent = ctx.client().AgentAction(a.args[0], action);
            if (!agent.ok()) return ctx.Report(agent.status());
            if (ctx.structured()) {
              ctx.Emit(*agent);
            } else {
              *ctx.out << absl::StrFormat("agent %s is %s (%d job(s) still on it)\n", agent->id(),
                                          v1::Agent::State_Name(agent->state()),
                                          agent->jobs_size());
            }
            return kExitOk;
          }};
}

}  // namespace

void AddAgentCommands(CommandTable& t) {
  t.Add({"agents", "agents", "agents                       list agents", nullptr, 0, 0, false,
         Agents});
  t.Add({"agent", "agent ID",
         "agent ID                     one agent: its topology drawn with the job on each PU",
         nullptr, 1, 1, false, Agent});
  t.Add(Action("cordon", "stop new work on an agent (its running jobs go on)"));
  t.Add(Action("drain", "stop new work on an agent; its running jobs finish"));
  t.Add(Action("uncordon", "resume new work on a cordoned or drained agent"));
}

}  // namespace portolan::cli
