// One unary gRPC call with request and response as raw protobuf bytes (the test clients encode their
// messages by hand, from upstream field numbers, so no .proto loading is needed).
import type { Client, Metadata, ServiceError } from '@grpc/grpc-js';

export function unaryBytes(
  client: Client,
  path: string,
  request: Uint8Array,
  metadata: Metadata,
  timeoutMs: number,
  toError: (err: ServiceError) => Error,
): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest<Uint8Array, Uint8Array>(
      path,
      (b) => Buffer.from(b.buffer, b.byteOffset, b.byteLength),
      (b) => new Uint8Array(b),
      request,
      metadata,
      { deadline: Date.now() + timeoutMs },
      (err: ServiceError | null, res?: Uint8Array) => {
        if (err) reject(toError(err));
        else resolve(res ?? new Uint8Array());
      },
    );
  });
}
