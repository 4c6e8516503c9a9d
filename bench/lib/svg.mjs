// Line charts as hand-written SVG (no dependency): one series per tool over categorical x
// values (concurrencies, evenly spaced), a y axis from 0 with round ticks, optional dashed
// reference lines, a legend.

const COLORS = ['#d62728', '#1f77b4', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b'];
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);

function niceStep(max, ticks = 5) {
  const raw = max / ticks;
  const mag = 10 ** Math.floor(Math.log10(raw || 1));
  return [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
}

const fmt = (v) => (Math.abs(v) >= 1000 ? v.toLocaleString('en', { maximumFractionDigits: 0 }) : String(Number(v.toPrecision(3))));

/**
 * series: [{ name, points: [[x, y], …] }]; xs: the x categories in order;
 * refs: [{ y, label }] drawn dashed. Returns the SVG text.
 */
export function lineChart({ title, xLabel, yLabel, xs, series, refs = [], width = 720, height = 360, yFormat = fmt }) {
  const m = { l: 70, r: 230, t: 40, b: 50 };
  const w = width - m.l - m.r;
  const h = height - m.t - m.b;
  const ys = [...series.flatMap((s) => s.points.map((p) => p[1])), ...refs.map((r) => r.y)].filter(Number.isFinite);
  const step = niceStep(Math.max(...ys, 0) * 1.05 || 1);
  const top = Math.ceil((Math.max(...ys, 0) * 1.05 || 1) / step) * step;
  const x = (v) => m.l + (xs.length === 1 ? w / 2 : (xs.indexOf(v) / (xs.length - 1)) * w);
  const y = (v) => m.t + h - (v / top) * h;
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    `<text x="${m.l}" y="22" font-size="14" font-weight="bold">${esc(title)}</text>`,
  ];
  for (let v = 0; v <= top + step / 2; v += step) {
    out.push(`<line x1="${m.l}" x2="${m.l + w}" y1="${y(v)}" y2="${y(v)}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${m.l - 6}" y="${y(v) + 4}" text-anchor="end">${esc(yFormat(v))}</text>`);
  }
  for (const v of xs) {
    out.push(`<line x1="${x(v)}" x2="${x(v)}" y1="${m.t + h}" y2="${m.t + h + 4}" stroke="#333"/>`);
    out.push(`<text x="${x(v)}" y="${m.t + h + 18}" text-anchor="middle">${esc(v)}</text>`);
  }
  out.push(`<line x1="${m.l}" x2="${m.l + w}" y1="${m.t + h}" y2="${m.t + h}" stroke="#333"/>`);
  out.push(`<line x1="${m.l}" x2="${m.l}" y1="${m.t}" y2="${m.t + h}" stroke="#333"/>`);
  out.push(`<text x="${m.l + w / 2}" y="${height - 10}" text-anchor="middle">${esc(xLabel)}</text>`);
  out.push(`<text transform="translate(16 ${m.t + h / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`);
  for (const r of refs) {
    out.push(`<line x1="${m.l}" x2="${m.l + w}" y1="${y(r.y)}" y2="${y(r.y)}" stroke="#777" stroke-dasharray="5 4"/>`);
    out.push(`<text x="${m.l + 6}" y="${y(r.y) - 5}" fill="#555">${esc(r.label)}</text>`);
  }
  series.forEach((s, i) => {
    const color = s.color ?? COLORS[i % COLORS.length];
    const pts = s.points.filter((p) => Number.isFinite(p[1]) && xs.includes(p[0]));
    if (pts.length > 1) out.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${pts.map((p) => `${x(p[0])},${y(p[1])}`).join(' ')}"/>`);
    for (const p of pts) out.push(`<circle cx="${x(p[0])}" cy="${y(p[1])}" r="3.5" fill="${color}"><title>${esc(`${s.name} @ ${p[0]}: ${yFormat(p[1])}`)}</title></circle>`);
    const ly = m.t + 10 + i * 20;
    out.push(`<line x1="${m.l + w + 10}" x2="${m.l + w + 30}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="2"/>`);
    out.push(`<text x="${m.l + w + 36}" y="${ly + 4}">${esc(s.name)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}
