/** What a grant allows, on a queue (or topic) name. */
export type Verb = 'send' | 'consume' | 'browse' | 'admin';
export const VERBS: readonly Verb[] = ['send', 'consume', 'browse', 'admin'];

/** A principal's name: like a queue's, with ':' and '@' too (service accounts, e-mail-like ids). */
export const PRINCIPAL_NAME = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,99}$/;

/** A grant's target: a queue name, or a prefix ending in '*' ("team-a.*"; "*" alone is every name). */
export const PATTERN = /^(?:[A-Za-z0-9][A-Za-z0-9._-]{0,99}|(?:[A-Za-z0-9][A-Za-z0-9._-]{0,98})?\*)$/;

/** Whether `pattern` names `name`. */
export function matches(pattern: string, name: string): boolean {
  return pattern.endsWith('*') ? name.startsWith(pattern.slice(0, -1)) : pattern === name;
}

/** Whether every name `inner` (a name or a prefix pattern) can stand for is one `outer` names too. */
export function covers(outer: string, inner: string): boolean {
  if (!outer.endsWith('*')) return outer === inner;
  return inner.startsWith(outer.slice(0, -1));
}

/** A principal's grants: pattern → verbs. */
export type GrantMap = Map<string, Set<Verb>>;

/** Whether `grants` allow `verb` on `name`. */
export function allows(grants: GrantMap, verb: Verb, name: string): boolean {
  for (const [pattern, verbs] of grants) if (verbs.has(verb) && matches(pattern, name)) return true;
  return false;
}

/** Whether `grants` allow any verb on `name`. */
export function allowsAny(grants: GrantMap, name: string): boolean {
  for (const pattern of grants.keys()) if (matches(pattern, name)) return true;
  return false;
}
