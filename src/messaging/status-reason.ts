// The machine-readable reasons a sending shows in `status_reason` (DECISIONS "Sending resource").
// One enum for every part of Hei that fails, skips, pauses or cancels a sending; docs/decisions.md
// lists what each means.
import { StringEnum, Nullable } from '../platform/schema.ts';

export const STATUS_REASONS = [
  /** failed: the scheduler did not start preparation within 20 minutes of `scheduled_at`. */
  'not_started_in_time',
  /** failed: the audience could not be compiled or no longer exists. */
  'preparation_failed',
  /** paused (still transmitting): transport errors crossed the error-burst threshold. */
  'error_burst',
  /** failed: paused and not resumed within the pause timeout. */
  'paused_too_long',
  /** failed: nothing could be handed over because every dispatch failed to render. */
  'render_failed',
  /** cancelled: Cancel Sending was called while the sending executed. */
  'cancelled_by_user',
] as const;
export type StatusReason = (typeof STATUS_REASONS)[number];

export const StatusReasonSchema = Nullable(StringEnum(STATUS_REASONS));
