/*
 * options.c - meshd's options: the one table behind the config file, flags, MESHD_*
 * environment variables and `meshd --help`.
 */
#include <stddef.h>

#include "core/util.h"
#include "node/node.h"

#define F(field) offsetof(mesh_node_opts_t, field)

static const mesh_opt_t node_opts[] = {
    {"config", MESH_OPT_STRING, F(config), NULL, 0, 0, NULL, MESH_OPT_NOFILE, "FILE",
     "Config file of `name = value` lines (see examples/meshd.conf)."},
    {"data_dir", MESH_OPT_STRING, F(data_dir), "./meshd-data", 0, 0, NULL, 0, "DIR",
     "Directory of the catalog and of every domain's database and log."},
    {"listen", MESH_OPT_STRING, F(listen), "127.0.0.1:7070", 0, 0, NULL, 0, "ADDR:PORT",
     "Address of the HTTP API ([::1]:7070 for IPv6; port 0 picks a free port)."},
    {"tls", MESH_OPT_ENUM, F(tls), "on", 0, 0, "on|off", 0, "MODE",
     "TLS on the HTTP API (TLS 1.2 and 1.3, modern ciphers only). 'off' serves plain HTTP: "
     "tokens and data travel in clear text, so use it only on a trusted network or behind a "
     "TLS proxy; meshd warns at every start."},
    {"tls_cert", MESH_OPT_STRING, F(tls_cert), NULL, 0, 0, NULL, 0, "FILE",
     "PEM certificate of the HTTP API, followed by its chain. Unset: a self-signed certificate "
     "is generated on first start in DATA_DIR/tls/ and reused; its SHA-256 fingerprint is "
     "logged at every start."},
    {"tls_key", MESH_OPT_STRING, F(tls_key), NULL, 0, 0, NULL, 0, "FILE",
     "PEM private key of tls_cert (unset: read from the tls_cert file). Not encrypted; keep it "
     "readable by meshd's user only."},
    {"tls_client_ca", MESH_OPT_STRING, F(tls_client_ca), NULL, 0, 0, NULL, 0, "FILE",
     "PEM CA certificates whose client certificates are accepted (see tls_client_auth)."},
    {"tls_client_auth", MESH_OPT_ENUM, F(tls_client_auth), "off", 0, 0, "off|optional|require", 0,
     "MODE",
     "Client certificates: 'require' refuses a connection without a valid certificate from "
     "tls_client_ca; 'optional' asks for one and refuses an invalid one; 'off' does not ask. "
     "API tokens are needed either way."},
    {"node_name", MESH_OPT_STRING, F(node_name), NULL, 0, 0, NULL, 0, "NAME",
     "Name of this node (default: the host name)."},
    {"site", MESH_OPT_STRING, F(site), "default", 0, 0, NULL, 0, "LABEL",
     "Site label of this node (a factory, a home, a ward)."},
    {"admin_token", MESH_OPT_STRING, F(admin_token), NULL, 0, 0, NULL, MESH_OPT_SECRET, "TOKEN",
     "Admin API token to install instead of generating one (16-256 printable characters)."},
    {"admin_token_file", MESH_OPT_STRING, F(admin_token_file), NULL, 0, 0, NULL, 0, "FILE",
     "File holding the admin API token (first line)."},
    {"http_threads", MESH_OPT_INT, F(http_threads), "4", 1, 64, NULL, 0, "N",
     "HTTP worker threads."},
    {"max_body", MESH_OPT_SIZE, F(max_body), "64MiB", 1024, 1LL << 30, NULL, 0, "SIZE",
     "Largest request body accepted (413 beyond it); gzip bodies are limited after inflating."},
    {"max_batch_rows", MESH_OPT_INT, F(max_batch_rows), "1000000", 1, 100000000, NULL, 0, "N",
     "Most rows in one write request."},
    {"max_errors", MESH_OPT_INT, F(max_errors), "100", 1, 100000, NULL, 0, "N",
     "Bad rows described in a refused batch's response (all are counted)."},
    {"query_timeout", MESH_OPT_DURATION, F(query_timeout), "30s", 1000000, 86400000000000LL, NULL,
     0, "DURATION", "Time limit of a query, from start to last row."},
    {"query_max_rows", MESH_OPT_INT, F(query_max_rows), "0", 0, 1LL << 40, NULL, 0, "N",
     "Most rows a query may return (0: no limit; results are streamed)."},
    {"query_sessions", MESH_OPT_INT, F(query_sessions), "64", 1, 4096, NULL, 0, "N",
     "Queries that may run at once (503 beyond)."},
    {"sync", MESH_OPT_ENUM, F(sync), "log", 0, 0, "log|full", 0, "MODE",
     "Durability: 'log' fsyncs each domain's log before a write is acknowledged (SQLite "
     "synchronous=NORMAL, replayed from the log after a crash); 'full' also runs SQLite with "
     "synchronous=FULL."},
    {"idempotency_ttl", MESH_OPT_DURATION, F(idempotency_ttl), "24h", 60000000000LL,
     365 * 86400000000000LL, NULL, 0, "DURATION", "How long an Idempotency-Key is remembered."},
    {"checkpoint_interval", MESH_OPT_DURATION, F(checkpoint_interval), "30s", 1000000000LL,
     3600000000000LL, NULL, 0, "DURATION",
     "How often each domain's SQLite WAL is checkpointed and its log trimmed."},
    {"min_free_space", MESH_OPT_SIZE, F(min_free_space), "64MiB", 0, 1LL << 50, NULL, 0, "SIZE",
     "Free space kept on the data directory's file system: below it, writes (rows, contracts) "
     "are refused with 507 Insufficient Storage while queries go on, and accepted again as "
     "soon as space is freed. Leaves room for checkpoints and the audit log; 0 turns the check "
     "off (a full disk still refuses writes cleanly, see docs/operations.md)."},
    {"quality_interval", MESH_OPT_DURATION, F(quality_interval), "10m", 0, 7 * 86400000000000LL,
     NULL, 0, "DURATION",
     "How often every product's contract quality rules and completeness are evaluated (0: "
     "only on demand, POST .../quality/run). See docs/quality.md."},
    {"retention_interval", MESH_OPT_DURATION, F(retention_interval), "1m", 0, 7 * 86400000000000LL,
     NULL, 0, "DURATION",
     "How often expired rows are deleted from products with a retention (0: never; see "
     "docs/governance.md)."},
    {"retention_batch", MESH_OPT_INT, F(retention_batch), "10000", 1, 10000000, NULL, 0, "N",
     "Most rows one retention deletion removes (each is its own log record; a pass runs "
     "batches until nothing expired is left, then gives the freed pages back)."},
    {"login_ttl", MESH_OPT_DURATION, F(login_ttl), "1h", 60000000000LL, 30 * 86400000000000LL, NULL,
     0, "DURATION",
     "How long a token from POST /v1/login (meshctl login) is valid; a request may ask for "
     "less."},
    {"audit_checkpoint_records", MESH_OPT_INT, F(audit_checkpoint_records), "1000", 1, 1000000,
     NULL, 0, "N",
     "Audit log: a checkpoint (fsync, and DATA_DIR/audit/HEAD rewritten) after this many "
     "records."},
    {"audit_checkpoint_interval", MESH_OPT_DURATION, F(audit_checkpoint_interval), "5s", 10000000LL,
     3600000000000LL, NULL, 0, "DURATION",
     "Audit log: ... or this long after the first record not yet in a checkpoint. Records are "
     "in the kernel as soon as they are written (a killed meshd loses none); a power loss can "
     "lose those after the last checkpoint."},
    {"audit_segment_size", MESH_OPT_SIZE, F(audit_segment_size), "16MiB", 65536, 256LL << 20, NULL,
     0, "SIZE", "Audit log: size at which a new segment file starts."},
    {"audit_retention", MESH_OPT_DURATION, F(audit_retention), "0", 0, 3650 * 86400000000000LL,
     NULL, 0, "DURATION",
     "Audit log: delete segments last written longer ago than this (0: keep everything). The "
     "deletion is itself an audited event, and verify still checks what is kept."},
    {"rules_file", MESH_OPT_STRING, F(rules_file), NULL, 0, 0, NULL, 0, "PATH",
     "A rule file (YAML or JSON, one rule), or a directory whose *.yaml, *.yml and *.json files "
     "are rules, applied at every start (unchanged rules are left as they are; a rule that "
     "does not parse fails the start with its file and reason; one whose domain or product "
     "does not exist yet waits for the next start). See docs/rules.md."},
    {"rules_tick", MESH_OPT_DURATION, F(rules_tick), "1s", 100000000LL, 3600000000000LL, NULL, 0,
     "DURATION",
     "How often absence rules are evaluated (a tick record in each domain that has one)."},
    {"action_queue", MESH_OPT_INT, F(action_queue), "1000", 1, 1000000, NULL, 0, "N",
     "Rule actions (webhooks) waiting for delivery or a retry; beyond this new ones are "
     "dropped, logged and audited (ingest never waits for actions)."},
    {"metrics_auth", MESH_OPT_BOOL, F(metrics_auth), "true", 0, 0, NULL, 0, "BOOL",
     "Require a token for /metrics (set false to let a scraper in without one)."},
    {"mesh", MESH_OPT_STRING, F(mesh), NULL, 0, 0, NULL, 0, "URL[,URL...]",
     "Join a mesh: the NATS servers to connect to (nats:// or tls:// URLs, comma-separated; "
     "any one of a cluster will do, the others are learnt from it). Unset: the node runs "
     "alone. The connection is retried forever with backoff; the node serves its own domains "
     "either way (see docs/mesh.md)."},
    {"mesh_tls_ca", MESH_OPT_STRING, F(mesh_tls_ca), NULL, 0, 0, NULL, 0, "FILE",
     "PEM CA certificates that verify the NATS servers; turns TLS on for the mesh connection "
     "(`meshctl mesh config` writes ca.pem)."},
    {"mesh_tls_cert", MESH_OPT_STRING, F(mesh_tls_cert), NULL, 0, 0, NULL, 0, "FILE",
     "PEM client certificate of this node for the NATS servers (they ask for one in the "
     "configs `meshctl mesh config` writes)."},
    {"mesh_tls_key", MESH_OPT_STRING, F(mesh_tls_key), NULL, 0, 0, NULL, 0, "FILE",
     "PEM private key of mesh_tls_cert (mode 0600)."},
    {"mesh_user", MESH_OPT_STRING, F(mesh_user), NULL, 0, 0, NULL, 0, "USER",
     "NATS user of this node (its subject permissions are set in the server's config)."},
    {"mesh_password_file", MESH_OPT_STRING, F(mesh_password_file), NULL, 0, 0, NULL, 0, "FILE",
     "File whose first line is mesh_user's NATS password (mode 0600). There is no password "
     "option: a secret on the command line is visible in the process list."},
    {"mesh_js_domain", MESH_OPT_STRING, F(mesh_js_domain), NULL, 0, 0, NULL, 0, "DOMAIN",
     "JetStream domain holding the mesh registry, for a node whose server is a leaf node "
     "with its own domain (e.g. 'hub'); unset: the server's own."},
    {"mesh_heartbeat", MESH_OPT_DURATION, F(mesh_heartbeat), "5s", 100000000LL, 3600000000000LL,
     NULL, 0, "DURATION",
     "How often this node rewrites its registry entry (name, site, API address, domains and "
     "products)."},
    {"mesh_ttl", MESH_OPT_DURATION, F(mesh_ttl), "15s", 300000000LL, 86400000000000LL, NULL, 0,
     "DURATION",
     "How long after its last heartbeat this node counts as alive for the others; at least "
     "twice mesh_heartbeat."},
    {"mesh_replicas", MESH_OPT_INT, F(mesh_replicas), "0", 0, 5, NULL, 0, "N",
     "Replicas of the registry bucket when this node creates it (0: 3 when the server pool "
     "has 3 or more servers, else 1)."},
    {"mesh_timeout", MESH_OPT_DURATION, F(mesh_timeout), "5s", 100000000LL, 300000000000LL, NULL, 0,
     "DURATION", "Time limit of one request to the NATS servers."},
    {"mesh_stream_max_age", MESH_OPT_DURATION, F(mesh_stream_max_age), "7d", 1000000000LL,
     3650LL * 86400000000000LL, NULL, 0, "DURATION",
     "How long a replicated domain's stream keeps its records, when this node creates the "
     "stream. A replica further behind bootstraps from a snapshot of another host "
     "(docs/mesh.md)."},
    {"mesh_stream_max_bytes", MESH_OPT_SIZE, F(mesh_stream_max_bytes), "0", 0,
     1024LL * 1024 * 1024 * 1024 * 1024, NULL, 0, "SIZE",
     "Bytes a replicated domain's stream keeps at most (oldest records dropped first), when "
     "this node creates the stream; 0: no limit but mesh_stream_max_age."},
    {"mesh_stream_max_msgs", MESH_OPT_INT, F(mesh_stream_max_msgs), "0", 0, 1000000000000LL, NULL,
     0, "N",
     "Records a replicated domain's stream keeps at most (oldest dropped first), when this "
     "node creates the stream; 0: no limit but mesh_stream_max_age."},
    {"mesh_api_url", MESH_OPT_STRING, F(mesh_api_url), NULL, 0, 0, NULL, 0, "URL",
     "URL of this node's API as the other nodes and meshctl should use it (default: from "
     "listen, with the node name for a wildcard address)."},
    {"mqtt_url", MESH_OPT_STRING, F(mqtt_url), NULL, 0, 0, NULL, 0, "URL",
     "MQTT broker to subscribe to: mqtt://HOST[:PORT] (default port 1883) or mqtts://HOST[:PORT] "
     "(TLS, default port 8883). Unset: no MQTT ingest. See docs/mqtt.md."},
    {"mqtt_username", MESH_OPT_STRING, F(mqtt_username), NULL, 0, 0, NULL, 0, "NAME",
     "User name meshd gives the MQTT broker."},
    {"mqtt_password_file", MESH_OPT_STRING, F(mqtt_password_file), NULL, 0, 0, NULL, 0, "FILE",
     "File whose first line is the password for mqtt_username (the password itself is never an "
     "option, so it stays out of argv, the environment and logs)."},
    {"mqtt_tls_ca", MESH_OPT_STRING, F(mqtt_tls_ca), NULL, 0, 0, NULL, 0, "FILE",
     "PEM CA certificates that verify the broker's certificate (mqtts; unset: the system's CAs). "
     "The broker's name must match its certificate."},
    {"mqtt_client_cert", MESH_OPT_STRING, F(mqtt_client_cert), NULL, 0, 0, NULL, 0, "FILE",
     "PEM client certificate meshd presents to the broker (mqtts; with mqtt_client_key)."},
    {"mqtt_client_key", MESH_OPT_STRING, F(mqtt_client_key), NULL, 0, 0, NULL, 0, "FILE",
     "PEM private key of mqtt_client_cert (not encrypted)."},
    {"mqtt_client_id", MESH_OPT_STRING, F(mqtt_client_id), NULL, 0, 0, NULL, 0, "ID",
     "MQTT client id of meshd's persistent session (default: meshd- and 16 hex digits of the "
     "node id, stable across restarts). Two nodes must not share one."},
    {"mqtt_protocol", MESH_OPT_ENUM, F(mqtt_protocol), "5", 0, 0, "5|3.1.1", 0, "VERSION",
     "MQTT protocol version spoken to the broker."},
    {"mqtt_keepalive", MESH_OPT_DURATION, F(mqtt_keepalive), "30s", 5000000000LL, 3600000000000LL,
     NULL, 0, "DURATION", "MQTT keepalive interval."},
    {"mqtt_session_expiry", MESH_OPT_DURATION, F(mqtt_session_expiry), "7d", 0,
     4294967295000000000LL, NULL, 0, "DURATION",
     "MQTT 5: how long the broker keeps meshd's session (its subscriptions and the QoS 1 "
     "messages queued for it) while meshd is away."},
    {"mqtt_reconnect_min", MESH_OPT_DURATION, F(mqtt_reconnect_min), "500ms", 10000000LL,
     3600000000000LL, NULL, 0, "DURATION",
     "First wait before reconnecting to the broker; it doubles on each failure up to "
     "mqtt_reconnect_max, with random jitter."},
    {"mqtt_reconnect_max", MESH_OPT_DURATION, F(mqtt_reconnect_max), "30s", 10000000LL,
     3600000000000LL, NULL, 0, "DURATION", "Longest wait between reconnection attempts."},
    {"mqtt_max_payload", MESH_OPT_SIZE, F(mqtt_max_payload), "1MiB", 64, 256LL << 20, NULL, 0,
     "SIZE",
     "Largest MQTT payload parsed; a larger one goes to the product's quarantine (its first KiB)."},
    {"mqtt_ready", MESH_OPT_BOOL, F(mqtt_ready), "false", 0, 0, NULL, 0, "BOOL",
     "Make /readyz answer 503 while the MQTT session is down (default: MQTT does not affect "
     "readiness)."},
    {"mqtt_mapping", MESH_OPT_LIST, F(mqtt_mapping), NULL, 0, 0, NULL, 0, "MAPPING",
     "An MQTT mapping defined by the config file, one per line (repeatable): 'NAME TOPIC "
     "DOMAIN.PRODUCT [json or lineprotocol] [qos=0 or 1] [principal=NAME]'. Topics matching "
     "TOPIC, whose {name} levels become columns, are written to DOMAIN.PRODUCT as principal "
     "NAME (default mqtt). Mappings made with meshctl mqtt mapping create live in the catalog."},
    {"log_level", MESH_OPT_ENUM, F(log_level), "info", 0, 0, "debug|info|warn|error", 0, "LEVEL",
     "Least severe log level written."},
    {"log_format", MESH_OPT_ENUM, F(log_format), "logfmt", 0, 0, "logfmt|json", 0, "FORMAT",
     "Log line format."},
    {"log_levels", MESH_OPT_STRING, F(log_levels), NULL, 0, 0, NULL, 0, "COMP=LEVEL,...",
     "Levels of single components over log_level, e.g. 'http=debug,crypt=warn' (components: "
     "the comp= of log lines)."},
    {"log_file", MESH_OPT_STRING, F(log_file), NULL, 0, 0, NULL, 0, "FILE",
     "Write log lines to FILE (appended, mode 0640) instead of standard error; SIGHUP reopens "
     "it (after logrotate moved it)."},
    {"encryption", MESH_OPT_ENUM, F(encryption), "on", 0, 0, "on|off", 0, "MODE",
     "Encryption at rest: 'on' seals every domain's database, WAL and log and the catalog with "
     "AES-256-GCM under per-domain data keys wrapped by the key-encryption key (KEK) below; "
     "'off' stores them in clear (an encrypted data directory is then refused). With no KEK "
     "configured, the first start generates DATA/kek.key and warns: move it off the data "
     "disk. See docs/security.md."},
    {"kek_file", MESH_OPT_STRING, F(kek_file), NULL, 0, 0, NULL, 0, "FILE",
     "File holding the KEK: 64 hex digits or base64 of 32 bytes (surrounding whitespace is "
     "ignored), or exactly 32 raw bytes. Keep it off the data disk (mode 0600)."},
    {"kek", MESH_OPT_STRING, F(kek), NULL, 0, 0, NULL, MESH_OPT_SECRET, "KEY",
     "The KEK itself, as kek_file's text; meant for the MESHD_KEK environment variable (a "
     "flag is visible in the process list). Never printed."},
    {"kek_passphrase_file", MESH_OPT_STRING, F(kek_passphrase_file), NULL, 0, 0, NULL, 0, "FILE",
     "File whose first line is a passphrase (8 characters or more); the KEK is derived from "
     "it with scrypt (N=2^16, r=8, p=1, 64 MiB), its salt kept in DATA/catalog.key."},
    {"kek_passphrase", MESH_OPT_STRING, F(kek_passphrase), NULL, 0, 0, NULL, MESH_OPT_SECRET,
     "PASSPHRASE",
     "The passphrase itself (see kek_passphrase_file); meant for MESHD_KEK_PASSPHRASE. Never "
     "printed."},
    {"kek_command", MESH_OPT_STRING, F(kek_command), NULL, 0, 0, NULL, 0, "COMMAND",
     "A command whose standard output is the KEK (as kek_file's text), e.g. a KMS or vault "
     "client. Run at start without a shell: words split on blanks, '...' and \"...\" quote; "
     "at most 4 KiB of output."},
    {"kek_command_timeout", MESH_OPT_DURATION, F(kek_command_timeout), "10s", 100000000LL,
     300000000000LL, NULL, 0, "DURATION", "Time kek_command may take before it is killed."},
    {"backup_dir", MESH_OPT_STRING, F(backup_dir), NULL, 0, 0, NULL, 0, "DIR",
     "Directory of the node's backups (unset: DATA_DIR/backups). Put it on another disk: a "
     "backup on the data disk dies with it."},
    {"backup_schedule", MESH_OPT_DURATION, F(backup_schedule), "0", 0, 366 * 86400000000000LL, NULL,
     0, "DURATION",
     "Take a backup of the whole node this often (e.g. 24h; 0: only when asked, meshctl backup "
     "create). The first one runs one period after the start."},
    {"backup_retention", MESH_OPT_INT, F(backup_retention), "7", 0, 100000, NULL, 0, "N",
     "After each backup, keep only the newest N backups in backup_dir (0: no limit by count)."},
    {"backup_retention_age", MESH_OPT_DURATION, F(backup_retention_age), "0", 0,
     3650 * 86400000000000LL, NULL, 0, "DURATION",
     "After each backup, delete backups older than this (0: no limit by age). The newest backup "
     "is always kept."},
    {"health_domain", MESH_OPT_STRING, F(health_domain), NULL, 0, 0, NULL, 0, "NAME",
     "Turn on the built-in health alerts: the domain (created at start when missing) that holds "
     "the node's health samples, the alert rules made from the health_* options and their "
     "alerts (meshctl alert list --domain NAME). Unset: off. See docs/operations.md."},
    {"health_interval", MESH_OPT_DURATION, F(health_interval), "15s", 1000000000LL, 3600000000000LL,
     NULL, 0, "DURATION",
     "How often the node writes its health samples (disk, mesh nodes, replication, products, "
     "authentication failures) and so how often health alerts are evaluated."},
    {"health_disk_low", MESH_OPT_SIZE, F(health_disk_low), "256MiB", 0, 1LL << 50, NULL, 0, "SIZE",
     "Alert disk-space-low while the data disk has less than this free (set it above "
     "min_free_space: the warning before writes are refused; 0: off)."},
    {"health_node_down", MESH_OPT_DURATION, F(health_node_down), "1m", 0, 7 * 86400000000000LL,
     NULL, 0, "DURATION",
     "Alert node-down when another node of the mesh registry sent no heartbeat for this long "
     "(a node that stopped cleanly is not down; 0: off)."},
    {"health_replication_lag", MESH_OPT_DURATION, F(health_replication_lag), "1m", 0,
     7 * 86400000000000LL, NULL, 0, "DURATION",
     "Alert replication-lag when a replica of a domain is more than this behind its stream (0: "
     "off)."},
    {"health_freshness", MESH_OPT_BOOL, F(health_freshness), "true", 0, 0, NULL, 0, "BOOL",
     "Alert product-stale when a product's newest row is older than its contract's freshness "
     "SLA (slaProperties latency or frequency)."},
    {"health_quality_min", MESH_OPT_INT, F(health_quality_min), "50", 0, 100, NULL, 0, "SCORE",
     "Alert quality-low when a product's quality score (0-100, docs/quality.md) is below this "
     "(0: off)."},
    {"health_auth_failures", MESH_OPT_INT, F(health_auth_failures), "20", 0, 1000000, NULL, 0, "N",
     "Alert auth-failures when more than N tokens or logins from one client address were "
     "refused within health_auth_window (0: off)."},
    {"health_auth_window", MESH_OPT_DURATION, F(health_auth_window), "5m", 1000000000LL,
     86400000000000LL, NULL, 0, "DURATION",
     "The window of health_auth_failures (counted in whole health_interval steps, at most 64 of "
     "them)."},
    {"health_webhook_url", MESH_OPT_STRING, F(health_webhook_url), NULL, 0, 0, NULL, 0, "URL",
     "Send health alerts (fired, acknowledged, resolved) to this http(s) URL, signed like rule "
     "webhooks (docs/rules.md)."},
    {"health_webhook_secret_file", MESH_OPT_STRING, F(health_webhook_secret_file), NULL, 0, 0, NULL,
     0, "PATH", "File whose first line is the HMAC key of health webhooks (unset: unsigned)."},
    {"health_webhook_ca_file", MESH_OPT_STRING, F(health_webhook_ca_file), NULL, 0, 0, NULL, 0,
     "PATH", "CA certificates that verify an https health_webhook_url (unset: the system's)."},
    {"health_webhook_alerts", MESH_OPT_STRING, F(health_webhook_alerts), "all", 0, 0, NULL, 0,
     "LIST",
     "Which health alerts go to the webhook: all, none, or a comma-separated list of "
     "disk-space-low, node-down, replication-lag, product-stale, quality-low, auth-failures."},
    {"health_mqtt_topic", MESH_OPT_STRING, F(health_mqtt_topic), NULL, 0, 0, NULL, 0, "TOPIC",
     "Publish health alerts on this MQTT topic (a template, e.g. meshd/health/{rule}) through "
     "the node's MQTT connection (mqtt_url)."},
    {"health_mqtt_alerts", MESH_OPT_STRING, F(health_mqtt_alerts), "all", 0, 0, NULL, 0, "LIST",
     "Which health alerts are published on health_mqtt_topic (as health_webhook_alerts)."},
    {"openlineage_file", MESH_OPT_STRING, F(openlineage_file), NULL, 0, 0, NULL, 0, "PATH",
     "Append an OpenLineage RunEvent (JSON Lines) for each refresh of a derived product to this "
     "file (unset: off). See docs/derived.md."},
    {"openlineage_file_max_size", MESH_OPT_SIZE, F(openlineage_file_max_size), "64MiB", 0,
     1LL << 50, NULL, 0, "SIZE",
     "Past this size openlineage_file is renamed to FILE.1 (replacing the previous one) and a "
     "new file is started (0: never rotated)."},
    {"openlineage_url", MESH_OPT_STRING, F(openlineage_url), NULL, 0, 0, NULL, 0, "URL",
     "POST each OpenLineage RunEvent (application/json) to this http(s) endpoint, e.g. "
     "Marquez's /api/v1/lineage (unset: off). Sent by a thread of its own from a bounded "
     "queue: a slow or dead endpoint never holds up writes (events that find the queue full "
     "are dropped and counted in meshd_openlineage_events_total)."},
    {"openlineage_token_file", MESH_OPT_STRING, F(openlineage_token_file), NULL, 0, 0, NULL, 0,
     "PATH",
     "File whose first line is sent as 'Authorization: Bearer' to openlineage_url "
     "(unset: none; never logged)."},
    {"openlineage_ca_file", MESH_OPT_STRING, F(openlineage_ca_file), NULL, 0, 0, NULL, 0, "PATH",
     "CA certificates that verify an https openlineage_url (unset: the system's)."},
    {"openlineage_timeout", MESH_OPT_DURATION, F(openlineage_timeout), "5s", 100000000LL,
     300000000000LL, NULL, 0, "DURATION", "Time limit of one POST to openlineage_url."},
    {"openlineage_retries", MESH_OPT_INT, F(openlineage_retries), "3", 0, 20, NULL, 0, "N",
     "Further attempts after a failed POST (backoff 100 ms doubling, at most 5 s); then the "
     "event is counted as failed."},
    {"openlineage_queue", MESH_OPT_INT, F(openlineage_queue), "1024", 1, 1000000, NULL, 0, "N",
     "Events waiting per OpenLineage sink; more are dropped and counted."},
    {"openlineage_namespace", MESH_OPT_STRING, F(openlineage_namespace), "meshd", 0, 0, NULL, 0,
     "NAME",
     "The OpenLineage namespace of jobs and datasets (names are DOMAIN.PRODUCT); give each mesh "
     "its own."},
};

const mesh_opts_spec_t mesh_node_opts_spec = {node_opts, MESH_ARRAY_LEN(node_opts), "MESHD_"};
