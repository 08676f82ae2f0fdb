// When a streaming peer takes nearly everything it is offered, asking first
// (CHECK, RFC 4644 §2.3) only adds a round trip per article: innfeed then
// sends TAKETHIS at once ("no-CHECK mode"), and goes back to CHECK when the
// peer starts to refuse, since each refusal then cost a whole article. The
// same rule here, with innfeed's defaults (innfeed.conf: nocheck-on 95%,
// nocheck-off 90%, a running average over about 50 offers). It starts off,
// so two peers offering the same new article each ask first (one transfer).

const FILTER = 50;
const ON = 0.95;
const OFF = 0.9;

export class NoCheck {
  #ratio = 0;
  #samples = 0;
  /** Send TAKETHIS without CHECK. */
  on = false;

  /** One answer to an offer: taken (238, or 239 to a TAKETHIS sent at once) or not (438, 431, 439). */
  sample(wanted: boolean): void {
    this.#samples++;
    this.#ratio += ((wanted ? 1 : 0) - this.#ratio) / Math.min(this.#samples, FILTER);
    if (!this.on && this.#samples >= FILTER && this.#ratio >= ON) this.on = true;
    else if (this.on && this.#ratio < OFF) this.on = false;
  }

  get ratio(): number {
    return this.#ratio;
  }
}
