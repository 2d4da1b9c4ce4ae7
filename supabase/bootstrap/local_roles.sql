-- What every hosted Supabase project already has, recreated for the local
-- stack only (tools/stack.py runs this before the migrations; never run it
-- against a real project). The migrations then run against the same starting
-- point as in a real project, including Supabase's permissive default grants,
-- so the tests prove that the migrations lock the tables down themselves.
--
-- psql variable: authenticator_password.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'anon') THEN
        CREATE ROLE anon NOLOGIN NOINHERIT;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'authenticated') THEN
        CREATE ROLE authenticated NOLOGIN NOINHERIT;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'service_role') THEN
        CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'authenticator') THEN
        CREATE ROLE authenticator LOGIN NOINHERIT;
    END IF;
END
$$;

ALTER ROLE authenticator WITH PASSWORD :'authenticator_password';
GRANT anon, authenticated, service_role TO authenticator;

GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;
-- Supabase sets these defaults once, when a project is created; so does this
-- script, on a database no migration has run on yet. Granting them on every
-- stack-up would reopen what the lockdown migrations closed.
DO $$
BEGIN
    IF to_regclass('supabase_migrations.schema_migrations') IS NULL THEN
        ALTER DEFAULT PRIVILEGES IN SCHEMA public
            GRANT ALL ON TABLES TO anon, authenticated, service_role;
        ALTER DEFAULT PRIVILEGES IN SCHEMA public
            GRANT ALL ON SEQUENCES TO anon, authenticated, service_role;
        ALTER DEFAULT PRIVILEGES IN SCHEMA public
            GRANT EXECUTE ON FUNCTIONS TO anon, authenticated, service_role;
    END IF;
END
$$;

-- The bookkeeping table of the Supabase CLI: `supabase db push` and this
-- stack agree on which migrations a database has.
CREATE SCHEMA IF NOT EXISTS supabase_migrations;
CREATE TABLE IF NOT EXISTS supabase_migrations.schema_migrations (
    version text PRIMARY KEY,
    statements text[],
    name text
);
