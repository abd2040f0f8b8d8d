#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Prometheus rules and the Grafana dashboard, checked with Prometheus's own
# tool (promtool, from Debian's prometheus package; deploy/install-deps.sh):
#  1. `promtool check rules` on deploy/prometheus/portolan-rules.yaml;
#  2. `promtool test rules` on tests/prometheus/portolan-rules.test.yaml;
#  3. every query of deploy/grafana/portolan.json parses as PromQL (each is
#     written into a scratch rules file that promtool checks), and every
#     portolan_* metric the rules and the dashboard use is one the daemons
#     export (docs/operations.md's metric tables, which the ops tests hold to
#     the real /metrics).
set -euo pipefail
SRC="$(cd "$(dirname "$0")/../.." && pwd)"
WORK="$(mktemp -d /tmp/portolan-prom.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
fail() { echo "prometheus-check: FAIL: $*" >&2; exit 1; }
command -v promtool >/dev/null || fail "promtool is not installed (deploy/install-deps.sh installs it)"

promtool check rules "$SRC/deploy/prometheus/portolan-rules.yaml" || fail "promtool check rules"
(cd "$SRC/tests/prometheus" && promtool test rules portolan-rules.test.yaml) || fail "promtool test rules"

python3 - "$SRC" "$WORK/dashboard-rules.yaml" <<'PY' || fail "dashboard"
import json, re, sys
src, out = sys.argv[1], sys.argv[2]
dash = json.load(open(f"{src}/deploy/grafana/portolan.json"))
exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
assert exprs, "the dashboard has no queries"
ids = [p["id"] for p in dash["panels"]]
assert len(ids) == len(set(ids)), "panel ids repeat"
# Grafana's variables, replaced by what they stand for.
subst = {"$__rate_interval": "5m", "$scheduler_job": "portolan-scheduler", "$agent_job": "portolan-agent"}
with open(out, "w") as f:
    f.write("groups:\n  - name: dashboard\n    rules:\n")
    for i, e in enumerate(exprs):
        for k, v in subst.items():
            e = e.replace(k, v)
        f.write(f"      - record: dashboard:query{i}\n        expr: {json.dumps(e)}\n")
documented = set(re.findall(r"`(portolan_[a-z_]+)`", open(f"{src}/docs/operations.md").read()))
rules = open(f"{src}/deploy/prometheus/portolan-rules.yaml").read()
used = set(re.findall(r"\b(portolan_[a-z_]+?)(?:_bucket|_sum|_count)?\b", " ".join(exprs) + rules))
missing = sorted(m for m in used if m not in documented)
assert not missing, f"metrics not in docs/operations.md: {missing}"
print(f"prometheus-check: {len(exprs)} dashboard queries, {len(used)} metrics, all documented")
PY
promtool check rules "$WORK/dashboard-rules.yaml" >/dev/null || fail "a dashboard query is not valid PromQL"
echo "prometheus-check: OK"
