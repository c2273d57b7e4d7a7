// Creates a workload key and its CSR in a short-lived worker thread. Building the CSR needs
// @peculiar/x509 (with reflect-metadata, tsyringe and its ASN.1 schemas), which keeps about 15 MB
// of a process's resident memory once loaded, and a sidecar needs it only for a CSR: once at
// start and once per renewal (every 12 h by default). The worker loads it, answers, and exits,
// taking that memory with it. The worker runs plain CommonJS handed over as source, so it needs
// no TypeScript loader whether meshgate runs from dist/ or from its sources.

import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { IdentityError } from './errors.ts';

const require = createRequire(import.meta.url);

/** workerData: { spiffeId, x509, reflect } (module paths); posts { keyPem, csrPem } or { error }. */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { createPrivateKey, webcrypto } = require('node:crypto');
(async () => {
  require(workerData.reflect);
  const x509 = require(workerData.x509);
  x509.cryptoProvider.set(webcrypto);
  const keys = await webcrypto.subtle.generateKey(
    { name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: workerData.spiffeId }])],
  });
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const keyPem = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' })
    .export({ type: 'pkcs8', format: 'pem' }).toString();
  parentPort.postMessage({ keyPem, csrPem: csr.toString('pem') + '\\n' });
})().catch((err) => parentPort.postMessage({ error: String(err && err.stack || err) }));
`;

let modules: { x509: string; reflect: string } | undefined;

/** A new EC P-256 key (PKCS#8 PEM) and a CSR signed with it naming `spiffeId` as a URI SAN. */
export function createCsrInWorker(spiffeId: string): Promise<{ keyPem: string; csrPem: string }> {
  modules ??= {
    x509: require.resolve('@peculiar/x509'),
    reflect: require.resolve('reflect-metadata'),
  };
  return new Promise((resolve, reject) => {
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { spiffeId, ...modules },
      // Not the parent's flags (a --cpu-prof, an inspector port); its own small young generation.
      execArgv: [],
      resourceLimits: { maxYoungGenerationSizeMb: 4 },
    });
    let answer: { keyPem: string; csrPem: string } | { error: string } | undefined;
    worker.once('message', (m: typeof answer) => {
      answer = m;
      void worker.terminate();
    });
    worker.once('error', (err) => {
      answer ??= { error: err.stack ?? err.message };
    });
    worker.once('exit', () => {
      if (answer && 'keyPem' in answer) resolve(answer);
      else
        reject(
          new IdentityError(
            'MG_ERR_CSR_INVALID',
            `could not create a key and CSR: ${answer?.error ?? 'the worker exited without an answer'}`,
          ),
        );
    });
  });
}
