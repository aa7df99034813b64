/** What an admin route handler gets, and what it answers. */
import type { IncomingMessage } from 'node:http';
import type { Directory } from '../registry/directory.js';
import type { ProxyState } from '../state.js';
import type { Actor } from './http.js';

export interface AdminContext {
  readonly state: ProxyState;
  readonly directory: Directory;
  readonly req: IncomingMessage;
  readonly params: Readonly<Record<string, string>>;
  readonly query: URLSearchParams;
  /** Parsed JSON body, or undefined when there is none. */
  readonly body: unknown;
  /** The admin token (by id) and address the call came from, for audit events. */
  readonly actor: Actor;
}

export interface Reply {
  readonly status: number;
  readonly body: unknown;
}
