// The usage line of each command, apart from the commands themselves: `meshgate help` and the
// dispatcher in cli.ts need them without loading every command's dependencies.

export const CONTROL_PLANE_USAGE =
  'meshgate control-plane --config DIR --data DIR [--listen-host 127.0.0.1] [--discovery-port 15010] [--admin-port 15014] [--root-namespace meshgate-system] [--trust-domain cluster.local] [--ca-cert FILE --ca-key FILE] [--workload-cert-ttl 24h]';

export const GATEWAY_USAGE =
  'meshgate gateway (--config DIR | --control-plane URL --token FILE --control-plane-ca FILE) [--listen-host 127.0.0.1] [--port-offset N] [--admin-port P] [--gateway NS/NAME]... [--workers N] [--drain-seconds S] [--access-log stdout|off|FILE] [--rate-limit-redis URL] [--rate-limit-failure-mode open|closed]';

export const SIDECAR_USAGE =
  'meshgate sidecar --service NAME --namespace NS --service-account SA --app-port P --token FILE --control-plane URL --control-plane-ca FILE [--labels k=v,...] [--address 127.0.0.1] [--inbound-port 15006] [--outbound-port 15001] [--admin-port 15000] [--metrics-port 15090] [--drain-seconds 5] [--access-log stdout|off|FILE]';

export const TOKEN_USAGE =
  'meshgate token create --namespace NS --service-account SA [--ttl 24h] [--data DIR | --control-plane URL]';

export const STATUS_USAGE = 'meshgate status [--control-plane http://127.0.0.1:15014] [--json]';

export const DEMO_USAGE = 'meshgate demo [--dir examples/bookinfo] [--base-port N] [--data DIR]';
