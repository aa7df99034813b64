# syntax=docker/dockerfile:1
#
# tenantgate container image.
#
#   docker build -t tenantgate .
#   docker run --rm -p 8080:8080 -v "$PWD/config:/etc/tenantgate:ro" tenantgate
#
# Three stages: `build` compiles TypeScript with the dev dependencies,
# `deps` installs the production dependencies only, and the runtime stage
# copies dist/ and those node_modules onto a slim Node LTS base. No compiler,
# no dev dependency, no npm in the final image.
#
# Runs as uid 1000 (numeric, so Kubernetes' runAsNonRoot can check it) on a
# read-only root filesystem: the only paths written are the working directory
# /var/lib/tenantgate (the usage spool; mount a volume there) and /tmp.

ARG NODE_VERSION=24

FROM node:${NODE_VERSION}-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
# `npm run build` is tsc plus copying src/limits/*.lua (the Redis scripts) into dist/.
RUN npm run build

FROM node:${NODE_VERSION}-slim AS deps
WORKDIR /src
COPY package.json package-lock.json ./
# Production dependencies only; every one is plain JavaScript, so no install script is needed.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

FROM node:${NODE_VERSION}-slim AS runtime
# npm, npx and corepack are not needed to run the proxy: fewer files, fewer CVEs to patch.
RUN rm -rf /usr/local/lib/node_modules /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack \
 && mkdir -p /var/lib/tenantgate/spool \
 && chown -R 1000:1000 /var/lib/tenantgate
ENV NODE_ENV=production \
    TENANTGATE_SPOOL_DIR=/var/lib/tenantgate/spool
WORKDIR /app
COPY --from=deps /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY package.json ./
# The reference config, so `docker run tenantgate` starts; mount your own at /etc/tenantgate.
COPY config/tenantgate.yaml /etc/tenantgate/tenantgate.yaml
COPY config/examples /etc/tenantgate/examples

# Relative paths in a config (./spool, ./usage.ndjson) resolve here: the one writable place.
WORKDIR /var/lib/tenantgate
VOLUME ["/var/lib/tenantgate"]
USER 1000:1000

# Data port and admin port (/healthz, /readyz, /metrics); config's listen.port and admin.port.
EXPOSE 8080 9901

# For `docker run` and Compose. Kubernetes ignores HEALTHCHECK: the Helm chart
# uses liveness /healthz and readiness /readyz probes on the admin port instead.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.TENANTGATE_ADMIN_PORT||9901)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]

# Exec form, node directly: node is PID 1 and receives SIGTERM itself (no shell
# or npm in between to swallow it). tenantgate installs its own SIGTERM/SIGINT
# (drain, then exit 0) and SIGHUP (reload) handlers, which is what PID 1 needs,
# since the kernel applies no default action to PID 1; and it starts no child
# processes, so there are no zombies to reap: no tini needed (`docker run
# --init` adds one anyway, and changes nothing here).
ENTRYPOINT ["node", "/app/dist/main.js"]
CMD ["serve", "-c", "/etc/tenantgate/tenantgate.yaml"]
