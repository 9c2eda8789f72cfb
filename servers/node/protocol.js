'use strict';
// The rtbench wire protocol (servers/protocol.py): one JSON envelope each way,
// error codes and their HTTP statuses, pushes. No I/O.
//
//   request:  {"op": "echo", "id": 7, "ts": 123, "payload": ...}
//   reply:    {"op":"echo","id":7,"ts":123,"ok":true,"payload":...}
//   error:    {"op":"echo","id":7,"ts":123,"ok":false,"error":{"code":"...","message":"..."}}
//   push:     {"op":"push","seq":N,"item":{...}}
//
// ids and timestamps are integers from 0 to 2**63-1. They are parsed exactly
// (json.js keeps integers above 2**53 as BigInt) and written back from the
// parsed value, so any id or ts in that range is echoed digit for digit.

const { isUtf8 } = require('node:buffer');
const json = require('./json');

const DEFAULT_MAX_MESSAGE_BYTES = 1 << 20;
const MAX_ID = 2n ** 63n - 1n;
// Every integer in a request payload is a signed 64-bit integer, unless its field has a
// narrower range (servers/realtime/payload.py).
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const MAX_ID_DIGITS = MAX_ID.toString().length;

class ProtocolError extends Error {
  get code() {
    return 'protocol_error';
  }

  get httpStatus() {
    return 400;
  }
}

// One class per error code, with the status an HTTP transport answers with.
function errorClass(name, code, httpStatus) {
  const cls = class extends ProtocolError {
    get code() {
      return code;
    }

    get httpStatus() {
      return httpStatus;
    }
  };
  Object.defineProperty(cls, 'name', { value: name });
  return cls;
}

const MalformedJSON = errorClass('MalformedJSON', 'malformed_json', 400);
const InvalidEnvelope = errorClass('InvalidEnvelope', 'invalid_envelope', 400);
const UnknownOp = errorClass('UnknownOp', 'unknown_op', 400);
const MessageTooLarge = errorClass('MessageTooLarge', 'too_large', 413);
const Unauthorized = errorClass('Unauthorized', 'unauthorized', 401);
const Forbidden = errorClass('Forbidden', 'forbidden', 403);
const UnknownUser = errorClass('UnknownUser', 'unknown_user', 404);
const LimitReached = errorClass('LimitReached', 'limit_reached', 429);
const RequestTimeout = errorClass('RequestTimeout', 'request_timeout', 408);
const InternalError = errorClass('InternalError', 'internal_error', 500);

/** Whether a decoded JSON value is an integer (a bool never is). */
function isInt(value) {
  return typeof value === 'number' || typeof value === 'bigint';
}

/** Whether a decoded JSON value is an integer from INT64_MIN to INT64_MAX. */
function isInt64(value) {
  return isInt(value) && value >= INT64_MIN && value <= INT64_MAX;
}

function checkInt(name, value) {
  if (!isInt(value)) {
    throw new InvalidEnvelope(
      `field ${json.pyRepr(name)} must be an integer, got ${json.pyTypeName(value)}`,
    );
  }
  if (value < 0 || value > MAX_ID) {
    throw new InvalidEnvelope(`field ${json.pyRepr(name)} out of range: ${value}`);
  }
  return value;
}

/** An envelope integer given as text (a query value or a header), checked like one. */
function parseIntText(name, text) {
  if (!(text.length > 0 && text.length <= MAX_ID_DIGITS && /^[0-9]+$/.test(text))) {
    const n = json.pyLen(text);
    const shown = n <= 24 ? text : `${[...text].slice(0, 20).join('')}... (${n} characters)`;
    throw new InvalidEnvelope(
      `${json.pyRepr(name)} must be an integer from 0 to ${MAX_ID}, got ${json.pyRepr(shown)}`,
    );
  }
  const big = BigInt(text);
  return checkInt(name, big <= 9007199254740991n ? Number(big) : big);
}

function messageTooLarge(size, limit) {
  return new MessageTooLarge(`message of ${size} bytes exceeds the limit of ${limit} bytes`);
}

/** Raise MessageTooLarge when `data` (a Buffer) is larger than `limit` bytes. */
function checkSize(data, limit) {
  if (data.length > limit) throw messageTooLarge(data.length, limit);
}

/** Received bytes as text; invalid UTF-8 is malformed JSON, as orjson finds it. */
function decodeText(data) {
  if (typeof data === 'string') return data;
  if (!isUtf8(data)) {
    throw new MalformedJSON(
      'body is not valid JSON: str is not valid UTF-8: surrogates not allowed: line 1 column 1 (char 0)',
    );
  }
  return data.toString('utf8');
}

function loads(data) {
  const text = decodeText(data);
  try {
    return json.parse(text);
  } catch (err) {
    if (err instanceof json.JsonDecodeError) {
      throw new MalformedJSON(`body is not valid JSON: ${err.message}`);
    }
    throw err;
  }
}

const ENVELOPE_FIELDS = new Set(['op', 'id', 'ts', 'payload']);

/** Parse and validate a request envelope: {op, id, ts, payload}. */
function decodeRequest(data) {
  const obj = loads(data);
  if (!(obj instanceof Map)) {
    throw new InvalidEnvelope(`envelope must be a JSON object, got ${json.pyTypeName(obj)}`);
  }
  const unknown = [];
  for (const key of obj.keys()) if (!ENVELOPE_FIELDS.has(key)) unknown.push(key);
  if (unknown.length) {
    throw new InvalidEnvelope(
      `unknown envelope field(s): ${unknown.sort(json.pyCompare).join(', ')}`,
    );
  }
  for (const name of ['op', 'id', 'ts']) {
    if (!obj.has(name)) throw new InvalidEnvelope(`missing envelope field ${json.pyRepr(name)}`);
  }
  const op = obj.get('op');
  if (typeof op !== 'string' || !op) {
    throw new InvalidEnvelope("field 'op' must be a non-empty string");
  }
  const id = checkInt('id', obj.get('id'));
  const ts = checkInt('ts', obj.get('ts'));
  const payload = obj.has('payload') ? obj.get('payload') : null;
  return { op, id, ts, payload };
}

/** The success reply to `req`; throws JsonEncodeError when `payload` nests too deep. */
function encodeOk(req, payload) {
  // The envelope is one level of nesting for orjson's limit.
  return `{"op":${JSON.stringify(req.op)},"id":${req.id},"ts":${req.ts},"ok":true,"payload":${json.encode(payload, 1)}}`;
}

/** The error reply for `err`; `req` when the envelope could be read. */
function encodeError(err, req) {
  const head = req
    ? `{"op":${JSON.stringify(req.op)},"id":${req.id},"ts":${req.ts}`
    : '{"op":null,"id":null,"ts":null';
  return `${head},"ok":false,"error":{"code":${JSON.stringify(err.code)},"message":${JSON.stringify(err.message)}}}`;
}

/** {"op":"push","seq":N,"item":ITEM} around an already-encoded item. */
function encodePush(seq, item) {
  return `{"op":"push","seq":${seq},"item":${item}}`;
}

const PUSH_PREFIX = '{"op":"push","seq":';

/** The seq of a message made by encodePush, or null for any other message. */
function pushSeq(body) {
  if (!body.startsWith(PUSH_PREFIX)) return null;
  const end = body.indexOf(',', PUSH_PREFIX.length);
  const digits = body.slice(PUSH_PREFIX.length, end);
  return end > 0 && /^[0-9]+$/.test(digits) ? Number(digits) : null;
}

module.exports = {
  DEFAULT_MAX_MESSAGE_BYTES,
  MAX_ID,
  INT64_MIN,
  INT64_MAX,
  ProtocolError,
  MalformedJSON,
  InvalidEnvelope,
  UnknownOp,
  MessageTooLarge,
  Unauthorized,
  Forbidden,
  UnknownUser,
  LimitReached,
  RequestTimeout,
  InternalError,
  isInt,
  isInt64,
  checkInt,
  parseIntText,
  messageTooLarge,
  checkSize,
  decodeRequest,
  encodeOk,
  encodeError,
  encodePush,
  pushSeq,
};
