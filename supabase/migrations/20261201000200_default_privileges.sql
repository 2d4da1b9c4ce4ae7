-- The lockdown covers what comes later, too.
--
-- 20261122000200_lockdown.sql revoked anon's and authenticated's rights on the
-- three registry tables, but Supabase's default privileges still hand every
-- NEW table, sequence and function in `public` to both roles (and PostgreSQL
-- gives EXECUTE on every new function to PUBLIC, which anon and authenticated
-- are part of). The next migration that adds a table or a helper function
-- would reopen the registry to the anon key shipped in device images.
--
-- Default privileges belong to the role that creates the objects. Migrations
-- run as `postgres` (the Supabase CLI, the SQL editor and this repository's
-- local stack alike); on a hosted project `supabase_admin` holds default
-- privileges in `public` too. So the defaults are changed for the role running
-- this migration and for each of those two that exists and that it may act
-- for (a member of, or a superuser); the others are left alone rather than
-- failing the migration.
--
-- service_role keeps every default privilege (the service key is the
-- registry's only user). Every statement is idempotent and touches no data:
-- safe to re-run, and safe on a project that already has the Javia tables.
-- Roles are looked up, never created: on a project without anon or
-- authenticated there is nothing to take from them.

DO $$
DECLARE
    creator name;
    grantees text;
    has_service_role boolean := EXISTS (SELECT FROM pg_roles WHERE rolname = 'service_role');
BEGIN
    SELECT string_agg(quote_ident(rolname), ', ' ORDER BY rolname) INTO grantees
    FROM pg_roles WHERE rolname IN ('anon', 'authenticated');

    FOR creator IN
        SELECT r.rolname
        FROM pg_roles AS r
        WHERE r.rolname IN (current_user, 'postgres', 'supabase_admin')
          AND pg_has_role(current_user, r.oid, 'MEMBER')
        ORDER BY 1
    LOOP
        IF grantees IS NOT NULL THEN
            -- Future tables (and views), sequences and functions in public: nothing for
            -- anon and authenticated.
            EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA public '
                           'REVOKE ALL ON TABLES FROM %s', creator, grantees);
            EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA public '
                           'REVOKE ALL ON SEQUENCES FROM %s', creator, grantees);
            EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA public '
                           'REVOKE ALL ON FUNCTIONS FROM %s', creator, grantees);
        END IF;
        -- EXECUTE for PUBLIC is a built-in default, which only a default without
        -- IN SCHEMA can take away (it then holds for this creator's functions in
        -- every schema, as Supabase itself recommends for exposed schemas).
        EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %I '
                       'REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC', creator);
        -- The service key still reaches whatever is added later.
        IF has_service_role THEN
            EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA public '
                           'GRANT ALL ON TABLES TO service_role', creator);
            EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA public '
                           'GRANT ALL ON SEQUENCES TO service_role', creator);
            EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA public '
                           'GRANT EXECUTE ON FUNCTIONS TO service_role', creator);
        END IF;
    END LOOP;

    -- Functions and procedures that already exist in public: nothing for anon,
    -- authenticated or PUBLIC; service_role keeps EXECUTE. A routine this role
    -- neither owns nor holds a grant option on is skipped by PostgreSQL with a
    -- warning, not an error.
    EXECUTE 'REVOKE ALL ON ALL ROUTINES IN SCHEMA public FROM PUBLIC'
            || coalesce(', ' || grantees, '');
    IF has_service_role THEN
        EXECUTE 'GRANT EXECUTE ON ALL ROUTINES IN SCHEMA public TO service_role';
    END IF;
END
$$;
