// Shared types for the runner and the scenarios.
export interface Ctx {
  quick: boolean;
  reps: number;
  tmp: string;
  /** whether `node dist/cli.js` exists; reason when not */
  sluice: { ok: boolean; reason?: string };
  log: (msg: string) => void;
}

export interface Section {
  /** markdown lines */
  body: string[];
  /** exact commands run (shown in the report) */
  commands: string[];
  /** generated configs: name -> text */
  configs?: Record<string, string>;
}

export interface Scenario {
  id: string;
  title: string;
  run: (ctx: Ctx) => Promise<Section>;
}

/** A: B: C: A: B: C ... — run fn for every item, `reps` rounds, interleaved. */
export async function interleaved<T, R>(reps: number, items: T[], fn: (item: T, rep: number) => Promise<R>): Promise<Map<T, R[]>> {
  const out = new Map<T, R[]>();
  for (const it of items) out.set(it, []);
  for (let r = 0; r < reps; r++) {
    for (const it of items) out.get(it)!.push(await fn(it, r));
  }
  return out;
}

export function errMsg(e: unknown): string {
  const s = e instanceof Error ? e.message : String(e);
  return s.replace(/\s+/g, ' ').slice(0, 600);
}
