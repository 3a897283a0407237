// The staff dashboard: draws the rollup charts once, and polls the live request log.
(function () {
  "use strict";
  const config = JSON.parse(document.getElementById("hx-config").textContent);
  const status = document.getElementById("hx-status");

  function cell(row, value) {
    const td = document.createElement("td");
    td.textContent = value === null || value === undefined ? "—" : String(value);
    row.appendChild(td);
  }

  function fillTable(id, items, columns) {
    const body = document.getElementById(id);
    body.replaceChildren();
    for (const item of items) {
      const row = document.createElement("tr");
      columns.forEach((column) => cell(row, column(item)));
      body.appendChild(row);
    }
  }

  function percent(value) { return (value * 100).toFixed(1) + " %"; }

  function kpis(summary) {
    const box = document.getElementById("hx-kpis");
    box.replaceChildren();
    const items = [
      ["Requests", summary.total_requests], ["Per minute", summary.requests_per_minute],
      ["Errors", summary.error_count + " (" + percent(summary.error_rate) + ")"],
      ["Cache hit rate", percent(summary.cache_hit_rate)], ["Avg latency", summary.avg_latency_ms + " ms"],
      ["p95 latency", summary.latency_percentiles.p95 === null ? "—" : summary.latency_percentiles.p95 + " ms"],
      ["Rate limited", summary.rate_limited_count], ["Blocked", summary.blocked_count],
      ["Keys", summary.unique_keys], ["Routes", summary.unique_routes],
    ];
    for (const [label, value] of items) {
      const div = document.createElement("div");
      div.className = "hx-kpi";
      div.textContent = label;
      const b = document.createElement("b");
      b.textContent = String(value);
      div.appendChild(b);
      box.appendChild(div);
    }
  }

  function lineChart(id, labels, datasets) {
    return new Chart(document.getElementById(id), {
      type: "line",
      data: { labels: labels, datasets: datasets },
      options: { animation: false, spanGaps: true, interaction: { mode: "index", intersect: false },
                 scales: { x: { ticks: { maxTicksLimit: 8 } }, y: { beginAtZero: true } } },
    });
  }

  function draw(data) {
    const s = data.series;
    const labels = s.labels.map((iso) => new Date(iso).toLocaleString([], { month: "short", day: "numeric",
                                                                            hour: "2-digit", minute: "2-digit" }));
    kpis(data.summary);
    const charts = [
      lineChart("hx-requests", labels, [
        { label: "requests", data: s.requests, borderColor: "#417690", fill: false },
        { label: "errors (4xx/5xx)", data: s.errors, borderColor: "#ba2121", fill: false },
      ]),
      lineChart("hx-latency", labels, [
        { label: "p50", data: s.p50, borderColor: "#417690" },
        { label: "p95", data: s.p95, borderColor: "#e7a33e" },
        { label: "p99", data: s.p99, borderColor: "#ba2121" },
      ]),
      new Chart(document.getElementById("hx-cache"), {
        type: "doughnut",
        data: { labels: Object.keys(s.cache), datasets: [{ data: Object.values(s.cache),
                backgroundColor: ["#44b78b", "#e7a33e", "#79aec8", "#999999"] }] },
        options: { animation: false },
      }),
      new Chart(document.getElementById("hx-refused"), {
        type: "bar",
        data: { labels: labels, datasets: [
          { label: "rate limited", data: s.rate_limited, backgroundColor: "#e7a33e" },
          { label: "blocked", data: s.blocked, backgroundColor: "#ba2121" },
          { label: "upstream errors", data: s.upstream_errors, backgroundColor: "#666666" },
        ] },
        options: { animation: false, scales: { x: { stacked: true, ticks: { maxTicksLimit: 8 } },
                                               y: { stacked: true, beginAtZero: true } } },
      }),
    ];
    fillTable("hx-top-keys", data.top_keys, [(k) => k.api_key_name, (k) => k.tenant_name, (k) => k.request_count,
                                             (k) => k.error_count, (k) => percent(k.cache_hit_rate)]);
    fillTable("hx-top-routes", data.top_routes, [(r) => r.route_name, (r) => r.request_count,
                                                 (r) => r.avg_latency_ms, (r) => percent(r.error_rate),
                                                 (r) => percent(r.cache_hit_rate)]);
    document.getElementById("hx-dashboard").dataset.charts = String(charts.length);
  }

  async function live() {
    try {
      const response = await fetch(config.logs_url, { credentials: "same-origin" });
      if (!response.ok) throw new Error("HTTP " + response.status);
      const page = await response.json();
      fillTable("hx-live", page.items, [(l) => new Date(l.timestamp).toLocaleTimeString(), (l) => l.method,
                                        (l) => l.path, (l) => l.status_code, (l) => l.cache_status,
                                        (l) => l.latency_ms, (l) => l.route_name, (l) => l.api_key_name,
                                        (l) => l.error_type]);
      document.getElementById("hx-dashboard").dataset.liveRows = String(page.items.length);
    } catch (error) {
      status.textContent = "Live log unavailable: " + error.message;
      status.className = "hx-error";
    }
  }

  fetch(config.data_url, { credentials: "same-origin" })
    .then((response) => { if (!response.ok) throw new Error("HTTP " + response.status); return response.json(); })
    .then((data) => { draw(data); status.textContent = "Updated " + new Date().toLocaleTimeString(); })
    .catch((error) => { status.textContent = "Could not load the dashboard: " + error.message;
                        status.className = "hx-error"; });
  live();
  setInterval(live, config.live_interval_ms);
})();
