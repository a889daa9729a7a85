import { invalid } from '../errors.js';

const NAME = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,99}$/;

/** The name a page token continues after (undefined: from the start). */
export function pageAfter(token: string): string | undefined {
  if (!token) return undefined;
  const after = Buffer.from(token, 'base64url').toString('utf8');
  if (!NAME.test(after)) throw invalid('page_token is not one this server issued: pass next_page_token from the previous response');
  return after;
}

/**
 * One page of `size` items in name order, after the page token, keeping only those `keep` returns
 * (what the caller may see; it may also trim an item): pages of the source are read until the page
 * is full or the source ends, so a caller who may see few of many names still gets full pages.
 */
export async function filteredPage<T extends { name: string }>(
  size: number,
  pageToken: string,
  fetch: (limit: number, after?: string) => Promise<T[]>,
  keep: (item: T) => Promise<T | undefined> = async t => t,
): Promise<{ items: T[]; nextPageToken: string }> {
  const out: T[] = [];
  let cursor = pageAfter(pageToken);
  for (;;) {
    const page = await fetch(size + 1, cursor);
    for (const t of page) {
      const k = await keep(t);
      if (k) out.push(k);
      if (out.length > size) break;
    }
    const last = page.at(-1);
    if (out.length > size || page.length < size + 1 || !last) break;
    cursor = last.name;
  }
  const items = out.slice(0, size);
  return { items, nextPageToken: out.length > size ? Buffer.from(items.at(-1)?.name ?? '', 'utf8').toString('base64url') : '' };
}
