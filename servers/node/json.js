'use strict';
// JSON read and written the way the Python servers' orjson does it, so that a
// reply carries the same bytes whichever server made it. No I/O.
//
// JSON.parse cannot be used: it rounds integers above 2**53, cannot tell 1 from
// 1.0, reorders integer-like object keys ({"b":1,"2":2} would come back as
// {"2":2,"b":1}), accepts lone surrogates and 1e400, and has no depth limit.
// So values are represented as follows:
//
//   JSON object  -> Map (insertion order, a repeated key keeps its first place
//                   and its last value, as a Python dict does)
//   JSON array   -> Array
//   integer      -> Number when it is a safe integer, else BigInt; integers
//                   outside orjson's range (-2**63 .. 2**64-1) become floats,
//                   as orjson makes them
//   other number -> PyFloat (so 1.0 stays a float and is written "1.0")
//   string, true, false, null -> themselves
//
// encode() also takes plain objects (fixed keys the server builds itself) and
// Raw (JSON encoded earlier, spliced in as is: inbox items).

/** A JSON number with a fraction or an exponent (a Python float). */
class PyFloat {
  constructor(value) {
    this.value = value;
  }
}

/** Already-encoded JSON text, written as is. */
class Raw {
  constructor(text) {
    this.text = text;
  }
}

/** The text is not JSON; `message` is orjson's wording with its position. */
class JsonDecodeError extends Error {}

/** A value nests deeper than orjson writes (its "Recursion limit reached"). */
class JsonEncodeError extends Error {}

// orjson reads up to 1024 nested containers and writes up to 254.
const MAX_DECODE_DEPTH = 1024;
const MAX_ENCODE_DEPTH = 254;

const MIN_I64 = -(2n ** 63n);
const MAX_U64 = 2n ** 64n - 1n;

/** Line, column and character index of `pos` in `text`, as orjson reports them. */
function where(text, pos) {
  let line = 1;
  let chars = 0;
  let lineChars = 0;
  for (let i = 0; i < pos && i < text.length; i++) {
    const c = text.charCodeAt(i);
    // A surrogate pair is one character (a Python str counts code points).
    if (c >= 0xdc00 && c <= 0xdfff && i > 0) {
      const p = text.charCodeAt(i - 1);
      if (p >= 0xd800 && p <= 0xdbff) continue;
    }
    chars++;
    lineChars++;
    if (c === 0x0a) {
      line++;
      lineChars = 0;
    }
  }
  return `line ${line} column ${lineChars + 1} (char ${chars})`;
}

class Parser {
  constructor(text) {
    this.s = text;
    this.i = 0;
  }

  fail(message, pos = this.i) {
    throw new JsonDecodeError(`${message}: ${where(this.s, pos)}`);
  }

  ws() {
    const s = this.s;
    let i = this.i;
    for (;;) {
      const c = s.charCodeAt(i);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) i++;
      else break;
    }
    this.i = i;
  }

  document() {
    const s = this.s;
    if (s.length === 0) this.fail('Input is a zero-length, empty document', 0);
    if (s.charCodeAt(0) === 0xfeff) this.fail('UTF-8 byte order mark (BOM) is not supported', 0);
    this.ws();
    if (this.i >= s.length) this.fail('input data is empty', 0);
    const value = this.value(0);
    this.ws();
    if (this.i < s.length) this.fail('unexpected content after document');
    return value;
  }

  value(depth) {
    const s = this.s;
    if (this.i >= s.length) this.fail('unexpected end of data');
    const c = s.charCodeAt(this.i);
    switch (c) {
      case 0x22: // "
        return this.string();
      case 0x7b: // {
        return this.object(depth + 1);
      case 0x5b: // [
        return this.array(depth + 1);
      case 0x74: // t
        return this.literal('true', true);
      case 0x66: // f
        return this.literal('false', false);
      case 0x6e: // n
        return this.literal('null', null);
      default:
        if (c === 0x2d || (c >= 0x30 && c <= 0x39)) return this.number();
        // orjson reads a leading '+' or '.' as the start of a number without digits.
        if (c === 0x2b || c === 0x2e) this.fail('no digit after sign');
        return this.fail('unexpected character, expected a JSON value');
    }
  }

  literal(word, value) {
    const s = this.s;
    const start = this.i;
    if (s.startsWith(word, start)) {
      this.i = start + word.length;
      return value;
    }
    const rest = s.slice(start);
    if (rest.length < word.length && word.startsWith(rest))
      this.fail('unexpected end of data', s.length);
    return this.fail(`invalid literal, expected '${word}'`, start);
  }

  number() {
    const s = this.s;
    const start = this.i;
    let i = start;
    if (s.charCodeAt(i) === 0x2d) {
      i++;
      if (i >= s.length) this.fail('unexpected end of data', i);
    }
    let c = s.charCodeAt(i);
    if (c === 0x30) {
      i++;
      c = s.charCodeAt(i);
      if (c >= 0x30 && c <= 0x39) this.fail('number with leading zero is not allowed', i - 1);
    } else if (c >= 0x31 && c <= 0x39) {
      while (i < s.length && (c = s.charCodeAt(i)) >= 0x30 && c <= 0x39) i++;
    } else {
      this.fail('no digit after sign', i);
    }
    let float = false;
    c = s.charCodeAt(i);
    if (c === 0x2e) {
      float = true;
      i++;
      if (i >= s.length) this.fail('unexpected end of data', i);
      const d0 = i;
      while (i < s.length && (c = s.charCodeAt(i)) >= 0x30 && c <= 0x39) i++;
      if (i === d0) this.fail('no digit after decimal point', i);
      c = s.charCodeAt(i);
    }
    if (c === 0x65 || c === 0x45) {
      float = true;
      i++;
      c = s.charCodeAt(i);
      if (c === 0x2b || c === 0x2d) i++;
      if (i >= s.length) this.fail('unexpected end of data', i);
      const d0 = i;
      while (i < s.length && (c = s.charCodeAt(i)) >= 0x30 && c <= 0x39) i++;
      if (i === d0) this.fail('no digit after exponent sign', i);
    }
    this.i = i;
    const text = s.slice(start, i);
    if (!float) {
      // Up to 15 digits is always a safe integer: skip the BigInt.
      if (text.length <= 15) return Number(text);
      const big = BigInt(text);
      if (big < MIN_I64 || big > MAX_U64) return new PyFloat(Number(text));
      if (big >= -9007199254740991n && big <= 9007199254740991n) return Number(big);
      return big;
    }
    const v = Number(text);
    if (!Number.isFinite(v)) this.fail('number is infinity when parsed as double', start);
    return new PyFloat(v);
  }

  string() {
    const s = this.s;
    let i = ++this.i;
    // The common case: no escapes, no control characters, no surrogates to check.
    for (;;) {
      if (i >= s.length) this.fail('unexpected end of data', s.length);
      const c = s.charCodeAt(i);
      if (c === 0x22) {
        const out = s.slice(this.i, i);
        this.i = i + 1;
        return out;
      }
      if (c === 0x5c || c < 0x20) break;
      i++;
    }
    let out = s.slice(this.i, i);
    for (;;) {
      if (i >= s.length) this.fail('unexpected end of data', s.length);
      const c = s.charCodeAt(i);
      if (c === 0x22) {
        this.i = i + 1;
        return out;
      }
      if (c < 0x20) this.fail('unexpected control character in string', i);
      if (c !== 0x5c) {
        const run = i;
        while (i < s.length) {
          const d = s.charCodeAt(i);
          if (d === 0x22 || d === 0x5c || d < 0x20) break;
          i++;
        }
        out += s.slice(run, i);
        continue;
      }
      const esc = i;
      const e = s.charCodeAt(i + 1);
      i += 2;
      switch (e) {
        case 0x22:
          out += '"';
          break;
        case 0x5c:
          out += '\\';
          break;
        case 0x2f:
          out += '/';
          break;
        case 0x62:
          out += '\b';
          break;
        case 0x66:
          out += '\f';
          break;
        case 0x6e:
          out += '\n';
          break;
        case 0x72:
          out += '\r';
          break;
        case 0x74:
          out += '\t';
          break;
        case 0x75: {
          const hi = this.hex4(i, esc);
          i += 4;
          if (hi >= 0xdc00 && hi <= 0xdfff) this.fail('invalid high surrogate in string', esc);
          if (hi >= 0xd800 && hi <= 0xdbff) {
            if (s.charCodeAt(i) !== 0x5c || s.charCodeAt(i + 1) !== 0x75) {
              this.fail('no low surrogate in string', esc);
            }
            const lo = this.hex4(i + 2, esc, 'invalid escape in string');
            if (lo < 0xdc00 || lo > 0xdfff) this.fail('invalid low surrogate in string', esc);
            i += 6;
            out += String.fromCharCode(hi, lo);
          } else {
            out += String.fromCharCode(hi);
          }
          break;
        }
        default:
          if (Number.isNaN(e)) this.fail('unexpected end of data', s.length);
          this.fail('invalid escaped sequence in string', esc);
      }
    }
  }

  hex4(at, esc, message = 'invalid escaped sequence in string') {
    const s = this.s;
    let v = 0;
    for (let k = 0; k < 4; k++) {
      if (at + k >= s.length) this.fail('unexpected end of data', s.length);
      const c = s.charCodeAt(at + k);
      let d;
      if (c >= 0x30 && c <= 0x39) d = c - 0x30;
      else if (c >= 0x61 && c <= 0x66) d = c - 0x57;
      else if (c >= 0x41 && c <= 0x46) d = c - 0x37;
      else return this.fail(message, esc);
      v = v * 16 + d;
    }
    return v;
  }

  object(depth) {
    const s = this.s;
    if (depth > MAX_DECODE_DEPTH) this.fail('depth limit exceeded', this.i + 1);
    this.i++;
    const out = new Map();
    this.ws();
    if (s.charCodeAt(this.i) === 0x7d) {
      this.i++;
      return out;
    }
    let comma = -1;
    for (;;) {
      if (this.i >= s.length) this.fail('unexpected end of data');
      const c = s.charCodeAt(this.i);
      if (c !== 0x22) {
        if (c === 0x7d && comma >= 0) this.fail('trailing comma is not allowed', comma);
        this.fail('unexpected character, expected a string key');
      }
      const key = this.string();
      this.ws();
      if (this.i >= s.length) this.fail('unexpected end of data');
      if (s.charCodeAt(this.i) !== 0x3a) this.fail("unexpected character, expected ':' after key");
      this.i++;
      this.ws();
      out.set(key, this.value(depth));
      comma = this.separator(0x7d, '}');
      if (comma < 0) return out;
    }
  }

  /** After a member or element: the index of the comma that follows it (consumed, with
   * the white space after it), or -1 when it was the last and ``close`` is consumed. */
  separator(close, closeText) {
    this.ws();
    if (this.i >= this.s.length) this.fail('unexpected end of data');
    const d = this.s.charCodeAt(this.i);
    if (d === 0x2c) {
      const comma = this.i++;
      this.ws();
      return comma;
    }
    if (d === close) {
      this.i++;
      return -1;
    }
    return this.fail(`unexpected character, expected ',' or '${closeText}'`);
  }

  array(depth) {
    const s = this.s;
    if (depth > MAX_DECODE_DEPTH) this.fail('depth limit exceeded', this.i + 1);
    this.i++;
    const out = [];
    this.ws();
    if (s.charCodeAt(this.i) === 0x5d) {
      this.i++;
      return out;
    }
    let comma = -1;
    for (;;) {
      if (this.i >= s.length) this.fail('unexpected end of data');
      if (s.charCodeAt(this.i) === 0x5d && comma >= 0)
        this.fail('trailing comma is not allowed', comma);
      out.push(this.value(depth));
      comma = this.separator(0x5d, ']');
      if (comma < 0) return out;
    }
  }
}

/** Parse JSON text (a string already decoded from valid UTF-8); throws JsonDecodeError. */
function parse(text) {
  return new Parser(text).document();
}

/** A float as orjson writes it: shortest digits, decimal from 1e-5 to 1e16, else 1e+16. */
function formatFloat(v) {
  if (!Number.isFinite(v)) return 'null';
  if (v === 0) return Object.is(v, -0) ? '-0.0' : '0.0';
  const a = Math.abs(v);
  if (a >= 1e-5 && a < 1e16) {
    // In this range String() writes plain decimals with the shortest digits.
    const s = String(v);
    return s.includes('.') ? s : `${s}.0`;
  }
  // Without an argument toExponential() keeps the shortest digits too ("1.5e+16").
  return v.toExponential();
}

/** orjson's text for `value`; throws JsonEncodeError past its nesting limit. */
function encode(value, depth = 0) {
  switch (typeof value) {
    case 'string':
      // JSON.stringify escapes exactly what orjson does (", \, control characters).
      return JSON.stringify(value);
    case 'number':
      return Number.isInteger(value) ? String(value) : formatFloat(value);
    case 'bigint':
      return value.toString();
    case 'boolean':
      return value ? 'true' : 'false';
    case 'undefined':
      return 'null';
    default:
      break;
  }
  if (value === null) return 'null';
  if (value instanceof Raw) return value.text;
  if (value instanceof PyFloat) return formatFloat(value.value);
  if (++depth > MAX_ENCODE_DEPTH) throw new JsonEncodeError('Recursion limit reached');
  if (Array.isArray(value)) {
    let out = '[';
    for (let k = 0; k < value.length; k++) {
      if (k) out += ',';
      out += encode(value[k], depth);
    }
    return `${out}]`;
  }
  let out = '{';
  let first = true;
  const entries = value instanceof Map ? value : Object.entries(value);
  for (const [key, item] of entries) {
    out += first ? '' : ',';
    first = false;
    out += `${JSON.stringify(key)}:${encode(item, depth)}`;
  }
  return `${out}}`;
}

// -- Python's json.dumps (the ready and stats lines), and repr() for messages -----------

/** A float as Python's repr() writes it: decimal from 1e-4 to 1e16, else 1e-05 / 1e+16. */
function pyFloatRepr(v) {
  if (Number.isNaN(v)) return 'NaN';
  if (!Number.isFinite(v)) return v > 0 ? 'Infinity' : '-Infinity';
  if (v === 0) return Object.is(v, -0) ? '-0.0' : '0.0';
  const a = Math.abs(v);
  if (a >= 1e-4 && a < 1e16) {
    const s = String(v);
    return s.includes('.') ? s : `${s}.0`;
  }
  const [mant, exp] = v.toExponential().split('e');
  const sign = exp[0] === '-' ? '-' : '+';
  const digits = exp.replace(/^[+-]/, '');
  return `${mant}e${sign}${digits.padStart(2, '0')}`;
}

/** json.dumps(value) with its defaults: ", " and ": " separators, ASCII only. */
function pyDumps(value) {
  if (value === null || value === undefined) return 'null';
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value).replace(
        /[\u0080-\uffff]/g,
        (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`,
      );
    case 'number':
      return Number.isInteger(value) ? String(value) : pyFloatRepr(value);
    case 'bigint':
      return value.toString();
    case 'boolean':
      return value ? 'true' : 'false';
    default:
      break;
  }
  if (value instanceof PyFloat) return pyFloatRepr(value.value);
  if (Array.isArray(value)) return `[${value.map(pyDumps).join(', ')}]`;
  const entries = value instanceof Map ? [...value] : Object.entries(value);
  return `{${entries.map(([k, v]) => `${pyDumps(String(k))}: ${pyDumps(v)}`).join(', ')}}`;
}

// Characters str.isprintable() refuses: control, format, surrogate, private use,
// unassigned, and separators other than the plain space.
const NOT_PRINTABLE = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}\p{Zs}]/u;

/** repr() of a Python str, for error messages that quote what the client sent. */
function pyRepr(text) {
  const quote = text.includes("'") && !text.includes('"') ? '"' : "'";
  let out = quote;
  for (const ch of text) {
    const c = ch.codePointAt(0);
    if (ch === quote || ch === '\\') out += `\\${ch}`;
    else if (ch === '\t') out += '\\t';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (c >= 0x20 && c < 0x7f) out += ch;
    else if (c > 0x7f && !NOT_PRINTABLE.test(ch)) out += ch;
    else if (c <= 0xff) out += `\\x${c.toString(16).padStart(2, '0')}`;
    else if (c <= 0xffff) out += `\\u${c.toString(16).padStart(4, '0')}`;
    else out += `\\U${c.toString(16).padStart(8, '0')}`;
  }
  return out + quote;
}

/** Python's type(value).__name__ for a decoded JSON value. */
function pyTypeName(value) {
  if (value === null || value === undefined) return 'NoneType';
  if (typeof value === 'boolean') return 'bool';
  if (typeof value === 'number' || typeof value === 'bigint') return 'int';
  if (typeof value === 'string') return 'str';
  if (value instanceof PyFloat) return 'float';
  if (Array.isArray(value)) return 'list';
  return 'dict';
}

/** Length in code points, as Python's len() counts a str. */
function pyLen(text) {
  let n = text.length;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n--;
        i++;
      }
    }
  }
  return n;
}

/** Compare two strings by code point, as Python sorts str. */
function pyCompare(a, b) {
  const x = [...a].map((ch) => ch.codePointAt(0));
  const y = [...b].map((ch) => ch.codePointAt(0));
  for (let k = 0; k < Math.min(x.length, y.length); k++) {
    if (x[k] !== y[k]) return x[k] - y[k];
  }
  return x.length - y.length;
}

module.exports = {
  PyFloat,
  Raw,
  JsonDecodeError,
  JsonEncodeError,
  parse,
  encode,
  formatFloat,
  pyDumps,
  pyFloatRepr,
  pyRepr,
  pyTypeName,
  pyLen,
  pyCompare,
};
