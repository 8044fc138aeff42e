// The device rules as the cgroup v1 controller holds them (src/cgroups/devices.ts): the writes a spec means,
// and the default and exceptions they leave, which the v2 device filter is made of.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { deviceFilter, deviceWrites, filterSteps, type DeviceWrite } from '../../src/cgroups/devices.js';

const w = (allow: boolean, rule: string): DeviceWrite => ({ allow, rule });

test('the writes: deny all, the spec\'s rules in order, runc\'s defaults, then the spec\'s device nodes (not FIFOs)', () => {
  const writes = deviceWrites(
    [{ allow: true, type: 'c', major: 10, minor: 200, access: 'rw' }, { allow: false, type: 'b', major: 8, access: 'm' }],
    [{ type: 'c', major: 4, minor: 64 }, { type: 'u', major: 4, minor: 65 }, { type: 'p', major: 0, minor: 0 }],
  );
  assert.deepEqual(writes.slice(0, 3), [w(false, 'a'), w(true, 'c 10:200 rw'), w(false, 'b 8:* m')]);
  assert.equal(writes.length, 3 + 11 + 2);
  assert.deepEqual(writes.slice(-2), [w(true, 'c 4:64 rwm'), w(true, 'c 4:65 rwm')]);
  assert.throws(() => deviceWrites([{ allow: true, type: 'x' }]), /linux\.resources\.devices\[0\]\.type "x" is not a, c or b/);
  assert.throws(() => deviceWrites([{ allow: true, type: 'c', access: 'rx' }]), /access "rx" is not made of r, w and m/);
  assert.throws(() => deviceWrites([{ allow: true, type: 'c', major: -5 }]), /is not a device number/);
});

test('ctr\'s and the kubelet\'s usual spec (deny all, then the defaults): a whitelist of runc\'s nodes', () => {
  const f = deviceFilter(deviceWrites([{ allow: false, access: 'rwm' }]));
  assert.equal(f.defaultAllow, false);
  assert.deepEqual(f.exceptions.slice(0, 3), [
    { type: 'c', major: null, minor: null, access: 'm' },
    { type: 'b', major: null, minor: null, access: 'm' },
    { type: 'c', major: 1, minor: 3, access: 'rwm' },
  ]);
  assert.deepEqual(f.exceptions.find((e) => e.major === 136), { type: 'c', major: 136, minor: null, access: 'rwm' });
});

test('"a" resets: allow all clears the exceptions, and a later deny adds one to the blacklist', () => {
  assert.deepEqual(deviceFilter([w(false, 'a'), w(true, 'c 1:3 rwm'), w(true, 'a')]), { defaultAllow: true, exceptions: [] });
  assert.deepEqual(deviceFilter([w(true, 'a'), w(false, 'b 8:0 rw'), w(false, 'b 8:0 m')]),
    { defaultAllow: true, exceptions: [{ type: 'b', major: 8, minor: 0, access: 'rwm' }] });
});

test('a rule of the default\'s kind takes access away from the exception it names exactly, and only that one', () => {
  const f = deviceFilter([w(false, 'a'), w(true, 'c 1:3 rwm'), w(true, 'c *:* m'), w(false, 'c 1:3 w'), w(false, 'c 1:* rwm')]);
  assert.deepEqual(f, { defaultAllow: false, exceptions: [
    { type: 'c', major: 1, minor: 3, access: 'rm' },
    { type: 'c', major: null, minor: null, access: 'm' },
  ] });
  // every access taken: the exception goes
  assert.deepEqual(deviceFilter([w(false, 'a'), w(true, 'c 1:3 rw'), w(false, 'c 1:3 wr')]).exceptions, []);
  // on the same numbers, allows merge
  assert.deepEqual(deviceFilter([w(false, 'a'), w(true, 'c 1:3 r'), w(true, 'c 1:3 m')]).exceptions, [{ type: 'c', major: 1, minor: 3, access: 'rm' }]);
});

test('the plan steps', () => {
  assert.deepEqual(filterSteps('/sys/fs/cgroup/x', { defaultAllow: false, exceptions: [{ type: 'c', major: 136, minor: null, access: 'rwm' }] }), [
    ['devfilter', '/sys/fs/cgroup/x', 'deny'], ['devex', 'c', 136, 'any', 'rwm'],
  ]);
});
