/**
 * The files of the dashboard: the page at `/` and the client's browser bundle at `/mqtt.min.js`, both held in
 * memory (nothing is read from disk or built at run time, so the npm build, the single-file broker and a
 * checkout serve the same).
 *
 * @module
 */

import { CLIENT_BUNDLE } from "./client_bundle.ts";
import { DASHBOARD_HTML } from "./page.ts";

/** What the page may load and reach: only this listener (its scripts, `/metrics`, `/api/`, `/mqtt`). */
const PAGE_HEADERS = {
  "content-type": "text/html; charset=utf-8",
  "cache-control": "no-cache",
  "content-security-policy":
    "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; " +
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
};

const BUNDLE_HEADERS = {
  "content-type": "text/javascript; charset=utf-8",
  "cache-control": "no-cache",
  "x-content-type-options": "nosniff",
};

/**
 * Answers a request for one of the dashboard's files.
 *
 * @param request The request.
 * @param pathname Its path.
 * @returns The answer, or `undefined` when the path is not one of them.
 */
export function dashboardFile(request: Request, pathname: string): Response | undefined {
  const headers = pathname === "/" || pathname === "/index.html"
    ? PAGE_HEADERS
    : pathname === "/mqtt.min.js"
    ? BUNDLE_HEADERS
    : undefined;
  if (headers === undefined) return undefined;
  if (request.method !== "GET" && request.method !== "HEAD") {
    return new Response(`${request.method} is not allowed here`, {
      status: 405,
      headers: { allow: "GET, HEAD" },
    });
  }
  const body = headers === PAGE_HEADERS ? DASHBOARD_HTML : CLIENT_BUNDLE;
  return new Response(request.method === "HEAD" ? null : body, { headers });
}
