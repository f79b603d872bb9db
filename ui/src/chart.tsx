import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

/** Ten colours that stay apart on white (Tableau 10). */
const COLOURS = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac'];

export interface Series {
  label: string;
  values: (number | null)[];
}

/**
 * A time-series chart: one line per series over `x` (epoch seconds). With a `watermark`
 * (epoch seconds), a line is drawn there and the buckets after it are shaded: they are not
 * complete yet. Labels are drawn by uPlot as text, never as markup.
 */
export function Chart(props: { x: number[]; series: Series[]; watermark?: number | null; height?: number; testid?: string }) {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const watermark = props.watermark ?? null;
    const plot = new uPlot(
      {
        width: Math.max(300, el.clientWidth || 800),
        height: props.height ?? 260,
        series: [{}, ...props.series.map((s, i) => ({ label: s.label, stroke: COLOURS[i % COLOURS.length], width: 1.5, spanGaps: false }))],
        axes: [{}, { size: 60 }],
        scales: { x: { time: true } },
        legend: { show: props.series.length <= 12 },
        hooks: {
          draw: [
            // A User Timing mark per drawing: what the UI bench measures (bench/ui.ts).
            () => performance.mark('sluice:chart-drawn'),
            (u: uPlot) => {
              if (watermark === null) return;
              const left = u.valToPos(watermark, 'x', true);
              const { top, height, left: l0, width } = u.bbox;
              if (left > l0 + width) return;
              const ctx = u.ctx;
              ctx.save();
              ctx.fillStyle = 'rgba(120,120,120,0.12)';
              ctx.fillRect(Math.max(left, l0), top, l0 + width - Math.max(left, l0), height);
              ctx.strokeStyle = '#888';
              ctx.setLineDash([4, 4]);
              ctx.beginPath();
              ctx.moveTo(left, top);
              ctx.lineTo(left, top + height);
              ctx.stroke();
              ctx.restore();
            },
          ],
        },
      },
      [props.x, ...props.series.map((s) => s.values)] as uPlot.AlignedData,
      el,
    );
    const resize = () => plot.setSize({ width: Math.max(300, el.clientWidth), height: props.height ?? 260 });
    window.addEventListener('resize', resize);
    return () => {
      window.removeEventListener('resize', resize);
      plot.destroy();
    };
  }, [props.x, props.series, props.watermark, props.height]);
  return <div class="chart" ref={box} data-testid={props.testid} />;
}

/**
 * Pivots a query answer (`bucket`, group columns, measures) into one series per group for
 * one measure. Buckets are sorted; a group missing from a bucket is null there.
 */
export function pivot(columns: string[], rows: unknown[][], measure: string, groupBy: string[]): { x: number[]; series: Series[] } {
  const bucketAt = columns.indexOf('bucket');
  const measureAt = columns.indexOf(measure);
  if (bucketAt < 0 || measureAt < 0) return { x: [], series: [] };
  const groupAt = groupBy.map((g) => columns.indexOf(g)).filter((i) => i >= 0);
  const xs = [...new Set(rows.map((r) => Date.parse(String(r[bucketAt])) / 1000))].sort((a, b) => a - b);
  const index = new Map(xs.map((x, i) => [x, i]));
  const groups = new Map<string, (number | null)[]>();
  for (const r of rows) {
    const label = groupAt.length ? groupAt.map((i) => (r[i] === null ? '(none)' : String(r[i]))).join(' · ') : measure;
    let values = groups.get(label);
    if (!values) groups.set(label, (values = new Array<number | null>(xs.length).fill(null)));
    const v = r[measureAt];
    values[index.get(Date.parse(String(r[bucketAt])) / 1000)!] = typeof v === 'number' ? v : v === null ? null : Number(v);
  }
  return { x: xs, series: [...groups].map(([label, values]) => ({ label, values })) };
}

