import { describe, expect, it } from 'vitest';
import { endpointEnvProblem } from './endpoint-env.js';

const none = { s3: false, gcs: false };

describe('endpoint variables', () => {
  it.each<[NodeJS.ProcessEnv, string | null]>([
    [{}, null],
    [{ AWS_ENDPOINT_URL_S3: 'http://127.0.0.1:9000' }, null],
    [{ AWS_ENDPOINT_URL: 'https://minio.internal' }, null],
    [{ AWS_ENDPOINT_URL_S3: 'localhost:9000' }, 'AWS_ENDPOINT_URL_S3'],
    [{ AWS_ENDPOINT_URL: 'not a url' }, 'AWS_ENDPOINT_URL'],
    // the service's own variable wins, as in the SDK: the general one is not read
    [{ AWS_ENDPOINT_URL_S3: 'http://127.0.0.1:9000', AWS_ENDPOINT_URL: 'x' }, null],
    [{ AWS_ENDPOINT_URL_S3: 'x', AWS_IGNORE_CONFIGURED_ENDPOINT_URLS: 'true' }, null],
    [{ STORAGE_EMULATOR_HOST: '127.0.0.1:9023' }, null],
    [{ STORAGE_EMULATOR_HOST: 'http://localhost:9023/' }, null],
    [{ STORAGE_EMULATOR_HOST: 'localhost::9023' }, 'STORAGE_EMULATOR_HOST'],
    [{ STORAGE_EMULATOR_HOST: 'ftp://localhost:9023' }, 'STORAGE_EMULATOR_HOST'],
  ])('%j', (env, named) => {
    const problem = endpointEnvProblem(none, env);
    if (named === null) expect(problem).toBeNull();
    else expect(problem).toMatch(new RegExp(`^${named} is not`));
  });

  it('a variable the flag overrides is not read', () => {
    expect(endpointEnvProblem({ s3: true, gcs: true }, { AWS_ENDPOINT_URL_S3: 'x', STORAGE_EMULATOR_HOST: '::' })).toBeNull();
  });
});
