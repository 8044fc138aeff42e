// The native backend's plan (src/plugins/native/plan.ts): OCI specs as ctr and CRI write them → the exact
// text tsrt-launch reads (docs/native-launcher.md), each refusal with its message, the field encoding and
// the mount option table.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CAPABILITIES, MS, RLIMITS, createPlan, encodeField, execPlan, parseMountOptions, servePlan, servedExecPlan,
  type CgroupMountSource, type CreatePlanInput,
} from '../../src/plugins/native/plan.js';
import type { OciSpec } from '../../src/plugins/native/oci.js';
import { InvalidArgumentError, UnimplementedError } from '../../src/plugins/api/errors.js';

const DEFAULT_CAPS = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FSETID', 'CAP_FOWNER', 'CAP_MKNOD', 'CAP_NET_RAW', 'CAP_SETGID', 'CAP_SETUID',
  'CAP_SETFCAP', 'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE', 'CAP_SYS_CHROOT', 'CAP_KILL', 'CAP_AUDIT_WRITE',
];
const MASKED = [
  '/proc/acpi', '/proc/asound', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list',
  '/proc/timer_stats', '/proc/sched_debug', '/sys/firmware', '/proc/scsi',
];
const READONLY = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

/** What `ctr run docker.io/library/busybox:latest c1 sh` writes (containerd 1.6 populateDefaultUnixSpec). */
function ctrSpec(): OciSpec {
  return {
    ociVersion: '1.0.2-dev',
    process: {
      user: { uid: 0, gid: 0 },
      args: ['sh'],
      env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
      cwd: '/',
      capabilities: { bounding: DEFAULT_CAPS, effective: DEFAULT_CAPS, permitted: DEFAULT_CAPS },
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }],
      noNewPrivileges: true,
    },
    root: { path: 'rootfs' },
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
      { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
      { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
      { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['ro', 'nosuid', 'noexec', 'nodev'] },
    ],
    linux: {
      resources: { devices: [{ allow: false, access: 'rwm' }] },
      cgroupsPath: '/default/c1',
      namespaces: [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }, { type: 'network' }],
      maskedPaths: MASKED,
      readonlyPaths: READONLY,
    },
  };
}

/** The hierarchies of this project's hybrid hosts (machine.md), with the container's directories. */
function hybridSources(inner: string): CgroupMountSource[] {
  const v1 = ['cpu', 'cpuacct', 'cpuset', 'memory', 'devices', 'freezer', 'blkio', 'pids'];
  return [
    ...v1.map((c) => ({ name: c, fstype: 'cgroup' as const, hostDir: `/sys/fs/cgroup/${c}${inner}`, options: c })),
    { name: 'systemd', fstype: 'cgroup', hostDir: `/sys/fs/cgroup/systemd${inner}`, options: 'name=systemd' },
    { name: 'unified', fstype: 'cgroup2', hostDir: `/sys/fs/cgroup/unified${inner}`, options: '' },
  ];
}

const BUNDLE = '/run/containerd/io.containerd.runtime.v2.task/default/c1';

function input(spec: OciSpec, over: Partial<CreatePlanInput> = {}): CreatePlanInput {
  const sources = hybridSources('/default/c1');
  return {
    spec, bundle: BUNDLE, errfile: `${BUNDLE}/launch.err`, pidfile: `${BUNDLE}/init.pid`, execFifo: `${BUNDLE}/exec.fifo`,
    cgroupDirs: sources.map((s) => s.hostDir), cgroupVersion: 1, cgroupSources: sources, noPivotRoot: false,
    host: { apparmor: false, selinux: false, kcore: true }, ...over,
  };
}

const CG = '/sys/fs/cgroup';
const HIERARCHIES = ['cpu', 'cpuacct', 'cpuset', 'memory', 'devices', 'freezer', 'blkio', 'pids', 'systemd', 'unified'];

test('ctr\'s default spec on a hybrid host → the exact plan', () => {
  const plan = createPlan(input(ctrSpec()));
  assert.deepEqual(plan.warnings, []);
  const expected = [
    'tsrt-plan 1',
    `errfile ${BUNDLE}/launch.err`,
    `pidfile ${BUNDLE}/init.pid`,
    ...HIERARCHIES.map((h) => `cgroup ${CG}/${h}/default/c1`),
    'ns pid -', 'ns ipc -', 'ns uts -', 'ns mount -', 'ns net -',
    `rootfs ${BUNDLE}/rootfs`,
    'rootprop 540672', // MS_REC|MS_SLAVE, runc's default
    'mount /proc proc proc 14 -', // nosuid|nodev|noexec
    'mount /dev tmpfs tmpfs 16777218 mode=755,size=65536k', // nosuid|strictatime
    'mount /dev/pts devpts devpts 10 newinstance,ptmxmode=0666,mode=0620,gid=5',
    'mount /dev/shm tmpfs shm 14 mode=1777,size=65536k',
    'mount /dev/mqueue mqueue mqueue 14 -',
    'mount /sys sysfs sysfs 15 -',
    // type cgroup: a tmpfs, the container's own directory of each hierarchy bound read-only, the tmpfs made read-only
    `mount ${CG} tmpfs tmpfs 14 mode=755`,
    ...HIERARCHIES.map((h) => `mount ${CG}/${h} bind ${CG}/${h}/default/c1 4111 -`),
    `mount ${CG} tmpfs tmpfs 47 mode=755`, // MS_REMOUNT|ro|nosuid|nodev|noexec
    'device /dev/null c 1 3 438 0 0', 'device /dev/zero c 1 5 438 0 0', 'device /dev/full c 1 7 438 0 0',
    'device /dev/random c 1 8 438 0 0', 'device /dev/urandom c 1 9 438 0 0', 'device /dev/tty c 5 0 438 0 0',
    'symlink /proc/self/fd /dev/fd', 'symlink /proc/self/fd/0 /dev/stdin', 'symlink /proc/self/fd/1 /dev/stdout',
    'symlink /proc/self/fd/2 /dev/stderr', 'symlink pts/ptmx /dev/ptmx', 'symlink /proc/kcore /dev/core',
    'pivot 1',
    ...MASKED.map((p) => `mask ${p}`),
    ...READONLY.map((p) => `readonly ${p}`),
    'rlimit 7 1024 1024',
    'groups',
    'user 0 0',
    'umask 0022',
    'cwd /',
    'caps bounding a80425fb', 'caps effective a80425fb', 'caps inheritable 0', 'caps permitted a80425fb', 'caps ambient 0',
    'nonewprivs',
    'env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    'arg sh',
    `execfifo ${BUNDLE}/exec.fifo`,
  ];
  assert.equal(plan.text, `${expected.join('\n')}\n`);
});

/** A CRI (containerd 1.7) app container of a pod with user namespaces: it joins the sandbox's namespaces. */
function criSpec(): OciSpec {
  const spec = ctrSpec();
  const sandbox = '/proc/4242/ns';
  spec.process = {
    ...spec.process!, args: ['/pause-not', '--flag', 'a b'], cwd: '/app', terminal: false, oomScoreAdj: 1000,
    user: { uid: 1000, gid: 1000, additionalGids: [1000, 10], umask: 0o027 },
    env: ['PATH=/usr/bin:/bin', 'HOSTNAME=pod-a'],
    rlimits: [],
    capabilities: { bounding: ['CAP_CHOWN', 'CAP_KILL'], effective: ['CAP_KILL'], permitted: ['CAP_CHOWN', 'CAP_KILL'], ambient: ['CAP_KILL'] },
    apparmorProfile: 'cri-containerd.apparmor.d',
  };
  spec.root = { path: '/run/containerd/io.containerd.runtime.v2.task/k8s.io/abc/rootfs', readonly: true };
  spec.hostname = 'pod-a';
  spec.mounts = [
    ...spec.mounts!.filter((m) => m.type !== 'cgroup'),
    { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'] },
    { destination: '/etc/hosts', type: 'bind', source: '/var/lib/containerd/sandboxes/s1/hosts', options: ['rbind', 'rprivate', 'rw'] },
    { destination: '/data', type: 'bind', source: 'volumes/data', options: ['rbind', 'rslave', 'ro', 'nosuid'] },
  ];
  spec.linux = {
    ...spec.linux!,
    cgroupsPath: '/kubepods/besteffort/pod1/abc',
    namespaces: [
      { type: 'pid' }, { type: 'ipc', path: `${sandbox}/ipc` }, { type: 'uts', path: `${sandbox}/uts` }, { type: 'mount' },
      { type: 'network', path: '/var/run/netns/cni-1234' }, { type: 'user', path: `${sandbox}/user` }, { type: 'cgroup' },
    ],
    uidMappings: [{ containerID: 0, hostID: 65536, size: 65536 }],
    gidMappings: [{ containerID: 0, hostID: 65536, size: 65536 }],
    sysctl: { 'net.ipv4.ip_unprivileged_port_start': '0', 'kernel.shm_rmid_forced': '1' },
    rootfsPropagation: 'rslave',
    devices: [{ path: '/dev/fuse', type: 'c', major: 10, minor: 229, fileMode: 0o600, uid: 0, gid: 0 }, { path: '/dev/null', type: 'c', major: 1, minor: 3 }],
  };
  return spec;
}

test('a CRI pod container: namespaces joined by path, the user namespace\'s maps not rewritten, a cgroup namespace', () => {
  const inner = '/kubepods/besteffort/pod1/abc';
  const sources = hybridSources(inner);
  const plan = createPlan(input(criSpec(), {
    bundle: '/run/containerd/io.containerd.runtime.v2.task/k8s.io/abc', cgroupSources: sources, cgroupDirs: sources.map((s) => s.hostDir),
    errfile: '/b/err', pidfile: '/b/pid', execFifo: '/b/fifo', noPivotRoot: true,
  }));
  assert.deepEqual(plan.warnings, ['process.apparmorProfile "cri-containerd.apparmor.d" ignored: AppArmor is not enabled on this host']);
  const expected = [
    'tsrt-plan 1', 'errfile /b/err', 'pidfile /b/pid',
    ...HIERARCHIES.map((h) => `cgroup ${CG}/${h}${inner}`),
    'ns pid -', 'ns ipc /proc/4242/ns/ipc', 'ns uts /proc/4242/ns/uts', 'ns mount -', 'ns net /var/run/netns/cni-1234',
    'ns user /proc/4242/ns/user', 'ns cgroup -',
    'oomscore 1000',
    'rootfs /run/containerd/io.containerd.runtime.v2.task/k8s.io/abc/rootfs',
    'rootprop 540672',
    'mount /proc proc proc 14 -',
    'mount /dev tmpfs tmpfs 16777218 mode=755,size=65536k',
    'mount /dev/pts devpts devpts 10 newinstance,ptmxmode=0666,mode=0620,gid=5',
    'mount /dev/shm tmpfs shm 14 mode=1777,size=65536k',
    'mount /dev/mqueue mqueue mqueue 14 -',
    'mount /sys sysfs sysfs 15 -',
    // in a cgroup namespace each hierarchy is mounted afresh (rooted at the container's cgroup by the namespace)
    `mount ${CG} tmpfs tmpfs 14 mode=755`,
    ...HIERARCHIES.slice(0, 8).map((h) => `mount ${CG}/${h} cgroup cgroup 2097167 ${h}`), // relatime|ro|nosuid|nodev|noexec
    `mount ${CG}/systemd cgroup cgroup 2097167 name=systemd`,
    `mount ${CG}/unified cgroup2 cgroup2 2097167 -`,
    `mount ${CG} tmpfs tmpfs 47 mode=755`,
    'mount /etc/hosts bind /var/lib/containerd/sandboxes/s1/hosts 20480 -', // MS_BIND|MS_REC
    'mount /data bind /run/containerd/io.containerd.runtime.v2.task/k8s.io/abc/volumes/data 20483 -', // + ro, nosuid
    'device /dev/fuse c 10 229 384 0 0',
    'device /dev/null c 1 3 438 0 0',
    'device /dev/zero c 1 5 438 0 0', 'device /dev/full c 1 7 438 0 0', 'device /dev/random c 1 8 438 0 0',
    'device /dev/urandom c 1 9 438 0 0', 'device /dev/tty c 5 0 438 0 0',
    'symlink /proc/self/fd /dev/fd', 'symlink /proc/self/fd/0 /dev/stdin', 'symlink /proc/self/fd/1 /dev/stdout',
    'symlink /proc/self/fd/2 /dev/stderr', 'symlink pts/ptmx /dev/ptmx', 'symlink /proc/kcore /dev/core',
    `mountprop /etc/hosts ${MS.PRIVATE | MS.REC}`,
    `mountprop /data ${MS.SLAVE | MS.REC}`,
    'pivot 0',
    'readonlyroot',
    ...MASKED.map((p) => `mask ${p}`),
    ...READONLY.map((p) => `readonly ${p}`),
    'hostname pod-a',
    'sysctl net.ipv4.ip_unprivileged_port_start 0',
    'sysctl kernel.shm_rmid_forced 1',
    'groups 1000 10',
    'user 1000 1000',
    'umask 0027',
    'cwd /app',
    'caps bounding 21', 'caps effective 20', 'caps inheritable 0', 'caps permitted 21', 'caps ambient 20',
    'nonewprivs',
    'env PATH=/usr/bin:/bin', 'env HOSTNAME=pod-a',
    'arg /pause-not', 'arg --flag', 'arg a%20b',
    'execfifo /b/fifo',
  ];
  assert.equal(plan.text, `${expected.join('\n')}\n`);
});

test('the pod sandbox makes the user namespace: its maps are written', () => {
  const spec = criSpec();
  spec.linux!.namespaces = [{ type: 'pid' }, { type: 'mount' }, { type: 'user' }, { type: 'ipc' }, { type: 'uts' }, { type: 'network' }];
  spec.linux!.gidMappings = [{ containerID: 0, hostID: 65536, size: 1 }, { containerID: 1, hostID: 100000, size: 65535 }];
  const lines = createPlan(input(spec)).text.split('\n');
  assert.deepEqual(lines.filter((l) => /^(uidmap|gidmap|ns user) /.test(l)), [
    'ns user -', 'uidmap 0 65536 65536', 'gidmap 0 65536 1', 'gidmap 1 100000 65535',
  ]);
  // without a cgroup namespace the hierarchies are the host's directories, bound
  assert.ok(lines.includes(`mount ${CG}/memory bind ${CG}/memory/default/c1 ${2097167 | MS.BIND} -`));
});

test('exec: every namespace of the init joined at /proc/<pid>/ns, its own process settings, a console', () => {
  const plan = execPlan({
    spec: criSpec(), initPid: 31337, errfile: '/b/e1.err', pidfile: '/b/e1.pid', cgroupDirs: ['/sys/fs/cgroup/memory/x'],
    consoleSocket: '/run/tsrt/console e1.sock', sessionKeyring: '_ses.c1', host: { apparmor: false, selinux: false, kcore: true },
    process: {
      terminal: true, user: { uid: 0, gid: 0 }, args: ['sh', '-c', 'echo 100% ünïcode'], env: ['TERM=xterm'], cwd: '/',
      rlimits: [{ type: 'RLIMIT_CORE', soft: 0, hard: 18446744073709551615 }],
    },
  });
  assert.deepEqual(plan.warnings, []);
  const expected = [
    'tsrt-plan 1', 'errfile /b/e1.err', 'pidfile /b/e1.pid', 'cgroup /sys/fs/cgroup/memory/x',
    ...['pid', 'ipc', 'uts', 'mount', 'net', 'user', 'cgroup'].map((t) => `ns ${t} /proc/31337/ns/${t === 'mount' ? 'mnt' : t}`),
    'keyring _ses.c1',
    'console /run/tsrt/console%20e1.sock',
    'rlimit 4 0 inf',
    'groups', 'user 0 0', 'umask 0022', 'cwd /',
    'env TERM=xterm',
    'arg sh', 'arg -c', 'arg echo%20100%25%20%C3%BCn%C3%AFcode',
  ];
  assert.equal(plan.text, `${expected.join('\n')}\n`);
});

test('exec server: its plan joins and holds the cgroups; a served exec carries the process steps only', () => {
  const host = { apparmor: false, selinux: false, kcore: true };
  const serve = servePlan({ spec: criSpec(), initPid: 31337, errfile: '/b/s.err', cgroupDirs: ['/sys/fs/cgroup/memory/x'] });
  assert.equal(serve.text, `${[
    'tsrt-plan 1', 'errfile /b/s.err', 'cgroup /sys/fs/cgroup/memory/x',
    ...['pid', 'ipc', 'uts', 'mount', 'net', 'user', 'cgroup'].map((t) => `ns ${t} /proc/31337/ns/${t === 'mount' ? 'mnt' : t}`),
  ].join('\n')}\n`);
  const process = { user: { uid: 0, gid: 0 }, args: ['true'], env: ['A=b'], cwd: '/', oomScoreAdj: 5 };
  const served = servedExecPlan({ spec: criSpec(), process, sessionKeyring: '_ses.c1', host });
  assert.equal(served.text, `${[
    'tsrt-plan 1', 'keyring _ses.c1', 'oomscore 5', 'groups', 'user 0 0', 'umask 0022', 'cwd /', 'env A=b', 'arg true',
  ].join('\n')}\n`);
  // the same process steps as the launcher's exec plan, in the same order
  const full = execPlan({ spec: criSpec(), process, initPid: 31337, errfile: '/e', pidfile: '/p', cgroupDirs: [], sessionKeyring: '_ses.c1', host });
  assert.ok(full.text.endsWith(served.text.slice('tsrt-plan 1\n'.length)));
  assert.throws(() => servedExecPlan({ spec: criSpec(), process: { args: [] } as never, host }), InvalidArgumentError);
});

test('fields are percent-encoded: space, newline, %, non-ASCII; "" is - and "-" is %2D', () => {
  assert.equal(encodeField('/a b/c\nd'), '/a%20b/c%0Ad');
  assert.equal(encodeField('100%'), '100%25');
  assert.equal(encodeField('/données/日本'), '/donn%C3%A9es/%E6%97%A5%E6%9C%AC');
  assert.equal(encodeField(''), '-');
  assert.equal(encodeField('-'), '%2D');
  assert.equal(encodeField('-c'), '-c');
  assert.equal(encodeField('a-b'), 'a-b');
  assert.equal(encodeField('A-Za-z0-9._/=,:@+'), 'A-Za-z0-9._/=,:@+');
  assert.equal(encodeField('tab\there;$x*"\'\\'), 'tab%09here%3B%24x%2A%22%27%5C');
  // through a whole plan: a mount with an odd source and destination
  const spec = ctrSpec();
  spec.mounts = [{ destination: '/mnt/my data\n%', type: 'bind', source: '/srv/ünï code', options: ['rbind'] }];
  const lines = createPlan(input(spec)).text.split('\n');
  assert.ok(lines.includes('mount /mnt/my%20data%0A%25 bind /srv/%C3%BCn%C3%AF%20code 20480 -'), lines.join('\n'));
  for (const l of lines.slice(0, -1)) assert.match(l, /^[a-z-]+( [A-Za-z0-9._/=,:@+%-]+)*$/);
  // a NUL cannot reach a system call
  spec.mounts = [{ destination: '/mnt/a\0b', type: 'tmpfs', source: 'tmpfs' }];
  assert.throws(() => createPlan(input(spec)), (e: unknown) => e instanceof InvalidArgumentError && /NUL/.test((e as Error).message));
});

test('mount options → flags, data and propagation', () => {
  const table: Array<[string[], number, string, number[]]> = [
    [['ro'], MS.RDONLY, '', []],
    [['ro', 'rw'], 0, '', []],
    [['nosuid', 'suid'], 0, '', []],
    [['nodev', 'noexec', 'sync', 'dirsync', 'mand'], MS.NODEV | MS.NOEXEC | MS.SYNCHRONOUS | MS.DIRSYNC | MS.MANDLOCK, '', []],
    [['sync', 'async', 'mand', 'nomand'], 0, '', []],
    [['noatime', 'nodiratime'], MS.NOATIME | MS.NODIRATIME, '', []],
    [['noatime', 'atime', 'nodiratime', 'diratime'], 0, '', []],
    [['relatime'], MS.RELATIME, '', []], [['relatime', 'norelatime'], 0, '', []],
    [['strictatime'], MS.STRICTATIME, '', []], [['strictatime', 'nostrictatime'], 0, '', []],
    [['lazytime'], MS.LAZYTIME, '', []], [['lazytime', 'nolazytime'], 0, '', []],
    [['remount', 'ro'], MS.REMOUNT | MS.RDONLY, '', []],
    [['bind'], MS.BIND, '', []], [['rbind'], MS.BIND | MS.REC, '', []],
    [['silent'], MS.SILENT, '', []], [['silent', 'loud'], 0, '', []],
    [['defaults'], 0, '', []],
    [['nosuid', 'mode=755', 'size=65536k'], MS.NOSUID, 'mode=755,size=65536k', []],
    [['newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'], 0, 'newinstance,ptmxmode=0666,mode=0620,gid=5', []],
    [['rbind', 'rprivate'], MS.BIND | MS.REC, '', [MS.REC | MS.PRIVATE]],
    [['private', 'slave', 'shared', 'unbindable'], 0, '', [MS.PRIVATE, MS.SLAVE, MS.SHARED, MS.UNBINDABLE]],
    [['rslave', 'rshared', 'runbindable'], 0, '', [MS.REC | MS.SLAVE, MS.REC | MS.SHARED, MS.REC | MS.UNBINDABLE]],
  ];
  for (const [opts, flags, data, propagation] of table) {
    assert.deepEqual(parseMountOptions(opts), { flags, data, propagation }, opts.join(','));
  }
  // the kernel's numbers
  assert.deepEqual([MS.RDONLY, MS.NOSUID, MS.NODEV, MS.NOEXEC, MS.REMOUNT, MS.BIND, MS.REC, MS.PRIVATE, MS.SLAVE, MS.SHARED, MS.STRICTATIME],
    [1, 2, 4, 8, 32, 4096, 16384, 262144, 524288, 1048576, 16777216]);
});

test('capability and rlimit numbers', () => {
  assert.equal(CAPABILITIES.length, 41);
  assert.equal(CAPABILITIES.indexOf('CAP_SYS_ADMIN'), 21);
  assert.equal(CAPABILITIES.indexOf('CAP_SYS_RESOURCE'), 24);
  assert.equal(CAPABILITIES.indexOf('CAP_CHECKPOINT_RESTORE'), 40);
  assert.equal(RLIMITS.RLIMIT_CPU, 0);
  assert.equal(RLIMITS.RLIMIT_NOFILE, 7);
  assert.equal(RLIMITS.RLIMIT_RTTIME, 15);
  const spec = ctrSpec();
  spec.process!.capabilities = { bounding: [...CAPABILITIES, 'CAP_FUTURE'] };
  spec.process!.rlimits = [{ type: 'RLIMIT_MEMLOCK', soft: 65536, hard: 2n ** 64n - 1n }];
  const plan = createPlan(input(spec));
  assert.ok(plan.text.includes('\ncaps bounding 1ffffffffff\ncaps effective 0\n'));
  assert.ok(plan.text.includes('\nrlimit 8 65536 inf\n'));
  assert.deepEqual(plan.warnings, ['process.capabilities.bounding: unknown capability "CAP_FUTURE" ignored']);
});

test('a unified host: the cgroup mount is cgroup2; /dev bound from the host gets no nodes or links', () => {
  const spec = ctrSpec();
  spec.mounts!.push({ destination: '/dev', type: 'bind', source: '/dev', options: ['rbind'] });
  const text = createPlan(input(spec, { cgroupVersion: 2, cgroupSources: undefined, cgroupDirs: ['/sys/fs/cgroup/default/c1'] })).text;
  assert.ok(text.includes(`\nmount ${CG} cgroup2 cgroup2 15 -\n`));
  assert.ok(!/^(device|symlink) /m.test(text), text);
});

const seccompLines = (text: string): string[] => text.split('\n').filter((l) => l.startsWith('seccomp-'));

test('seccomp: a small profile → seccomp-* steps (default, arches, flags, rules with arguments), in create and exec', () => {
  const spec = ctrSpec();
  spec.linux!.seccomp = {
    defaultAction: 'SCMP_ACT_ALLOW',
    architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_AARCH64'],
    flags: ['SECCOMP_FILTER_FLAG_LOG', 'SECCOMP_FILTER_FLAG_SPEC_ALLOW'],
    syscalls: [
      { names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO' },
      { names: ['chmod'], action: 'SCMP_ACT_ERRNO', errnoRet: 38 },
      { names: ['getpid'], action: 'SCMP_ACT_ALLOW' }, // the default: left out
      { names: ['kill'], action: 'SCMP_ACT_KILL_PROCESS', args: [{ index: 1, value: 9, op: 'SCMP_CMP_EQ' }, { index: 0, value: 1, op: 'SCMP_CMP_LE' }] },
      // two conditions on one argument: a rule each
      { names: ['setns'], action: 'SCMP_ACT_TRAP', args: [{ index: 1, value: 0x20000, op: 'SCMP_CMP_NE' }, { index: 1, value: 0xff, valueTwo: 3, op: 'SCMP_CMP_MASKED_EQ' }] },
      { names: ['ptrace'], action: 'SCMP_ACT_TRACE', errnoRet: 7 },
      { names: ['uname'], action: 'SCMP_ACT_LOG' },
      { names: ['reboot'], action: 'SCMP_ACT_KILL' },
    ],
  };
  const expected = [
    'seccomp-default allow 0', 'seccomp-arch x86_64', 'seccomp-arch aarch64', 'seccomp-flag log', 'seccomp-flag spec-allow',
    'seccomp-rule errno 1 mkdir', 'seccomp-rule errno 1 mkdirat', 'seccomp-rule errno 38 chmod',
    'seccomp-rule kill-process 0 kill 1 eq 9 0 0 le 1 0',
    'seccomp-rule trap 0 setns 1 ne 131072 0', 'seccomp-rule trap 0 setns 1 masked-eq 255 3',
    'seccomp-rule trace 7 ptrace', 'seccomp-rule log 0 uname', 'seccomp-rule kill-thread 0 reboot',
  ];
  const text = createPlan(input(spec)).text;
  assert.deepEqual(seccompLines(text), expected);
  // after the process's steps, before the exec FIFO
  assert.ok(text.includes(`${expected.at(-1)}\nexecfifo `), text);
  const x = execPlan({ spec, initPid: 7, errfile: '/e', pidfile: '/p', cgroupDirs: [], host: { apparmor: false, selinux: false, kcore: true },
    process: { args: ['sh'], cwd: '/' } }).text;
  assert.deepEqual(seccompLines(x), expected);
  // no profile: no steps
  assert.deepEqual(seccompLines(createPlan(input(ctrSpec())).text), []);
});

test('seccomp: containerd\'s default profile shape (errno default, a long allow list, argument-filtered rules)', () => {
  const allow = ['accept', 'accept4', 'access', 'adjtimex', 'alarm', 'bind', 'brk', 'capget', 'capset', 'chdir', 'chmod', 'chown',
    'clock_getres', 'clock_gettime', 'clock_nanosleep', 'close', 'close_range', 'connect', 'copy_file_range', 'creat', 'dup', 'dup2',
    'dup3', 'epoll_create', 'epoll_ctl', 'epoll_pwait', 'epoll_wait', 'eventfd2', 'execve', 'execveat', 'exit', 'exit_group',
    'faccessat', 'faccessat2', 'fchdir', 'fchmod', 'fchmodat', 'fchown', 'fcntl', 'fstat', 'futex', 'getcwd', 'getdents64',
    'getpid', 'getppid', 'getuid', 'ioctl', 'kill', 'lseek', 'mkdir', 'mkdirat', 'mmap', 'mprotect', 'munmap', 'nanosleep',
    'newfstatat', 'open', 'openat', 'openat2', 'pipe2', 'prctl', 'read', 'readlink', 'rt_sigaction', 'rt_sigprocmask',
    'rt_sigreturn', 'setgid', 'setgroups', 'setresgid', 'setresuid', 'setuid', 'stat', 'statx', 'uname', 'unlink', 'wait4', 'write'];
  const spec = ctrSpec();
  spec.linux!.seccomp = {
    defaultAction: 'SCMP_ACT_ERRNO',
    defaultErrnoRet: 1,
    architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'],
    syscalls: [
      { names: allow, action: 'SCMP_ACT_ALLOW' },
      { names: ['personality'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 0, valueTwo: 0, op: 'SCMP_CMP_EQ' }] },
      { names: ['personality'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 8, valueTwo: 0, op: 'SCMP_CMP_EQ' }] },
      { names: ['personality'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 4294967295, valueTwo: 0, op: 'SCMP_CMP_EQ' }] },
      { names: ['arch_prctl', 'modify_ldt'], action: 'SCMP_ACT_ALLOW' },
      { names: ['clone'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 2114060288, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }] },
      { names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: 38 },
      // EPERM is the default's own errno: left out
      { names: ['bpf'], action: 'SCMP_ACT_ERRNO', errnoRet: 1 },
    ],
  };
  assert.deepEqual(seccompLines(createPlan(input(spec)).text), [
    'seccomp-default errno 1', 'seccomp-arch x86_64', 'seccomp-arch x86', 'seccomp-arch x32',
    ...allow.map((n) => `seccomp-rule allow 0 ${n}`),
    'seccomp-rule allow 0 personality 0 eq 0 0', 'seccomp-rule allow 0 personality 0 eq 8 0', 'seccomp-rule allow 0 personality 0 eq 4294967295 0',
    'seccomp-rule allow 0 arch_prctl', 'seccomp-rule allow 0 modify_ldt',
    'seccomp-rule allow 0 clone 0 masked-eq 2114060288 0',
    'seccomp-rule errno 38 clone3',
  ]);
});

/** Changes to ctr's spec that are refused, and how. */
const REFUSED: Array<[string, (s: OciSpec) => void, typeof UnimplementedError | typeof InvalidArgumentError, string]> = [
  ['seccomp notify', (s) => { s.linux!.seccomp = { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir'], action: 'SCMP_ACT_NOTIFY' }] }; }, UnimplementedError,
    'linux.seccomp.syscalls[0].action: SCMP_ACT_NOTIFY is not supported by the native backend yet: not implemented'],
  ['seccomp listenerPath', (s) => { s.linux!.seccomp = { defaultAction: 'SCMP_ACT_ALLOW', listenerPath: '/run/l.sock' }; }, UnimplementedError,
    'linux.seccomp.listenerPath (SCMP_ACT_NOTIFY) is not supported by the native backend yet: not implemented'],
  ['seccomp flag', (s) => { s.linux!.seccomp = { defaultAction: 'SCMP_ACT_ALLOW', flags: ['SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV'] }; }, UnimplementedError,
    'linux.seccomp.flags[0] "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV" is not supported by the native backend yet: not implemented'],
  ['seccomp unknown field', (s) => { s.linux!.seccomp = { defaultAction: 'SCMP_ACT_ALLOW', future: 1 }; }, UnimplementedError,
    'linux.seccomp.future is not supported by the native backend yet: not implemented'],
  ['seccomp no default', (s) => { s.linux!.seccomp = { syscalls: [] }; }, InvalidArgumentError, 'linux.seccomp.defaultAction undefined is not a seccomp action: invalid argument'],
  ['seccomp bad action', (s) => { s.linux!.seccomp = { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir'], action: 'SCMP_ACT_NOPE' }] }; }, InvalidArgumentError,
    'linux.seccomp.syscalls[0].action "SCMP_ACT_NOPE" is not a seccomp action: invalid argument'],
  ['seccomp errnoRet on allow', (s) => { s.linux!.seccomp = { defaultAction: 'SCMP_ACT_ALLOW', defaultErrnoRet: 1 }; }, InvalidArgumentError,
    'linux.seccomp.defaultErrnoRet is only for SCMP_ACT_ERRNO and SCMP_ACT_TRACE: invalid argument'],
  ['seccomp bad errnoRet', (s) => { s.linux!.seccomp = { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir'], action: 'SCMP_ACT_ERRNO', errnoRet: -1 }] }; }, InvalidArgumentError,
    'linux.seccomp.syscalls[0].errnoRet must be a number from 0 to 65535: invalid argument'],
  ['seccomp bad arch', (s) => { s.linux!.seccomp = { defaultAction: 'SCMP_ACT_ALLOW', architectures: ['SCMP_ARCH_VAX'] }; }, InvalidArgumentError,
    'linux.seccomp.architectures[0] "SCMP_ARCH_VAX" is not a seccomp architecture: invalid argument'],
  ['seccomp no names', (s) => { s.linux!.seccomp = { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: [], action: 'SCMP_ACT_ERRNO' }] }; }, InvalidArgumentError,
    'linux.seccomp.syscalls[0].names must name at least one syscall: invalid argument'],
  ['seccomp bad name', (s) => { s.linux!.seccomp = { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mk dir'], action: 'SCMP_ACT_ERRNO' }] }; }, InvalidArgumentError,
    'linux.seccomp.syscalls[0].names[0] "mk dir" is not a syscall name: invalid argument'],
  ['seccomp bad op', (s) => { s.linux!.seccomp = { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['kill'], action: 'SCMP_ACT_ERRNO', args: [{ index: 0, value: 1, op: 'SCMP_CMP_XX' }] }] }; }, InvalidArgumentError,
    'linux.seccomp.syscalls[0].args[0].op "SCMP_CMP_XX" is not a seccomp comparison: invalid argument'],
  ['seccomp bad index', (s) => { s.linux!.seccomp = { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['kill'], action: 'SCMP_ACT_ERRNO', args: [{ index: 6, value: 1, op: 'SCMP_CMP_EQ' }] }] }; }, InvalidArgumentError,
    'linux.seccomp.syscalls[0].args[0].index must be from 0 to 5: invalid argument'],
  ['intelRdt', (s) => { s.linux!.intelRdt = { closID: 'x' }; }, UnimplementedError, 'linux.intelRdt is not supported by the native backend yet: not implemented'],
  ['personality', (s) => { s.linux!.personality = { domain: 'LINUX32' }; }, UnimplementedError, 'linux.personality is not supported by the native backend yet: not implemented'],
  ['timeOffsets', (s) => { s.linux!.timeOffsets = { monotonic: { secs: 1 } }; }, UnimplementedError, 'linux.timeOffsets is not supported by the native backend yet: not implemented'],
  ['ioPriority', (s) => { s.process!.ioPriority = { class: 'IOPRIO_CLASS_IDLE' }; }, UnimplementedError, 'process.ioPriority is not supported by the native backend yet: not implemented'],
  ['scheduler', (s) => { s.process!.scheduler = { policy: 'SCHED_IDLE' }; }, UnimplementedError, 'process.scheduler is not supported by the native backend yet: not implemented'],
  ['vm', (s) => { s.vm = { kernel: { path: '/k' } }; }, UnimplementedError, 'vm is not supported by the native backend yet: not implemented'],
  ...['prestart', 'createRuntime', 'createContainer', 'startContainer', 'poststart', 'poststop'].map((h): typeof REFUSED[number] =>
    [`hooks.${h}`, (s) => { s.hooks = { [h]: [{ path: '/bin/true' }] }; }, UnimplementedError, `hooks.${h} is not supported by the native backend yet: not implemented`]),
  ['idmap option', (s) => { s.mounts!.push({ destination: '/m', type: 'bind', source: '/srv', options: ['rbind', 'idmap'] }); }, UnimplementedError,
    'mounts[7].options: "idmap" (idmapped mounts) is not supported by the native backend yet: not implemented'],
  ['ridmap option', (s) => { s.mounts!.push({ destination: '/m', type: 'bind', source: '/srv', options: ['ridmap'] }); }, UnimplementedError,
    'mounts[7].options: "ridmap" (idmapped mounts) is not supported by the native backend yet: not implemented'],
  ['mount uidMappings', (s) => { s.mounts!.push({ destination: '/m', type: 'bind', source: '/srv', uidMappings: [{ containerID: 0, hostID: 1, size: 1 }] }); }, UnimplementedError,
    'mounts[7].uidMappings (idmapped mounts) is not supported by the native backend yet: not implemented'],
  ['tmpcopyup', (s) => { s.mounts!.push({ destination: '/m', type: 'tmpfs', source: 'tmpfs', options: ['tmpcopyup'] }); }, UnimplementedError,
    'mounts[7].options: "tmpcopyup" (copying the directory under a tmpfs into it (a runc extension)) is not supported by the native backend yet: not implemented'],
  ['AppArmor on an AppArmor host', (s) => { s.process!.apparmorProfile = 'docker-default'; }, UnimplementedError, 'process.apparmorProfile is not supported by the native backend yet: not implemented'],
  ['an unknown process field', (s) => { s.process!.execCPUAffinity = { initial: '0' }; }, UnimplementedError, 'process.execCPUAffinity is not supported by the native backend yet: not implemented'],
  ['rootfsPropagation', (s) => { s.linux!.rootfsPropagation = 'rsomething'; }, InvalidArgumentError, 'linux.rootfsPropagation "rsomething" is not a propagation type: invalid argument'],
  ['no args', (s) => { delete s.process!.args; }, InvalidArgumentError, 'process.args must name the program to run: invalid argument'],
  ['empty args', (s) => { s.process!.args = []; }, InvalidArgumentError, 'process.args must name the program to run: invalid argument'],
  ['no process', (s) => { delete s.process; }, InvalidArgumentError, 'process is missing: invalid argument'],
  ['a new time namespace', (s) => { s.linux!.namespaces!.push({ type: 'time' }); }, UnimplementedError,
    `linux.namespaces[${ctrSpec().linux!.namespaces!.length}]: a new time namespace is not supported by the native backend yet: not implemented`],
  ['relative cwd', (s) => { s.process!.cwd = 'app'; }, InvalidArgumentError, 'process.cwd must be an absolute path: invalid argument'],
  ['no root', (s) => { delete s.root; }, InvalidArgumentError, 'root.path is missing: invalid argument'],
  ['bad rlimit', (s) => { s.process!.rlimits = [{ type: 'RLIMIT_NOPE', soft: 1, hard: 1 }]; }, InvalidArgumentError, 'process.rlimits[0].type "RLIMIT_NOPE" is not an rlimit: invalid argument'],
  ['bad namespace', (s) => { s.linux!.namespaces!.push({ type: 'net' }); }, InvalidArgumentError, 'linux.namespaces[5].type "net" is not a namespace type: invalid argument'],
  ['no mount namespace', (s) => { s.linux!.namespaces = [{ type: 'pid' }]; }, InvalidArgumentError, 'linux.namespaces: the native backend needs a mount namespace of the container\'s own: invalid argument'],
  ['user ns without maps', (s) => { s.linux!.namespaces!.push({ type: 'user' }); }, InvalidArgumentError, 'linux.uidMappings and linux.gidMappings are needed for a new user namespace: invalid argument'],
  ['hostname without uts', (s) => { s.hostname = 'h'; s.linux!.namespaces = [{ type: 'mount' }]; }, InvalidArgumentError, 'hostname needs a uts namespace of the container\'s own: invalid argument'],
  ['a host sysctl', (s) => { s.linux!.sysctl = { 'vm.swappiness': '1' }; }, InvalidArgumentError, 'linux.sysctl: vm.swappiness is not in a separate kernel namespace: invalid argument'],
  ['net sysctl without netns', (s) => { s.linux!.sysctl = { 'net.core.somaxconn': '1' }; s.linux!.namespaces = [{ type: 'mount' }]; }, InvalidArgumentError,
    'linux.sysctl: net.core.somaxconn needs a net namespace of the container\'s own: invalid argument'],
  ['terminal without a socket', (s) => { s.process!.terminal = true; }, InvalidArgumentError, 'process.terminal is set but no console socket was given: invalid argument'],
];

test('refusals name the spec field', () => {
  for (const [what, change, Class, message] of REFUSED) {
    const spec = ctrSpec();
    change(spec);
    assert.throws(() => createPlan(input(spec, { host: { apparmor: true, selinux: false, kcore: true } })), (e: unknown) => {
      assert.ok(e instanceof Class, `${what}: ${String(e)}`);
      assert.equal((e as Error).message, message, what);
      return true;
    }, what);
  }
  // a relative root without a bundle
  assert.throws(() => createPlan(input(ctrSpec(), { bundle: undefined })),
    { message: 'root.path "rootfs" is relative and no bundle was given: invalid argument' });
  // hooks lists that are empty are no hooks; nulls are absent fields
  const spec = ctrSpec();
  spec.hooks = { prestart: [] };
  spec.linux!.seccomp = null;
  assert.doesNotThrow(() => createPlan(input(spec)));
  // exec refuses the process fields the same way
  assert.throws(() => execPlan({ spec: ctrSpec(), initPid: 1, errfile: '/e', pidfile: '/p', cgroupDirs: [], host: { apparmor: false, selinux: true, kcore: true },
    process: { args: ['sh'], cwd: '/', selinuxLabel: 'system_u:system_r:container_t:s0' } }),
  { message: 'process.selinuxLabel is not supported by the native backend yet: not implemented' });
});
