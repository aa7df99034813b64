/**
 * The one tracing slot the JWT code sees: jose fetches a JWKS with no request
 * at hand, so ./tracer.ts fills this while it runs. Imports nothing, so the
 * auth modules reach it without a cycle through the request context.
 */
/** A JWKS fetch wrapped in a client span of the request that needed it (set while a tracer runs). */
export type JwksFetchHook = (url: string, fetch: () => Promise<Response>) => Promise<Response>;

/** Filled by ./tracer.ts when it starts; jose calls our JWKS fetch without any request at hand. */
export const traceHooks: { jwksFetch: JwksFetchHook | null } = { jwksFetch: null };
