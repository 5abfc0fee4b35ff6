"""The web front: the landing page and the metrics over HTTP or HTTPS.

It reads the Prometheus exporter-toolkit web configuration file
(tls_server_config, http_server_config, basic_auth_users, rate_limit), so one
file can serve this exporter and the Go exporters beside it. One module per job:

- address: listen addresses, the default port and metrics path
- config: reads and checks the web configuration file
- tls: SSL contexts for it, re-made when a certificate file changes
- auth: HTTP basic auth against bcrypt hashes
- ratelimit: rate_limit's token bucket
- app: the WSGI app (rate limit and auth in front of the metrics and landing page)
- server: the threaded HTTP(S) servers, one per listen address

Nothing is imported here, so that the main config can use `address` without
loading the servers.
"""
