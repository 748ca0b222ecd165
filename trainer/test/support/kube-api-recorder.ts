/**
 * A stand-in for the Kubernetes API server (none can run here): a local HTTP
 * server that records every request and answers as the Kubernetes API documents
 * (https://kubernetes.io/docs/reference/using-api/api-concepts/): discovery
 * (APIResourceList), server-side apply (PATCH application/apply-patch+yaml; 201
 * when created, 200 when updated), POST (201, 409 AlreadyExists), GET of objects
 * and of label-selected collections (kind List), DELETE (Status Success), pod logs
 * (text/plain), and the documented Status bodies for 401 Unauthorized, 404 NotFound,
 * 409 Conflict, 403 Forbidden and 422 Invalid. The resource names below are the API's,
 * typed from its reference.
 *
 * Callers authenticate with service-account tokens it issues (JWTs with the claims of
 * bound tokens) and are authorized as RBAC documents
 * (https://kubernetes.io/docs/reference/access-authn-authz/rbac/): the rules of the Roles
 * bound to the account by RoleBindings in the store; the request verb from the method
 * (get, list, create, patch, delete; a server-side apply that creates an object needs
 * create too); and privilege-escalation prevention: a Role may be written only by one
 * holding its permissions or the `escalate` verb on it, a RoleBinding only by one holding
 * the bound Role's permissions or the `bind` verb on it. Deleting an object deletes its
 * dependents (ownerReferences naming its uid), as the garbage collector does for the
 * Background and Foreground propagation policies.
 */
import { IncomingMessage, Server, ServerResponse, createServer } from 'node:http';
import { AddressInfo } from 'node:net';
import type { RbacRule } from '../../../charts/lib/emitted-kinds';

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

const REASONS: Record<number, string> = {
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'NotFound',
  409: 'Conflict',
  422: 'Invalid',
  500: 'InternalError',
};

const RBAC_GROUP = 'rbac.authorization.k8s.io';

/** A caller the recorder authenticated: a service account, or the admin that passes every check. */
interface Identity {
  readonly user: string;
  readonly namespace?: string;
  readonly serviceAccount?: string;
}

/** The parts of a request path RBAC authorizes on. */
interface RequestAttributes {
  readonly verb: string;
  readonly group: string;
  readonly resource: string;
  readonly namespace: string;
  readonly name?: string;
  /** The request path (the object's, for a request on one object). */
  readonly path: string;
}

/** Whether `rules` allow one request (RBAC: group, resource, verb, and the name for rules with resourceNames). */
export function rbacAllows(rules: readonly RbacRule[], verb: string, group: string, resource: string, name?: string): boolean {
  const has = (values: readonly string[] | undefined, value: string): boolean => (values ?? []).some((v) => v === value || v === '*');
  return rules.some(
    (r) =>
      has(r.apiGroups, group) &&
      has(r.resources, resource) &&
      has(r.verbs, verb) &&
      (!r.resourceNames?.length || (name !== undefined && r.resourceNames.includes(name))),
  );
}

/** The permissions of `needed` that `held` does not grant, one per (group, resource, verb, name), as Kubernetes lists them. */
function notHeld(held: readonly RbacRule[], needed: readonly RbacRule[]): string[] {
  const missing: string[] = [];
  for (const r of needed) {
    for (const group of r.apiGroups ?? []) {
      for (const resource of r.resources ?? []) {
        for (const verb of r.verbs) {
          for (const name of r.resourceNames?.length ? r.resourceNames : [undefined]) {
            if (!rbacAllows(held, verb, group, resource, name)) {
              missing.push(
                `{APIGroups:["${group}"], Resources:["${resource}"],${name ? ` ResourceNames:["${name}"],` : ''} Verbs:["${verb}"]}`,
              );
            }
          }
        }
      }
    }
  }
  return missing;
}

export class KubeApiRecorder {
  readonly requests: RecordedRequest[] = [];
  /** Stored objects by their path (/apis/apps/v1/namespaces/ns/deployments/x). */
  readonly store = new Map<string, any>();
  /** Pod name -> its log text. */
  readonly podLogs = new Map<string, string>();
  private readonly failures: Failure[] = [];
  private readonly tokens = new Map<string, Identity>();
  private server?: Server;
  private generation = 0;

  /** A token that passes every authorization check (what a cluster admin holds). */
  readonly adminToken = 'recorder-cluster-admin';

  constructor() {
    this.tokens.set(this.adminToken, { user: 'kubernetes-admin' });
  }

  /**
   * A bound service-account token of `namespace/name` (the ServiceAccount must be in the
   * store): a JWT whose claims name the account and its uid, as the API server issues them.
   */
  issueToken(namespace: string, name: string): string {
    const account = this.store.get(`/api/v1/namespaces/${namespace}/serviceaccounts/${name}`);
    if (!account) throw new Error(`the recorder has no ServiceAccount ${namespace}/${name} to issue a token for`);
    const b64 = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url');
    const claims = {
      iss: 'https://kubernetes.default.svc.cluster.local',
      sub: `system:serviceaccount:${namespace}:${name}`,
      'kubernetes.io': { namespace, serviceaccount: { name, uid: account.metadata.uid } },
    };
    const signature = Buffer.from(`sig-${this.tokens.size}`).toString('base64url');
    const token = `${b64({ alg: 'RS256', kid: 'recorder' })}.${b64(claims)}.${signature}`;
    this.tokens.set(token, { user: claims.sub, namespace, serviceAccount: name });
    return token;
  }

  /** Store objects as `kubectl apply` would (a uid each), in `namespace`. */
  seed(objects: readonly any[], namespace: string): void {
    for (const o of objects) {
      const path = this.objectPath(o.apiVersion, o.kind, namespace, o.metadata.name);
      this.generation += 1;
      this.store.set(path, {
        ...o,
        metadata: { ...o.metadata, namespace, uid: `uid-${this.generation}`, creationTimestamp: '2026-11-23T11:00:00Z' },
      });
    }
  }

  /** The store path of an object, from discovery. */
  objectPath(apiVersion: string, kind: string, namespace: string, name: string): string {
    const resource = DISCOVERY[apiVersion]?.find((r) => r.kind === kind && !r.name.includes('/'));
    if (!resource) throw new Error(`the recorder's discovery has no ${kind} in ${apiVersion}`);
    return `${apiVersion === 'v1' ? '/api/v1' : `/apis/${apiVersion}`}/namespaces/${namespace}/${resource.name}/${name}`;
  }

  /** The rules RBAC gives a service account: those of every Role a RoleBinding of its namespace binds it to. */
  rulesOf(namespace: string, serviceAccount: string): RbacRule[] {
    const bindings = [...this.store.entries()]
      .filter(([path]) => path.startsWith(`/apis/${RBAC_GROUP}/v1/namespaces/${namespace}/rolebindings/`))
      .map(([, b]) => b);
    return bindings
      .filter((b) =>
        (b.subjects ?? []).some(
          (s: any) => s.kind === 'ServiceAccount' && s.name === serviceAccount && (s.namespace ?? namespace) === namespace,
        ),
      )
      .flatMap((b) =>
        b.roleRef?.kind === 'Role'
          ? (this.store.get(`/apis/${RBAC_GROUP}/v1/namespaces/${namespace}/roles/${b.roleRef.name}`)?.rules ?? [])
          : [],
      );
  }

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
    const body = {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: code < 400 ? 'Success' : 'Failure',
      message,
      reason: REASONS[code],
      details,
      code,
    };
    this.json(res, code, body);
  }

  private json(res: ServerResponse, code: number, body: unknown): void {
    const text = JSON.stringify(body);
    res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
  }

  /** The garbage collector: dependents of a deleted owner go too (Orphan: they lose the reference instead). */
  private collectGarbage(uid: string | undefined, policy: string): void {
    if (uid === undefined) return;
    for (const [path, o] of [...this.store.entries()]) {
      const refs: any[] = o.metadata?.ownerReferences ?? [];
      if (!refs.some((r) => r.uid === uid)) continue;
      const rest = refs.filter((r) => r.uid !== uid);
      if (policy === 'Orphan' || rest.length > 0) {
        this.store.set(path, { ...o, metadata: { ...o.metadata, ownerReferences: rest.length > 0 ? rest : undefined } });
        continue;
      }
      this.store.delete(path);
      this.collectGarbage(o.metadata?.uid, policy);
    }
  }

  /** RBAC's view of a request: verb, group, resource (with subresource), namespace, name. */
  private attributesOf(method: string, url: URL): RequestAttributes | undefined {
    const m = /^\/(?:api\/v1|apis\/([^/]+)\/[^/]+)\/namespaces\/([^/]+)\/([^/]+)(?:\/([^/]+))?(?:\/([^/]+))?$/.exec(url.pathname);
    if (!m) return undefined;
    const [, group = '', namespace, plural, name, sub] = m;
    const verbs: Record<string, string> = {
      GET: name ? 'get' : url.searchParams.get('watch') === 'true' ? 'watch' : 'list',
      POST: 'create',
      PUT: 'update',
      PATCH: 'patch',
      DELETE: name ? 'delete' : 'deletecollection',
    };
    return {
      verb: verbs[method] ?? method.toLowerCase(),
      group,
      resource: sub ? `${plural}/${sub}` : plural,
      namespace,
      name,
      path: url.pathname,
    };
  }

  /** Undefined when RBAC allows the request; else the Forbidden message the API server gives. */
  private authorize(identity: Identity, a: RequestAttributes, body: any): string | undefined {
    const rules = identity.namespace === a.namespace ? this.rulesOf(a.namespace, identity.serviceAccount!) : [];
    const object = a.name
      ? `${a.resource.split('/')[0]}${a.group ? `.${a.group}` : ''} "${a.name}"`
      : `${a.resource}${a.group ? `.${a.group}` : ''}`;
    const cannot = (verb: string): string =>
      `${object} is forbidden: User "${identity.user}" cannot ${verb} resource ` +
      `"${a.resource}" in API group "${a.group}" in the namespace "${a.namespace}"`;
    if (!rbacAllows(rules, a.verb, a.group, a.resource, a.name)) return cannot(a.verb);
    // A server-side apply that creates the object is authorized for create as well.
    if (a.verb === 'patch' && !this.store.has(a.path) && !rbacAllows(rules, 'create', a.group, a.resource, a.name)) return cannot('create');
    if (a.group !== RBAC_GROUP || !['create', 'patch', 'update'].includes(a.verb)) return undefined;
    const grantsMore = (needed: readonly RbacRule[]): string | undefined => {
      const missing = notHeld(rules, needed);
      return missing.length === 0
        ? undefined
        : `${object} is forbidden: user "${identity.user}" (groups=["system:serviceaccounts" "system:serviceaccounts:${a.namespace}" ` +
            `"system:authenticated"]) is attempting to grant RBAC permissions not currently held:\n${missing.join('\n')}`;
    };
    if (a.resource === 'roles' && !rbacAllows(rules, 'escalate', RBAC_GROUP, 'roles', a.name)) return grantsMore(body?.rules ?? []);
    if (a.resource === 'rolebindings') {
      const ref = body?.roleRef ?? {};
      const boundResource = ref.kind === 'ClusterRole' ? 'clusterroles' : 'roles';
      if (rbacAllows(rules, 'bind', RBAC_GROUP, boundResource, ref.name)) return undefined;
      const bound = ref.kind === 'Role' ? this.store.get(`/apis/${RBAC_GROUP}/v1/namespaces/${a.namespace}/roles/${ref.name}`) : undefined;
      if (!bound) return `${object} is forbidden: ${ref.kind ?? 'Role'} "${ref.name}" not found, and the user may not bind it`;
      return grantsMore(bound.rules ?? []);
    }
    return undefined;
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
    this.requests.push({
      method,
      path: url.pathname,
      query: url.searchParams,
      contentType,
      authorization: req.headers.authorization,
      body,
    });

    const auth = req.headers.authorization ?? '';
    const identity = auth.startsWith('Bearer ') ? this.tokens.get(auth.slice(7)) : undefined;
    if (!identity) return this.status(res, 401, 'Unauthorized');

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
        resources: resources.map((r) => ({
          name: r.name,
          singularName: '',
          namespaced: r.namespaced,
          kind: r.kind,
          verbs: ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'],
        })),
      });
    }

    const failure = this.failures.findIndex((f) => f.method === method && f.path.test(url.pathname));
    if (failure >= 0) {
      const [f] = this.failures.splice(failure, 1);
      return this.status(res, f.code, f.message, f.causes ? { causes: f.causes } : {});
    }

    const attributes = this.attributesOf(method, url);
    if (attributes && identity.serviceAccount !== undefined) {
      const refusal = this.authorize(identity, attributes, body);
      if (refusal) return this.status(res, 403, refusal, { name: attributes.name, group: attributes.group, kind: attributes.resource });
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
    if (!name && method === 'POST') {
      const path = `${url.pathname}/${body?.metadata?.name}`;
      if (this.store.has(path))
        return this.status(res, 409, `${resource} "${body.metadata.name}" already exists`, { name: body.metadata.name, kind: resource });
      this.generation += 1;
      const object = { ...body, metadata: { ...body.metadata, uid: `uid-${this.generation}`, creationTimestamp: '2026-11-23T12:00:00Z' } };
      this.store.set(path, object);
      return this.json(res, 201, object);
    }
    if (!name) {
      if (method !== 'GET') return this.status(res, 404, 'unsupported in this stand-in');
      const selector = url.searchParams.get('labelSelector') ?? '';
      const items = [...this.store.entries()]
        .filter(([path]) => path.startsWith(`${url.pathname}/`) && !path.slice(url.pathname.length + 1).includes('/'))
        .map(([, o]) => o)
        .filter((o) => matchesSelector(o.metadata?.labels ?? {}, selector));
      return this.json(res, 200, {
        kind: `${resource}List`,
        apiVersion: 'v1',
        metadata: { resourceVersion: String(this.generation) },
        items,
      });
    }
    const existing = this.store.get(url.pathname);
    switch (method) {
      case 'GET':
        return existing
          ? this.json(res, 200, existing)
          : this.status(res, 404, `${resource} "${name}" not found`, { name, kind: resource });
      case 'PATCH': {
        if (contentType !== 'application/apply-patch+yaml') return this.status(res, 415, `unsupported patch type ${contentType}`);
        this.generation += 1;
        const object = {
          ...body,
          metadata: {
            ...body.metadata,
            uid: existing?.metadata?.uid ?? `uid-${this.generation}`,
            creationTimestamp: existing?.metadata?.creationTimestamp ?? '2026-11-23T12:00:00Z',
          },
        };
        this.store.set(url.pathname, object);
        return this.json(res, existing ? 200 : 201, object);
      }
      case 'DELETE':
        if (!existing) return this.status(res, 404, `${resource} "${name}" not found`, { name, kind: resource });
        this.store.delete(url.pathname);
        this.collectGarbage(existing.metadata?.uid, url.searchParams.get('propagationPolicy') ?? body?.propagationPolicy ?? 'Background');
        return this.status(res, 200, '', { name, kind: resource });
      default:
        return this.status(res, 404, 'unsupported in this stand-in');
    }
  }
}
