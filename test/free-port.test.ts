import { expect } from 'chai';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { ephemeralRange, freePort } from '../core/cluster/free-port.ts';

describe('listen.port 0 (the port the primary picks for its workers)', () => {
  it("picks ports below the kernel's ephemeral range, where other programs' listen(0) and outgoing connections never land", async () => {
    const range = ephemeralRange();
    expect(range, '/proc/sys/net/ipv4/ip_local_port_range').to.not.equal(null);
    for (let i = 0; i < 10; i++) {
      const port = await freePort('127.0.0.1');
      // A host whose ephemeral range starts this low leaves nothing below it: the kernel's choice then.
      if (range!.low <= 10_001) expect(port).to.be.within(range!.low, range!.high);
      else expect(port).to.be.at.least(10_000).and.below(range!.low);
    }
  });

  it('gives a port that can then be listened on', async () => {
    const port = await freePort('127.0.0.1');
    const server = createServer().listen(port, '127.0.0.1');
    await once(server, 'listening');
    server.close();
  });
});
