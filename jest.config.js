// Tests run as native ESM (binaryen, loaded lazily by the core, is ESM with top-level
// await), so `npm test` sets NODE_OPTIONS=--experimental-vm-modules. ts-jest compiles the
// TypeScript sources directly; type checking is `npm run typecheck`.
/** Shared by both projects. */
const base = {
  testEnvironment: 'node',
  testTimeout: 30000,
  extensionsToTreatAsEsm: ['.ts'],
  transform: {
    '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: 'tsconfig.json', diagnostics: false }],
  },
  testMatch: ['<rootDir>/__tests__/**/*.test.ts', '<rootDir>/examples/**/*.test.ts'],
  // The examples import the package by its name, as users do; map it to the sources.
  moduleNameMapper: {
    '^edgeless$': '<rootDir>/lib/node/index.ts',
    '^edgeless/testing$': '<rootDir>/lib/testing/index.ts',
    '^edgeless/testing/jest$': '<rootDir>/lib/testing/jest.ts',
  },
}

// The wasm suites run twice: as they are, and with dense memory on by default
// (__tests__/helpers/fixtures.ts reads the global), so every guest behaviour they test holds
// for dense instances too. Browser, CLI, worker, store and packaging suites run once.
const WASM_SUITES = [
  'abi',
  'assemblyscript',
  'bad-modules',
  'calls',
  'functions',
  'fuel-bounds',
  'passivation',
  'quotas',
  'runaway',
  'runtime-options',
  'smoke',
  'state',
  'supervision',
  'wasm-calls',
  'workflows',
]

/** @type {import('jest').Config} */
export default {
  testTimeout: 30000,
  projects: [
    { ...base, displayName: 'own memory' },
    { ...base, displayName: 'dense', testMatch: WASM_SUITES.map((n) => `<rootDir>/__tests__/${n}.test.ts`), globals: { EDGELESS_TEST_DENSE: true } },
  ],
}
