/**
 * The shape of the code, checked by `npm test` (dependency-cruiser): the rooms of
 * docs/ARCHITECTURE.md and the direction of the imports between them.
 */
const FEATURES = '^src/(ingest|worker|query|ops|obs|schema|transform|alerts|rollout)/';
module.exports = {
  forbidden: [
    {
      name: 'no-cycles',
      comment: 'No import cycles: a cycle means two modules are one concept, or one of them is in the wrong room.',
      severity: 'error',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'core-is-pure',
      comment: 'src/core/ is the floor: the glossary and types, the query language, errors, time, hashing. It imports nothing of sluice above it and no package.',
      severity: 'error',
      from: { path: '^src/core/' },
      to: { pathNot: ['^src/core/', '^node:'], dependencyTypesNot: ['core'] },
    },
    {
      name: 'ports-depend-on-core-only',
      comment: 'A port is an interface in terms of the domain: it names core types and other ports, nothing else.',
      severity: 'error',
      from: { path: '^src/ports/' },
      to: { pathNot: ['^src/(core|ports)/'] },
    },
    {
      name: 'backends-never-import-features',
      comment: 'A backend implements a port with its driver: it imports ports, core, shared SQL builders and its own driver, never a feature, the HTTP face or the assembly.',
      severity: 'error',
      from: { path: '^src/backends/' },
      to: { path: [FEATURES, '^src/(http|app|cli|client)/'] },
    },
    {
      name: 'features-never-import-the-face-or-the-assembly',
      comment: 'The domain folders know nothing of HTTP, of threads or of the command line: those call them, not the other way round.',
      severity: 'error',
      from: { path: FEATURES },
      to: { path: '^src/(http|app|cli)/' },
    },
    {
      name: 'fastify-only-in-the-http-face',
      comment: 'Fastify is imported in src/http/ (the one face) and src/app/ (the assembly) only.',
      severity: 'error',
      from: { pathNot: '^src/(http|app)/' },
      to: { path: 'node_modules/(fastify|@fastify/)' },
    },
    {
      name: 'drivers-only-in-backends',
      comment: 'Only a backend imports a database or queue driver, and it loads it on first use (the embedded user never loads nats or pg).',
      severity: 'error',
      from: { path: '^src/', pathNot: '^src/backends/' },
      to: { path: 'node_modules/(better-sqlite3|@duckdb/|pg/|pg-|nats/)' },
    },
    {
      name: 'the-client-stands-alone',
      comment: 'The producer SDK runs in browsers: it imports nothing of the server.',
      severity: 'error',
      from: { path: '^src/client/' },
      to: { path: '^src/', pathNot: '^src/client/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default', 'types'] },
  },
};
