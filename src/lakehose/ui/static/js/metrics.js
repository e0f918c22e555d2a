// Live numbers from /metrics (Prometheus text; it needs no token). Rates are counter deltas
// between two samples taken while a page is open. A metric this server does not export yet
// (or a server without /metrics) simply shows as "–".

export function parseMetrics(text) {
  const samples = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = line.match(/^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/);
    if (!m) continue;
    const labels = {};
    for (const l of (m[2] || "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1]] = l[2].replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));
    }
    samples.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return samples;
}

export async function fetchMetrics() {
  try {
    const response = await fetch("/metrics");
    if (!response.ok) return null;
    return { at: Date.now() / 1000, samples: parseMetrics(await response.text()) };
  } catch {
    return null;
  }
}

// sum of a metric's samples, grouped by one label (or all together when by is null)
export function total(snapshot, name, by = null, reduce = (a, b) => a + b) {
  const out = new Map();
  if (!snapshot) return out;
  for (const s of snapshot.samples) {
    if (s.name !== name) continue;
    const key = by ? s.labels[by] : "";
    out.set(key, out.has(key) ? reduce(out.get(key), s.value) : s.value);
  }
  return out;
}

export function one(snapshot, name, reduce) {
  const values = total(snapshot, name, null, reduce);
  return values.has("") ? values.get("") : null;
}

export function has(snapshot, prefix) {
  return !!snapshot && snapshot.samples.some((s) => s.name.startsWith(prefix));
}

// per-second increase of a counter between two snapshots, by label
export function rate(before, after, name, by = null) {
  const out = new Map();
  if (!before || !after || after.at <= before.at) return out;
  const old = total(before, name, by);
  for (const [key, value] of total(after, name, by)) {
    out.set(key, Math.max(0, value - (old.get(key) || 0)) / (after.at - before.at));
  }
  return out;
}

export function sumOf(map) {
  let sum = 0;
  for (const v of map.values()) sum += v;
  return map.size ? sum : null;
}

// samples /metrics while the page is open, calls onSample(history, latest): the first three a
// second apart, so rates and a trend show at once, then every `seconds`
export function sampler(seconds, onSample, keep = 120) {
  const history = [];
  let stopped = false, timer = null, ticks = 0;
  async function tick() {
    const snapshot = await fetchMetrics();
    if (stopped) return;
    if (snapshot) {
      history.push(snapshot);
      if (history.length > keep) history.shift();
    }
    onSample(history, snapshot);
    timer = setTimeout(tick, (++ticks < 3 ? 1 : seconds) * 1000);
  }
  tick();
  return () => { stopped = true; clearTimeout(timer); };
}
