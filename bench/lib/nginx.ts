// nginx in the benchmarks: the upstream every row ends at, the plain reverse proxy of the gateway
// bench, and the pieces other configs are built from (bench/mesh/nginx-mtls.ts). Each nginx gets a
// generated config in its own temp folder (pid, logs, temp paths), runs with `daemon off` as our
// child, and is killed with its process group.

import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startProcess, type ManagedProcess } from './child-processes.ts';

/** 100 bytes; no quotes or `$`, which nginx would read as the end of the string or a variable. */
export const UPSTREAM_BODY =
  'meshgate bench upstream: a fixed 100-byte body from nginx return 200 '.padEnd(100, '.');

/** Response header in which the upstream echoes the request's path and query. */
export const UPSTREAM_PATH_HEADER = 'x-upstream-path';

/** The main context: one worker, no daemon, pid and error log in `dir`. */
export function commonConfig(dir: string): string {
  return `daemon off;
master_process on;
worker_processes 1;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'error.log')} warn;
events {
  worker_connections 4096;
}
`;
}

/** The `http {}` lines every role shares: no access log, temp paths in `dir`, long keep-alive. */
export function httpCommon(dir: string): string {
  return `  access_log off;
  client_body_temp_path ${join(dir, 'client_body')};
  proxy_temp_path ${join(dir, 'proxy')};
  fastcgi_temp_path ${join(dir, 'fastcgi')};
  uwsgi_temp_path ${join(dir, 'uwsgi')};
  scgi_temp_path ${join(dir, 'scgi')};
  # wrk keeps its connections for the whole run; nginx's default (1000) would make it reconnect
  keepalive_requests 10000000;
  keepalive_timeout 120s;
`;
}

/** nginx answering every request with 200 and UPSTREAM_BODY. */
export function upstreamConfig(dir: string, port: number): string {
  return `${commonConfig(dir)}http {
${httpCommon(dir)}
  server {
    listen 127.0.0.1:${port} backlog=4096;
    location / {
      default_type text/plain;
      # lets the check before measuring see that a proxy forwarded the path unchanged
      add_header ${UPSTREAM_PATH_HEADER} $request_uri;
      return 200 '${UPSTREAM_BODY}';
    }
  }
}
`;
}

/** nginx as a reverse proxy to the upstream, reusing upstream connections. */
export function reverseProxyConfig(dir: string, port: number, upstreamPort: number): string {
  return `${commonConfig(dir)}http {
${httpCommon(dir)}
  upstream bench_upstream {
    server 127.0.0.1:${upstreamPort};
    keepalive 64;
    keepalive_requests 10000000;
  }
  server {
    listen 127.0.0.1:${port} backlog=4096;
    location / {
      proxy_pass http://bench_upstream;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`;
}

/** Writes `config` into `dir` and starts nginx on it, pinned to `cpu` when given. */
export function startNginx(
  name: string,
  nginx: string,
  dir: string,
  config: string,
  cpu: number | undefined,
): ManagedProcess {
  mkdirSync(dir, { recursive: true });
  // nginx's workers run as nobody when the master is root: they must reach the temp paths
  chmodSync(dir, 0o755);
  const confPath = join(dir, 'nginx.conf');
  writeFileSync(confPath, config);
  // -e: the startup error log too, or nginx tries /var/log/nginx before it reads the config
  const nginxArgs = ['-p', dir, '-c', confPath, '-e', join(dir, 'error.log')];
  return cpu === undefined
    ? startProcess(name, nginx, nginxArgs)
    : startProcess(name, 'taskset', ['-c', String(cpu), nginx, ...nginxArgs]);
}
