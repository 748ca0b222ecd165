/**
 * The OpenAPI 3.0 document of the TrainingApi, derived from JOB_FIELDS and the
 * contract's response types: what /docs renders and clients generate from.
 */
import { API_ERROR_CODES, API_PATHS, JOB_FIELDS, JOB_KINDS, JOB_PHASES, JobFieldSpec } from '../contract';
import { MAX_JSON_DEPTH } from './json-body';
import { MAX_LISTED_PROBLEMS, allowedText } from './request';

type Schema = Record<string, unknown>;

function fieldSchema(spec: JobFieldSpec): Schema {
  const schema: Schema = {
    type: spec.type,
    description: spec.kinds ? `${spec.description} Only for ${spec.kinds.join(', ')}.` : spec.description,
  };
  if (spec.requires) schema.description = `${String(schema.description)} Only with ${spec.requires}: true.`;
  if (spec.excludes) schema.description = `${String(schema.description)} Not with ${spec.excludes}.`;
  if (spec.datasets) schema.description = `${String(schema.description)} Only for dataset_type ${spec.datasets.join(', ')}.`;
  if (spec.enum) schema.enum = [...spec.enum];
  if (spec.minimum !== undefined) schema.minimum = spec.minimum;
  if (spec.maximum !== undefined) schema.maximum = spec.maximum;
  // OpenAPI 3.0: booleans beside minimum and maximum.
  if (spec.exclusiveMinimum) schema.exclusiveMinimum = true;
  if (spec.exclusiveMaximum) schema.exclusiveMaximum = true;
  if (spec.pattern) schema.pattern = spec.pattern.regex;
  if (spec.type === 'string' && spec.maxLength !== undefined) schema.maxLength = spec.maxLength;
  if (spec.type === 'object') {
    if (spec.properties) {
      schema.properties = Object.fromEntries(Object.entries(spec.properties).map(([k, s]) => [k, fieldSchema(s)]));
      const required = Object.entries(spec.properties)
        .filter(([, s]) => s.required)
        .map(([k]) => k);
      if (required.length > 0) schema.required = required;
      schema.additionalProperties = false;
    } else {
      schema.additionalProperties = spec.values ? fieldSchema(spec.values) : true;
      if (spec.maxEntries !== undefined) schema.maxProperties = spec.maxEntries;
      // OpenAPI 3.0 has no propertyNames: the key rule is in words and in x-key-pattern.
      if (spec.keyPattern) schema['x-key-pattern'] = spec.keyPattern.regex;
    }
  }
  if (spec.type === 'array') {
    if (spec.items) schema.items = fieldSchema(spec.items);
    if (spec.maxEntries !== undefined) schema.maxItems = spec.maxEntries;
  }
  schema['x-allowed'] = allowedText(spec);
  return schema;
}

const json = (ref: string): Schema => ({ 'application/json': { schema: { $ref: `#/components/schemas/${ref}` } } });
const error = (description: string): Schema => ({ description, content: json('Error') });
const nameParam = {
  name: 'name',
  in: 'path',
  required: true,
  schema: { type: 'string', pattern: JOB_FIELDS.job_name.pattern.regex },
  description: `The job name: ${JOB_FIELDS.job_name.pattern.meaning} (else 400).`,
};
/** The 400 of a path with a job name that is not one. */
const badName = (): Schema => error('The job name in the path is not a job name.');

export function openApiDocument(version: string): Schema {
  const required = Object.entries(JOB_FIELDS)
    .filter(([, s]) => (s as JobFieldSpec).required)
    .map(([f]) => f);
  return {
    openapi: '3.0.3',
    info: {
      title: 'Tensorfleet TrainingApi',
      version,
      description:
        'Submit, watch and cancel DdpCluster, FederatedFleet and SplitLearning jobs. ' +
        'The objects are built by the same constructs as the charts and applied with server-side apply.',
    },
    security: [{ bearer: [] }],
    paths: {
      [API_PATHS.jobs]: {
        post: {
          summary: 'Submit a job',
          operationId: 'submitJob',
          parameters: [
            {
              name: 'dryRun',
              in: 'query',
              schema: { type: 'boolean' },
              description: 'Return the YAML that would be applied; apply nothing.',
            },
          ],
          requestBody: { required: true, content: json('JobRequest') },
          responses: {
            201: { description: 'Applied.', content: json('JobCreated') },
            200: { description: 'dryRun: the YAML the API would apply.', content: { 'application/yaml': { schema: { type: 'string' } } } },
            400: error(
              `Invalid request: every problem, field by field (at most ${MAX_LISTED_PROBLEMS}); JSON nested deeper than ${MAX_JSON_DEPTH}.`,
            ),
            401: error('Missing or wrong bearer token.'),
            403: error("The Kubernetes API refused the API's service account."),
            409: error('A job of this name exists.'),
            413: error('The body is over the size limit.'),
            415: error('The body is not application/json.'),
            422: error('The Kubernetes API found an object invalid.'),
            429: error('The local executor (tensorfleet serve) keeps or queues as many jobs as it may.'),
            503: error('The Kubernetes API is unreachable or failing.'),
          },
        },
        get: {
          summary: 'List jobs',
          operationId: 'listJobs',
          responses: { 200: { description: 'Every job.', content: json('JobList') }, 401: error('Missing or wrong bearer token.') },
        },
      },
      [API_PATHS.job]: {
        get: {
          summary: "A job's status",
          operationId: 'getJob',
          parameters: [nameParam],
          responses: { 200: { description: 'The job.', content: json('JobStatus') }, 400: badName(), 404: error('No such job.') },
        },
        delete: {
          summary: 'Cancel a job: delete every object it created',
          description:
            'Every object labelled with the job, in the background. The Secrets generated for it (its bearer token) ' +
            "are owned by its ensure-secrets ServiceAccount: Kubernetes' garbage collector deletes them with it. " +
            "A Secret that existed before the job is never the job's and stays.",
          operationId: 'cancelJob',
          parameters: [nameParam],
          responses: { 200: { description: 'Deleted.', content: json('JobDeleted') }, 400: badName(), 404: error('No such job.') },
        },
      },
      [API_PATHS.logs]: {
        get: {
          summary: "The logs of a job's pods",
          operationId: 'jobLogs',
          parameters: [
            nameParam,
            { name: 'tail', in: 'query', schema: { type: 'integer', minimum: 1 }, description: 'Last N lines of each pod.' },
          ],
          responses: {
            200: { description: 'Each pod under a "==> pod/<name> <==" line.', content: { 'text/plain': { schema: { type: 'string' } } } },
            400: error('The job name in the path is not a job name, or tail is not a positive integer.'),
            404: error('No such job.'),
          },
        },
      },
    },
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      schemas: {
        JobRequest: {
          type: 'object',
          additionalProperties: false,
          required,
          properties: Object.fromEntries(Object.entries(JOB_FIELDS).map(([f, s]) => [f, fieldSchema(s as JobFieldSpec)])),
        },
        JobCreated: {
          type: 'object',
          required: ['name', 'kind', 'objects'],
          properties: {
            name: { type: 'string' },
            kind: { type: 'string', enum: [...JOB_KINDS] },
            objects: { type: 'array', items: { type: 'string' } },
          },
        },
        JobStatus: {
          type: 'object',
          required: ['name', 'kind', 'phase', 'ready', 'desired', 'objects'],
          properties: {
            name: { type: 'string' },
            kind: { type: 'string', enum: [...JOB_KINDS] },
            phase: { type: 'string', enum: [...JOB_PHASES] },
            ready: { type: 'integer', description: 'Ranks (ddp) or clients whose pods are ready.' },
            desired: { type: 'integer' },
            progress: {
              type: 'number',
              minimum: 0,
              maximum: 1,
              description:
                "Finished epochs (ddp) or rounds (federated) over the job's total, " +
                'from its MLflow run; 1 once succeeded; absent while unknown.',
            },
            mlflowRunUrl: { type: 'string', description: "The job's MLflow run in the UI (its experiment until the run starts)." },
            mlflowRunId: { type: 'string' },
            createdAt: { type: 'string', format: 'date-time' },
            objects: { type: 'array', items: { type: 'string' } },
          },
        },
        JobList: {
          type: 'object',
          required: ['jobs'],
          properties: { jobs: { type: 'array', items: { $ref: '#/components/schemas/JobStatus' } } },
        },
        JobDeleted: {
          type: 'object',
          required: ['name', 'deleted'],
          properties: { name: { type: 'string' }, deleted: { type: 'array', items: { type: 'string' } } },
        },
        Error: {
          type: 'object',
          required: ['error'],
          properties: {
            error: {
              type: 'object',
              required: ['code', 'message'],
              properties: {
                code: { type: 'string', enum: [...API_ERROR_CODES] },
                message: { type: 'string' },
                fields: {
                  type: 'array',
                  items: {
                    type: 'object',
                    required: ['field', 'allowed'],
                    properties: { field: { type: 'string' }, value: {}, allowed: { type: 'string' } },
                  },
                },
              },
            },
          },
        },
      },
    },
  };
}
