import path from 'node:path';
import protobuf from 'protobufjs';
import { repoRoot } from '../lib/report.js';

/**
 * The API as proto/ declares it, loaded with protobufjs (not the generated ts-proto code, whose
 * encoder would refuse most of what the fuzzer sends):
 *
 * - `typed`: the schema as written, to decode responses and encode well-formed requests.
 * - `raw`: the same wire format with every `string` field turned into `bytes` and every map into
 *   its repeated entry message, so that a request can carry invalid UTF-8 anywhere a string goes.
 *
 * RPCS lists every method of the services under test; the fuzzer refuses to run when one has no
 * generator, so a new RPC cannot go unfuzzed.
 */
const SERVICES = ['inboxd.v1.Inbox', 'inboxd.v1.Queues', 'inboxd.v1.Auth'];
const PROTO_DIR = path.join(repoRoot(), 'proto');

function load(): protobuf.Root {
  const root = new protobuf.Root();
  // google/protobuf/*.proto are built into protobufjs; everything else is under proto/.
  root.resolvePath = (_origin, target) => (target.startsWith('google/protobuf/') ? target : path.join(PROTO_DIR, target));
  root.loadSync(['inboxd/v1/inbox.proto', 'inboxd/v1/queues.proto', 'inboxd/v1/message.proto', 'inboxd/v1/auth.proto'], { keepCase: false });
  root.resolveAll();
  return root;
}

type Json = Record<string, any>;

/** string → bytes everywhere; map<k, v> → repeated XEntry { k key = 1; v value = 2 } (the same bytes on the wire). */
function rawJson(node: Json): Json {
  const out: Json = { ...node };
  if (node.nested) out.nested = Object.fromEntries(Object.entries<Json>(node.nested).map(([k, v]) => [k, rawJson(v)]));
  if (node.fields) {
    const bytesy = (t: string) => (t === 'string' ? 'bytes' : t);
    const fields: Json = {};
    const entries: Json = {};
    for (const [name, f] of Object.entries<Json>(node.fields)) {
      if (f.keyType) {
        const entry = `${name.charAt(0).toUpperCase()}${name.slice(1)}Entry`;
        entries[entry] = { fields: { key: { type: bytesy(f.keyType), id: 1 }, value: { type: bytesy(f.type), id: 2 } } };
        fields[name] = { rule: 'repeated', type: entry, id: f.id };
      } else fields[name] = { ...f, type: bytesy(f.type) };
    }
    out.fields = fields;
    if (Object.keys(entries).length) out.nested = { ...(out.nested ?? {}), ...entries };
  }
  return out;
}

export const typed = load();
export const raw = protobuf.Root.fromJSON(rawJson(typed.toJSON()));
raw.resolveAll();

export interface Rpc {
  /** e.g. "Inbox.Send" */
  name: string;
  /** e.g. "/inboxd.v1.Inbox/Send" */
  path: string;
  requestType: string;
  responseType: string;
  requestStream: boolean;
  responseStream: boolean;
}

export const RPCS: Rpc[] = SERVICES.flatMap(s => {
  const svc = typed.lookupService(s);
  return Object.values(svc.methods).map(m => ({
    name: `${svc.name}.${m.name}`,
    path: `/${s}/${m.name}`,
    requestType: `inboxd.v1.${m.requestType}`,
    responseType: `inboxd.v1.${m.responseType}`,
    requestStream: !!m.requestStream,
    responseStream: !!m.responseStream,
  }));
});

/** Encodes a request given in the raw schema (strings as Buffers, int64 as decimal strings). */
export function encodeRaw(type: string, value: object): Buffer {
  return Buffer.from(
    raw
      .lookupType(type)
      .encode(value as any)
      .finish(),
  );
}

/** Encodes a well-formed request (strings as strings). */
export function encodeTyped(type: string, value: object): Buffer {
  const t = typed.lookupType(type);
  return Buffer.from(t.encode(t.fromObject(value)).finish());
}

/** Decodes a response into a plain object (int64 as strings, enums as numbers, bytes as Buffers). */
export function decodeTyped(type: string, bytes: Uint8Array): Json {
  const t = typed.lookupType(type);
  return t.toObject(t.decode(bytes), { longs: String, enums: Number, defaults: false }) as Json;
}
