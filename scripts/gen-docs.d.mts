// Types of scripts/gen-docs.mjs, for the tests that import it.
export const END: string;
export function begin(source: string): string;
export interface Block {
  /** The page, relative to the repository root. */
  file: string;
  /** What the block is generated from. */
  source: string;
  text: string;
}
export function configurationTable(settings: readonly object[]): string;
export function metricsTable(Metrics: new (options?: { processMetrics?: boolean }) => { registry: object }): Promise<string>;
export function cliReference(program: object): string;
export function blocks(modules: {
  SETTINGS: readonly object[];
  Metrics: new (options?: { processMetrics?: boolean }) => { registry: object };
  buildProgram: (version: string) => object;
}): Promise<Block[]>;
export function splice(page: string, block: Block): string;
