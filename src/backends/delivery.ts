/**
 * The delivery window of a log read, shared by every Log backend (see Log.read).
 *
 * A delivery that was not acked marks its range as suspect: something in it may crash the
 * consumer. The suspect range is bisected: each redelivery from the same start halves the
 * window, each acked window doubles it back, so an ordinary crash costs a few smaller
 * commits while a poison record ends up delivered alone. `attempts` counts the deliveries
 * of the current window; it only climbs past 1 for a window of one record, which is what
 * the consumer dead-letters once it reaches its limit.
 */

/** The last delivery of a partition to a group, persisted before its records are returned. */
export interface DeliveryMarker {
  /** First and last position of the delivered range (offsets or sequences). */
  from: number;
  to: number;
  /** Records delivered. */
  win: number;
  attempts: number;
}

export interface DeliveryWindow {
  /** Records to deliver at most. */
  win: number;
  /** Last position the delivery may reach: the suspect range's end; null = no bound. */
  to: number | null;
  attempts: number;
  suspect: boolean;
}

/** Pure: the window of the next delivery from `start`, given the previous one's marker. */
export function deliveryWindow(marker: DeliveryMarker | null | undefined, start: number, max: number): DeliveryWindow {
  if (!marker || start < marker.from || start > marker.to) return { win: max, to: null, attempts: 1, suspect: false };
  if (marker.from === start) {
    const win = Math.max(1, Math.floor(marker.win / 2));
    return { win, to: marker.to, attempts: win === marker.win ? marker.attempts + 1 : 1, suspect: true };
  }
  return { win: Math.min(max, marker.win * 2), to: marker.to, attempts: 1, suspect: true };
}
