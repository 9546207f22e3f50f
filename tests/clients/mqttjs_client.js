#!/usr/bin/env node
// Scenario runner built on MQTT.js 5.x, driven by the hubmq e2e tests.
//
// It owns one thing: running a single MQTT scenario (connect / sub / pub / pubsub) against a
// broker with an implementation that shares no code with hubmq, and reporting what the broker
// answered as ONE JSON object on stdout. A refusal from the broker (CONNACK, SUBACK, PUBACK
// failure codes, HTTP 401 on the WebSocket upgrade) is data, not a crash: the exit code is 0
// whenever the scenario ran to its end or to its deadline. Exit code 2 means a usage error,
// anything else a crash of this script.
//
// The command line is identical to tests/clients/paho_client.py; run with --help.
//
// Wire-level codes are read from the 'packetreceive' event rather than from MQTT.js callbacks:
// the callbacks turn failure codes into Error objects and report success without the ack's
// reason code, and the tests assert on the exact bytes the broker sent.
//
// MQTT 5 enhanced authentication (Event Grid's OAUTH2-JWT / CUSTOM-JWT): MQTT.js sends the
// CONNECT's Authentication Method / Data from `properties`, and checks and swallows AUTH packets
// from the server, but has no public call that sends an AUTH on an open connection. Re-auth goes
// through the client's internal `_sendPacket`, the same path MQTT.js's own AUTH handler uses to
// answer an AUTH 0x18 (mqtt 5.16.0, pinned in package.json).
'use strict';

const crypto = require('crypto');
const fs = require('fs');

let mqtt;
try {
  mqtt = require('mqtt');
} catch (err) {
  // The Rust side turns this exit code into a skip or a failure.
  process.stderr.write(`mqtt (MQTT.js) is not installed: ${err.message}\n`);
  process.exit(3);
}

const USAGE_ERROR = 2;

const HELP = `usage: mqttjs_client.js {connect,sub,pub,pubsub} --url URL [options]

common options:
  --url URL               ws://host:port/path?query, wss://..., mqtt://host:port, mqtts://...
  --protocol 4|5          4 = v3.1.1 (default), 5 = v5
  --client-id ID          default: random; '' sends an empty id
  --clean true|false      clean session / clean start (default true)
  --username U, --password P
  --header 'Name: value'  added to the WebSocket upgrade request (repeatable)
  --keepalive N           seconds (default 30)
  --session-expiry N      v5 Session Expiry Interval
  --timeout S             bound on the whole run, seconds (default 10)
  --ca-file PATH          CA bundle for wss:// or mqtts://
  --hold S                after the scenario's work, stay connected S more seconds (keep-alive
                          pings go on) unless the server disconnects; --timeout still bounds it
v5 enhanced authentication (Event Grid OAUTH2-JWT / CUSTOM-JWT; needs --protocol 5):
  --auth-method M         CONNECT Authentication Method
  --auth-data TEXT        CONNECT Authentication Data (the UTF-8 bytes of TEXT; needs --auth-method)
  --reauth-data TEXT      send one AUTH 0x19 (re-authenticate) carrying this Authentication Data
  --reauth-method M       Authentication Method of that AUTH (default: --auth-method)
  --reauth-after S        seconds after a successful CONNACK to send it (default 0); it is sent
                          only while the link is open, so cover it with --hold
sub / pubsub:
  --topic T (repeatable, required), --qos 0|1|2, --count N (messages to collect, default 1)
pub / pubsub:
  --message TEXT ('{i}' -> 0-based index), --retain, --user-property k=v (repeatable),
  --content-type CT, --correlation-data TEXT, --response-topic RT, --payload-format 0|1,
  --message-expiry N
  --topic-alias N         v5: the first PUBLISH carries the topic and Topic Alias N, the later ones
                          an empty topic and the alias only (no local range check: the broker judges)
pub: --topic T (first one used), --qos 0|1|2, --count N (messages to publish, default 1)
pubsub publishes --count messages to the first --topic and collects --count messages.
`;

class UsageError extends Error {}

function parseBool(text) {
  const lowered = text.toLowerCase();
  if (['true', '1', 'yes'].includes(lowered)) return true;
  if (['false', '0', 'no'].includes(lowered)) return false;
  throw new UsageError(`expected true or false, got '${text}'`);
}

function parseInteger(name, text, allowed) {
  if (!/^-?\d+$/.test(text)) throw new UsageError(`${name} expects an integer, got '${text}'`);
  const value = Number(text);
  if (allowed && !allowed.includes(value)) {
    throw new UsageError(`${name} must be one of ${allowed.join(', ')}, got ${value}`);
  }
  return value;
}

function parseSeconds(name, text) {
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value) || value < 0) {
    throw new UsageError(`${name} expects seconds >= 0, got '${text}'`);
  }
  return value;
}

// Same rules as paho_client.py: enhanced authentication and topic aliases exist only in v5.
function checkEnhancedAuth(args) {
  const v5Only = [
    ['--auth-method', args.authMethod], ['--auth-data', args.authData],
    ['--reauth-data', args.reauthData], ['--reauth-method', args.reauthMethod],
    ['--reauth-after', args.reauthAfter], ['--topic-alias', args.topicAlias],
  ];
  for (const [flag, value] of v5Only) {
    if (value !== null && args.protocol !== 5) throw new UsageError(`${flag} needs --protocol 5`);
  }
  if (args.authData !== null && args.authMethod === null) {
    throw new UsageError('--auth-data needs --auth-method');
  }
  if ((args.reauthMethod !== null || args.reauthAfter !== null) && args.reauthData === null) {
    throw new UsageError('--reauth-method and --reauth-after need --reauth-data');
  }
  if (args.reauthData !== null && args.reauthMethod === null && args.authMethod === null) {
    throw new UsageError('--reauth-data needs --auth-method or --reauth-method');
  }
}

function parseArgs(argv) {
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h') {
    process.stdout.write(HELP);
    process.exit(argv.length === 0 ? USAGE_ERROR : 0);
  }
  const command = argv[0];
  if (!['connect', 'sub', 'pub', 'pubsub'].includes(command)) {
    throw new UsageError(`unknown command '${command}'`);
  }
  const args = {
    command,
    url: null,
    protocol: 4,
    clientId: null,
    clean: true,
    username: null,
    password: null,
    headers: {},
    keepalive: 30,
    sessionExpiry: null,
    timeout: 10,
    caFile: null,
    topics: [],
    qos: 0,
    count: 1,
    message: 'hello',
    retain: false,
    userProperties: [],
    contentType: null,
    correlationData: null,
    responseTopic: null,
    payloadFormat: null,
    messageExpiry: null,
    topicAlias: null,
    hold: 0,
    authMethod: null,
    authData: null,
    reauthData: null,
    reauthMethod: null,
    reauthAfter: null,
  };
  const subFlags = ['--topic', '--qos', '--count'];
  const pubFlags = ['--message', '--retain', '--user-property', '--content-type',
    '--correlation-data', '--response-topic', '--payload-format', '--message-expiry',
    '--topic-alias'];
  for (let i = 1; i < argv.length; i++) {
    const flag = argv[i];
    if (flag === '--help' || flag === '-h') {
      process.stdout.write(HELP);
      process.exit(0);
    }
    if (command === 'connect' && (subFlags.includes(flag) || pubFlags.includes(flag))) {
      throw new UsageError(`${flag} does not apply to connect`);
    }
    if (command === 'sub' && pubFlags.includes(flag)) {
      throw new UsageError(`${flag} does not apply to sub`);
    }
    if (flag === '--retain') {
      args.retain = true;
      continue;
    }
    if (i + 1 >= argv.length) throw new UsageError(`${flag} needs a value`);
    const value = argv[++i];
    switch (flag) {
      case '--url': args.url = value; break;
      case '--protocol': args.protocol = parseInteger(flag, value, [4, 5]); break;
      case '--client-id': args.clientId = value; break;
      case '--clean': args.clean = parseBool(value); break;
      case '--username': args.username = value; break;
      case '--password': args.password = value; break;
      case '--header': {
        const at = value.indexOf(':');
        if (at <= 0 || value.slice(0, at).trim() === '') {
          throw new UsageError(`--header must look like 'Name: value', got '${value}'`);
        }
        args.headers[value.slice(0, at).trim()] = value.slice(at + 1).trim();
        break;
      }
      case '--keepalive': args.keepalive = parseInteger(flag, value); break;
      case '--session-expiry': args.sessionExpiry = parseInteger(flag, value); break;
      case '--timeout': {
        args.timeout = Number(value);
        if (!(args.timeout > 0)) throw new UsageError(`--timeout expects seconds > 0, got '${value}'`);
        break;
      }
      case '--ca-file': args.caFile = value; break;
      case '--topic': args.topics.push(value); break;
      case '--qos': args.qos = parseInteger(flag, value, [0, 1, 2]); break;
      case '--count': {
        args.count = parseInteger(flag, value);
        if (args.count < 0) throw new UsageError('--count must be >= 0');
        break;
      }
      case '--message': args.message = value; break;
      case '--user-property': {
        const at = value.indexOf('=');
        if (at < 0) throw new UsageError(`--user-property must look like k=v, got '${value}'`);
        args.userProperties.push([value.slice(0, at), value.slice(at + 1)]);
        break;
      }
      case '--content-type': args.contentType = value; break;
      case '--correlation-data': args.correlationData = value; break;
      case '--response-topic': args.responseTopic = value; break;
      case '--payload-format': args.payloadFormat = parseInteger(flag, value, [0, 1]); break;
      case '--message-expiry': args.messageExpiry = parseInteger(flag, value); break;
      case '--topic-alias': {
        args.topicAlias = parseInteger(flag, value);
        // 0 and values above the broker's maximum are allowed: tests send them to see the refusal.
        if (args.topicAlias < 0 || args.topicAlias > 0xffff) {
          throw new UsageError('--topic-alias must be in 0..65535');
        }
        break;
      }
      case '--hold': args.hold = parseSeconds(flag, value); break;
      case '--auth-method': args.authMethod = value; break;
      case '--auth-data': args.authData = value; break;
      case '--reauth-data': args.reauthData = value; break;
      case '--reauth-method': args.reauthMethod = value; break;
      case '--reauth-after': args.reauthAfter = parseSeconds(flag, value); break;
      default: throw new UsageError(`unknown flag '${flag}'`);
    }
  }
  if (!args.url) throw new UsageError('--url is required');
  checkEnhancedAuth(args);
  if (command !== 'connect' && args.topics.length === 0) throw new UsageError('--topic is required');
  let url;
  try {
    url = new URL(args.url);
  } catch (err) {
    throw new UsageError(`bad --url '${args.url}': ${err.message}`);
  }
  const scheme = url.protocol.replace(/:$/, '');
  if (!['ws', 'wss', 'mqtt', 'tcp', 'mqtts', 'ssl'].includes(scheme)) {
    throw new UsageError(`unsupported URL scheme '${scheme}'`);
  }
  args.websocket = scheme === 'ws' || scheme === 'wss';
  if (Object.keys(args.headers).length > 0 && !args.websocket) {
    throw new UsageError('--header only applies to ws:// and wss:// URLs');
  }
  return args;
}

// Mutable state of one scenario, filled from MQTT.js events.
class Run {
  constructor(args) {
    this.args = args;
    this.deadline = Date.now() + args.timeout * 1000;
    this.connack = null;
    this.suback = null;
    this.messages = [];
    this.disconnect = null;
    // Enhanced authentication and v5 extras, reported under their own keys.
    this.serverDisconnect = null;
    this.authPackets = [];
    this.connackProperties = null;
    this.reauthSent = false;
    this.reauthTimer = null;
    this.closed = false;
    this.error = null;
    // Reason codes of PUBACK / PUBREC / PUBCOMP by packet id, from 'packetreceive'.
    this.ackCodes = new Map();
    this.waiters = [];
  }

  noteError(text) {
    if (this.error === null) this.error = text;
  }

  // Wake every waiter so it re-checks its condition.
  poke() {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  // Resolves once cond() holds, the link closed or the deadline (or the earlier `until`,
  // a Date.now() value) passed.
  waitFor(cond, until = Infinity) {
    const end = Math.min(until, this.deadline);
    return new Promise((resolve) => {
      const check = () => {
        if (cond() || this.closed || Date.now() >= end) {
          clearTimeout(timer);
          resolve();
          return;
        }
        this.waiters.push(check);
      };
      const timer = setTimeout(() => this.poke(), Math.max(0, end - Date.now()));
      check();
    });
  }
}

function describeMessage(topic, payload, packet) {
  const props = packet.properties || {};
  const userProperties = [];
  for (const [key, value] of Object.entries(props.userProperties || {})) {
    // MQTT.js folds repeated keys into an array; unfold them again.
    for (const v of Array.isArray(value) ? value : [value]) userProperties.push([key, String(v)]);
  }
  let payloadFormat = null;
  if (props.payloadFormatIndicator !== undefined) {
    payloadFormat = props.payloadFormatIndicator ? 1 : 0;
  }
  return {
    topic,
    payload_b64: Buffer.from(payload).toString('base64'),
    qos: packet.qos,
    retain: Boolean(packet.retain),
    properties: {
      user_properties: userProperties,
      content_type: props.contentType ?? null,
      correlation_data_b64: props.correlationData ? Buffer.from(props.correlationData).toString('base64') : null,
      response_topic: props.responseTopic ?? null,
      payload_format: payloadFormat,
      message_expiry: props.messageExpiryInterval ?? null,
    },
  };
}

function connectOptions(args, run) {
  const opts = {
    protocolVersion: args.protocol,
    clientId: args.clientId ?? `mqttjs-${crypto.randomBytes(6).toString('hex')}`,
    clean: args.clean,
    keepalive: args.keepalive,
    // One attempt only: a refusal must be reported, not retried.
    reconnectPeriod: 0,
    connectTimeout: Math.max(100, run.deadline - Date.now()),
    resubscribe: false,
  };
  if (args.username !== null) opts.username = args.username;
  if (args.password !== null) opts.password = args.password;
  if (args.protocol === 5) {
    const props = {};
    if (args.sessionExpiry !== null) props.sessionExpiryInterval = args.sessionExpiry;
    if (args.authMethod !== null) props.authenticationMethod = args.authMethod;
    if (args.authData !== null) props.authenticationData = Buffer.from(args.authData, 'utf8');
    if (Object.keys(props).length > 0) opts.properties = props;
  }
  if (args.websocket) opts.wsOptions = { headers: args.headers };
  if (args.caFile !== null) opts.ca = fs.readFileSync(args.caFile);
  return opts;
}

function publishOptions(args) {
  const opts = { qos: args.qos, retain: args.retain };
  if (args.protocol !== 5) return opts;
  const props = {};
  if (args.userProperties.length > 0) {
    props.userProperties = {};
    for (const [key, value] of args.userProperties) {
      const prev = props.userProperties[key];
      if (prev === undefined) props.userProperties[key] = value;
      else if (Array.isArray(prev)) prev.push(value);
      else props.userProperties[key] = [prev, value];
    }
  }
  if (args.contentType !== null) props.contentType = args.contentType;
  if (args.correlationData !== null) props.correlationData = Buffer.from(args.correlationData, 'utf8');
  if (args.responseTopic !== null) props.responseTopic = args.responseTopic;
  if (args.payloadFormat !== null) props.payloadFormatIndicator = args.payloadFormat === 1;
  if (args.messageExpiry !== null) props.messageExpiryInterval = args.messageExpiry;
  if (Object.keys(props).length > 0) opts.properties = props;
  return opts;
}

// CONNACK property names as the tests see them (snake_case, one per MQTT 5 property). MQTT.js
// decodes the one-byte flags as booleans; the report keeps the wire's 0 / 1.
const CONNACK_PROPERTIES = [
  ['sessionExpiryInterval', 'session_expiry_interval'],
  ['assignedClientIdentifier', 'assigned_client_identifier'],
  ['serverKeepAlive', 'server_keep_alive'],
  ['authenticationMethod', 'authentication_method'],
  ['responseInformation', 'response_information'],
  ['serverReference', 'server_reference'],
  ['reasonString', 'reason_string'],
  ['receiveMaximum', 'receive_maximum'],
  ['topicAliasMaximum', 'topic_alias_maximum'],
  ['maximumQoS', 'maximum_qos'],
  ['retainAvailable', 'retain_available'],
  ['maximumPacketSize', 'maximum_packet_size'],
  ['wildcardSubscriptionAvailable', 'wildcard_subscription_available'],
  ['subscriptionIdentifiersAvailable', 'subscription_identifiers_available'],
  ['sharedSubscriptionAvailable', 'shared_subscription_available'],
];

function describeConnackProperties(props) {
  const out = {};
  if (!props) return out;
  for (const [from, to] of CONNACK_PROPERTIES) {
    const value = props[from];
    if (value === undefined) continue;
    out[to] = typeof value === 'boolean' ? Number(value) : value;
  }
  if (props.authenticationData !== undefined) {
    out.authentication_data_b64 = Buffer.from(props.authenticationData).toString('base64');
  }
  if (props.userProperties !== undefined) {
    const pairs = [];
    for (const [key, value] of Object.entries(props.userProperties)) {
      for (const v of Array.isArray(value) ? value : [value]) pairs.push([key, String(v)]);
    }
    out.user_properties = pairs;
  }
  return out;
}

// Arms the one AUTH 0x19 of --reauth-data, --reauth-after seconds after a successful CONNACK.
function scheduleReauth(client, run) {
  const { args } = run;
  if (args.reauthData === null || run.reauthTimer !== null) return;
  run.reauthTimer = setTimeout(() => {
    if (!client.connected || run.closed) return;
    const packet = {
      cmd: 'auth',
      reasonCode: 0x19,
      properties: {
        authenticationMethod: args.reauthMethod ?? args.authMethod,
        authenticationData: Buffer.from(args.reauthData, 'utf8'),
      },
    };
    // No public API sends AUTH on an open connection (MQTT.js only answers a server's 0x18);
    // `_sendPacket` writes non-PUBLISH packets straight to the stream when connected.
    client._sendPacket(packet, (err) => {
      if (err) run.noteError(`re-authentication AUTH not sent: ${err.message || err}`);
      run.poke();
    });
    run.reauthSent = true;
  }, (args.reauthAfter ?? 0) * 1000);
}

// --topic-alias: the test decides what goes on the wire, aliases the broker did not allow
// included (to observe DISCONNECT 0x94). MQTT.js refuses such an alias locally, and for QoS > 0
// it then drops the publish callback, so this client's publishes skip MQTT.js's alias
// bookkeeping: the PUBLISH goes out as built; the stored copy (kept for resends, which this
// one-shot client never does) gets its topic back.
function sendAliasesAsGiven(client, topic) {
  client._applyTopicAlias = () => undefined;
  client._removeTopicAliasAndRecoverTopicName = (packet) => {
    if (packet.topic.length === 0) packet.topic = topic;
    if (packet.properties) delete packet.properties.topicAlias;
    return undefined;
  };
}

function installHandlers(client, run) {
  client.on('packetreceive', (packet) => {
    switch (packet.cmd) {
      case 'connack':
        run.connack = {
          reason_code: run.args.protocol === 5 ? (packet.reasonCode ?? 0) : (packet.returnCode ?? 0),
          session_present: Boolean(packet.sessionPresent),
          assigned_client_id: packet.properties?.assignedClientIdentifier ?? null,
        };
        if (run.args.protocol === 5) run.connackProperties = describeConnackProperties(packet.properties);
        break;
      case 'suback':
        run.suback = packet.granted.map((g) => (typeof g === 'object' ? g.qos : g));
        // The Rust test waits for this line before it publishes.
        process.stderr.write(`${JSON.stringify({ suback: run.suback, ready: true })}\n`);
        break;
      case 'puback':
      case 'pubrec':
      case 'pubcomp': {
        const codes = run.ackCodes.get(packet.messageId) || [];
        codes.push([packet.cmd, packet.reasonCode ?? 0]);
        run.ackCodes.set(packet.messageId, codes);
        break;
      }
      case 'disconnect':
        run.disconnect = { reason_code: packet.reasonCode ?? 0 };
        run.serverDisconnect = {
          reason_code: packet.reasonCode ?? 0,
          reason_string: packet.properties?.reasonString ?? null,
        };
        break;
      case 'auth':
        // MQTT.js checks the method itself afterwards (and closes the link on a mismatch); the
        // test wants what the server sent either way.
        run.authPackets.push({
          reason_code: packet.reasonCode ?? 0,
          authentication_method: packet.properties?.authenticationMethod ?? null,
        });
        break;
      default:
        break;
    }
    run.poke();
  });
  client.on('message', (topic, payload, packet) => {
    run.messages.push(describeMessage(topic, payload, packet));
    run.poke();
  });
  client.on('connect', () => {
    scheduleReauth(client, run);
    run.poke();
  });
  // MQTT.js swallows transport errors that carry no error code, among them the ws library's
  // "Unexpected server response: 401" for a refused upgrade; listen on the stream itself.
  if (client.stream) {
    client.stream.on('error', (err) => {
      run.noteError(err.message || String(err));
      run.poke();
    });
  }
  client.on('error', (err) => {
    run.noteError(err.message || String(err));
    run.poke();
  });
  client.on('close', () => {
    run.closed = true;
    run.poke();
  });
}

async function connect(client, run) {
  await run.waitFor(() => run.connack !== null && (run.connack.reason_code !== 0 || client.connected));
  if (run.connack === null) run.noteError(run.closed ? 'connection closed before CONNACK' : 'timeout waiting for CONNACK');
  const connected = run.connack !== null && run.connack.reason_code === 0 && client.connected;
  return {
    connected,
    reason_code: run.connack ? run.connack.reason_code : null,
    session_present: run.connack ? run.connack.session_present : null,
    assigned_client_id: run.connack ? run.connack.assigned_client_id : null,
    error: connected ? null : run.error,
  };
}

async function subscribe(client, run) {
  const { args } = run;
  // Failures also arrive through 'packetreceive'; the callback error carries nothing more.
  client.subscribe(args.topics, { qos: args.qos }, () => run.poke());
  await run.waitFor(() => run.suback !== null);
  if (run.suback === null) run.noteError('no SUBACK before the deadline or the link closed');
}

// Ack code of one finished publish: a failing PUBREC ends a QoS 2 flow, else the last ack counts.
function ackCode(codes) {
  const failed = codes.find(([cmd, code]) => cmd === 'pubrec' && code >= 0x80);
  if (failed) return failed[1];
  return codes.length > 0 ? codes[codes.length - 1][1] : 0;
}

async function publishAll(client, run) {
  const { args } = run;
  const opts = publishOptions(args);
  if (args.topicAlias !== null) {
    opts.properties = { ...(opts.properties || {}), topicAlias: args.topicAlias };
    sendAliasesAsGiven(client, args.topics[0]);
  }
  const acks = [];
  for (let i = 0; i < args.count; i++) {
    const payload = args.message.split('{i}').join(String(i));
    // With an alias, only the first PUBLISH names the topic; the rest rely on the alias.
    const topic = args.topicAlias !== null && i > 0 ? '' : args.topics[0];
    let finished = false;
    let packetId = null;
    // A copy per message: MQTT.js may edit the properties of a packet it sends.
    const msgOpts = opts.properties ? { ...opts, properties: { ...opts.properties } } : opts;
    client.publish(topic, payload, msgOpts, (err, packet) => {
      finished = true;
      if (packet && packet.messageId !== undefined) packetId = packet.messageId;
      // Broker refusals are recorded from the ack packet; anything else is a local failure.
      if (err && err.code === undefined) run.noteError(`publish ${i} failed: ${err.message}`);
      run.poke();
    });
    await run.waitFor(() => finished);
    if (!finished) {
      run.noteError(`no acknowledgement for message ${i} before the deadline or the link closed`);
      break;
    }
    if (args.qos === 0) {
      acks.push(0);
    } else {
      acks.push(ackCode(run.ackCodes.get(packetId) || []));
      run.ackCodes.delete(packetId);
    }
  }
  return acks;
}

// --hold: stay connected after the scenario's work until the time is up or the link closes.
async function hold(client, run) {
  if (run.args.hold <= 0 || !client.connected || run.closed) return;
  await run.waitFor(() => false, Date.now() + run.args.hold * 1000);
}

async function close(client) {
  await new Promise((resolve) => {
    const timer = setTimeout(resolve, 1000);
    client.end(false, {}, () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

async function main() {
  let args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`mqttjs_client.js: error: ${err.message}\n`);
      process.exit(USAGE_ERROR);
    }
    throw err;
  }
  const run = new Run(args);
  let opts;
  try {
    opts = connectOptions(args, run);
  } catch (err) {
    process.stderr.write(`mqttjs_client.js: error: ${err.message}\n`);
    process.exit(USAGE_ERROR);
  }
  const client = mqtt.connect(args.url, opts);
  installHandlers(client, run);

  const conn = await connect(client, run);
  const result = args.command === 'connect' ? { ...conn } : { connect: conn };
  if (args.command !== 'connect' && conn.connected) {
    if (args.command === 'sub' || args.command === 'pubsub') await subscribe(client, run);
    if (args.command === 'pub' || (args.command === 'pubsub' && run.suback !== null)) {
      result.acks = await publishAll(client, run);
    }
    if ((args.command === 'sub' || args.command === 'pubsub') && run.suback !== null) {
      await run.waitFor(() => run.messages.length >= args.count);
    }
  }
  if (conn.connected) await hold(client, run);
  if (run.reauthTimer !== null) clearTimeout(run.reauthTimer);
  await close(client);

  if (args.command === 'sub' || args.command === 'pubsub') {
    result.suback = run.suback;
    result.messages = run.messages;
  }
  if (args.command === 'pub' || args.command === 'pubsub') {
    if (result.acks === undefined) result.acks = [];
  }
  if (args.command !== 'connect') {
    result.disconnect = run.disconnect;
    result.error = run.error;
  }
  // Keys every subcommand reports (v5 enhanced authentication and CONNACK properties).
  result.auth_packets = run.authPackets;
  result.server_disconnect = run.serverDisconnect;
  result.connack_properties = run.connackProperties;
  result.reauth_sent = run.reauthSent;
  process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(0));
}

main().catch((err) => {
  process.stderr.write(`mqttjs_client.js crashed: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
