import type { GetMessageRequest, GetMessageResponse, ListMessagesRequest, ListMessagesResponse } from '@inboxd/proto/v1/inbox';
import type { Auth, Caller, CallInfo } from '../auth/auth.js';
import { invalid } from '../errors.js';
import { browseState } from '../queue/browse.js';
import type { QueueCore } from '../queue/core.js';
import * as v from './validate.js';

const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

/** Browsing handlers: Inbox.ListMessages and Inbox.GetMessage (server/queue/browse.ts reads). */
export function browseHandlers(core: QueueCore, auth: Auth) {
  return {
    async listMessages(req: ListMessagesRequest, call: CallInfo, caller: Caller): Promise<ListMessagesResponse> {
      const queue = v.queueName(req.queue);
      await auth.require(caller, 'browse', queue, call);
      const state = browseState(req.state);
      const pageSize = v.count(req.pageSize, 'page_size', 1, 1000, 100);
      return core.browser.list(queue, { state, pageSize, pageToken: req.pageToken, newestFirst: req.newestFirst });
    },

    async getMessage(req: GetMessageRequest, call: CallInfo, caller: Caller): Promise<GetMessageResponse> {
      const queue = v.queueName(req.queue);
      await auth.require(caller, 'browse', queue, call);
      if (!req.id) throw invalid('id is required');
      if (!UUID.test(req.id)) throw invalid(`id ${JSON.stringify(req.id.slice(0, 60))} is not a message id (a UUID)`);
      return { message: await core.browser.get(queue, req.id.toLowerCase()) };
    },
  };
}
