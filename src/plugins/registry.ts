// Backends by name: the built-in ones, and external ones loaded from a plugin directory. Each is loaded
// on first use, so a daemon that only runs runc never loads the others.
//
// A plugin is an ES module `<PluginDir>/<name>.mjs` (or `<name>.js`, or `<name>/index.mjs`) exporting
//   apiVersion      the BACKEND_API_VERSION it implements
//   createBackend   a BackendFactory (init => Backend); `init.api` carries the error classes and helpers
// Its file name is its backend name. A module that cannot be used (it does not load, another API version,
// no factory) is refused with a message that names the file and what is wrong; the Create of a container
// that asked for it fails with that message, and the daemon goes on serving the others.
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  BACKEND_API_VERSION, FailedPreconditionError, InvalidArgumentError, type Backend, type BackendFactory,
} from './api/index.js';

const builtins: Record<string, () => Promise<BackendFactory>> = {
  runc: async () => (await import('./runc/backend.js')).createRuncBackend,
  native: async () => (await import('./native/backend.js')).createNativeBackend,
};

/** OCI annotation that picks a backend per container. */
export const BACKEND_ANNOTATION = 'io.tsrt.backend';

export const DEFAULT_PLUGIN_DIR = '/etc/tsrt/plugins';

/** Every method a backend object must have (the optional ones, stateOf and close, are not listed). */
const REQUIRED_METHODS = [
  'create', 'adopt', 'start', 'exec', 'deleteExec', 'signal', 'delete', 'pids', 'pause', 'resume', 'update', 'stats',
  'resizePty', 'closeIo',
] as const satisfies ReadonlyArray<keyof Backend>;

/** The plugin module files in `dir`, by backend name. */
function pluginFiles(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return out; // no plugin directory: built-ins only
  }
  for (const e of entries) {
    const file = path.join(dir, e.name);
    // a symbolic link counts as what it points to (a plugin installed as a link to its checkout)
    let kind: 'file' | 'dir' | 'other' = e.isFile() ? 'file' : e.isDirectory() ? 'dir' : 'other';
    if (e.isSymbolicLink()) {
      try {
        const st = fs.statSync(file);
        kind = st.isFile() ? 'file' : st.isDirectory() ? 'dir' : 'other';
      } catch { /* a dangling link: not a plugin */ }
    }
    const m = /^([A-Za-z0-9][A-Za-z0-9_.-]*?)\.(mjs|js)$/.exec(e.name);
    if (m && kind === 'file') out.set(m[1]!, file);
    else if (kind === 'dir' && /^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(e.name) && fs.existsSync(path.join(file, 'index.mjs'))) {
      out.set(e.name, path.join(file, 'index.mjs'));
    }
  }
  return out;
}

/** Names of the backends a container may ask for: the built-ins and the plugins in `pluginDir`. */
export function backendNames(pluginDir = DEFAULT_PLUGIN_DIR): string[] {
  return [...new Set([...Object.keys(builtins), ...pluginFiles(pluginDir).keys()])].sort();
}

/** Why a plugin cannot be used: its file and what is wrong, as the daemon log and the Create error say it. */
export class PluginError extends FailedPreconditionError {
  constructor(readonly file: string, readonly why: string) {
    super(`backend plugin ${file}: ${why}`);
  }
}

async function importPlugin(file: string): Promise<BackendFactory> {
  let mod: Record<string, unknown>;
  try {
    // the file's modification time in the URL: a plugin replaced on disk is loaded anew, not from the cache
    const url = pathToFileURL(file);
    url.searchParams.set('mtime', String(fs.statSync(file).mtimeMs));
    mod = (await import(url.href)) as Record<string, unknown>;
  } catch (e) {
    throw new PluginError(file, `cannot be loaded: ${(e as Error).message ?? String(e)}`);
  }
  if (mod.apiVersion !== BACKEND_API_VERSION) {
    throw new PluginError(file, `implements backend API version ${JSON.stringify(mod.apiVersion)}, this tsrt implements version ${BACKEND_API_VERSION}`);
  }
  const factory = mod.createBackend;
  if (typeof factory !== 'function') throw new PluginError(file, 'exports no createBackend function');
  return factory as BackendFactory;
}

/** The factory of the backend `name` (a built-in, else a plugin of `pluginDir`). */
export async function loadBackend(name: string, pluginDir = DEFAULT_PLUGIN_DIR): Promise<BackendFactory> {
  const builtin = builtins[name];
  if (builtin) return builtin();
  const file = pluginFiles(pluginDir).get(name);
  if (!file) throw new InvalidArgumentError(`unknown backend ${JSON.stringify(name)} (available: ${backendNames(pluginDir).join(', ')})`);
  const factory = await importPlugin(file);
  // The factory and the object it returns are checked where it is called (checkedFactory).
  return checkedFactory(factory, file);
}

/** A factory whose failures (it throws, its backend lacks methods) are a PluginError naming `file`. */
export function checkedFactory(factory: BackendFactory, file: string): BackendFactory {
  return (init) => {
    let backend: Backend;
    try {
      backend = factory(init);
    } catch (e) {
      throw new PluginError(file, `createBackend threw: ${(e as Error).message ?? String(e)}`);
    }
    if (!backend || typeof backend !== 'object') throw new PluginError(file, 'createBackend returned no backend object');
    const missing = REQUIRED_METHODS.filter((m) => typeof (backend as unknown as Record<string, unknown>)[m] !== 'function');
    if (missing.length > 0) throw new PluginError(file, `its backend lacks ${missing.join(', ')}`);
    if (typeof backend.name !== 'string' || !backend.name) throw new PluginError(file, 'its backend has no name');
    return backend;
  };
}
