// nginx as the non-Node anchor, when `nginx` is on PATH: a minimal
// reverse proxy to the same upstream, with an upstream keep-alive pool, run
// from a temp dir (pid, error log, temp paths) so it needs nothing of the
// system's nginx setup and no root. `master_process off`: ONE process serves
// (what worker_processes 1 gives, without the idle master), so its CPU and
// RSS are read from the pid the bench started, like the Node servers'.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

function config(dir, port, upstreamPort) {
  const p = (name) => join(dir, name);
  return `worker_processes 1;
master_process off;
daemon off;
pid ${p('nginx.pid')};
error_log ${p('error.log')} warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${p('client_body')};
  proxy_temp_path ${p('proxy')};
  fastcgi_temp_path ${p('fastcgi')};
  uwsgi_temp_path ${p('uwsgi')};
  scgi_temp_path ${p('scgi')};
  keepalive_timeout 65s;
  keepalive_requests 1000000000;
  # Stream request bodies to the upstream as they arrive (the default spools them to a temp file first),
  # read in 64 KiB pieces like Node's sockets (the default 16 KiB costs more CPU per large body).
  client_max_body_size 0;
  proxy_request_buffering off;
  client_body_buffer_size 64k;
  upstream bench { server 127.0.0.1:${upstreamPort}; keepalive 256; keepalive_requests 1000000000; keepalive_timeout 65s; }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://bench;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`;
}

/** `startNginx(name, upstreamPort)`, from run.js's helpers (startServer with an executable, freePort, tempDirs). */
export function nginxStarter(h) {
  return async (name, upstreamPort) => {
    const dir = mkdtempSync(join(tmpdir(), 'tenantgate-bench-nginx-'));
    h.tempDirs.push(dir);
    const port = await h.freePort();
    const conf = join(dir, 'nginx.conf');
    writeFileSync(conf, config(dir, port, upstreamPort));
    // -e: the error log before the config is read (else the compiled-in /var/log/nginx path).
    return h.startServer(name, ['-p', dir, '-c', conf, '-e', join(dir, 'error.log')], 0, port, 10_000, 'nginx');
  };
}
