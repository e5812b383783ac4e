// Test order for jest (jest.config.js `testSequencer`). With timings from an earlier run in
// jest's cache, jest's own order (failed first, then longest first). Without them (a fresh
// clone, as in CI) the system tests go first: they are the longest files and mostly wait on
// real daemons (the autoscaler's evaluations, Consul's joins, keepalived's failover), so the
// second worker runs the CPU-bound unit files meanwhile instead of idling at the end.
const Sequencer = require("@jest/test-sequencer").default;
const path = require("path");

class SystemTestsFirst extends Sequencer {
  sort(tests) {
    const ordered = super.sort(tests);
    if (ordered.every((t) => t.duration != null)) return ordered;
    const isSystem = (t) => t.path.split(path.sep).includes("system");
    return [...ordered.filter(isSystem), ...ordered.filter((t) => !isSystem(t))];
  }
}

module.exports = SystemTestsFirst;
