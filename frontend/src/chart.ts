/** Sentiment-over-time chart per ticker (uPlot): average score as a line, item count as bars. */
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { toColumns } from "./chart-data";
import type { TimeseriesBucket } from "./types";

export interface SentimentChart {
  update(buckets: readonly TimeseriesBucket[]): void;
  destroy(): void;
}

export type ChartFactory = (container: HTMLElement, buckets: readonly TimeseriesBucket[]) => SentimentChart;

const HEIGHT = 140;
const MIN_WIDTH = 120;

export const uplotChart: ChartFactory = (container, buckets) => {
  // The card decides the width (down to a 360 px screen); the chart follows it (ResizeObserver below).
  const width = () => Math.max(MIN_WIDTH, Math.floor(container.clientWidth || 280));
  const bars = uPlot.paths.bars ? uPlot.paths.bars({ size: [0.6, 24] }) : undefined;
  const options: uPlot.Options = {
    width: width(),
    height: HEIGHT,
    legend: { show: true, live: true },
    cursor: { drag: { x: false, y: false } },
    // The legend shows the point under the pointer, and only then (`.pointing`, style.css): an idle
    // chart carries no empty "Time: --" row.
    hooks: {
      setCursor: [(u) => container.classList.toggle("pointing", u.cursor.idx !== null && u.cursor.idx !== undefined)],
    },
    scales: {
      x: { time: true },
      score: { range: [-1, 1] },
      count: { range: (_u, _min, max) => [0, Math.max(1, max) * 3] },
    },
    axes: [
      { stroke: "#8a94a6", grid: { stroke: "rgba(138,148,166,0.15)" }, size: 30 },
      {
        scale: "score",
        stroke: "#8a94a6",
        grid: { stroke: "rgba(138,148,166,0.15)" },
        size: 40,
        values: (_u, ticks) => ticks.map((tick) => tick.toFixed(1)),
      },
    ],
    series: [
      {},
      {
        label: "avg score",
        scale: "score",
        stroke: "#4f8cff",
        width: 2,
        spanGaps: true,
        points: { show: true, size: 4 },
        value: (_u, v) => (v === null || v === undefined ? "-" : v.toFixed(2)),
      },
      {
        label: "items",
        scale: "count",
        stroke: "rgba(138,148,166,0.6)",
        fill: "rgba(138,148,166,0.25)",
        paths: bars,
        points: { show: false },
      },
    ],
  };
  const plot = new uPlot(options, toColumns(buckets), container);
  const observer =
    typeof ResizeObserver === "undefined"
      ? null
      : new ResizeObserver(() => plot.setSize({ width: width(), height: HEIGHT }));
  observer?.observe(container);
  return {
    update: (next) => plot.setData(toColumns(next)),
    destroy: () => {
      observer?.disconnect();
      plot.destroy();
    },
  };
};
