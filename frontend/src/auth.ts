/**
 * Sign-in against the Cognito user pool: InitiateAuth (USER_PASSWORD_AUTH) with the page's public app
 * client, straight from the browser (no secret, no SigV4: InitiateAuth is an unauthenticated API).
 * https://docs.aws.amazon.com/cognito-user-identity-pools/latest/APIReference/API_InitiateAuth.html
 *
 * The ID token goes in `Authorization` on the alert routes: the API's Cognito authorizer checks it.
 * Where to sign in comes from config.json (`auth`): Cognito's regional endpoint when deployed, moto's
 * in the devstack.
 *
 * Example:
 *   const session = await signIn({ endpoint: "https://cognito-idp.eu-west-1.amazonaws.com/", clientId: "abc" },
 *                                "ann@example.com", "secret");
 *   session.idToken  // "eyJraWQiOi..."
 */
export interface AuthConfig {
  endpoint: string;
  clientId: string;
}

export interface Session {
  username: string;
  idToken: string;
  expiresAt: number; // epoch ms
}

/** Cognito refused the sign-in (wrong password, unknown user, ...) or could not be reached. */
export class SignInError extends Error {
  override readonly name = "SignInError";
}

type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

const ENDPOINT_PATTERN = /^https?:\/\/[A-Za-z0-9.-]+(:\d+)?\/?$/;
const CLIENT_ID_PATTERN = /^[A-Za-z0-9+]{1,128}$/;

export function parseAuthConfig(value: unknown): AuthConfig | null {
  if (value === undefined || value === null) return null;
  const auth = value as { endpoint?: unknown; clientId?: unknown };
  if (typeof auth.endpoint !== "string" || !ENDPOINT_PATTERN.test(auth.endpoint))
    throw new SignInError(`config.json: auth.endpoint ${JSON.stringify(auth.endpoint)} is not an http(s) origin`);
  if (typeof auth.clientId !== "string" || !CLIENT_ID_PATTERN.test(auth.clientId))
    throw new SignInError(`config.json: auth.clientId ${JSON.stringify(auth.clientId)} is not an app client id`);
  return { endpoint: auth.endpoint, clientId: auth.clientId };
}

export async function signIn(
  config: AuthConfig,
  username: string,
  password: string,
  fetchImpl: FetchLike = (input, init) => globalThis.fetch(input, init),
  now: () => number = Date.now,
): Promise<Session> {
  let response: Response;
  try {
    response = await fetchImpl(config.endpoint, {
      method: "POST",
      headers: {
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": "AWSCognitoIdentityProviderService.InitiateAuth",
      },
      body: JSON.stringify({
        AuthFlow: "USER_PASSWORD_AUTH",
        ClientId: config.clientId,
        AuthParameters: { USERNAME: username, PASSWORD: password },
      }),
    });
  } catch (error) {
    throw new SignInError(`sign-in: network error (${String(error)})`);
  }
  const body = (await response.json().catch(() => ({}))) as {
    AuthenticationResult?: { IdToken?: unknown; ExpiresIn?: unknown };
    ChallengeName?: unknown;
    message?: unknown;
  };
  if (!response.ok) {
    throw new SignInError(typeof body.message === "string" ? body.message : `sign-in failed (HTTP ${response.status})`);
  }
  const result = body.AuthenticationResult;
  if (!result || typeof result.IdToken !== "string") {
    // A challenge (new password, MFA) this page does not handle.
    throw new SignInError(`sign-in needs ${String(body.ChallengeName ?? "another step")}, which this page does not offer`);
  }
  const expiresIn = typeof result.ExpiresIn === "number" ? result.ExpiresIn : 3600;
  return { username, idToken: result.IdToken, expiresAt: now() + expiresIn * 1000 };
}
