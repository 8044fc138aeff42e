// ttrpc-ts: a ttrpc (containerd's RPC over unix sockets) client and server on node:net.
export { Code, StatusError, codeName, hasStatusCode, isErrorCode, type StatusDetail } from './codes.js';
export {
  Flags, FrameReader, HEADER_LENGTH, MAX_MESSAGE_LENGTH, MessageType,
  decodeHeader, encodeFrame, encodeHeader,
  type Frame, type FrameHeader, type OversizedFrame, type ReadResult,
} from './frame.js';
export {
  TtrpcServer, unary,
  type Handler, type LogFn, type LogLevel, type MessageDecoder, type MessageEncoder, type RequestContext,
  type TtrpcServerOptions,
} from './server.js';
export { TtrpcClient, type CallOptions, type ConnectOptions } from './client.js';
export {
  GO_ZERO_TIME_SECONDS, LongImpl, int64ToBigInt, int64ToNumber, isZeroTimestamp,
  timestampFromDate, timestampFromMs, timestampToDate, timestampToMs, toLong,
  type Int64, type TimestampLike,
} from './proto-helpers.js';
