import { createRequire } from 'node:module';
import { fromBinary, toBinary } from '@bufbuild/protobuf';
import { type DescriptorProto, type FileDescriptorProto, FileDescriptorProtoSchema } from '@bufbuild/protobuf/wkt';
import type { PackageDefinition } from '@grpc/proto-loader';

/** The reflection service's own .proto files, so that reflection lists (and describes) itself. */
export function reflectionProtoPaths(): string[] {
  const require = createRequire(import.meta.url);
  return ['v1', 'v1alpha'].map(v => require.resolve(`@grpc/reflection/build/proto/grpc/reflection/${v}/reflection.proto`));
}

/** protoc's name for the implicit entry message of a map field: `string_map` -> `StringMapEntry`. */
function mapEntryName(field: string): string {
  let out = '';
  let upper = true;
  for (const c of field) {
    if (c === '_') upper = true;
    else {
      out += upper ? c.toUpperCase() : c;
      upper = false;
    }
  }
  return `${out}Entry`;
}

/**
 * Makes proto-loader's file descriptors linkable by reflection clients such as grpcurl (which
 * links each file against the files it declares as imports, with Go's protodesc). proto-loader
 * (protobufjs) emits one file per package with an empty `dependency` list, relative type names,
 * and map entry messages named after the field (`Headers`, not `HeadersEntry`); grpcurl rejects
 * those with "cannot resolve type" and "invalid map: incorrect implicit map entry name". This
 * renames map entries as protoc does, fully qualifies every type reference, and lists the files
 * that declare them as imports. Only the descriptors change, so only reflection sees a difference.
 */
export function linkableDescriptors(pkg: PackageDefinition): PackageDefinition {
  const files = new Map<string, FileDescriptorProto>();
  const nameOf = new Map<Buffer, string>();
  for (const def of Object.values(pkg)) {
    for (const bin of (def as { fileDescriptorProtos?: Buffer[] }).fileDescriptorProtos ?? []) {
      const f = fromBinary(FileDescriptorProtoSchema, bin);
      nameOf.set(bin, f.name);
      if (!files.has(f.name)) files.set(f.name, f);
    }
  }

  // Map entries: protobufjs names the entry after the field and refers to it by that bare name.
  const fixMaps = (m: DescriptorProto) => {
    for (const n of m.nestedType) fixMaps(n);
    for (const field of m.field) {
      const entry = m.nestedType.find(n => n.options?.mapEntry && n.name === field.typeName);
      if (entry) field.typeName = entry.name = mapEntryName(field.name);
    }
  };
  for (const f of files.values()) f.messageType.forEach(fixMaps);

  // Every message and enum, by fully-qualified name (leading dot), with the file declaring it.
  const declaredIn = new Map<string, string>();
  const index = (file: string, scope: string, m: DescriptorProto) => {
    const fqn = `${scope}.${m.name}`;
    declaredIn.set(fqn, file);
    for (const e of m.enumType) declaredIn.set(`${fqn}.${e.name}`, file);
    for (const n of m.nestedType) index(file, fqn, n);
  };
  for (const f of files.values()) {
    const pkgScope = f.package ? `.${f.package}` : '';
    for (const m of f.messageType) index(f.name, pkgScope, m);
    for (const e of f.enumType) declaredIn.set(`${pkgScope}.${e.name}`, f.name);
  }

  for (const f of files.values()) {
    // protoc's scoping: a relative name is looked up from the innermost scope outwards.
    const qualify = (ref: string, scope: string): string => {
      if (ref.startsWith('.')) return ref;
      for (let s = scope; ; s = s.slice(0, Math.max(0, s.lastIndexOf('.')))) {
        const fqn = `${s}.${ref}`;
        if (declaredIn.has(fqn)) {
          const file = declaredIn.get(fqn)!;
          if (file !== f.name && !f.dependency.includes(file)) f.dependency.push(file);
          return fqn;
        }
        if (!s) throw new Error(`reflection: ${f.name}: cannot resolve type ${ref} in ${scope}`);
      }
    };
    const visit = (scope: string, m: DescriptorProto) => {
      const fqn = `${scope}.${m.name}`;
      for (const field of m.field) if (field.typeName) field.typeName = qualify(field.typeName, fqn);
      for (const n of m.nestedType) visit(fqn, n);
    };
    const pkgScope = f.package ? `.${f.package}` : '';
    for (const m of f.messageType) visit(pkgScope, m);
    for (const s of f.service) {
      for (const method of s.method) {
        method.inputType = qualify(method.inputType, `${pkgScope}.${s.name}`);
        method.outputType = qualify(method.outputType, `${pkgScope}.${s.name}`);
      }
    }
  }

  const encoded = new Map([...files].map(([name, f]) => [name, Buffer.from(toBinary(FileDescriptorProtoSchema, f))]));
  return Object.fromEntries(
    Object.entries(pkg).map(([name, def]) => {
      const protos = (def as { fileDescriptorProtos?: Buffer[] }).fileDescriptorProtos;
      return [name, protos ? { ...def, fileDescriptorProtos: protos.map(b => encoded.get(nameOf.get(b)!)!) } : def];
    }),
  ) as PackageDefinition;
}
