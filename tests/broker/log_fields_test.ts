/** What the broker's `log` option is told besides the text: the client, the event and a cluster node's name. */

import assert from "node:assert/strict";
import { test } from "node:test";
import { Broker, type LogFields } from "../../src/broker/broker.ts";
import { connect } from "../../src/client/connect.ts";
import { Cluster } from "../../src/cluster/cluster.ts";
import { MemoryHub } from "../../src/cluster/memory_engine.ts";
import { ReasonCode } from "../../src/errors.ts";
import { sleep } from "../_helpers.ts";

test("log lines carry the client, the event and the cluster node", async () => {
  const lines: [string, LogFields | undefined][] = [];
  const broker = new Broker({
    sysInterval: 0,
    cluster: new Cluster({ engine: new MemoryHub().engine(), node: "n1" }),
    authenticate: (client) => client.clientId === "refused" ? ReasonCode.NotAuthorized : true,
    log: (_level, message, fields) => lines.push([message, fields]),
  });
  const { port } = await broker.listen({ hostname: "127.0.0.1", port: 0 });
  const client = await connect(`mqtt://127.0.0.1:${port}`, { clientId: "fields-1", reconnect: false });
  await client.close();
  await assert.rejects(connect(`mqtt://127.0.0.1:${port}`, { clientId: "refused", reconnect: false }));
  await sleep(50);
  await broker.close();
  const events = lines.filter(([, f]) => f?.client !== undefined).map(([, f]) => `${f?.client} ${f?.event}`);
  assert.deepEqual(events.filter((e) => e.startsWith("fields-1")), [
    "fields-1 connected",
    "fields-1 disconnected",
  ]);
  assert.ok(events.includes("refused refused"), events.join("\n"));
  assert.ok(lines.every(([message, fields]) => fields?.node === "n1" && message.startsWith("[n1] ")));
});
