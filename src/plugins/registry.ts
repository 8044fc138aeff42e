// Backends by name. Each is loaded on first use, so a daemon that only runs runc never loads the others.
import { InvalidArgumentError, type BackendFactory } from './api/index.js';

const loaders: Record<string, () => Promise<BackendFactory>> = {
  runc: async () => (await import('./runc/backend.js')).createRuncBackend,
};

/** OCI annotation that picks a backend per container. */
export const BACKEND_ANNOTATION = 'io.tsrt.backend';

export function backendNames(): string[] { return Object.keys(loaders); }

export async function loadBackend(name: string): Promise<BackendFactory> {
  const load = loaders[name];
  if (!load) throw new InvalidArgumentError(`unknown backend ${JSON.stringify(name)} (available: ${backendNames().join(', ')})`);
  return load();
}
