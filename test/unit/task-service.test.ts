// TaskService against a scripted backend: the event-order invariants written next to the code
// (src/shim/task-service.ts, "Event order") and the error codes of the state machine.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { containerd, runtimeoptions } from '../../src/gen/proto.js';
import { TaskService, requestIds, sharesPidNamespace, type GroupDeps } from '../../src/shim/task-service.js';
import { logLevel, setLogLevel } from '../../src/shim/log.js';
import { ExitRouter } from '../../src/shim/exit-router.js';
import { StateStore } from '../../src/shim/state-store.js';
import { BACKEND_API_VERSION, NotFoundError, type Backend, type BackendInit, type CreateRequest, type Exit, type ExecRequest } from '../../src/plugins/api/index.js';
import type { MonitorLink } from '../../src/shim/monitor-link.js';
import type { EventPublisher } from '../../src/shim/events.js';
import type { Handler, RequestContext } from '../../src/ttrpc/server.js';
import { Code } from '../../src/ttrpc/codes.js';
import pino from 'pino';

const task = containerd.task.v2;

/**
 * A backend with no host processes at all (as a VM's would be): its "pids" are its own numbers, which no
 * host process has; exits, OOM kills and statistics come from it when the test says so; signals, stdin's
 * close and its state are recorded. It proves the core assumes nothing about host pids.
 */
class ScriptedBackend {
  init!: BackendInit;
  factoryCalls = 0;
  closed = 0;
  /** far above any host pid_max, so that a core that signalled them on the host would fail loudly */
  nextPid = 900_000_100;
  /** Called inside start(): lets a test make the init exit while Start is still running. */
  duringStart: (() => void) | null = null;
  duringExec: ((req: ExecRequest, pid: number) => void) | null = null;
  killed: Array<{ execId: string; signal: number; all: boolean }> = [];
  /** Kill resolves only once this has (a test holds a kill in flight). */
  killGate: Promise<void> | null = null;
  /** Create resolves only once this has; `creating` resolves when a Create has reached the backend. */
  createGate: Promise<void> | null = null;
  creating: () => void = () => undefined;
  closedIo: string[] = [];
  finished = new Set<string>();
  paused = false;
  state = new Map<string, unknown>();
  adopted: Array<{ id: string; state: unknown }> = [];
  options: Array<Record<string, unknown>> = [];
  created: CreateRequest[] = [];
  execs: ExecRequest[] = [];

  made: number[] = [];
  newPid(): number {
    this.made.push(this.nextPid);
    return this.nextPid++;
  }

  exit(id: string, execId: string, pid: number, status: number): void {
    this.finished.add(`${id}/${execId}`);
    this.init.exited(id, execId, { pid, status, at: new Date() } satisfies Exit);
  }

  factory = (init: BackendInit): Backend => {
    this.init = init;
    this.factoryCalls++;
    return {
      name: 'scripted',
      create: async (req) => {
        this.state.set(req.id, { created: req.id, type: req.containerType });
        this.options.push(req.options);
        this.created.push(req);
        this.creating();
        await this.createGate;
        return { pid: this.newPid() };
      },
      adopt: (req) => { this.adopted.push({ id: req.id, state: req.state }); },
      start: async () => { this.duringStart?.(); },
      exec: async (req) => { this.execs.push(req); const pid = this.newPid(); this.duringExec?.(req, pid); return { pid }; },
      deleteExec: async () => undefined,
      signal: async (id, execId, signal, all) => {
        this.killed.push({ execId, signal, all });
        await this.killGate;
        if (this.finished.has(`${id}/${execId}`)) throw new NotFoundError('process already finished');
      },
      delete: async () => undefined,
      pids: async () => [...this.made],
      pause: async () => { this.paused = true; },
      resume: async () => { this.paused = false; },
      update: async () => undefined,
      stats: async (id) => ({ typeUrl: 'example.com/scripted.Metrics', value: Buffer.from(`stats of ${id}`) }),
      resizePty: async () => undefined,
      closeIo: async (ioKey) => { this.closedIo.push(ioKey); },
      stateOf: (id) => this.state.get(id),
      close: async () => { this.closed++; },
    };
  };
}

/** The kill records of the init (execId ''), as the older assertions list them. */
const initKills = (b: ScriptedBackend) => b.killed.filter((k) => k.execId === '').map(({ signal, all }) => ({ signal, all }));

function setup(spec: object = { linux: { namespaces: [{ type: 'pid' }] } }, deps: Partial<GroupDeps> = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrt-ts-'));
  const bundle = path.join(dir, 'bundle');
  fs.mkdirSync(bundle);
  fs.writeFileSync(path.join(bundle, 'config.json'), JSON.stringify(spec));
  const topics: string[] = [];
  const oomWatched: Array<{ key: string; version: number; dir: string }> = [];
  const mounts: string[] = [];
  const events = { publish: (_ns: string, topic: string) => { topics.push(topic); } } as unknown as EventPublisher;
  const link = {
    hello: { namespace: 'ns', pid: 42, containerId: 'pod1' },
    ready: async () => undefined,
    release: async () => undefined,
    closeIo: async () => { throw new Error('the core closed stdin at the monitor itself'); },
    mount: async (_type: string, _source: string, target: string) => { mounts.push(`mount ${target}`); },
    umount: async (target: string) => { mounts.push(`umount ${target}`); },
    oomWatch: async (key: string, version: number, dir: string) => { oomWatched.push({ key, version, dir }); },
  } as unknown as MonitorLink;
  const backend = new ScriptedBackend();
  const newService = () => new TaskService({
    link, router: new ExitRouter(), events, log: pino({ level: 'silent' }), store: new StateStore(path.join(dir, 'state')),
    onEmpty: () => undefined, loadBackend: async () => backend.factory, ...deps,
  });
  let service = newService();
  let h = service.handlers();
  /** A new daemon: a fresh service restored from what the first one recorded. */
  const restart = () => { service = newService(); h = service.handlers(); };
  const ctx = (): RequestContext => ({ service: 'containerd.task.v2.Task', method: '', metadata: new Map(), signal: new AbortController().signal });
  const call = (m: string, bytes: Uint8Array): Promise<Uint8Array> => (h[m] as Handler)(bytes, ctx());
  /** A Create in containerd namespace ns (the request's metadata). */
  const createIn = (ns: string, id: string): Promise<Uint8Array> => (h.Create as Handler)(task.CreateTaskRequest.encode({ id, bundle }).finish(),
    { ...ctx(), metadata: new Map([['containerd-namespace-ttrpc', [ns]]]) });
  const rpc = {
    create: (id: string, more: containerd.task.v2.CreateTaskRequest.$Properties = {}) =>
      call('Create', task.CreateTaskRequest.encode({ id, bundle, ...more }).finish()),
    start: (id: string, execId = '') => call('Start', task.StartRequest.encode({ id, execId }).finish()),
    exec: (id: string, execId: string, spec: object = { args: ['true'] }) => call('Exec', task.ExecProcessRequest.encode({
      id, execId, spec: { typeUrl: 'types.containerd.io/opencontainers/runtime-spec/1/Process', value: Buffer.from(JSON.stringify(spec)) },
    }).finish()),
    wait: async (id: string, execId = '') => task.WaitResponse.decode(await call('Wait', task.WaitRequest.encode({ id, execId }).finish())),
    state: async (id: string, execId = '') => task.StateResponse.decode(await call('State', task.StateRequest.encode({ id, execId }).finish())),
    kill: (id: string, execId = '', signal = 9) => call('Kill', task.KillRequest.encode({ id, execId, signal }).finish()),
    delete: (id: string, execId = '') => call('Delete', task.DeleteRequest.encode({ id, execId }).finish()),
    pause: (id: string) => call('Pause', task.PauseRequest.encode({ id }).finish()),
    resume: (id: string) => call('Resume', task.ResumeRequest.encode({ id }).finish()),
    pids: async (id: string) => task.PidsResponse.decode(await call('Pids', task.PidsRequest.encode({ id }).finish())),
    stats: async (id: string) => task.StatsResponse.decode(await call('Stats', task.StatsRequest.encode({ id }).finish())),
    closeIo: (id: string, execId = '') => call('CloseIO', task.CloseIORequest.encode({ id, execId, stdin: true }).finish()),
    update: (id: string, json: string) => call('Update', task.UpdateTaskRequest.encode({
      id, resources: { typeUrl: 'types.containerd.io/opencontainers/runtime-spec/1/LinuxResources', value: Buffer.from(json) },
    }).finish()),
  };
  return { rpc, createIn, topics, backend, restart, oomWatched, mounts, bundle, service: () => service, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

const code = (c: Code) => (e: unknown) => (e as { code?: number }).code === c;
const tick = () => new Promise((r) => setImmediate(r));

test('an init that exits while Start runs: TaskStart is published before its TaskExit, and Wait sees it', async () => {
  const t = setup();
  await t.rpc.create('c1');
  t.backend.duringStart = () => t.backend.exit('c1', '', 100, 3);
  await t.rpc.start('c1');
  assert.deepEqual(t.topics, ['/tasks/create', '/tasks/start', '/tasks/exit']);
  assert.equal((await t.rpc.wait('c1')).exitStatus, 3);
  await t.rpc.delete('c1');
  assert.deepEqual(t.topics.at(-1), '/tasks/delete');
  t.cleanup();
});

test('exec lifecycle: added, started, exit; an exec that dies during its Start is not lost', async () => {
  const t = setup();
  await t.rpc.create('c1');
  await t.rpc.start('c1');
  await t.rpc.exec('c1', 'e1');
  t.backend.duringExec = (req, pid) => t.backend.exit('c1', req.execId, pid, 5);
  await t.rpc.start('c1', 'e1');
  assert.deepEqual(t.topics, ['/tasks/create', '/tasks/start', '/tasks/exec-added', '/tasks/exec-started', '/tasks/exit']);
  assert.equal((await t.rpc.wait('c1', 'e1')).exitStatus, 5);
  assert.equal((await t.rpc.state('c1', 'e1')).status, containerd.v1.types.Status.STOPPED);
  await t.rpc.delete('c1', 'e1');
  assert.equal(t.topics.length, 5, 'an exec delete publishes nothing');
  await assert.rejects(t.rpc.state('c1', 'e1'), code(Code.NotFound));
  t.cleanup();
});

test("every exec's TaskExit comes before its init's TaskExit", async () => {
  const t = setup({ linux: { namespaces: [] } });
  await t.rpc.create('c1');
  await t.rpc.start('c1');
  await t.rpc.exec('c1', 'e1');
  await t.rpc.start('c1', 'e1');
  t.topics.length = 0;
  t.backend.exit('c1', '', 100, 0);
  await tick();
  assert.deepEqual(t.topics, [], 'the init exit is held while the exec runs');
  assert.deepEqual(initKills(t.backend), [{ signal: 9, all: true }], 'a shared pid namespace: the container is killed');
  assert.equal((await t.rpc.state('c1')).status, containerd.v1.types.Status.RUNNING);
  await assert.rejects(t.rpc.exec('c1', 'e2'), code(Code.FailedPrecondition));
  t.backend.exit('c1', 'e1', 101, 137);
  assert.deepEqual(t.topics, ['/tasks/exit', '/tasks/exit']);
  assert.equal((await t.rpc.wait('c1', 'e1')).exitStatus, 137);
  assert.equal((await t.rpc.wait('c1')).exitStatus, 0);
  t.cleanup();
});

test('a pid namespace is shared when the spec has none, or joins one by path (runc-v2: ShouldKillAllOnExit)', () => {
  assert.equal(sharesPidNamespace({}), true);
  assert.equal(sharesPidNamespace({ linux: { namespaces: [{ type: 'network' }] } }), true);
  assert.equal(sharesPidNamespace({ linux: { namespaces: [{ type: 'pid', path: '/proc/7/ns/pid' }] } }), true);
  assert.equal(sharesPidNamespace({ linux: { namespaces: [{ type: 'pid' }] } }), false);
  assert.equal(sharesPidNamespace({ linux: { namespaces: [{ type: 'pid', path: '' }] } }), false);
});

test('an init that joined a pid namespace by path: the container is killed before its TaskExit, with no exec running', async () => {
  const t = setup({ linux: { namespaces: [{ type: 'pid', path: '/proc/1/ns/pid' }] } });
  await t.rpc.create('c1');
  await t.rpc.start('c1');
  let finishKill!: () => void;
  t.backend.killGate = new Promise<void>((r) => { finishKill = r; });
  t.topics.length = 0;
  t.backend.exit('c1', '', 100, 0);
  await tick();
  assert.deepEqual(initKills(t.backend), [{ signal: 9, all: true }]);
  assert.deepEqual(t.topics, [], 'no TaskExit while the rest of the container is being killed');
  finishKill();
  await tick();
  assert.deepEqual(t.topics, ['/tasks/exit']);
  assert.equal((await t.rpc.wait('c1')).exitStatus, 0);
  t.cleanup();
});

test('an init with a pid namespace of its own: its exit kills nothing', async () => {
  const t = setup();
  await t.rpc.create('c1');
  await t.rpc.start('c1');
  t.backend.exit('c1', '', 100, 0);
  assert.equal((await t.rpc.wait('c1')).exitStatus, 0);
  assert.deepEqual(initKills(t.backend), []);
  t.cleanup();
});

test('end to end through a backend with no host processes: signals, stats, stdin, state and exits go through the backend', async () => {
  const t = setup();
  const specPath = path.join(t.bundle, 'config.json');
  fs.writeFileSync(specPath, JSON.stringify({ annotations: { 'io.kubernetes.cri.container-type': 'sandbox' }, linux: { namespaces: [{ type: 'pid' }] } }));
  await t.rpc.create('c1');
  assert.equal(t.backend.factoryCalls, 1);
  assert.deepEqual(t.backend.init.group, { id: 'pod1', namespace: 'ns' });
  await t.rpc.start('c1');
  await t.rpc.exec('c1', 'e1');
  await t.rpc.start('c1', 'e1');
  // Kill of an exec and of the init: to the backend, by id; nothing is signalled on the host
  await t.rpc.kill('c1', 'e1', 15);
  await t.rpc.kill('c1', '', 10);
  assert.deepEqual(t.backend.killed, [{ execId: 'e1', signal: 15, all: false }, { execId: '', signal: 10, all: false }]);
  // Stats: the backend's own metrics Any, passed on as it is
  const st = await t.rpc.stats('c1');
  assert.equal(st.stats?.typeUrl, 'example.com/scripted.Metrics');
  assert.equal(Buffer.from(st.stats!.value!).toString(), 'stats of c1');
  // CloseIO: to the backend, with the process's io key
  await t.rpc.closeIo('c1', 'e1');
  assert.deepEqual(t.backend.closedIo, ['c1/e1']);
  // exits keyed by container and exec id
  t.backend.exit('c1', 'e1', 900_000_101, 143);
  assert.equal((await t.rpc.wait('c1', 'e1')).exitStatus, 143);
  await assert.rejects(t.rpc.kill('c1', 'e1', 9), code(Code.NotFound), 'an exited exec');
  await t.rpc.delete('c1', 'e1');
  // a restarted daemon hands the backend the state it kept for the container
  t.restart();
  await t.rpc.state('c1');
  assert.deepEqual(t.backend.adopted, [{ id: 'c1', state: { created: 'c1', type: 'sandbox' } }]);
  assert.equal(t.backend.factoryCalls, 2, 'one instance per group in the new daemon');
  t.backend.exit('c1', '', 900_000_100, 0);
  assert.equal((await t.rpc.wait('c1')).exitStatus, 0);
  await t.rpc.delete('c1');
  assert.equal(t.backend.closed, 1, 'the group instance is closed with its last container');
  assert.deepEqual(t.oomWatched, []);
  t.cleanup();
});

test("a Create hands the backend its own [backends.<name>] table of the options, and no other", async () => {
  const t = setup();
  const file = path.join(t.bundle, 'tsrt.toml');
  fs.writeFileSync(file, 'Backend = "scripted"\n[backends.scripted]\nspeed = "fast"\n[backends.other]\nx = 1\n');
  const options = { typeUrl: 'runtimeoptions.v1.Options', value: runtimeoptions.v1.Options.encode({ configPath: file }).finish() };
  await t.rpc.create('c1', { options });
  await t.rpc.create('c2');
  assert.deepEqual(t.backend.options, [{ speed: 'fast' }, {}]);
  t.cleanup();
});

test('one backend instance per group: the second container of a pod gets the same one; it is closed with the last', async () => {
  const t = setup();
  await t.rpc.create('c1');
  await t.rpc.create('c2');
  assert.equal(t.backend.factoryCalls, 1);
  await t.rpc.delete('c1');
  assert.equal(t.backend.closed, 0);
  await t.rpc.delete('c2');
  assert.equal(t.backend.closed, 1);
  await t.rpc.create('c3');
  assert.equal(t.backend.factoryCalls, 2, 'a new instance once the group had none left');
  t.cleanup();
});

test('a Create whose backend plugin is refused fails with the plugin\'s message; the group goes on serving', async () => {
  const pluginDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrt-ts-plugins-'));
  const broken = path.join(pluginDir, 'broken.mjs');
  fs.writeFileSync(broken, `export const apiVersion = ${BACKEND_API_VERSION};\nexport function createBackend() { throw new Error("boom"); }\n`);
  const logged: string[] = [];
  const log = pino({ level: 'error' }, { write: (line: string) => { logged.push(line); } });
  let t: ReturnType<typeof setup>;
  const { loadBackend } = await import('../../src/plugins/registry.js');
  t = setup(undefined, {
    log,
    loadBackend: async (name, dir) => (name === 'broken' ? loadBackend(name, pluginDir) : t.backend.factory),
  });
  fs.writeFileSync(path.join(t.bundle, 'config.json'), JSON.stringify({ annotations: { 'io.tsrt.backend': 'broken' } }));
  await assert.rejects(t.rpc.create('c1'), (e: { code?: number; message?: string }) =>
    e.code === Code.FailedPrecondition && e.message === `backend plugin ${broken}: createBackend threw: boom: failed precondition`);
  assert.ok(logged.some((l) => l.includes('backend refused') && l.includes(broken)), logged.join(''));
  // the same service creates the next container on another backend
  fs.writeFileSync(path.join(t.bundle, 'config.json'), JSON.stringify({}));
  await t.rpc.create('c2');
  await t.rpc.start('c2');
  assert.equal((await t.rpc.state('c2')).status, containerd.v1.types.Status.RUNNING);
  t.cleanup();
  fs.rmSync(pluginDir, { recursive: true, force: true });
});

test('an init exit held for its execs survives a daemon restart', async () => {
  const t = setup();
  await t.rpc.create('c1');
  await t.rpc.start('c1');
  await t.rpc.exec('c1', 'e1');
  await t.rpc.start('c1', 'e1');
  t.backend.exit('c1', '', 100, 0);
  t.restart();
  assert.equal((await t.rpc.state('c1')).status, containerd.v1.types.Status.RUNNING, 'restored, still held');
  t.topics.length = 0;
  t.backend.exit('c1', 'e1', 101, 137);
  assert.deepEqual(t.topics, ['/tasks/exit', '/tasks/exit']);
  assert.equal((await t.rpc.state('c1')).status, containerd.v1.types.Status.STOPPED);
  t.cleanup();
});

test('an OOM kill the backend reports is a TaskOOM, ahead of the exit it caused; the core watches no cgroup itself', async () => {
  const t = setup();
  await t.rpc.create('c1');
  await t.rpc.start('c1');
  t.backend.init.oom('c1');
  t.backend.init.oom('no-such-container');
  t.backend.exit('c1', '', 900_000_100, 137);
  await tick();
  assert.deepEqual(t.topics, ['/tasks/create', '/tasks/start', '/tasks/oom', '/tasks/exit']);
  assert.deepEqual(t.oomWatched, []);
  t.cleanup();
});

test("a host backend's OOM watch: the monitor's oom event for its key reaches the backend's callback", async () => {
  const t = setup();
  const seen: string[] = [];
  const plain = t.backend.factory;
  t.backend.factory = (init) => {
    const b = plain(init);
    return { ...b, create: async (req) => {
      const r = await b.create(req);
      await init.host.oomWatch(req.id, 1, '/sys/fs/cgroup/memory/x', () => { seen.push(req.id); init.oom(req.id); });
      return r;
    } };
  };
  await t.rpc.create('c1');
  assert.deepEqual(t.oomWatched, [{ key: 'c1', version: 1, dir: '/sys/fs/cgroup/memory/x' }]);
  t.service().oomKilled('c1');
  t.service().oomKilled('unknown-key');
  assert.deepEqual(seen, ['c1']);
  assert.equal(t.topics.at(-1), '/tasks/oom');
  t.cleanup();
});

test('state machine errors carry runc-v2 codes', async () => {
  const t = setup();
  await assert.rejects(t.rpc.state('nope'), code(Code.NotFound));
  await t.rpc.create('c1');
  await assert.rejects(t.rpc.state('c1', 'nope'), code(Code.NotFound));
  await t.rpc.start('c1');
  await assert.rejects(t.rpc.start('c1'), code(Code.Unknown));
  await assert.rejects(t.rpc.delete('c1'), code(Code.Unknown), 'cannot delete a running process');
  await t.rpc.exec('c1', 'e1');
  await assert.rejects(t.rpc.exec('c1', 'e1'), code(Code.AlreadyExists));
  await assert.rejects(t.rpc.exec('c1', '../evil'), code(Code.InvalidArgument));
  await assert.rejects(t.rpc.kill('c1', 'e1'), code(Code.FailedPrecondition), 'kill of an exec not started');
  await assert.rejects(t.rpc.update('c1', 'not json'), code(Code.InvalidArgument));
  await t.rpc.update('c1', '{"memory":{"limit":1048576}}');
  await t.rpc.pause('c1');
  assert.equal((await t.rpc.state('c1')).status, containerd.v1.types.Status.PAUSED);
  await assert.rejects(t.rpc.exec('c1', 'e2'), code(Code.Unknown), 'cannot exec in a paused state');
  await assert.rejects(t.rpc.pause('c1'), code(Code.Unknown));
  await t.rpc.resume('c1');
  await assert.rejects(t.rpc.resume('c1'), code(Code.Unknown));
  assert.deepEqual(t.topics.filter((x) => x === '/tasks/paused' || x === '/tasks/resumed'), ['/tasks/paused', '/tasks/resumed']);
  t.backend.exit('c1', '', 100, 137);
  await assert.rejects(t.rpc.kill('c1'), code(Code.NotFound), 'process already finished');
  await assert.rejects(t.rpc.update('c1', '{}'), code(Code.Unknown));
  await t.rpc.delete('c1');
  await assert.rejects(t.rpc.delete('c1'), code(Code.NotFound));
  t.cleanup();
});

test('bad input to Create: ids, bundle paths and config.json are checked before anything is made, with InvalidArgument or NotFound', async () => {
  const t = setup();
  for (const id of ['', '../x', 'a/b', 'x\0y', '-lead', 'a..b', 'a'.repeat(77)]) {
    await assert.rejects(t.rpc.create(id), (e: unknown) => code(Code.InvalidArgument)(e) && /invalid container id/.test((e as Error).message), JSON.stringify(id));
  }
  await assert.rejects(t.rpc.create('c1', { bundle: 'relative/dir' }), (e: unknown) => code(Code.InvalidArgument)(e) && /not an absolute path/.test((e as Error).message));
  await assert.rejects(t.rpc.create('c1', { bundle: path.join(t.bundle, 'missing') }), (e: unknown) => code(Code.NotFound)(e) && /has no config\.json/.test((e as Error).message));
  fs.writeFileSync(path.join(t.bundle, 'config.json'), '{not json');
  await assert.rejects(t.rpc.create('c1'), code(Code.InvalidArgument));
  fs.writeFileSync(path.join(t.bundle, 'config.json'), '[1]');
  await assert.rejects(t.rpc.create('c1'), (e: unknown) => code(Code.InvalidArgument)(e) && /must hold a JSON object/.test((e as Error).message));
  // the namespace names the runtime's root and the records' directory: containerd's identifier rule
  fs.writeFileSync(path.join(t.bundle, 'config.json'), JSON.stringify({ process: { args: ['true'] } }));
  for (const ns of ['', '..', '../../x', 'a/b', ' ', '\u{1F600}', 'n'.repeat(77)]) {
    await assert.rejects(t.createIn(ns, 'c1'), (e: unknown) => code(Code.InvalidArgument)(e) && /invalid namespace/.test((e as Error).message), JSON.stringify(ns));
  }
  assert.deepEqual(t.topics, [], 'nothing was created');
  await t.createIn('k8s.io', 'c2');
  // the longest id containerd allows is fine
  fs.writeFileSync(path.join(t.bundle, 'config.json'), JSON.stringify({ process: { args: ['true'] } }));
  await t.rpc.create(`a${'b'.repeat(74)}c`);
  t.cleanup();
});

test('Pids marks exec processes with ProcessDetails', async () => {
  const t = setup();
  await t.rpc.create('c1');
  await t.rpc.start('c1');
  await t.rpc.exec('c1', 'e1');
  await t.rpc.start('c1', 'e1');
  const { processes } = await t.rpc.pids('c1');
  assert.deepEqual(processes.map((p) => p.pid), [900_000_100, 900_000_101]);
  const info = processes[1]!.info!;
  assert.equal(processes.length, 2);
  assert.equal(info.typeUrl, 'containerd.runc.v1.ProcessDetails');
  assert.equal(containerd.runc.v1.ProcessDetails.decode(info.value!).execId, 'e1');
  assert.equal(processes[0]!.info, null);
  t.cleanup();
});

// ---- runtime options that act on the shim: ShimCgroup, IoUid/IoGid, and warnings for the rest ----------

const runcOptions = (o: containerd.runc.v1.Options.$Properties) =>
  ({ typeUrl: 'containerd.runc.v1.Options', value: containerd.runc.v1.Options.encode(o).finish() });

/** The container's log (a regular file standing in for containerd's FIFO), as JSON lines. */
function logLines(bundle: string): Array<Record<string, unknown>> {
  return fs.readFileSync(path.join(bundle, 'log'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
}

test('ShimCgroup: the monitor is moved at its first Create, before the runtime runs; later Creates do not move it', async () => {
  const joined: Array<[number, string]> = [];
  let createdAfterJoin = false;
  const t = setup(undefined, { joinCgroup: (pid, cg) => { joined.push([pid, cg]); } });
  try {
    fs.writeFileSync(path.join(t.bundle, 'log'), '');
    const origFactory = t.backend.factory;
    t.backend.factory = (init) => {
      const b = origFactory(init);
      return { ...b, create: async (req) => { createdAfterJoin = joined.length === 1; return b.create(req); } };
    };
    await t.rpc.create('c1', { options: runcOptions({ shimCgroup: '/tsrt-shims' }) });
    assert.deepEqual(joined, [[42, '/tsrt-shims']], 'the monitor (hello.pid) goes to ShimCgroup');
    assert.ok(createdAfterJoin, 'before the runtime is spawned from the monitor');
    await t.rpc.create('c2', { options: runcOptions({ shimCgroup: '/elsewhere' }) });
    assert.equal(joined.length, 1, 'the second container of the pod does not move the shim (runc-v2 alike)');
    assert.ok(logLines(t.bundle).some((l) => l.level === 40 && /ShimCgroup ignored/.test(String(l.msg)) && l.shimCgroup === '/elsewhere'));
    // a restarted daemon knows the monitor was placed
    t.restart();
    await t.rpc.create('c3', { options: runcOptions({ shimCgroup: '/third' }) });
    assert.equal(joined.length, 1);
  } finally {
    t.cleanup();
  }
});

test('ShimCgroup that cannot be joined fails the Create with the reason; the next Create tries again', async () => {
  let fail = true;
  const joined: string[] = [];
  const t = setup(undefined, {
    joinCgroup: (_pid, cg) => { if (fail) throw new Error(`failed to join cgroup ${cg}: ENOENT`); joined.push(cg); },
  });
  try {
    await assert.rejects(t.rpc.create('c1', { options: runcOptions({ shimCgroup: '/missing' }) }),
      (e: { code?: number; message: string }) => e.code === Code.Unknown && /failed to join cgroup \/missing/.test(e.message));
    assert.deepEqual(t.topics, []);
    fail = false;
    await t.rpc.create('c1', { options: runcOptions({ shimCgroup: '/there' }) });
    assert.deepEqual(joined, ['/there']);
  } finally {
    t.cleanup();
  }
});

test("the backend gets containerd's stdio and rootfs mounts as they came, and only the container's own options; the core mounts nothing", async () => {
  const t = setup(undefined, { joinCgroup: () => undefined });
  try {
    const rootfs = [{ type: 'overlay', source: 'overlay', options: ['lowerdir=/l', 'upperdir=/u', 'workdir=/w'] }];
    await t.rpc.create('c1', {
      options: runcOptions({ binaryName: 'crun', ioUid: 100000, shimCgroup: '/there' }), rootfs,
      stdin: '/fifo/c1-stdin', stdout: 'binary:///usr/bin/logger?a=b', stderr: '/fifo/c1-stderr',
    });
    const req = t.backend.created.at(-1)!;
    assert.deepEqual(req.stdio, { stdin: '/fifo/c1-stdin', stdout: 'binary:///usr/bin/logger?a=b', stderr: '/fifo/c1-stderr', terminal: false });
    assert.deepEqual(req.rootfs, rootfs);
    assert.equal(req.config.binaryName, 'crun');
    assert.equal(req.config.ioUid, 100000);
    for (const key of ['shimCgroup', 'metricsAddress', 'logLevel', 'transport', 'pluginDir', 'backend', 'backendOptions']) {
      assert.ok(!(key in req.config), `${key} is not the backend's`);
    }
    await t.rpc.start('c1');
    await t.rpc.exec('c1', 'e1');
    await t.rpc.start('c1', 'e1');
    assert.deepEqual(t.backend.execs.at(-1)!.stdio, { stdin: '', stdout: '', stderr: '', terminal: false });
    t.backend.exit('c1', 'e1', t.backend.made[1]!, 0);
    t.backend.exit('c1', '', t.backend.made[0]!, 0);
    await t.rpc.wait('c1');
    await t.rpc.delete('c1');
    assert.deepEqual(t.mounts, [], 'mounts are the backend\'s to make and take down');
  } finally {
    t.cleanup();
  }
});

test('LogLevel debug: each Task request is a line in its container\'s log, with its method, exec id and outcome', async () => {
  const t = setup();
  const was = logLevel();
  try {
    fs.writeFileSync(path.join(t.bundle, 'log'), '');
    setLogLevel('debug');
    await t.rpc.create('c1');
    await t.rpc.start('c1');
    await assert.rejects(t.rpc.start('c1', 'nope'), code(Code.NotFound));
    const traced = logLines(t.bundle).filter((l) => l.msg === 'task request' || l.msg === 'task request failed');
    assert.deepEqual(traced.map((l) => [l.msg, l.method, l.execId, l.id]), [
      ['task request', 'Create', undefined, 'c1'],
      ['task request', 'Start', undefined, 'c1'],
      ['task request failed', 'Start', 'nope', 'c1'],
    ]);
    assert.ok(traced.every((l) => typeof l.ms === 'number'));
    assert.equal(traced[2]!.code, Code.NotFound);
    setLogLevel('info');
    fs.writeFileSync(path.join(t.bundle, 'log'), '');
    await t.rpc.state('c1');
    assert.deepEqual(logLines(t.bundle).filter((l) => l.msg === 'task request'), [], 'not at info');
  } finally {
    setLogLevel(was);
    t.cleanup();
  }
});

test('requestIds: the container id, and field 2, of a Task request without decoding it', () => {
  assert.deepEqual(requestIds(task.KillRequest.encode({ id: 'c1', execId: 'e1', signal: 9, all: true }).finish()), { id: 'c1', execId: 'e1' });
  assert.deepEqual(requestIds(task.UpdateTaskRequest.encode({ id: 'c2', resources: { typeUrl: 'x', value: Buffer.from('{}') } }).finish()).id, 'c2');
  assert.deepEqual(requestIds(task.PidsRequest.encode({ id: 'c3' }).finish()), { id: 'c3', execId: '' });
  assert.deepEqual(requestIds(Buffer.from([0x0a, 0x05, 0x61])), { id: '', execId: '' }, 'a truncated request');
});

test('options tsrt does not act on are logged as warnings on the container log, not dropped silently', async () => {
  const t = setup();
  try {
    fs.writeFileSync(path.join(t.bundle, 'log'), '');
    await t.rpc.create('c1', { options: runcOptions({ criuWorkPath: '/var/lib/criu', taskApiAddress: 'ttrpc+unix:///x', taskApiVersion: 3, noNewKeyring: true }) });
    const warnings = logLines(t.bundle).filter((l) => l.level === 40 && l.option).map((l) => l.option);
    assert.deepEqual(warnings, ['CriuWorkPath', 'TaskApiAddress', 'TaskApiVersion']);
    const created = logLines(t.bundle).find((l) => l.msg === 'container created');
    assert.ok(created && created.id === 'c1');
  } finally {
    t.cleanup();
  }
});

test('exitSettled: an exit is settled once recorded, or when no process of the core has its pid and no call in flight can give one that pid', async () => {
  let recorded = 0;
  const t = setup(undefined, { onRecorded: () => { recorded++; } });
  const s = t.service();
  assert.equal(s.exitSettled(12345), false, 'the restore of an earlier daemon\'s records is in flight');
  await assert.rejects(t.rpc.state('none'), code(Code.NotFound)); // served once the restore is done
  assert.equal(s.exitSettled(12345), true, 'an unknown pid with nothing in flight: a runtime command\'s, say');
  let open!: () => void;
  t.backend.createGate = new Promise((r) => { open = r; });
  const reached = new Promise<void>((r) => { t.backend.creating = r; });
  const creating = t.rpc.create('c1');
  await reached;
  assert.equal(s.exitSettled(12345), false, 'a Create in flight may yet give its init that pid');
  open();
  await creating;
  const init = t.backend.made[0]!;
  assert.equal(s.exitSettled(12345), true);
  assert.equal(s.exitSettled(init), false, 'the init has not exited');
  await t.rpc.start('c1');
  await t.rpc.exec('c1', 'e1');
  let duringStart: boolean | undefined;
  t.backend.duringExec = (_req, pid) => {
    t.backend.exit('c1', 'e1', pid, 5);
    duringStart = s.exitSettled(pid);
  };
  await t.rpc.start('c1', 'e1');
  assert.equal(duringStart, false, 'an exit held while its Start runs is not recorded yet');
  assert.equal(s.exitSettled(t.backend.made[1]!), true, 'recorded once Start has returned');

  // a new daemon restores the running init: its exit is not settled until the new daemon records it
  t.restart();
  const s2 = t.service();
  await assert.rejects(t.rpc.state('none'), code(Code.NotFound));
  assert.equal(s2.exitSettled(init), false);
  const before = recorded;
  t.backend.exit('c1', '', init, 3);
  assert.equal(s2.exitSettled(init), true, 'the exit is written down');
  assert.ok(recorded > before, 'and that is announced');
  await t.rpc.delete('c1');
  assert.equal(s2.exitSettled(init), true, 'a deleted container\'s pid is nobody\'s');
  t.cleanup();
});

test('a backend call that never returns fails with DeadlineExceeded after RuntimeTimeout and a grace; other requests are served meanwhile', async () => {
  const t = setup();
  const opts = path.join(t.bundle, 'opts.toml');
  fs.writeFileSync(opts, 'RuntimeTimeout = 0.2\n');
  await t.rpc.create('c1', { options: { typeUrl: 'runtimeoptions.v1.Options', value: runtimeoptions.v1.Options.encode({ configPath: opts }).finish() } });
  await t.rpc.start('c1');
  t.backend.killGate = new Promise(() => undefined); // the backend's kill never returns
  const started = Date.now();
  const kill = t.rpc.kill('c1', '', 15);
  assert.equal((await t.rpc.state('c1')).status, containerd.v1.types.Status.RUNNING, 'State is answered while the kill hangs');
  await assert.rejects(kill, (e: unknown) => code(Code.DeadlineExceeded)(e) && /backend runc: kill did not return within 0.4 s/.test((e as Error).message));
  assert.ok(Date.now() - started >= 380, 'not before RuntimeTimeout and its grace');
  t.cleanup();
});
