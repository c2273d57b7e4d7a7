// Row 3: nginx two hops with mutual TLS between them, what an operator would configure by hand.
//   hop A: plain HTTP in; proxy_pass https to hop B over kept-alive connections, presenting the
//          client certificate and verifying B's chain (the mesh root) and name
//   hop B: `listen … ssl` with ssl_verify_client on (the mesh root); plain HTTP to the upstream
// TLS 1.3 on both sides, as the mesh speaks.

import { join } from 'node:path';
import type { BaselineTls } from './baseline-certificates.ts';
import { commonConfig, httpCommon } from '../lib/nginx.ts';

function keptAliveUpstream(name: string, port: number): string {
  return `  upstream ${name} {
    server 127.0.0.1:${port};
    keepalive 64;
    keepalive_requests 10000000;
  }
`;
}

/** Hop A: plain HTTP on `port`, mTLS to hop B on `hopBPort`. */
export function nginxHopAConfig(dir: string, port: number, hopBPort: number, tls: BaselineTls) {
  return `${commonConfig(dir)}http {
${httpCommon(dir)}
${keptAliveUpstream('hop_b', hopBPort)}  server {
    listen 127.0.0.1:${port} backlog=4096;
    location / {
      proxy_pass https://hop_b;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_ssl_protocols TLSv1.3;
      proxy_ssl_certificate ${tls.clientCertFile};
      proxy_ssl_certificate_key ${tls.clientKeyFile};
      proxy_ssl_trusted_certificate ${tls.rootFile};
      proxy_ssl_verify on;
      proxy_ssl_verify_depth 2;
      # the name hop B's certificate carries (and sent as SNI)
      proxy_ssl_name localhost;
      proxy_ssl_server_name on;
    }
  }
}
`;
}

/** Hop B: TLS with a required client certificate on `port`, plain HTTP to the upstream. */
export function nginxHopBConfig(dir: string, port: number, upstreamPort: number, tls: BaselineTls) {
  return `${commonConfig(dir)}http {
${httpCommon(dir)}
${keptAliveUpstream('bench_upstream', upstreamPort)}  server {
    listen 127.0.0.1:${port} ssl backlog=4096;
    ssl_protocols TLSv1.3;
    ssl_certificate ${tls.serverCertFile};
    ssl_certificate_key ${tls.serverKeyFile};
    ssl_client_certificate ${tls.rootFile};
    ssl_verify_client on;
    ssl_verify_depth 2;
    location / {
      proxy_pass http://bench_upstream;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`;
}

export const nginxDir = (tmp: string, hop: 'a' | 'b') => join(tmp, `nginx-mtls-${hop}`);
