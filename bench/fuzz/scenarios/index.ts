import { bigMessages } from './big-messages.js';
import { poisonSender } from './poison-sender.js';
import { stalledStreams } from './stalled-streams.js';
import { stuckStreams } from './stuck-streams.js';
import type { Scenario } from './types.js';

/** The isolation scenarios, in the order they run; `--only name` picks them. */
export const SCENARIOS: Scenario[] = [poisonSender, stuckStreams, bigMessages, stalledStreams];
