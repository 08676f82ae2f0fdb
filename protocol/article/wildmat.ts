// Wildmat patterns (RFC 3977 §4): "*", "?", "[...]", "\\" escape, and lists
// of patterns separated by "," where a leading "!" negates; the last match wins.

export type Matcher = (s: string) => boolean;

function compileOne(pat: string): RegExp {
  let re = "^";
  for (let i = 0; i < pat.length; i++) {
    const c = pat[i];
    if (c === "*") re += ".*";
    else if (c === "?") re += ".";
    else if (c === "[") {
      const close = pat.indexOf("]", i + 2);
      if (close < 0) {
        re += "\\[";
        continue;
      }
      let body = pat.slice(i + 1, close);
      let neg = false;
      if (body.startsWith("^")) {
        neg = true;
        body = body.slice(1);
      }
      re += "[" + (neg ? "^" : "") + body.replace(/[\\\]]/g, "\\$&") + "]";
      i = close;
    } else if (c === "\\" && i + 1 < pat.length) {
      re += pat[++i].replace(/[.*+?^${}()|[\]\\\/]/g, "\\$&");
    } else re += c.replace(/[.*+?^${}()|[\]\\\/]/g, "\\$&");
  }
  return new RegExp(re + "$", "s");
}

/** One wildmat pattern, commas taken literally (XPAT, RFC 2980 §2.9). */
export function pattern(p: string): Matcher {
  const re = compileOne(p);
  return (s: string) => re.test(s);
}

/** A wildmat list ("comp.*,!comp.os.*"). An empty list matches nothing. */
export function wildmat(list: string): Matcher {
  const parts = list.split(",").filter((p) => p.length > 0).map((p) => {
    const neg = p.startsWith("!");
    return { neg, re: compileOne(neg ? p.slice(1) : p) };
  });
  return (s: string) => {
    let ok = false;
    for (const p of parts) if (p.re.test(s)) ok = !p.neg;
    return ok;
  };
}

/** RFC 3977 §4.2: a wildmat argument contains no spaces and no control characters. */
export function isWildmat(s: string): boolean {
  return s.length > 0 && !/[\x00-\x20\x7f]/.test(s);
}
