#!/usr/bin/env python3
"""Scenario runner built on Eclipse paho-mqtt 2.x, driven by the hubmq e2e tests.

It owns one thing: running a single MQTT scenario (connect / sub / pub / pubsub) against a
broker with an implementation that shares no code with hubmq, and reporting what the broker
answered as ONE JSON object on stdout. A refusal from the broker (CONNACK, SUBACK, PUBACK
failure codes, HTTP 401 on the WebSocket upgrade) is data, not a crash: the exit code is 0
whenever the scenario ran to its end or to its deadline. Exit code 2 means a usage error,
anything else a crash of this script.

The command line is identical to tests/clients/mqttjs_client.js; see --help.

Private paho hooks are overridden or used (the version is pinned in requirements.txt):
  * _handle_connack: paho maps v3.1.1 CONNACK codes onto v5 reason codes and, for some of
    them, swallows the CONNACK without calling on_connect; the tests need the raw byte. The
    v5 CONNACK properties are decoded here too, so a refusal's properties are seen as well.
  * _handle_pubrec: paho ignores a failing PUBREC reason code and sends PUBREL anyway; MQTT 5
    ends the QoS 2 flow there (§4.3.3), and the tests need to see that code.
  * _packet_handle: paho 2.2 has no AUTH support and treats any incoming AUTH packet as a
    protocol error that drops the link; MQTT 5 enhanced authentication (Event Grid's
    OAUTH2-JWT / CUSTOM-JWT re-authentication) needs AUTH recorded and the link kept.
  * _packet_queue / _pack_remaining_length: paho has no call that sends an AUTH packet, so the
    re-authentication AUTH 0x19 is built with paho's own property encoder and queued on paho's
    send path like any other packet.
"""

import argparse
import base64
import json
import os
import ssl
import struct
import sys
import threading
import time
import urllib.parse

try:
    import paho.mqtt.client as mqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties
    from paho.mqtt.reasoncodes import ReasonCode
except ImportError as exc:  # the Rust side turns this into a skip or a failure
    sys.stderr.write(f"paho-mqtt is not installed: {exc}\n")
    sys.exit(3)

USAGE_ERROR = 2


class UsageError(Exception):
    """A command-line mistake: reported on stderr with exit code 2."""


class ProbeClient(mqtt.Client):
    """paho client that keeps the wire-level codes the tests assert on."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.raw_connack = None  # (session_present: bool, code: int)
        self.raw_connack_properties = None  # dict of the v5 CONNACK properties (report form)
        self.auth_packets = []  # report form of each AUTH the server sent

    def _handle_connack(self):
        packet = self._in_packet["packet"]
        if len(packet) >= 2:
            self.raw_connack = (bool(packet[0] & 0x01), packet[1])
        if self._protocol == mqtt.MQTTv5 and len(packet) >= 2:
            props = Properties(PacketTypes.CONNACK)
            if len(packet) > 2:
                try:
                    props.unpack(packet[2:])
                except Exception:  # noqa: BLE001 - paho's decoder raises several kinds
                    # paho's own decoder below fails on it too and reports the protocol error.
                    props = Properties(PacketTypes.CONNACK)
            self.raw_connack_properties = describe_connack_properties(props)
        return super()._handle_connack()

    def _packet_handle(self):
        if self._protocol == mqtt.MQTTv5 and (self._in_packet["command"] & 0xF0) == mqtt.AUTH:
            return self._handle_auth()
        return super()._packet_handle()

    def _handle_auth(self):
        """Record a server AUTH (reason code and method); the exchange itself needs no reply here:
        both Event Grid methods finish in one step, so the server only sends AUTH 0x00."""
        packet = self._in_packet["packet"]
        reason = packet[0] if len(packet) >= 1 else 0x00  # MQTT 5 §3.15.2.1: no byte = Success
        props = Properties(PacketTypes.AUTH)
        if len(packet) > 1:
            try:
                props.unpack(packet[1:])
            except Exception:  # noqa: BLE001 - a malformed AUTH is the server's protocol error
                return mqtt.MQTT_ERR_PROTOCOL
        self.auth_packets.append({
            "reason_code": reason,
            "authentication_method": getattr(props, "AuthenticationMethod", None),
        })
        return mqtt.MQTT_ERR_SUCCESS

    def send_auth(self, reason_code, method, data):
        """Queue an AUTH packet (e.g. 0x19 re-authenticate) with method and data on paho's send
        path; paho 2.2 has no public API for it."""
        props = Properties(PacketTypes.AUTH)
        if method is not None:
            props.AuthenticationMethod = method
        if data is not None:
            props.AuthenticationData = data
        packed = props.pack()
        packet = bytearray([mqtt.AUTH])
        self._pack_remaining_length(packet, 1 + len(packed))
        packet.append(reason_code)
        packet.extend(packed)
        return self._packet_queue(mqtt.AUTH, packet, 0, 0)

    def _handle_pubrec(self):
        packet = self._in_packet["packet"]
        if self._protocol == mqtt.MQTTv5 and len(packet) >= 3 and packet[2] >= 0x80:
            (mid,) = struct.unpack("!H", packet[:2])
            with self._out_message_mutex:
                if mid in self._out_messages:
                    reason = ReasonCode(PacketTypes.PUBREC, identifier=packet[2])
                    return self._do_on_publish(mid, reason, Properties(PacketTypes.PUBREC))
            return mqtt.MQTT_ERR_SUCCESS
        return super()._handle_pubrec()


class Run:
    """State of one scenario, filled by paho callbacks and read by the main thread."""

    def __init__(self, args):
        self.args = args
        self.deadline = time.monotonic() + args.timeout
        self.lock = threading.Lock()
        self.connack = None  # dict once CONNACK arrived
        self.suback = None
        self.acks = {}  # mid -> reason code
        self.messages = []
        self.disconnect = None
        self.server_disconnect = None  # {"reason_code", "reason_string"} of a server DISCONNECT
        self.connack_at = None  # time.monotonic() of a successful CONNACK
        self.reauth_sent = False
        self.lost = False
        self.error = None

    def remaining(self):
        return self.deadline - time.monotonic()

    def note_error(self, text):
        if self.error is None:
            self.error = text


def parse_bool(text):
    lowered = text.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def seconds(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, got {text!r}")
    return value


def check_enhanced_auth(args):
    """Same rules as mqttjs_client.js: enhanced authentication and topic aliases are v5 only."""
    v5_only = [("--auth-method", args.auth_method), ("--auth-data", args.auth_data),
               ("--reauth-data", args.reauth_data), ("--reauth-method", args.reauth_method),
               ("--reauth-after", args.reauth_after),
               ("--topic-alias", getattr(args, "topic_alias", None))]
    for flag, value in v5_only:
        if value is not None and args.protocol != 5:
            raise UsageError(f"{flag} needs --protocol 5")
    if args.auth_data is not None and args.auth_method is None:
        raise UsageError("--auth-data needs --auth-method")
    if (args.reauth_method is not None or args.reauth_after is not None) and args.reauth_data is None:
        raise UsageError("--reauth-method and --reauth-after need --reauth-data")
    if args.reauth_data is not None and args.reauth_method is None and args.auth_method is None:
        raise UsageError("--reauth-data needs --auth-method or --reauth-method")
    alias = getattr(args, "topic_alias", None)
    # 0 and values above the broker's maximum are allowed: tests send them to see the refusal.
    if alias is not None and not 0 <= alias <= 0xFFFF:
        raise UsageError("--topic-alias must be in 0..65535")


def build_parser():
    parser = argparse.ArgumentParser(
        description="paho-mqtt scenario runner for the hubmq e2e tests (prints one JSON object)"
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", required=True,
                        help="ws://host:port/path?query, wss://..., mqtt://host:port or mqtts://host:port")
    common.add_argument("--protocol", type=int, choices=(4, 5), default=4, help="4 = v3.1.1, 5 = v5")
    common.add_argument("--client-id", default=None, help="default: random; '' sends an empty id")
    common.add_argument("--clean", type=parse_bool, default=True, help="clean session / clean start")
    common.add_argument("--username", default=None)
    common.add_argument("--password", default=None)
    common.add_argument("--header", action="append", default=[],
                        help="'Name: value' added to the WebSocket upgrade request (repeatable)")
    common.add_argument("--keepalive", type=int, default=30)
    common.add_argument("--session-expiry", type=int, default=None, help="v5 Session Expiry Interval")
    common.add_argument("--timeout", type=float, default=10.0, help="bound on the whole run, seconds")
    common.add_argument("--ca-file", default=None, help="CA bundle for wss:// or mqtts://")
    common.add_argument("--cert-file", default=None, help="client certificate (PEM) for mutual TLS")
    common.add_argument("--key-file", default=None, help="private key (PEM) of --cert-file")
    common.add_argument("--hold", type=seconds, default=0.0, metavar="S",
                        help="after the scenario's work, stay connected S more seconds (keep-alive "
                             "pings go on) unless the server disconnects; --timeout still bounds it")
    auth = common.add_argument_group(
        "v5 enhanced authentication (Event Grid OAUTH2-JWT / CUSTOM-JWT; needs --protocol 5)")
    auth.add_argument("--auth-method", default=None, metavar="M", help="CONNECT Authentication Method")
    auth.add_argument("--auth-data", default=None, metavar="TEXT",
                      help="CONNECT Authentication Data (the UTF-8 bytes of TEXT; needs --auth-method)")
    auth.add_argument("--reauth-data", default=None, metavar="TEXT",
                      help="send one AUTH 0x19 (re-authenticate) carrying this Authentication Data")
    auth.add_argument("--reauth-method", default=None, metavar="M",
                      help="Authentication Method of that AUTH (default: --auth-method)")
    auth.add_argument("--reauth-after", type=seconds, default=None, metavar="S",
                      help="seconds after a successful CONNACK to send it (default 0); it is sent "
                           "only while the link is open, so cover it with --hold")

    subs = parser.add_subparsers(dest="command", required=True)
    subs.add_parser("connect", parents=[common], help="connect, report the CONNACK, disconnect")

    def add_sub_flags(p):
        p.add_argument("--topic", action="append", required=True, help="topic filter (repeatable)")
        p.add_argument("--qos", type=int, choices=(0, 1, 2), default=0)
        p.add_argument("--count", type=int, default=1, help="messages to collect")

    def add_pub_flags(p, topic_required):
        if topic_required:
            p.add_argument("--topic", action="append", required=True,
                           help="topic to publish to (the first one is used)")
            p.add_argument("--qos", type=int, choices=(0, 1, 2), default=0)
            p.add_argument("--count", type=int, default=1, help="messages to publish")
        p.add_argument("--message", default="hello",
                       help="payload text; '{i}' is replaced by the 0-based message index")
        p.add_argument("--retain", action="store_true")
        p.add_argument("--user-property", action="append", default=[], help="k=v (repeatable, v5)")
        p.add_argument("--content-type", default=None)
        p.add_argument("--correlation-data", default=None, help="UTF-8 text sent as bytes")
        p.add_argument("--response-topic", default=None)
        p.add_argument("--payload-format", type=int, choices=(0, 1), default=None)
        p.add_argument("--message-expiry", type=int, default=None)
        p.add_argument("--topic-alias", type=int, default=None, metavar="N",
                       help="v5: the first PUBLISH carries the topic and Topic Alias N, the later "
                            "ones an empty topic and the alias only (no local range check)")

    add_sub_flags(subs.add_parser("sub", parents=[common], help="subscribe and collect messages"))
    add_pub_flags(subs.add_parser("pub", parents=[common], help="publish and collect the acks"), True)
    pubsub = subs.add_parser("pubsub", parents=[common],
                             help="subscribe, publish to the first topic, collect the echo")
    add_sub_flags(pubsub)
    add_pub_flags(pubsub, False)
    return parser


def parse_headers(raw):
    headers = {}
    for item in raw:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise UsageError(f"--header must look like 'Name: value', got {item!r}")
        headers[name.strip()] = value.strip()
    return headers


def make_client(args, run):
    url = urllib.parse.urlsplit(args.url)
    scheme = url.scheme.lower()
    if scheme in ("ws", "wss"):
        transport = "websockets"
    elif scheme in ("mqtt", "tcp", "mqtts", "ssl"):
        transport = "tcp"
    else:
        raise UsageError(f"unsupported URL scheme {url.scheme!r}")
    if url.hostname is None:
        raise UsageError(f"URL without a host: {args.url!r}")
    tls = scheme in ("wss", "mqtts", "ssl")
    port = url.port or {"ws": 80, "wss": 443, "mqtt": 1883, "tcp": 1883}.get(scheme, 8883)
    headers = parse_headers(args.header)
    if headers and transport != "websockets":
        raise UsageError("--header only applies to ws:// and wss:// URLs")

    client_id = args.client_id
    if client_id is None:
        client_id = "paho-" + os.urandom(6).hex()
    protocol = mqtt.MQTTv5 if args.protocol == 5 else mqtt.MQTTv311
    kwargs = dict(
        callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=protocol,
        transport=transport,
        reconnect_on_failure=False,
    )
    if protocol == mqtt.MQTTv311:
        kwargs["clean_session"] = args.clean
    client = ProbeClient(**kwargs)
    # Callbacks raise into the loop instead of being logged away: a bug here must crash.
    client.suppress_exceptions = False
    client.connect_timeout = max(0.1, min(run.remaining(), 10.0))
    if transport == "websockets":
        path = url.path or "/"
        if url.query:
            path += "?" + url.query
        client.ws_set_options(path=path, headers=headers or None)
    if tls:
        context = ssl.create_default_context(cafile=args.ca_file)
        if args.cert_file:
            context.load_cert_chain(certfile=args.cert_file, keyfile=args.key_file)
        client.tls_set_context(context)
    if args.username is not None or args.password is not None:
        client.username_pw_set(args.username, args.password)
    return client, url.hostname, port


# CONNACK property names as the tests see them (paho attribute -> report key); the same keys as
# mqttjs_client.js reports.
CONNACK_PROPERTIES = [
    ("SessionExpiryInterval", "session_expiry_interval"),
    ("AssignedClientIdentifier", "assigned_client_identifier"),
    ("ServerKeepAlive", "server_keep_alive"),
    ("AuthenticationMethod", "authentication_method"),
    ("ResponseInformation", "response_information"),
    ("ServerReference", "server_reference"),
    ("ReasonString", "reason_string"),
    ("ReceiveMaximum", "receive_maximum"),
    ("TopicAliasMaximum", "topic_alias_maximum"),
    ("MaximumQoS", "maximum_qos"),
    ("RetainAvailable", "retain_available"),
    ("MaximumPacketSize", "maximum_packet_size"),
    ("WildcardSubscriptionAvailable", "wildcard_subscription_available"),
    ("SubscriptionIdentifierAvailable", "subscription_identifiers_available"),
    ("SharedSubscriptionAvailable", "shared_subscription_available"),
]


def describe_connack_properties(props):
    out = {}
    for attr, key in CONNACK_PROPERTIES:
        value = getattr(props, attr, None)
        if value is not None:
            out[key] = value
    data = getattr(props, "AuthenticationData", None)
    if data is not None:
        out["authentication_data_b64"] = base64.b64encode(data).decode("ascii")
    user_props = getattr(props, "UserProperty", None)
    if user_props is not None:
        out["user_properties"] = [[k, v] for (k, v) in user_props]
    return out


def install_callbacks(client, run):
    def on_connect(_client, _userdata, flags, reason_code, properties):
        assigned = getattr(properties, "AssignedClientIdentifier", None) if properties else None
        with run.lock:
            if not reason_code.is_failure:
                run.connack_at = time.monotonic()
            raw = client.raw_connack
            run.connack = {
                "session_present": raw[0] if raw else bool(flags.session_present),
                "reason_code": raw[1] if raw else reason_code.value,
                "assigned_client_id": assigned,
            }

    def on_disconnect(_client, _userdata, flags, reason_code, properties):
        with run.lock:
            run.lost = True
            if flags.is_disconnect_packet_from_server:
                run.disconnect = {"reason_code": reason_code.value}
                run.server_disconnect = {
                    "reason_code": reason_code.value,
                    "reason_string": getattr(properties, "ReasonString", None) if properties else None,
                }

    def on_subscribe(_client, _userdata, _mid, reason_codes, _properties):
        codes = [rc.value for rc in reason_codes]
        with run.lock:
            run.suback = codes
        # The Rust test waits for this line before it publishes.
        sys.stderr.write(json.dumps({"suback": codes, "ready": True}) + "\n")
        sys.stderr.flush()

    def on_publish(_client, _userdata, mid, reason_code, _properties):
        with run.lock:
            run.acks[mid] = reason_code.value

    def on_message(_client, _userdata, message):
        with run.lock:
            run.messages.append(describe_message(message))

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    client.on_subscribe = on_subscribe
    client.on_publish = on_publish
    client.on_message = on_message


def describe_message(message):
    props = getattr(message, "properties", None)

    def prop(name):
        return getattr(props, name, None) if props is not None else None

    correlation = prop("CorrelationData")
    user_props = prop("UserProperty") or []
    return {
        "topic": message.topic,
        "payload_b64": base64.b64encode(message.payload).decode("ascii"),
        "qos": message.qos,
        "retain": bool(message.retain),
        "properties": {
            "user_properties": [[k, v] for (k, v) in user_props],
            "content_type": prop("ContentType"),
            "correlation_data_b64":
                base64.b64encode(correlation).decode("ascii") if correlation is not None else None,
            "response_topic": prop("ResponseTopic"),
            "payload_format": prop("PayloadFormatIndicator"),
            "message_expiry": prop("MessageExpiryInterval"),
        },
    }


def maybe_reauth(client, run):
    """Send the one AUTH 0x19 of --reauth-data once --reauth-after seconds passed since CONNACK."""
    args = run.args
    with run.lock:
        due = (args.reauth_data is not None and not run.reauth_sent and not run.lost
               and run.connack_at is not None
               and time.monotonic() >= run.connack_at + (args.reauth_after or 0.0))
        if due:
            run.reauth_sent = True
    if not due:
        return
    rc = client.send_auth(0x19, args.reauth_method or args.auth_method,
                          args.reauth_data.encode("utf-8"))
    if rc != mqtt.MQTT_ERR_SUCCESS:
        with run.lock:
            run.note_error(f"re-authentication AUTH not sent: {mqtt.error_string(rc)}")


def pump(client, run, done):
    """Run the paho network loop until done() holds, the link drops or the deadline passes.
    A due re-authentication is sent from here, whatever phase the scenario is in."""
    while True:
        with run.lock:
            if done() or run.lost:
                return
        remaining = run.remaining()
        if remaining <= 0:
            return
        maybe_reauth(client, run)
        rc = client.loop(timeout=min(0.05, remaining))
        if rc != mqtt.MQTT_ERR_SUCCESS:
            with run.lock:
                run.lost = True
                if run.connack is None and client.raw_connack is not None:
                    # paho swallowed a refusing CONNACK without calling on_connect.
                    run.connack = {
                        "session_present": client.raw_connack[0],
                        "reason_code": client.raw_connack[1],
                        "assigned_client_id": None,
                    }
                if run.connack is None:
                    run.note_error(f"connection lost before CONNACK: {mqtt.error_string(rc)}")
            return


def connect(client, host, port, args, run):
    """Open the link and wait for CONNACK; returns the `connect` report object."""
    props = None
    if args.protocol == 5 and (args.session_expiry is not None or args.auth_method is not None):
        props = Properties(PacketTypes.CONNECT)
        if args.session_expiry is not None:
            props.SessionExpiryInterval = args.session_expiry
        if args.auth_method is not None:
            props.AuthenticationMethod = args.auth_method
        if args.auth_data is not None:
            props.AuthenticationData = args.auth_data.encode("utf-8")
    kwargs = {"keepalive": args.keepalive}
    if args.protocol == 5:
        kwargs["clean_start"] = args.clean
        kwargs["properties"] = props
    try:
        client.connect(host, port, **kwargs)
    except mqtt.WebsocketConnectionError as exc:
        # paho reads the HTTP status line but does not expose it; only the failure shows.
        run.note_error(f"websocket upgrade refused: {exc}")
    except (OSError, ValueError) as exc:
        run.note_error(f"{type(exc).__name__}: {exc}")
    else:
        pump(client, run, lambda: run.connack is not None)
        if run.connack is None:
            run.note_error("timeout waiting for CONNACK")
    with run.lock:
        connack = run.connack
        connected = connack is not None and connack["reason_code"] == 0 and not run.lost
        return {
            "connected": connected,
            "reason_code": connack["reason_code"] if connack else None,
            "session_present": connack["session_present"] if connack else None,
            "assigned_client_id": connack["assigned_client_id"] if connack else None,
            "error": run.error if not connected else None,
        }


def subscribe(client, args, run):
    if args.protocol == 5:
        topics = [(t, mqtt.SubscribeOptions(qos=args.qos)) for t in args.topic]
    else:
        topics = [(t, args.qos) for t in args.topic]
    rc, _mid = client.subscribe(topics)
    if rc != mqtt.MQTT_ERR_SUCCESS:
        run.note_error(f"subscribe failed: {mqtt.error_string(rc)}")
        return
    pump(client, run, lambda: run.suback is not None)
    if run.suback is None:
        run.note_error("no SUBACK before the deadline or the link closed")


def publish_properties(args):
    if args.protocol != 5:
        return None
    props = Properties(PacketTypes.PUBLISH)
    any_set = False
    for item in args.user_property:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--user-property must look like k=v, got {item!r}")
        props.UserProperty = (key, value)  # paho appends on each assignment
        any_set = True
    if args.content_type is not None:
        props.ContentType = args.content_type
        any_set = True
    if args.correlation_data is not None:
        props.CorrelationData = args.correlation_data.encode("utf-8")
        any_set = True
    if args.response_topic is not None:
        props.ResponseTopic = args.response_topic
        any_set = True
    if args.payload_format is not None:
        props.PayloadFormatIndicator = args.payload_format
        any_set = True
    if args.message_expiry is not None:
        props.MessageExpiryInterval = args.message_expiry
        any_set = True
    if args.topic_alias is not None:
        # paho's property setter refuses alias 0, which the tests send on purpose (the broker
        # must answer DISCONNECT 0x94); set the attribute past that check, pack() encodes it.
        object.__setattr__(props, "TopicAlias", args.topic_alias)
        any_set = True
    return props if any_set else None


def publish_all(client, args, run, count):
    """Publish one message at a time and wait for its ack; returns the list of ack codes."""
    props = publish_properties(args)
    topic = args.topic[0]
    acks = []
    for i in range(count):
        payload = args.message.replace("{i}", str(i)).encode("utf-8")
        # With an alias, only the first PUBLISH names the topic; the rest rely on the alias
        # (paho 2.2 sends both as given and does no alias bookkeeping of its own).
        if args.topic_alias is not None and i > 0:
            topic = ""
        info = client.publish(topic, payload, qos=args.qos, retain=args.retain, properties=props)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            run.note_error(f"publish {i} failed: {mqtt.error_string(info.rc)}")
            break
        pump(client, run, lambda: info.mid in run.acks)
        with run.lock:
            code = run.acks.get(info.mid)
        if code is None:
            run.note_error(f"no acknowledgement for message {i} before the deadline or the link closed")
            break
        acks.append(code)
    return acks


def hold(client, run):
    """--hold: stay connected after the scenario's work until the time is up or the link drops."""
    if run.args.hold <= 0:
        return
    until = time.monotonic() + run.args.hold
    pump(client, run, lambda: time.monotonic() >= until)


def close(client, run):
    with run.lock:
        lost = run.lost
    if not lost:
        try:
            client.disconnect()
            client.loop(timeout=0.05)
        except OSError:
            pass


def main(argv):
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "count", 1) < 0:
        parser.error("--count must be >= 0")
    try:
        check_enhanced_auth(args)
    except UsageError as exc:
        parser.error(str(exc))
    run = Run(args)
    try:
        client, host, port = make_client(args, run)
        if args.command in ("pub", "pubsub"):
            publish_properties(args)  # validate flags before touching the network
    except UsageError as exc:
        parser.error(str(exc))
    install_callbacks(client, run)

    conn = connect(client, host, port, args, run)
    if args.command == "connect":
        result = dict(conn)
    else:
        result = {"connect": conn}
    if args.command != "connect" and conn["connected"]:
        if args.command in ("sub", "pubsub"):
            subscribe(client, args, run)
        if args.command in ("pub", "pubsub") and (args.command == "pub" or run.suback is not None):
            result["acks"] = publish_all(client, args, run, args.count)
        if args.command in ("sub", "pubsub") and run.suback is not None:
            pump(client, run, lambda: len(run.messages) >= args.count)
    if conn["connected"]:
        hold(client, run)
    close(client, run)

    with run.lock:
        if args.command in ("sub", "pubsub"):
            result["suback"] = run.suback
            result["messages"] = list(run.messages)
            result["disconnect"] = run.disconnect
        if args.command in ("pub", "pubsub"):
            result.setdefault("acks", [])
            result["disconnect"] = run.disconnect
        if args.command != "connect":
            result["error"] = run.error
        # Keys every subcommand reports (v5 enhanced authentication and CONNACK properties).
        result["auth_packets"] = list(client.auth_packets)
        result["server_disconnect"] = run.server_disconnect
        result["connack_properties"] = client.raw_connack_properties
        result["reauth_sent"] = run.reauth_sent
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
