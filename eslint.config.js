// Lint, and the import directions of STYLE.md enforced as rules:
//   protocol/ imports nothing of ours and no npm package; storage/ nothing of ours;
//   ledger/ only protocol; worker/ protocol + storage; orchestrator/ protocol, ledger, storage.
//   worker/ and orchestrator/ never import each other.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const ours = ['protocol', 'storage', 'ledger', 'worker', 'orchestrator'];

/** Forbid imports of our own folders not listed in `allowed`. */
function onlyImports(folder, allowed, extra = []) {
  const banned = ours.filter((f) => f !== folder && !allowed.includes(f));
  return {
    files: [`${folder}/**/*.ts`],
    ignores: [`${folder}/**/*.test.ts`],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            ...banned.map((f) => ({
              group: [`**/${f}/*`, `**/${f}`],
              message: `${folder}/ must not import ${f}/ (STYLE.md, import directions).`,
            })),
            ...extra,
          ],
        },
      ],
    },
  };
}

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', '.ferry/**', 'bench/out/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-restricted-syntax': ['error', { selector: 'ExportDefaultDeclaration', message: 'No default exports (STYLE.md).' }],
    },
  },
  // Tool configs must default-export: the only place the rule does not apply.
  { files: ['*.config.{js,ts}'], rules: { 'no-restricted-syntax': 'off' } },
  onlyImports('protocol', [], [{ regex: '^(?!node:)[^./]', message: 'protocol/ imports no npm package.' }]),
  onlyImports('storage', []),
  onlyImports('ledger', ['protocol']),
  onlyImports('worker', ['protocol', 'storage']),
  onlyImports('orchestrator', ['protocol', 'ledger', 'storage']),
);
