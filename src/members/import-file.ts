// Importing an NDJSON file (one member per line) of any size: the file is streamed, cut into
// bulks of 1000 and each bulk goes through the same store + processor as an API import.
// Used by `hei import members` and by the benchmark.
import { createReadStream, statSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { createInterface } from 'node:readline';
import { sleep } from '../platform/background.ts';
import type { Database } from '../db/connection.ts';
import type { ErrorsTree } from '../platform/errors.ts';
import { claimBulk, MAX_BULK_MEMBERS, processBulk, submitImportBulk, type IdentifierType, type ImportOperation } from './imports.ts';

export interface FileImportOptions {
  operation?: ImportOperation;
  identifier?: IdentifierType;
  /** Bulks processed at the same time (each on its own connection). */
  concurrency?: number;
  /** Recorded as the import's source (webhook `source`). */
  source?: string;
  importId?: string;
  onProgress?: (p: FileImportProgress) => void;
}

export interface FileImportProgress {
  bytesTotal: number;
  bytesDone: number;
  members: number;
  created: number;
  updated: number;
  errors: number;
}

export interface FileImportSummary extends FileImportProgress {
  importId: string;
  bulks: number;
  failedBulks: number[];
  /** Lines that are not a JSON object: line number → problem. */
  badLines: Array<{ line: number; error: string }>;
  /** The first member errors, as in `members_errors`. */
  sampleErrors: Array<{ key: string; errors: ErrorsTree }>;
  seconds: number;
}

const SAMPLE_ERRORS = 20;

/** Runs one stored bulk to its end here (retrying after a crash as the worker would). */
async function runBulkToEnd(db: Database, bulkId: number, members: unknown[]) {
  for (;;) {
    const claimed = await claimBulk(db, { bulkId });
    if (claimed) {
      const outcome = await processBulk(db, claimed, { members });
      if (outcome.status === 'finished' || outcome.status === 'failed') break;
    }
    const { rows } = await db.query<{ status: string }>('SELECT status FROM members_import_bulks WHERE id = $1', [bulkId]);
    if (rows[0]?.status === 'finished' || rows[0]?.status === 'failed') break;
    await sleep(1000); // taken by a worker, or waiting for its retry time
  }
  const { rows } = await db.query<{ status: string; members_created_number: number; members_updated_number: number; members_with_validation_errors_number: number; members_errors: Record<string, ErrorsTree> }>(
    `SELECT status, members_created_number, members_updated_number, members_with_validation_errors_number, members_errors
       FROM members_import_bulks WHERE id = $1`,
    [bulkId],
  );
  return rows[0];
}

export async function importMembersFile(db: Database, clubId: number, file: string, opts: FileImportOptions = {}): Promise<FileImportSummary> {
  const started = Date.now();
  const importId = opts.importId ?? randomUUID();
  const concurrency = Math.max(1, opts.concurrency ?? 3);
  const summary: FileImportSummary = {
    importId, bytesTotal: statSync(file).size, bytesDone: 0, members: 0, created: 0, updated: 0, errors: 0,
    bulks: 0, failedBulks: [], badLines: [], sampleErrors: [], seconds: 0,
  };
  const inFlight = new Set<Promise<void>>();
  let failure: unknown = null;

  const send = (members: unknown[], bytes: number, requestNumber: number) => {
    const job = (async () => {
      const { bulk } = await submitImportBulk(db, clubId, { import_id: importId, request_number: requestNumber, members, operation: opts.operation, member_identifier_type: opts.identifier }, opts.source ?? 'hei-cli');
      const result = await runBulkToEnd(db, bulk.id, members);
      summary.created += result.members_created_number;
      summary.updated += result.members_updated_number;
      summary.errors += result.members_with_validation_errors_number;
      if (result.status === 'failed') summary.failedBulks.push(bulk.id);
      for (const [key, errors] of Object.entries(result.members_errors)) {
        if (summary.sampleErrors.length >= SAMPLE_ERRORS) break;
        summary.sampleErrors.push({ key, errors });
      }
      summary.bytesDone += bytes;
      opts.onProgress?.({ ...summary });
    })().catch((err) => {
      failure ??= err;
    });
    inFlight.add(job);
    void job.finally(() => inFlight.delete(job));
  };

  const lines = createInterface({ input: createReadStream(file), crlfDelay: Infinity });
  let batch: unknown[] = [];
  let batchBytes = 0;
  let lineNo = 0;
  for await (const line of lines) {
    lineNo++;
    batchBytes += Buffer.byteLength(line) + 1;
    if (line.trim() === '') continue;
    let member: unknown;
    try {
      member = JSON.parse(line);
    } catch {
      summary.badLines.push({ line: lineNo, error: 'not valid JSON' });
      continue;
    }
    if (!member || typeof member !== 'object' || Array.isArray(member)) {
      summary.badLines.push({ line: lineNo, error: 'not a JSON object' });
      continue;
    }
    batch.push(member);
    summary.members++;
    if (batch.length === MAX_BULK_MEMBERS) {
      // Backpressure: reading waits while `concurrency` bulks are in flight.
      while (inFlight.size >= concurrency) await Promise.race(inFlight);
      if (failure) break;
      send(batch, batchBytes, ++summary.bulks);
      batch = [];
      batchBytes = 0;
    }
  }
  if (!failure && batch.length) send(batch, batchBytes, ++summary.bulks);
  else summary.bytesDone += batchBytes;
  await Promise.all(inFlight);
  if (failure) throw failure;
  summary.bytesDone = summary.bytesTotal;
  summary.errors += summary.badLines.length;
  summary.seconds = (Date.now() - started) / 1000;
  opts.onProgress?.({ ...summary });
  return summary;
}
