// The node's doorbell: accepted articles are published here after COMMIT.
// Feeds wake on it but read their work from storage, so a restart loses the
// doorbell, never the work.
import { Subject } from "rxjs";

export interface AcceptedArticle {
  id: number;
  msgid: string;
  groups: string[];
  bytes: number;
  /** The article as stored (with Xref), so an idle feed can send it without reading it back. */
  data: Buffer;
  source: string;
  /** Peer ids it was queued for. */
  peers: number[];
}

export class Bus {
  readonly accepted$ = new Subject<AcceptedArticle>();
}
