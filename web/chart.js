// chart.js: the write-rate chart, hand-made SVG. One point per 2 s poll over the last 5
// minutes; a poll that failed leaves a gap in the line. The <title> says the numbers in words
// for those who cannot see the drawing.

const WINDOW_MS = 5 * 60 * 1000;
const SVG_NS = "http://www.w3.org/2000/svg";
// the drawing area inside the viewBox (0 0 600 180): room on the left for the scale
const PLOT = { left: 58, right: 592, top: 12, bottom: 156 };

export class RateChart {
  constructor(svg, caption) {
    this.svg = svg;
    this.caption = caption;
    this.title = svg.querySelector("title");
    this.line = svg.querySelector("path.line");
    this.area = svg.querySelector("path.area");
    this.grid = svg.querySelector("g.grid");
    this.labels = svg.querySelector("g.labels");
    this.samples = []; // { at: ms, rate: writes/s or null }
  }

  // a new session (another token may see other channels): start an empty chart
  clear() {
    this.samples = [];
    this.draw(Date.now());
  }

  add(at, rate) {
    this.samples.push({ at, rate });
    const oldest = at - WINDOW_MS;
    while (this.samples.length && this.samples[0].at < oldest) this.samples.shift();
    this.draw(at);
  }

  draw(now) {
    const rates = this.samples.map((s) => s.rate).filter((r) => r !== null);
    const top = niceCeiling(Math.max(1, ...rates));
    const x = (at) => PLOT.left + ((at - (now - WINDOW_MS)) / WINDOW_MS) * (PLOT.right - PLOT.left);
    const y = (rate) => PLOT.bottom - (rate / top) * (PLOT.bottom - PLOT.top);

    // the line, broken where a poll failed; the area under each unbroken run
    let line = "";
    let area = "";
    let run = [];
    const flush = () => {
      if (run.length > 1) {
        line += run.map(([px, py], i) => `${i ? "L" : "M"}${px.toFixed(1)},${py.toFixed(1)}`).join("");
        area += `M${run[0][0].toFixed(1)},${PLOT.bottom}` +
          run.map(([px, py]) => `L${px.toFixed(1)},${py.toFixed(1)}`).join("") +
          `L${run[run.length - 1][0].toFixed(1)},${PLOT.bottom}Z`;
      }
      run = [];
    };
    for (const sample of this.samples) {
      if (sample.rate === null) flush();
      else run.push([x(sample.at), y(sample.rate)]);
    }
    flush();
    this.line.setAttribute("d", line);
    this.area.setAttribute("d", area);
    this.drawScale(top, y);

    const latest = this.samples.length ? this.samples[this.samples.length - 1].rate : null;
    const peak = rates.length ? Math.max(...rates) : null;
    const words = latest === null
      ? "no rate yet"
      : `now ${formatRate(latest)}, highest ${formatRate(peak)}, lowest ${formatRate(Math.min(...rates))}`;
    this.title.textContent = `Total write rate of this host's channels over the last 5 minutes: ${words}`;
    this.caption.textContent = latest === null
      ? "Messages written per second to this host's channels, sampled every 2 s."
      : `Now ${formatRate(latest)} in total; highest in 5 minutes ${formatRate(peak)}.`;
  }

  drawScale(top, y) {
    this.grid.replaceChildren();
    this.labels.replaceChildren();
    for (const value of [0, top / 2, top]) {
      const py = y(value);
      this.grid.append(svgElement("line", { x1: PLOT.left, x2: PLOT.right, y1: py, y2: py }));
      this.labels.append(svgElement("text", { x: PLOT.left - 6, y: py + 4, "text-anchor": "end" }, `${trim(value)}/s`));
    }
    this.labels.append(svgElement("text", { x: PLOT.left, y: 175, "text-anchor": "start" }, "5 min ago"));
    this.labels.append(svgElement("text", { x: PLOT.right, y: 175, "text-anchor": "end" }, "now"));
  }

  // the poll failed: a gap in the line, and why in the caption
  unavailable(at, message) {
    this.add(at, null);
    this.caption.textContent = `No rate: ${message}.`;
  }
}

function svgElement(name, attributes, text) {
  const element = document.createElementNS(SVG_NS, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  if (text !== undefined) element.textContent = text;
  return element;
}

// 1, 2, 5, 10, 20, 50, ...: a scale top people read at a glance
function niceCeiling(value) {
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) if (value <= step * power) return step * power;
  return 10 * power;
}

function trim(value) {
  return Number.isInteger(value) ? String(value) : value.toFixed(1);
}

export function formatRate(rate) {
  return `${rate.toFixed(1)}/s`;
}
