// The node's HTTP listener: a small table of routes (method and path prefix to
// a handler), so /metrics now and the web reader later (issue 11) share one
// port. Unknown paths get 404, a known path with another method 405. It knows
// nothing of what the routes serve.
import http from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "pino";

export type HttpHandler = (req: http.IncomingMessage, res: http.ServerResponse, url: URL) => void | Promise<void>;

interface Route {
  method: string;
  prefix: string;
  handler: HttpHandler;
}

/** Bounds for a listener that may face strangers: slow or idle clients do not hold sockets for long. */
const HEADERS_TIMEOUT_MS = 10_000;
const REQUEST_TIMEOUT_MS = 30_000;
const KEEP_ALIVE_MS = 5_000;

export class HttpServer {
  readonly server: http.Server;
  #routes: Route[] = [];

  constructor(private readonly log: Logger, maxConnections: number) {
    this.server = http.createServer({ headersTimeout: HEADERS_TIMEOUT_MS, requestTimeout: REQUEST_TIMEOUT_MS }, (req, res) => void this.#serve(req, res));
    this.server.keepAliveTimeout = KEEP_ALIVE_MS;
    this.server.maxConnections = maxConnections;
    this.server.on("error", (err) => log.error({ err }, "HTTP listener error"));
  }

  /**
   * Serves `method` requests whose path is `prefix` or lies under it
   * ("/metrics" takes "/metrics" and "/metrics/x", not "/metricsx"). The
   * longest matching prefix owns the path, whatever the method (405 if it
   * has none for it), so "/" can be a catch-all.
   */
  route(method: string, prefix: string, handler: HttpHandler): void {
    this.#routes.push({ method: method.toUpperCase(), prefix, handler });
    this.#routes.sort((a, b) => b.prefix.length - a.prefix.length);
  }

  listen(host: string, port: number): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen({ host, port }, () => {
        this.server.off("error", reject);
        resolve(this.server.address() as AddressInfo);
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  async #serve(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    let url: URL;
    try {
      url = new URL(req.url ?? "/", "http://localhost");
    } catch {
      return plain(res, 400, "Bad request\n");
    }
    // the longest prefix owns the path: POST /metrics is not the catch-all's, even if "/" takes POST
    const longest = this.#routes.find((r) => under(url.pathname, r.prefix));
    if (!longest) return plain(res, 404, `Not found: ${url.pathname}\n`);
    const matching = this.#routes.filter((r) => r.prefix === longest.prefix);
    // HEAD is answered by the GET handler; node:http leaves the body out
    const method = req.method === "HEAD" ? "GET" : req.method;
    const route = matching.find((r) => r.method === method);
    if (!route) {
      res.setHeader("Allow", [...new Set(matching.map((r) => r.method))].join(", "));
      return plain(res, 405, `Method ${req.method} not allowed on ${url.pathname}\n`);
    }
    try {
      await route.handler(req, res, url);
    } catch (err) {
      this.log.error({ err, path: url.pathname }, "HTTP handler failed");
      if (!res.headersSent) plain(res, 500, "Internal error\n");
      else res.destroy();
    }
  }
}

function under(path: string, prefix: string): boolean {
  if (prefix === "/" || path === prefix) return true;
  return path.startsWith(prefix.endsWith("/") ? prefix : prefix + "/");
}

export function plain(res: http.ServerResponse, status: number, text: string, type = "text/plain; charset=utf-8"): void {
  res.writeHead(status, { "Content-Type": type, "Content-Length": Buffer.byteLength(text) });
  res.end(text);
}
