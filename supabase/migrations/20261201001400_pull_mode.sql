-- Pull mode (issue 14): devices that no controller reaches update themselves,
-- each with its own revocable credential.
--
--   * devices.management: 'push' (Ansible over SSH, the default) or 'pull' (the
--     device agent); the scheduled push play leaves pull devices alone.
--   * device_credentials: one row per credential issued to a device (the JWT's
--     `jti`); revoking sets revoked_at, and the token is refused from then on.
--   * the database role `device`: what a device token (a JWT with role
--     `device` and the claims `device_uuid` and `jti`) may do, and nothing else:
--       read `updates`; read its own `devices` row; update only its heartbeat
--       columns (last_seen, status, current_version, metadata) of that row;
--       read, insert and update the `device_updates` rows of its own device.
--     It never reads another device, never writes `updates`, never calls the
--     controller's functions.
--
-- The claims are checked by device_auth.current_device_id(), in a schema that
-- PostgREST does not expose. Idempotent; touches no data.

ALTER TABLE public.devices ADD COLUMN IF NOT EXISTS management text NOT NULL DEFAULT 'push';
ALTER TABLE public.devices DROP CONSTRAINT IF EXISTS devices_management_check;
ALTER TABLE public.devices ADD CONSTRAINT devices_management_check CHECK (management IN ('push', 'pull'));
COMMENT ON COLUMN public.devices.management IS
    'push: updated by Ansible over SSH; pull: updates itself with its device agent and credential.';

CREATE TABLE IF NOT EXISTS public.device_credentials (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    device_uuid text NOT NULL REFERENCES public.devices (device_uuid) ON DELETE CASCADE,
    jti text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
CREATE INDEX IF NOT EXISTS device_credentials_device_idx ON public.device_credentials (device_uuid);
COMMENT ON TABLE public.device_credentials IS
    'Credentials issued to devices (tools/device_credential.py); a token whose jti is revoked here is refused.';

ALTER TABLE public.device_credentials ENABLE ROW LEVEL SECURITY;
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'anon') THEN
        EXECUTE 'REVOKE ALL ON TABLE public.device_credentials FROM anon';
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'authenticated') THEN
        EXECUTE 'REVOKE ALL ON TABLE public.device_credentials FROM authenticated';
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'service_role') THEN
        EXECUTE 'GRANT ALL ON TABLE public.device_credentials TO service_role';
    END IF;
END
$$;

-- The role PostgREST switches to for a device token.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'device') THEN
        CREATE ROLE device NOLOGIN NOINHERIT;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'authenticator') THEN
        GRANT device TO authenticator;
    END IF;
END
$$;

-- The device a request's token stands for: its devices.id, or NULL when the
-- request is not a device's. A device token whose credential is unknown,
-- revoked or issued to another device is refused with an error (42501).
CREATE SCHEMA IF NOT EXISTS device_auth;
REVOKE ALL ON SCHEMA device_auth FROM PUBLIC;

CREATE OR REPLACE FUNCTION device_auth.current_device_id()
RETURNS uuid
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    v_claims jsonb := coalesce(nullif(current_setting('request.jwt.claims', true), ''), '{}')::jsonb;
    v_uuid text := v_claims ->> 'device_uuid';
    v_jti text := v_claims ->> 'jti';
    v_id uuid;
BEGIN
    IF coalesce(v_claims ->> 'role', '') <> 'device' THEN
        RETURN NULL;
    END IF;
    IF coalesce(v_uuid, '') = '' OR coalesce(v_jti, '') = '' THEN
        RAISE EXCEPTION 'device token without device_uuid and jti claims' USING ERRCODE = '42501';
    END IF;
    SELECT d.id INTO v_id
    FROM public.device_credentials AS c
    JOIN public.devices AS d ON d.device_uuid = c.device_uuid
    WHERE c.jti = v_jti AND c.device_uuid = v_uuid AND c.revoked_at IS NULL;
    IF v_id IS NULL THEN
        RAISE EXCEPTION 'device credential % of device % is revoked or unknown', v_jti, v_uuid
            USING ERRCODE = '42501', HINT = 'enrol the device again: tools/device_credential.py issue';
    END IF;
    RETURN v_id;
END;
$$;

REVOKE ALL ON FUNCTION device_auth.current_device_id() FROM PUBLIC;
GRANT USAGE ON SCHEMA device_auth TO device;
GRANT EXECUTE ON FUNCTION device_auth.current_device_id() TO device;

-- What a device may touch: table privileges (columns for writes), then rows (RLS).
GRANT USAGE ON SCHEMA public TO device;
REVOKE ALL ON TABLE public.devices, public.updates, public.device_updates, public.device_credentials FROM device;
GRANT SELECT ON TABLE public.updates TO device;
GRANT SELECT ON TABLE public.devices TO device;
GRANT UPDATE (last_seen, status, current_version, metadata) ON TABLE public.devices TO device;
GRANT SELECT ON TABLE public.device_updates TO device;
GRANT INSERT (device_id, update_id, status, scheduled_for, started_at, completed_at, error_message)
    ON TABLE public.device_updates TO device;
GRANT UPDATE (status, scheduled_for, started_at, completed_at, error_message)
    ON TABLE public.device_updates TO device;

DROP POLICY IF EXISTS device_reads_updates ON public.updates;
CREATE POLICY device_reads_updates ON public.updates
    FOR SELECT TO device
    USING (device_auth.current_device_id() IS NOT NULL);

DROP POLICY IF EXISTS device_reads_itself ON public.devices;
CREATE POLICY device_reads_itself ON public.devices
    FOR SELECT TO device
    USING (id = device_auth.current_device_id());

-- A device reports online, offline or updating; only the controller retires it.
DROP POLICY IF EXISTS device_heartbeat ON public.devices;
CREATE POLICY device_heartbeat ON public.devices
    FOR UPDATE TO device
    USING (id = device_auth.current_device_id())
    WITH CHECK (id = device_auth.current_device_id() AND status IN ('online', 'offline', 'updating'));

DROP POLICY IF EXISTS device_reads_own_progress ON public.device_updates;
CREATE POLICY device_reads_own_progress ON public.device_updates
    FOR SELECT TO device
    USING (device_id = device_auth.current_device_id());

DROP POLICY IF EXISTS device_adds_own_progress ON public.device_updates;
CREATE POLICY device_adds_own_progress ON public.device_updates
    FOR INSERT TO device
    WITH CHECK (device_id = device_auth.current_device_id());

DROP POLICY IF EXISTS device_updates_own_progress ON public.device_updates;
CREATE POLICY device_updates_own_progress ON public.device_updates
    FOR UPDATE TO device
    USING (device_id = device_auth.current_device_id())
    WITH CHECK (device_id = device_auth.current_device_id());

-- The device agent's check-in, one request per run: the heartbeat (last_seen,
-- and status, current_version and metadata keys when given) of the caller's
-- own row, and the newest update a device can pull: one whose package_url is an
-- http(s) URL (a published, signed manifest; push-only rows name git: refs or
-- controller paths).
-- SECURITY INVOKER: it runs as the device, under the policies above.
--   p_heartbeat: {"status", "current_version", "metadata": {...merged...}}
CREATE OR REPLACE FUNCTION public.device_check_in(p_heartbeat jsonb DEFAULT '{}'::jsonb)
RETURNS jsonb
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = public, pg_temp
AS $$
DECLARE
    v_id uuid := device_auth.current_device_id();
    v_beat jsonb := coalesce(p_heartbeat, '{}'::jsonb);
    v_device jsonb;
    v_update jsonb;
BEGIN
    IF v_id IS NULL THEN
        RAISE EXCEPTION 'device_check_in takes a device token' USING ERRCODE = '42501';
    END IF;
    UPDATE public.devices AS d SET
        last_seen = now(),
        status = coalesce(v_beat ->> 'status', d.status),
        current_version = coalesce(v_beat ->> 'current_version', d.current_version),
        metadata = CASE WHEN jsonb_typeof(v_beat -> 'metadata') = 'object'
                        THEN coalesce(d.metadata, '{}'::jsonb) || (v_beat -> 'metadata')
                        ELSE d.metadata END
    WHERE d.id = v_id
    RETURNING jsonb_build_object('id', d.id, 'device_uuid', d.device_uuid, 'device_name', d.device_name,
                                 'timezone', d.timezone, 'status', d.status, 'management', d.management,
                                 'current_version', d.current_version)
    INTO v_device;
    SELECT to_jsonb(u) INTO v_update
    FROM public.updates AS u
    WHERE u.package_url ~* '^https?://'
    ORDER BY u.created_at DESC, u.version DESC
    LIMIT 1;
    RETURN jsonb_build_object('device', v_device, 'update', v_update, 'now', now());
END;
$$;

REVOKE ALL ON FUNCTION public.device_check_in(jsonb) FROM PUBLIC;
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'anon') THEN
        EXECUTE 'REVOKE ALL ON FUNCTION public.device_check_in(jsonb) FROM anon';
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'authenticated') THEN
        EXECUTE 'REVOKE ALL ON FUNCTION public.device_check_in(jsonb) FROM authenticated';
    END IF;
END
$$;
GRANT EXECUTE ON FUNCTION public.device_check_in(jsonb) TO device;
