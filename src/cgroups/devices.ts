// Device rules of linux.resources.devices, as the cgroup v1 devices controller holds them, for both cgroup
// versions. On v1 the native backend writes the rules to devices.deny/devices.allow in order and the kernel
// keeps a default and a list of exceptions. cgroup v2 has no such files: an eBPF program attached to the
// cgroup decides. So that a container sees the same devices on either host, the v2 program is made from what
// the v1 controller would hold after the same writes: deviceFilter() replays them here, with the kernel's own
// rules (security/device_cgroup.c: "a" resets the default and clears the exceptions; a rule of the default's
// kind removes the access it names from an exception of the same type and numbers; a rule of the other kind
// adds it), and tsrt-launch turns the result into the program (native/launcher/devfilter.c).
import type { OciDeviceRule } from '../plugins/native/oci.js';
import { InvalidArgumentError } from '../plugins/api/errors.js';

/** A device node of linux.devices, allowed in the container as runc allows it. */
export interface DeviceNode { type: string; major: number; minor: number }

/** One write to the v1 controller: `a`, or `<type> <major|*>:<minor|*> <access>`, to devices.allow or devices.deny. */
export interface DeviceWrite { allow: boolean; rule: string }

/** An exception of the default: type `a` is both block and char; null numbers match any. */
export interface DeviceException { type: 'a' | 'b' | 'c'; major: number | null; minor: number | null; access: string }

export interface DeviceFilter { defaultAllow: boolean; exceptions: DeviceException[] }

/**
 * Device rules runc allows in every container after the spec's own: mknod of anything, the default
 * nodes (null, zero, full, random, urandom, tty), /dev/console, the pty slaves and /dev/ptmx.
 */
const DEFAULT_ALLOWED = [
  'c *:* m', 'b *:* m', 'c 1:3 rwm', 'c 1:5 rwm', 'c 1:7 rwm', 'c 1:8 rwm', 'c 1:9 rwm', 'c 5:0 rwm',
  'c 5:1 rwm', 'c 136:* rwm', 'c 5:2 rwm',
];

function ruleOf(r: OciDeviceRule, field: string): string {
  const type = r.type ?? 'a';
  if (!['a', 'c', 'b'].includes(type)) throw new InvalidArgumentError(`${field}.type ${JSON.stringify(type)} is not a, c or b`);
  const access = r.access ?? 'rwm';
  if (!/^[rwm]{1,3}$/.test(access)) throw new InvalidArgumentError(`${field}.access ${JSON.stringify(access)} is not made of r, w and m`);
  if (type === 'a') return 'a';
  const num = (n: number | null | undefined) => {
    if (n === undefined || n === null || n === -1) return '*';
    if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${field} major/minor ${n} is not a device number`);
    return String(n);
  };
  return `${type} ${num(r.major)}:${num(r.minor)} ${access}`;
}

/**
 * The writes the rules mean, in order: deny everything, the spec's rules, runc's defaults, then the spec's
 * own device nodes (linux.devices; `p`, a FIFO, needs no rule).
 */
export function deviceWrites(rules: readonly OciDeviceRule[], nodes: readonly DeviceNode[] = []): DeviceWrite[] {
  return [
    { allow: false, rule: 'a' },
    ...rules.map((d, i) => ({ allow: d.allow === true, rule: ruleOf(d, `linux.resources.devices[${i}]`) })),
    ...DEFAULT_ALLOWED.map((rule) => ({ allow: true, rule })),
    ...nodes.filter((n) => n.type !== 'p').map((n) => ({ allow: true, rule: `${n.type === 'u' ? 'c' : n.type} ${n.major}:${n.minor} rwm` })),
  ];
}

const ACCESS_ORDER = 'rwm';
const accessSet = (a: string): Set<string> => new Set(a);
const accessString = (s: Set<string>): string => [...ACCESS_ORDER].filter((c) => s.has(c)).join('');

function parseRule(rule: string): DeviceException {
  const m = /^([abc]) (\*|\d+):(\*|\d+) ([rwm]{1,3})$/.exec(rule);
  if (!m) throw new InvalidArgumentError(`device rule ${JSON.stringify(rule)} is not like "c 1:3 rwm"`);
  const num = (s: string) => (s === '*' ? null : Number(s));
  return { type: m[1] as DeviceException['type'], major: num(m[2]!), minor: num(m[3]!), access: accessString(accessSet(m[4]!)) };
}

/** What the v1 controller holds after `writes` on a new cgroup (whose default is allow, no exceptions). */
export function deviceFilter(writes: readonly DeviceWrite[]): DeviceFilter {
  let defaultAllow = true;
  let exceptions: DeviceException[] = [];
  const same = (a: DeviceException, b: DeviceException) => a.type === b.type && a.major === b.major && a.minor === b.minor;
  for (const w of writes) {
    if (w.rule === 'a') {
      defaultAllow = w.allow;
      exceptions = [];
      continue;
    }
    const ex = parseRule(w.rule);
    if (w.allow === defaultAllow) {
      // a rule of the default's kind: takes its access away from the exceptions it names exactly
      exceptions = exceptions.flatMap((e) => {
        if (!same(e, ex)) return [e];
        const left = accessSet(e.access);
        for (const c of ex.access) left.delete(c);
        return left.size ? [{ ...e, access: accessString(left) }] : [];
      });
    } else {
      const old = exceptions.find((e) => same(e, ex));
      if (old) old.access = accessString(new Set([...old.access, ...ex.access]));
      else exceptions.push({ ...ex });
    }
  }
  return { defaultAllow, exceptions };
}

/** The plan steps of a filter (docs/native-launcher.md, `devfilter` and `devex`). */
export function filterSteps(dir: string, f: DeviceFilter): Array<[string, ...Array<string | number>]> {
  const n = (v: number | null) => (v === null ? 'any' : v);
  return [
    ['devfilter', dir, f.defaultAllow ? 'allow' : 'deny'],
    ...f.exceptions.map((e): [string, ...Array<string | number>] => ['devex', e.type, n(e.major), n(e.minor), e.access]),
  ];
}
