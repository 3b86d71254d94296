"""Logs scenario: the two Node.js apps that print the lines (one console.log() per line, or
1000 lines per write())."""

from __future__ import annotations

from dataclasses import dataclass


LOG_APP_JS_PERLINE = r"""// Kelpie bench: print LINES unique lines of 90 bytes + "\n", one console.log() per line, as
// fast as possible, exit 0. Line n (1-based): "line " + n (7 digits) + " " + 69 x "x" + " " + n.
const LINES = %d;
const pad = "x".repeat(69);
function line(n) {
  const s = String(n).padStart(7, "0");
  return "line " + s + " " + pad + " " + s;
}
for (let i = 1; i <= LINES; i++) console.log(line(i));
"""


LOG_APP_JS_BATCHED = r"""// Kelpie bench: print LINES unique lines of 90 bytes + "\n" as fast as possible, exit 0.
// Line n (1-based): "line " + n (7 digits) + " " + 69 x "x" + " " + n (7 digits).
const LINES = %d;
const PER = 1000;  // lines per write()
const pad = "x".repeat(69);
let i = 1;
function line(n) {
  const s = String(n).padStart(7, "0");
  return "line " + s + " " + pad + " " + s + "\n";
}
function pump() {
  while (i <= LINES) {
    const end = Math.min(LINES, i + PER - 1);
    let chunk = "";
    for (; i <= end; i++) chunk += line(i);
    if (!process.stdout.write(chunk)) {
      process.stdout.once("drain", pump);  // backpressure: wait, then go on
      return;
    }
  }
}
pump();  // node exits (code 0) once stdout has been flushed
"""


@dataclass(frozen=True)
class LogVariant:
    key: str       # in the raw samples and file names
    title: str     # in the table
    js: str        # app source, "%d" = number of lines
    filename: str  # the app's file in the temp dir


LOG_VARIANTS = (
    LogVariant("per_line", "console.log per line", LOG_APP_JS_PERLINE, "logspam.js"),
    LogVariant("batched", "batched writes, 1000 lines each", LOG_APP_JS_BATCHED,
               "logspam-batched.js"),
)
