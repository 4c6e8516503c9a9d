/** Environments for tests of the AWS SDK's credential chain, which must never depend on the machine's own ~/.aws. */

/** A config or credentials file that does not exist. */
export const NO_AWS_FILE = '/nonexistent/ferry-aws-config';

/**
 * Variables (undefined: removed) under which the credential chain finds nothing: no keys, no
 * profile, no files, and no metadata service asked (that would be a request off this machine).
 */
export const NO_AWS_CREDENTIALS: Record<string, string | undefined> = {
  AWS_ACCESS_KEY_ID: undefined,
  AWS_SECRET_ACCESS_KEY: undefined,
  AWS_SESSION_TOKEN: undefined,
  AWS_PROFILE: undefined,
  AWS_WEB_IDENTITY_TOKEN_FILE: undefined,
  AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: undefined,
  AWS_CONTAINER_CREDENTIALS_FULL_URI: undefined,
  AWS_SHARED_CREDENTIALS_FILE: NO_AWS_FILE,
  AWS_CONFIG_FILE: NO_AWS_FILE,
  AWS_EC2_METADATA_DISABLED: 'true',
};
