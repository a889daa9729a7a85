import type { World } from '../env.js';

export interface ScenarioOptions {
  quick: boolean;
  /** stalled_streams fails when server RSS goes above this (MB). */
  rssBoundMb: number;
  /** stalled_streams: bytes of the declared message each stream sends before stalling. */
  stallBytes: number;
}

export interface ScenarioOutcome {
  /** The headline figure, one line. */
  figure: string;
  /** Numbers for the JSON. */
  metrics: Record<string, number | string | undefined>;
  /** Why the scenario fails; empty: it passed. */
  failures: string[];
  notes: string[];
}

export interface Scenario {
  name: string;
  about: string;
  /** What quick mode runs instead of the full size, when it differs. */
  quickNote?: string;
  run(world: World, o: ScenarioOptions): Promise<ScenarioOutcome>;
}

export interface ScenarioResult extends ScenarioOutcome {
  name: string;
  about: string;
  seconds: number;
  size: string;
  error?: string;
}
