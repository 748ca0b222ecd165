/**
 * The `csv` reader: a header row, numeric feature columns and (for training)
 * one label column, read straight into a growing Float32Array.
 *
 * Parser: csv-parse (the csv project's parser: maintained, RFC 4180 quoting,
 * no dependencies, ships a CommonJS build that `require` loads on Node 20)
 * parses the header row and every file with a quote character in its body.
 * A body without any quote (what numeric exports are) cannot hold quoted
 * commas or newlines, so it is split by bytes here instead: csv-parse builds
 * an array of strings per record and reads at about a tenth of the disk's
 * speed, and the issue asks for 30% (see `bench data`). Both paths give the
 * same values: a cell our digit loop does not take (exponents, spaces, ...)
 * goes through Number() as csv-parse's strings do.
 */
import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { parse } from 'csv-parse';
import { ENV, TrainerError } from '../contract';
import type { RawLabels } from './classes';

/** What to read from the table. */
export interface CsvSpec {
  /**
   * The label (classification) or target (regression) column.
   *
   * @default - no label column is read (prediction input)
   */
  readonly labelColumn?: string;
  /** `classes`: label values kept as strings; `values`: numeric regression targets. */
  readonly labelKind: 'classes' | 'values';
  /**
   * The feature columns, in this order.
   *
   * @default - every column but the label column
   */
  readonly featureColumns?: readonly string[];
  /**
   * Columns left out of the default feature columns when present (prediction input: the label column).
   *
   * @default - none
   */
  readonly ignoreColumns?: readonly string[];
  /**
   * The field the feature columns came from, named in errors.
   *
   * @default ENV.featureColumns
   */
  readonly featureColumnsField?: string;
}

export interface CsvTable {
  readonly featureNames: readonly string[];
  /** count x featureNames.length floats, row-major. */
  readonly features: Float32Array;
  readonly count: number;
  /** `classes`: the label value of each row. */
  readonly labels?: RawLabels;
  /** `values`: the target of each row. */
  readonly targets?: Float32Array;
}

const CHUNK_BYTES = 4 << 20;
const QUOTE = 0x22;
const COMMA = 0x2c;
const LF = 0x0a;
const CR = 0x0d;
const DOT = 0x2e;
const MINUS = 0x2d;
const PLUS = 0x2b;
const ZERO = 0x30;
const NINE = 0x39;

function datasetError(message: string): TrainerError {
  return new TrainerError('TRAINER_ERR_DATASET', message);
}

/** Parse `text` (a header line) with csv-parse. */
function parseHeader(text: string, file: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    parse(text, { bom: true, relax_column_count: true }, (err, records: string[][]) => {
      if (err) reject(datasetError(`${file}: cannot parse the header row: ${err.message}`));
      else if (records.length === 0 || records[0].every((c) => c.trim() === ''))
        reject(datasetError(`${file}: no header row (the file is empty)`));
      else resolve(records[0].map((c) => c.trim()));
    });
  });
}

/** Which slot each column fills: >= 0 a feature, LABEL the label, SKIP nothing. */
const LABEL = -1;
const SKIP = -2;

interface Layout {
  readonly roles: Int32Array;
  readonly featureNames: readonly string[];
  readonly labelIndex: number;
}

function layout(header: readonly string[], spec: CsvSpec, file: string): Layout {
  const found = `the columns found are ${header.map((h) => JSON.stringify(h)).join(', ')}`;
  const dup = header.find((h, i) => header.indexOf(h) !== i);
  if (dup !== undefined) throw datasetError(`${file}: column ${JSON.stringify(dup)} appears twice in the header row`);
  const labelIndex = spec.labelColumn === undefined ? -1 : header.indexOf(spec.labelColumn);
  if (spec.labelColumn !== undefined && labelIndex < 0) {
    throw datasetError(`${file}: ${ENV.labelColumn} ${JSON.stringify(spec.labelColumn)} is not a column of the file: ${found}`);
  }
  const ignore = new Set(spec.ignoreColumns ?? []);
  const featureNames = spec.featureColumns ?? header.filter((h, i) => i !== labelIndex && !ignore.has(h));
  const missing = featureNames.filter((n) => !header.includes(n));
  if (missing.length > 0) {
    throw datasetError(
      `${file}: ${spec.featureColumnsField ?? ENV.featureColumns} names ${missing.map((m) => JSON.stringify(m)).join(', ')}, ` +
        `not ${missing.length === 1 ? 'a column' : 'columns'} of the file: ${found}`,
    );
  }
  if (featureNames.includes(spec.labelColumn ?? '\0')) {
    throw datasetError(`${file}: ${ENV.featureColumns} holds the label column ${JSON.stringify(spec.labelColumn)}`);
  }
  if (featureNames.length === 0) throw datasetError(`${file}: no feature column: ${found}`);
  const roles = new Int32Array(header.length).fill(SKIP);
  featureNames.forEach((name, slot) => (roles[header.indexOf(name)] = slot));
  if (labelIndex >= 0) roles[labelIndex] = LABEL;
  return { roles, featureNames, labelIndex };
}

/** Rows read so far, growing as they come. */
class TableBuilder {
  features: Float32Array;
  targets: Float32Array | undefined;
  labelIds: Int32Array | undefined;
  readonly labelValues: string[] = [];
  readonly labelIdOf = new Map<string, number>();
  count = 0;
  capacity: number;

  constructor(
    readonly width: number,
    readonly spec: CsvSpec,
    readonly header: readonly string[],
    readonly file: string,
    estimatedRows: number,
  ) {
    this.capacity = Math.max(16, estimatedRows);
    this.features = new Float32Array(this.capacity * width);
    if (spec.labelColumn !== undefined) {
      if (spec.labelKind === 'values') this.targets = new Float32Array(this.capacity);
      else this.labelIds = new Int32Array(this.capacity);
    }
  }

  /** Make room for one more row (grows by half). */
  reserve(): void {
    if (this.count < this.capacity) return;
    this.capacity = Math.ceil(this.capacity * 1.5);
    const grow = <T extends Float32Array | Int32Array>(a: T, size: number): T => {
      const b = new (a.constructor as new (n: number) => T)(size);
      b.set(a);
      return b;
    };
    this.features = grow(this.features, this.capacity * this.width);
    if (this.targets) this.targets = grow(this.targets, this.capacity);
    if (this.labelIds) this.labelIds = grow(this.labelIds, this.capacity);
  }

  label(value: string, row: number): void {
    if (this.targets) {
      this.targets[this.count] = numberOrFail(value, row, this.spec.labelColumn!, this.file, 'target');
      return;
    }
    if (value.trim() === '')
      throw datasetError(`${this.file}: row ${row}, column ${JSON.stringify(this.spec.labelColumn)}: the label is empty`);
    let id = this.labelIdOf.get(value);
    if (id === undefined) {
      id = this.labelValues.length;
      this.labelIdOf.set(value, id);
      this.labelValues.push(value);
    }
    this.labelIds![this.count] = id;
  }

  columnCount(found: number, row: number): never {
    throw datasetError(`${this.file}: row ${row} has ${found} fields, the header row has ${this.header.length}`);
  }

  /** One record from csv-parse. */
  record(fields: readonly string[], row: number, roles: Int32Array): void {
    if (fields.length !== roles.length) this.columnCount(fields.length, row);
    this.reserve();
    const base = this.count * this.width;
    for (let c = 0; c < roles.length; c++) {
      const role = roles[c];
      if (role >= 0) this.features[base + role] = numberOrFail(fields[c], row, this.header[c], this.file, 'feature');
      else if (role === LABEL) this.label(fields[c], row);
    }
    this.count++;
  }

  table(featureNames: readonly string[]): CsvTable {
    const n = this.count;
    if (n === 0) throw datasetError(`${this.file}: no data rows after the header row`);
    // A view when the estimate was close (no copy of the whole table), a copy when it left much unused.
    const fit = <T extends Float32Array | Int32Array>(a: T, size: number): T =>
      (a.length <= size * 1.1 ? a.subarray(0, size) : a.slice(0, size)) as T;
    return {
      featureNames,
      features: fit(this.features, n * this.width),
      count: n,
      labels: this.labelIds ? { ids: fit(this.labelIds, n), values: this.labelValues } : undefined,
      targets: this.targets ? fit(this.targets, n) : undefined,
    };
  }
}

function numberOrFail(text: string, row: number, column: string, file: string, what: 'feature' | 'target'): number {
  const value = text.trim() === '' ? NaN : Number(text);
  if (!Number.isFinite(value)) {
    throw datasetError(
      `${file}: row ${row}, column ${JSON.stringify(column)}: ` +
        `${JSON.stringify(text)} is not a number (${what === 'feature' ? 'feature columns' : 'a regression target'} must be numeric)`,
    );
  }
  return value;
}

/** Thrown inside the byte path when the body holds a quote: the file is read again with csv-parse. */
class NeedsFullParser extends Error {}

/**
 * Read the CSV file at `path` (`file` names it in errors). Rows are numbered
 * from 1, the first row after the header.
 */
export async function readCsv(path: string, spec: CsvSpec, file: string = path): Promise<CsvTable> {
  const size = (await stat(path)).size;
  const handle = await open(path, 'r');
  let headerEnd: number;
  let first: Buffer;
  try {
    first = Buffer.alloc(Math.min(CHUNK_BYTES, size));
    const { bytesRead } = await handle.read(first, 0, first.length, 0);
    first = first.subarray(0, bytesRead);
    headerEnd = headerLineEnd(first);
  } finally {
    await handle.close();
  }
  if (headerEnd < 0)
    throw datasetError(
      size === 0
        ? `${file}: no header row (the file is empty)`
        : `${file}: the header row is longer than ${CHUNK_BYTES} bytes or the file has no data rows`,
    );
  const header = await parseHeader(first.toString('utf8', 0, headerEnd), file);
  const plan = layout(header, spec, file);
  // Rows estimated from the first chunk's bytes per line, so the arrays rarely grow.
  const sample = first.subarray(headerEnd);
  let lines = 0;
  for (let i = sample.indexOf(LF); i >= 0; i = sample.indexOf(LF, i + 1)) lines++;
  const bytesPerRow = lines > 0 ? sample.length / lines : sample.length + 1;
  const estimate = Math.ceil(((size - headerEnd) / bytesPerRow) * 1.02) + 1;
  const newBuilder = () => new TableBuilder(plan.featureNames.length, spec, header, file, estimate);
  try {
    return await readBytes(path, headerEnd, size, plan, newBuilder());
  } catch (err) {
    if (!(err instanceof NeedsFullParser)) throw err;
  }
  return readWithCsvParse(path, plan, newBuilder());
}

/** The offset just past the header row's line break, or -1; a quoted header may span lines. */
function headerLineEnd(buf: Buffer): number {
  let inQuotes = false;
  for (let i = 0; i < buf.length; i++) {
    const b = buf[i];
    if (b === QUOTE) inQuotes = !inQuotes;
    else if (b === LF && !inQuotes) return i + 1;
  }
  return -1;
}

/** The byte path: whole lines of each chunk, fields split at commas, numbers parsed from digits. */
async function readBytes(path: string, start: number, size: number, plan: Layout, out: TableBuilder): Promise<CsvTable> {
  const { roles } = plan;
  const columns = roles.length;
  const handle = await open(path, 'r');
  let buf = Buffer.alloc(CHUNK_BYTES);
  let carry = 0; // bytes of an unfinished line at the start of buf
  let offset = start;
  let row = 0;
  try {
    for (;;) {
      if (carry >= buf.length - 1) {
        const bigger = Buffer.alloc(buf.length * 2); // a line longer than the buffer
        buf.copy(bigger, 0, 0, carry);
        buf = bigger;
      }
      const { bytesRead } = await handle.read(buf, carry, buf.length - carry - 1, offset); // one byte kept for a final line break
      offset += bytesRead;
      const atEnd = offset >= size || bytesRead === 0;
      let end = carry + bytesRead;
      if (atEnd && end > 0 && buf[end - 1] !== LF) buf[end++] = LF; // the last line may lack its line break
      const chunk = buf.subarray(0, end);
      if (chunk.indexOf(QUOTE) >= 0) throw new NeedsFullParser();
      const lastLf = chunk.lastIndexOf(LF);
      const stop = lastLf + 1;
      let pos = 0;
      while (pos < stop) {
        // One line: [pos, lf).
        const lf = chunk.indexOf(LF, pos);
        let lineEnd = lf;
        if (lineEnd > pos && chunk[lineEnd - 1] === CR) lineEnd--;
        if (lineEnd === pos) {
          pos = lf + 1; // an empty line
          continue;
        }
        row++;
        out.reserve();
        const base = out.count * out.width;
        const features = out.features;
        let col = 0;
        let p = pos;
        for (;;) {
          if (col >= columns) out.columnCount(countFields(chunk, pos, lineEnd), row);
          const role = roles[col];
          let q = p;
          if (role >= 0) {
            // A decimal [-+]digits[.digits] cell, parsed from its bytes where it stands.
            let negative = false;
            let c = chunk[q];
            if (q < lineEnd && (c === MINUS || c === PLUS)) {
              negative = c === MINUS;
              q++;
            }
            let value = 0;
            let digits = 0;
            while (q < lineEnd && (c = chunk[q]) >= ZERO && c <= NINE) {
              value = value * 10 + (c - ZERO);
              digits++;
              q++;
            }
            if (q < lineEnd && chunk[q] === DOT) {
              q++;
              let scale = 1;
              while (q < lineEnd && (c = chunk[q]) >= ZERO && c <= NINE) {
                value = value * 10 + (c - ZERO);
                scale *= 10;
                digits++;
                q++;
              }
              value /= scale;
            }
            if ((q === lineEnd || chunk[q] === COMMA) && digits > 0 && digits <= 15) {
              features[base + role] = negative ? -value : value;
            } else {
              // Anything else (exponents, spaces, long digit strings, text) as Number() reads it.
              while (q < lineEnd && chunk[q] !== COMMA) q++;
              features[base + role] = numberOrFail(chunk.toString('utf8', p, q), row, out.header[col], out.file, 'feature');
            }
          } else {
            while (q < lineEnd && chunk[q] !== COMMA) q++;
            if (role === LABEL) out.label(chunk.toString('utf8', p, q), row);
          }
          col++;
          if (q >= lineEnd) break;
          p = q + 1;
        }
        if (col !== columns) out.columnCount(col, row);
        out.count++;
        pos = lf + 1;
      }
      carry = end - stop;
      if (carry > 0) chunk.copy(buf, 0, stop, end);
      if (atEnd) break;
    }
  } finally {
    await handle.close();
  }
  return out.table(plan.featureNames);
}

function countFields(buf: Buffer, from: number, to: number): number {
  let n = 1;
  for (let i = from; i < to; i++) if (buf[i] === COMMA) n++;
  return n;
}

/** The csv-parse path, for a body with quotes. */
function readWithCsvParse(path: string, plan: Layout, out: TableBuilder): Promise<CsvTable> {
  return new Promise((resolve, reject) => {
    const parser = parse({ bom: true, relax_column_count: true, skip_empty_lines: true, from_line: 1 });
    let row = -1; // the header is record 0
    const fail = (err: unknown) => {
      parser.destroy();
      input.destroy();
      reject(err instanceof TrainerError ? err : datasetError(`${out.file}: cannot parse: ${(err as Error).message}`));
    };
    parser.on('readable', () => {
      try {
        let record: string[] | null;
        while ((record = parser.read() as string[] | null) !== null) {
          if (++row === 0) continue;
          out.record(record, row, plan.roles);
        }
      } catch (err) {
        fail(err);
      }
    });
    parser.on('error', fail);
    parser.on('end', () => {
      try {
        resolve(out.table(plan.featureNames));
      } catch (err) {
        reject(err);
      }
    });
    const input = createReadStream(path, { highWaterMark: CHUNK_BYTES });
    input.on('error', fail);
    input.pipe(parser);
  });
}
