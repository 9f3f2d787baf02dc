import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { nullRecord } from '../core/null-record.ts';
import { REPO } from './support/gateway-process.ts';

describe('records of names from a request (headers, path parameters, plugin state)', () => {
  it('inherit nothing: __proto__ and constructor are fields like any other, toString is absent', () => {
    const record = nullRecord<string>();
    expect(record.constructor).to.equal(undefined);
    expect('toString' in record).to.equal(false);
    record['__proto__'] = 'a';
    record['constructor'] = 'b';
    expect(Object.keys(record)).to.deep.equal(['__proto__', 'constructor']);
    expect(record['__proto__']).to.equal('a');
    expect(Object.getPrototypeOf(Object.getPrototypeOf(record))).to.equal(null);
  });

  it("stay in V8's fast mode when filled with a request's headers, where Object.create(null) makes a dictionary", () => {
    // V8's own check, in a child with natives syntax; Object.create(null) is the control.
    const script = `
      import { nullRecord } from ${JSON.stringify(`${REPO}core/null-record.ts`)};
      const fill = (record) => { for (const name of ['host', 'accept', 'user-agent', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-request-id']) record[name] = 'v'; return record; };
      console.log(JSON.stringify([%HasFastProperties(fill(nullRecord())), %HasFastProperties(fill(Object.create(null)))]));
    `;
    const run = spawnSync(process.execPath, ['--allow-natives-syntax', '--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(run.stderr).to.equal('');
    expect(JSON.parse(run.stdout)).to.deep.equal([true, false]);
  });
});
