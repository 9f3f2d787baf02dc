import { randomFillSync } from 'node:crypto';

// A client's id is kept only when it is short and plain, so it cannot inject into logs or headers.
const SANE_ID = /^[A-Za-z0-9._:@+=/-]{1,128}$/;

/** The client's `x-request-id` when it is sane, else a new UUID. */
export function requestIdFor(header: string | string[] | undefined): string {
  return typeof header === 'string' && SANE_ID.test(header) ? header : newRequestId();
}

// New ids are UUID v4, cut from a text of many made at once: crypto.randomUUID() joins each one from
// some thirty string pieces (about 600 bytes of garbage a request), and a slice of a long string is
// one small object. The random bytes come from the same CSPRNG.
const IDS_PER_BATCH = 128;
const UUID_LENGTH = 36;
const random = Buffer.allocUnsafe(IDS_PER_BATCH * 16);
const text = Buffer.allocUnsafe(IDS_PER_BATCH * UUID_LENGTH);
// Each byte's two hex digits, as character codes.
const HEX_DIGITS = new Uint8Array(512);
for (let byte = 0; byte < 256; byte++) {
  HEX_DIGITS[byte * 2] = '0123456789abcdef'.charCodeAt(byte >>> 4);
  HEX_DIGITS[byte * 2 + 1] = '0123456789abcdef'.charCodeAt(byte & 0x0f);
}
// Where the dashes go, as the byte index each group of a UUID ends at: 8-4-4-4-12 digits.
const GROUP_ENDS = [4, 6, 8, 10, 16];
let batch = '';
let next = IDS_PER_BATCH;

export function newRequestId(): string {
  if (next === IDS_PER_BATCH) {
    batch = uuidBatch();
    next = 0;
  }
  const start = next * UUID_LENGTH;
  next++;
  return batch.slice(start, start + UUID_LENGTH);
}

function uuidBatch(): string {
  randomFillSync(random);
  for (let id = 0; id < IDS_PER_BATCH; id++) {
    const bytes = id * 16;
    random[bytes + 6] = (random[bytes + 6]! & 0x0f) | 0x40; // version 4
    random[bytes + 8] = (random[bytes + 8]! & 0x3f) | 0x80; // variant 10xx (RFC 9562)
    let at = id * UUID_LENGTH;
    let i = bytes;
    for (let group = 0; group < GROUP_ENDS.length; group++) {
      if (group > 0) text[at++] = 0x2d; // '-'
      for (const end = bytes + GROUP_ENDS[group]!; i < end; i++) {
        const digits = random[i]! * 2;
        text[at++] = HEX_DIGITS[digits]!;
        text[at++] = HEX_DIGITS[digits + 1]!;
      }
    }
  }
  return text.toString('latin1');
}
