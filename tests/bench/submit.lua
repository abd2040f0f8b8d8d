-- SPDX-License-Identifier: Apache-2.0
-- wrk script for tests/bench/rest_wrk.sh: every request is one durable job
-- submit (POST /v1/jobs; a 201 means the job is committed to SQLite).
-- The jobs are pinned to a site without agents, so they stay queued and the
-- figure is the submit path alone. Token from $PORTOLAN_TOKEN.
local token = os.getenv("PORTOLAN_TOKEN") or ""
wrk.method = "POST"
wrk.path = "/v1/jobs"
wrk.body = '{"tenant":"bench","command":["/bin/true"],"resources":{"cpus":1,"memory_mb":16},' ..
           '"placement":{"sites":["london-1"]}}'
wrk.headers["Content-Type"] = "application/json"
if token ~= "" then wrk.headers["Authorization"] = "Bearer " .. token end

-- Status codes per thread; wrk's own summary counts only non-2xx/3xx.
local counts = {}
local threads = {}
function setup(thread)
  table.insert(threads, thread)
end
function init(args)
  created = 0
  other = 0
end
function response(status, headers, body)
  if status == 201 then created = created + 1 else other = other + 1 end
end
function done(summary, latency, requests)
  local ok, bad = 0, 0
  for _, t in ipairs(threads) do
    ok = ok + t:get("created")
    bad = bad + t:get("other")
  end
  local secs = summary.duration / 1e6
  io.write(string.format(
    '{"bench":"rest_wrk","connections":%d,"seconds":%.1f,"acknowledged":%d,"not_201":%d,' ..
    '"socket_errors":%d,"submits_per_s":%.0f,"p50_ms":%.2f,"p90_ms":%.2f,"p99_ms":%.2f,"max_ms":%.2f}\n',
    tonumber(os.getenv("WRK_CONNECTIONS") or "0"), secs, ok, bad,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    ok / secs, latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
end
