/** The inboxd TypeScript SDK: `import { createClient } from '@inboxd/sdk'`. */
export { createClient, InboxdClient, type CreateClientOptions, type LeaseOptions } from './client.js';
export { InboxdError, Code } from './errors.js';
export { Publisher, type Payload, type SendOptions } from './publisher.js';
export { Subscriber, type Handler, type CloseOptions } from './subscriber.js';
export { ReceivedMessage, type ReplyOptions, type NackOptions } from './received-message.js';
export { QueueAdmin, type QueueConfig, type QueueInfo, type QueueStats, type Overflow, type RedriveResult } from './queues.js';
export {
  AuthAdmin,
  VERBS,
  type Verb,
  type PrincipalInfo,
  type ApiKeyInfo,
  type GrantInfo,
  type AuditEventInfo,
  type WhoAmI,
  type CreatePrincipalOptions,
  type AuditEventsOptions,
} from './auth.js';
export { checkApiKey, channelCredentials, bearerInterceptor, type TlsOptions } from './credentials.js';
export { TopicAdmin, type TopicInfo, type PublishedCopy } from './topics.js';
export { MessageBrowser, type MessageState, type MessageInfo, type StoredMessage, type DeadLetterOrigin, type ListMessagesOptions, type MessagePage } from './messages.js';
export { DEFAULT_REQUEST_TIMEOUT, type RequestOptions } from './request-reply.js';
export type { Duration } from './durations.js';
export type { CallOptions } from './rpc.js';
export {
  DEFAULT_CLIENT,
  DEFAULT_PUBLISHER,
  DEFAULT_SUBSCRIBER,
  DEFAULT_RETRY,
  type ClientOptions,
  type PublisherOptions,
  type SubscriberOptions,
  type RetryOptions,
} from './default-options.js';
