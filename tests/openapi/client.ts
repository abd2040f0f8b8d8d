// SPDX-License-Identifier: Apache-2.0
// A client generated from api/openapi.yaml in another language: TypeScript
// types by openapi-typescript, calls by openapi-fetch. OpenApiIT type-checks
// it against the generated types (tsc --strict) and runs it against a real
// scheduler: submit, get, plan, cancel. It prints one JSON line of what it
// saw and exits 1 naming the first thing that differs from the document.
import createClient from "openapi-fetch";
import type { components, paths } from "./schema.js";

type Job = components["schemas"]["Job"];

const base = process.env.PORTOLAN_URL ?? "http://127.0.0.1:7080";
const token = process.env.PORTOLAN_TOKEN ?? "";
const api = createClient<paths>({ baseUrl: base, headers: { Authorization: `Bearer ${token}` } });

function check(ok: unknown, what: string): asserts ok {
  if (!ok) {
    console.error(`client: ${what}`);
    process.exit(1);
  }
}

const spec: Job = {
  name: "ts-client",
  tenant: "acme",
  command: ["/bin/sleep", "30"],
  resources: { cpus: 1, memory_mb: 64 },
};

const submitted = await api.POST("/v1/jobs", { body: spec });
check(submitted.response.status === 201, `submit answered ${submitted.response.status}`);
const id = submitted.data?.id;
check(typeof id === "string" && id.startsWith("job-"), `submit gave id ${id}`);

const got = await api.GET("/v1/jobs/{id}", { params: { path: { id } } });
check(got.response.status === 200 && got.data?.name === "ts-client", `get: ${got.response.status}`);

const plan = await api.POST("/v1/plan", { body: spec });
check(plan.response.status === 200, `plan answered ${plan.response.status}`);

const missing = await api.GET("/v1/jobs/{id}", { params: { path: { id: "job-000000000000" } } });
check(missing.response.status === 404 && missing.error?.error?.code === "not_found",
      `a missing job: ${missing.response.status} ${JSON.stringify(missing.error)}`);

const cancelled = await api.DELETE("/v1/jobs/{id}", { params: { path: { id } } });
check([200, 202].includes(cancelled.response.status), `cancel answered ${cancelled.response.status}`);
let state: string | undefined;
for (let i = 0; i < 100 && state !== "cancelled"; ++i) {
  const j = await api.GET("/v1/jobs/{id}", { params: { path: { id } } });
  state = j.data?.state;
  if (state !== "cancelled") await new Promise((r) => setTimeout(r, 100));
}
check(state === "cancelled", `the job ended ${state}`);
console.log(JSON.stringify({ id, planned: plan.data !== undefined, state }));
