import type { Scenario } from '../scenario.js';
import { pgCrash, pgRestart } from './pg-restart.js';
import { pgTerminate } from './pg-terminate.js';
import { replicaKill } from './replica-kill.js';
import { serverAndPgKill9 } from './server-and-pg-kill9.js';
import { serverKill9 } from './server-kill9.js';
import { sigtermDrain } from './sigterm-drain.js';
import { subscriberKill } from './subscriber-kill.js';

/** Every scenario, in the order they run. */
export const SCENARIOS: Scenario[] = [serverKill9, serverAndPgKill9, pgRestart, pgCrash, pgTerminate, replicaKill, subscriberKill, sigtermDrain];
