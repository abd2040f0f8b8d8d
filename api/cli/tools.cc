// SPDX-License-Identifier: Apache-2.0
// Offline and raw commands: token, metrics, completion.
#include <iostream>

#include "absl/strings/str_replace.h"
#include "api/cli/cli.h"
#include "portolan/auth/auth.h"
#include "portolan/codec/codec.h"
#include "portolan/v1/api.pb.h"

namespace portolan::cli {
namespace {

namespace po = boost::program_options;

const char* kBashCompletion =
    R"BASH(# bash completion for portolan: source <(portolan completion bash)
_portolan() {
  local cur prev cmd
  cur="${COMP_WORDS[COMP_CWORD]}"
  prev="${COMP_WORDS[COMP_CWORD-1]}"
  case "$prev" in
    -o|--output) COMPREPLY=($(compgen -W "table json yaml" -- "$cur")); return ;;
    --server) return ;;
    --ca) COMPREPLY=($(compgen -f -- "$cur")); return ;;
  esac
  local i
  for ((i = 1; i < COMP_CWORD; i++)); do
    case "${COMP_WORDS[i]}" in
      -o|--output|--server|--ca) ((i++)) ;;
      -*) ;;
      *) cmd="${COMP_WORDS[i]}"; break ;;
    esac
  done
  if [ -z "$cmd" ]; then
    COMPREPLY=($(compgen -W "COMMANDS --server --ca -o --help" -- "$cur"))
    return
  fi
  case "$cmd" in
    submit|plan) COMPREPLY=($(compgen -f -W "--name --cpus --memory-mb --gpus --tenant --priority --max-runtime-s --env --depends-on --array --gang --idempotency-key --wait --" -- "$cur")) ;;
    job|tasks|wait|watch|cancel|logs|explain)
      COMPREPLY=($(compgen -W "$(portolan -o json jobs --limit 50 2>/dev/null | sed -n 's/^ *"id": "\(job-[0-9a-f]*\)".*/\1/p')" -- "$cur")) ;;
    agent|cordon|drain|uncordon)
      COMPREPLY=($(compgen -W "$(portolan -o json agents 2>/dev/null | sed -n 's/^ *"id": "\([^"]*\)".*/\1/p')" -- "$cur")) ;;
    policy) COMPREPLY=($(compgen -f -W "get apply validate versions simulate" -- "$cur")) ;;
    network) COMPREPLY=($(compgen -W "link up down" -- "$cur")) ;;
    tenant) COMPREPLY=($(compgen -f -W "set usage" -- "$cur")) ;;
    dataset) COMPREPLY=($(compgen -f -W "register set versions" -- "$cur")) ;;
    datasets) COMPREPLY=($(compgen -W "--tenant --limit --page-token" -- "$cur")) ;;
    token) COMPREPLY=($(compgen -W "new --name --role --tenant --site tenant operator admin data_officer" -- "$cur")) ;;
    completion) COMPREPLY=($(compgen -W "bash zsh man" -- "$cur")) ;;
    jobs) COMPREPLY=($(compgen -W "--state --limit queued placed staging running succeeded failed cancelled lost unschedulable" -- "$cur")) ;;
    audit) COMPREPLY=($(compgen -W "--tenant --job --limit" -- "$cur")) ;;
  esac
}
complete -F _portolan portolan
)BASH";

// Offline: makes a token; the scheduler only ever stores its hash.
int TokenNew(Context& ctx, const Args& a) {
  const char* usage =
      "token new --name N --role tenant|operator|admin|data_officer [--tenant T] [--site S]";
  if (a.args[0] != "new" || !a.has("name") || !a.has("role")) return ctx.Usage(usage);
  v1::Token t;
  t.set_name(a.vm["name"].as<std::string>());
  if (a.has("tenant")) t.set_tenant_id(a.vm["tenant"].as<std::string>());
  for (const std::string& s : a.get<std::vector<std::string>>("site", {})) t.add_sites(s);
  v1::Token::Role role;
  if (!v1::Token::Role_Parse(a.vm["role"].as<std::string>(), &role) ||
      role == v1::Token::role_unspecified) {
    *ctx.err << "portolan: --role must be tenant, operator, admin or data_officer\n";
    return kExitUsage;
  }
  t.set_role(role);
  const std::string secret = auth::NewToken();
  t.set_sha256(auth::Sha256Hex(secret));
  *ctx.out << "token (give it to " << t.name() << "; it is not stored anywhere): " << secret
           << "\n";
  *ctx.out << "tokens-file entry:\n  - " << codec::ToJson(t) << "\n";
  return kExitOk;
}

// The CLI's version, then the server's (GET /healthz, which needs no token).
int Version(Context& ctx, const Args&) {
  *ctx.out << "client: portolan " << PORTOLAN_VERSION << "\n";
  std::string body;
  auto code = ctx.client().Raw("GET", "/healthz", "", &body);
  if (!code.ok()) return ctx.Report(code.status());
  v1::HealthResponse h;
  if (*code != 200 || !codec::ParseJson(body, &h).ok()) {
    *ctx.err << "portolan: " << ctx.connection.server << "/healthz answered " << *code
             << " without a version\n";
    return kExitError;
  }
  *ctx.out << "server: portolan-scheduler " << h.version() << " at " << ctx.connection.server
           << "\n";
  return kExitOk;
}

int Metrics(Context& ctx, const Args&) {
  auto body = ctx.client().Metrics();
  if (!body.ok()) return ctx.Report(body.status());
  *ctx.out << *body;
  return kExitOk;
}

int Completion(Context& ctx, const Args& a) {
  const std::string& what = a.args[0];
  if (what != "bash" && what != "zsh" && what != "man") return ctx.Usage("completion bash|zsh|man");
  const CommandTable table = AllCommands();
  const std::string bash = absl::StrReplaceAll(kBashCompletion, {{"COMMANDS", table.Names()}});
  if (what == "bash") *ctx.out << bash;
  if (what == "zsh") *ctx.out << ZshCompletion(table);
  if (what == "man") *ctx.out << ManualPage(table);
  return kExitOk;
}

}  // namespace

void AddToolCommands(CommandTable& t) {
  t.Add({"token",
         "token new --name N --role tenant|operator|admin|data_officer [--tenant T] [--site S]",
         "token new --name N --role tenant|operator|admin|data_officer [--tenant T] [--site S]...\n"
         "                             print a new random token and its tokens-file entry "
         "(offline)",
         [](po::options_description& d) {
           d.add_options()("name", po::value<std::string>())("role", po::value<std::string>())(
               "tenant", po::value<std::string>())(
               "site", po::value<std::vector<std::string>>()->composing());
         },
         1, 1, false, TokenNew});
  t.Add({"version", "version",
         "version                      this CLI's version and the scheduler's (--version: the "
         "CLI's only)",
         nullptr, 0, 0, false, Version});
  t.Add({"metrics", "metrics",
         "metrics                      the scheduler's Prometheus metrics (admin or operator)",
         nullptr, 0, 0, false, Metrics});
  t.Add({"completion", "completion bash|zsh|man",
         "completion bash|zsh          a shell completion script: source <(portolan completion "
         "bash)\n"
         "completion man               this manual page, portolan(1), in roff",
         nullptr, 1, 1, false, Completion});
}

}  // namespace portolan::cli
