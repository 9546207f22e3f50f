#!/usr/bin/env node
// One Web PubSub server-SDK operation through the official JS SDK (@azure/web-pubsub), driven
// by the hubmq e2e tests (tests/e2e/rest.rs), with the same operation names and arguments as
// sdk_py.py.
//
//   node sdk_js.js CONNECTION_STRING HUB OPERATION [JSON_ARGS]   (JSON_ARGS "-" or absent: stdin)
//
// Prints one JSON line: {"ok": true, "result": ...} or {"ok": false, "status": N, "error": "..."}.
// Payloads: "json" (any JSON value: the SDK sends JSON.stringify of it), "text" (text/plain),
// "hex" (a Buffer: application/octet-stream).
"use strict";

const { WebPubSubServiceClient } = require("@azure/web-pubsub");

function payload(a) {
  if ("json" in a) return [a.json, {}];
  if ("text" in a) return [a.text, { contentType: "text/plain" }];
  return [Buffer.from(a.hex, "hex"), {}];
}

function sendOpts(a, base) {
  const o = { ...base };
  if (a.excluded) o.excludedConnections = a.excluded;
  if (a.filter !== undefined) o.filter = a.filter;
  if (a.ttl !== undefined) o.messageTtlSeconds = a.ttl;
  return o;
}

async function run(c, op, a) {
  switch (op) {
    case "token":
      return c.getClientAccessToken({
        userId: a.user,
        roles: a.roles,
        groups: a.groups,
        clientProtocol: "mqtt",
      });
    case "send_all": {
      const [m, o] = payload(a);
      return c.sendToAll(m, sendOpts(a, o));
    }
    case "send_user": {
      const [m, o] = payload(a);
      return c.sendToUser(a.user, m, sendOpts(a, o));
    }
    case "send_group": {
      const [m, o] = payload(a);
      return c.group(a.group).sendToAll(m, sendOpts(a, o));
    }
    case "send_connection": {
      const [m, o] = payload(a);
      return c.sendToConnection(a.conn, m, sendOpts(a, o));
    }
    case "close_all":
      return c.closeAllConnections({ reason: a.reason, excluded: a.excluded });
    case "close_connection":
      return c.closeConnection(a.conn, { reason: a.reason });
    case "close_user":
      return c.closeUserConnections(a.user, { reason: a.reason, excluded: a.excluded });
    case "close_group":
      return c.group(a.group).closeAllConnections({ reason: a.reason, excluded: a.excluded });
    case "connection_exists":
      return c.connectionExists(a.conn);
    case "user_exists":
      return c.userExists(a.user);
    case "group_exists":
      return c.groupExists(a.group);
    case "add_connection_to_group":
      return c.group(a.group).addConnection(a.conn);
    case "remove_connection_from_group":
      return c.group(a.group).removeConnection(a.conn);
    case "remove_connection_from_all_groups":
      return c.removeConnectionFromAllGroups(a.conn);
    case "add_user_to_group":
      return c.group(a.group).addUser(a.user);
    case "remove_user_from_group":
      return c.group(a.group).removeUser(a.user);
    case "remove_user_from_all_groups":
      return c.removeUserFromAllGroups(a.user);
    case "grant_permission":
      return c.grantPermission(a.conn, a.permission, { targetName: a.target });
    case "revoke_permission":
      return c.revokePermission(a.conn, a.permission, { targetName: a.target });
    case "has_permission":
      return c.hasPermission(a.conn, a.permission, { targetName: a.target });
    case "add_to_groups":
      return c.addConnectionsToGroups(a.groups, a.filter);
    case "remove_from_groups":
      return c.removeConnectionsFromGroups(a.groups, a.filter);
    case "list_connections": {
      const out = [];
      const it = await c.group(a.group).listConnections({ top: a.top });
      for await (const m of it) out.push({ connectionId: m.connectionId, userId: m.userId ?? null });
      return out;
    }
    default:
      throw new Error(`unknown operation ${op}`);
  }
}

async function main() {
  const [conn, hub, op, raw] = process.argv.slice(2);
  // Large payloads come on stdin: a command-line argument is limited in size.
  const args = JSON.parse(raw && raw !== "-" ? raw : require("fs").readFileSync(0, "utf8"));
  // hubmq is often served over plain http (tests, loopback); the SDK refuses that by default.
  const client = new WebPubSubServiceClient(conn, hub, { allowInsecureConnection: true });
  try {
    const result = await run(client, op, args);
    console.log(JSON.stringify({ ok: true, result: result === undefined ? null : result }));
  } catch (e) {
    if (e && e.statusCode !== undefined) {
      console.log(JSON.stringify({ ok: false, status: e.statusCode, error: String(e.message) }));
    } else {
      throw e;
    }
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
