const os = require("os");

/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: "node",
  roots: ["<rootDir>/__tests__"],
  testMatch: ["**/*.test.ts"],
  transform: { "^.+\\.ts$": ["ts-jest", { tsconfig: { isolatedModules: true } }] },
  // Two workers even on the 2-core CI machine (jest's default there is one): the system
  // tests mostly wait on real daemons, so a second file runs in that time. Every system
  // test works in network namespaces and temporary directories of its own.
  maxWorkers: Math.max(2, Math.min(4, os.cpus().length - 1)),
  testSequencer: "<rootDir>/__tests__/helpers/test-sequencer.js",
  // Synth-heavy suites share the 2-core CI machine; a test may synth a few apps.
  testTimeout: 120000,
};
