#!/usr/bin/env python3
"""One Web PubSub server-SDK operation through the official Python SDK
(azure-messaging-webpubsubservice), driven by the hubmq e2e tests (tests/e2e/rest.rs).

    python3 sdk_py.py CONNECTION_STRING HUB OPERATION [JSON_ARGS]   (JSON_ARGS "-" or absent: stdin)

Prints one JSON line: {"ok": true, "result": ...} or {"ok": false, "status": N, "error": "..."}.
Message payloads: args "json" (any JSON value, sent as application/json), "text" (text/plain)
or "hex" (bytes as application/octet-stream).
"""

import io
import json
import sys

from azure.core.exceptions import HttpResponseError
from azure.core.rest import HttpRequest
from azure.messaging.webpubsubservice import WebPubSubServiceClient
from azure.messaging.webpubsubservice._operations._operations import (
    WebPubSubServiceClientOperationsMixin as Generated,
)


def payload(a):
    if "json" in a:
        return a["json"], "application/json"
    if "text" in a:
        return a["text"], "text/plain"
    return io.BytesIO(bytes.fromhex(a["hex"])), "application/octet-stream"


def send_kwargs(a):
    kw = {}
    for src, dst in (("excluded", "excluded"), ("filter", "filter"), ("ttl", "message_ttl_seconds")):
        if src in a:
            kw[dst] = a[src]
    return kw


def run(c, op, a):
    if op == "token":
        kw = dict(user_id=a.get("user"), roles=a.get("roles"), groups=a.get("groups"),
                  client_protocol="MQTT")
        if a.get("server"):
            # The SDK only calls :generateToken without a key; call that operation directly.
            tok = Generated.get_client_access_token(c, **kw)["token"]
            return {"token": tok}
        return c.get_client_access_token(**kw)
    if op == "send_all":
        msg, ct = payload(a)
        return c.send_to_all(msg, content_type=ct, **send_kwargs(a))
    if op == "send_user":
        msg, ct = payload(a)
        return c.send_to_user(a["user"], msg, content_type=ct, **send_kwargs(a))
    if op == "send_group":
        msg, ct = payload(a)
        return c.send_to_group(a["group"], msg, content_type=ct, **send_kwargs(a))
    if op == "send_connection":
        msg, ct = payload(a)
        return c.send_to_connection(a["conn"], msg, content_type=ct, **send_kwargs(a))
    if op == "close_all":
        return c.close_all_connections(excluded=a.get("excluded"), reason=a.get("reason"))
    if op == "close_connection":
        return c.close_connection(a["conn"], reason=a.get("reason"))
    if op == "close_user":
        return c.close_user_connections(a["user"], excluded=a.get("excluded"), reason=a.get("reason"))
    if op == "close_group":
        return c.close_group_connections(a["group"], excluded=a.get("excluded"), reason=a.get("reason"))
    if op == "connection_exists":
        return c.connection_exists(a["conn"])
    if op == "user_exists":
        return c.user_exists(a["user"])
    if op == "group_exists":
        return c.group_exists(a["group"])
    if op == "add_connection_to_group":
        return c.add_connection_to_group(a["group"], a["conn"])
    if op == "remove_connection_from_group":
        return c.remove_connection_from_group(a["group"], a["conn"])
    if op == "remove_connection_from_all_groups":
        return c.remove_connection_from_all_groups(a["conn"])
    if op == "add_user_to_group":
        return c.add_user_to_group(a["group"], a["user"])
    if op == "remove_user_from_group":
        return c.remove_user_from_group(a["group"], a["user"])
    if op == "remove_user_from_all_groups":
        return c.remove_user_from_all_groups(a["user"])
    if op in ("grant_permission", "revoke_permission", "has_permission"):
        return getattr(c, op)(a["permission"], a["conn"], target_name=a.get("target"))
    if op == "list_connections":
        return [{"connectionId": m.connection_id, "userId": m.user_id}
                for m in c.list_connections(group=a["group"], top=a.get("top"))]
    if op in ("add_to_groups", "remove_from_groups"):
        # Not wrapped by this SDK version: the same request through its pipeline (signed the same).
        verb = ":addToGroups" if op == "add_to_groups" else ":removeFromGroups"
        req = HttpRequest("POST", "/api/hubs/{}/{}".format(c._config.hub, verb),
                          params={"api-version": "2024-12-01"},
                          json={"groups": a["groups"], "filter": a["filter"]})
        resp = c.send_request(req)
        resp.raise_for_status()
        return resp.status_code
    raise SystemExit("unknown operation " + op)


def main():
    conn, hub, op = sys.argv[1], sys.argv[2], sys.argv[3]
    raw = sys.argv[4] if len(sys.argv) > 4 else "-"
    # Large payloads come on stdin: a command-line argument is limited in size.
    args = json.loads(sys.stdin.read() if raw == "-" else raw)
    client = WebPubSubServiceClient.from_connection_string(conn, hub=hub)
    try:
        result = run(client, op, args)
        print(json.dumps({"ok": True, "result": result}))
    except HttpResponseError as e:
        print(json.dumps({"ok": False, "status": e.status_code, "error": str(e)}))


if __name__ == "__main__":
    main()
