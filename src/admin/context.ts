/** What an admin route handler gets, and what it answers. */
import type { IncomingMessage } from 'node:http';
import type { Directory } from '../registry/directory.js';
import type { ProxyState } from '../state.js';

export interface AdminContext {
  readonly state: ProxyState;
  readonly directory: Directory;
  readonly req: IncomingMessage;
  readonly params: Readonly<Record<string, string>>;
  readonly query: URLSearchParams;
  /** Parsed JSON body, or undefined when there is none. */
  readonly body: unknown;
  readonly actor: string;
}

export interface Reply {
  readonly status: number;
  readonly body: unknown;
}
