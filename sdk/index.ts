/** The inboxd TypeScript SDK: `import { createClient } from '@inboxd/sdk'`. */

export {
  type ApiKeyInfo,
  type AuditEventInfo,
  type AuditEventsOptions,
  AuthAdmin,
  type CreatePrincipalOptions,
  type GrantInfo,
  type PrincipalInfo,
  VERBS,
  type Verb,
  type WhoAmI,
} from './auth.js';
export { type CreateClientOptions, createClient, InboxdClient, type LeaseOptions } from './client.js';
export { bearerInterceptor, channelCredentials, checkApiKey, type TlsOptions } from './credentials.js';
export {
  type ClientOptions,
  DEFAULT_CLIENT,
  DEFAULT_PUBLISHER,
  DEFAULT_RETRY,
  DEFAULT_SUBSCRIBER,
  type PublisherOptions,
  type RetryOptions,
  type SubscriberOptions,
} from './default-options.js';
export type { Duration } from './durations.js';
export { Code, InboxdError } from './errors.js';
export { newMessageId } from './message-id.js';
export {
  type DeadLetterOrigin,
  type ListMessagesOptions,
  MessageBrowser,
  type MessageInfo,
  type MessagePage,
  type MessageState,
  type StoredMessage,
} from './messages.js';
export { type Payload, Publisher, type SendOptions } from './publisher.js';
export { type Overflow, QueueAdmin, type QueueConfig, type QueueInfo, type QueueStats, type RedriveResult } from './queues.js';
export { type NackOptions, ReceivedMessage, type ReplyOptions } from './received-message.js';
export { DEFAULT_REQUEST_TIMEOUT, type RequestOptions } from './request-reply.js';
export type { CallOptions } from './rpc.js';
export { type CloseOptions, type Handler, Subscriber } from './subscriber.js';
export { type PublishedCopy, TopicAdmin, type TopicInfo } from './topics.js';
