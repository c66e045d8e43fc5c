-- PostgreSQL roles for the hub. Run as the database owner after `hub` has migrated the schema
-- (the migrations run as the owner; the hub's runtime role only reads and writes rows).
--
--   psql -d hub -v hub_role=hub_app -v hub_password="'…'" -f deploy/postgres/roles.sql
--
-- The audit log (records), its signed checkpoints and its stored subtree hashes (merkle_nodes)
-- are append-only twice over: the role may only INSERT and SELECT them, and triggers
-- (migrations 0003 and 0013) refuse UPDATE, DELETE and TRUNCATE even for roles that could.
-- The stored packages (content-addressed) and the index of whom each entry concerns
-- (audit_recipients, written by the append) may only be inserted and read as well.

\if :{?hub_role}
\else
  \set hub_role hub_app
\endif

SELECT format('CREATE ROLE %I LOGIN', :'hub_role')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'hub_role') \gexec
\if :{?hub_password}
  SELECT format('ALTER ROLE %I PASSWORD %L', :'hub_role', :hub_password) \gexec
\endif

SELECT format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), :'hub_role') \gexec
SELECT format('GRANT USAGE ON SCHEMA public TO %I', :'hub_role') \gexec
SELECT format('REVOKE ALL ON ALL TABLES IN SCHEMA public FROM %I', :'hub_role') \gexec

-- working state: read and write rows (never the schema)
SELECT format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO %I', t, :'hub_role')
  FROM unnest(ARRAY['agencies', 'agency_certs', 'trust_anchors', 'crls', 'hub_meta', 'documents',
                    'deliveries', 'status_history', 'outbox', 'api_users', 'dead_letters', 'gateway_seen',
                    'intake_seen', 'intake_decisions',
                    'gateway_leases', 'console_sessions', 'vdxp_systems', 'vdxp_sent', 'vdxp_inbox',
                    'registry_changes']) AS t \gexec

-- the overview's counters (hub.store.counts): added to in the writers' transactions
SELECT format('GRANT SELECT, INSERT, UPDATE ON %I TO %I', t, :'hub_role')
  FROM unnest(ARRAY['record_counts', 'document_counts']) AS t \gexec

-- the audit log, its checkpoints, its subtree hashes, the index of whom each entry concerns
-- (audit_recipients, written by the append) and the stored packages (the exact signed bytes the
-- entries name by SHA-256): INSERT and SELECT only; `hub audit verify` re-hashes every package
SELECT format('GRANT SELECT, INSERT ON %I TO %I', t, :'hub_role')
  FROM unnest(ARRAY['records', 'checkpoints', 'merkle_nodes', 'audit_recipients', 'packages']) AS t \gexec
-- large packages' bytes (hub.store.blobs): a blob row, once written, is only read; its chunks may
-- be deleted only by a retry of an unfinished write (`hub audit verify` re-hashes every blob)
SELECT format('GRANT SELECT, INSERT ON %I TO %I', t, :'hub_role')
  FROM unnest(ARRAY['blobs', 'blob_grants']) AS t \gexec
SELECT format('GRANT SELECT, INSERT, DELETE ON %I TO %I', 'blob_chunks', :'hub_role') \gexec
-- keys shared by the instances (hub.store.secrets): made once, then only read
SELECT format('GRANT SELECT, INSERT ON %I TO %I', 'hub_secrets', :'hub_role') \gexec
SELECT format('GRANT SELECT ON alembic_version TO %I', :'hub_role') \gexec
SELECT format('GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO %I', :'hub_role') \gexec
