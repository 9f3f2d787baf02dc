import { expect } from 'chai';
import { execFile, spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { DockerfileParser } from 'dockerfile-ast';
import { parseAllDocuments } from 'yaml';
import { REPO, runCli, startGatewayFrom, type GatewayProcess } from './support/gateway-process.ts';
import { send } from './support/http.ts';
import { packed } from './support/packed-project.ts';
import { startRedis, type TestRedis } from './support/redis.ts';
import { closedPort, startUpstream, type TestUpstream } from './support/upstream.ts';

const run = promisify(execFile);
const DEPLOY = join(REPO, 'deploy');
const KUBERNETES = join(DEPLOY, 'kubernetes');

type Manifest = { apiVersion: string; kind: string; metadata: { name: string; labels?: Record<string, string> }; [field: string]: any };

/** Every object of every file the kustomization lists. */
function manifests(): Manifest[] {
  const kustomization = parseAllDocuments(readFileSync(join(KUBERNETES, 'kustomization.yaml'), 'utf8'))[0]!.toJS() as { resources: string[] };
  return kustomization.resources.flatMap((file) =>
    parseAllDocuments(readFileSync(join(KUBERNETES, file), 'utf8')).map((document) => {
      expect(document.errors, file).to.deep.equal([]);
      return document.toJS() as Manifest;
    }),
  );
}

const one = (kind: string, name: string): Manifest => {
  const found = manifests().find((m) => m.kind === kind && m.metadata.name === name);
  expect(found, `${kind} ${name}`).to.not.equal(undefined);
  return found!;
};

/** The ConfigMap's gateway.config.ts. */
const configSource = (): string => one('ConfigMap', 'tollgate-config').data['gateway.config.ts'];

const dockerfile = () => DockerfileParser.parse(readFileSync(join(DEPLOY, 'Dockerfile'), 'utf8'));
const instructions = (keyword: string): string[] =>
  dockerfile().getInstructions().filter((i) => i.getKeyword() === keyword).map((i) => i.getArgumentsContent() ?? '');
/** The HEALTHCHECK's command, in its JSON (exec) form. */
const healthcheck = (): string[] => JSON.parse(/CMD (\[.*\])\s*$/s.exec(instructions('HEALTHCHECK')[0]!)![1]!);

describe('deployment artefacts', function () {
  this.timeout(120_000);

  describe('kubernetes manifests (deploy/kubernetes)', () => {
    it('lists every manifest of the folder in its kustomization', () => {
      const files = readdirSync(KUBERNETES).filter((file) => file.endsWith('.yaml') && file !== 'kustomization.yaml');
      const listed = (parseAllDocuments(readFileSync(join(KUBERNETES, 'kustomization.yaml'), 'utf8'))[0]!.toJS() as { resources: string[] }).resources;
      expect([...listed].sort()).to.deep.equal(files.sort());
    });

    it('are valid objects of their API version and kind (kubernetes-models schemas)', async () => {
      const all = manifests();
      expect(all.map((m) => m.kind).sort()).to.include.members(['ConfigMap', 'Deployment', 'HorizontalPodAutoscaler', 'PodDisruptionBudget', 'Service', 'StatefulSet']);
      for (const manifest of all) {
        const [group, version] = manifest.apiVersion.includes('/') ? manifest.apiVersion.split('/') : [null, manifest.apiVersion];
        const models = (await import(`kubernetes-models/${group ? `${group}/` : ''}${version}`)) as Record<string, new (data: unknown) => { validate(): void }>;
        const Model = models[manifest.kind];
        expect(Model, `${manifest.apiVersion} ${manifest.kind} is a known kind`).to.be.a('function');
        expect(() => new Model!(manifest).validate(), `${manifest.kind} ${manifest.metadata.name}`).not.to.throw();
      }
    });

    it("have no field Kubernetes does not know: each is type-checked against kubernetes-models' types", async () => {
      // The schemas above accept unknown fields; kubectl's strict validation would not. TypeScript's
      // excess property check on an object literal catches a misspelt field at any depth.
      mkdirSync(join(REPO, '.tmp'), { recursive: true });
      const dir = mkdtempSync(join(REPO, '.tmp', 'deploy-types-'));
      try {
        const lines = manifests().flatMap((manifest, i) => {
          const [group, version] = manifest.apiVersion.includes('/') ? manifest.apiVersion.split('/') : [null, manifest.apiVersion];
          return [
            `import type { I${manifest.kind} as T${i} } from 'kubernetes-models/${group ? `${group}/` : ''}${version}';`,
            `export const m${i}: T${i} = ${JSON.stringify(manifest)};`,
          ];
        });
        writeFileSync(join(dir, 'manifests.ts'), lines.join('\n'));
        writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({
          compilerOptions: { strict: true, noEmit: true, module: 'nodenext', moduleResolution: 'nodenext', target: 'es2024', skipLibCheck: true, types: [] },
          files: ['manifests.ts'],
        }));
        const result = await run(join(REPO, 'node_modules/.bin/tsc'), ['-p', dir]).then(() => '', (error: { stdout: string }) => error.stdout);
        expect(result).to.equal('');
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it("has a config that tollgate accepts, and a Deployment that probes that config's admin listener and outlasts its drain", async () => {
      const dir = join(REPO, '.tmp', `deploy-config-${process.pid}`, 'config');
      mkdirSync(dir, { recursive: true });
      const file = join(dir, 'gateway.config.ts');
      writeFileSync(file, configSource());
      const check = await runCli(['check', '--config', file]);
      expect(check.code, check.stderr).to.equal(0);
      const { loadConfig } = await import('../core/config/load-config.ts');
      const { config } = await loadConfig({ path: file });

      const deployment = one('Deployment', 'tollgate');
      const pod = deployment.spec.template.spec;
      const container = pod.containers[0];
      const port = (name: string): number => container.ports.find((p: { name: string }) => p.name === name).containerPort;
      expect(port('http')).to.equal(config.listen.port);
      expect(port('admin')).to.equal(config.admin!.port);
      expect(config.admin!.host, 'the kubelet probes the pod address').to.equal('0.0.0.0');
      expect(container.readinessProbe.httpGet).to.deep.equal({ path: '/readyz', port: 'admin' });
      expect(container.startupProbe.httpGet).to.deep.equal({ path: '/readyz', port: 'admin' });
      expect(container.livenessProbe.httpGet).to.deep.equal({ path: '/healthz', port: 'admin' });
      // The kubelet waits preStop, then SIGTERM starts a drain of up to drainTimeout: both must fit.
      const preStopSeconds = Number(container.lifecycle.preStop.exec.command.at(-1));
      expect(pod.terminationGracePeriodSeconds * 1000).to.be.above(preStopSeconds * 1000 + config.shutdown.drainTimeout);
      // workers: 'auto' follows the CPU limit; a request below it would overcommit the node.
      expect(config.workers).to.equal('auto');
      expect(container.resources.requests.cpu).to.equal(container.resources.limits.cpu);
      // The config is mounted as a folder (updates arrive) where --config points, and reloaded by --watch.
      const configArg = container.args[container.args.indexOf('--config') + 1];
      const mount = container.volumeMounts.find((m: { name: string }) => m.name === 'config');
      expect(dirname(configArg)).to.equal(mount.mountPath);
      expect(mount.subPath).to.equal(undefined);
      expect(container.args).to.include('--watch');
      expect(pod.volumes.find((v: { name: string }) => v.name === 'config').configMap.name).to.equal('tollgate-config');
      // Every variable the config reads comes from the Deployment, except the ports it defaults.
      const read = [...configSource().matchAll(/env\.([A-Z_]+)/g)].map((match) => match[1]!);
      const given = container.env.map((variable: { name: string }) => variable.name);
      expect(read.filter((name) => !given.includes(name))).to.deep.equal(['PORT', 'ADMIN_PORT']);
    });

    it('exposes traffic, not the admin port, and points the Service, HPA and PDB at the Deployment', () => {
      const deployment = one('Deployment', 'tollgate');
      const labels = deployment.spec.template.metadata.labels;
      const matches = (selector: Record<string, string>) => Object.entries(selector).every(([key, value]) => labels[key] === value);
      expect(matches(deployment.spec.selector.matchLabels)).to.equal(true);
      const service = one('Service', 'tollgate');
      expect(matches(service.spec.selector)).to.equal(true);
      expect(service.spec.ports.map((p: { targetPort: string }) => p.targetPort)).to.deep.equal(['http']);
      const hpa = one('HorizontalPodAutoscaler', 'tollgate');
      expect(hpa.spec.scaleTargetRef).to.deep.equal({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'tollgate' });
      expect(hpa.spec.minReplicas).to.be.at.least(2);
      const pdb = one('PodDisruptionBudget', 'tollgate');
      expect(matches(pdb.spec.selector.matchLabels)).to.equal(true);
      expect(pdb.spec.maxUnavailable).to.be.below(hpa.spec.minReplicas);
      // The Services the config defaults to exist among the examples.
      for (const name of ['redis', 'otel-collector']) expect(one('Service', name).metadata.name).to.equal(name);
    });
  });

  describe('Dockerfile (deploy/Dockerfile)', () => {
    it('builds in stages from Node 24 slim and runs as a user that is not root', () => {
      const file = dockerfile();
      const nodeImage = /^NODE_IMAGE=(\S+)$/.exec(instructions('ARG')[0]!)![1]!;
      expect(nodeImage).to.match(/^node:24(\.\d+)*-[a-z]+-slim$/);
      const froms = file.getFROMs();
      expect(froms.length).to.be.at.least(2);
      for (const from of froms) expect(from.getArgumentsContent()).to.match(/^\$\{NODE_IMAGE\} AS \w+$/);
      expect(instructions('RUN').join('\n')).to.include('npm ci --omit=dev');
      const users = instructions('USER');
      expect(users.at(-1)).to.be.oneOf(['node', '1000']);
      // USER comes before the command the image runs, in the last stage.
      const keywords = file.getInstructions().map((i) => i.getKeyword());
      expect(keywords.lastIndexOf('USER')).to.be.above(keywords.lastIndexOf('FROM'));
      expect(instructions('EXPOSE')[0]!.split(' ')).to.deep.equal(['8080', '9901']);
    });

    describe('its steps, run here as the image runs them', () => {
      let project: string;
      let redis: TestRedis;
      let upstream: TestUpstream;
      let gateway: GatewayProcess | undefined;
      let adminPort: number;

      before(async () => {
        // A gateway project as a user has it: a package.json that depends on tollgate and its lock
        // file. Outside this repository, so nothing resolves from the repository's node_modules.
        project = mkdtempSync(join(tmpdir(), 'tollgate-image-'));
        copyFileSync(await packed(), join(project, 'tollgate.tgz'));
        writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'my-gateway', private: true, type: 'module', dependencies: { tollgate: 'file:tollgate.tgz' } }));
        await run('npm', ['install', '--package-lock-only', '--no-audit', '--no-fund', '--prefer-offline'], { cwd: project });
        redis = await startRedis();
        upstream = await startUpstream();
        adminPort = await closedPort();
      });
      after(async () => {
        await gateway?.stop();
        await redis?.stop();
        await upstream?.close();
        if (project) rmSync(project, { recursive: true, force: true });
      });

      /** Runs the HEALTHCHECK command as Docker would (in the container, with its environment). */
      const healthy = async (): Promise<boolean> => {
        const [command, ...args] = healthcheck();
        expect(command).to.equal('node');
        return new Promise((resolve) => {
          const child = spawn(process.execPath, args, { env: { ...process.env, ADMIN_PORT: String(adminPort) }, stdio: 'ignore' });
          child.on('exit', (code) => resolve(code === 0));
        });
      };

      it("installs with its RUN step, starts with the Deployment's command on the ConfigMap at /app/config, serves, and passes its HEALTHCHECK", async () => {
        // The deps stage: its RUN's npm command, on the project's package.json and lock file.
        const install = /npm ci .*$/.exec(instructions('RUN')[0]!)![0].split(' ');
        await run(install[0]!, [...install.slice(1), '--prefer-offline'], { cwd: project });
        // /app is the project; the ConfigMap folder sits inside it, so 'tollgate' resolves from /app/node_modules.
        mkdirSync(join(project, 'config'));
        writeFileSync(join(project, 'config/gateway.config.ts'), configSource());
        const args: string[] = one('Deployment', 'tollgate').spec.template.spec.containers[0].args;
        expect(args.slice(0, 3)).to.deep.equal(['node', 'node_modules/tollgate/core/cli/tollgate.js', 'start']);
        const cmd = JSON.parse(instructions('CMD').at(-1)!) as string[];
        expect(cmd.slice(0, 3), "the Dockerfile's CMD runs the same CLI").to.deep.equal(args.slice(0, 3));
        const configPath = args[args.indexOf('--config') + 1]!.replace(/^\/app\//, `${project}/`);
        expect(await healthy(), 'nothing listens yet').to.equal(false);
        gateway = await startGatewayFrom(configPath, {
          cli: join(project, args[1]!),
          cwd: project,
          args: args.slice(args.indexOf('--config') + 2),
          env: { PORT: '0', ADMIN_PORT: String(adminPort), REDIS_URL: redis.url, APP_URL: upstream.url, OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${await closedPort()}` },
        });
        expect(await healthy()).to.equal(true);
        const res = await send(`${gateway.url}/api/things`);
        expect(res.status).to.equal(200);
        expect(res.headers['ratelimit-policy']).to.equal('"100-per-1m";q=100;w=60');
        expect((await send(`http://127.0.0.1:${adminPort}/readyz`)).status).to.equal(200);
        await gateway.stop('SIGTERM');
        gateway = undefined;
        expect(await healthy(), 'after the drain').to.equal(false);
      });
    });
  });

  describe('systemd unit (deploy/systemd/tollgate.service)', () => {
    const unit = join(DEPLOY, 'systemd/tollgate.service');
    const setting = (name: string): string => new RegExp(`^${name}=(.*)$`, 'm').exec(readFileSync(unit, 'utf8'))![1]!;

    it('passes systemd-analyze verify without a word', async () => {
      // verify also checks that ExecStart's program exists: the unit names /usr/bin/node, which
      // this machine need not have, so the copy verified names the node running the tests.
      const dir = mkdtempSync(join(tmpdir(), 'tollgate-unit-'));
      try {
        const copy = join(dir, 'tollgate.service');
        writeFileSync(copy, readFileSync(unit, 'utf8').replace(/^ExecStart=\/usr\/bin\/node /m, `ExecStart=${process.execPath} `));
        const { stdout, stderr } = await run('systemd-analyze', ['verify', copy]);
        expect(stdout + stderr).to.equal('');
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('runs the CLI the image runs, reloads with SIGHUP and gives the drain time before it kills', () => {
      const [node, cli, command] = setting('ExecStart').split(' ');
      expect(node).to.match(/^\/.*node$/);
      expect([cli, command]).to.deep.equal(['node_modules/tollgate/core/cli/tollgate.js', 'start']);
      expect(setting('ExecReload')).to.equal('/bin/kill -HUP $MAINPID');
      expect(setting('KillSignal')).to.equal('SIGTERM');
      expect(setting('KillMode'), 'SIGTERM to the primary only: it drains its workers').to.equal('mixed');
      expect(Number(setting('TimeoutStopSec')) * 1000).to.be.above(30_000); // the default drainTimeout
    });
  });
});
