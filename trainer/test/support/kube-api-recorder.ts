/**
 * A stand-in for the Kubernetes API server (none can run here): a local HTTP
 * server that records every request and answers as the Kubernetes API documents
 * (https://kubernetes.io/docs/reference/using-api/api-concepts/): discovery
 * (APIResourceList), server-side apply (PATCH application/apply-patch+yaml; 201
 * when created, 200 when updated), GET of objects and of label-selected
 * collections (kind List), DELETE (Status Success), pod logs (text/plain), and
 * the documented Status bodies for 404 NotFound, 409 Conflict, 403 Forbidden
 * and 422 Invalid. The resource names below are the API's, typed from its reference.
 */
import { IncomingMessage, Server, ServerResponse, createServer } from 'node:http';
import { AddressInfo } from 'node:net';

export interface RecordedRequest {
  readonly method: string;
  readonly path: string;
  readonly query: URLSearchParams;
  readonly contentType?: string;
  readonly authorization?: string;
  readonly body?: any;
}

interface Resource {
  readonly name: string;
  readonly kind: string;
  readonly namespaced: boolean;
}

/** group/version -> resources, as the API's discovery documents them. */
const DISCOVERY: Record<string, Resource[]> = {
  v1: [
    { name: 'services', kind: 'Service', namespaced: true },
    { name: 'serviceaccounts', kind: 'ServiceAccount', namespaced: true },
    { name: 'secrets', kind: 'Secret', namespaced: true },
    { name: 'configmaps', kind: 'ConfigMap', namespaced: true },
    { name: 'pods', kind: 'Pod', namespaced: true },
    { name: 'pods/log', kind: 'Pod', namespaced: true },
    { name: 'persistentvolumeclaims', kind: 'PersistentVolumeClaim', namespaced: true },
    { name: 'namespaces', kind: 'Namespace', namespaced: false },
  ],
  'apps/v1': [
    { name: 'deployments', kind: 'Deployment', namespaced: true },
    { name: 'statefulsets', kind: 'StatefulSet', namespaced: true },
  ],
  'batch/v1': [{ name: 'jobs', kind: 'Job', namespaced: true }],
  'networking.k8s.io/v1': [{ name: 'networkpolicies', kind: 'NetworkPolicy', namespaced: true }],
  'rbac.authorization.k8s.io/v1': [
    { name: 'roles', kind: 'Role', namespaced: true },
    { name: 'rolebindings', kind: 'RoleBinding', namespaced: true },
  ],
  'scheduling.volcano.sh/v1beta1': [{ name: 'podgroups', kind: 'PodGroup', namespaced: true }],
  // offloading.liqo.io is left out: a cluster without Liqo (discovery answers 404).
};

export interface Failure {
  readonly method: string;
  /** Matches the request path. */
  readonly path: RegExp;
  readonly code: 403 | 409 | 422 | 500;
  readonly message: string;
  readonly causes?: Array<{ field: string; message: string; reason?: string }>;
}

/**
 * Whether `labels` satisfy a label selector, in the syntax the API documents
 * (https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors):
 * comma-separated requirements `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`.
 */
export function matchesSelector(labels: Readonly<Record<string, string>>, selector: string): boolean {
  const requirements = selector.match(/[^,(]+(\([^)]*\))?/g) ?? [];
  return requirements.every((raw) => {
    const r = raw.trim();
    const set = /^(\S+)\s+(in|notin)\s+\(([^)]*)\)$/.exec(r);
    if (set) {
      const values = set[3].split(',').map((v) => v.trim());
      const has = set[1] in labels && values.includes(labels[set[1]]);
      return set[2] === 'in' ? has : !has;
    }
    const eq = /^([^!=\s]+)\s*(==|=|!=)\s*(\S*)$/.exec(r);
    if (eq) return eq[2] === '!=' ? labels[eq[1]] !== eq[3] : labels[eq[1]] === eq[3];
    if (r.startsWith('!')) return !(r.slice(1) in labels);
    if (/^\S+$/.test(r)) return r in labels;
    throw new Error(`the recorder cannot parse the label selector requirement ${JSON.stringify(r)}`);
  });
}

const REASONS: Record<number, string> = { 403: 'Forbidden', 404: 'NotFound', 409: 'Conflict', 422: 'Invalid', 500: 'InternalError' };

export class KubeApiRecorder {
  readonly requests: RecordedRequest[] = [];
  /** Stored objects by their path (/apis/apps/v1/namespaces/ns/deployments/x). */
  readonly store = new Map<string, any>();
  /** Pod name -> its log text. */
  readonly podLogs = new Map<string, string>();
  private readonly failures: Failure[] = [];
  private server?: Server;
  private generation = 0;

  /** Answer the next request matching `failure` with its documented error Status. */
  failNext(failure: Failure): void {
    this.failures.push(failure);
  }

  async start(): Promise<string> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => this.handle(req, res, Buffer.concat(chunks).toString('utf8')));
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server?.close(() => resolve());
      this.server?.closeAllConnections();
    });
  }

  /** Requests other than discovery. */
  calls(): RecordedRequest[] {
    return this.requests.filter((r) => !/^\/(api\/v1|apis\/[^/]+\/[^/]+)$/.test(r.path));
  }

  /** Put an object (e.g. a pod, or a workload's status) as if the cluster had it. */
  put(path: string, object: any): void {
    this.store.set(path, object);
  }

  private status(res: ServerResponse, code: number, message: string, details: Record<string, unknown> = {}): void {
    const body = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: code < 400 ? 'Success' : 'Failure', message, reason: REASONS[code], details, code };
    this.json(res, code, body);
  }

  private json(res: ServerResponse, code: number, body: unknown): void {
    const text = JSON.stringify(body);
    res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
  }

  private handle(req: IncomingMessage, res: ServerResponse, text: string): void {
    const url = new URL(req.url ?? '/', 'http://kube');
    const method = req.method ?? 'GET';
    const contentType = req.headers['content-type'];
    let body: any;
    if (text) {
      try {
        body = JSON.parse(text);
      } catch {
        body = text;
      }
    }
    this.requests.push({ method, path: url.pathname, query: url.searchParams, contentType, authorization: req.headers.authorization, body });

    // Discovery.
    const discovery = /^\/(?:api\/(v1)|apis\/([^/]+\/[^/]+))$/.exec(url.pathname);
    if (discovery) {
      const gv = discovery[1] ?? discovery[2];
      const resources = DISCOVERY[gv];
      if (!resources) return this.status(res, 404, 'the server could not find the requested resource');
      return this.json(res, 200, {
        kind: 'APIResourceList',
        apiVersion: 'v1',
        groupVersion: gv,
        resources: resources.map((r) => ({ name: r.name, singularName: '', namespaced: r.namespaced, kind: r.kind, verbs: ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'] })),
      });
    }

    const failure = this.failures.findIndex((f) => f.method === method && f.path.test(url.pathname));
    if (failure >= 0) {
      const [f] = this.failures.splice(failure, 1);
      return this.status(res, f.code, f.message, f.causes ? { causes: f.causes } : {});
    }

    const log = /^\/api\/v1\/namespaces\/[^/]+\/pods\/([^/]+)\/log$/.exec(url.pathname);
    if (log && method === 'GET') {
      const all = this.podLogs.get(log[1]);
      if (all === undefined) return this.status(res, 404, `pods "${log[1]}" not found`);
      const tail = url.searchParams.get('tailLines');
      const lines = all.replace(/\n$/, '').split('\n');
      const out = `${(tail ? lines.slice(-Number(tail)) : lines).join('\n')}\n`;
      res.writeHead(200, { 'content-type': 'text/plain' }).end(out);
      return;
    }

    // Object or collection: /api/v1/namespaces/ns/<resource>[/name] or /apis/g/v/namespaces/ns/<resource>[/name].
    const m = /^\/(?:api\/v1|apis\/[^/]+\/[^/]+)\/namespaces\/[^/]+\/([^/]+)(?:\/([^/]+))?$/.exec(url.pathname);
    if (!m) return this.status(res, 404, 'the server could not find the requested resource');
    const [, resource, name] = m;
    if (!name) {
      if (method !== 'GET') return this.status(res, 404, 'unsupported in this stand-in');
      const selector = url.searchParams.get('labelSelector') ?? '';
      const items = [...this.store.entries()]
        .filter(([path]) => path.startsWith(`${url.pathname}/`) && !path.slice(url.pathname.length + 1).includes('/'))
        .map(([, o]) => o)
        .filter((o) => matchesSelector(o.metadata?.labels ?? {}, selector));
      return this.json(res, 200, { kind: `${resource}List`, apiVersion: 'v1', metadata: { resourceVersion: String(this.generation) }, items });
    }
    const existing = this.store.get(url.pathname);
    switch (method) {
      case 'GET':
        return existing ? this.json(res, 200, existing) : this.status(res, 404, `${resource} "${name}" not found`, { name, kind: resource });
      case 'PATCH': {
        if (contentType !== 'application/apply-patch+yaml') return this.status(res, 415, `unsupported patch type ${contentType}`);
        this.generation += 1;
        const object = {
          ...body,
          metadata: { ...body.metadata, uid: existing?.metadata?.uid ?? `uid-${this.generation}`, creationTimestamp: existing?.metadata?.creationTimestamp ?? '2026-11-23T12:00:00Z' },
        };
        this.store.set(url.pathname, object);
        return this.json(res, existing ? 200 : 201, object);
      }
      case 'DELETE':
        if (!existing) return this.status(res, 404, `${resource} "${name}" not found`, { name, kind: resource });
        this.store.delete(url.pathname);
        return this.status(res, 200, '', { name, kind: resource });
      default:
        return this.status(res, 404, 'unsupported in this stand-in');
    }
  }
}
