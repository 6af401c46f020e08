// The studio's view of the host over HTTP (GET /api/host), every few seconds while it runs:
// viewers change without a host_status on the socket, and a host may stop elsewhere.

const STATUS_POLL_MS = 3000;

let pollTimer = null;

/**
 * While the host runs, refresh `page`'s status over HTTP: `render()` when the viewers change,
 * `onHostStatus(status)` when the host stopped or another one runs.
 */
export function pollHostStatus(page, { onHostStatus, render }) {
  clearInterval(pollTimer);
  pollTimer = setInterval(async () => {
    if (page.host !== "running" || page.connection !== "open" || !page.token) return;
    try {
      const response = await fetch("/api/host", { headers: { Authorization: `Bearer ${page.token}` } });
      if (!response.ok) return;
      const status = await response.json();
      if (status.type !== "host_status" || page.host !== "running") return;
      if (!status.running || status.host_id !== page.hostId) onHostStatus(status);
      else if (status.viewers !== page.viewers) {
        page.viewers = status.viewers;
        render();
      }
    } catch {
      // The socket's state tells the operator about a lost server; nothing to add here.
    }
  }, STATUS_POLL_MS);
}

export function stopPollingHostStatus() {
  clearInterval(pollTimer);
}
