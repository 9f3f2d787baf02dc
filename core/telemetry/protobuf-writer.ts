/**
 * The few protobuf wire-format writes an OTLP span needs, into one growing buffer. Spans are encoded
 * as they end (see `otlp-protobuf.ts`), so a batch waiting for export is bytes, not thousands of
 * objects the garbage collector must promote and later sweep.
 */
export class ProtobufWriter {
  buffer: Buffer;
  pos = 0;
  // The last ids written and where: a request's spans share their trace id, and a client span's
  // parent is the server span's id, so most ids are copied from the buffer instead of parsed from hex.
  readonly #idTexts: (string | null)[] = [null, null, null, null];
  readonly #idAt = new Int32Array(4);
  #idNext = 0;

  constructor(initialSize = 64 * 1024) {
    this.buffer = Buffer.allocUnsafe(initialSize);
  }

  reset(): void {
    this.pos = 0;
    this.#idTexts.fill(null);
  }

  /** A copy of what was written (the writer's buffer is reused). */
  bytes(): Buffer {
    return Buffer.from(this.buffer.subarray(0, this.pos));
  }

  ensure(extra: number): void {
    if (this.pos + extra <= this.buffer.length) return;
    let size = this.buffer.length * 2;
    while (size < this.pos + extra) size *= 2;
    const grown = Buffer.allocUnsafe(size);
    this.buffer.copy(grown, 0, 0, this.pos);
    this.buffer = grown;
  }

  /** An unsigned varint below 2^53 (field tags, lengths, counts, enums, non-negative ints). */
  varint(value: number): void {
    this.ensure(10);
    const buffer = this.buffer;
    let pos = this.pos;
    while (value > 0x7f) {
      buffer[pos++] = (value % 128) | 0x80;
      value = Math.floor(value / 128);
    }
    buffer[pos++] = value;
    this.pos = pos;
  }

  /** An int64 varint; negative values take ten bytes in two's complement, as protobuf demands. */
  int64(value: number): void {
    if (value >= 0) {
      this.varint(value);
      return;
    }
    const big = BigInt.asUintN(64, BigInt(value));
    this.ensure(10);
    let rest = big;
    while (rest > 0x7fn) {
      this.buffer[this.pos++] = Number(rest & 0x7fn) | 0x80;
      rest >>= 7n;
    }
    this.buffer[this.pos++] = Number(rest);
  }

  tag(field: number, wireType: 0 | 1 | 2 | 5): void {
    this.varint(field * 8 + wireType);
  }

  double(value: number): void {
    this.ensure(8);
    this.buffer.writeDoubleLE(value, this.pos);
    this.pos += 8;
  }

  /**
   * A fixed64 of nanoseconds since the epoch from milliseconds with a fraction. The product
   * (~1.8e18) does not fit a double exactly, so it is assembled from 32-bit halves.
   */
  epochNanos(epochMs: number): void {
    this.ensure(8);
    const wholeMs = Math.floor(epochMs);
    const fractionNs = Math.round((epochMs - wholeMs) * 1e6);
    // wholeMs * 1e6 + fractionNs = high * 2^21 * 1e6 + low * 1e6 + fractionNs, each part exact.
    const high = Math.floor(wholeMs / 2_097_152) * 1e6;
    const low = (wholeMs % 2_097_152) * 1e6 + fractionNs;
    const sum = (high % 2048) * 2_097_152 + low;
    const lower32 = sum % 4_294_967_296;
    const upper32 = Math.floor(high / 2048) + Math.floor(sum / 4_294_967_296);
    const buffer = this.buffer;
    const pos = this.pos;
    buffer[pos] = lower32 & 0xff;
    buffer[pos + 1] = (lower32 >>> 8) & 0xff;
    buffer[pos + 2] = (lower32 >>> 16) & 0xff;
    buffer[pos + 3] = lower32 >>> 24;
    buffer[pos + 4] = upper32 & 0xff;
    buffer[pos + 5] = (upper32 >>> 8) & 0xff;
    buffer[pos + 6] = (upper32 >>> 16) & 0xff;
    buffer[pos + 7] = upper32 >>> 24;
    this.pos += 8;
  }

  /** Hex text (trace and span ids) as the bytes it spells. */
  hexBytes(field: number, hex: string): void {
    this.tag(field, 2);
    const length = hex.length >>> 1;
    this.varint(length);
    this.ensure(length);
    const buffer = this.buffer;
    let pos = this.pos;
    const texts = this.#idTexts;
    for (let slot = 0; slot < texts.length; slot++) {
      if (texts[slot] === hex) {
        const from = this.#idAt[slot]!;
        for (let i = 0; i < length; i++) buffer[pos + i] = buffer[from + i]!;
        this.pos = pos + length;
        return;
      }
    }
    const slot = this.#idNext;
    this.#idNext = (slot + 1) % texts.length;
    texts[slot] = hex;
    this.#idAt[slot] = pos;
    // Ids are short: a loop here beats a call into Buffer.write's C++ for each of them.
    for (let i = 0; i < hex.length; i += 2) buffer[pos++] = (HEX_VALUE[hex.charCodeAt(i)]! << 4) | HEX_VALUE[hex.charCodeAt(i + 1)]!;
    this.pos = pos;
  }

  string(field: number, value: string): void {
    this.tag(field, 2);
    const length = value.length;
    this.ensure(length * 3 + 5);
    const buffer = this.buffer;
    // Short ASCII text (attribute names, methods, paths, ids) is copied here; anything else goes
    // through Buffer.write, whose UTF-8 length is known only once written: one length byte is
    // reserved and the text shifted when the length takes more.
    const start = this.pos + 1;
    if (length < 0x80) {
      let i = 0;
      for (; i < length; i++) {
        const code = value.charCodeAt(i);
        if (code >= 0x80) break;
        buffer[start + i] = code;
      }
      if (i === length) {
        buffer[start - 1] = length;
        this.pos = start + length;
        return;
      }
    }
    const written = buffer.write(value, start, 'utf8');
    this.pos = start + written;
    this.finishLength(start);
  }

  /**
   * A KeyValue { key, AnyValue { string_value } } whose every length fits one byte, in one pass;
   * false (and nothing written) when the value is too long or not ASCII.
   */
  shortStringKeyValue(field: number, keyBytes: Uint8Array, value: string): boolean {
    const length = value.length;
    if (keyBytes.length + 4 + length > 0x7f) return false;
    let pos = this.#keyValueHead(field, keyBytes, length + 2);
    const buffer = this.buffer;
    buffer[pos++] = 0x0a; // string_value, length-delimited
    buffer[pos++] = length;
    for (let i = 0; i < length; i++) {
      const code = value.charCodeAt(i);
      if (code >= 0x80) return false;
      buffer[pos++] = code;
    }
    this.pos = pos;
    return true;
  }

  /** A KeyValue { key, AnyValue { int_value } } for an integer in 0..2^28, in one pass; false otherwise. */
  smallIntKeyValue(field: number, keyBytes: Uint8Array, value: number): boolean {
    if (!(value >= 0 && value < 0x10000000 && Number.isInteger(value))) return false;
    const valueLength = varintSize(value);
    if (keyBytes.length + 3 + valueLength > 0x7f) return false;
    const pos = this.#keyValueHead(field, keyBytes, valueLength + 1);
    this.buffer[pos] = 0x18; // int_value, varint
    this.pos = pos + 1;
    this.varint(value);
    return true;
  }

  /**
   * Writes a KeyValue's tag and length, its key, and its value's tag and length (all one byte each),
   * and returns where the AnyValue's content starts; `pos` is left where it was.
   */
  #keyValueHead(field: number, keyBytes: Uint8Array, anyValueLength: number): number {
    const keyValueLength = keyBytes.length + 2 + anyValueLength;
    this.ensure(keyValueLength + 2);
    const buffer = this.buffer;
    let pos = this.pos;
    buffer[pos++] = (field << 3) | 2;
    buffer[pos++] = keyValueLength;
    for (let i = 0; i < keyBytes.length; i++) buffer[pos++] = keyBytes[i]!;
    buffer[pos++] = 0x12; // value, length-delimited
    buffer[pos++] = anyValueLength;
    return pos;
  }

  /** Bytes already encoded (a cached field). */
  raw(bytes: Uint8Array): void {
    this.ensure(bytes.length);
    const buffer = this.buffer;
    let pos = this.pos;
    for (let i = 0; i < bytes.length; i++) buffer[pos++] = bytes[i]!;
    this.pos = pos;
  }

  /**
   * Starts a length-delimited field whose length is written by `end(start)`. A message that is
   * usually 128 bytes to 16 KiB long (a span) reserves 2 bytes and ends with `endSized`, which then
   * moves nothing in the usual case.
   */
  begin(field: number, lengthBytes: 1 | 2 = 1): number {
    this.tag(field, 2);
    this.ensure(lengthBytes);
    this.pos += lengthBytes;
    return this.pos;
  }

  end(start: number): void {
    this.finishLength(start);
  }

  /** Ends a field begun with 2 length bytes. */
  endSized(start: number): void {
    const length = this.pos - start;
    const buffer = this.buffer;
    if (length >= 0x80 && length < 0x4000) {
      buffer[start - 2] = (length & 0x7f) | 0x80;
      buffer[start - 1] = length >>> 7;
      return;
    }
    // Shorter than two bytes need (a varint is written minimally) or longer than they hold: the
    // message moves back to a one-byte reservation and is finished as any other.
    buffer.copyWithin(start - 1, start, this.pos);
    this.#moved(start);
    this.pos -= 1;
    this.finishLength(start - 1);
  }

  /** Bytes from `start` on moved: ids remembered there are no longer where they were. */
  #moved(start: number): void {
    for (let slot = 0; slot < this.#idTexts.length; slot++) if (this.#idAt[slot]! >= start) this.#idTexts[slot] = null;
  }

  /** Writes the varint length of `[start, pos)` into the byte reserved before `start`. */
  private finishLength(start: number): void {
    const length = this.pos - start;
    if (length < 0x80) {
      this.buffer[start - 1] = length;
      return;
    }
    const extra = varintSize(length) - 1;
    this.ensure(extra);
    this.buffer.copyWithin(start + extra, start, this.pos);
    this.#moved(start);
    this.pos = start - 1;
    this.varint(length);
    this.pos += length;
  }
}

export function varintSize(value: number): number {
  let size = 1;
  while (value > 0x7f) {
    value = Math.floor(value / 128);
    size++;
  }
  return size;
}

const HEX_VALUE = new Uint8Array(128);
for (let digit = 0; digit < 16; digit++) {
  HEX_VALUE['0123456789abcdef'.charCodeAt(digit)] = digit;
  HEX_VALUE['0123456789ABCDEF'.charCodeAt(digit)] = digit;
}
