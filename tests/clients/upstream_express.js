// A real Web PubSub upstream built with the official `@azure/web-pubsub-express` handler, for
// the hubmq e2e suite (tests/e2e/upstream.rs). Usage: node upstream_express.js HUB
// Prints {"port":N} once listening, then one JSON line per event it received.
//
// Behaviour is chosen per client by the MQTT client id's prefix, so one server covers every case:
//   acc-*   connect: 200 with userId/groups/roles, a CONNACK user property and a state
//   rej-*   connect: failWith {mqtt:{code: <digits after rej->, reason, userProperties}}
//   s401-*, s500-*  connect: a bare HTTP error (plain text body), not through the SDK
//   slow-*  connect: answers 204 after 5 s
//   other   connect: 204
// User events: `echo` answers the payload back as text, `fail` answers 400 "bad request".
"use strict";
const express = require("express");
const { WebPubSubEventHandler } = require("@azure/web-pubsub-express");

const hub = process.argv[2] || "chat";
const log = (o) => process.stdout.write(JSON.stringify(o) + "\n");
const ctx = (c) => ({
  hub: c.hub,
  connectionId: c.connectionId,
  userId: c.userId,
  signature: c.signature,
  origin: c.origin,
  states: c.states,
  clientProtocol: c.clientProtocol,
  mqtt: c.mqtt,
});

const handler = new WebPubSubEventHandler(hub, {
  path: "/upstream",
  allowedEndpoints: ["http://hubmq.test"],
  handleConnect: (req, res) => {
    const id = req.context.connectionId;
    log({ event: "connect", context: ctx(req.context), claims: req.claims, queries: req.queries,
          headers: req.headers, subprotocols: req.subprotocols, mqtt: req.mqtt,
          clientCertificates: req.clientCertificates });
    if (id.startsWith("acc-")) {
      res.setState("tenant", "t1");
      res.success({
        userId: "up-user",
        groups: ["upg"],
        roles: ["webpubsub.joinLeaveGroup.upg", "webpubsub.sendToGroup.upg"],
        mqtt: { userProperties: [{ name: "region", value: "eu" }] },
      });
    } else if (id.startsWith("rej-")) {
      const code = parseInt(id.slice(4), 10);
      res.failWith({ mqtt: { code, reason: "bad device credentials",
                             userProperties: [{ name: "hint", value: "rotate" }] } });
    } else if (id.startsWith("slow-")) {
      setTimeout(() => res.success(), 5000);
    } else {
      res.success();
    }
  },
  onConnected: (req) => log({ event: "connected", context: ctx(req.context) }),
  onDisconnected: (req) => log({ event: "disconnected", context: ctx(req.context),
                                 reason: req.reason, mqtt: req.mqtt }),
  handleUserEvent: (req, res) => {
    log({ event: "user", name: req.context.eventName, context: ctx(req.context),
          dataType: req.dataType, data: typeof req.data === "string" ? req.data : String(req.data) });
    if (req.context.eventName === "echo") {
      res.success("echo:" + (typeof req.data === "string" ? req.data : Buffer.from(req.data).toString()), "text");
    } else {
      res.fail(400, "bad request");
    }
  },
});

const app = express();
// Bare HTTP errors, bypassing the SDK (which would answer with an MQTT body).
app.use((req, res, next) => {
  const id = req.get("ce-connectionId") || "";
  const m = /^s(\d{3})-/.exec(id);
  if (req.method === "POST" && req.get("ce-eventName") === "connect" && m) {
    log({ event: "connect", bare: Number(m[1]), connectionId: id });
    res.status(Number(m[1])).type("text/plain").send("nope");
    return;
  }
  next();
});
app.use(handler.getMiddleware());
const server = app.listen(0, "127.0.0.1", () => log({ port: server.address().port }));
