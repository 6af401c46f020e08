// The agent console's queue table: who waits in each queue and for how long, and whether the
// server's CPU budget holds customers back, from GET /api/status (polled while logged in).

import { $, el } from "./ui.js";

const QUEUE_POLL_MS = 5000;

let queueTimer = null;

/** Poll now and every few seconds while `polling()` says so (a hidden tab skips the fetch). */
export async function pollQueues(polling) {
  clearTimeout(queueTimer);
  if (!polling()) return;
  if (!document.hidden) {
    try {
      const response = await fetch("/api/status", { cache: "no-store" });
      if (response.ok) renderQueues(await response.json());
    } catch {
      // The table is a convenience: a failed poll leaves the last figures in place.
    }
  }
  queueTimer = setTimeout(() => pollQueues(polling), QUEUE_POLL_MS);
}

function renderQueues(status) {
  const rows = (status.queues || []).map((queue) =>
    el(
      "tr",
      {},
      el("th", { scope: "row" }, queue.queue),
      el("td", {}, queue.waiting),
      el("td", {}, queue.waiting ? `${Math.round(queue.longest_wait_s)} s` : "—"),
    ),
  );
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: 3, class: "muted" }, "Nobody is waiting.")));
  $("queues").querySelector("tbody").replaceChildren(...rows);
  // Customers the server's CPU budget holds back (docs/protocol.md, "Capacity").
  const admission = status.admission;
  const capacity = $("capacity");
  const held = admission?.waiting_for_capacity || 0;
  capacity.hidden = !admission || (admission.open && !held);
  if (!capacity.hidden) {
    const who = held === 1 ? "1 customer waits" : `${held} customers wait`;
    capacity.textContent = `The server is at capacity (CPU ${Math.round(admission.cpu_busy_pct ?? 0)} % of a ${Math.round(admission.cpu_budget_pct)} % budget): ${who} for a running call to end.`;
  }
}
