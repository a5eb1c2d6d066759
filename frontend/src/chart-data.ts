import type { TimeseriesBucket } from "./types";

/** uPlot's column layout: [x seconds], [avg score], [count], sorted by time. */
export function toColumns(buckets: readonly TimeseriesBucket[]): [number[], (number | null)[], number[]] {
  const sorted = [...buckets]
    .map((bucket) => ({ bucket, t: Date.parse(bucket.bucket_start) / 1000 }))
    .filter(({ t }) => Number.isFinite(t))
    .sort((a, b) => a.t - b.t);
  return [
    sorted.map(({ t }) => t),
    sorted.map(({ bucket }) => (bucket.count > 0 && Number.isFinite(bucket.avg_score) ? bucket.avg_score : null)),
    sorted.map(({ bucket }) => bucket.count),
  ];
}
