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
  /** transmitting / transmitted: Cancel Sending arrived when every dispatch was already handed over. */
  'cancel_too_late',
  /** skipped: no recipient could be reached on any channel of the message (or the audience was empty). */
  'no_reachable_recipients',
  /** transmitting: its transport cannot be reached (connection refused, bind lost); it waits without using attempts. */
  'transport_down',
  /** transmitting: its transport asks to slow down (SMPP throttling, SMTP 421); it waits without using attempts. */
  'transport_throttled',
  /** transmitting: the outbox (or the embedded data folder) is out of disk space; it resumes when space returns. */
  'disk_full',
  /** failed: its transport stayed unavailable longer than the pause timeout. */
  'transport_unavailable_too_long',
] as const;
export type StatusReason = (typeof STATUS_REASONS)[number];

export const StatusReasonSchema = Nullable(StringEnum(STATUS_REASONS));
