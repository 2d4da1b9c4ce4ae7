-- One request records a rollout batch's progress (the controller's registry
-- client calls it once when a batch starts and once when it ends, instead of
-- a few requests per host per step):
--   * the `updates` row of the version, created when missing;
--   * per device, its `device_updates` row on that update (started_at when work
--     starts, completed_at when it ends), and its status and current_version.
-- Rows that already say the same are not written again. Devices missing from
-- the registry are returned in `missing`, never created here.
--
-- p_update:  {"version", "update_type", "description", "system_packages", "package_url"}
-- p_records: [{"device_uuid", "status", "error_message", "scheduled_for",
--              "device_status", "current_version"}, ...]
--   status (device_updates) and device_status/current_version (devices) are
--   each optional; a record may touch only one of the two tables.
CREATE OR REPLACE FUNCTION public.fleet_record_progress(p_update jsonb, p_records jsonb)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = public, pg_temp
AS $$
DECLARE
    v_update public.updates%ROWTYPE;
    v_device public.devices%ROWTYPE;
    v_rec jsonb;
    v_status text;
    v_missing text[] := '{}';
    v_progress integer := 0;
    v_devices integer := 0;
    v_count integer;
BEGIN
    IF coalesce(p_update ->> 'version', '') = '' THEN
        RAISE EXCEPTION 'fleet_record_progress: p_update.version is required' USING ERRCODE = '22023';
    END IF;
    IF jsonb_typeof(coalesce(p_records, '[]'::jsonb)) <> 'array' THEN
        RAISE EXCEPTION 'fleet_record_progress: p_records must be a JSON array' USING ERRCODE = '22023';
    END IF;

    SELECT * INTO v_update FROM public.updates WHERE version = p_update ->> 'version';
    IF NOT FOUND THEN
        INSERT INTO public.updates (version, update_type, description, system_packages,
                                    requires_system_packages, package_url)
        VALUES (p_update ->> 'version',
                coalesce(p_update ->> 'update_type', 'scheduled'),
                coalesce(p_update ->> 'description', ''),
                coalesce(p_update -> 'system_packages', '[]'::jsonb),
                jsonb_array_length(coalesce(p_update -> 'system_packages', '[]'::jsonb)) > 0,
                nullif(p_update ->> 'package_url', ''))
        ON CONFLICT (version) DO NOTHING;
        SELECT * INTO v_update FROM public.updates WHERE version = p_update ->> 'version';
    END IF;

    FOR v_rec IN SELECT * FROM jsonb_array_elements(coalesce(p_records, '[]'::jsonb)) LOOP
        SELECT * INTO v_device FROM public.devices WHERE device_uuid = v_rec ->> 'device_uuid';
        IF NOT FOUND THEN
            v_missing := v_missing || coalesce(v_rec ->> 'device_uuid', '');
            CONTINUE;
        END IF;

        v_status := v_rec ->> 'status';
        IF v_status IS NOT NULL THEN
            INSERT INTO public.device_updates AS du
                (device_id, update_id, status, error_message, scheduled_for, started_at, completed_at)
            VALUES (v_device.id, v_update.id, v_status, v_rec ->> 'error_message',
                    (v_rec ->> 'scheduled_for')::timestamptz,
                    CASE WHEN v_status IN ('downloading', 'installing') THEN now() END,
                    CASE WHEN v_status IN ('completed', 'failed', 'rolled_back') THEN now() END)
            ON CONFLICT (device_id, update_id) DO UPDATE SET
                status = excluded.status,
                error_message = excluded.error_message,
                scheduled_for = coalesce(excluded.scheduled_for, du.scheduled_for),
                started_at = CASE
                    WHEN excluded.status IN ('downloading', 'installing') AND du.status <> excluded.status
                        THEN now()
                    ELSE du.started_at END,
                completed_at = CASE
                    WHEN excluded.status IN ('completed', 'failed', 'rolled_back') THEN now()
                    WHEN excluded.status IN ('downloading', 'installing') THEN NULL
                    ELSE du.completed_at END
            WHERE (du.status, du.error_message, du.scheduled_for)
                  IS DISTINCT FROM (excluded.status, excluded.error_message,
                                    coalesce(excluded.scheduled_for, du.scheduled_for));
            GET DIAGNOSTICS v_count = ROW_COUNT;
            v_progress := v_progress + v_count;
        END IF;

        IF v_rec ? 'device_status' OR v_rec ? 'current_version' THEN
            UPDATE public.devices d SET
                status = coalesce(v_rec ->> 'device_status', d.status),
                current_version = coalesce(v_rec ->> 'current_version', d.current_version),
                last_seen = now()
            WHERE d.id = v_device.id
              AND (d.status, d.current_version) IS DISTINCT FROM
                  (coalesce(v_rec ->> 'device_status', d.status),
                   coalesce(v_rec ->> 'current_version', d.current_version));
            GET DIAGNOSTICS v_count = ROW_COUNT;
            v_devices := v_devices + v_count;
        END IF;
    END LOOP;

    RETURN jsonb_build_object(
        'update', to_jsonb(v_update),
        'progress_written', v_progress,
        'devices_written', v_devices,
        'missing', to_jsonb(v_missing));
END;
$$;

COMMENT ON FUNCTION public.fleet_record_progress(jsonb, jsonb) IS
    'Records a rollout batch in one request: the update row, device_updates and devices. Service key only.';

-- Only the controller's service key may call it (RLS does not guard functions).
REVOKE ALL ON FUNCTION public.fleet_record_progress(jsonb, jsonb) FROM PUBLIC;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon') THEN
        EXECUTE 'REVOKE ALL ON FUNCTION public.fleet_record_progress(jsonb, jsonb) FROM anon';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated') THEN
        EXECUTE 'REVOKE ALL ON FUNCTION public.fleet_record_progress(jsonb, jsonb) FROM authenticated';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
        EXECUTE 'GRANT EXECUTE ON FUNCTION public.fleet_record_progress(jsonb, jsonb) TO service_role';
    END IF;
END
$$;
