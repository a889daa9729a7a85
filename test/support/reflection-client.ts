/**
 * A grpcurl-like client that knows nothing of inboxd's .proto files: it learns every type from the
 * server reflection service and calls methods with proto3-JSON bodies, the way
 * `grpcurl -plaintext -d '{...}' host:port pkg.Service/Method` does.
 *
 * - ReflectionClient speaks grpc.reflection.v1.ServerReflection (falling back to v1alpha on
 *   UNIMPLEMENTED, as grpcurl does) over one bidi stream.
 * - DescriptorSource fetches file_containing_symbol, caches every file sent, and follows each file's
 *   `dependency` list with file_by_filename, like grpcurl's grpcreflect client.
 * - linkErrors() applies the checks grpcurl's linker (Go's protodesc.NewFile) applies: every type
 *   reference resolves within the file or its declared imports, and map entries are well formed.
 * - buildRoot() makes protobufjs types from the FileDescriptorProtos; fromJson()/toJson() do the
 *   proto3 JSON mapping (protojson) on top of them: lowerCamelCase names, int64 as strings, bytes
 *   as base64, Duration as "30s", Timestamp as RFC 3339, maps as objects, enums by name.
 * - Headers and transport: `headers('authorization: Bearer …')` builds the metadata of grpcurl's
 *   `-H`, sent with reflection requests (ReflectionClient's `metadata`, like `-reflect-header`) and
 *   with calls (invokeJson / invokeStreamJson `metadata`, like `-rpc-header`); `tlsCredentials()`
 *   and `grpcurlClient()` stand for `-cacert` / `-cert` / `-key` (and `-plaintext` when unset).
 */
import { type ChannelCredentials, type ChannelOptions, Client, type ClientDuplexStream, credentials, Metadata, type ServiceError, status } from '@grpc/grpc-js';
import type { Enum, Field, Root, Service, Type } from 'protobufjs';
import protobuf from 'protobufjs';
import type { IDescriptorProto, IFieldDescriptorProto, IFileDescriptorProto } from 'protobufjs/ext/descriptor/index.js';
import descriptor from 'protobufjs/ext/descriptor/index.js';

// --- the reflection protocol (compiled into grpcurl; identical messages in v1 and v1alpha) ---

const reflectionTypes = protobuf.Root.fromJSON({
  nested: {
    reflection: {
      nested: {
        ServerReflectionRequest: {
          oneofs: {
            messageRequest: { oneof: ['fileByFilename', 'fileContainingSymbol', 'fileContainingExtension', 'allExtensionNumbersOfType', 'listServices'] },
          },
          fields: {
            host: { type: 'string', id: 1 },
            fileByFilename: { type: 'string', id: 3 },
            fileContainingSymbol: { type: 'string', id: 4 },
            fileContainingExtension: { type: 'ExtensionRequest', id: 5 },
            allExtensionNumbersOfType: { type: 'string', id: 6 },
            listServices: { type: 'string', id: 7 },
          },
        },
        ExtensionRequest: { fields: { containingType: { type: 'string', id: 1 }, extensionNumber: { type: 'int32', id: 2 } } },
        ServerReflectionResponse: {
          oneofs: { messageResponse: { oneof: ['fileDescriptorResponse', 'allExtensionNumbersResponse', 'listServicesResponse', 'errorResponse'] } },
          fields: {
            validHost: { type: 'string', id: 1 },
            originalRequest: { type: 'ServerReflectionRequest', id: 2 },
            fileDescriptorResponse: { type: 'FileDescriptorResponse', id: 4 },
            allExtensionNumbersResponse: { type: 'ExtensionNumberResponse', id: 5 },
            listServicesResponse: { type: 'ListServiceResponse', id: 6 },
            errorResponse: { type: 'ErrorResponse', id: 7 },
          },
        },
        FileDescriptorResponse: { fields: { fileDescriptorProto: { rule: 'repeated', type: 'bytes', id: 1 } } },
        ExtensionNumberResponse: { fields: { baseTypeName: { type: 'string', id: 1 }, extensionNumber: { rule: 'repeated', type: 'int32', id: 2 } } },
        ListServiceResponse: { fields: { service: { rule: 'repeated', type: 'ServiceResponse', id: 1 } } },
        ServiceResponse: { fields: { name: { type: 'string', id: 1 } } },
        ErrorResponse: { fields: { errorCode: { type: 'int32', id: 1 }, errorMessage: { type: 'string', id: 2 } } },
      },
    },
  },
});
const ReflectionRequest = reflectionTypes.lookupType('reflection.ServerReflectionRequest');
const ReflectionResponse = reflectionTypes.lookupType('reflection.ServerReflectionResponse');

interface ReflectionRequestObject {
  fileByFilename?: string;
  fileContainingSymbol?: string;
  listServices?: string;
}
interface ReflectionResponseObject {
  fileDescriptorResponse?: { fileDescriptorProto?: Uint8Array[] };
  listServicesResponse?: { service?: { name: string }[] };
  errorResponse?: { errorCode?: number; errorMessage?: string };
}

export class ReflectionError extends Error {
  readonly code: number;
  constructor(code: number, message: string) {
    super(message);
    this.code = code;
  }
}

export type ReflectionVersion = 'v1' | 'v1alpha';

/** Header lines as grpcurl's `-H 'name: value'` (repeatable) takes them, or a ready Metadata. */
export type Headers = Metadata | Record<string, string> | string[];

/**
 * grpcurl's `-H 'name: value'` lines (or a name → value record) as gRPC metadata. Names are
 * lower-cased as HTTP/2 requires; the value is everything after the first colon, trimmed.
 */
export function headers(h: Headers | string = []): Metadata {
  if (h instanceof Metadata) return h.clone();
  const md = new Metadata();
  const entries: [string, string][] =
    typeof h === 'string' || Array.isArray(h)
      ? (typeof h === 'string' ? [h] : h).map(line => {
          const i = line.indexOf(':');
          if (i <= 0) throw new Error(`header ${JSON.stringify(line)} is not "name: value"`);
          return [line.slice(0, i).trim(), line.slice(i + 1).trim()];
        })
      : Object.entries(h);
  for (const [k, v] of entries) md.add(k.toLowerCase(), v);
  return md;
}

/** `Authorization: Bearer <key>`, as `grpcurl -H 'authorization: Bearer <key>'` sends it. */
export function bearer(key: string): Metadata {
  return headers([`authorization: Bearer ${key}`]);
}

/** How to reach the server: plaintext by default (`-plaintext`), or TLS credentials (`-cacert`, `-cert`, `-key`). */
export interface ConnectOptions {
  /** Channel credentials; unset: plaintext. */
  credentials?: ChannelCredentials;
  /** Channel options, e.g. `grpc.ssl_target_name_override` (grpcurl's `-servername`). */
  channelOptions?: ChannelOptions;
}

/** TLS channel credentials from PEM contents: `ca` to verify the server (`-cacert`), `cert` + `key` for a client certificate. */
export function tlsCredentials(o: { ca?: string | Buffer; cert?: string | Buffer; key?: string | Buffer } = {}): ChannelCredentials {
  const buf = (v: string | Buffer | undefined) => (v === undefined ? null : Buffer.isBuffer(v) ? v : Buffer.from(v, 'utf8'));
  return credentials.createSsl(buf(o.ca), buf(o.key), buf(o.cert));
}

/** A channel for invokeJson / invokeStreamJson, plaintext or TLS. */
export function grpcurlClient(address: string, o: ConnectOptions = {}): Client {
  return new Client(address, o.credentials ?? credentials.createInsecure(), o.channelOptions);
}

export interface ReflectionClientOptions extends ConnectOptions {
  /** Picks a version; by default v1, then v1alpha if the server doesn't implement v1. */
  version?: ReflectionVersion;
  /** Sent when each reflection stream opens (grpcurl's `-H` / `-reflect-header`). */
  metadata?: Headers;
}

/** One reflection stream; requests are answered in order, one response each. */
export class ReflectionClient {
  private readonly client: Client;
  private stream?: ClientDuplexStream<ReflectionRequestObject, ReflectionResponseObject>;
  private pending: { resolve: (r: ReflectionResponseObject) => void; reject: (e: Error) => void }[] = [];
  /** The version that answered (after the first request). */
  version?: ReflectionVersion;

  private readonly forced?: ReflectionVersion;
  private readonly metadata: Metadata;

  /**
   * `forced` picks a version; by default v1, then v1alpha if the server doesn't implement v1.
   * Or options: the version, TLS credentials, and headers to send on the reflection stream.
   */
  constructor(address: string, forced?: ReflectionVersion | ReflectionClientOptions) {
    const o: ReflectionClientOptions = typeof forced === 'string' ? { version: forced } : (forced ?? {});
    this.client = grpcurlClient(address, o);
    this.forced = o.version;
    this.metadata = headers(o.metadata);
  }

  private open(version: ReflectionVersion) {
    const stream = this.client.makeBidiStreamRequest<ReflectionRequestObject, ReflectionResponseObject>(
      `/grpc.reflection.${version}.ServerReflection/ServerReflectionInfo`,
      req => Buffer.from(ReflectionRequest.encode(ReflectionRequest.fromObject(req)).finish()),
      buf => ReflectionResponse.toObject(ReflectionResponse.decode(buf), { defaults: false, arrays: true }) as ReflectionResponseObject,
      this.metadata.clone(),
    );
    stream.on('data', (res: ReflectionResponseObject) => this.pending.shift()?.resolve(res));
    stream.on('error', (err: Error) => {
      if (this.stream === stream) this.stream = undefined;
      for (const p of this.pending.splice(0)) p.reject(err);
    });
    stream.on('end', () => {
      if (this.stream === stream) this.stream = undefined;
      for (const p of this.pending.splice(0)) p.reject(new Error('reflection stream ended'));
    });
    return stream;
  }

  private sendOn(version: ReflectionVersion, req: ReflectionRequestObject): Promise<ReflectionResponseObject> {
    if (!this.stream || this.version !== version) {
      this.stream?.end();
      this.stream = this.open(version);
      this.version = version;
    }
    const stream = this.stream;
    return new Promise((resolve, reject) => {
      this.pending.push({ resolve, reject });
      stream.write(req);
    });
  }

  private async send(req: ReflectionRequestObject): Promise<ReflectionResponseObject> {
    let res: ReflectionResponseObject;
    if (this.forced) res = await this.sendOn(this.forced, req);
    else if (this.version) res = await this.sendOn(this.version, req);
    else {
      try {
        res = await this.sendOn('v1', req);
      } catch (err) {
        if ((err as ServiceError).code !== status.UNIMPLEMENTED) throw err;
        res = await this.sendOn('v1alpha', req);
      }
    }
    if (res.errorResponse) throw new ReflectionError(res.errorResponse.errorCode ?? status.UNKNOWN, res.errorResponse.errorMessage ?? '');
    return res;
  }

  async listServices(): Promise<string[]> {
    const res = await this.send({ listServices: '*' });
    if (!res.listServicesResponse) throw new Error('reflection: expected list_services_response');
    return (res.listServicesResponse.service ?? []).map(s => s.name);
  }

  private async files(req: ReflectionRequestObject): Promise<IFileDescriptorProto[]> {
    const res = await this.send(req);
    if (!res.fileDescriptorResponse) throw new Error('reflection: expected file_descriptor_response');
    return (res.fileDescriptorResponse.fileDescriptorProto ?? []).map(b => descriptor.FileDescriptorProto.decode(b) as unknown as IFileDescriptorProto);
  }

  /** The file declaring `symbol`, first, then (usually) its transitive dependencies. */
  fileContainingSymbol(symbol: string): Promise<IFileDescriptorProto[]> {
    return this.files({ fileContainingSymbol: symbol });
  }

  fileByFilename(name: string): Promise<IFileDescriptorProto[]> {
    return this.files({ fileByFilename: name });
  }

  close(): void {
    this.stream?.end();
    this.stream = undefined;
    this.client.close();
  }
}

// --- descriptors, fetched the way grpcurl fetches them ---

export class DescriptorSource {
  /** Every file the server has sent, by name (the first copy wins, as in grpcurl). */
  readonly files = new Map<string, IFileDescriptorProto>();
  /** Files that had to be asked for by name because no earlier response carried them. */
  readonly fetchedByFilename: string[] = [];

  readonly reflection: ReflectionClient;

  constructor(reflection: ReflectionClient) {
    this.reflection = reflection;
  }

  private cache(files: IFileDescriptorProto[]) {
    for (const f of files) if (f.name && !this.files.has(f.name)) this.files.set(f.name, f);
  }

  private async ensure(name: string, seen: Set<string>): Promise<void> {
    if (seen.has(name)) return;
    seen.add(name);
    if (!this.files.has(name)) {
      this.fetchedByFilename.push(name);
      const got = await this.reflection.fileByFilename(name);
      if (got[0]?.name !== name) throw new Error(`file_by_filename ${name} answered ${got[0]?.name}`);
      this.cache(got);
    }
    for (const dep of this.files.get(name)!.dependency ?? []) await this.ensure(dep as string, seen);
  }

  /** Resolves `symbol` to the name of the file declaring it, with all its imports loaded. */
  async fileContainingSymbol(symbol: string): Promise<string> {
    const got = await this.reflection.fileContainingSymbol(symbol);
    if (!got.length || !got[0].name) throw new Error(`file_containing_symbol ${symbol}: no files`);
    this.cache(got);
    await this.ensure(got[0].name, new Set());
    return got[0].name;
  }

  /** `name` and its transitive imports, imports first. */
  closure(name: string, out: IFileDescriptorProto[] = [], seen = new Set<string>()): IFileDescriptorProto[] {
    if (seen.has(name)) return out;
    seen.add(name);
    const f = this.files.get(name);
    if (!f) throw new Error(`file ${name} not loaded`);
    for (const dep of f.dependency ?? []) this.closure(dep as string, out, seen);
    out.push(f);
    return out;
  }
}

// --- the link checks grpcurl (protodesc.NewFile) applies ---

interface Decl {
  file: string;
  kind: 'message' | 'enum';
  proto?: IDescriptorProto;
}

function indexFile(f: IFileDescriptorProto, into: Map<string, Decl>) {
  const visit = (scope: string, m: IDescriptorProto) => {
    const fqn = `${scope}.${m.name}`;
    into.set(fqn, { file: f.name!, kind: 'message', proto: m });
    for (const n of m.nestedType ?? []) visit(fqn, n);
    for (const e of m.enumType ?? []) into.set(`${fqn}.${e.name}`, { file: f.name!, kind: 'enum' });
  };
  const pkg = f.package ? `.${f.package}` : '';
  for (const m of f.messageType ?? []) visit(pkg, m);
  for (const e of f.enumType ?? []) into.set(`${pkg}.${e.name}`, { file: f.name!, kind: 'enum' });
}

/** protoc's scoping: a relative name is looked up from the innermost scope outwards. */
function resolveRef(ref: string, scope: string, symbols: Map<string, Decl>): string | undefined {
  if (ref.startsWith('.')) return symbols.has(ref) ? ref : undefined;
  for (let s = scope; ; s = s.slice(0, Math.max(0, s.lastIndexOf('.')))) {
    const candidate = `${s}.${ref}`;
    if (symbols.has(candidate)) return candidate;
    if (!s) return undefined;
  }
}

/** protobuf's implicit map entry name: `string_map` -> `StringMapEntry`. */
export function mapEntryName(field: string): string {
  return field.replace(/(^|_)([a-z0-9])/g, (_, __, c: string) => c.toUpperCase()).replace(/_/g, '') + 'Entry';
}

/**
 * What Go's protodesc.NewFile (used by grpcurl) would reject, per file: a type reference that does
 * not resolve within the file and the files it imports (`dependency`, plus their public imports),
 * and malformed implicit map entries. Empty when grpcurl can link every file.
 */
export function linkErrors(files: Map<string, IFileDescriptorProto>): string[] {
  const errors: string[] = [];
  const own = new Map<string, Map<string, Decl>>();
  for (const [name, f] of files) {
    const m = new Map<string, Decl>();
    indexFile(f, m);
    own.set(name, m);
  }
  const publicClosure = (name: string, acc: Set<string>) => {
    if (acc.has(name)) return;
    acc.add(name);
    const f = files.get(name);
    for (const i of f?.publicDependency ?? []) publicClosure(f!.dependency![i as number] as string, acc);
  };
  for (const [name, f] of files) {
    const visible = new Map<string, Decl>(own.get(name));
    for (const dep of f.dependency ?? []) {
      if (!files.has(dep as string)) errors.push(`${name}: imports ${dep}, which the server did not provide`);
      const acc = new Set<string>();
      publicClosure(dep as string, acc);
      for (const d of acc) for (const [k, v] of own.get(d) ?? []) visible.set(k, v);
    }
    const checkField = (scope: string, fd: IFieldDescriptorProto) => {
      // string, bytes, message (9, 12, 11) and group (10) fields cannot be packed
      if (fd.options?.packed && [9, 10, 11, 12].includes(fd.type ?? 0)) errors.push(`${name}: field ${scope.slice(1)}.${fd.name} is not packable`);
      if (!fd.typeName) return;
      const target = resolveRef(fd.typeName, scope, visible);
      const where = `${scope.slice(1)}.${fd.name}`;
      if (!target) {
        errors.push(`${name}: field ${where} cannot resolve type ${fd.typeName} (not declared in ${name} or its imports [${(f.dependency ?? []).join(', ')}])`);
        return;
      }
      const decl = visible.get(target)!;
      if (decl.kind === 'message' && decl.proto?.options?.mapEntry) {
        if (target !== `${scope}.${mapEntryName(fd.name!)}`)
          errors.push(`${name}: field ${where} is an invalid map: incorrect implicit map entry name ${target.slice(1)}`);
        if (fd.label !== 3) errors.push(`${name}: field ${where} is an invalid map: field must be repeated`);
      }
    };
    const visit = (scope: string, m: IDescriptorProto) => {
      const fqn = `${scope}.${m.name}`;
      for (const fd of m.field ?? []) checkField(fqn, fd);
      for (const n of m.nestedType ?? []) visit(fqn, n);
    };
    const pkg = f.package ? `.${f.package}` : '';
    for (const m of f.messageType ?? []) visit(pkg, m);
    for (const s of f.service ?? [])
      for (const md of s.method ?? [])
        for (const t of [md.inputType, md.outputType])
          if (!t || !resolveRef(t, `${pkg}.${s.name}`, visible)) errors.push(`${name}: method ${pkg.slice(1)}.${s.name}.${md.name} cannot resolve type ${t}`);
  }
  return errors;
}

// --- protobufjs types from the reflected descriptors ---

export interface Reflected {
  root: Root;
  /** Full names (no leading dot) of map entry messages. */
  mapEntries: Set<string>;
}

export function buildRoot(files: IFileDescriptorProto[]): Reflected {
  const fromDescriptor = (protobuf.Root as unknown as { fromDescriptor(d: { file: IFileDescriptorProto[] }): Root }).fromDescriptor;
  const root = fromDescriptor({ file: files });
  root.resolveAll();
  const mapEntries = new Set<string>();
  const decls = new Map<string, Decl>();
  for (const f of files) indexFile(f, decls);
  for (const [fqn, d] of decls) if (d.proto?.options?.mapEntry) mapEntries.add(fqn.slice(1));
  return { root, mapEntries };
}

/** The reflected shape of a service: method names with their streaming flags. */
export function describeService(
  root: Root,
  name: string,
): { name: string; requestStream: boolean; responseStream: boolean; requestType: string; responseType: string }[] {
  const svc: Service = root.lookupService(name);
  return svc.methodsArray.map(m => {
    m.resolve();
    return {
      name: m.name,
      requestStream: !!m.requestStream,
      responseStream: !!m.responseStream,
      requestType: m.resolvedRequestType!.fullName.slice(1),
      responseType: m.resolvedResponseType!.fullName.slice(1),
    };
  });
}

// --- proto3 JSON (what grpcurl reads with -d and prints) ---

const LONGS = new Set(['int64', 'uint64', 'sint64', 'fixed64', 'sfixed64']);
const INTS = new Set(['int32', 'uint32', 'sint32', 'fixed32', 'sfixed32']);

const jsonName = (f: Field) => f.name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());

function pad(n: number, width: number) {
  return String(n).padStart(width, '0');
}
/** protojson's fraction: none, or 3, 6 or 9 digits. */
function fraction(nanos: number): string {
  if (!nanos) return '';
  if (nanos % 1e6 === 0) return `.${pad(nanos / 1e6, 3)}`;
  if (nanos % 1e3 === 0) return `.${pad(nanos / 1e3, 6)}`;
  return `.${pad(nanos, 9)}`;
}

/** "30s", "1.5s", "-0.250s" -> {seconds, nanos}. protobufjs has no JSON mapping for Duration. */
export function parseDuration(s: unknown): { seconds: string; nanos: number } {
  const m = typeof s === 'string' ? /^(-)?(\d+)(?:\.(\d{1,9}))?s$/.exec(s) : null;
  if (!m) throw new Error(`invalid google.protobuf.Duration value ${JSON.stringify(s)}`);
  const sign = m[1] ? -1 : 1;
  const nanos = m[3] ? Number(m[3].padEnd(9, '0')) : 0;
  return { seconds: (m[1] && m[2] !== '0' ? '-' : '') + m[2], nanos: sign * nanos };
}

export function formatDuration(d: { seconds?: string | number; nanos?: number }): string {
  const seconds = BigInt(d.seconds ?? 0);
  const nanos = d.nanos ?? 0;
  const neg = seconds < 0n || nanos < 0;
  const abs = seconds < 0n ? -seconds : seconds;
  return `${neg ? '-' : ''}${abs}${fraction(Math.abs(nanos))}s`;
}

/** RFC 3339 -> {seconds, nanos}. */
export function parseTimestamp(s: unknown): { seconds: string; nanos: number } {
  const m = typeof s === 'string' ? /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/i.exec(s) : null;
  const ms = m ? Date.parse(`${m[1]}${m[3].toUpperCase()}`) : NaN;
  if (!m || Number.isNaN(ms)) throw new Error(`invalid google.protobuf.Timestamp value ${JSON.stringify(s)}`);
  return { seconds: String(ms / 1000), nanos: m[2] ? Number(m[2].padEnd(9, '0')) : 0 };
}

export function formatTimestamp(t: { seconds?: string | number; nanos?: number }): string {
  const iso = new Date(Number(t.seconds ?? 0) * 1000).toISOString(); // ...THH:MM:SS.000Z
  return `${iso.slice(0, 19)}${fraction(t.nanos ?? 0)}Z`;
}

function scalarFromJson(f: Field, v: unknown, where: string): unknown {
  if (f.resolvedType && 'values' in f.resolvedType) {
    const e = f.resolvedType as Enum;
    if (typeof v === 'string' && !(v in e.values)) throw new Error(`${where}: unknown ${e.fullName.slice(1)} value ${v}`);
    return v;
  }
  switch (f.type) {
    case 'bytes':
      if (typeof v !== 'string') throw new Error(`${where}: bytes must be a base64 string`);
      return Buffer.from(v, 'base64');
    case 'string':
      if (typeof v !== 'string') throw new Error(`${where}: expected a string`);
      return v;
    case 'bool':
      if (typeof v !== 'boolean') throw new Error(`${where}: expected true or false`);
      return v;
    case 'float':
    case 'double':
      return typeof v === 'string' ? Number(v) : v;
    default:
      if (LONGS.has(f.type)) return String(v);
      if (INTS.has(f.type)) {
        const n = Number(v);
        if (!Number.isInteger(n)) throw new Error(`${where}: expected an integer`);
        return n;
      }
      return v;
  }
}

function valueFromJson(r: Reflected, f: Field, v: unknown, where: string): unknown {
  return f.resolvedType && 'fieldsArray' in f.resolvedType ? messageFromJson(r, f.resolvedType as Type, v, where) : scalarFromJson(f, v, where);
}

function messageFromJson(r: Reflected, type: Type, json: unknown, where: string): Record<string, unknown> {
  const name = type.fullName.slice(1);
  if (name === 'google.protobuf.Duration') return parseDuration(json);
  if (name === 'google.protobuf.Timestamp') return parseTimestamp(json);
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new Error(`${where}: expected an object for ${name}`);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(json)) {
    const f = type.fields[k] ?? type.fieldsArray.find(x => jsonName(x) === k);
    if (!f) throw new Error(`message type ${name} has no known field named ${k}`);
    if (v === null) continue;
    const at = `${where}.${k}`;
    const entry = f.resolvedType && r.mapEntries.has(f.resolvedType.fullName.slice(1)) ? (f.resolvedType as Type) : undefined;
    if (entry) {
      if (typeof v !== 'object' || Array.isArray(v)) throw new Error(`${at}: expected an object (map)`);
      out[f.name] = Object.entries(v as object).map(([mk, mv]) => ({
        key: scalarFromJson(entry.fields.key, entry.fields.key.type === 'bool' ? mk === 'true' : mk, at),
        value: valueFromJson(r, entry.fields.value, mv, `${at}[${mk}]`),
      }));
    } else if (f.repeated) {
      if (!Array.isArray(v)) throw new Error(`${at}: expected an array`);
      out[f.name] = v.map((x, i) => valueFromJson(r, f, x, `${at}[${i}]`));
    } else out[f.name] = valueFromJson(r, f, v, at);
  }
  return out;
}

/** A proto3 JSON body (as given to grpcurl -d) -> a protobufjs message of `type`. */
export function fromJson(r: Reflected, type: Type, json: unknown) {
  return type.fromObject(messageFromJson(r, type, json, type.name));
}

function valueToJson(r: Reflected, f: Field, v: unknown): unknown {
  if (f.resolvedType && 'fieldsArray' in f.resolvedType) return objectToJson(r, f.resolvedType as Type, v as Record<string, unknown>);
  if (f.type === 'float' || f.type === 'double') return typeof v === 'number' && !Number.isFinite(v) ? String(v) : v;
  return v; // longs, bytes and enums are already strings (toObject options below)
}

function objectToJson(r: Reflected, type: Type, obj: Record<string, unknown>): unknown {
  const name = type.fullName.slice(1);
  if (name === 'google.protobuf.Duration') return formatDuration(obj as { seconds?: string; nanos?: number });
  if (name === 'google.protobuf.Timestamp') return formatTimestamp(obj as { seconds?: string; nanos?: number });
  const out: Record<string, unknown> = {};
  for (const f of type.fieldsArray) {
    const v = obj[f.name];
    if (v === undefined || v === null) continue;
    const entry = f.resolvedType && r.mapEntries.has(f.resolvedType.fullName.slice(1)) ? (f.resolvedType as Type) : undefined;
    if (entry) {
      const m: Record<string, unknown> = {};
      for (const e of v as { key?: unknown; value?: unknown }[])
        m[String(e.key ?? '')] = e.value === undefined ? undefined : valueToJson(r, entry.fields.value, e.value);
      out[jsonName(f)] = m;
    } else if (f.repeated) out[jsonName(f)] = (v as unknown[]).map(x => valueToJson(r, f, x));
    else out[jsonName(f)] = valueToJson(r, f, v);
  }
  return out;
}

/**
 * A protobufjs message of `type` -> proto3 JSON as grpcurl prints it (without -emit-defaults:
 * fields at their default value are left out).
 */
export function toJson(r: Reflected, type: Type, message: protobuf.Message<object>): unknown {
  const obj = type.toObject(message, { longs: String, enums: String, bytes: String, defaults: false, arrays: false });
  return objectToJson(r, type, obj);
}

// --- calls ---

export interface InvokeOptions {
  /** Deadline of the call, from now (grpcurl's `-max-time`); default 30 s. */
  timeoutMs?: number;
  /** Request headers (grpcurl's `-H` / `-rpc-header`), e.g. `['authorization: Bearer <key>']`. */
  metadata?: Headers;
}

const invokeOptions = (o: number | InvokeOptions | undefined): Required<Pick<InvokeOptions, 'timeoutMs'>> & { metadata: Metadata } => {
  const opts = typeof o === 'number' ? { timeoutMs: o } : (o ?? {});
  return { timeoutMs: opts.timeoutMs ?? 30_000, metadata: headers(opts.metadata) };
};

function methodOf(r: Reflected, method: string) {
  const [service, name] = method.split('/');
  const m = r.root.lookupService(service).methods[name];
  if (!m) throw new Error(`service ${service} has no method ${name}`);
  m.resolve();
  return { path: `/${service}/${name}`, m, reqType: m.resolvedRequestType!, resType: m.resolvedResponseType! };
}

/**
 * Calls a unary method, `pkg.Service/Method`, with a proto3 JSON body and returns the response as
 * proto3 JSON: `grpcurl -plaintext -d '<body>' <address> <method>`. The last argument is the
 * deadline in ms, or options with headers: `{ metadata: ['authorization: Bearer <key>'] }` is
 * `grpcurl -H 'authorization: Bearer <key>' …`.
 */
export function invokeJson(client: Client, r: Reflected, method: string, body: unknown = {}, options: number | InvokeOptions = 30_000): Promise<unknown> {
  const { path, m, reqType, resType } = methodOf(r, method);
  if (m.requestStream || m.responseStream) throw new Error(`${method} is a streaming method`);
  const { timeoutMs, metadata } = invokeOptions(options);
  const req = fromJson(r, reqType, body);
  return new Promise((resolve, reject) =>
    client.makeUnaryRequest(
      path,
      (msg: protobuf.Message<object>) => Buffer.from(reqType.encode(msg).finish()),
      (buf: Buffer) => resType.decode(buf),
      req,
      metadata,
      { deadline: Date.now() + timeoutMs },
      (err, res) => (err ? reject(err) : resolve(toJson(r, resType, res!))),
    ),
  );
}

/**
 * Calls a streaming method (client, server or bidi) the way `grpcurl -d @` does: writes each body
 * (one for a server-streaming method), half-closes, and resolves with every response, as JSON,
 * once the server ends the call with OK; rejects with the call's error otherwise (the responses
 * received before it on `err.responses`).
 */
export function invokeStreamJson(
  client: Client,
  r: Reflected,
  method: string,
  bodies: unknown[],
  options: number | InvokeOptions = 30_000,
): Promise<unknown[]> {
  const { path, m, reqType, resType } = methodOf(r, method);
  if (!m.requestStream && !m.responseStream) throw new Error(`${method} is a unary method: use invokeJson`);
  if (!m.requestStream && bodies.length !== 1) throw new Error(`${method} takes exactly one request`);
  const { timeoutMs, metadata } = invokeOptions(options);
  const serialize = (msg: protobuf.Message<object>) => Buffer.from(reqType.encode(msg).finish());
  const deserialize = (buf: Buffer) => resType.decode(buf);
  const reqs = bodies.map(b => fromJson(r, reqType, b));
  const callOpts = { deadline: Date.now() + timeoutMs };
  return new Promise((resolve, reject) => {
    const out: unknown[] = [];
    const done = (err: ServiceError | null) => {
      if (err) reject(Object.assign(err, { responses: out }));
      else resolve(out);
    };
    const collect = (call: NodeJS.EventEmitter) => {
      call.on('data', (res: protobuf.Message<object>) => out.push(toJson(r, resType, res)));
      call.on('error', (err: ServiceError) => done(err));
      call.on('end', () => done(null));
    };
    if (m.requestStream && m.responseStream) {
      const call = client.makeBidiStreamRequest(path, serialize, deserialize, metadata, callOpts);
      collect(call);
      for (const req of reqs) call.write(req);
      call.end();
    } else if (m.responseStream) {
      collect(client.makeServerStreamRequest(path, serialize, deserialize, reqs[0], metadata, callOpts));
    } else {
      const call = client.makeClientStreamRequest(path, serialize, deserialize, metadata, callOpts, (err, res) =>
        err ? done(err) : (out.push(toJson(r, resType, res!)), done(null)),
      );
      for (const req of reqs) call.write(req);
      call.end();
    }
  });
}
