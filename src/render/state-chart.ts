/**
 * The /status chart: the story state as a small picture, one horizontal bar per
 * relationship (from a centre line: right and green for warmth, left and red for
 * hostility) and a last bar for the arc's progress. No text is drawn: the caption names
 * the rows, top to bottom.
 */
import type { StoryState } from "../agent/types.ts";
import { encodePng } from "./png.ts";

type Rgb = readonly [number, number, number];

const WIDTH = 320;
const ROW = 22;
const BAR = 14;
const PAD = 10;
const BACKGROUND: Rgb = [250, 248, 243];
const TRACK: Rgb = [226, 222, 212];
const AXIS: Rgb = [120, 115, 105];
const WARM: Rgb = [76, 153, 92];
const COLD: Rgb = [196, 74, 66];
const ARC: Rgb = [72, 110, 176];

class Canvas {
  readonly pixels: Uint8Array;
  constructor(
    readonly width: number,
    readonly height: number,
    background: Rgb,
  ) {
    this.pixels = new Uint8Array(width * height * 4);
    this.fill(0, 0, width, height, background);
  }

  fill(x: number, y: number, w: number, h: number, [r, g, b]: Rgb): void {
    const x0 = Math.max(0, Math.round(x));
    const x1 = Math.min(this.width, Math.round(x + w));
    const y0 = Math.max(0, Math.round(y));
    const y1 = Math.min(this.height, Math.round(y + h));
    for (let row = y0; row < y1; row++) {
      for (let col = x0; col < x1; col++) {
        const i = (row * this.width + col) * 4;
        this.pixels[i] = r;
        this.pixels[i + 1] = g;
        this.pixels[i + 2] = b;
        this.pixels[i + 3] = 255;
      }
    }
  }
}

/** The chart's PNG: relationship rows in the state's order, then the arc's progress. */
export function stateChartPng(state: StoryState): Uint8Array {
  const rows = state.relationships.length + 1;
  const height = PAD * 2 + rows * ROW;
  const canvas = new Canvas(WIDTH, height, BACKGROUND);
  const inner = WIDTH - PAD * 2;
  const centre = PAD + inner / 2;
  state.relationships.forEach((r, i) => {
    const y = PAD + i * ROW + (ROW - BAR) / 2;
    canvas.fill(PAD, y, inner, BAR, TRACK);
    const length = (Math.min(100, Math.abs(r.value)) / 100) * (inner / 2);
    if (r.value >= 0) canvas.fill(centre, y, length, BAR, WARM);
    else canvas.fill(centre - length, y, length, BAR, COLD);
    canvas.fill(centre - 1, y - 2, 2, BAR + 4, AXIS);
  });
  const y = PAD + state.relationships.length * ROW + (ROW - BAR) / 2;
  canvas.fill(PAD, y, inner, BAR, TRACK);
  canvas.fill(PAD, y, (Math.min(100, Math.max(0, state.arcProgress)) / 100) * inner, BAR, ARC);
  return encodePng(WIDTH, height, canvas.pixels);
}
