// Tests run as native ESM (binaryen, loaded lazily by the core, is ESM with top-level
// await), so `npm test` sets NODE_OPTIONS=--experimental-vm-modules. ts-jest compiles the
// TypeScript sources directly; type checking is `npm run typecheck`.
/** @type {import('jest').Config} */
export default {
  testEnvironment: 'node',
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
  testTimeout: 30000,
}
