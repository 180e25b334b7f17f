/**
 * What an HTTP listener serves besides MQTT over WebSocket: `GET /metrics`, the admin API under `/api/`, and
 * the dashboard's files; 404 for the rest.
 *
 * @module
 */

import { adminApi, type AdminHost } from "./admin_api.ts";
import { dashboardFile } from "./dashboard/serve.ts";
import { METRICS_CONTENT_TYPE } from "./metrics.ts";

/**
 * The handler of a broker's HTTP requests.
 *
 * @param admin What the admin API reads and does.
 * @param metrics The broker's metrics, as text.
 * @returns The handler.
 */
export function httpRoutes(
  admin: AdminHost,
  metrics: () => string,
): (request: Request) => Response | Promise<Response> {
  return (request) => {
    const { pathname } = new URL(request.url);
    if (pathname.startsWith("/api/")) return adminApi(request, admin);
    if (pathname === "/metrics" && (request.method === "GET" || request.method === "HEAD")) {
      return new Response(metrics(), { headers: { "content-type": METRICS_CONTENT_TYPE } });
    }
    return dashboardFile(request, pathname) ??
      new Response("Not found", { status: 404, headers: { "content-type": "text/plain" } });
  };
}
