"""Prints an access token of mcpd's internal authorization server on PORT:
registers a public client, signs in as USER with PASSWORD on the sign-in
page (as the integration tests do), exchanges the code.

    python3 bench/oauth_token.py PORT USER PASSWORD"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
import test_oauth  # noqa: E402


def main():
    port, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    client = test_oauth.register(port)
    verifier, challenge = test_oauth.pkce()
    st, hdrs, body = test_oauth.sign_in(port, test_oauth.authorize_url(port, client["client_id"], challenge,
                                                                       scope=None), user, password)
    if st != 303:
        sys.exit("oauth_token.py: sign-in answered %d: %s" % (st, body[:300]))
    _, q = test_oauth.redirected(hdrs)
    st, _, tok = test_oauth.exchange(port, client, q["code"], verifier)
    if st != 200:
        sys.exit("oauth_token.py: token endpoint answered %d: %s" % (st, tok))
    print(tok["access_token"])


main()
