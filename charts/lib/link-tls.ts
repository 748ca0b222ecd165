import * as kplus from 'cdk8s-plus-27';
import { Construct } from 'constructs';
import { TLS_FILES } from '../../trainer/src/contract';
import { checkDnsLabel } from './props';

/**
 * Encryption of the links between trainer processes (the DDP ring, the federated and the
 * split star): every process mounts a `kubernetes.io/tls` Secret that also holds the CA
 * (the keys of {@link TLS_FILES}, as cert-manager writes them) read-only at PATHS.tls,
 * serves wss:// with its certificate and dials wss:// trusting only that CA.
 *
 * @example LinkTls.fromSecret('ring-tls')
 */
export class LinkTls {
  /** An existing Secret (made by cert-manager or by hand) with tls.crt, tls.key and ca.crt. */
  public static fromSecret(secretName: string): LinkTls {
    return new LinkTls(secretName);
  }

  private constructor(public readonly secretName: string) {}

  /** Checks the Secret's name as prop `prop` of `scope`: a DNS-1123 subdomain-safe label. */
  public validate(scope: Construct, prop: string): this {
    checkDnsLabel(scope, `${prop}.secretName`, this.secretName, 253);
    return this;
  }

  /** `secret/<name>` for the external-refs annotation of a workload that mounts it. */
  public get externalRef(): string {
    return `secret/${this.secretName}`;
  }

  /** The Secret as a volume of `scope`'s pods: the three files only, readable by the pod's group. */
  public volume(scope: Construct): kplus.Volume {
    const secret = kplus.Secret.fromSecretName(scope, 'TlsSecret', this.secretName);
    const items = Object.fromEntries(Object.values(TLS_FILES).map((file) => [file, { path: file }]));
    return kplus.Volume.fromSecret(scope, 'TlsVolume', secret, { name: 'tls', items, defaultMode: 0o440 });
  }
}
